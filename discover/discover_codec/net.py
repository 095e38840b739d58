"""The DISCOVER codec network: ELIC's analysis, hyperprior and entropy model, plus the global
information net M and a synthesis g_s whose output is a Stable Diffusion VAE latent.

Built from CompressAI's building blocks with the module names of CompressAI's
``Elic2022Official`` (``g_a``, ``latent_codec.hyper``, ``latent_codec.y``), so an ELIC checkpoint
initialises the encoder side directly. What differs from ELIC:

* **Quantisation.** ŷ = round(y), not round(y - μ) + μ: the value of a latent element does not
  depend on its context, so a task stream (decoded with only the task's part as context) and the
  full stream agree on every element they share. The entropy coder codes round(y) - round(μ)
  with the Gaussian of scale σ; the mean offset is rounded, which costs a little rate.
* **Synthesis.** ``g_s`` is ELIC's synthesis up to its last two layers (the final residual block
  and the transposed conv to RGB) with one upsampling stage instead of four, ending in a 3x3
  conv to the VAE's latent channels: ŷ lives at 1/16 of the image, the SD latent at 1/8.
  Its input is ŷ (or the task's part ỹ_i, zero elsewhere) concatenated with M(ẑ).
* **M** (global information): two transposed convs (1/64 -> 1/16) and one conv, giving coarse
  global information at the resolution of ŷ from the always-transmitted ẑ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.latent_codecs import (
    ChannelGroupsLatentCodec,
    CheckerboardLatentCodec,
    GaussianConditionalLatentCodec,
    HyperLatentCodec,
    HyperpriorLatentCodec,
)
from compressai.layers import AttentionBlock, CheckerboardMaskedConv2d, sequential_channel_ramp
from compressai.models.sensetime import ResidualBottleneckBlock
from compressai.models.utils import conv, deconv
from compressai.ops import quantize_ste

from discover.discover_codec.geometry import LATENT_STRIDE, PAD_MULTIPLE, latent_grid  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class CodecConfig:
    """Hyperparameters of a DISCOVER codec. ``full`` is the paper's; ``mini`` the embedded one."""

    N: int = 192
    M: int = 320
    groups: tuple[int, ...] = (16, 16, 32, 64, 192)
    #: hidden widths of ELIC's channel-context nets g_ch (224, 128 in ELIC)
    context_channels: tuple[int, int] = (224, 128)
    #: channels of M(ẑ), the coarse global information
    global_channels: int = 192
    #: channels of the Stable Diffusion VAE latent
    latent_channels: int = 4
    #: residual bottleneck blocks per g_a stage (3 in ELIC)
    blocks: int = 3
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if sum(self.groups) != self.M:
            raise ValueError(f"channel groups {list(self.groups)} do not sum to M={self.M}")

    @classmethod
    def from_dict(cls, d: dict) -> CodecConfig:
        d = dict(d)
        for key in ("groups", "context_channels"):
            if key in d:
                d[key] = tuple(int(v) for v in d[key])
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("extra")
        d["groups"] = list(self.groups)
        d["context_channels"] = list(self.context_channels)
        return d


FULL = CodecConfig()
MINI = CodecConfig(
    N=32,
    M=64,
    groups=(8, 8, 16, 32),
    context_channels=(32, 32),
    global_channels=32,
    blocks=1,
)


def _stage(n: int, blocks: int) -> list[nn.Module]:
    return [ResidualBottleneckBlock(n, n) for _ in range(blocks)]


