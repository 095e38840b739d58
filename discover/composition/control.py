"""The control module C (paper §3.3): a ControlNet on the diffusion UNet, conditioned on ẑ_c.

A stock diffusers ``ControlNetModel`` takes an image-space condition (e.g. an edge map at
512x512) and its ``controlnet_cond_embedding`` brings it down to the latent grid with three
stride-2 convolutions (ControlNet paper: "a tiny network of four convolution layers ... to
convert image-based conditions to 64 x 64 feature space"). DISCOVER's condition ẑ_c already
lives on that grid: it has the exact shape of the diffusion latent z_t (4 x H/8 x W/8). Feeding
it through the stock embedding would shrink it to H/64 x W/64 and the addition to the UNet's
``conv_in`` features would fail (or, upsampled, would throw away 63/64 of its positions).

:class:`LatentConditioningEmbedding` is the stock embedding with every stride set to 1: the same
layers, parameter names and shapes (a stock ControlNet state dict fits), a zero-initialised last
conv as in ControlNet, so a fresh control module leaves the UNet's prediction untouched.
:class:`LatentControlNetModel` is ``ControlNetModel`` with that embedding; its ``config.json`` is
a ControlNet config whose ``_class_name`` selects the latent embedding, so it round-trips through
``save_pretrained`` / ``from_pretrained``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import torch
import torch.nn as nn
from diffusers import ControlNetModel, UNet2DConditionModel
from diffusers.models.controlnets.controlnet import ControlNetConditioningEmbedding

#: The stock ControlNet's embedding widths: kept, so C has the stock parameter count.
CONDITIONING_EMBEDDING_CHANNELS = (16, 32, 96, 256)


class LatentConditioningEmbedding(ControlNetConditioningEmbedding):
    """ControlNet's conditioning embedding at stride 1: (N, 4, h, w) -> (N, C0, h, w).

    ``conv_in`` -> SiLU -> [conv c_i->c_i, SiLU, conv c_i->c_(i+1), SiLU]* -> zero conv to the
    UNet's first width. Only the strides differ from the stock module (whose forward it uses).
    """

    def __init__(
        self,
        conditioning_embedding_channels: int,
        conditioning_channels: int = 4,
        block_out_channels: Sequence[int] = CONDITIONING_EMBEDDING_CHANNELS,
    ):
        super().__init__(
            conditioning_embedding_channels, conditioning_channels, tuple(block_out_channels)
        )
        # The stock module's every second block conv downsamples; the condition is already
        # on the latent grid, so none may.
        for conv in self.blocks:
            conv.stride = (1, 1)


class LatentControlNetModel(ControlNetModel):
    """A ``ControlNetModel`` whose condition is a diffusion latent (``conditioning_channels``
    channels on the latent grid) instead of an image.

    Build it with :func:`control_from_unet`; load it with ``from_pretrained``.
    """

    # diffusers reads the config keys from the signature of ``__init__``; ``wraps`` makes
    # ``inspect.signature`` report ControlNetModel's, so configs load and save unchanged.
    @functools.wraps(ControlNetModel.__init__)
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = self.config
        self.controlnet_cond_embedding = LatentConditioningEmbedding(
            cfg.block_out_channels[0],
            cfg.conditioning_channels,
            cfg.conditioning_embedding_out_channels,
        )


def control_from_unet(
    unet: UNet2DConditionModel,
    conditioning_embedding_out_channels: Sequence[int] = CONDITIONING_EMBEDDING_CHANNELS,
    load_weights_from_unet: bool = True,
) -> LatentControlNetModel:
    """C initialised as ControlNet does: a copy of the UNet's encoder and middle block, zero
    convolutions on every output, conditioned on a latent of the UNet's own channel count."""
    return LatentControlNetModel.from_unet(
        unet,
        conditioning_embedding_out_channels=tuple(conditioning_embedding_out_channels),
        load_weights_from_unet=load_weights_from_unet,
        conditioning_channels=unet.config.in_channels,
    )


def load_control(
    path: str | os.PathLike, dtype: torch.dtype = torch.float32
) -> LatentControlNetModel:
    """A trained control module saved with ``save_pretrained`` (frozen, in eval mode)."""
    control = LatentControlNetModel.from_pretrained(path, torch_dtype=dtype)
    control.requires_grad_(False)
    return control.eval()


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
