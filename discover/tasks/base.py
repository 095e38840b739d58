"""What every machine-vision task shares: the input protocol, the task interface, and the
per-image prediction files from which metrics can be recomputed without rerunning a model.

A task = a model backend (``discover.tasks.models``) + an input protocol (resize/crop) + an
evaluator (``discover.tasks.evaluation``). ``predict`` takes ``(image_id, HxWx3 uint8)`` pairs
and returns per-image predictions in the coordinates of the images as given; ``evaluate``
scores them against the dataset's annotations or labels.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from discover.errors import ConfigError, TaskError, config_number
from discover.io import write_text_atomic

# Predictions: a COCO results list for detection and instance segmentation (``image_id``,
# ``category_id``, ``bbox`` [x, y, w, h], ``score``, and ``segmentation`` as RLE), one
# ``{"image_id", "topk", "scores"}`` record per image for classification.
Predictions = list[dict[str, Any]]

TOPK = 5  # classification keeps the five best classes per image (top-1 and top-5 accuracy)


# -- input protocol ------------------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    """How a processed image relates to the original: ``processed = original * scale - offset``
    (per axis), so ``original = (processed + offset) / scale``."""

    height: int
    width: int
    scale_y: float = 1.0
    scale_x: float = 1.0
    offset_y: float = 0.0
    offset_x: float = 0.0
    resized_height: int = 0  # size after resizing, before cropping (0: not resized)
    resized_width: int = 0

    @property
    def identity(self) -> bool:
        return (self.scale_y, self.scale_x, self.offset_y, self.offset_x) == (1.0, 1.0, 0.0, 0.0)

    def boxes_to_original(self, xyxy: np.ndarray) -> np.ndarray:
        """Corner boxes of the processed image in original pixels, clipped to the image."""
        out = np.asarray(xyxy, np.float64).reshape(-1, 4).copy()
        out[:, 0::2] = (out[:, 0::2] + self.offset_x) / self.scale_x
        out[:, 1::2] = (out[:, 1::2] + self.offset_y) / self.scale_y
        out[:, 0::2] = out[:, 0::2].clip(0, self.width)
        out[:, 1::2] = out[:, 1::2].clip(0, self.height)
        return out


PRESETS: dict[str, dict[str, Any]] = {
    # torchvision's ImageNet evaluation: shorter side to 256, then the central 224 x 224
    "imagenet-val": {"resize": 256, "crop": 224},
    # COCO evaluation feeds images as they are (the detector's own transform resizes)
    "coco-val": {"resize": None, "crop": None},
}


def _size_pair(value: Any, key: str) -> tuple[int, int] | int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"config key {key} must be a size, got {value!r}")
    if isinstance(value, int) and value > 0:
        return value
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        return int(value[0]), int(value[1])
    raise ConfigError(f"config key {key} must be a positive int or [height, width], got {value!r}")


@dataclass(frozen=True)
class InputProtocol:
    """Resize, then center-crop, before the model sees an image.

    ``resize``: an int resizes the shorter side to it (aspect kept); ``[h, w]`` resizes to
    exactly that size. ``crop``: an int or ``[h, w]`` central crop. None skips the step.
    """

    resize: int | tuple[int, int] | None = None
    crop: int | tuple[int, int] | None = None
    name: str = ""

    @classmethod
    def from_config(cls, value: Any, where: str = "protocol") -> InputProtocol:
        """A preset name (``imagenet-val``, ``coco-val``) or ``{resize, crop}``."""
        if isinstance(value, InputProtocol):
            return value
        if value is None:
            return cls(name="coco-val")
        if isinstance(value, str):
            if value not in PRESETS:
                raise ConfigError(
                    f"config key {where}: unknown protocol {value!r} (presets: {sorted(PRESETS)})"
                )
            return cls.from_config({**PRESETS[value], "name": value}, where)
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key {where} must be a preset name or {{resize, crop}}")
        unknown = sorted(set(value) - {"resize", "crop", "name"})
        if unknown:
            raise ConfigError(f"unknown config key {where}.{unknown[0]} (known: crop, resize)")
        return cls(
            resize=_size_pair(value.get("resize"), f"{where}.resize"),
            crop=_size_pair(value.get("crop"), f"{where}.crop"),
            name=str(value.get("name", "")),
        )

    def to_config(self) -> dict[str, Any]:
        """The JSON form (what :meth:`from_config` reads back)."""
        as_list = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
        return {"resize": as_list(self.resize), "crop": as_list(self.crop)}

    def apply(self, image: np.ndarray) -> tuple[np.ndarray, Geometry]:
        """The processed image and how to map its coordinates back to ``image``'s."""
        h, w = image.shape[:2]
        out, rh, rw = image, h, w
        if self.resize is not None:
            if isinstance(self.resize, int):
                # torchvision's Resize(int): the shorter side exactly, the longer truncated
                if w <= h:
                    rh, rw = int(self.resize * h / w), self.resize
                else:
                    rh, rw = self.resize, int(self.resize * w / h)
            else:
                rh, rw = self.resize
            if (rh, rw) != (h, w):
                out = np.asarray(Image.fromarray(image).resize((rw, rh), Image.Resampling.BILINEAR))
        sy, sx = rh / h, rw / w
        oy = ox = 0
        if self.crop is not None:
            ch, cw = (self.crop, self.crop) if isinstance(self.crop, int) else self.crop
            if ch > rh or cw > rw:
                raise TaskError(
                    f"protocol crop {ch}x{cw} is larger than the resized image {rh}x{rw}"
                )
            # torchvision's CenterCrop rounds the offset to the nearest pixel
            oy, ox = int(round((rh - ch) / 2.0)), int(round((rw - cw) / 2.0))
            out = out[oy : oy + ch, ox : ox + cw]
        return np.ascontiguousarray(out), Geometry(h, w, sy, sx, oy, ox, rh, rw)


