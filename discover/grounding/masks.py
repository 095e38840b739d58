"""Per-image grounding records: boxes, labels, scores and the latent mask they select
(rasterised by :mod:`discover.latent_masks`, the rule the DISCOVER codec's masks follow too).

A record stores the mask as row-major run lengths that start with a run of ``False`` (possibly
of length 0): a mask from a few boxes takes a few dozen numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from discover.errors import GroundingError
from discover.grounding.base import Detections
from discover.latent_masks import (
    mask_to_runs,
    masked_fraction,
    runs_to_mask,
)


def grounding_record(
    image_id: Any, detections: Detections, mask: np.ndarray, stride: int
) -> dict[str, Any]:
    """The JSON-serialisable result for one image: its boxes, labels, scores and latent mask."""
    mask = np.asarray(mask, dtype=bool)
    if isinstance(image_id, np.integer):
        image_id = int(image_id)
    return {
        "image": image_id if isinstance(image_id, int | str) else str(image_id),
        "boxes": [list(box) for box in detections.boxes],
        "labels": list(detections.labels),
        "scores": list(detections.scores),
        "stride": int(stride),
        "grid": [int(mask.shape[0]), int(mask.shape[1])],
        "masked_fraction": masked_fraction(mask),
        "mask_rle": mask_to_runs(mask),
    }


def decode_mask_record(record: Mapping[str, Any]) -> np.ndarray:
    """The boolean latent mask stored in a :func:`grounding_record`."""
    try:
        return runs_to_mask(record["mask_rle"], tuple(record["grid"]))
    except (KeyError, TypeError, ValueError, GroundingError) as exc:
        raise GroundingError(
            f"grounding record of image {record.get('image')!r} has no valid mask: {exc}"
        ) from exc


def record_detections(record: Mapping[str, Any]) -> Detections:
    """The detections stored in a :func:`grounding_record`."""
    return Detections(record["boxes"], record["labels"], record["scores"])
