"""Registry of dataset types: one module per type registers itself with ``@register_dataset``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from discover.datasets.base import Dataset
from discover.errors import DatasetError

_DATASETS: dict[str, type[Dataset]] = {}


def register_dataset(type_name: str):
    def deco(cls: type[Dataset]) -> type[Dataset]:
        cls.type_name = type_name
        _DATASETS[type_name] = cls
        return cls

    return deco


def available() -> list[str]:
    return sorted(_DATASETS)


def get_dataset(name: str, config: Mapping[str, Any]) -> Dataset:
    """Instantiate the dataset ``name`` of a validated config."""
    try:
        entry = config["datasets"][name]
    except KeyError as exc:
        raise DatasetError(f"dataset {name!r} is not in the config") from exc
    cls = _DATASETS.get(entry["type"])
    if cls is None:
        raise DatasetError(f"dataset {name!r}: unknown type {entry['type']!r}")
    return cls(name, entry, seed=config.get("seed", 0), protocols=config.get("protocols"))
