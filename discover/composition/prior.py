"""A tiny Stable-Diffusion-shaped diffusion prior for the embedded (``mini``) scale.

The paper composes with SD 2.1-base; the mini pipeline needs something that runs on two CPU
cores. :func:`build_prior` writes a directory with SD 2.1-base's layout and classes:

```
unet/          UNet2DConditionModel   (TINY_UNET_CONFIG: ~1.2 M parameters, latent 16x16)
vae/           AutoencoderKL          (a copy of the codec's VAE, weights/discover-mini/vae)
text_encoder/  CLIPTextModel          (TINY_TEXT_CONFIG: 2 layers of width 32)
tokenizer/     CLIPTokenizer          (byte-level vocabulary, no merges: written here, offline)
scheduler/     DDIMScheduler          (SD 2.1-base's schedule: scaled-linear betas; ε-prediction
                                       as SD 2.1-base unless ``prediction_type`` says otherwise:
                                       the committed weights/discover-gen/prior is v-prediction)
model_index.json
```

so that :class:`discover.composition.pipeline.CompositionPipeline` loads it, and SD 2.1-base,
through the same code. The UNet is trained as an unconditional prior
(:func:`discover.training.composition.train_prior`): it always sees the empty prompt's
embedding, which is a constant, so the text encoder's (random) weights only fix that constant.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

#: SD 2.1-base's noise schedule and its pipeline's DDIM settings (its scheduler_config.json
#: names PNDMScheduler with these values; DDIMScheduler.from_config reads them alike).
SD_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
}

#: SD 2.x's UNet layout at toy width: cross-attention down/up blocks around a plain one,
#: linear projections, `attention_head_dim` counting heads as SD 2.x's config does. 16x16
#: latents = 128x128 crops through the tiny VAE (any multiple of 4 works).
TINY_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 16,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 1,
    "block_out_channels": [32, 48, 64],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "cross_attention_dim": 32,
    "attention_head_dim": [2, 3, 4],
    "use_linear_projection": True,
    "norm_num_groups": 8,
}

#: A CLIP text transformer of the same class as SD 2.1-base's (OpenCLIP ViT-H/14's, width
#: 1024, 23 layers), 16 tokens long instead of 77: the mini prompt is always empty.
TINY_TEXT_CONFIG: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "max_position_embeddings": 16,
    "projection_dim": 32,
    "hidden_act": "gelu",
}

#: SD 2.1-base's published configs (stabilityai/stable-diffusion-2-1-base, unet/ vae/
#: text_encoder/ config.json), written out: the reference the tiny configs shrink, and what the
#: tests and benchmarks build on the meta device without any download.
SD21_BASE_UNET_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": [5, 10, 20, 20],
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 1024,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "downsample_padding": 1,
    "dual_cross_attention": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": [
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ],
    "use_linear_projection": True,
}
SD21_BASE_VAE_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 768,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
SD21_BASE_TEXT_CONFIG: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 512,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table (byte-level BPE alphabet),
    in CLIP's order: printable bytes as themselves, then the rest mapped to chr(256 + n)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    table = {b: chr(b) for b in printable}
    for n, b in enumerate(b for b in range(256) if b not in table):
        table[b] = chr(256 + n)
    return table


def byte_level_vocab() -> dict[str, int]:
    """CLIP's base vocabulary without merges: 256 byte symbols, the same with the end-of-word
    marker, then the two special tokens (CLIP's order, so ids fit CLIPTextModel's)."""
    chars = list(_bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}


def tiny_tokenizer(max_length: int = TINY_TEXT_CONFIG["max_position_embeddings"]):
    """A ``CLIPTokenizer`` built offline: CLIP's pre-tokenisation and byte alphabet, no merges
    (every character is one token). Saved with ``save_pretrained`` it loads like SD's."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer(
        vocab=byte_level_vocab(),
        merges=[],
        bos_token=BOS,
        eos_token=EOS,
        unk_token=EOS,
        pad_token=EOS,
        model_max_length=max_length,
    )


def tiny_text_encoder(config: Mapping[str, Any] | None = None):
    from transformers import CLIPTextConfig, CLIPTextModel

    vocab = byte_level_vocab()
    cfg = CLIPTextConfig(
        **{**TINY_TEXT_CONFIG, **(config or {})},
        vocab_size=len(vocab),
        bos_token_id=vocab[BOS],
        eos_token_id=vocab[EOS],
        pad_token_id=vocab[EOS],
    )
    return CLIPTextModel(cfg)


def build_prior(
    out_dir: str | os.PathLike,
    vae_dir: str | os.PathLike,
    *,
    seed: int = 0,
    unet_config: Mapping[str, Any] | None = None,
    text_config: Mapping[str, Any] | None = None,
    scheduler_config: Mapping[str, Any] | None = None,
    unet=None,
) -> Path:
    """Write an SD-layout prior directory: ``unet`` (given, else freshly initialised from
    ``unet_config``), a copy of the VAE in ``vae_dir``, a tiny text encoder and tokenizer and a
    DDIM scheduler (SD 2.1-base's schedule, ``scheduler_config`` overriding keys such as
    ``prediction_type``). ``out_dir`` is written in place; callers wanting atomicity pass a
    temporary directory (as :func:`discover.training.composition.train_prior` does)."""
    from diffusers import DDIMScheduler, UNet2DConditionModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if unet is None:
        unet = UNet2DConditionModel(**{**TINY_UNET_CONFIG, **(unet_config or {})})
    text_encoder = tiny_text_encoder(text_config)
    if unet.config.cross_attention_dim != text_encoder.config.hidden_size:
        raise ValueError(
            f"UNet cross_attention_dim {unet.config.cross_attention_dim} != text encoder "
            f"hidden_size {text_encoder.config.hidden_size}"
        )
    unet.save_pretrained(out / "unet")
    text_encoder.save_pretrained(out / "text_encoder")
    tiny_tokenizer(text_encoder.config.max_position_embeddings).save_pretrained(out / "tokenizer")
    DDIMScheduler(**{**SD_SCHEDULE, **(scheduler_config or {})}).save_pretrained(out / "scheduler")
    # A copy, not a link: the directory must stay valid when moved, committed or synced to a
    # compute node; the VAE is small (0.6 M parameters).
    if (out / "vae").exists():
        shutil.rmtree(out / "vae")
    shutil.copytree(vae_dir, out / "vae")
    index = {
        "_class_name": "DiscoverCompositionPrior",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "DDIMScheduler"],
    }
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return out
