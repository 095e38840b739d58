"""Small task models the pipeline trains on the embedded data: a Faster R-CNN and a Mask R-CNN
with a few-conv backbone from scratch, and a small ResNet classifying whole images.

Training uses the synthetic-scenes train split (disjoint from every val split), validation
the val split of the same seed (``SceneGenerator(seed, "val", ...)``, the DAG's images by
default) scored by the task's own evaluator (pycocotools). The outputs are a state dict and
its JSON sidecar, which ``discover.tasks`` loads like any checkpoint (``architecture``,
``num_classes``, ``categories``, ``kwargs``, plus ``spec``, ``seed``, ``command``,
``val_metrics``, ``sha256``), and a loss CSV. Load with the sidecar next to the state dict
(``x.pt`` + ``x.json``).

Spec (one entry of ``task_training``; defaults in brackets, detectors / classifier)::

    kind: detection | instance_segmentation | classification
    architecture: custom-small | custom-small-mask | mini-resnet   [by kind]
    steps: 2000                   # required
    batch_size: 4                 # [4 / 32]
    lr: 0.002                     # AdamW [0.001 / 0.003], linear warm-up then cosine decay
    weight_decay: 0.0001
    warmup: 200                   # [min(200, steps / 10)]
    num_images: 300               # rendered train scenes, augmented by the 8 flips/transposes
                                  # [400 / 2000]
    val_images: 100
    scenes: {min_size: 256, max_size: 512, min_objects: 2, max_objects: 6}   # train and val
    train_scenes: {}              # overrides of ``scenes`` for the train split only
    kwargs: {...}                 # the architecture's (min_size, anchor_sizes, widths, ...)
    input_size: 128               # classification: images squashed to input_size^2 (the
                                  # protocol recorded in the sidecar, so tasks feed the same)
    init: scenes-detector         # start from another task_training detector (Mask R-CNN
                                  #   from Faster R-CNN: only the mask head is new)
    pretrain_steps: 400           # [0] > 0: stage 0 on object crops of the same scenes (no
    pretrain_crop: 64             #   outside data), squashed to this size,
    pretrain_batch_size: 64       #   batches of this many,
    pretrain_lr: 0.003            #   at this learning rate
    eval_every: 0                 # > 0: the val metric of the first 50 val images every
                                  # that many steps, in the loss CSV (learning curves)
    log_every: 50
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from discover.checkpoints import fitting_state_dict
from discover.datasets.synthetic_scenes import (
    CATEGORIES,
    OBJECT_SCALE,
    SceneGenerator,
    SyntheticScenes,
    object_crop,
)
from discover.errors import ConfigError
from discover.io import write_text_atomic
from discover.tasks import get_task
from discover.tasks.base import InputProtocol
from discover.tasks.mini_resnet import normalise
from discover.tasks.models import build_task_model
from discover.training.common import save_state, write_losses
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
    "train_scenes",
    "input_size",
    "log_every",
    "eval_every",
    "pretrain_steps",
    "pretrain_crop",
    "pretrain_lr",
    "pretrain_batch_size",
    "init",
}


# -- data ------------------------------------------------------------------------------------


def render_scenes(
    seed: int, split: str, num_images: int, scenes: Mapping[str, int] | None = None
) -> list[tuple[np.ndarray, list[dict]]]:
    """``num_images`` synthetic scenes of ``split`` (image, visible instances)."""
    s = {**SCENES, **(scenes or {})}
    gen = SceneGenerator(
        seed,
        split,
        s["min_size"],
        s["max_size"],
        s["min_objects"],
        s["max_objects"],
        tuple(s.get("object_scale", OBJECT_SCALE)),
    )
    return [gen.render(i) for i in range(num_images)]


def val_split(
    seed: int, num_images: int, scenes: Mapping[str, int] | None = None
) -> tuple[list[tuple[int, np.ndarray]], dict]:
    """The val images as ``(image_id, RGB)`` and their COCO annotations, exactly as the
    synthetic-scenes dataset writes them for the DAG."""
    s = {**SCENES, **(scenes or {})}
    dataset = SyntheticScenes("val", {"split": "val", "num_images": num_images, **s}, seed=seed)
    items = dataset.list_items()
    gt = dataset.annotations(items, {})
    images = [
        (img["id"], dataset.load(item)) for img, item in zip(gt["images"], items, strict=True)
    ]
    return images, gt


def _train_scenes(spec: Mapping[str, Any]) -> dict[str, int]:
    # smaller train scenes render several times faster (their textures are finer in the
    # model's input than the val scenes' though)
    return {**SCENES, **(spec.get("scenes") or {}), **(spec.get("train_scenes") or {})}


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
    init_path: str | Path | None = None,
) -> dict:
    """Train the ``kind`` task model of ``spec`` on synthetic-scenes (train split), score it
    on the val split, and write the state dict, its sidecar (with the val metrics, spec,
    seed, command and sha256) and the loss CSV, each atomically. Returns the sidecar.

    ``init_path``: a detector checkpoint to start from (spec ``init`` names its
    task_training entry): a Mask R-CNN takes a Faster R-CNN's backbone, RPN and box head, and
    only its mask head starts from scratch."""
    check_spec(kind, spec)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if steps is None and "steps" not in spec:
        raise ConfigError("task_training spec needs 'steps'")
    steps = int(steps if steps is not None else spec["steps"])
    architecture = str(spec.get("architecture", KINDS[kind]))
    kwargs = dict(spec.get("kwargs") or {})
    t0 = time.perf_counter()
    # Adam's moments of rarely-hit weights decay into denormal floats, on which CPU arithmetic
    # is several times slower (AdamW steps ~3x here); flushing them to zero loses nothing
    # the model could use
    torch.set_flush_denormal(True)
    try:
        if kind == "classification":
            size = int(spec.get("input_size", 128))
            protocol = {"resize": [size, size], "crop": None}
            model = build_task_model(kind, architecture, CATEGORIES, protocol=protocol, **kwargs)
            rows = _train_classifier(model, spec, rng, steps, t0, seed)
        else:
            categories = ["__background__", *CATEGORIES]
            model = build_task_model(kind, architecture, categories, **kwargs)
            if init_path is not None:
                _initialise(model.model, init_path)
            rows = _train_detector(model, kind, spec, rng, steps, t0, seed)
        train_seconds = time.perf_counter() - t0
        metrics, val_images = evaluate_on_val(kind, model, seed, spec)
    finally:
        torch.set_flush_denormal(False)
    log.info("%s val metrics %s", kind, metrics)
    save_state(model.model.state_dict(), out_path)  # through a buffer: same weights, same bytes
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
        **({"init": {"path": str(init_path), "sha256": sha256(init_path)}} if init_path else {}),
        "final_loss": rows[-1]["loss"] if rows else None,
        "train_seconds": round(train_seconds, 1),
        "sha256": sha256(out_path),
    }
    write_text_atomic(meta_path, json.dumps(meta, indent=1) + "\n")
    write_losses(log_csv, rows)
    return meta


def _initialise(module: torch.nn.Module, path: str | Path) -> None:
    """``module`` from the detector checkpoint ``path``; only a mask head may be new."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises a variety of types for a bad file
        raise ConfigError(f"task_training init: cannot read {path}: {exc}") from exc
    state = fitting_state_dict(
        module,
        state,
        path,
        what="task_training init",
        error=ConfigError,
        new_prefixes=("roi_heads.mask_",),
    )
    module.load_state_dict(state, strict=False)
    log.info("initialised from %s (%d tensors)", path, len(state))


