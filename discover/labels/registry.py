"""Label-generator registry: built-ins register by name; plugins come from 'module:Class'
strings or the ``discover.label_generators`` entry-point group of installed packages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from discover.errors import LabelGenerationError
from discover.labels.base import LabelGenerator
from discover.registry import Registry

GENERATORS: Registry[LabelGenerator] = Registry(
    LabelGenerator,
    kind="label generator",
    base_name="discover.labels.LabelGenerator",
    unknown=(
        "config key semantics.labels.backend: unknown label generator {name!r} "
        "(registered: {registered})"
    ),
    error=LabelGenerationError,
    attribute="type_name",
    group="discover.label_generators",
    builtins=["discover.labels"],  # registers the built-in backends
)


def register_label_generator(
    type_name: str,
) -> Callable[[type[LabelGenerator]], type[LabelGenerator]]:
    """Class decorator: make a LabelGenerator available as ``semantics.labels.backend``."""
    return GENERATORS.register(type_name)


def available() -> list[str]:
    """Names of the registered label-generator backends."""
    return GENERATORS.available()


def resolve(type_name: str) -> type[LabelGenerator]:
    """The LabelGenerator class registered as ``type_name`` (or a 'module:Class' plugin)."""
    return GENERATORS.resolve(type_name)


def get_label_generator(type_name: str, cfg: Mapping[str, Any] | None = None) -> LabelGenerator:
    """Instantiate the backend ``type_name`` with its own config section."""
    return resolve(type_name)(cfg)
