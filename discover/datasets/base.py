"""Dataset interface: a cheap item listing (no pixels) and a loader applying the protocol."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from discover.batching import size_order
from discover.errors import DatasetError

# Named preprocessing protocols. "clic2020" is the paper's (§4.1.1, "following the setting in
# [75]"): resize so the short side is 768, then centre-crop 768x768.
PROTOCOLS: dict[str, dict[str, int | None]] = {
    "none": {"resize_short_side": None, "center_crop": None},
    "kodak": {"resize_short_side": None, "center_crop": None},
    "clic2020": {"resize_short_side": 768, "center_crop": 768},
}

# Sides are rounded up to this multiple before images share a forward pass (discover.batching;
# the learned codecs pad to 64). ``shard_order: size`` groups a dataset's images by it.
SHARD_ORDER_MULTIPLE = 64

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@dataclass(frozen=True)
class Item:
    """One image of a dataset: a stable id, where its pixels come from, optional class label."""

    id: str
    source: str
    label: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


class Dataset:
    """Base class. Subclasses implement ``_list`` and ``_load``."""

    type_name: str = ""
    default_protocol: str = "none"
    has_annotations: bool = False

    def __init__(
        self,
        name: str,
        cfg: Mapping[str, Any],
        *,
        seed: int = 0,
        protocols: Mapping[str, Mapping] | None = None,
    ):
        self.name = name
        self.cfg = dict(cfg)
        self.seed = seed
        known = dict(PROTOCOLS)
        known.update(protocols or {})
        proto_name = self.cfg.get("protocol") or self.default_protocol
        if proto_name not in known:
            raise DatasetError(f"dataset {name!r}: unknown protocol {proto_name!r}")
        self.protocol_name = proto_name
        self.protocol = dict(known[proto_name])

    # -- listing ---------------------------------------------------------------------------
    def _list(self) -> list[Item]:
        raise NotImplementedError

    def list_items(self) -> list[Item]:
        """All items in a stable order (cheap: reads no pixels)."""
        items = self._list()
        ids = [it.id for it in items]
        if len(set(ids)) != len(ids):
            seen: dict[str, int] = {}
            for it in items:
                seen[it.id] = seen.get(it.id, 0) + 1
            dup = next(k for k, v in seen.items() if v > 1)
            raise DatasetError(f"dataset {self.name!r}: two images share the id {dup!r}")
        limit = self.cfg.get("max_images")
        if limit:
            items = items[:limit]
        if not items:
            raise DatasetError(f"dataset {self.name!r}: no images found")
        return items

    def sharded_items(self) -> list[Item]:
        """The items in the order they are cut into shards: :meth:`list_items`'s, or with
        ``shard_order: size`` grouped by the size they are coded at (sides rounded up to
        :data:`SHARD_ORDER_MULTIPLE`, then exact size, then list order), so that a shard holds
        few padded sizes and a batched job few part-filled batches. Reads image headers, not
        pixels; the plan never calls it (shard counts come from :meth:`list_items`)."""
        items = self.list_items()
        if self.cfg.get("shard_order", "index") != "size":
            return items
        sizes = [protocol_size(self.header_size(it), **self.protocol)[::-1] for it in items]
        return [items[pos] for pos in size_order(sizes, SHARD_ORDER_MULTIPLE)]

    def header_size(self, item: Item) -> tuple[int, int]:
        """(width, height) of an item's source image before the protocol, from its header."""
        try:
            with Image.open(item.source) as img:
                return img.size
        except FileNotFoundError as exc:
            raise DatasetError(
                f"dataset {self.name!r}: image file {item.source} does not exist"
            ) from exc
        except Exception as exc:  # PIL raises many types for corrupt data
            raise DatasetError(
                f"dataset {self.name!r}: cannot read the header of image file {item.source} "
                f"({type(exc).__name__}: {exc})"
            ) from exc

    # -- pixels ----------------------------------------------------------------------------
    def _load(self, item: Item) -> Image.Image:
        """Default loader: ``item.source`` is an image file."""
        return open_image(item.source, self.name)

    def load(self, item: Item) -> np.ndarray:
        """RGB uint8 array (H, W, 3) after the dataset's preprocessing protocol."""
        img = self._load(item)
        img = apply_protocol(img, **self.protocol)
        return np.asarray(img.convert("RGB"), dtype=np.uint8)

    def label(self, item: Item) -> int | None:
        """Class label of an item for classification (None if the dataset has none)."""
        return item.label

    def annotations(self, items: list[Item], sizes: Mapping[str, tuple[int, int]]) -> dict | None:
        """COCO-format instance annotations for ``items`` (None if the dataset has none)."""
        return None


def open_image(path: str | Path, dataset: str) -> Image.Image:
    """Open and fully decode an image; a broken file raises DatasetError naming it."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError as exc:
        raise DatasetError(f"dataset {dataset!r}: image file {path} does not exist") from exc
    except Exception as exc:  # PIL raises many types for corrupt data
        raise DatasetError(
            f"dataset {dataset!r}: cannot decode image file {path} ({type(exc).__name__}: {exc})"
        ) from exc


def apply_protocol(
    img: Image.Image, resize_short_side: int | None = None, center_crop: int | None = None
) -> Image.Image:
    """Resize the short side (bicubic, antialiased) then centre-crop a square, as configured."""
    if resize_short_side:
        new = protocol_size(img.size, resize_short_side)
        if new != img.size:
            img = img.resize(new, Image.Resampling.BICUBIC)
    if center_crop:
        w, h = img.size
        if w < center_crop or h < center_crop:
            raise DatasetError(f"image of size {w}x{h} is smaller than the crop {center_crop}")
        left = (w - center_crop) // 2
        top = (h - center_crop) // 2
        img = img.crop((left, top, left + center_crop, top + center_crop))
    return img


def protocol_size(
    size: tuple[int, int], resize_short_side: int | None = None, center_crop: int | None = None
) -> tuple[int, int]:
    """(width, height) :func:`apply_protocol` turns an image of ``size`` into."""
    w, h = size
    if resize_short_side:
        scale = resize_short_side / min(w, h)
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
    if center_crop:
        w, h = center_crop, center_crop
    return w, h


def dataset_shard_size(config: Mapping[str, Any], dataset: str) -> int:
    """Images per shard of ``dataset``: its own ``shard_size``, else the config's."""
    entry = (config.get("datasets") or {}).get(dataset) or {}
    return int(entry.get("shard_size") or config["shard_size"])


def shard_ids(n_items: int, shard_size: int) -> list[str]:
    return [f"s{k:04d}" for k in range(math.ceil(n_items / shard_size))]


def shard_items(items: list[Item], shard_size: int, shard: str) -> list[Item]:
    """The items of shard ``sNNNN`` (consecutive blocks of ``shard_size``)."""
    k = int(shard.lstrip("s"))
    chunk = items[k * shard_size : (k + 1) * shard_size]
    if not chunk:
        raise DatasetError(f"shard {shard} is empty ({len(items)} items, size {shard_size})")
    return chunk


def require_dir(path: str | Path, dataset: str, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DatasetError(f"dataset {dataset!r}: directory {path} does not exist. {what}")
    return path


def require_file(path: str | Path, dataset: str, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"dataset {dataset!r}: file {path} does not exist. {what}")
    return path


def list_image_files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    )


def id_from_path(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    return "__".join(rel.parts)
