"""Grounder registry: backends register by name; plugins come from 'module:Class' strings."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

from discover.errors import ConfigError
from discover.grounding.base import Grounder, GroundingError

_GROUNDERS: dict[str, type[Grounder]] = {}


def register_grounder(name: str):
    """Class decorator: make a :class:`Grounder` subclass available as backend ``name``."""

    def deco(cls: type[Grounder]) -> type[Grounder]:
        cls.name = name
        _GROUNDERS[name] = cls
        return cls

    return deco


def _load_builtins() -> None:
    import discover.grounding  # noqa: F401  (registers the built-in backends)


def available() -> list[str]:
    """Names of the registered backends."""
    _load_builtins()
    return sorted(_GROUNDERS)


def resolve(name: str) -> type[Grounder]:
    """The class of backend ``name`` (a registered name or a 'module:Class' plugin)."""
    _load_builtins()
    if name in _GROUNDERS:
        return _GROUNDERS[name]
    if ":" not in name:
        raise ConfigError(
            f"unknown grounding backend {name!r} at semantics.grounding.backend "
            f"(registered: {available()})"
        )
    module, _, attr = name.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise GroundingError(f"grounding plugin {name!r} cannot be imported: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Grounder)):
        raise GroundingError(f"grounding plugin {name!r} is not a discover.grounding.Grounder")
    return cls


def get_grounder(
    grounding: Mapping[str, Any], weights_cache: str | os.PathLike | None = None
) -> Grounder:
    """The grounder configured by a ``semantics.grounding`` section: ``backend`` names it and
    the sub-section of the same name holds its options (see :mod:`discover.grounding`)."""
    backend = grounding.get("backend")
    if not isinstance(backend, str):
        raise ConfigError(f"semantics.grounding.backend must be a backend name, got {backend!r}")
    options = grounding.get(backend) or {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"semantics.grounding.{backend} must be a mapping, got {options!r}")
    return resolve(backend)(options, weights_cache=weights_cache)
