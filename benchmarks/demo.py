"""Wall time and peak memory (RSS summed over the whole process tree) of the demo DAG.

Runs `snakemake --cores 2` on config.yaml in a fresh working directory (removed afterwards
unless --keep names one). Targets (with the machine tasks): <= 20 min, <= 4 GiB.

    python benchmarks/demo.py [--cores 2] [--config config.yaml] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from discover.plan import snakemake_command

ROOT = Path(__file__).resolve().parent.parent


def tree_rss_bytes(pid: int) -> int:
    """Sum of RSS of ``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as fh:
                rss[int(entry)] = int(fh.read().split()[1]) * page
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack.extend(children.get(p, []))
    return total


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (not its children), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rule_seconds(benchmarks: Path) -> dict[str, tuple[float, int]]:
    """Rule -> (sum of its jobs' wall seconds, job count), from Snakemake's benchmark files."""
    out: dict[str, tuple[float, int]] = {}
    for tsv in benchmarks.rglob("*.tsv"):
        rule = tsv.relative_to(benchmarks).parts[0]
        seconds = float(tsv.read_text().splitlines()[1].split("\t")[0])
        total, n = out.get(rule, (0.0, 0))
        out[rule] = (total + seconds, n + 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument("--keep", help="an empty or new directory to run in and keep")
    args = ap.parse_args()
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        if any(Path(args.keep).iterdir()):
            ap.error(f"--keep {args.keep}: not empty (the demo's first run is what is timed)")
    context = contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory()
    with context as tmp:
        shutil.copy(args.config, Path(tmp) / "config.yaml")
        cmd = snakemake_command(
            Path(tmp) / "config.yaml", "--quiet", "all", workdir=tmp, cores=args.cores
        )
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peak, own_cpu = 0, 0.0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak, own_cpu
            while not done.is_set():
                peak = max(peak, tree_rss_bytes(proc.pid))
                own_cpu = max(own_cpu, process_cpu_seconds(proc.pid))
                time.sleep(0.25)

        sampler = threading.Thread(target=sample)
        sampler.start()
        _, err = proc.communicate()
        done.set()
        sampler.join()
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            print(err[-3000:], file=sys.stderr)
            return 1
        job_seconds = rule_seconds(Path(tmp) / "results" / "benchmarks")
    gib = peak / 2**30
    print(
        f"demo DAG: {elapsed / 60:.2f} min (target <= 20)   peak RSS of the process tree: "
        f"{gib:.2f} GiB (target <= 4)"
    )
    total = sum(s for s, _ in job_seconds.values())
    print(
        f"job wall seconds (the rules' benchmark files): {total:.0f} in "
        f"{sum(n for _, n in job_seconds.values())} jobs; Snakemake's own CPU: {own_cpu:.0f} s"
    )
    for rule, (seconds, n) in sorted(job_seconds.items(), key=lambda kv: -kv[1][0]):
        print(f"  {rule:24s} {n:4d} jobs {seconds:8.1f} s")
    return 0 if elapsed <= 1200 and gib <= 4 else 2


if __name__ == "__main__":
    sys.exit(main())
