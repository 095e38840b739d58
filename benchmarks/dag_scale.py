"""Dry-run time of the DAG of the paper's config at 10 %, 100 % and a 1M-image size.

`configs/paper.yaml` as it is (ten codec rows with DISCOVER's three entries, the three tasks,
the semantics stage, training), its datasets replaced by file lists: COCO val2017 (5,000) +
ImageNet val (50,000) + Kodak (24) + CLIC2020 (428) at full size. A dry run needs only file
lists, so the benchmark writes annotation/label files and empty image files (no pixels), and
empty files where the config names weights you supply (ELIC, VTM). The 1M-image case scales every
dataset by the same factor (about the size of OpenImages' training set).

Prints per size: jobs, wall time of `snakemake -n`, ms per job and per 1,000 images, and whether
torch was imported while planning (it must not be). Time that is not the workflow's is measured
apart and printed: Snakemake's own start (``snakemake --version``), and the SLURM executor
plugin's ``scontrol show config`` probe, which a SLURM client without a reachable controller
waits 10 s for on every Snakemake start.

    python benchmarks/dag_scale.py [--sizes 0.1 1 18.03] [--profile profiles/slurm]
    python benchmarks/dag_scale.py --config classic     # the classic codecs only (no DISCOVER)
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from discover.plan import snakemake_command  # noqa: E402
from discover.plan.run import forbidding_imports  # noqa: E402

TARGET_S = 30.0  # issue target at full size, on 2 cores
FULL = {"coco": 5000, "imagenet": 50000, "kodak": 24, "clic2020": 428}
MILLION = 1_000_000 / sum(FULL.values())  # the 1M-image case


def make_file_lists(root: Path, scale: float = 1.0) -> dict:
    """The four datasets as file lists of ``scale`` x their size: dataset entries to merge."""
    n = {name: max(1, round(size * scale)) for name, size in FULL.items()}
    coco = root / "coco" / "val2017"
    coco.mkdir(parents=True)
    images = [
        {"id": 100000 + i, "file_name": f"{100000 + i:012d}.jpg", "width": 640, "height": 480}
        for i in range(n["coco"])
    ]
    (root / "coco" / "instances_val2017.json").write_text(
        json.dumps({"images": images, "annotations": [], "categories": [{"id": 1, "name": "x"}]})
    )
    imagenet = root / "imagenet" / "val"
    imagenet.mkdir(parents=True)
    (root / "imagenet" / "labels.txt").write_text(
        "".join(f"ILSVRC2012_val_{i + 1:08d}.JPEG {i % 1000}\n" for i in range(n["imagenet"]))
    )
    kodak = root / "kodak"
    kodak.mkdir()
    for i in range(n["kodak"]):
        (kodak / f"kodim{i + 1:02d}.png").touch()
    clic = root / "clic2020"
    clic.mkdir()
    for i in range(n["clic2020"]):
        (clic / f"clic_{i:06d}.png").touch()
    return {
        "coco": {"images": str(coco), "annotations": str(root / "coco" / "instances_val2017.json")},
        "imagenet": {"images": str(imagenet), "labels": str(root / "imagenet" / "labels.txt")},
        "kodak": {"path": str(kodak)},
        "clic2020": {"path": str(clic)},
    }


def classic_codecs() -> dict:
    cmd = {
        "type": "command",
        "extension": "bin",
        "rates": [1, 2, 3, 4, 5],
        "encode": "learned-encode --q {rate} {input} {output}",
        "decode": "learned-decode {input} {output}",
    }
    return {
        "vtm": {**cmd, "label": "VTM-12.1"},
        "elic": {**cmd, "label": "ELIC"},
        "fat": {**cmd, "label": "Frequency-aware"},
        "transtic": {**cmd, "label": "TransTIC"},
        "illm": {**cmd, "label": "ILLM"},
        "perco": {**cmd, "label": "PerCo"},
        "jpeg": {"type": "jpeg", "rates": [10, 30, 50, 70, 90]},
        "webp": {"type": "webp", "rates": [10, 30, 50, 70, 90]},
        "avif": {"type": "avif", "rates": [50, 42, 34, 26, 18]},
        "hevc": {"type": "hevc", "rates": [42, 37, 32, 27, 22]},
    }


def _user_files(value, tmp: Path):
    """Paths the config names under weights-user/ and tools/, made to exist under ``tmp``."""
    if isinstance(value, dict):
        return {k: _user_files(v, tmp) for k, v in value.items()}
    if isinstance(value, list):
        return [_user_files(v, tmp) for v in value]
    if isinstance(value, str) and value.startswith(("weights-user/", "tools/")):
        path = tmp / value
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        return str(path)
    return value


def write_config(tmp: Path, scale: float, which: str) -> Path:
    lists = make_file_lists(tmp / "data", scale)
    if which == "paper":
        cfg = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text())
        for name, entry in lists.items():
            cfg["datasets"][name].update(entry)
        cfg = _user_files(cfg, tmp)
        cfg["trained_weights_dir"] = str(tmp / "weights-user")
    else:
        types = {"coco": "coco", "imagenet": "imagenet", "kodak": "kodak", "clic2020": "clic2020"}
        cfg = {
            "shard_size": 250,
            "datasets": {name: {"type": types[name], **entry} for name, entry in lists.items()},
            "codecs": classic_codecs(),
            "anchor": "vtm",
        }
    cfg["output_dir"] = str(tmp / "results")
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def seconds(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return time.perf_counter() - t0, proc


def dry_run(scale: float, which: str, profile: str | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cfg_path = write_config(tmp, scale, which)
        env = forbidding_imports(tmp / "no_torch", "torch")
        cmd = snakemake_command(cfg_path, "-n", workdir=tmp, cores=2)
        cmd += ["--profile", str(ROOT / profile)] if profile else ["--quiet", "rules"]
        elapsed, proc = seconds(cmd, env=env)
        torch_free = True
        if proc.returncode != 0 and "DISCOVER_FORBID_IMPORTS" in proc.stderr:
            torch_free = False  # time it again with torch allowed, to still print a number
            elapsed, proc = seconds(cmd)
        if proc.returncode != 0:
            raise SystemExit((proc.stdout + proc.stderr)[-3000:])
    stats = proc.stdout.split("Job stats:")[1].split("\n\n")[0]
    per_rule = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}
    jobs = per_rule.pop("total")
    images = sum(max(1, round(n * scale)) for n in FULL.values())
    result = {"scale": scale, "images": images, "seconds": elapsed, "jobs": jobs}
    result.update(per_rule=per_rule, stats=stats.strip(), torch_free=torch_free)
    if profile:
        local, grouped = rule_kinds()
        result["cluster_jobs"] = len(re.findall(r"Group job \w+", proc.stdout)) + sum(
            n for rule, n in per_rule.items() if rule not in local | grouped
        )
    return result


def rule_kinds() -> tuple[set[str], set[str]]:
    """The workflow's localrules (run where Snakemake runs) and the rules with a group."""
    snakefile = (ROOT / "Snakefile").read_text()
    block = snakefile.split("localrules:", 1)[1].split("\n\n", 1)[0]
    local = set(re.findall(r"(\w+),", block))
    grouped = set()
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for rule in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            if re.search(r"^    group:", rule, re.M):
                grouped.add(rule.split(":", 1)[0].strip())
    return local, grouped


