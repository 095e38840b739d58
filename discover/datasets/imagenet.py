"""ImageNet validation set: images + a label file ('<file name> <class index>' per line)."""

from __future__ import annotations

from pathlib import Path

from discover.datasets.base import Dataset, Item, require_dir, require_file
from discover.datasets.registry import register_dataset
from discover.errors import DatasetError

HINT = (
    "Download the ILSVRC2012 validation images (50,000 JPEG files) into the images directory and "
    "write a labels file with one '<file name> <class index 0-999>' line per image."
)


@register_dataset("imagenet")
class ImageNetDataset(Dataset):
    def _list(self) -> list[Item]:
        images = require_dir(self.cfg["images"], self.name, HINT)
        labels = require_file(self.cfg["labels"], self.name, HINT)
        items = []
        for lineno, line in enumerate(labels.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise DatasetError(
                    f"dataset {self.name!r}: {labels} line {lineno} is not "
                    f"'<file name> <class index>': {line!r}"
                )
            name, label = parts
            items.append(Item(id=Path(name).stem, source=str(images / name), label=int(label)))
        return sorted(items, key=lambda it: it.id)
