"""Natural photographs bundled with scikit-image (no download), for human-perception metrics."""

from __future__ import annotations

import numpy as np
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
        try:
            return Image.fromarray(load_sample(item.id))
        except DatasetError as exc:
            raise DatasetError(f"dataset {self.name!r}: {exc}") from exc


def load_sample(name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a scikit-image sample image (grey ones repeated over R, G, B,
    RGBA flattened by PIL's conversion, boolean or float ones scaled to 0-255)."""
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if not callable(loader):
        raise DatasetError(f"scikit-image has no sample image {name!r}")
    try:
        arr = loader()
    except Exception as exc:
        raise DatasetError(
            f"scikit-image sample {name!r} is not available offline ({exc})"
        ) from exc
    if not isinstance(arr, np.ndarray) or not (
        arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))
    ):
        raise DatasetError(f"scikit-image sample {name!r} is not one image")
    if arr.dtype != np.uint8:  # a few samples are boolean or float
        arr = (arr.astype(np.float64) / max(float(arr.max()), 1e-12) * 255).round()
    return np.asarray(Image.fromarray(arr.astype(np.uint8)).convert("RGB"), dtype=np.uint8)
