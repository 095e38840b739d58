"""The DISCOVER codec: task-masked ELIC latent, structured ``.dsc`` bitstream, ẑ_c synthesis."""

from discover.discover_codec.bitstream import HUMAN, Container, TaskPart
from discover.discover_codec.net import FULL, MINI, CodecConfig, DiscoverCodecNet
from discover.errors import BitstreamError

__all__ = [
    "FULL",
    "HUMAN",
    "MINI",
    "BitstreamError",
    "CodecConfig",
    "Container",
    "DiscoverCodecNet",
    "TaskPart",
]
