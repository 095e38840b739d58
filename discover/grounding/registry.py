"""Grounder registry: backends register by name; plugins come from 'module:Class' strings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from discover.errors import ConfigError, GroundingError
from discover.grounding.base import Grounder
from discover.registry import Registry

GROUNDERS: Registry[Grounder] = Registry(
    Grounder,
    kind="grounding",
    base_name="discover.grounding.Grounder",
    unknown=(
        "unknown grounding backend {name!r} at semantics.grounding.backend "
        "(registered: {registered})"
    ),
    error=GroundingError,
    attribute="name",
    # backend -> the module that registers it, imported when the backend is first asked for
    builtins={
        "detector": "discover.grounding.detector",
        "grounding-dino": "discover.grounding.grounding_dino",
        "gt": "discover.grounding.gt",
        "none": "discover.grounding.none",
    },
)


def register_grounder(name: str):
    """Class decorator: make a :class:`Grounder` subclass available as backend ``name``."""
    return GROUNDERS.register(name)


def available() -> list[str]:
    """Names of the registered backends."""
    return GROUNDERS.available()


def resolve(name: str) -> type[Grounder]:
    """The class of backend ``name`` (a registered name or a 'module:Class' plugin)."""
    return GROUNDERS.resolve(name)


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
