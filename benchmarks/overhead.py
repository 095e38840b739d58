"""Overhead of the Snakemake DAG against a bare single-process Python loop.

Both do the same encodes, decodes, reconstructions and PSNR/MS-SSIM on the same N images x 2
codecs (JPEG, WebP) x 4 rates; the DAG also prepares shards and writes tables, BD and plots.
Prints both wall times and their ratio (target: DAG / loop <= 1.10 on 2 cores).

    python benchmarks/overhead.py [--images 200] [--shard-size 25] [--cores 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from discover.codecs import get_codec
from discover.datasets.synthetic_scenes import SceneGenerator
from discover.metrics import msssim, psnr
from discover.plan import snakemake_command

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.10
CODECS = {
    "jpeg": {"type": "jpeg", "rates": [20, 40, 60, 80]},
    "webp": {"type": "webp", "rates": [20, 40, 60, 80]},
}


def bare_loop(images: list[Path], out: Path) -> float:
    """What a researcher would write by hand: one process, nested loops."""
    cfg = {"codecs": CODECS}
    t0 = time.perf_counter()
    bits = {}
    for name in CODECS:
        codec = get_codec(name, cfg)
        for rate in CODECS[name]["rates"]:
            d = out / name / str(rate)
            d.mkdir(parents=True)
            total_bits = total_px = 0
            for path in images:
                ref = np.asarray(Image.open(path).convert("RGB"))
                stream = d / f"{path.stem}.{codec.extension}"
                codec.encode(ref, rate, stream)
                rec = codec.decode(stream, ref.shape[:2], rate)
                Image.fromarray(rec).save(d / f"{path.stem}.png", compress_level=1)
                psnr(ref, rec)
                msssim(ref, rec)
                total_bits += 8 * stream.stat().st_size
                total_px += ref.shape[0] * ref.shape[1]
            bits[(name, rate)] = total_bits / total_px
    return time.perf_counter() - t0


def dag(images_dir: Path, work: Path, shard_size: int, cores: int) -> float:
    cfg = {
        "output_dir": "results",
        "shard_size": shard_size,
        "datasets": {"bench": {"type": "folder", "path": str(images_dir)}},
        "codecs": CODECS,
        "anchor": "jpeg",
    }
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = snakemake_command(work / "config.yaml", "--quiet", "all", workdir=work, cores=cores)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--shard-size", type=int, default=25)
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "images"
        src.mkdir()
        gen = SceneGenerator(0, "val", 256, 512, 2, 6)
        paths = []
        for i in range(args.images):
            p = src / f"img_{i:04d}.png"
            Image.fromarray(gen.render(i)[0]).save(p)
            paths.append(p)
        loop_s = bare_loop(paths, tmp / "loop")
        work = tmp / "dag"
        work.mkdir()
        dag_s = dag(src, work, args.shard_size, args.cores)
    jobs = 2 * 4 * -(-args.images // args.shard_size)
    print(
        f"images: {args.images}  codecs: 2 x 4 rates  shard_size: {args.shard_size}  "
        f"codec jobs: {jobs}  cores: {args.cores}"
    )
    print(f"bare loop (1 process): {loop_s:8.1f} s")
    print(f"snakemake DAG        : {dag_s:8.1f} s")
    print(f"ratio DAG / loop     : {dag_s / loop_s:8.2f}   target <= {TARGET:.2f}")
    return 0 if dag_s / loop_s <= TARGET else 2


if __name__ == "__main__":
    sys.exit(main())
