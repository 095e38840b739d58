"""The oracle: boxes of the image's ground-truth COCO annotations whose category is a label."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from discover.errors import GroundingError
from discover.grounding.base import Detections, Grounder, label_key
from discover.grounding.registry import register_grounder


def category_names(
    categories: Sequence[Mapping[str, Any]] | Mapping[int, str] | None,
) -> dict[int, str]:
    """Category id -> name, from COCO category dicts or an id -> name mapping."""
    if categories is None:
        return {}
    if isinstance(categories, Mapping):
        return {int(k): str(v) for k, v in categories.items()}
    try:
        return {int(c["id"]): str(c["name"]) for c in categories}
    except (KeyError, TypeError, ValueError) as exc:
        raise GroundingError(f"categories must be COCO dicts with 'id' and 'name': {exc}") from exc


def label_lookup(labels: Sequence[str] | None) -> dict[str, str] | None:
    """Normalised label -> the label as the task spells it (first spelling wins); None when
    every category counts (no labels given)."""
    if not labels:
        return None
    lookup: dict[str, str] = {}
    for label in labels:
        lookup.setdefault(label_key(label), str(label))
    return lookup


@register_grounder("gt")
class GroundTruthGrounder(Grounder):
    """Non-crowd annotations whose category is among the labels (all categories when the
    labels are None or empty); score 1, label spelled as in the task's label list."""

    defaults = {}

    def ground(
        self,
        image: np.ndarray,
        labels: Sequence[str] | None,
        *,
        annotations: Sequence[Mapping[str, Any]] | None = None,
        categories: Sequence[Mapping[str, Any]] | Mapping[int, str] | None = None,
    ) -> Detections:
        if annotations is None or categories is None:
            raise GroundingError(
                "the gt grounding backend needs the image's COCO annotations and the categories "
                "(the dataset has none: pick another semantics.grounding.backend)"
            )
        names = category_names(categories)
        wanted = label_lookup(labels)
        out = Detections()
        for ann in annotations:
            if ann.get("iscrowd", 0):
                continue  # crowd regions are not objects a task would count
            cat = ann.get("category_id")
            if cat not in names:
                raise GroundingError(
                    f"annotation {ann.get('id')!r} has category_id {cat!r}, not in the categories"
                )
            label = names[cat] if wanted is None else wanted.get(label_key(names[cat]))
            if label is None:
                continue
            out.boxes.append([float(v) for v in ann["bbox"]])
            out.labels.append(label)
            out.scores.append(1.0)
        return out
