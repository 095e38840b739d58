"""Training of the small ResNet image classifier on the embedded data.

The embedded default cannot download an ImageNet ResNet-50 or an Inception network, so the
pipeline trains its own classifier on synthetic-scenes: the category of an object crop. It
serves as the feature extractor of "FID (demo features)" (its pooled penultimate features;
labelled so that no one mistakes it for Inception FID).

The network, its input normalisation and the loader of a trained one are inference code and
live in :mod:`discover.tasks.mini_resnet`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from discover.datasets.synthetic_scenes import CATEGORIES, SceneGenerator, object_crop
from discover.io import write_text_atomic
from discover.tasks.mini_resnet import MiniResNet, normalise
from discover.training.common import save_state, write_losses
from discover.weights import sha256

log = logging.getLogger("discover.training")


def to_input(image: np.ndarray, size: int) -> torch.Tensor:
    """An (H, W, 3) uint8 image as a (3, size, size) tensor in [0, 1] (whole image, squashed)."""
    img = Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)


def scene_examples(
    seed: int, split: str, num_images: int, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(crops, categories) of the visible objects of synthetic-scenes ``split``.

    Each object is cropped by its bounding box (with a 10 % margin, clipped to the image) and
    resized to ``size`` x ``size``: a shape classifier whose features react to shapes, edges
    and textures, the things a codec's artefacts change."""
    gen = SceneGenerator(seed, split, 256, 512, 2, 6)
    xs, ys = [], []
    for i in range(num_images):
        image, instances = gen.render(i)
        for inst in instances:
            xs.append(to_input(object_crop(image, inst["mask"]), size))
            ys.append(inst["category"])
    return torch.stack(xs), torch.tensor(ys)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            pred = model(normalise(x[i : i + batch_size])).argmax(1)
            correct += int((pred == y[i : i + batch_size]).sum())
    return correct / max(1, len(x))


def train_classifier(
    out_path: str | Path,
    meta_path: str | Path,
    spec: Mapping[str, Any],
    *,
    seed: int = 0,
    steps: int | None = None,
    log_csv: str | Path | None = None,
    command: str = "",
) -> dict:
    """Train a MiniResNet on synthetic-scenes (train split), measure top-1 on its val split,
    write the state dict and a JSON sidecar (spec, command, accuracy, sha256) atomically."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    steps = int(steps if steps is not None else spec["steps"])
    size = int(spec.get("input_size", 128))
    batch_size = int(spec.get("batch_size", 32))
    widths = tuple(int(w) for w in spec.get("widths", (16, 32, 64, 128)))
    t0 = time.perf_counter()
    x_train, y_train = scene_examples(seed, "train", int(spec.get("num_images", 2000)), size)
    x_val, y_val = scene_examples(seed, "val", int(spec.get("val_images", 200)), size)
    log.info("classifier data: %d train, %d val crops", len(x_train), len(x_val))
    model = MiniResNet(len(CATEGORIES), widths)
    opt = torch.optim.AdamW(model.parameters(), lr=float(spec.get("lr", 3e-3)), weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=float(spec.get("lr", 3e-3)), total_steps=max(1, steps)
    )
    rows = []
    for step in range(1, steps + 1):
        model.train()
        idx = torch.from_numpy(rng.integers(0, len(x_train), batch_size))
        x = x_train[idx]
        flip = torch.from_numpy(rng.random(batch_size) < 0.5)
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        loss = F.cross_entropy(model(normalise(x)), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps:
            rows.append(
                {"step": step, "loss": float(loss.detach()), "seconds": time.perf_counter() - t0}
            )
            log.info("step %d loss %.4f", step, float(loss.detach()))
    top1 = accuracy(model, x_val, y_val)
    model.eval()
    save_state(model.state_dict(), out_path)  # through a buffer: the same weights, the same bytes
    meta = {
        "architecture": "mini-resnet",
        "widths": list(widths),
        "num_classes": len(CATEGORIES),
        "categories": list(CATEGORIES),
        "input_size": size,
        "spec": dict(spec),
        "seed": seed,
        "steps": steps,
        "command": command,
        "val_top1": top1,
        "val_crops": len(x_val),
        "final_loss": rows[-1]["loss"] if rows else None,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "sha256": sha256(out_path),
    }
    write_text_atomic(meta_path, json.dumps(meta, indent=1))
    write_losses(log_csv, rows)
    log.info("classifier val top-1 %.3f on %d crops", top1, len(x_val))
    return meta
