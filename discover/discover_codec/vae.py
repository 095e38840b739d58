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


def unscale_latent(vae, z: torch.Tensor) -> torch.Tensor:
    """The VAE decoder's input for a scaled latent z (the inverse of :func:`encode_latent`'s
    scaling)."""
    return z / vae.config.scaling_factor + _shift(vae)


def encode_latent(vae, x: torch.Tensor) -> torch.Tensor:
    """z_c = E(x): the scaled mode of the VAE posterior; ``x`` in [0, 1], sides multiple of 8."""
    import torch  # the names of this module (SD21_VAE) are read by the plan without torch

    with torch.no_grad():
        dist = vae.encode(x * 2 - 1).latent_dist
        return (dist.mode() - _shift(vae)) * vae.config.scaling_factor


#: Images above this many pixels decode in tiles (our choice): the decoder's full-resolution
#: activations of a 4096x4096 image took 8.7 GB at once.
TILE_ABOVE_PIXELS = 1024 * 1024
#: Tile side in image pixels, and the overlap over which neighbouring tiles are blended.
TILE_PIXELS = 512
TILE_OVERLAP = 0.25


def decode_latent(vae, z: torch.Tensor) -> torch.Tensor:
    """x = D(z) in [0, 1]; above :data:`TILE_ABOVE_PIXELS` in tiles (:func:`tiled_decode`),
    which bounds the memory. A tiled image differs slightly from a whole-image decode, the
    same way on every run."""
    z = unscale_latent(vae, z)
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    if z.shape[-2] * z.shape[-1] * factor**2 <= TILE_ABOVE_PIXELS:
        x = vae.decode(z).sample
    else:
        x = tiled_decode(vae, z, TILE_PIXELS // factor, TILE_OVERLAP)
    return x.add_(1).div_(2).clamp_(0, 1)


def tiled_decode(vae, z: torch.Tensor, tile: int, overlap: float) -> torch.Tensor:
    """What diffusers' ``AutoencoderKL.tiled_decode`` computes (tiles of ``tile`` latent
    pixels, each blended into the one above and the one to its left over ``overlap`` of a
    tile, with the model's own ``blend_v`` / ``blend_h``), one row of tiles at a time into a
    preallocated image: its memory is a row of tiles and the image, not every tile at once."""
    import torch  # the names of this module (SD21_VAE) are read by the plan without torch

    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    sample = tile * factor
    step = int(tile * (1 - overlap))
    blend = int(sample * overlap)
    keep = sample - blend
    n, _, h, w = z.shape
    out = None
    above: list[torch.Tensor] = []
    y0 = 0
    for i in range(0, h, step):
        row: list[torch.Tensor] = []
        x0 = 0
        for j in range(0, w, step):
            part = z[:, :, i : i + tile, j : j + tile]
            if vae.config.use_post_quant_conv:
                part = vae.post_quant_conv(part)
            decoded = vae.decoder(part)
            if out is None:
                shape = (n, decoded.shape[1], h * factor, w * factor)
                out = torch.empty(shape, dtype=decoded.dtype)
            if above:
                decoded = vae.blend_v(above[len(row)], decoded, blend)
            if row:
                decoded = vae.blend_h(row[-1], decoded, blend)
            row.append(decoded)
            kept = decoded[:, :, :keep, :keep]
            out[:, :, y0 : y0 + kept.shape[2], x0 : x0 + kept.shape[3]] = kept
            x0 += kept.shape[3]
        y0 += row[0][:, :, :keep].shape[2]
        above = row
    return out
