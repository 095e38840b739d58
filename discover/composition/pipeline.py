"""Generative composition (paper §3.3): ẑ_c -> DDIM with the control module -> z_0 -> x̂.

:class:`CompositionPipeline` composes, in diffusers' manner, frozen models and a scheduler:
the prior's UNet ε_θ, VAE decoder D, text encoder and tokenizer (SD 2.1-base, or the mini prior
of :mod:`discover.composition.prior`), the control module C and ``DDIMScheduler``. It owns no
math: each step is ``C(z_t, t, ẑ_c)`` -> residuals -> ``ε_θ(z_t, t, prompt | residuals)`` ->
``scheduler.step`` (deterministic DDIM, η = 0; Eq. 3 is its stochastic DDPM form).

How many steps to run is the caller's choice; :class:`CompositionSettings` carries it from the
config per *viewer* (paper §4.1.1: "the sampling step is set as 8 for machine vision tasks, 50
for human perception"): whoever looks at the image, not which stream was received, decides.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from discover.composition.control import control_from_unet, load_control
from discover.composition.settings import (  # noqa: F401  (re-exported)
    DEFAULT_STEPS,
    STARTS,
    CompositionSettings,
)
from discover.discover_codec.bitstream import Container
from discover.discover_codec.consumers import HUMAN
from discover.discover_codec.model import DiscoverModel
from discover.discover_codec.vae import decode_latent
from discover.errors import DiscoverError
from discover.images import tensor_to_image
from discover.weights import PRIOR_COMPONENTS, prior_component_dir

#: The SD layout every prior directory has (Hub repos keep more, e.g. ``feature_extractor``).
COMPONENTS = PRIOR_COMPONENTS


class Prior(NamedTuple):
    """The frozen parts of a Stable-Diffusion-layout prior."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any


