"""The DISCOVER codec: task-masked ELIC latent, structured ``.dsc`` bitstream, ẑ_c synthesis.

The names below load on first use, so that :mod:`discover.discover_codec.consumers` (read by
the plan) imports without PyTorch.
"""

from __future__ import annotations

from discover.registry import lazy_exports

_EXPORTS = {
    "HUMAN": "discover.discover_codec.consumers",
    "MACHINE": "discover.discover_codec.consumers",
    "VIEWERS": "discover.discover_codec.consumers",
    "Container": "discover.discover_codec.bitstream",
    "Part": "discover.discover_codec.bitstream",
    "FULL": "discover.discover_codec.net",
    "MINI": "discover.discover_codec.net",
    "CodecConfig": "discover.discover_codec.net",
    "DiscoverCodecNet": "discover.discover_codec.net",
    "BitstreamError": "discover.errors",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
