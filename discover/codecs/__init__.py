"""Codecs: one module per implementation, registered by type name."""

from discover.codecs import (  # noqa: F401  (registration)
    avif,
    command,
    compressai_models,
    discover_codec,
    hevc,
    illm,
    pillow_codecs,
    published,
    reference_software,
)
from discover.codecs.base import Codec
from discover.codecs.registry import available, get_codec, register_codec, resolve

__all__ = ["Codec", "available", "get_codec", "register_codec", "resolve"]
