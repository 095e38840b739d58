"""Directory-of-images datasets: ``folder`` (any), ``kodak`` and ``clic2020`` (paper protocols)."""

from __future__ import annotations

from discover.datasets.base import Dataset, Item, id_from_path, list_image_files, require_dir
from discover.datasets.registry import register_dataset


@register_dataset("folder")
class FolderDataset(Dataset):
    """Every image file below ``path`` (recursive); the id is the relative path."""

    download_hint = "Point datasets.<name>.path at a directory containing image files."

    def _list(self) -> list[Item]:
        root = require_dir(self.cfg["path"], self.name, self.download_hint)
        files = list_image_files(root)
        return [Item(id=id_from_path(p, root), source=str(p)) for p in files]


@register_dataset("kodak")
class KodakDataset(FolderDataset):
    download_hint = (
        "Download the 24 images of the Kodak Lossless True Color Image Suite "
        "(kodim01.png ... kodim24.png) and put them in this directory."
    )
    default_protocol = "kodak"


@register_dataset("clic2020")
class Clic2020Dataset(FolderDataset):
    download_hint = (
        "Download the CLIC 2020 professional+mobile test images (428 PNG files) and put them "
        "in this directory (any sub-folders)."
    )
    default_protocol = "clic2020"
