"""Codec registry: built-ins register by name; plugins come from 'module:Class' strings or the
``discover.codecs`` entry-point group of installed packages."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from discover.codecs.base import Codec
from discover.errors import CodecError, ConfigError
from discover.registry import Registry

#: codec type -> the module of discover.codecs that registers it, imported when the type is
#: first asked for (planning a run of classic codecs imports no torch)
BUILTINS = {
    "avif": "avif",
    "command": "command",
    "compressai": "compressai_models",
    "discover": "discover",
    "hevc": "hevc",
    "hm": "reference_software",
    "illm": "illm",
    "jpeg": "pillow_codecs",
    "published": "published",
    "vtm": "reference_software",
    "webp": "pillow_codecs",
}

CODECS: Registry[Codec] = Registry(
    Codec,
    kind="codec",
    base_name="discover.codecs.Codec subclass",
    unknown="unknown codec type {name!r} (registered: {registered})",
    error=CodecError,
    attribute="type_name",
    group="discover.codecs",
    builtins={name: f"discover.codecs.{module}" for name, module in BUILTINS.items()},
)


def register_codec(type_name: str):
    """Class decorator: make a :class:`Codec` subclass available as codec type ``type_name``."""
    return CODECS.register(type_name)


def available() -> list[str]:
    """Names of the registered codec types and of the installed ``discover.codecs`` plugins."""
    return CODECS.available()


def resolve(type_name: str) -> type[Codec]:
    """The class of codec type ``type_name`` (registered, an entry point or 'module:Class')."""
    return CODECS.resolve(type_name)


def get_codec(name: str, config: Mapping[str, Any], threads: int = 1) -> Codec:
    """Instantiate the codec ``name`` of a validated config; it reads cached official weights
    from the config's ``weights_cache``."""
    try:
        entry = config["codecs"][name]
    except KeyError as exc:
        raise ConfigError(f"codec {name!r} is not in the config") from exc
    # A codec class living in a checkout of its authors' repository: put it on the path.
    for extra in reversed(entry.get("pythonpath") or []):
        path = str(Path(extra).expanduser())
        if not Path(path).is_dir():
            raise ConfigError(f"config key codecs.{name}.pythonpath: {path} is not a directory")
        if path not in sys.path:
            sys.path.insert(0, path)
    codec = resolve(entry["type"])(name, entry, threads=threads)
    codec.weights_cache = config.get("weights_cache")
    return codec
