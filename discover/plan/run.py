"""Running this repository's workflow from Python (tests, benchmarks, the CLI)."""

from __future__ import annotations

import os
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


#: a sitecustomize that makes importing the modules named in $DISCOVER_FORBID_IMPORTS fail
_FORBID = """
import os
import sys

_names = tuple(os.environ.get("DISCOVER_FORBID_IMPORTS", "").split(","))


class _Forbid:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _names:
            raise ImportError(f"{name} imported where it must not be (DISCOVER_FORBID_IMPORTS)")
        return None


sys.meta_path.insert(0, _Forbid())
"""


def forbidding_imports(scratch: str | Path, *modules: str, env: dict | None = None) -> dict:
    """An environment for a subprocess in which importing any of ``modules`` (top-level names,
    e.g. "torch") raises ImportError: a sitecustomize written to ``scratch`` goes first on
    PYTHONPATH. Checks that planning a run never imports torch."""
    scratch = Path(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "sitecustomize.py").write_text(_FORBID)
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(scratch), env.get("PYTHONPATH")]))
    env["DISCOVER_FORBID_IMPORTS"] = ",".join(modules)
    return env
