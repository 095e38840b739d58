"""The ``static`` backend: a label list shipped in ``discover/labels/lists/`` or written by the
user, for runs that must not depend on a model (offline clusters, reproducible baselines)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from discover.errors import ConfigError
from discover.labels.base import LISTS_DIR, LabelGenerator, LabelResult, TaskRequest, dedupe
from discover.labels.registry import register_label_generator

log = logging.getLogger("discover.labels")


def resolve_list_path(ref: str | Path) -> Path:
    """A label file: as given (relative to the working directory), else a shipped list."""
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    if not path.is_absolute() and (LISTS_DIR / path).is_file():
        return LISTS_DIR / path
    shipped = sorted(p.name for p in LISTS_DIR.glob("*.txt"))
    raise ConfigError(
        f"label list {str(ref)!r} is neither a file (relative to {Path.cwd()}) nor a list "
        f"shipped in {LISTS_DIR} (shipped: {shipped})"
    )


def load_label_file(path: str | Path) -> list[str]:
    """Normalised, de-duplicated labels of a .txt (one per line, '#' comments), a .json list
    or a previous ``generate_labels`` output document."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"label list {path}: not valid JSON ({exc})") from exc
        if isinstance(value, Mapping):
            value = value.get("labels")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(
                f"label list {path}: expected a JSON list of strings or a document with a "
                "'labels' list"
            )
        return dedupe(value)
    return dedupe(line.split("#", 1)[0] for line in text.splitlines())


@register_label_generator("static")
class StaticLabels(LabelGenerator):
    """Reads ``path``; the model identity is the file name plus its content hash, so editing
    the list changes the cache key."""

    uses_prompt = False

    def __init__(self, cfg: Mapping[str, Any] | None = None):
        super().__init__(cfg)
        if not self.cfg.get("path"):
            raise ConfigError("config key semantics.labels.path: the static backend needs a path")
        self.path = resolve_list_path(self.cfg["path"])

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def model(self) -> str:
        return f"{self.path.name}@sha256:{self.digest[:16]}"

    def parameters(self) -> dict[str, Any]:
        return {"path": str(self.cfg["path"]), "resolved": str(self.path), "sha256": self.digest}

    def generate(self, request: TaskRequest) -> LabelResult:
        labels = load_label_file(self.path)
        if not labels:
            raise ConfigError(f"task {request.task!r}: label list {self.path} holds no labels")
        if len(labels) < request.min_labels:
            # A hand-written list is the user's explicit choice; say so, but use it.
            log.warning(
                "task %r: static list %s has %d labels, fewer than min_labels=%d",
                request.task,
                self.path,
                len(labels),
                request.min_labels,
            )
        return LabelResult(labels=labels, requests=0)
