"""COCO-format instance datasets (val2017 images + instances json)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path

from discover.datasets.base import Dataset, Item, require_dir, require_file
from discover.datasets.registry import register_dataset
from discover.errors import DatasetError

HINT = (
    "Download COCO val2017 images (5,000 JPEG files) and annotations_trainval2017 "
    "(instances_val2017.json) and point datasets.<name>.images / .annotations at them."
)


@register_dataset("coco")
class CocoDataset(Dataset):
    has_annotations = True

    @cached_property
    def _coco(self) -> dict:
        path = require_file(self.cfg["annotations"], self.name, HINT)
        try:
            with open(path) as fh:
                data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"dataset {self.name!r}: {path} is not valid JSON: {exc}") from exc
        for key in ("images", "annotations", "categories"):
            if key not in data:
                raise DatasetError(f"dataset {self.name!r}: {path} has no '{key}' list")
        return data

    def _list(self) -> list[Item]:
        root = require_dir(self.cfg["images"], self.name, HINT)
        items = []
        for img in sorted(self._coco["images"], key=lambda im: im["id"]):
            items.append(
                Item(
                    id=Path(img["file_name"]).stem,
                    source=str(root / img["file_name"]),
                    extra={"image_id": img["id"]},
                )
            )
        return items

    def header_size(self, item: Item) -> tuple[int, int]:
        """(width, height) as the instances json gives it (checked against the pixels when
        the shard is written)."""
        im = self._images_by_id[item.extra["image_id"]]
        return int(im["width"]), int(im["height"])

    @cached_property
    def _images_by_id(self) -> dict[int, dict]:
        return {im["id"]: im for im in self._coco["images"]}

    def annotations(self, items: list[Item], sizes: Mapping[str, tuple[int, int]]) -> dict:
        """The subset of the instances json for ``items``.

        Annotations stay in the original image coordinates; a protocol that resizes or crops
        COCO images is rejected since boxes would no longer match.
        """
        if self.protocol.get("resize_short_side") or self.protocol.get("center_crop"):
            raise DatasetError(f"dataset {self.name!r}: COCO annotations need protocol 'none'")
        wanted = {it.extra["image_id"] for it in items}
        images = [im for im in self._coco["images"] if im["id"] in wanted]
        for im in images:
            item_id = Path(im["file_name"]).stem
            if item_id in sizes and tuple(sizes[item_id]) != (im["width"], im["height"]):
                raise DatasetError(
                    f"dataset {self.name!r}: image id {im['id']} ({im['file_name']}) is "
                    f"{sizes[item_id][0]}x{sizes[item_id][1]} but the annotations say "
                    f"{im['width']}x{im['height']}"
                )
        anns = [a for a in self._coco["annotations"] if a["image_id"] in wanted]
        return {"images": images, "annotations": anns, "categories": self._coco["categories"]}
