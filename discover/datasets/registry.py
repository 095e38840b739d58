"""Registry of dataset types: one module per type registers itself with ``@register_dataset``
(:mod:`discover.datasets` imports them all)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from discover.datasets.base import Dataset
from discover.errors import DatasetError
from discover.registry import Registry

DATASETS: Registry[Dataset] = Registry(
    Dataset,
    kind="dataset",
    base_name="discover.datasets.Dataset",
    unknown="unknown dataset type {name!r} (registered: {registered})",
    error=DatasetError,
    unknown_error=DatasetError,
    attribute="type_name",
    builtins=["discover.datasets"],
)


def register_dataset(type_name: str):
    """Class decorator: make a :class:`Dataset` subclass available as dataset type
    ``type_name``."""
    return DATASETS.register(type_name)


def available() -> list[str]:
    """Names of the registered dataset types."""
    return DATASETS.available()


def get_dataset(name: str, config: Mapping[str, Any]) -> Dataset:
    """Instantiate the dataset ``name`` of a validated config."""
    try:
        entry = config["datasets"][name]
    except KeyError as exc:
        raise DatasetError(f"dataset {name!r} is not in the config") from exc
    # Dataset types are the registered ones only (no 'module:Class' plugins).
    cls = DATASETS.get(entry["type"])
    if cls is None:
        raise DatasetError(f"dataset {name!r}: unknown type {entry['type']!r}")
    return cls(name, entry, seed=config.get("seed", 0), protocols=config.get("protocols"))
