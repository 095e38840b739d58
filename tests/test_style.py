"""House style: ruff for Python, snakefmt for the workflow files."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .conftest import ROOT


def _tool(name: str) -> str:
    exe = shutil.which(name, path=str(ROOT / ".venv" / "bin")) or shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return exe


def test_ruff_clean():
    proc = subprocess.run(
        [_tool("ruff"), "check", "discover", "tests", "workflow_scripts", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakefmt_clean():
    proc = subprocess.run(
        [_tool("snakefmt"), "--check", "Snakefile", "rules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_scripts_are_thin():
    # Rules call discover.*; the scripts only unpack the snakemake object.
    for script in (ROOT / "workflow_scripts").glob("*.py"):
        code = [ln for ln in script.read_text().splitlines() if ln.strip()]
        assert len(code) <= 20, f"{script.name} holds logic that belongs in discover/"
