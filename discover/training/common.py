"""What the pipeline's training routines share: data, seeding, loss logs."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from discover.io import atomic_path


def image_pool(seed: int, num_images: int, crop: int) -> list[np.ndarray]:
    """Training images: the synthetic-scenes train split (disjoint from every val split)."""
    from discover.datasets.synthetic_scenes import SceneGenerator

    gen = SceneGenerator(seed, "train", max(crop, 256), max(crop, 384), 2, 6)
    return [gen.render(i)[0] for i in range(num_images)]


def batch(
    pool: list[np.ndarray], rng: np.random.Generator, batch_size: int, crop: int
) -> torch.Tensor:
    out = np.empty((batch_size, crop, crop, 3), np.uint8)
    for b in range(batch_size):
        img = pool[rng.integers(len(pool))]
        y = rng.integers(img.shape[0] - crop + 1)
        x = rng.integers(img.shape[1] - crop + 1)
        patch = img[y : y + crop, x : x + crop]
        out[b] = patch[:, ::-1] if rng.random() < 0.5 else patch
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div(255)


def setup(spec: Mapping[str, Any], seed: int, steps: int | None):
    """Seed torch and numpy; return (rng, steps, crop, batch_size) from a training spec."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    steps = int(steps if steps is not None else spec["steps"])
    return rng, steps, int(spec.get("crop", 128)), int(spec.get("batch_size", 8))


def write_losses(path: str | Path | None, rows: list[dict]) -> None:
    """The loss curve as CSV (atomically); nothing without a path or rows."""
    if not path or not rows:
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
