"""Codecs: one module per implementation, registered by type name. The modules are imported
when the registry is first asked (``get_codec``, ``resolve``, ``available``), so that rule jobs
which never build a codec do not pay for PyTorch and CompressAI."""

from discover.codecs.base import Codec
from discover.codecs.registry import available, get_codec, register_codec, resolve

__all__ = ["Codec", "available", "get_codec", "register_codec", "resolve"]