# -- task interface ------------------------------------------------------------------------


class Task:
    """Base class of machine-vision tasks.

    Subclasses set ``defaults`` (their config keys and defaults), ``metrics`` (the names
    :meth:`evaluate` returns, the first being the one tables plot) and implement
    :meth:`predict` and :meth:`evaluate`. ``cfg`` is the task's section of the config
    (``tasks.<name>``); the model comes in ready (:func:`discover.tasks.registry.get_task`).
    """

    name: str = ""  # registered type (detection, instance_segmentation, classification)
    metrics: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = {}
    default_protocol = "coco-val"
    # keys of tasks.<name> that other stages read (semantics: labels for DISCOVER's masks)
    shared_keys = ("type", "description", "labels")

    @classmethod
    def checked_config(cls, cfg: Mapping[str, Any] | None, task_name: str) -> dict[str, Any]:
        """``tasks.<task_name>`` checked against this task's keys, defaults filled in."""
        cfg = dict(cfg or {})
        known = {*cls.defaults, *cls.shared_keys}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ConfigError(
                f"unknown config key tasks.{task_name}.{unknown[0]} (known: {sorted(known)})"
            )
        return {**cls.defaults, **cfg}

    def __init__(
        self, cfg: Mapping[str, Any] | None = None, *, model: Any, task_name: str | None = None
    ):
        """``model``: the loaded task model (:func:`discover.tasks.get_task` loads it from
        ``cfg["weights"]``; a trainer passes the model it trains)."""
        self.task_name = task_name or self.name
        self.cfg = self.checked_config(cfg, self.task_name)
        self.batch_size = self._int("batch_size", 1)
        self.device = str(self.cfg.get("device", "cpu"))
        self.model = model
        protocol = self.cfg.get("protocol")
        if protocol is None:  # the model's own (trained classifiers record theirs)
            protocol = getattr(model, "protocol", None) or self.default_protocol
        self.protocol = InputProtocol.from_config(protocol, f"tasks.{self.task_name}.protocol")

    def _int(self, key: str, low: int) -> int:
        value = self.cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(
                f"config key tasks.{self.task_name}.{key} must be an integer >= {low}, "
                f"got {value!r}"
            )
        return value

    def _number(self, key: str, low: float = -math.inf, high: float = math.inf) -> float:
        return config_number(self.cfg[key], f"tasks.{self.task_name}.{key}", low, high)

    def predict(
        self,
        images: Iterable[tuple[int | str, np.ndarray]],
        categories: Sequence[Mapping[str, Any]] | None = None,
    ) -> Predictions:
        """Per-image predictions for ``(image_id, HxWx3 uint8 RGB)`` pairs; ``categories``
        (the dataset's COCO categories) maps the model's classes to dataset ids by name."""
        raise NotImplementedError

    def evaluate(
        self,
        predictions: Predictions,
        annotations: Mapping[str, Any] | str | os.PathLike,
        image_ids: Iterable[int | str] | None = None,
    ) -> dict[str, float | None]:
        """Metrics of ``predictions`` against the dataset's COCO annotations (classification
        also takes an image id -> label mapping); ``image_ids``: the images that were fed
        (default: every image of the annotations)."""
        raise NotImplementedError

    def provenance(self) -> dict[str, Any]:
        """What made the predictions: task type, weights, protocol (goes into result files)."""
        return {
            "task": self.task_name,
            "type": self.name,
            "weights": self.cfg.get("weights"),
            "architecture": getattr(self.model, "architecture", ""),
            "protocol": self.protocol.to_config(),
            "evaluator": self.cfg.get("evaluator"),
        }


