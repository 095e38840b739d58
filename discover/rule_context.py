"""Start-up shared by the rule scripts in workflow_scripts/: logging and thread limits."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback


@contextlib.contextmanager
def rule_context(smk):
    """Route logging to ``smk.log[0]``, set thread limits, and log any failure before re-raising."""
    threads = str(getattr(smk, "threads", 1))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = threads
    if "torch" in sys.modules:  # imported before us: the env vars came too late
        sys.modules["torch"].set_num_threads(int(threads))
    log_path = smk.log[0] if len(smk.log) else None
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        handlers=handlers,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        yield
    except Exception as exc:
        logging.getLogger("discover").error("%s: %s", type(exc).__name__, exc)
        if log_path:
            with open(log_path, "a") as fh:
                traceback.print_exc(file=fh)
        raise
