"""Codecs: one module per implementation, registered by type name."""

from discover.codecs import avif, command, hevc, pillow_codecs  # noqa: F401  (registration)
from discover.codecs.base import Codec
from discover.codecs.registry import available, get_codec, register_codec, resolve

__all__ = ["Codec", "available", "get_codec", "register_codec", "resolve"]
