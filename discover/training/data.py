"""Training images: sources -> a manifest -> a stream of random crops (one path for every size).

A ``training_data`` entry of the config names its sources; each is one of

* ``folder``: every image file under ``path`` (recursively, sorted by relative path);
* ``list``: an image list file, one path per line (relative to the list file's folder; blank
  lines and ``#`` comments skipped);
* ``coco``: a COCO annotation file (``annotations``) and its image folder (``images``);
  ``min_short_side`` keeps the images whose annotated shorter side reaches it;
* ``synthetic-scenes``: the embedded default's generated scenes (train split, disjoint from
  every val split), rendered on use.

``num_images`` picks that many of a source's images (seeded, without replacement; the pick
keeps the source's order). :func:`build_manifest` lists the result once, with each file's size
and sha256 (of its first MiB with ``hash: head``, the default, or the whole file with
``hash: full``); a training job reads only the manifest, so a rerun trains on the same files.

:class:`CropStream` turns a manifest into micro-batches of random ``crop`` x ``crop`` crops
(random horizontal flip) through a torch ``DataLoader``. Every crop is a function of
``(seed, step, micro-batch, slot)`` alone, where ``slot`` counts over the *global* batch: the
same run on 1 or N processes, with any number of workers, resumed or not, sees the same images
(rank r takes its share of the slots). Images whose shorter side is below the crop are resized
up (``small_images: resize_short_side``, bicubic) or left out (``skip``); either way they are
counted in the log. An image that cannot be decoded is skipped (the slot draws again), named in
the log once, and counted; past ``max_bad_images`` distinct bad images the job stops with an
error naming them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from discover.datasets.photos import load_sample
from discover.datasets.synthetic_scenes import SceneGenerator
from discover.errors import DiscoverError
from discover.io import atomic_path

log = logging.getLogger("discover.training")

#: File name endings a ``folder`` source lists (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm")
SOURCE_TYPES = ("folder", "list", "coco", "synthetic-scenes", "photos")
SMALL_IMAGES = ("resize_short_side", "skip")
MANIFEST_FIELDS = ("source", "path", "width", "height", "bytes", "sha256")
#: Defaults of a ``training_data`` entry (our choices: the paper says nothing of them).
POOL_DEFAULTS: dict[str, Any] = {
    "small_images": "resize_short_side",
    "max_bad_images": 10,
    "workers": 0,
    "hash": "head",
}
#: Draws one slot may spend on images that fail to decode before the job stops.
MAX_DRAWS = 64
#: Seed stream of a training entry's ``num_images`` pick from its manifest (sources use their
#: index in the list).
SUBSET_STREAM = 1_000_000
#: Prefix of a manifest path that names a generated scene rather than a file.
SYNTHETIC = "synthetic-scenes:"
#: Prefix of a manifest path that names a photograph bundled with scikit-image.
PHOTOS = "photos:"
_HEAD = 1 << 20


class TrainingDataError(DiscoverError):
    """A training source or manifest that cannot be used (names the file or key at fault)."""


@dataclass(frozen=True)
class Entry:
    """One manifest row: an image and what it was when the manifest was written."""

    source: str
    path: str
    width: int
    height: int
    bytes: int
    sha256: str

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)


# -- sources -> manifest ----------------------------------------------------------------------
def pool_spec(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """A ``training_data`` entry with its defaults filled in."""
    return {**POOL_DEFAULTS, **(spec or {})}


def synthetic_source(num_images: int, min_size: int = 256, max_size: int = 384) -> dict:
    """The embedded default's source: ``num_images`` generated train-split scenes."""
    return {
        "type": "synthetic-scenes",
        "num_images": int(num_images),
        "min_size": int(min_size),
        "max_size": int(max_size),
    }


def _pick(n_total: int, num: int | None, seed: int, index: int, where: str) -> list[int]:
    if num is None:
        return list(range(n_total))
    if num > n_total:
        raise TrainingDataError(f"{where}: num_images {num} but the source has {n_total} images")
    rng = np.random.default_rng([seed, index])
    return sorted(int(i) for i in rng.choice(n_total, size=num, replace=False))


