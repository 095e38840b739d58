"""House style: ruff for Python, snakefmt and ``snakemake --lint`` for the workflow files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT


def _tool(name: str) -> str:
    """The console script installed next to this interpreter (the test extra), else on PATH."""
    exe = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return exe


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def test_ruff_clean():
    proc = _run(_tool("ruff"), "check", "discover", "tests", "workflow_scripts", "benchmarks")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakefmt_clean():
    proc = _run(_tool("snakefmt"), "--check", "Snakefile", "rules")
    assert proc.returncode == 0, proc.stdout + proc.stderr


# The embedded default (config.yaml via the Snakefile) and the same file given explicitly,
# which replaces the embedded one instead of merging into it. --lint exits 1 on any finding.
@pytest.mark.parametrize("args", [(), ("--configfile", "config.yaml")], ids=["embedded", "given"])
def test_snakemake_lint_clean(args):
    proc = _run(sys.executable, "-m", "snakemake", "--lint", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_scripts_are_thin():
    # Rules call discover.*; the scripts only unpack the snakemake object.
    for script in (ROOT / "workflow_scripts").glob("*.py"):
        code = [ln for ln in script.read_text().splitlines() if ln.strip()]
        assert len(code) <= 20, f"{script.name} holds logic that belongs in discover/"