class DiscoverCodecNet(nn.Module):
    def __init__(self, cfg: CodecConfig = FULL):
        super().__init__()
        self.cfg = cfg
        N, M, groups, b = cfg.N, cfg.M, list(cfg.groups), cfg.blocks
        self.groups = groups

        self.g_a = nn.Sequential(
            conv(3, N, kernel_size=5, stride=2),
            *_stage(N, b),
            conv(N, N, kernel_size=5, stride=2),
            *_stage(N, b),
            AttentionBlock(N),
            conv(N, N, kernel_size=5, stride=2),
            *_stage(N, b),
            conv(N, M, kernel_size=5, stride=2),
            AttentionBlock(M),
        )
        h_a = nn.Sequential(
            conv(M, N, kernel_size=3, stride=1),
            nn.ReLU(inplace=True),
            conv(N, N, kernel_size=5, stride=2),
            nn.ReLU(inplace=True),
            conv(N, N, kernel_size=5, stride=2),
        )
        h_s = nn.Sequential(
            deconv(N, N, kernel_size=5, stride=2),
            nn.ReLU(inplace=True),
            deconv(N, N * 3 // 2, kernel_size=5, stride=2),
            nn.ReLU(inplace=True),
            deconv(N * 3 // 2, N * 2, kernel_size=3, stride=1),
        )
        c1, c2 = cfg.context_channels
        channel_context = {
            f"y{k}": nn.Sequential(
                conv(sum(groups[:k]), c1, kernel_size=5, stride=1),
                nn.ReLU(inplace=True),
                conv(c1, c2, kernel_size=5, stride=1),
                nn.ReLU(inplace=True),
                conv(c2, groups[k] * 2, kernel_size=5, stride=1),
            )
            for k in range(1, len(groups))
        }
        spatial_context = [
            CheckerboardMaskedConv2d(g, g * 2, kernel_size=5, stride=1, padding=2) for g in groups
        ]
        param_aggregation = [
            sequential_channel_ramp(
                groups[k] * 2 + (k > 0) * groups[k] * 2 + N * 2,
                groups[k] * 2,
                min_ch=N * 2,
                num_layers=3,
                interp="linear",
                make_layer=nn.Conv2d,
                make_act=lambda: nn.ReLU(inplace=True),
                kernel_size=1,
                stride=1,
                padding=0,
            )
            for k in range(len(groups))
        ]
        scctx = {
            f"y{k}": CheckerboardLatentCodec(
                latent_codec={"y": GaussianConditionalLatentCodec(quantizer="ste")},
                context_prediction=spatial_context[k],
                entropy_parameters=param_aggregation[k],
            )
            for k in range(len(groups))
        }
        self.latent_codec = HyperpriorLatentCodec(
            latent_codec={
                "y": ChannelGroupsLatentCodec(
                    groups=groups, channel_context=channel_context, latent_codec=scctx
                ),
                "hyper": HyperLatentCodec(
                    entropy_bottleneck=EntropyBottleneck(N), h_a=h_a, h_s=h_s, quantizer="ste"
                ),
            }
        )
        G = cfg.global_channels
        self.M = nn.Sequential(
            deconv(N, N, kernel_size=5, stride=2),
            nn.ReLU(inplace=True),
            deconv(N, N, kernel_size=5, stride=2),
            nn.ReLU(inplace=True),
            conv(N, G, kernel_size=3, stride=1),
        )
        self.g_s = nn.Sequential(
            AttentionBlock(M + G),
            deconv(M + G, N, kernel_size=5, stride=2),
            *_stage(N, b),
            conv(N, N, kernel_size=5, stride=1),
            AttentionBlock(N),
            *_stage(N, b),
            conv(N, N, kernel_size=5, stride=1),
            *_stage(N, max(b - 1, 0)),
            conv(N, cfg.latent_channels, kernel_size=3, stride=1),
        )

    # -- pieces the entropy coder and the trainer share ------------------------------------
    @property
    def hyper(self) -> HyperLatentCodec:
        return self.latent_codec["hyper"]

    @property
    def entropy_bottleneck(self) -> EntropyBottleneck:
        return self.hyper.entropy_bottleneck

    def gaussian(self, k: int) -> GaussianConditional:
        return self.latent_codec["y"].latent_codec[f"y{k}"]["y"].gaussian_conditional

    def group_params(
        self, k: int, anchor_phase: bool, y_visible: torch.Tensor, hyper_params: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scales, means) of channel group ``k`` for one checkerboard phase.

        ``y_visible`` is ŷ as the decoder knows it at this point: exact values where known,
        zero elsewhere. Group k's channel context reads groups < k; its spatial context reads
        only group k's anchors (the checkerboard mask), and nothing at all for the anchors.
        """
        y_codec = self.latent_codec["y"]
        cb = y_codec.latent_codec[f"y{k}"]
        lo, hi = sum(self.groups[:k]), sum(self.groups[: k + 1])
        side = hyper_params
        if k > 0:
            side = torch.cat((y_codec.channel_context[f"y{k}"](y_visible[:, :lo]), side), dim=1)
        y_k = y_visible[:, lo:hi]
        if anchor_phase:
            b, _, h, w = y_k.shape
            ctx = y_k.new_zeros((b, 2 * (hi - lo), h, w))
        else:
            ctx = cb.context_prediction(keep_anchors(y_k))
        params = cb.entropy_parameters(torch.cat((ctx, side), dim=1))
        scales, means = params.chunk(2, 1)
        return scales, means

    def synthesize(self, y_part: torch.Tensor, z_hat: torch.Tensor) -> torch.Tensor:
        """ẑ_c = g_s(ỹ, M(ẑ)): the reconstructed diffusion latent."""
        return self.g_s(torch.cat((y_part, self.M(z_hat)), dim=1))

    # -- training --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> dict:
        """Training / evaluation pass. ``keep`` (B, 1, h, w) selects the transmitted part of ŷ.

        Returns ẑ_c, the likelihoods of ŷ (full contexts) and ẑ, and ŷ.
        """
        y = self.g_a(x)
        z = self.hyper.h_a(y)
        _, z_lik = self.entropy_bottleneck(z)
        medians = self.entropy_bottleneck._get_medians()
        z_hat = quantize_ste(z - medians) + medians
        hyper_params = self.hyper.h_s(z_hat)
        y_hat = quantize_ste(y)
        scales = torch.zeros_like(y)
        means = torch.zeros_like(y)
        anchors = anchor_mask(y.shape[-2:], y.device)
        for k in range(len(self.groups)):
            lo, hi = sum(self.groups[:k]), sum(self.groups[: k + 1])
            for phase, where in ((True, anchors), (False, ~anchors)):
                s, m = self.group_params(k, phase, y_hat, hyper_params)
                scales[:, lo:hi] = torch.where(where, s, scales[:, lo:hi])
                means[:, lo:hi] = torch.where(where, m, means[:, lo:hi])
        _, y_lik = self.gaussian(0)(y, scales, means=means)
        y_part = y_hat if keep is None else y_hat * keep
        return {
            "z_c_hat": self.synthesize(y_part, z_hat),
            "likelihoods": {"y": y_lik, "z": z_lik},
            "y_hat": y_hat,
        }

    def update(self, force: bool = True) -> None:
        self.entropy_bottleneck.update(force=force)
        for k in range(len(self.groups)):
            g = self.gaussian(k)
            g.update_scale_table(_scale_table(), force=force)

    def fingerprint(self) -> bytes:
        """8 bytes identifying the weights (sha256 over parameter names and values)."""
        h = hashlib.sha256()
        for name, tensor in sorted(self.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
        return h.digest()[:8]


def _scale_table() -> list[float]:
    from compressai.models.base import get_scale_table

    return get_scale_table().tolist()


def anchor_mask(shape: Sequence[int], device=None) -> torch.Tensor:
    """(h, w) bool: the checkerboard anchors (row + column even), decoded first."""
    h, w = shape
    r = torch.arange(h, device=device)[:, None]
    c = torch.arange(w, device=device)[None, :]
    return (r + c) % 2 == 0


def keep_anchors(y: torch.Tensor) -> torch.Tensor:
    return y * anchor_mask(y.shape[-2:], y.device).to(y.dtype)


def pad_image(x: torch.Tensor, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """Pad (B, 3, H, W) on the bottom/right by edge replication to a multiple of ``multiple``."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, (-w) % multiple, 0, (-h) % multiple), mode="replicate")


def parameter_counts(net: DiscoverCodecNet) -> dict[str, int]:
    """Parameters per part: g_a, entropy model (hyperprior + contexts), M, g_s."""

    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    return {
        "g_a": count(net.g_a),
        "entropy_model": count(net.latent_codec),
        "M": count(net.M),
        "g_s": count(net.g_s),
        "total": count(net),
    }
