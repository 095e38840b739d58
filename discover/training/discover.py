"""Training of the embedded (``mini``) DISCOVER models on the synthetic-scenes train split.

* :func:`train_vae` fits a tiny diffusers ``AutoencoderKL`` (SD's layout) and sets its
  ``scaling_factor`` so that latents have unit variance, as SD's 0.18215 does for SD's VAE.
* :func:`train_codec` fits the codec to the VAE latent: stage I trains everything on
  λ_R·R + ||z_c − ẑ_c||² (R in bits per pixel, the MSE per latent element); stage II (paper
  §4.1.1) freezes the encoder, hyperprior and entropy model and trains M and g_s with 0–50 % of
  ŷ zeroed at random, so that a task's part alone still gives a usable ẑ_c.

Outputs are written atomically with a JSON sidecar (spec, seed, command, final losses, sha256).
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

from discover.discover_codec.masks import random_keep_mask
from discover.discover_codec.model import PRESETS, portable_state
from discover.discover_codec.net import CodecConfig, pad_image
from discover.discover_codec.vae import TINY_VAE_CONFIG, encode_latent, load_vae, unscale_latent
from discover.errors import ConfigError
from discover.images import image_to_tensor
from discover.io import atomic_dir, write_text_atomic
from discover.training.common import (
    parameter_names,
    save_dtype,
    save_state,
    setup,
    training_data,
    write_losses,
)
from discover.training.data import TrainingData, load_image
from discover.training.init import initial_codec
from discover.weights import sha256

log = logging.getLogger("discover.training")


def train_vae(
    out_dir: str | Path,
    meta_path: str | Path,
    spec: Mapping[str, Any],
    *,
    seed: int = 0,
    steps: int | None = None,
    log_csv: str | Path | None = None,
    command: str = "",
    data: TrainingData | None = None,
) -> dict:
    """Train the tiny AutoencoderKL; ``out_dir`` becomes a ``from_pretrained`` directory.
    ``data``: the training images (a manifest's; default: generated scenes)."""
    from diffusers import AutoencoderKL

    rng, steps, crop, batch_size = setup(spec, seed, steps)
    kl_weight = float(spec.get("kl_weight", 1e-6))
    # "sample" (SD's training) or "mode": decode the posterior's mean, the latent the codec is
    # fitted to (encode_latent); see docs/composition.md for what each gives
    mode = spec.get("decode_posterior", "sample") == "mode"
    # bfloat16 autocast on CPU (our choice for the 2-core machine: about 1.6-2x faster per step
    # where the CPU has AMX / AVX-512 BF16; the weights and the optimizer stay float32)
    bf16 = spec.get("autocast") == "bfloat16"
    arch = {**TINY_VAE_CONFIG, **spec.get("architecture", {})}
    if arch["latent_channels"] != 4 or len(arch["block_out_channels"]) != 4:
        raise ConfigError(
            "config key discover_training.<model>.vae.architecture: the mini VAE keeps SD's "
            f"latent (4 channels, 1/8 resolution: 4 blocks), got {arch['latent_channels']} "
            f"channels and {len(arch['block_out_channels'])} blocks"
        )
    vae = AutoencoderKL(**arch)
    opt = torch.optim.Adam(vae.parameters(), lr=float(spec.get("lr", 1e-3)))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[int(steps * 0.8)], gamma=0.1)
    pool = training_data(spec, data, seed, crop)
    crops = pool.stream(crop, batch_size, seed=seed, stop=steps)
    rows, t0 = [], time.perf_counter()
    vae.train()
    for step in range(1, steps + 1):
        x = next(crops) * 2 - 1
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            dist = vae.encode(x).latent_dist
            x_hat = vae.decode(dist.mode() if mode else dist.sample()).sample.float()
        rec = F.l1_loss(x_hat, x) + F.mse_loss(x_hat, x)
        kl = dist.kl().mean() / x[0].numel()
        loss = rec + kl_weight * kl
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % max(1, steps // 50) == 0 or step == steps:
            mse = F.mse_loss((x_hat + 1) / 2, (x + 1) / 2).item()
            rows.append(
                {
                    "step": step,
                    "loss": loss.item(),
                    "kl": kl.item(),
                    "psnr": -10 * math.log10(max(mse, 1e-10)),
                    "seconds": round(time.perf_counter() - t0, 2),
                }
            )
            log.info("vae step %d/%d loss %.4f psnr %.2f dB", step, steps, loss, rows[-1]["psnr"])
    vae.eval()
    vae.register_to_config(scaling_factor=whole_image_scaling(vae, pool))
    with atomic_dir(out_dir) as tmp:
        vae.to(save_dtype(spec)).save_pretrained(tmp)
    files = sorted(p for p in Path(out_dir).iterdir() if p.is_file())
    meta = {
        "spec": dict(spec),
        "seed": seed,
        "steps": steps,
        "scaling_factor": vae.config.scaling_factor,
        "data": crops.report(),
        "final": rows[-1] if rows else {},
        "command": command,
        "sha256": {p.name: sha256(p) for p in files},
    }
    write_text_atomic(meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    write_losses(log_csv, rows)
    return meta


#: Training images whose latents set the scaling factor (whole images, our choice of count).
SCALING_IMAGES = 16


def whole_image_scaling(vae, pool: TrainingData, count: int = SCALING_IMAGES) -> float:
    """SD's ``scaling_factor``, 1 / std of the latent posterior's mode, over every element of
    the latents of the first ``count`` whole training images (padded to a multiple of 8 as
    the codec pads them): the pipeline codes whole images, on which the factor first computed
    on 64-pixel training crops gave latent std 1.16 (scenes) to 1.97 (photos), not 1."""
    values = []
    with torch.no_grad():
        for entry in pool.entries[:count]:
            x = pad_image(image_to_tensor(load_image(entry.path)), 8)
            values.append(vae.encode(x * 2 - 1).latent_dist.mode().flatten())
    return float(1.0 / torch.cat(values).std())


def _frozen_in_stage_two(name: str) -> bool:
    return not name.startswith(("g_s.", "M."))


def train_codec(
    out_path: str | Path,
    meta_path: str | Path,
    spec: Mapping[str, Any],
    lambda_r: float,
    vae_dir: str | Path,
    *,
    model_id: str,
    seed: int = 0,
    steps: int | None = None,
    stage2_steps: int | None = None,
    log_csv: str | Path | None = None,
    command: str = "",
    data: TrainingData | None = None,
    cache: str | Path | None = None,
) -> dict:
    """Train one rate point (one λ_R) of a DISCOVER codec against the VAE in ``vae_dir`` (a
    directory or cached Hub id); stage I starts from ``spec["codec_init"]`` (see
    :func:`discover.training.init.initial_codec`)."""
    rng, steps, crop, batch_size = setup(spec, seed, steps)
    stage2 = int(stage2_steps if stage2_steps is not None else spec.get("stage2_steps", 0))
    codec = spec["codec"]
    cfg = PRESETS[codec] if isinstance(codec, str) else CodecConfig.from_dict(codec)
    net, init = initial_codec(cfg, spec, lambda_r)
    vae = load_vae(vae_dir, cache)
    # our choice, beyond the paper's loss (off by default): a weight on the pixel MSE of
    # D(ẑ_c) against x through the frozen VAE decoder, a check of whether the latent MSE is
    # what keeps the codec under the VAE bound (docs/composition.md)
    pixel_weight = float(spec.get("pixel_weight", 0.0))
    vae.requires_grad_(False)
    crops = training_data(spec, data, seed, crop).stream(
        crop, batch_size, seed=seed, stop=steps + stage2
    )
    aux_params = [p for n, p in net.named_parameters() if n.endswith(".quantiles")]
    aux_opt = torch.optim.Adam(aux_params, lr=float(spec.get("aux_lr", 1e-3)))
    rows, t0 = [], time.perf_counter()

    def run(stage: int, n_steps: int, first_step: int) -> None:
        if stage == 1:
            params = [p for n, p in net.named_parameters() if not n.endswith(".quantiles")]
        else:
            for n, p in net.named_parameters():
                p.requires_grad_(not _frozen_in_stage_two(n))
            params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=float(spec.get("lr", 1e-3)))
        sched = torch.optim.lr_scheduler.MultiStepLR(
            opt, milestones=[int(n_steps * 0.8)], gamma=0.1
        )
        net.train()
        for i in range(1, n_steps + 1):
            x = next(crops)
            z_c = encode_latent(vae, x)
            keep = None
            if stage == 2:
                grid = (crop // 16, crop // 16)
                keep = torch.from_numpy(
                    np.stack([random_keep_mask(rng, grid) for _ in range(batch_size)])
                )[:, None].float()
            out = net(x, keep)
            bpp = sum(torch.log2(lik).sum() for lik in out["likelihoods"].values()) / -(
                batch_size * crop * crop
            )
            mse = F.mse_loss(out["z_c_hat"], z_c)
            loss = lambda_r * bpp + mse if stage == 1 else mse
            if pixel_weight:
                x_hat = vae.decode(unscale_latent(vae, out["z_c_hat"])).sample
                pixels = F.mse_loss((x_hat + 1) / 2, x)
                loss = loss + pixel_weight * pixels
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            if stage == 1:
                aux = net.entropy_bottleneck.loss()
                aux_opt.zero_grad()
                aux.backward()
                aux_opt.step()
            step = first_step + i
            if i % max(1, n_steps // 25) == 0 or i == n_steps:
                rows.append(
                    {
                        "step": step,
                        "stage": stage,
                        "loss": loss.item(),
                        "bpp": bpp.item(),
                        "latent_mse": mse.item(),
                        **({"pixel_mse": pixels.item()} if pixel_weight else {}),
                        "seconds": round(time.perf_counter() - t0, 2),
                    }
                )
                log.info(
                    "λ_R=%g stage %d step %d loss %.4f bpp %.4f latent mse %.4f",
                    lambda_r,
                    stage,
                    step,
                    loss.item(),
                    bpp.item(),
                    mse.item(),
                )

    run(1, steps, 0)
    if stage2:
        run(2, stage2, steps)
    net.update(force=True)
    net.eval()
    save_state(portable_state(net), out_path, save_dtype(spec), parameter_names(net))
    meta = {
        "model_id": model_id,
        "codec": cfg.to_dict(),
        "lambda_R": lambda_r,
        "vae": str(vae_dir),
        "spec": {k: v for k, v in spec.items() if k != "codec"},
        "seed": seed,
        "steps": steps,
        "stage2_steps": stage2,
        "init": init,
        "data": crops.report(),
        "final": rows[-1] if rows else {},
        "command": command,
        "sha256": sha256(out_path),
    }
    write_text_atomic(meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    write_losses(log_csv, rows)
    return meta