def image_id(value: int | str) -> int:
    """COCO image ids are integers; ``"12"`` and ``12`` are the same image."""
    if isinstance(value, bool):
        raise TaskError(f"image id {value!r} is not an integer")
    if isinstance(value, int | np.integer):
        return int(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    raise TaskError(f"image id {value!r} is not an integer (COCO image ids are)")


def batched(
    images: Iterable[tuple[int | str, np.ndarray]], size: int
) -> Iterator[list[tuple[int, np.ndarray]]]:
    """Groups of at most ``size`` ``(image_id, RGB array)`` pairs, ids as ints and images
    checked (the error names the image)."""
    group: list[tuple[int, np.ndarray]] = []
    for raw_id, image in images:
        iid = image_id(raw_id)
        arr = np.asarray(image)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise TaskError(
                f"image {iid}: expected an HxWx3 uint8 RGB array, got {arr.dtype} {arr.shape}"
            )
        group.append((iid, arr))
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


# -- prediction files ----------------------------------------------------------------------


def save_predictions(path: str | os.PathLike, predictions: Predictions) -> None:
    """Write per-image predictions as JSON, atomically: a COCO results list for detection and
    segmentation (any COCO tool reads it), top-k records for classification."""
    if not isinstance(predictions, list):
        raise TaskError(f"predictions for {path} must be a list, got {type(predictions).__name__}")
    # one record per line: diffable, and large files stay easy to inspect
    body = ",\n".join(json.dumps(p, separators=(",", ":")) for p in predictions)
    write_text_atomic(path, f"[\n{body}\n]\n" if predictions else "[]\n")


def load_predictions(path: str | os.PathLike) -> Predictions:
    """Predictions written by :func:`save_predictions` (or any COCO results JSON)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TaskError(f"cannot read predictions {path}: {exc}") from exc
    if not isinstance(data, list) or not all(isinstance(p, Mapping) for p in data):
        raise TaskError(f"predictions {path}: expected a JSON list of records")
    missing = [i for i, p in enumerate(data) if "image_id" not in p]
    if missing:
        raise TaskError(f"predictions {path}: record {missing[0]} has no image_id")
    return data
