"""How much work on the other core slows a single-threaded forward pass on this one.

``benchmarks/batching.py`` compares a codec job (forward passes on the main thread, entropy
coding, PNG writing and metrics on a worker thread) with the bare forward passes alone. On a
machine of two cores the job's worker runs on the second core while the passes run on the
first; if the cores share anything (caches, memory bandwidth, a host's hyper-threads behind
the VM's cores), the passes themselves get slower and the ratio cannot reach 1 however little
the job adds. This measures that directly, with no GIL shared: hyperprior-mini's
g_a, h_a, h_s (twice, as encoder and decoder), g_s on ``--images`` 512×512 images, pinned to
core 0 with one torch thread, alone and beside a separate process pinned to core 1 that runs

* ``sleep``: wakes every 10 ms and sleeps again (almost idle);
* ``python``: a pure-Python integer loop (no memory traffic);
* ``zlib``: zlib level 6 on a 512×512×3 buffer (PNG writing's cost);
* ``memory``: copies of a 64 MiB array (memory bandwidth);
* ``conv``: a 5×5 convolution, 64 channels at 128×128 (another forward pass).

The conditions run in a shuffled order in each of ``--repeat`` rounds; printed: the median
seconds and the speed relative to ``none`` (the passes alone).

    python benchmarks/contention.py [--images 8] [--repeat 12]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

KINDS = ("none", "sleep", "python", "zlib", "memory", "conv")


def competitor(kind: str, stop, ready) -> None:
    os.sched_setaffinity(0, {1})
    torch.set_num_threads(1)
    buf = np.random.default_rng(0).integers(0, 256, 512 * 512 * 3, dtype=np.uint8).tobytes()
    big = np.ones(64 * 2**20 // 8)
    a, w = torch.randn(1, 64, 128, 128), torch.randn(64, 64, 5, 5)
    ready.set()
    x = 0
    while not stop.is_set():
        if kind == "sleep":
            time.sleep(0.01)
        elif kind == "python":
            for i in range(100_000):
                x += i * i
        elif kind == "zlib":
            zlib.compress(buf, 6)
        elif kind == "memory":
            copy = big.copy()
            copy += 1
        elif kind == "conv":
            torch.nn.functional.conv2d(a, w, padding=2)


@torch.no_grad()
def passes(model, images) -> None:
    for x in images:
        y = model.g_a(x)
        z_hat = torch.round(model.h_a(torch.abs(y)))
        model.h_s(z_hat)
        model.h_s(z_hat)
        model.g_s(torch.round(y)).clamp_(0, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=12)
    args = ap.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        ap.error("needs two cores (0 and 1) to pin the passes and the competitor apart")
    os.sched_setaffinity(0, {0})
    torch.set_num_threads(1)
    from discover.codecs.compressai_models import load_model

    model = load_model(
        "bmshj2018-hyperprior", ROOT / "weights" / "hyperprior-mini" / "q3.pth.tar"
    ).eval()
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(1, 3, 512, 512, generator=g) for _ in range(args.images)]
    passes(model, images)  # warm-up
    seconds: dict[str, list[float]] = {k: [] for k in KINDS}
    for rep in range(args.repeat):
        order = list(KINDS)
        random.Random(rep).shuffle(order)
        for kind in order:
            stop, ready, proc = mp.Event(), mp.Event(), None
            if kind != "none":
                proc = mp.Process(target=competitor, args=(kind, stop, ready))
                proc.start()
                ready.wait()
                time.sleep(0.2)
            t0 = time.perf_counter()
            passes(model, images)
            seconds[kind].append(time.perf_counter() - t0)
            if proc is not None:
                stop.set()
                proc.join()
    alone = statistics.median(seconds["none"])
    print(f"{args.images} images of 512×512, {args.repeat} rounds; core 0: the passes")
    print("| on core 1 | median s | speed vs alone | range s |")
    print("|---|---|---|---|")
    for kind in KINDS:
        med = statistics.median(seconds[kind])
        print(
            f"| {kind} | {med:.3f} | {alone / med:.2f} "
            f"| {min(seconds[kind]):.3f}-{max(seconds[kind]):.3f} |"
        )
    return 0


if __name__ == "__main__":
    mp.set_start_method("fork")
    raise SystemExit(main())