def evaluate_on_val(
    kind: str, model: Any, seed: int, spec: Mapping[str, Any]
) -> tuple[dict[str, float | None], int]:
    """The task's metrics of ``model`` on the first ``val_images`` val scenes."""
    images, gt = val_split(seed, int(spec.get("val_images", 100)), spec.get("scenes"))
    config = {"tasks": {kind: {"type": kind, "batch_size": 4}}}
    task = get_task(kind, config, model=model)
    predictions = task.predict(images, categories=gt["categories"])
    return task.evaluate(predictions, gt), len(images)


class _Probe:
    """The val metric every ``eval_every`` steps (0: never) on the first 50 val images."""

    def __init__(self, kind: str, model: Any, seed: int, spec: Mapping[str, Any]):
        self.every = int(spec.get("eval_every", 0))
        self.kind, self.model, self.seed = kind, model, seed
        self.spec = {**spec, "val_images": min(50, int(spec.get("val_images", 100)))}

    def __call__(self, step: int) -> dict[str, float | None]:
        if not self.every:
            return {}
        if step % self.every:
            return {"val": None}
        module = self.model.model
        module.eval()  # torchvision detectors in train mode want targets, not predictions
        metrics, _ = evaluate_on_val(self.kind, self.model, self.seed, self.spec)
        module.train()
        value = next(iter(metrics.values()))  # the task's main metric: AP or top-1
        log.info("step %d val %s", step, metrics)
        return {"val": value}


def _log_row(
    rows: list[dict],
    step: int,
    steps: int,
    every: int,
    losses: dict,
    t0: float,
    probe: _Probe | None = None,
):
    extra = probe(step) if probe is not None else {}
    if step % every and step != steps and extra.get("val") is None:
        return
    row = {
        "step": step,
        **{k: round(float(torch.as_tensor(v).detach()), 5) for k, v in losses.items()},
    }
    row["seconds"] = round(time.perf_counter() - t0, 1)
    row.update(extra)
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
    pool = render_scenes(seed, "train", int(spec.get("num_images", 400)), _train_scenes(spec))
    pool = [(image, inst) for image, inst in pool if inst]  # nothing to learn from empty scenes
    log.info("%s: %d train scenes rendered in %.0f s", kind, len(pool), time.perf_counter() - t0)
    model = detector.model
    pretrain_steps = int(spec.get("pretrain_steps", 0))
    if pretrain_steps:
        _pretrain_backbone(model.backbone, pool, spec, rng, pretrain_steps, t0)
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
    probe = _Probe(kind, detector, seed, spec)
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
        _log_row(rows, step, steps, every, {"loss": loss.detach()}, t0, probe)
    model.eval()
    return rows


