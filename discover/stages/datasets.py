"""Stages of rules/datasets.smk: reference shards and a dataset's merged annotations."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from discover.datasets import get_dataset, shard_items
from discover.datasets.base import dataset_shard_size
from discover.io import atomic_dir, write_text_atomic
from discover.shards import (
    merged_annotations,
    write_image,
    write_reference_shard,
)

log = logging.getLogger("discover")


def prepare_shard(config: Mapping[str, Any], dataset: str, shard: str, out_dir: str | Path) -> None:
    """Write the shard's reference images (after the dataset protocol) in the reference-shard
    format (:mod:`discover.shards`)."""
    ds = get_dataset(dataset, config)
    items = shard_items(ds.sharded_items(), dataset_shard_size(config, dataset), shard)
    with atomic_dir(out_dir) as tmp:
        rows, sizes = [], {}
        for item in items:
            image = ds.load(item)
            h, w = image.shape[:2]
            write_image(tmp, item.id, image)
            sizes[item.id] = (w, h)
            rows.append(
                {
                    "id": item.id,
                    "width": w,
                    "height": h,
                    "label": ds.label(item),
                    "source": item.source,
                }
            )
        annotations = ds.annotations(items, sizes) if ds.has_annotations else None
        write_reference_shard(tmp, rows, annotations)
        log.info("dataset %s shard %s: %d images", dataset, shard, len(rows))


def merge_annotations(shard_dirs: Sequence[str | Path], out_json: str | Path) -> None:
    """Concatenate the shards' COCO annotations into one instances file (every shard of a
    dataset with annotations has them)."""
    write_text_atomic(out_json, json.dumps(merged_annotations(shard_dirs)))
