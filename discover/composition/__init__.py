"""Generative composition (paper §3.3): ẑ_c conditions a frozen diffusion prior through a
control module C (a ControlNet at latent resolution); DDIM gives z_0, the VAE decodes x̂.

``control``: C; ``pipeline``: loading a prior (SD 2.1-base or the mini one) and sampling;
``prior``: the tiny SD-layout prior of the embedded scale. Training lives in
:mod:`discover.training.composition`.
"""

from discover.registry import lazy_exports

# name -> the module that defines it; loaded on first use, so that the settings (read by the
# plan and the CLI) import without PyTorch and diffusers
_EXPORTS = {
    "LatentConditioningEmbedding": "discover.composition.control",
    "LatentControlNetModel": "discover.composition.control",
    "control_from_unet": "discover.composition.control",
    "load_control": "discover.composition.control",
    "CompositionPipeline": "discover.composition.pipeline",
    "compose_images": "discover.composition.pipeline",
    "decode_composed": "discover.composition.pipeline",
    "load_prior": "discover.composition.pipeline",
    "prompt_embedding": "discover.composition.pipeline",
    "CompositionSettings": "discover.composition.settings",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
