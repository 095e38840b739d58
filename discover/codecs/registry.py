"""Codec registry: built-ins register by name; plugins come from 'module:Class' strings or the
``discover.codecs`` entry-point group of installed packages."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from discover.codecs.base import Codec
from discover.errors import CodecError, ConfigError

_CODECS: dict[str, type[Codec]] = {}


def register_codec(type_name: str):
    def deco(cls: type[Codec]) -> type[Codec]:
        cls.type_name = type_name
        _CODECS[type_name] = cls
        return cls

    return deco


def _entry_point_codecs() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group="discover.codecs")}


def available() -> list[str]:
    _load_builtins()
    return sorted(set(_CODECS) | set(_entry_point_codecs()))


#: the modules of the built-in codecs (each registers its classes when imported)
BUILTINS = (
    "avif",
    "command",
    "compressai_models",
    "discover_codec",
    "hevc",
    "illm",
    "pillow_codecs",
    "published",
    "reference_software",
)


def _load_builtins() -> None:
    for module in BUILTINS:
        importlib.import_module(f"discover.codecs.{module}")


def resolve(type_name: str) -> type[Codec]:
    _load_builtins()
    if type_name in _CODECS:
        return _CODECS[type_name]
    eps = _entry_point_codecs()
    if type_name in eps:
        cls = eps[type_name].load()
    elif ":" in type_name:
        module, _, attr = type_name.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise CodecError(f"codec plugin {type_name!r} cannot be imported: {exc}") from exc
    else:
        raise ConfigError(f"unknown codec type {type_name!r} (registered: {available()})")
    if not (isinstance(cls, type) and issubclass(cls, Codec)):
        raise CodecError(f"codec plugin {type_name!r} is not a discover.codecs.Codec subclass")
    return cls


def get_codec(name: str, config: Mapping[str, Any], threads: int = 1) -> Codec:
    """Instantiate the codec ``name`` of a validated config."""
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
    return resolve(entry["type"])(name, entry, threads=threads)