def fixed_costs() -> dict:
    """Time of a bare Snakemake start, and of the SLURM plugin's scontrol probe."""
    version, _ = seconds([sys.executable, "-m", "snakemake", "--version"])
    probe = None
    if shutil.which("scontrol"):
        probe, _ = seconds(["scontrol", "show", "config"], timeout=15)
    return {"snakemake_start": version, "scontrol_probe": probe}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", choices=("paper", "classic"), default="paper")
    ap.add_argument("--sizes", type=float, nargs="+", default=[0.1, 1.0, MILLION])
    ap.add_argument("--profile", default=None, help="e.g. profiles/slurm (dry run only)")
    args = ap.parse_args()
    fixed = fixed_costs()
    runs = [dry_run(s, args.config, args.profile) for s in args.sizes]
    full = next((r for r in runs if r["scale"] == 1.0), runs[-1])
    print(full["stats"])
    print()
    probe = fixed["scontrol_probe"]
    print(
        f"config: {args.config}   snakemake start: {fixed['snakemake_start']:.1f} s   "
        f"scontrol probe: {'no scontrol' if probe is None else f'{probe:.1f} s'} "
        "(paid once per Snakemake start, in every time below)"
    )
    print(
        f"{'size':>8} {'images':>10} {'jobs':>8} {'dry run':>9} {'ms/job':>7} "
        f"{'s/1k img':>8}  torch"
    )
    for r in runs:
        print(
            f"{r['scale']:>7.3g}x {r['images']:>10,} {r['jobs']:>8,} {r['seconds']:>8.1f}s "
            f"{1000 * r['seconds'] / r['jobs']:>7.2f} {1000 * r['seconds'] / r['images']:>8.2f}"
            f"  {'not imported' if r['torch_free'] else 'IMPORTED'}"
        )
        if args.profile:
            print(f"{'':>9} cluster jobs submitted ({args.profile}): {r['cluster_jobs']:,}")
    if len(runs) > 1:
        small, large = runs[0], runs[-1]
        growth = (large["seconds"] / small["seconds"]) / (large["images"] / small["images"])
        print(
            f"growth {small['scale']:.3g}x -> {large['scale']:.3g}x: time x"
            f"{large['seconds'] / small['seconds']:.1f} for images x"
            f"{large['images'] / small['images']:.1f} (ratio {growth:.2f}; <= 1: at most linear)"
        )
    print(
        f"full size: {full['seconds']:.1f} s   target: <= {TARGET_S:.0f} s   "
        f"ratio to target: {full['seconds'] / TARGET_S:.2f}"
    )
    ok = full["seconds"] <= TARGET_S and all(r["torch_free"] for r in runs)
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
