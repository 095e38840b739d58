"""Small task models the pipeline trains on the embedded data: a Faster R-CNN and a Mask R-CNN
with a few-conv backbone from scratch, and a small ResNet classifying whole images.

Training uses the synthetic-scenes train split (disjoint from every val split), validation
the val split of the same seed (``SceneGenerator(seed, "val", ...)``, the DAG's images by
default) scored by the task's own evaluator (pycocotools). The outputs are a state dict and
its JSON sidecar, which ``discover.tasks`` loads like any checkpoint (``architecture``,
``num_classes``, ``categories``, ``kwargs``, plus ``spec``, ``seed``, ``command``,
``val_metrics``, ``sha256``), and a loss CSV. Load with the sidecar next to the state dict
(``x.pt`` + ``x.json``).

Spec (one entry of ``task_training``)::

    kind: detection | instance_segmentation | classification
    architecture: custom-small | custom-small-mask | mini-resnet
    steps: 1500
    batch_size: 4
    lr: 0.001                     # AdamW, linear warm-up then cosine decay
    num_images: 400               # rendered train scenes (augmented by flips/transposes)
    val_images: 100
    scenes: {min_size: 256, max_size: 512, min_objects: 2, max_objects: 6}
    kwargs: {...}                 # the architecture's (e.g. min_size, anchor_sizes, widths)
    input_size: 128               # classification: images squashed to input_size^2
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from discover.errors import ConfigError
from discover.io import atomic_path, write_text_atomic
from discover.training.common import write_losses
from discover.weights import sha256

log = logging.getLogger("discover.training")

KINDS = {
    "detection": "custom-small",
    "instance_segmentation": "custom-small-mask",
    "classification": "mini-resnet",
}
SCENES = {"min_size": 256, "max_size": 512, "min_objects": 2, "max_objects": 6}
SPEC_KEYS = {
    "kind",
    "architecture",
    "steps",
    "batch_size",
    "lr",
    "weight_decay",
    "warmup",
    "num_images",
    "val_images",
    "scenes",
    "kwargs",
    "input_size",
    "log_every",
}


# -- data ------------------------------------------------------------------------------------


def render_scenes(
    seed: int, split: str, num_images: int, scenes: Mapping[str, int] | None = None
) -> list[tuple[np.ndarray, list[dict]]]:
    """``num_images`` synthetic scenes of ``split`` (image, visible instances)."""
    from discover.datasets.synthetic_scenes import SceneGenerator

    s = {**SCENES, **(scenes or {})}
    gen = SceneGenerator(
        seed, split, s["min_size"], s["max_size"], s["min_objects"], s["max_objects"]
    )
    return [gen.render(i) for i in range(num_images)]


def val_split(
    seed: int, num_images: int, scenes: Mapping[str, int] | None = None
) -> tuple[list[tuple[int, np.ndarray]], dict]:
    """The val images as ``(image_id, RGB)`` and their COCO annotations, exactly as the
    synthetic-scenes dataset writes them for the DAG."""
    from discover.datasets.synthetic_scenes import SyntheticScenes

    s = {**SCENES, **(scenes or {})}
    dataset = SyntheticScenes("val", {"split": "val", "num_images": num_images, **s}, seed=seed)
    items = dataset.list_items()
    gt = dataset.annotations(items, {})
    images = [
        (img["id"], dataset.load(item)) for img, item in zip(gt["images"], items, strict=True)
    ]
    return images, gt


def _dihedral(arr: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/transposes of the leading two axes (the scenes' categories do not
    change under them: every shape is drawn at a random angle)."""
    if k & 4:
        arr = arr.swapaxes(0, 1)
    if k & 1:
        arr = arr[:, ::-1]
    if k & 2:
        arr = arr[::-1]
    return arr


