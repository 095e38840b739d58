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

from discover.errors import DiscoverError
from discover.io import atomic_path, write_bytes_atomic
from discover.training.data import TrainingData

#: Precisions trained weights may be stored in (``save_dtype``; training runs in float32/AMP).
SAVE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def training_data(
    spec: Mapping[str, Any], data: TrainingData | None, seed: int, crop: int
) -> TrainingData:
    """What a trainer reads: ``data`` (a manifest's images) cut to the spec's ``num_images``,
    or, without one, that many generated scenes listed in memory (tests, benchmarks)."""
    num = spec.get("num_images")
    if data is None:
        return TrainingData.synthetic(seed, int(num or 64), crop)
    return data.subset(None if num is None else int(num), seed)


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
