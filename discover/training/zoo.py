"""Train a CompressAI model (e.g. bmshj2018-hyperprior with small N/M) on the embedded data.

The result is a CompressAI-format state dict (after ``update()``, so it carries its CDF tables)
that the ``compressai`` codec loads exactly like an official zoo file, plus a JSON sidecar with
the training spec, the command that reproduces it, the final losses and the file's sha256.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from discover.io import write_text_atomic
from discover.training.common import (
    parameter_names,
    save_dtype,
    save_state,
    setup,
    training_data,
    write_losses,
)
from discover.training.data import TrainingData
from discover.weights import sha256

log = logging.getLogger("discover.training")


def train_zoo_model(
    out_path: str | Path,
    meta_path: str | Path,
    spec: Mapping[str, Any],
    lmbda: float,
    *,
    seed: int = 0,
    steps: int | None = None,
    log_csv: str | Path | None = None,
    command: str = "",
    data: TrainingData | None = None,
) -> dict:
    """Train one rate point (one lambda) and write the state dict and its sidecar atomically.
    ``data``: the training images (a manifest's; default: generated scenes)."""
    from compressai.losses import RateDistortionLoss
    from compressai.zoo.image import model_architectures

    _, steps, crop, batch_size = setup(spec, seed, steps)
    model = model_architectures[spec["architecture"]](int(spec["N"]), int(spec["M"]))
    params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    opt = torch.optim.Adam(params, lr=float(spec.get("lr", 1e-3)))
    aux_opt = torch.optim.Adam(aux_params, lr=float(spec.get("aux_lr", 1e-3)))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[int(steps * 0.8)], gamma=0.1)
    criterion = RateDistortionLoss(lmbda=lmbda)
    crops = training_data(spec, data, seed, crop).stream(crop, batch_size, seed=seed, stop=steps)
    rows, t0 = [], time.perf_counter()
    model.train()
    for step in range(1, steps + 1):
        x = next(crops)
        opt.zero_grad()
        aux_opt.zero_grad()
        losses = criterion(model(x), x)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        aux = model.aux_loss()
        aux.backward()
        aux_opt.step()
        if step % max(1, steps // 50) == 0 or step == steps:
            row = {
                "step": step,
                "loss": losses["loss"].item(),
                "bpp": losses["bpp_loss"].item(),
                "mse": losses["mse_loss"].item(),
                "aux": aux.item(),
                "seconds": round(time.perf_counter() - t0, 2),
            }
            rows.append(row)
            log.info(
                "step %d/%d loss %.4f bpp %.4f psnr %.2f dB",
                step,
                steps,
                row["loss"],
                row["bpp"],
                -10 * math.log10(max(row["mse"], 1e-10)),
            )
    model.update(force=True)
    model.eval()
    save_state(model.state_dict(), out_path, save_dtype(spec), parameter_names(model))
    meta = {
        "architecture": spec["architecture"],
        "spec": dict(spec),
        "lambda": lmbda,
        "seed": seed,
        "steps": steps,
        "data": crops.report(),
        "final": rows[-1] if rows else {},
        "command": command,
        "sha256": sha256(out_path),
    }
    write_text_atomic(meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    write_losses(log_csv, rows)
    return meta
