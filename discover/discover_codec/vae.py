"""The Stable Diffusion VAE (diffusers ``AutoencoderKL``) that defines DISCOVER's target latent.

``full``: SD 2.1-base's VAE (``stabilityai/stable-diffusion-2-1-base/vae``, or a local
directory), through the weights cache. ``mini``: a tiny ``AutoencoderKL`` of the same class,
trained by the pipeline on the embedded data (:func:`discover.training.discover.train_vae`) and
saved with ``save_pretrained``; both load through ``from_pretrained``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from discover.weights import resolve_pretrained_dir

if TYPE_CHECKING:
    import torch

#: SD 2.1-base's VAE on the Hub: the target latent of the full-size model
SD21_VAE = "stabilityai/stable-diffusion-2-1-base/vae"

#: A small AutoencoderKL of SD's layout (3 downsamplings -> 1/8, 4 latent channels).
TINY_VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [16, 32, 48, 48],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "sample_size": 128,
    "mid_block_add_attention": False,
}


def load_vae(ref: str | os.PathLike, cache: str | os.PathLike | None = None):
    """``AutoencoderKL.from_pretrained`` on a local directory or a cached Hub snapshot."""
    from diffusers import AutoencoderKL

    path = resolve_pretrained_dir(ref, cache)
    # low_cpu_mem_usage needs `accelerate`; the VAE is small enough to load plainly
    vae = AutoencoderKL.from_pretrained(path, low_cpu_mem_usage=False)
    vae.requires_grad_(False)
    return vae.eval()


def _shift(vae) -> float:
    return float(getattr(vae.config, "shift_factor", None) or 0.0)


def encode_latent(vae, x: torch.Tensor) -> torch.Tensor:
    """z_c = E(x): the scaled mode of the VAE posterior; ``x`` in [0, 1], sides multiple of 8."""
    import torch  # the names of this module (SD21_VAE) are read by the plan without torch

    with torch.no_grad():
        dist = vae.encode(x * 2 - 1).latent_dist
        return (dist.mode() - _shift(vae)) * vae.config.scaling_factor


def decode_latent(vae, z: torch.Tensor) -> torch.Tensor:
    """x = D(z) in [0, 1]."""
    x = vae.decode(z / vae.config.scaling_factor + _shift(vae)).sample
    return ((x + 1) / 2).clamp(0, 1)
