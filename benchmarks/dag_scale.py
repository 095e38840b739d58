"""Dry-run time of the DAG on a paper-scale config.

COCO val2017 (5,000) + ImageNet val (50,000) + Kodak (24) + CLIC2020 (428 images), 10 codecs x 5
rate points. A dry run needs only file lists, so the benchmark writes empty image files and
annotation/label files (no pixels). Prints the job count and the wall time of `snakemake -n`.

    python benchmarks/dag_scale.py [--shard-size 250] [--profile profiles/slurm]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from discover.plan import snakemake_command

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 60.0


def make_file_lists(root: Path, scale: float = 1.0) -> dict:
    n_coco, n_imagenet, n_kodak, n_clic = (max(1, round(n * scale)) for n in (5000, 50000, 24, 428))
    coco = root / "coco" / "val2017"
    coco.mkdir(parents=True)
    images = [
        {"id": 100000 + i, "file_name": f"{100000 + i:012d}.jpg", "width": 640, "height": 480}
        for i in range(n_coco)
    ]
    (root / "coco" / "instances_val2017.json").write_text(
        json.dumps({"images": images, "annotations": [], "categories": [{"id": 1, "name": "x"}]})
    )
    imagenet = root / "imagenet" / "val"
    imagenet.mkdir(parents=True)
    (root / "imagenet" / "labels.txt").write_text(
        "".join(f"ILSVRC2012_val_{i + 1:08d}.JPEG {i % 1000}\n" for i in range(n_imagenet))
    )
    kodak = root / "kodak"
    kodak.mkdir()
    for i in range(n_kodak):
        (kodak / f"kodim{i + 1:02d}.png").touch()
    clic = root / "clic2020"
    clic.mkdir()
    for i in range(n_clic):
        (clic / f"clic_{i:03d}.png").touch()
    return {
        "coco": {
            "type": "coco",
            "images": str(coco),
            "annotations": str(root / "coco" / "instances_val2017.json"),
        },
        "imagenet": {
            "type": "imagenet",
            "images": str(imagenet),
            "labels": str(root / "imagenet" / "labels.txt"),
        },
        "kodak": {"type": "kodak", "path": str(kodak)},
        "clic2020": {"type": "clic2020", "path": str(clic)},
    }


def paper_codecs() -> dict:
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


LOCAL_RULES = {"all", "merge_annotations", "aggregate_rd", "combine_rd", "bd_table", "rd_plot"}
GROUPED_RULES = {"prepare_shard", "codec_shard"}


def dry_run(tmp: Path, shard_size: int, profile: str | None, scale: float) -> dict:
    """Write the file lists and config, run `snakemake -n`; return counts and time."""
    cfg = {
        "output_dir": str(tmp / "results"),
        "shard_size": shard_size,
        "datasets": make_file_lists(tmp / "data", scale),
        "codecs": paper_codecs(),
        "anchor": "vtm",
    }
    cfg_path = tmp / "paper.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    cmd = snakemake_command(cfg_path, "-n", workdir=tmp, cores=2)
    if profile:
        cmd += ["--profile", str(ROOT / profile)]
    else:
        cmd += ["--quiet", "rules"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    stats = proc.stdout.split("Job stats:")[1].split("\n\n")[0]
    per_rule = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}
    result = {
        "seconds": elapsed,
        "jobs": per_rule.pop("total"),
        "per_rule": per_rule,
        "stats": stats.strip(),
    }
    if profile:
        groups = len(re.findall(r"Group job \w+", proc.stdout))
        ungrouped = sum(
            n for rule, n in per_rule.items() if rule not in LOCAL_RULES | GROUPED_RULES
        )
        result["cluster_jobs"] = groups + ungrouped
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shard-size", type=int, default=250)
    ap.add_argument("--profile", default=None, help="e.g. profiles/slurm (dry run only)")
    args = ap.parse_args()
    runs = {}
    for scale in (0.1, 1.0):
        with tempfile.TemporaryDirectory() as tmp:
            runs[scale] = dry_run(Path(tmp), args.shard_size, args.profile, scale)
    full = runs[1.0]
    print(full["stats"])
    print(f"images: 55,452   codecs: 10 x 5 rates   shard_size: {args.shard_size}")
    print(f"snakemake jobs: {full['jobs']}  (at 10% of the images: {runs[0.1]['jobs']})")
    if args.profile:
        print(
            f"cluster jobs submitted ({args.profile}): {full['cluster_jobs']}  "
            f"(at 10% of the images: {runs[0.1]['cluster_jobs']}; target <= 20,000)"
        )
    print(
        f"dry run: {full['seconds']:.1f} s   target: <= {TARGET_S:.0f} s   "
        f"ratio to target: {full['seconds'] / TARGET_S:.2f}"
    )
    ok = full["seconds"] <= TARGET_S and full.get("cluster_jobs", 0) <= 20000
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
