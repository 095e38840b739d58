"""Grounder interface and what it returns (running one over a shard: ``grounding.shard``).

A grounder answers one question per image: which of the task's labels are in it, and where.
Boxes are COCO ``[x, y, w, h]`` in pixels of the image as given, whatever the backend.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from discover.errors import ConfigError, GroundingError, config_number

#: the Grounding DINO checkpoint of the ``grounding-dino`` backend unless configured
DEFAULT_MODEL = "IDEA-Research/grounding-dino-tiny"


def label_key(label: str) -> str:
    """The form labels are compared in: lower case, single spaces, no dots (Grounding DINO's
    prompt uses ``.`` to separate labels, so a dot inside a label would split it)."""
    return " ".join(str(label).lower().replace(".", " ").split())


@dataclass
class Detections:
    """Boxes found in one image: ``boxes[i]`` is ``[x, y, w, h]`` (pixels) of ``labels[i]``
    with confidence ``scores[i]``; all three lists have the same length."""

    boxes: list[list[float]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.boxes = [[float(v) for v in box] for box in self.boxes]
        self.labels = [str(label) for label in self.labels]
        self.scores = [float(s) for s in self.scores]
        if not len(self.boxes) == len(self.labels) == len(self.scores):
            raise GroundingError(
                f"detections of unequal length: {len(self.boxes)} boxes, "
                f"{len(self.labels)} labels, {len(self.scores)} scores"
            )
        if any(len(box) != 4 for box in self.boxes):
            raise GroundingError("every box must be [x, y, w, h]")

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def from_xyxy(
        cls,
        boxes: Iterable[Sequence[float]],
        labels: Iterable[str],
        scores: Iterable[float],
        image_size: tuple[int, int] | None = None,
    ) -> Detections:
        """Detections from corner boxes ``[x0, y0, x1, y1]``; with ``image_size`` (H, W) the
        boxes are clipped to the image and those left without area are dropped."""
        out = cls()
        for (x0, y0, x1, y1), label, score in zip(boxes, labels, scores, strict=True):
            x0, y0, x1, y1 = float(x0), float(y0), float(x1), float(y1)
            if image_size is not None:
                height, width = image_size
                x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
                y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
                if x1 <= x0 or y1 <= y0:
                    continue
            out.boxes.append([x0, y0, x1 - x0, y1 - y0])
            out.labels.append(str(label))
            out.scores.append(float(score))
        return out

    def xyxy(self) -> np.ndarray:
        """(N, 4) float64 corner boxes."""
        arr = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        return np.concatenate([arr[:, :2], arr[:, :2] + arr[:, 2:]], axis=1)

    def select(self, indices: Iterable[int]) -> Detections:
        idx = [int(i) for i in indices]
        return Detections(
            [self.boxes[i] for i in idx],
            [self.labels[i] for i in idx],
            [self.scores[i] for i in idx],
        )


def check_image(image: np.ndarray) -> np.ndarray:
    """``image`` as an HxWx3 uint8 array, or GroundingError saying what it is instead."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or 0 in arr.shape[:2]:
        raise GroundingError(
            f"a grounder takes an HxWx3 uint8 RGB image, got {arr.dtype} of shape {arr.shape}"
        )
    return arr


class Grounder:
    """Base class of grounding backends.

    Subclasses set ``defaults`` (every config key they accept, with its default) and implement
    :meth:`ground`. ``cfg`` is the backend's own sub-section of ``semantics.grounding``.
    """

    name: str = ""
    defaults: Mapping[str, Any] = {}

    def __init__(
        self,
        cfg: Mapping[str, Any] | None = None,
        *,
        weights_cache: str | os.PathLike | None = None,
    ):
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - set(self.defaults))
        if unknown:
            raise ConfigError(
                f"unknown config key semantics.grounding.{self.name}.{unknown[0]} "
                f"(known: {sorted(self.defaults)})"
            )
        self.cfg = {**self.defaults, **cfg}
        self.weights_cache = weights_cache

    def _number(self, key: str, low: float = -math.inf, high: float = math.inf) -> float:
        return config_number(self.cfg[key], f"semantics.grounding.{self.name}.{key}", low, high)

    def ground(
        self,
        image: np.ndarray,
        labels: Sequence[str] | None,
        *,
        annotations: Sequence[Mapping[str, Any]] | None = None,
        categories: Sequence[Mapping[str, Any]] | Mapping[int, str] | None = None,
    ) -> Detections:
        """Boxes of the ``labels`` present in ``image`` (HxWx3 uint8 RGB).

        ``annotations`` (the image's COCO annotations) and ``categories`` (COCO category dicts
        or an id -> name mapping) are per-image context that only some backends use.
        """
        raise NotImplementedError

    def provenance(self) -> dict[str, Any]:
        """What produced the boxes: backend name and its full configuration."""
        return {"backend": self.name, **{k: _jsonable(v) for k, v in self.cfg.items()}}


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)
