"""A small ResNet image classifier trained on the embedded data.

The embedded default cannot download an ImageNet ResNet-50 or an Inception network, so the
pipeline trains its own classifier on synthetic-scenes: the category of an object crop. It
serves as the feature extractor of "FID (demo features)" (its pooled penultimate features;
labelled so that no one mistakes it for Inception FID).

The network is torchvision's ResNet building block (``BasicBlock``) in four stages of one block
each, with narrow widths: same family as ResNet-18/50, ~0.3 M parameters.
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
from torchvision.models.resnet import BasicBlock

from discover.errors import DiscoverError
from discover.io import atomic_path, write_text_atomic
from discover.training.common import write_losses
from discover.weights import sha256

log = logging.getLogger("discover.training")

# ImageNet statistics, as torchvision's classifiers normalise their inputs.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class MiniResNet(nn.Module):
    """ResNet with one ``BasicBlock`` per stage; ``features`` gives the pooled embedding."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (16, 32, 64, 128)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages, inplanes = [], widths[0]
        for k, planes in enumerate(widths):
            stride = 1 if k == 0 else 2
            down = None
            if stride != 1 or inplanes != planes:
                down = nn.Sequential(
                    nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes),
                )
            stages.append(BasicBlock(inplanes, planes, stride, down))
            inplanes = planes
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(inplanes, num_classes)
        self.embedding_dim = inplanes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, embedding_dim) global-average-pooled features of normalised inputs."""
        return torch.flatten(F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def normalise(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> ImageNet-normalised."""
    mean = x.new_tensor(MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


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
    from discover.datasets.synthetic_scenes import SceneGenerator, object_crop

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
    from discover.datasets.synthetic_scenes import CATEGORIES

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
    with atomic_path(out_path) as tmp:
        torch.save(model.state_dict(), tmp)
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


def load_classifier(
    path: str | Path, meta_path: str | Path | None = None
) -> tuple[MiniResNet, dict]:
    """A trained MiniResNet and its sidecar; the file must match the sidecar's sha256."""
    path = Path(path)
    meta_path = Path(meta_path) if meta_path else path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise DiscoverError(f"classifier {path} or its sidecar {meta_path} is missing")
    meta = json.loads(meta_path.read_text())
    if meta.get("sha256") and sha256(path) != meta["sha256"]:
        raise DiscoverError(f"classifier {path}: sha256 differs from {meta_path}")
    model = MiniResNet(int(meta["num_classes"]), tuple(meta["widths"]))
    state = torch.load(path, map_location="cpu", weights_only=True)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise DiscoverError(
            f"classifier {path}: missing keys {result.missing_keys[:5]}, "
            f"unexpected keys {result.unexpected_keys[:5]}"
        )
    return model.eval(), meta
