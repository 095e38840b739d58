"""Grounding a shard: every image through a grounder, one record per image, and the shard's
grounding file (``semantics/<dataset>/<task>/<shard>.json``) that the encoder reads."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from discover.errors import GroundingError
from discover.grounding.base import Grounder
from discover.grounding.masks import grounding_record
from discover.images import read_rgb
from discover.io import write_text_atomic
from discover.latent_masks import boxes_to_latent_mask


def ground_images(
    grounder: Grounder,
    images: Iterable[tuple[Any, str | os.PathLike]],
    labels: Sequence[str] | None,
    stride: int = 16,
    annotations_by_image: Mapping[Any, Sequence[Mapping[str, Any]]] | None = None,
    categories: Sequence[Mapping[str, Any]] | Mapping[int, str] | None = None,
) -> list[dict[str, Any]]:
    """Ground every ``(image_id, path)`` and return one :func:`grounding_record` per image.

    ``annotations_by_image`` maps an image id to its COCO annotations (an image without any
    gets an empty list); it is only needed by backends that read annotations (``gt``).
    """
    records = []
    for image_id, path in images:
        image = read_rgb(path, error=GroundingError)
        annotations = None
        if annotations_by_image is not None:
            annotations = list(annotations_by_image.get(image_id, []))
        detections = grounder.ground(image, labels, annotations=annotations, categories=categories)
        mask = boxes_to_latent_mask(detections.boxes, image.shape[:2], stride=stride)
        records.append(grounding_record(image_id, detections, mask, stride))
    return records


def write_grounding(
    path: str | os.PathLike, records: Sequence[Mapping[str, Any]], provenance: Mapping[str, Any]
) -> None:
    """Write a shard's records atomically as ``{"provenance": ..., "images": [...]}``, one
    image per line so that the file stays readable and diffs well."""
    lines = ["{", f' "provenance": {json.dumps(dict(provenance), sort_keys=True)},', ' "images": [']
    lines += [f"  {json.dumps(dict(r))}," for r in records]
    if records:
        lines[-1] = lines[-1][:-1]  # JSON allows no comma after the last element
    text = "\n".join([*lines, " ]", "}", ""])
    write_text_atomic(path, text)


def read_grounding(path: str | os.PathLike) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(provenance, records) of a file written by :func:`write_grounding`."""
    try:
        data = json.loads(Path(path).read_text())
        return dict(data["provenance"]), list(data["images"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GroundingError(f"{path}: not a grounding file ({exc})") from exc


def grounded_boxes(paths: Sequence[str | Path]) -> dict[str, list]:
    """Image id -> its grounded boxes ([x, y, w, h]), from grounding files."""
    boxes = {}
    for path in paths:
        _, records = read_grounding(path)
        for record in records:
            boxes[str(record["image"])] = [list(b) for b in record["boxes"]]
    return boxes
