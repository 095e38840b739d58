"""The reference-shard format, written by ``prepare_shard`` and read by every later job.

A reference shard is a folder ``<out>/<dataset>/reference/s<NNNN>/`` holding

- ``{id}.png``: each image after the dataset's protocol (RGB, PNG);
- ``index.csv``: one row per image (``id, width, height, label, source``), in dataset order;
- ``annotations.json``: the shard's COCO instances, when the dataset has annotations.

A decoded shard (``<out>/<dataset>/<row>/<rate>/s<NNNN>/``) holds ``{id}.png`` for the same ids.
This module is the only one that knows these names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from discover.errors import DatasetError
from discover.images import read_rgb, write_png

INDEX = "index.csv"
ANNOTATIONS = "annotations.json"
PathLike = str | Path


def image_path(shard_dir: PathLike, image_id: str) -> Path:
    """Where an image of a (reference or decoded) shard lives."""
    return Path(shard_dir) / f"{image_id}.png"


def write_image(shard_dir: PathLike, image_id: str, image: np.ndarray) -> None:
    """Write one image of a shard (PNG, fast compression: shards are intermediate)."""
    write_png(image, image_path(shard_dir, image_id))


def read_image(shard_dir: PathLike, image_id: str) -> np.ndarray:
    """One image of a shard as (H, W, 3) uint8; DatasetError naming the file if unreadable."""
    return read_rgb(image_path(shard_dir, image_id), error=DatasetError)


def write_reference_shard(
    shard_dir: PathLike, rows: Sequence[Mapping[str, Any]], annotations: dict | None
) -> None:
    """The index (and annotations) of a reference shard whose images are written already."""
    pd.DataFrame(list(rows)).to_csv(Path(shard_dir) / INDEX, index=False)
    if annotations is not None:
        (Path(shard_dir) / ANNOTATIONS).write_text(json.dumps(annotations))


def read_index(reference_dir: PathLike) -> pd.DataFrame:
    """The shard's index (ids as strings)."""
    path = Path(reference_dir) / INDEX
    if not path.exists():
        raise DatasetError(f"reference shard {reference_dir} has no {INDEX}")
    return pd.read_csv(path, dtype={"id": str})


def image_ids(reference_dir: PathLike) -> list[str]:
    """The shard's image ids, in dataset order."""
    return list(read_index(reference_dir)["id"])


def read_annotations(reference_dir: PathLike) -> dict | None:
    """The shard's COCO instances document, or None for a dataset without annotations."""
    path = Path(reference_dir) / ANNOTATIONS
    return json.loads(path.read_text()) if path.is_file() else None


def annotations_by_image(reference_dir: PathLike) -> dict[str, list] | None:
    """Image id -> its COCO annotations (None without annotations)."""
    coco = read_annotations(reference_dir)
    if coco is None:
        return None
    by_image: dict[int, list] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    return {Path(img["file_name"]).stem: by_image.get(img["id"], []) for img in coco["images"]}


def coco_ids(reference_dir: PathLike) -> dict[str, int]:
    """Image id of the shard index -> its integer COCO image id (from the shard's annotations;
    without annotations, the image's position in the dataset)."""
    index = read_index(reference_dir)
    coco = read_annotations(reference_dir)
    if coco is not None:
        by_stem = {Path(img["file_name"]).stem: int(img["id"]) for img in coco["images"]}
        missing = [i for i in index["id"] if i not in by_stem]
        if missing:
            path = Path(reference_dir) / ANNOTATIONS
            raise DatasetError(f"{path}: image {missing[0]} of the shard has no annotation entry")
        return {i: by_stem[i] for i in index["id"]}
    shard = int(Path(reference_dir).name.lstrip("s") or 0)
    return {i: shard * 1_000_000 + k for k, i in enumerate(index["id"])}


def merged_annotations(reference_dirs: Sequence[PathLike]) -> dict:
    """The shards' COCO annotations as one document; a shard without annotations adds its
    images with the index's class labels (classification)."""
    merged: dict[str, list] = {"images": [], "annotations": [], "categories": []}
    for d in reference_dirs:
        part = read_annotations(d)
        if part is not None:
            merged["images"] += part["images"]
            merged["annotations"] += part["annotations"]
            merged["categories"] = part["categories"]
            continue
        index = read_index(d)
        for stem, coco_id in coco_ids(d).items():
            label = index.loc[index["id"] == stem, "label"].iloc[0]
            merged["images"].append({"id": coco_id, "file_name": f"{stem}.png", "label": label})
    return merged


def shard_images(reference_dirs: Sequence[PathLike], image_dirs: Sequence[PathLike]) -> list[Path]:
    """The PNGs of decoded (or reference) shards, in index order, every one checked to exist."""
    if len(reference_dirs) != len(image_dirs):
        raise DatasetError(
            f"{len(reference_dirs)} reference shards but {len(image_dirs)} decoded shards"
        )
    paths = []
    for ref_dir, img_dir in zip(reference_dirs, image_dirs, strict=True):
        for image_id in image_ids(ref_dir):
            path = image_path(img_dir, image_id)
            if not path.is_file():
                raise DatasetError(f"decoded image {path} is missing")
            paths.append(path)
    return paths


def iter_images(shard_dir: PathLike, ids: Sequence[str]) -> Iterator[tuple[str, np.ndarray]]:
    """(id, image) of a shard's images in the given order."""
    for image_id in ids:
        yield image_id, read_image(shard_dir, image_id)
