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

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 60.0


def make_file_lists(root: Path) -> dict:
    coco = root / "coco" / "val2017"
    coco.mkdir(parents=True)
    images = [
        {"id": 100000 + i, "file_name": f"{100000 + i:012d}.jpg", "width": 640, "height": 480}
        for i in range(5000)
    ]
    (root / "coco" / "instances_val2017.json").write_text(
        json.dumps({"images": images, "annotations": [], "categories": [{"id": 1, "name": "x"}]})
    )
    imagenet = root / "imagenet" / "val"
    imagenet.mkdir(parents=True)
    (root / "imagenet" / "labels.txt").write_text(
        "".join(f"ILSVRC2012_val_{i + 1:08d}.JPEG {i % 1000}\n" for i in range(50000))
    )
    kodak = root / "kodak"
    kodak.mkdir()
    for i in range(24):
        (kodak / f"kodim{i + 1:02d}.png").touch()
    clic = root / "clic2020"
    clic.mkdir()
    for i in range(428):
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shard-size", type=int, default=250)
    ap.add_argument("--profile", default=None, help="e.g. profiles/slurm (dry run only)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = {
            "output_dir": str(tmp / "results"),
            "shard_size": args.shard_size,
            "datasets": make_file_lists(tmp / "data"),
            "codecs": paper_codecs(),
            "anchor": "vtm",
        }
        cfg_path = tmp / "paper.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        cmd = [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(tmp),
            "--configfile",
            str(cfg_path),
            "-n",
            "--quiet",
            "rules",
            "--cores",
            "2",
        ]
        if args.profile:
            cmd += ["--profile", str(ROOT / args.profile)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        total = re.search(r"^total\s+(\d+)", proc.stdout, re.M)
        jobs = int(total.group(1)) if total else -1
        stats = proc.stdout.split("Job stats:")[-1].split("Reasons:")[0]
        print(stats.strip())
        print(f"images: 55,452   codecs: 10 x 5 rates   shard_size: {args.shard_size}")
        print(f"jobs: {jobs}")
        print(
            f"dry run: {elapsed:.1f} s   target: <= {TARGET_S:.0f} s   "
            f"ratio to target: {elapsed / TARGET_S:.2f}"
        )
        return 0 if elapsed <= TARGET_S else 2


if __name__ == "__main__":
    sys.exit(main())