def object_crops(
    pool: list[tuple[np.ndarray, list[dict]]], size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, size, size) crops in [0, 1] of every object of ``pool`` (its box with a 10 %
    margin, squashed) and their categories."""
    crops, labels = [], []
    for image, instances in pool:
        for inst in instances:
            crop = object_crop(image, inst["mask"])
            crops.append(
                np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.BILINEAR))
            )
            labels.append(inst["category"])
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(labels)


def _dihedral_batch(x: torch.Tensor, k: int) -> torch.Tensor:
    """:func:`_dihedral` ``k`` of the spatial axes of a square (N, C, S, S) batch."""
    x = x.transpose(2, 3) if k & 4 else x
    x = x.flip(3) if k & 1 else x
    return x.flip(2) if k & 2 else x


def _pretrain_on_crops(
    net: Callable[[torch.Tensor], torch.Tensor],
    params: list[torch.nn.Parameter],
    pool: list[tuple[np.ndarray, list[dict]]],
    spec: Mapping[str, Any],
    rng: np.random.Generator,
    steps: int,
    t0: float,
) -> None:
    """Stage 0, from scratch on the same train scenes: ``net`` (normalised crops -> category
    logits) learns to tell the shapes apart on object crops. The features otherwise have to
    be bootstrapped through the detector's heads or through the whole-image label alone,
    which takes several times more steps. Inputs are normalised with ImageNet statistics,
    as torchvision's detector transform and the classifiers do."""
    x_all, y_all = object_crops(pool, int(spec.get("pretrain_crop", 64)))
    lr = float(spec.get("pretrain_lr", 3e-3))
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    sched = _schedule(opt, steps, min(100, steps // 10 + 1))
    batch_size = int(spec.get("pretrain_batch_size", 64))
    for step in range(1, steps + 1):
        idx = torch.from_numpy(rng.integers(0, len(y_all), batch_size))
        x = _dihedral_batch(x_all[idx].float() / 255.0, int(rng.integers(0, 8)))
        loss = F.cross_entropy(net(normalise(x)), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps:
            seconds = time.perf_counter() - t0
            log.info("crop pre-training %d/%d loss %.4f (%.0f s)", step, steps, loss, seconds)


def _pretrain_backbone(
    backbone: torch.nn.Module,
    pool: list[tuple[np.ndarray, list[dict]]],
    spec: Mapping[str, Any],
    rng: np.random.Generator,
    steps: int,
    t0: float,
) -> None:
    """The detector's backbone on crops, through pooled features and a linear layer that is
    thrown away after."""
    head = torch.nn.Linear(backbone.out_channels, len(CATEGORIES))
    backbone.train()
    _pretrain_on_crops(
        lambda x: head(backbone(x).mean((2, 3))),
        [*backbone.parameters(), *head.parameters()],
        pool,
        spec,
        rng,
        steps,
        t0,
    )


def _train_classifier(
    classifier: Any,
    spec: Mapping[str, Any],
    rng: np.random.Generator,
    steps: int,
    t0: float,
    seed: int,
) -> list[dict]:
    protocol = InputProtocol.from_config(classifier.protocol)
    pool = render_scenes(seed, "train", int(spec.get("num_images", 2000)), _train_scenes(spec))
    # the task's own protocol makes the inputs, so training sees what evaluation feeds
    x_train = torch.from_numpy(np.stack([protocol.apply(image)[0] for image, _ in pool]))
    y_train = torch.tensor([largest_category(inst) for _, inst in pool])
    log.info("classification: %d train scenes in %.0f s", len(y_train), time.perf_counter() - t0)
    model = classifier.model
    pretrain_steps = int(spec.get("pretrain_steps", 0))
    if pretrain_steps:
        # same network, same 8 classes, on object crops: shape features first, then the
        # whole image (its pooled features must single out the largest object)
        model.train()
        _pretrain_on_crops(model, list(model.parameters()), pool, spec, rng, pretrain_steps, t0)
    del pool
    batch_size = int(spec.get("batch_size", 32))
    lr = float(spec.get("lr", 3e-3))
    opt = torch.optim.AdamW(
        model.parameters(), lr=lr, weight_decay=float(spec.get("weight_decay", 1e-4))
    )
    sched = _schedule(opt, steps, int(spec.get("warmup", min(200, steps // 10 + 1))))
    every = int(spec.get("log_every", max(1, min(50, steps // 20))))
    rows: list[dict] = []
    probe = _Probe("classification", classifier, seed, spec)
    model.train()
    for step in range(1, steps + 1):
        idx = torch.from_numpy(rng.integers(0, len(y_train), batch_size))
        x = x_train[idx].permute(0, 3, 1, 2).float() / 255.0
        x = _dihedral_batch(x, int(rng.integers(0, 8)))  # one per batch: inputs are square
        loss = F.cross_entropy(model(normalise(x)), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        _log_row(rows, step, steps, every, {"loss": loss.detach()}, t0, probe)
    model.eval()
    return rows