def load_prior(
    prior: str | os.PathLike,
    *,
    cache: str | os.PathLike | None = None,
    dtype: torch.dtype = torch.float32,
) -> Prior:
    """UNet, VAE, text encoder, tokenizer and DDIM scheduler of an SD-layout prior (local
    directory or cached Hub id), frozen. The VAE stays in float32 when its config asks to be
    upcast (SD's does: its decoder overflows in float16)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    where = {name: prior_component_dir(prior, name, cache) for name in COMPONENTS}
    unet = UNet2DConditionModel.from_pretrained(where["unet"], torch_dtype=dtype)
    upcast = AutoencoderKL.load_config(where["vae"]).get("force_upcast", True)
    vae_dtype = torch.float32 if upcast else dtype
    vae = AutoencoderKL.from_pretrained(where["vae"], torch_dtype=vae_dtype)
    text_encoder = CLIPTextModel.from_pretrained(where["text_encoder"], torch_dtype=dtype)
    tokenizer = CLIPTokenizer.from_pretrained(where["tokenizer"])
    # SD 2.1-base's scheduler config names PNDMScheduler; DDIM reads the same schedule.
    scheduler = DDIMScheduler.from_pretrained(where["scheduler"])
    for model in (unet, vae, text_encoder):
        model.requires_grad_(False).eval()
    return Prior(unet, vae, text_encoder, tokenizer, scheduler)


@torch.no_grad()
def prompt_embedding(tokenizer, text_encoder, prompt: str = "") -> torch.Tensor:
    """(1, L, D): the text encoder's last hidden state for ``prompt`` padded to the
    tokenizer's length, as SD's pipeline conditions its UNet."""
    ids = tokenizer(
        prompt,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    return text_encoder(ids.to(text_encoder.device))[0]


class CompositionPipeline:
    """Frozen prior + control module + DDIM: ``compose`` ẑ_c into z_0, ``decode`` z_0 into x̂.

    Same stream, seed, steps and device => same image. Batches are (N, 4, h, w); h and w must
    be multiples of the UNet's downsampling (8 for SD: the codec pads images to 64 pixels).
    """

    def __init__(self, unet, controlnet, vae, text_encoder, tokenizer, scheduler):
        self.unet = unet.eval().requires_grad_(False)
        self.controlnet = controlnet.eval().requires_grad_(False)
        self.vae = vae.eval().requires_grad_(False)
        self.text_encoder = text_encoder.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self._prompt_cache: dict[str, torch.Tensor] = {}
        #: UNet evaluations so far (a forward hook counts them: what the decode really ran)
        self.unet_evaluations = 0
        self.unet.register_forward_pre_hook(self._count_evaluation)

    def _count_evaluation(self, module, args) -> None:
        self.unet_evaluations += 1

    @classmethod
    def from_pretrained(
        cls,
        prior: str | os.PathLike,
        control: str | os.PathLike | None = None,
        *,
        cache: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        fp16: bool = False,
    ) -> CompositionPipeline:
        """Load the prior's components and the control module C (a ``save_pretrained``
        directory). Without ``control``, C is a fresh copy of the UNet's encoder: its zero
        convolutions make it a no-op, i.e. the unconditional prior (tests, benchmarks).

        ``fp16`` (CUDA only) loads UNet, C and the text encoder in half precision; the VAE
        stays in float32 when its config asks to be upcast (SD's does).
        """

        device = torch.device(device)
        if fp16 and device.type != "cuda":
            raise DiscoverError("composition: fp16 needs a CUDA device")
        dtype = torch.float16 if fp16 else torch.float32
        parts = load_prior(prior, cache=cache, dtype=dtype)
        if control:
            controlnet = load_control(control, dtype)
        else:
            controlnet = control_from_unet(parts.unet)
            controlnet = controlnet.half() if fp16 else controlnet
        pipe = cls(
            parts.unet,
            controlnet,
            parts.vae,
            parts.text_encoder,
            parts.tokenizer,
            parts.scheduler,
        )
        return pipe.to(device)

    def to(self, device: str | torch.device) -> CompositionPipeline:
        for model in (self.unet, self.controlnet, self.vae, self.text_encoder):
            model.to(device)
        self._prompt_cache.clear()
        return self

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def encode_prompt(self, prompt: str = "") -> torch.Tensor:
        """(1, L, D) text embedding, cached per prompt: a decoder composes many images with
        the same prompt (by default the empty one)."""
        if prompt not in self._prompt_cache:
            hidden = prompt_embedding(self.tokenizer, self.text_encoder, prompt)
            self._prompt_cache[prompt] = hidden.to(self.dtype)
        return self._prompt_cache[prompt]

    def initial_noise(self, shape: Sequence[int], seed: int | Sequence[int]) -> torch.Tensor:
        """z_T: one generator per item, seeded by the item's seed, on the pipeline's device,
        so an item's noise does not depend on its batch. (CPU and CUDA generators differ.)"""
        n = shape[0]
        seeds = [int(seed)] * n if isinstance(seed, int) else [int(s) for s in seed]
        if len(seeds) != n:
            raise ValueError(f"{len(seeds)} seeds for a batch of {n}")
        return torch.stack(
            [
                torch.randn(
                    tuple(shape[1:]),
                    generator=torch.Generator(self.device).manual_seed(s),
                    device=self.device,
                    dtype=self.dtype,
                )
                for s in seeds
            ]
        )

    @torch.no_grad()
    def compose(
        self,
        z_c_hat: torch.Tensor,
        steps: int,
        seed: int | Sequence[int] = 0,
        prompt: str = "",
        guidance_scale: float = 1.0,
        conditioning_scale: float = 1.0,
        start: str = "noise",
    ) -> torch.Tensor:
        """z_0 from ẑ_c (N, 4, h, w): ``steps`` DDIM steps conditioned on C(ẑ_c) and ``prompt``.

        ``guidance_scale`` > 1 adds classifier-free guidance against the empty prompt (two UNet
        passes per step); the paper names no prompt or guidance: the empty prompt and none are our
        choice.

        ``start``: ``noise`` samples from z_T ~ N(0, I); ``condition`` from
        √ᾱ_T ẑ_c + √(1 − ᾱ_T) ε, the forward process q(z_T | z_0) at the first sampled step
        with ẑ_c for z_0. SD's schedule keeps √ᾱ ≈ 0.07 of the signal at t = 999 (0.11 at
        t = 876, the first of 8 steps), so training never sees pure noise; starting there
        gives the prior ẑ_c's colours and layout instead of having C create them from nothing.
        """
        if start not in STARTS:
            raise DiscoverError(f"composition: start {start!r} is not one of {list(STARTS)}")
        scheduler = type(self.scheduler).from_config(self.scheduler.config)  # no shared state
        scheduler.set_timesteps(steps, device=self.device)
        cond = z_c_hat.to(self.device, self.dtype)
        n = cond.shape[0]
        text = self.encode_prompt(prompt).expand(n, -1, -1)
        guided = guidance_scale > 1.0
        if guided:
            text = torch.cat((self.encode_prompt("").expand(n, -1, -1), text))
            cond = torch.cat((cond, cond))
        latents = self.initial_noise(z_c_hat.shape, seed)
        if start == "condition":
            first = scheduler.timesteps[:1].repeat(latents.shape[0])
            latents = scheduler.add_noise(z_c_hat.to(latents), latents, first)
        else:
            latents = latents * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            model_in = torch.cat((latents, latents)) if guided else latents
            model_in = scheduler.scale_model_input(model_in, t)
            down, mid = self.controlnet(
                model_in,
                t,
                encoder_hidden_states=text,
                controlnet_cond=cond,
                conditioning_scale=conditioning_scale,
                return_dict=False,
            )
            eps = self.unet(
                model_in,
                t,
                encoder_hidden_states=text,
                down_block_additional_residuals=down,
                mid_block_additional_residual=mid,
            ).sample
            if guided:
                uncond, text_eps = eps.chunk(2)
                eps = uncond + guidance_scale * (text_eps - uncond)
            latents = scheduler.step(eps, t, latents, eta=0.0).prev_sample
        return latents

    @torch.no_grad()
    def decode(self, z0: torch.Tensor) -> torch.Tensor:
        """x̂ = D(z_0) in [0, 1], (N, 3, 8h, 8w)."""
        return decode_latent(self.vae, z0.to(self.vae.device, self.vae.dtype)).float()

    def __call__(
        self,
        z_c_hat: torch.Tensor,
        steps: int,
        seed: int | Sequence[int] = 0,
        prompt: str = "",
        guidance_scale: float = 1.0,
        conditioning_scale: float = 1.0,
        start: str = "noise",
    ) -> torch.Tensor:
        """x̂ = D(compose(ẑ_c)): the composed images in [0, 1]."""
        z0 = self.compose(z_c_hat, steps, seed, prompt, guidance_scale, conditioning_scale, start)
        return self.decode(z0)

    @classmethod
    def from_settings(
        cls,
        settings: CompositionSettings,
        rate: str | int | float,
        *,
        cache: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
    ) -> CompositionPipeline:
        """The pipeline of one rate point as the codec config describes it."""
        return cls.from_pretrained(
            settings.prior,
            settings.control_dir(rate),
            cache=cache,
            device=device,
            fp16=settings.fp16,
        )


def decode_composed(
    model: DiscoverModel,
    c: Container,
    consumer: str,
    composer: CompositionPipeline,
    settings: CompositionSettings,
    source: str = "stream",
    viewer: str = HUMAN,
) -> np.ndarray:
    """A DISCOVER stream decoded with generative composition (paper §3.3): the model's ẑ_c
    (from what ``consumer`` receives) conditions the diffusion prior through the control
    module, ``settings.steps_for(viewer)`` DDIM steps from the seeded noise give z_0, the
    prior's VAE decodes it; cropped to the image size.

    ``composer`` must belong to the model's rate point (its control module was trained with
    that codec) and its VAE must be the one ẑ_c targets.
    """
    z_c_hat = model.decode_latent(c, consumer, source)
    return compose_images(z_c_hat, composer, settings, [(c.height, c.width)], viewer)[0]


def compose_images(
    z_c_hat: torch.Tensor,
    composer: CompositionPipeline,
    settings: CompositionSettings,
    shapes: Sequence[tuple[int, int]],
    viewer: str = HUMAN,
) -> list[np.ndarray]:
    """Images of a batch of decoded ẑ_c (N, 4, h, w): composition as one batch (each item's
    noise from its own seeded generator), the prior's VAE, each cropped to its ``shapes``
    entry (height, width)."""
    x = composer.decode(compose_latent(composer, z_c_hat, settings, viewer))
    return [tensor_to_image(x[i : i + 1], h, w) for i, (h, w) in enumerate(shapes)]


def compose_latent(
    composer: CompositionPipeline,
    z_c_hat: torch.Tensor,
    settings: CompositionSettings,
    viewer: str = HUMAN,
) -> torch.Tensor:
    """z_0 from a decoded ẑ_c, as the settings and the viewer's steps say."""
    return composer.compose(
        z_c_hat.clone(),  # out of inference mode: the composer runs under no_grad
        steps=settings.steps_for(viewer),
        seed=settings.seed,
        prompt=settings.prompt,
        guidance_scale=settings.guidance_scale,
        conditioning_scale=settings.conditioning_scale,
        start=settings.start,
    )
