"""What the pipeline's training routines share: data, seeding, loss logs."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from discover.datasets.synthetic_scenes import SceneGenerator
from discover.errors import DiscoverError
from discover.io import atomic_path, write_bytes_atomic

#: Precisions trained weights may be stored in (``save_dtype``; training runs in float32/AMP).
SAVE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def image_pool(seed: int, num_images: int, crop: int) -> list[np.ndarray]:
    """Training images: the synthetic-scenes train split (disjoint from every val split)."""
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


def deterministic_cuda() -> None:
    """Kernels that give the same bits on every run of the same GPU and software: cuDNN's
    fixed algorithms, cuBLAS with a fixed workspace, PyTorch's deterministic implementations
    (an op without one stops the run with an error naming it). Call before the first CUDA
    work.

    Measured on an H100 (mini composition training, bf16, 12 steps): without this, two runs
    with the same seed ended with different weights; with it, bit-identical, and a run
    resumed from its step-6 checkpoint equals the straight run."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True)


def write_losses(path: str | Path | None, rows: list[dict]) -> None:
    """The loss curve as CSV (atomically); nothing without a path or rows."""
    if not path or not rows:
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def save_dtype(spec: Mapping[str, Any]) -> torch.dtype:
    """The dtype a spec's ``save_dtype`` names: float16 halves the stored weights (the mini
    models are committed under a size budget); loading casts them back to float32."""
    name = spec.get("save_dtype", "float32")
    if name not in SAVE_DTYPES:
        raise DiscoverError(f"save_dtype: {name!r} is not one of {list(SAVE_DTYPES)}")
    return SAVE_DTYPES[name]


def cast_state(
    state: Mapping[str, torch.Tensor],
    dtype: torch.dtype,
    parameters: Collection[str] | None = None,
) -> dict[str, torch.Tensor]:
    """``state`` with its floating-point tensors in ``dtype``: every one when ``parameters`` is
    None, else the parameters named there and the buffers the cast leaves exactly unchanged
    (masks, tables of small integers). Other buffers stay as they are: some hold constants
    float16 cannot represent (CompressAI's likelihood lower bound 1e-9 would become 0 and a
    rate term infinite)."""

    def cast(key: str, value: torch.Tensor) -> torch.Tensor:
        if not value.is_floating_point() or value.dtype == dtype:
            return value
        out = value.to(dtype)
        if parameters is None or key in parameters or torch.equal(out.to(value.dtype), value):
            return out
        return value

    return {k: cast(k, v) for k, v in state.items()}


def save_state(
    state: Mapping[str, torch.Tensor],
    path: str | Path,
    dtype: torch.dtype = torch.float32,
    parameters: Collection[str] | None = None,
) -> None:
    """``torch.save`` of ``state`` (see :func:`cast_state`), written atomically. Saved through
    a buffer: a file path would name the archive's records after the temporary file, so the
    same weights would not give the same bytes (nor the sidecar's sha256)."""
    buffer = io.BytesIO()
    torch.save(cast_state(state, dtype, parameters), buffer)
    write_bytes_atomic(path, buffer.getvalue())


def parameter_names(module: torch.nn.Module) -> set[str]:
    return {name for name, _ in module.named_parameters()}