def _file_hash(path: Path, mode: str) -> tuple[int, str]:
    size = path.stat().st_size
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        if mode == "head":
            h.update(fh.read(_HEAD))
        else:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return size, h.hexdigest()


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header; (0, 0) when the header cannot be read (the
    image is then counted as bad when training starts)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return int(img.width), int(img.height)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return 0, 0


def _list_source(src: Mapping[str, Any], where: str) -> list[tuple[Path, tuple[int, int] | None]]:
    """Paths of a file source with their sizes when the source knows them (COCO)."""
    kind = src.get("type")
    if kind == "folder":
        root = Path(src["path"])
        if not root.is_dir():
            raise TrainingDataError(f"{where}: folder {root} does not exist")
        files = sorted(
            (p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
            key=lambda p: p.relative_to(root).as_posix(),
        )
        return [(p, None) for p in files]
    if kind == "list":
        listing = Path(src["path"])
        try:
            lines = listing.read_text().splitlines()
        except OSError as exc:
            raise TrainingDataError(f"{where}: cannot read image list {listing}: {exc}") from exc
        out = []
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            path = Path(line) if Path(line).is_absolute() else listing.parent / line
            if not path.is_file():
                raise TrainingDataError(f"{where}: {listing}:{number}: no file {path}")
            out.append((path, None))
        return out
    if kind == "coco":
        ann, images = Path(src["annotations"]), Path(src["images"])
        try:
            data = json.loads(ann.read_text())
            records = [(r["file_name"], int(r["width"]), int(r["height"])) for r in data["images"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TrainingDataError(f"{where}: cannot read COCO annotations {ann}: {exc}") from exc
        floor = int(src.get("min_short_side", 0))
        records = sorted(r for r in records if min(r[1], r[2]) >= floor)
        return [(images / name, (w, h)) for name, w, h in records]
    raise TrainingDataError(f"{where}: type {kind!r} is not one of {list(SOURCE_TYPES)}")


def _synthetic_entries(
    src: Mapping[str, Any], seed: int, label: str, hash_pixels: bool = True
) -> list[Entry]:
    """Generated scenes; their sha256 is that of the rendered pixels (``-`` without
    ``hash_pixels``: a pool listed in memory is not rendered twice)."""
    num = int(src.get("num_images", 64))
    gen_seed = int(src.get("seed", seed))
    lo, hi = int(src.get("min_size", 256)), int(src.get("max_size", 384))
    objects = (int(src.get("min_objects", 2)), int(src.get("max_objects", 6)))
    gen = SceneGenerator(gen_seed, "train", lo, hi, *objects)
    out = []
    for i in range(num):
        path = f"{SYNTHETIC}train:{gen_seed}:{lo}-{hi}:{objects[0]}-{objects[1]}:{i}"
        if hash_pixels:
            pixels = _render(path)
            h, w = pixels.shape[:2]
            digest = hashlib.sha256(pixels.tobytes()).hexdigest()
        else:
            (w, h), _ = gen.sample(i)
            digest = "-"
        out.append(Entry(label, path, w, h, w * h * 3, digest))
    return out


def _photo_entries(src: Mapping[str, Any], label: str, where: str) -> list[Entry]:
    """scikit-image's bundled photographs (``names``), each hashed over its RGB pixels."""
    names = src.get("names") or []
    if not names:
        raise TrainingDataError(f"{where}: a photos source needs names (scikit-image samples)")
    out = []
    for name in names:
        pixels = _photo(f"{PHOTOS}{name}", where)
        h, w = pixels.shape[:2]
        digest = hashlib.sha256(pixels.tobytes()).hexdigest()
        out.append(Entry(label, f"{PHOTOS}{name}", w, h, w * h * 3, digest))
    return out


def _photo(path: str, where: str = "training data") -> np.ndarray:
    try:
        return load_sample(path[len(PHOTOS) :])
    except DiscoverError as exc:
        raise TrainingDataError(f"{where}: {exc}") from exc


def source_entries(
    spec: Mapping[str, Any],
    seed: int,
    *,
    where: str = "training_data",
    hash_pixels: bool = True,
) -> list[Entry]:
    """Every image of a ``training_data`` entry's sources, in manifest order."""
    pool = pool_spec(spec)
    sources = pool.get("sources") or []
    if not sources:
        raise TrainingDataError(f"{where}: no sources")
    if pool["hash"] not in ("head", "full"):
        raise TrainingDataError(f"{where}.hash: {pool['hash']!r} is not head or full")
    entries: list[Entry] = []
    for index, src in enumerate(sources):
        at = f"{where}.sources[{index}]"
        label = f"{index}:{src.get('type')}"
        if src.get("type") == "synthetic-scenes":
            entries += _synthetic_entries(src, seed, label, hash_pixels)
            continue
        if src.get("type") == "photos":
            entries += _photo_entries(src, label, at)
            continue
        listed = _list_source(src, at)
        num = src.get("num_images")
        picked = _pick(len(listed), None if num is None else int(num), seed, index, at)
        for i in picked:
            path, size = listed[i]
            try:
                nbytes, digest = _file_hash(path, pool["hash"])
            except OSError as exc:
                raise TrainingDataError(f"{at}: cannot read {path}: {exc}") from exc
            width, height = size or _image_size(path)
            entries.append(Entry(label, str(path), width, height, nbytes, digest))
        log.info("%s: %d of %d images", at, len(picked), len(listed))
    return entries


def write_manifest(path: str | os.PathLike, entries: Sequence[Entry]) -> None:
    """The manifest as TSV (atomically)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(MANIFEST_FIELDS)
        for e in entries:
            writer.writerow([e.source, e.path, e.width, e.height, e.bytes, e.sha256])


def build_manifest(
    path: str | os.PathLike, spec: Mapping[str, Any], seed: int, *, where: str = "training_data"
) -> list[Entry]:
    """List a ``training_data`` entry's images (see the module doc) into ``path``."""
    entries = source_entries(spec, seed, where=where)
    write_manifest(path, entries)
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.source] = counts.get(e.source, 0) + 1
    log.info("manifest %s: %d images (%s)", path, len(entries), counts)
    return entries


def read_manifest(path: str | os.PathLike) -> list[Entry]:
    """The rows of a manifest; an error naming the file and line when one does not parse."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise TrainingDataError(f"cannot read training manifest {path}: {exc}") from exc
    if not lines or tuple(lines[0].split("\t")) != MANIFEST_FIELDS:
        raise TrainingDataError(f"{path}: not a training manifest (header {MANIFEST_FIELDS})")
    out = []
    for number, line in enumerate(lines[1:], 2):
        fields = line.split("\t")
        try:
            source, name, w, h, n, digest = fields
            out.append(Entry(source, name, int(w), int(h), int(n), digest))
        except ValueError as exc:
            raise TrainingDataError(f"{path}:{number}: bad manifest row {line!r}") from exc
    if not out:
        raise TrainingDataError(f"{path}: the manifest lists no images")
    return out


# -- manifest -> crops ------------------------------------------------------------------------
def _render(path: str) -> np.ndarray:
    try:
        split, seed, sizes, objects, index = path[len(SYNTHETIC) :].split(":")
        lo, hi = (int(v) for v in sizes.split("-"))
        n_lo, n_hi = (int(v) for v in objects.split("-"))
    except ValueError as exc:
        raise TrainingDataError(f"bad synthetic scene name {path!r}") from exc
    return SceneGenerator(int(seed), split, lo, hi, n_lo, n_hi).render(int(index))[0]


def load_image(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a manifest path (grayscale, palette and CMYK files converted,
    EXIF orientation applied); raises on a file that cannot be decoded."""
    if path.startswith(SYNTHETIC):
        return _render(path)
    if path.startswith(PHOTOS):
        return _photo(path)
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _resize_short_side(image: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    scale = side / min(h, w)
    size = (max(side, round(w * scale)), max(side, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))


class CropDataset:
    """Map-style dataset whose item for key ``(step, micro, slot)`` is a random crop (see the
    module doc) and the names of the images that failed on the way."""

    def __init__(
        self, entries: Sequence[Entry], crop: int, *, seed: int, small: str = "resize_short_side"
    ):
        if small not in SMALL_IMAGES:
            raise TrainingDataError(f"small_images: {small!r} is not one of {list(SMALL_IMAGES)}")
        self.crop, self.seed, self.small = int(crop), int(seed), small
        unreadable = [e for e in entries if e.short_side == 0]
        small_ones = [e for e in entries if 0 < e.short_side < self.crop]
        self.entries = [
            e
            for e in entries
            if e.short_side > 0 and (small == "resize_short_side" or e.short_side >= self.crop)
        ]
        self.unreadable = [e.path for e in unreadable]
        self.small_count = len(small_ones)
        if not self.entries:
            raise TrainingDataError(
                f"no training image is usable for {self.crop}-pixel crops ({len(entries)} listed, "
                f"{len(small_ones)} smaller than the crop with small_images {small}, "
                f"{len(unreadable)} unreadable)"
            )
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def image(self, index: int) -> np.ndarray:
        entry = self.entries[index]
        synthetic = entry.path.startswith((SYNTHETIC, PHOTOS))
        if synthetic and index in self._cache:  # scenes rendered, photos read once per process
            return self._cache[index]
        image = load_image(entry.path)
        if min(image.shape[:2]) < self.crop:
            image = _resize_short_side(image, self.crop)
        if synthetic:
            self._cache[index] = image
        return image

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[np.ndarray, list[str]]:
        step, micro, slot = key
        rng = np.random.default_rng([self.seed, 0, step, micro, slot])
        bad: list[str] = []
        for _ in range(MAX_DRAWS):
            index = int(rng.integers(len(self.entries)))
            try:
                image = self.image(index)
            except Exception as exc:  # noqa: BLE001 - any decoder failure skips the image
                bad.append(f"{self.entries[index].path}: {type(exc).__name__}: {exc}")
                continue
            y = int(rng.integers(image.shape[0] - self.crop + 1))
            x = int(rng.integers(image.shape[1] - self.crop + 1))
            patch = image[y : y + self.crop, x : x + self.crop]
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            return np.ascontiguousarray(patch), bad
        raise TrainingDataError(
            f"step {step}: {MAX_DRAWS} draws in a row hit images that cannot be decoded "
            f"(last: {bad[-1]})"
        )


def _collate(items):
    import torch

    images = np.stack([img for img, _ in items])
    bad = [name for _, names in items for name in names]
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255), bad


class _Keys:
    """Batch sampler: the keys of this rank's slots, micro-batch by micro-batch."""

    def __init__(self, start: int, stop: int, accum: int, slots: range):
        self.start, self.stop, self.accum, self.slots = start, stop, accum, slots

    def __iter__(self):
        for step in range(self.start, self.stop):
            for micro in range(self.accum):
                yield [(step, micro, slot) for slot in self.slots]

    def __len__(self) -> int:
        return (self.stop - self.start) * self.accum


def _worker_init(worker_id: int) -> None:  # pragma: no cover - runs in DataLoader workers
    import random

    import torch

    seed = torch.initial_seed() % 2**32  # distinct per worker (torch seeds them apart)
    random.seed(seed)
    np.random.seed(seed)


@dataclass
class TrainingData:
    """A manifest's images and the pool settings that say how to read them."""

    entries: list[Entry]
    small_images: str = "resize_short_side"
    max_bad_images: int = 10
    workers: int = 0
    name: str = ""

    @classmethod
    def from_manifest(
        cls, path: str | os.PathLike, spec: Mapping[str, Any] | None = None
    ) -> TrainingData:
        pool = pool_spec(spec)
        return cls(
            read_manifest(path),
            pool["small_images"],
            int(pool["max_bad_images"]),
            int(pool["workers"]),
            str(path),
        )

    @classmethod
    def synthetic(cls, seed: int, num_images: int, crop: int = 128) -> TrainingData:
        """Generated scenes listed in memory (what a trainer reads when given no manifest)."""
        size = max(crop, 256), max(crop, 384)
        pool = {"sources": [synthetic_source(num_images, *size)]}
        entries = source_entries(pool, seed, hash_pixels=False)
        return cls(entries, name="synthetic-scenes (in memory)")

    def subset(self, num_images: int | None, seed: int) -> TrainingData:
        """``num_images`` of the manifest's images (seeded pick, manifest order kept)."""
        if num_images is None or num_images >= len(self.entries):
            return self
        keep = _pick(
            len(self.entries), int(num_images), seed, SUBSET_STREAM, self.name or "training data"
        )
        return TrainingData(
            [self.entries[i] for i in keep],
            self.small_images,
            self.max_bad_images,
            self.workers,
            self.name,
        )

    def stream(self, crop: int, batch_size: int, *, seed: int, **kwargs) -> CropStream:
        return CropStream(self, crop, batch_size, seed=seed, **kwargs)


class CropStream:
    """Micro-batches (float tensors in [0, 1], N x 3 x crop x crop) of this process's share of
    each step's global batch, from ``start`` to ``stop`` steps (see the module doc)."""

    def __init__(
        self,
        data: TrainingData,
        crop: int,
        batch_size: int,
        *,
        seed: int,
        start: int = 0,
        stop: int | None = None,
        accum: int = 1,
        rank: int = 0,
        world: int = 1,
    ):
        if batch_size % world:
            raise TrainingDataError(
                f"batch_size {batch_size} is the global batch: it must divide by the "
                f"{world} processes"
            )
        self.data = data
        self.dataset = CropDataset(data.entries, crop, seed=seed, small=data.small_images)
        local = batch_size // world
        self.keys = _Keys(
            start,
            stop if stop is not None else 2**62,
            accum,
            range(rank * local, (rank + 1) * local),
        )
        self.bad: dict[str, str] = {}
        self.start, self.accum = start, accum
        self.slots = self.keys.slots
        self._iter: Iterator | None = None
        self._served = 0
        if rank == 0:
            if self.dataset.small_count:
                action = "resized up" if data.small_images == "resize_short_side" else "skipped"
                log.info(
                    "%d of %d training images are smaller than the %d-pixel crop: %s",
                    self.dataset.small_count,
                    len(data.entries),
                    crop,
                    action,
                )
        for name in self.dataset.unreadable:
            self._bad(f"{name}: header unreadable when the manifest was written", rank == 0)

    def _bad(self, message: str, say: bool = True) -> None:
        name = message.split(": ", 1)[0]
        if name in self.bad:
            return
        self.bad[name] = message
        if say:
            log.warning("skipping training image %s", message)
        if len(self.bad) > self.data.max_bad_images:
            names = ", ".join(list(self.bad)[:5])
            raise TrainingDataError(
                f"{len(self.bad)} training images cannot be decoded, more than max_bad_images "
                f"{self.data.max_bad_images} ({names}, ...)"
            )

    def _loader(self) -> Iterator:
        import torch

        workers = int(self.data.workers)
        # A generator of its own: the loader's worker seeds must not draw from the global RNG
        # (the training's noise), or a resumed run would not continue the straight run's.
        generator = torch.Generator().manual_seed(int(self.dataset.seed))
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=self.keys,
            collate_fn=_collate,
            num_workers=workers,
            worker_init_fn=_worker_init if workers else None,
            persistent_workers=False,
            prefetch_factor=2 if workers else None,
            generator=generator,
        )
        return iter(loader)

    def __iter__(self) -> CropStream:
        return self

    def __next__(self):
        if self._iter is None:
            self._iter = self._loader()
        x, bad = next(self._iter)
        for message in bad:
            self._bad(message)
        self._served += 1
        return x

    @property
    def position(self) -> tuple[int, int]:
        """(step, micro-batch) of the batch returned last (batches come in key order)."""
        n = self._served - 1
        return self.start + n // self.accum, n % self.accum

    def report(self) -> dict:
        """What the sidecar records: images used, resized or skipped small ones, bad ones."""
        return {
            "manifest": self.data.name,
            "images": len(self.data.entries),
            "small_images": self.dataset.small_count,
            "small_images_action": self.data.small_images,
            "bad_images": sorted(self.bad),
        }
