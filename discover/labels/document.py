"""The task-labels file: the output document of ``generate_labels``, written and read as JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from discover.errors import LabelGenerationError
from discover.io import write_text_atomic

FORMAT = "discover-task-labels/1"


def write_labels(path: str | Path, doc: Mapping[str, Any]) -> None:
    """Write an output document atomically (a killed job leaves the old file or the new one)."""
    _check_doc(doc, path)
    write_text_atomic(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def read_labels(path: str | Path) -> dict[str, Any]:
    """Read an output document written by ``write_labels``; its ``labels`` is a list of str."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LabelGenerationError(f"cannot read task labels {path}: {exc}") from exc
    except ValueError as exc:
        raise LabelGenerationError(f"task labels {path} are not valid JSON: {exc}") from exc
    _check_doc(doc, path)
    return doc


def _check_doc(doc: Any, path: str | Path) -> None:
    labels = doc.get("labels") if isinstance(doc, Mapping) else None
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise LabelGenerationError(f"task labels {path}: expected a document with a labels list")
