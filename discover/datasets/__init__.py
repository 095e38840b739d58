"""Datasets: one module per type (synthetic-scenes, photos, folder, kodak, clic2020, coco,
imagenet), registered by name."""

from discover.datasets import (  # noqa: F401  (registration side effects)
    coco,
    folder,
    imagenet,
    photos,
    synthetic_scenes,
)
from discover.datasets.base import Dataset, Item, shard_ids, shard_items
from discover.datasets.registry import available, get_dataset, register_dataset

__all__ = [
    "Dataset",
    "Item",
    "available",
    "get_dataset",
    "register_dataset",
    "shard_ids",
    "shard_items",
]
