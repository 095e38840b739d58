"""Running this repository's workflow from Python (tests, benchmarks, the CLI)."""

from __future__ import annotations

import sys
from pathlib import Path

SNAKEFILE = Path(__file__).resolve().parents[2] / "Snakefile"


def snakemake_command(
    configfile: str | Path, *args: str, workdir: str | Path | None = None, cores: int | None = None
) -> list[str]:
    """argv running this repository's workflow on ``configfile`` with the current Python."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(SNAKEFILE),
        "--configfile",
        str(configfile),
    ]
    if workdir is not None:
        cmd += ["--directory", str(workdir)]
    if cores is not None:
        cmd += ["--cores", str(cores)]
    return cmd + list(args)
