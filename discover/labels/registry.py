"""Label-generator registry: built-ins register by name; plugins come from 'module:Class'
strings or the ``discover.label_generators`` entry-point group of installed packages."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from discover.errors import ConfigError
from discover.labels.base import LabelGenerationError, LabelGenerator

_GENERATORS: dict[str, type[LabelGenerator]] = {}


def register_label_generator(
    type_name: str,
) -> Callable[[type[LabelGenerator]], type[LabelGenerator]]:
    """Class decorator: make a LabelGenerator available as ``semantics.labels.backend``."""

    def deco(cls: type[LabelGenerator]) -> type[LabelGenerator]:
        cls.type_name = type_name
        _GENERATORS[type_name] = cls
        return cls

    return deco


def _entry_point_generators() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group="discover.label_generators")}


def _load_builtins() -> None:
    import discover.labels  # noqa: F401  (registers the built-in backends)


def available() -> list[str]:
    """Names of the registered label-generator backends."""
    _load_builtins()
    return sorted(set(_GENERATORS) | set(_entry_point_generators()))


def resolve(type_name: str) -> type[LabelGenerator]:
    """The LabelGenerator class registered as ``type_name`` (or a 'module:Class' plugin)."""
    _load_builtins()
    if type_name in _GENERATORS:
        return _GENERATORS[type_name]
    eps = _entry_point_generators()
    if type_name in eps:
        cls = eps[type_name].load()
    elif ":" in type_name:
        module, _, attr = type_name.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise LabelGenerationError(
                f"label generator plugin {type_name!r} cannot be imported: {exc}"
            ) from exc
    else:
        raise ConfigError(
            f"config key semantics.labels.backend: unknown label generator {type_name!r} "
            f"(registered: {available()})"
        )
    if not (isinstance(cls, type) and issubclass(cls, LabelGenerator)):
        raise LabelGenerationError(
            f"label generator plugin {type_name!r} is not a discover.labels.LabelGenerator"
        )
    return cls


def get_label_generator(type_name: str, cfg: Mapping[str, Any] | None = None) -> LabelGenerator:
    """Instantiate the backend ``type_name`` with its own config section."""
    return resolve(type_name)(cfg)