def _detection_example(
    image: np.ndarray, instances: list[dict], k: int, with_masks: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    img = np.ascontiguousarray(_dihedral(image, k))
    masks = [np.ascontiguousarray(_dihedral(inst["mask"], k)) for inst in instances]
    boxes = []
    for mask in masks:
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        # COCO's box of a mask: from the first pixel to one past the last
        boxes.append([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
    target = {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor([inst["category"] + 1 for inst in instances], dtype=torch.int64),
    }
    if with_masks:
        target["masks"] = torch.from_numpy(np.stack(masks).astype(np.uint8)).reshape(
            -1, *img.shape[:2]
        )
    return torch.from_numpy(img).permute(2, 0, 1).float() / 255.0, target


def largest_category(instances: list[dict]) -> int:
    """synthetic-scenes' image label: the category of the largest visible object."""
    return max(instances, key=lambda d: d["mask"].sum())["category"] if instances else 0


# -- training --------------------------------------------------------------------------------


def _schedule(opt: torch.optim.Optimizer, steps: int, warmup: int) -> Any:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def check_spec(kind: str, spec: Mapping[str, Any]) -> None:
    """An unknown kind or spec key fails before any training, naming it."""
    if kind not in KINDS:
        raise ConfigError(f"unknown task model kind {kind!r} (known: {sorted(KINDS)})")
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ConfigError(f"unknown task_training key {unknown[0]!r} (known: {sorted(SPEC_KEYS)})")


def train_task_model(
    kind: str,
    out_path: str | Path,
    meta_path: str | Path,
    spec: Mapping[str, Any],
    seed: int = 0,
    steps: int | None = None,
    log_csv: str | Path | None = None,
    command: str = "",
) -> dict:
    """Train the ``kind`` task model of ``spec`` on synthetic-scenes (train split), score it
    on the val split, and write the state dict, its sidecar (with the val metrics, spec,
    seed, command and sha256) and the loss CSV, each atomically. Returns the sidecar."""
    from discover.datasets.synthetic_scenes import CATEGORIES
    from discover.tasks.models import build_task_model

    check_spec(kind, spec)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    steps = int(steps if steps is not None else spec["steps"])
    architecture = str(spec.get("architecture", KINDS[kind]))
    kwargs = dict(spec.get("kwargs") or {})
    t0 = time.perf_counter()
    if kind == "classification":
        size = int(spec.get("input_size", 128))
        protocol = {"resize": [size, size], "crop": None}
        model = build_task_model(kind, architecture, CATEGORIES, protocol=protocol, **kwargs)
        rows = _train_classifier(model, spec, rng, steps, t0, seed)
    else:
        categories = ["__background__", *CATEGORIES]
        model = build_task_model(kind, architecture, categories, **kwargs)
        rows = _train_detector(model, kind, spec, rng, steps, t0, seed)
    train_seconds = time.perf_counter() - t0
    metrics, val_images = evaluate_on_val(kind, model, seed, spec)
    log.info("%s val metrics %s", kind, metrics)
    with atomic_path(out_path) as tmp:
        torch.save(model.model.state_dict(), tmp)
    meta = {
        "architecture": architecture,
        "num_classes": model.num_classes,
        "categories": (
            {str(k): v for k, v in sorted(model.categories.items())}
            if isinstance(model.categories, Mapping)
            else list(model.categories)
        ),
        "kwargs": kwargs,
        **({"protocol": model.protocol} if kind == "classification" else {}),
        "kind": kind,
        "spec": dict(spec),
        "seed": seed,
        "steps": steps,
        "command": command,
        "val_metrics": metrics,
        "val_images": val_images,
        "final_loss": rows[-1]["loss"] if rows else None,
        "train_seconds": round(train_seconds, 1),
        "sha256": sha256(out_path),
    }
    write_text_atomic(meta_path, json.dumps(meta, indent=1) + "\n")
    write_losses(log_csv, rows)
    return meta


def evaluate_on_val(
    kind: str, model: Any, seed: int, spec: Mapping[str, Any]
) -> tuple[dict[str, float | None], int]:
    """The task's metrics of ``model`` on the first ``val_images`` val scenes."""
    from discover.tasks import get_task

    images, gt = val_split(seed, int(spec.get("val_images", 100)), spec.get("scenes"))
    config = {"tasks": {kind: {"type": kind, "batch_size": 4}}}
    task = get_task(kind, config, model=model)
    predictions = task.predict(images, categories=gt["categories"])
    return task.evaluate(predictions, gt), len(images)


def _log_row(rows: list[dict], step: int, steps: int, every: int, losses: dict, t0: float):
    if step % every and step != steps:
        return
    row = {"step": step, **{k: round(float(v), 5) for k, v in losses.items()}}
    row["seconds"] = round(time.perf_counter() - t0, 1)
    rows.append(row)
    log.info("step %d/%d loss %.4f (%.0f s)", step, steps, row["loss"], row["seconds"])


def _train_detector(
    detector: Any,
    kind: str,
    spec: Mapping[str, Any],
    rng: np.random.Generator,
    steps: int,
    t0: float,
    seed: int,
) -> list[dict]:
    pool = render_scenes(seed, "train", int(spec.get("num_images", 400)), spec.get("scenes"))
    pool = [(image, inst) for image, inst in pool if inst]  # nothing to learn from empty scenes
    log.info("%s: %d train scenes rendered in %.0f s", kind, len(pool), time.perf_counter() - t0)
    model = detector.model
    model.train()
    batch_size = int(spec.get("batch_size", 4))
    lr = float(spec.get("lr", 1e-3))
    opt = torch.optim.AdamW(
        model.parameters(), lr=lr, weight_decay=float(spec.get("weight_decay", 1e-4))
    )
    sched = _schedule(opt, steps, int(spec.get("warmup", min(200, steps // 10 + 1))))
    every = int(spec.get("log_every", max(1, min(50, steps // 20))))
    rows: list[dict] = []
    with_masks = kind == "instance_segmentation"
    for step in range(1, steps + 1):
        picks = rng.integers(0, len(pool), batch_size)
        flips = rng.integers(0, 8, batch_size)
        examples = [
            _detection_example(*pool[i], int(k), with_masks)
            for i, k in zip(picks, flips, strict=True)
        ]
        losses = model([x for x, _ in examples], [t for _, t in examples])
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
        _log_row(rows, step, steps, every, {"loss": loss.detach(), **losses}, t0)
    model.eval()
    return rows


def _train_classifier(
    classifier: Any,
    spec: Mapping[str, Any],
    rng: np.random.Generator,
    steps: int,
    t0: float,
    seed: int,
) -> list[dict]:
    from discover.tasks.base import InputProtocol
    from discover.training.classifier import normalise

    protocol = InputProtocol.from_config(classifier.protocol)
    pool = render_scenes(seed, "train", int(spec.get("num_images", 2000)), spec.get("scenes"))
    # the task's own protocol makes the inputs, so training sees what evaluation feeds
    x_train = torch.from_numpy(np.stack([protocol.apply(image)[0] for image, _ in pool]))
    y_train = torch.tensor([largest_category(inst) for _, inst in pool])
    del pool
    log.info("classification: %d train scenes in %.0f s", len(y_train), time.perf_counter() - t0)
    model = classifier.model
    batch_size = int(spec.get("batch_size", 32))
    lr = float(spec.get("lr", 3e-3))
    opt = torch.optim.AdamW(
        model.parameters(), lr=lr, weight_decay=float(spec.get("weight_decay", 1e-4))
    )
    sched = _schedule(opt, steps, int(spec.get("warmup", min(200, steps // 10 + 1))))
    every = int(spec.get("log_every", max(1, min(50, steps // 20))))
    rows: list[dict] = []
    model.train()
    for step in range(1, steps + 1):
        idx = torch.from_numpy(rng.integers(0, len(y_train), batch_size))
        x = x_train[idx].permute(0, 3, 1, 2).float() / 255.0
        k = int(rng.integers(0, 8))  # one flip/transpose per batch (inputs are square)
        x = x.transpose(2, 3) if k & 4 else x
        x = x.flip(3) if k & 1 else x
        x = x.flip(2) if k & 2 else x
        loss = F.cross_entropy(model(normalise(x)), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        _log_row(rows, step, steps, every, {"loss": loss.detach()}, t0)
    model.eval()
    return rows
