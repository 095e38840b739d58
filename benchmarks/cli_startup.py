"""Wall time of the CLI's header commands, and the peak memory of a large decode.

Header commands (``inspect``, ``extract``, ``models``) read no model: they should start in
≤ 0.5 s, not the seconds an import of PyTorch and CompressAI takes. Each runs in a fresh
process; printed: the minimum and median over ``--repeat`` runs, next to the bare interpreter
and to ``import torch, compressai`` measured in the same run (the ratio is to the latter).

``--large N`` also decodes an N x N image with the committed mini model, in a fresh process,
and prints its peak RSS (target ≤ 2 GB at 4096: the VAE decodes in tiles above 1 MP).

    python benchmarks/cli_startup.py [--repeat 5] [--large 4096]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.5


def timed(cmd: list[str], repeat: int, cwd: str) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=cwd)
        times.append(time.perf_counter() - t0)
    return times


def peak_rss_gb(cmd: list[str], cwd: str) -> tuple[float, float]:
    """(seconds, peak RSS in GB) of ``cmd``, run under a fresh intermediate process so that
    an earlier, larger child does not count."""
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *cmd], check=True, capture_output=True, text=True, cwd=cwd
    ).stdout.split()
    return float(out[0]), int(out[1]) * 1024 / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--large", type=int, default=0, help="also decode an N x N image")
    args = ap.parse_args()
    py = sys.executable
    cli = [py, "-m", "discover.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        import numpy as np
        from PIL import Image

        rng = np.random.default_rng(0)
        image = Path(tmp) / "in.png"
        Image.fromarray((rng.random((96, 128, 3)) * 255).astype(np.uint8)).save(image)
        stream = Path(tmp) / "in.dsc"
        model = ["--model", "discover-mini", "--rate", "8"]
        subprocess.run([*cli, "encode", str(image), "-o", str(stream), *model], check=True)
        cases = {
            "python -c pass": [py, "-c", "pass"],
            "import torch, compressai": [py, "-c", "import torch, compressai"],
            "discover inspect": [*cli, "inspect", str(stream)],
            "discover extract": [
                *cli,
                "extract",
                str(stream),
                "--consumer",
                "human",
                "-o",
                f"{tmp}/x.dsc",
            ],
            "discover models": [*cli, "models"],
        }
        results = {name: timed(cmd, args.repeat, tmp) for name, cmd in cases.items()}
        torch_s = min(results["import torch, compressai"])
        print(f"{'command':<26} {'min s':>7} {'median s':>9} {'/ torch import':>15}")
        for name, t in results.items():
            print(f"{name:<26} {min(t):7.3f} {statistics.median(t):9.3f} {min(t) / torch_s:15.2f}")
        worst = max(min(results[n]) for n in cases if n.startswith("discover"))
        print(f"slowest header command: {worst:.3f} s (target ≤ {TARGET_S} s)")
        if args.large:
            n = args.large
            small = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
            big = Path(tmp) / "big.png"
            Image.fromarray(small).resize((n, n), Image.BICUBIC).save(big)
            enc = [*cli, "encode", str(big), "-o", f"{tmp}/big.dsc", *model]
            s, gb = peak_rss_gb(enc, tmp)
            print(f"encode {n}x{n}: {s:.1f} s, peak RSS {gb:.2f} GB")
            dec = [*cli, "decode", f"{tmp}/big.dsc", "-o", f"{tmp}/big_out.png"]
            s, gb = peak_rss_gb(dec, tmp)
            print(f"decode {n}x{n}: {s:.1f} s, peak RSS {gb:.2f} GB (target ≤ 2 GB)")


if __name__ == "__main__":
    main()
