"""Natural photographs bundled with scikit-image (no download), for human-perception metrics."""

from __future__ import annotations

from PIL import Image

from discover.datasets.base import Dataset, Item
from discover.datasets.registry import register_dataset
from discover.errors import DatasetError

# Colour photographs shipped inside the scikit-image wheel.
DEFAULT_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "hubble_deep_field",
    "immunohistochemistry",
    "rocket",
)


@register_dataset("photos")
class PhotosDataset(Dataset):
    def _list(self) -> list[Item]:
        import skimage.data

        names = self.cfg.get("names") or list(DEFAULT_PHOTOS)
        for name in names:
            if not callable(getattr(skimage.data, name, None)):
                raise DatasetError(
                    f"dataset {self.name!r}: scikit-image has no sample image {name!r}"
                )
        return [Item(id=name, source=f"skimage.data.{name}") for name in names]

    def _load(self, item: Item) -> Image.Image:
        import skimage.data

        try:
            arr = getattr(skimage.data, item.id)()
        except Exception as exc:
            raise DatasetError(
                f"dataset {self.name!r}: scikit-image sample {item.id!r} is not available "
                f"offline ({exc})"
            ) from exc
        img = Image.fromarray(arr)
        return img.convert("RGB")
