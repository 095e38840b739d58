"""Generative composition (paper §3.3): ẑ_c conditions a frozen diffusion prior through a
control module C (a ControlNet at latent resolution); DDIM gives z_0, the VAE decodes x̂.

``control``: C; ``pipeline``: loading a prior (SD 2.1-base or the mini one) and sampling;
``prior``: the tiny SD-layout prior of the embedded scale. Training lives in
:mod:`discover.training.composition`.
"""

from discover.composition.control import (
    LatentConditioningEmbedding,
    LatentControlNetModel,
    control_from_unet,
    load_control,
)
from discover.composition.pipeline import (
    CompositionPipeline,
    CompositionSettings,
    decode_composed,
    load_prior,
    prompt_embedding,
)

__all__ = [
    "CompositionPipeline",
    "CompositionSettings",
    "LatentConditioningEmbedding",
    "LatentControlNetModel",
    "control_from_unet",
    "decode_composed",
    "load_control",
    "load_prior",
    "prompt_embedding",
]
