"""The DISCOVER codec's geometry, without torch: the stride of ŷ, the padding multiple of the
image, and the size of ŷ for an image. The container, the masks and the header commands read it
(they need no network); :mod:`discover.discover_codec.net` builds on it."""

from __future__ import annotations

LATENT_STRIDE = 16  # ŷ is at 1/16 of the image
PAD_MULTIPLE = 64  # 2^6: the hyperprior's six stride-2 stages (ẑ at 1/64)


def latent_grid(height: int, width: int) -> tuple[int, int]:
    """Size of ŷ for an image of ``height`` x ``width`` (after padding)."""
    return (
        -(-height // PAD_MULTIPLE) * (PAD_MULTIPLE // LATENT_STRIDE),
        -(-width // PAD_MULTIPLE) * (PAD_MULTIPLE // LATENT_STRIDE),
    )
