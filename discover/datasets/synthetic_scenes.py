"""Procedurally generated scenes with COCO-format instance annotations.

Every image is a pure function of (seed, split, index): textured background plus several
objects of eight shape categories, each with its own fill texture. Objects may occlude one
another; annotations describe the visible part (box, RLE mask, area). The per-image class
label (for classification) is the category of the largest visible object.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from discover.datasets.base import Dataset, Item
from discover.datasets.registry import register_dataset
from discover.errors import DatasetError

CATEGORIES = ("circle", "square", "triangle", "star", "hexagon", "cross", "ring", "diamond")
MIN_VISIBLE_FRACTION = 0.4  # objects occluded more than this are dropped from the image
OBJECT_SCALE = (0.07, 0.22)  # object radius range, fractions of the short side


def _rng(seed: int, split: str, index: int, stream: str = "") -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}/{split}/{index}/{stream}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


@dataclass(frozen=True)
class SceneObject:
    category: int
    cx: float
    cy: float
    radius: float
    angle: float
    color: tuple[int, int, int]
    color2: tuple[int, int, int]
    texture: str


def _polygon(obj: SceneObject) -> list[tuple[float, float]] | None:
    name = CATEGORIES[obj.category]
    r, a = obj.radius, obj.angle

    def ring(n: int, radii: list[float]) -> list[tuple[float, float]]:
        pts = []
        for k in range(n):
            t = a + 2 * math.pi * k / n
            rr = radii[k % len(radii)]
            pts.append((obj.cx + rr * math.cos(t), obj.cy + rr * math.sin(t)))
        return pts

    if name == "square":
        return ring(4, [r])
    if name == "triangle":
        return ring(3, [r])
    if name == "hexagon":
        return ring(6, [r])
    if name == "star":
        return ring(10, [r, 0.45 * r])
    if name == "diamond":
        return ring(4, [r, 0.55 * r])
    if name == "cross":
        w = 0.33 * r
        base = [
            (-w, -r),
            (w, -r),
            (w, -w),
            (r, -w),
            (r, w),
            (w, w),
            (w, r),
            (-w, r),
            (-w, w),
            (-r, w),
            (-r, -w),
            (-w, -w),
        ]
        ca, sa = math.cos(a), math.sin(a)
        return [(obj.cx + x * ca - y * sa, obj.cy + x * sa + y * ca) for x, y in base]
    return None  # circle, ring: drawn as ellipses


def _shape_mask(obj: SceneObject, size: tuple[int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    name = CATEGORIES[obj.category]
    box = [obj.cx - obj.radius, obj.cy - obj.radius, obj.cx + obj.radius, obj.cy + obj.radius]
    if name == "circle":
        draw.ellipse(box, fill=255)
    elif name == "ring":
        draw.ellipse(box, fill=255)
        inner = 0.5 * obj.radius
        draw.ellipse([obj.cx - inner, obj.cy - inner, obj.cx + inner, obj.cy + inner], fill=0)
    else:
        draw.polygon(_polygon(obj), fill=255)
    return mask


def _texture(
    rng: np.random.Generator,
    kind: str,
    size: tuple[int, int],
    c1: tuple[int, int, int],
    c2: tuple[int, int, int],
) -> np.ndarray:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "stripes":
        period = rng.uniform(6, 24)
        theta = rng.uniform(0, math.pi)
        t = np.sin((xx * math.cos(theta) + yy * math.sin(theta)) * 2 * math.pi / period) > 0
        t = t.astype(np.float32)
    elif kind == "checker":
        cell = int(rng.integers(6, 24))
        t = (((xx // cell) + (yy // cell)) % 2).astype(np.float32)
    elif kind == "gradient":
        theta = rng.uniform(0, 2 * math.pi)
        t = xx * math.cos(theta) + yy * math.sin(theta)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    elif kind == "noise":
        small = rng.random((max(2, h // 16), max(2, w // 16))).astype(np.float32)
        t = (
            np.asarray(
                Image.fromarray((small * 255).astype(np.uint8)).resize(
                    (w, h), Image.Resampling.BICUBIC
                ),
                dtype=np.float32,
            )
            / 255.0
        )
    else:  # solid
        t = np.zeros((h, w), np.float32)
    c1a = np.array(c1, np.float32)
    c2a = np.array(c2, np.float32)
    img = c1a * (1 - t[..., None]) + c2a * t[..., None]
    grain = rng.normal(0, 6, size=(h, w, 1)).astype(np.float32)
    return np.clip(img + grain, 0, 255)


def _color(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, size=3))


def object_crop(image: np.ndarray, mask: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """The part of ``image`` inside the bounding box of ``mask`` grown by ``margin`` of its
    size on every side (clipped to the image)."""
    h, w = image.shape[:2]
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    my, mx = int((y1 - y0) * margin), int((x1 - x0) * margin)
    return np.ascontiguousarray(
        image[max(0, y0 - my) : min(h, y1 + my), max(0, x0 - mx) : min(w, x1 + mx)]
    )


class SceneGenerator:
    """Deterministic scene sampler/renderer shared by the dataset and the tests."""

    def __init__(
        self,
        seed: int,
        split: str,
        min_size: int,
        max_size: int,
        min_objects: int,
        max_objects: int,
        object_scale: tuple[float, float] = OBJECT_SCALE,
    ):
        self.seed, self.split = seed, split
        self.min_size, self.max_size = min_size, max_size
        self.min_objects, self.max_objects = min_objects, max(min_objects, max_objects)
        low, high = (float(v) for v in object_scale)
        if not 0 < low <= high <= 1:
            raise DatasetError(f"synthetic-scenes: object_scale {list(object_scale)} not in (0, 1]")
        self.object_scale = (low, high)

    def sample(self, index: int) -> tuple[tuple[int, int], list[SceneObject]]:
        rng = _rng(self.seed, self.split, index, "layout")
        w = int(rng.integers(self.min_size, self.max_size + 1))
        h = int(rng.integers(self.min_size, self.max_size + 1))
        n = int(rng.integers(self.min_objects, self.max_objects + 1))
        objs = []
        short = min(w, h)
        for k in range(n):
            # Every category appears evenly across a split (round robin + random offset).
            cat = int((index * 3 + k + int(rng.integers(0, len(CATEGORIES)))) % len(CATEGORIES))
            radius = float(rng.uniform(*self.object_scale) * short)
            cx = float(rng.uniform(radius * 0.6, w - radius * 0.6))
            cy = float(rng.uniform(radius * 0.6, h - radius * 0.6))
            objs.append(
                SceneObject(
                    category=cat,
                    cx=cx,
                    cy=cy,
                    radius=radius,
                    angle=float(rng.uniform(0, 2 * math.pi)),
                    color=_color(rng),
                    color2=_color(rng),
                    texture=str(rng.choice(["solid", "stripes", "checker", "gradient", "noise"])),
                )
            )
        return (w, h), objs

    def render(self, index: int) -> tuple[np.ndarray, list[dict]]:
        """Return the RGB image and the visible instances (category, binary mask)."""
        (w, h), objs = self.sample(index)
        rng = _rng(self.seed, self.split, index, "texture")
        bg_kind = str(rng.choice(["stripes", "checker", "gradient", "noise"]))
        canvas = _texture(rng, bg_kind, (w, h), _color(rng), _color(rng))
        canvas = np.asarray(
            Image.fromarray(canvas.astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6)),
            dtype=np.float32,
        )
        masks = []
        for obj in objs:
            mask = np.asarray(_shape_mask(obj, (w, h)), dtype=np.uint8) > 127
            tex = _texture(rng, obj.texture, (w, h), obj.color, obj.color2)
            canvas[mask] = tex[mask]
            for prev in masks:  # later objects occlude earlier ones
                prev &= ~mask
            masks.append(mask.copy())
        instances = []
        for obj, mask in zip(objs, masks, strict=True):
            full = float((np.asarray(_shape_mask(obj, (w, h))) > 127).sum())
            if full == 0 or mask.sum() < MIN_VISIBLE_FRACTION * full or mask.sum() < 16:
                continue
            instances.append({"category": obj.category, "mask": mask})
        return canvas.astype(np.uint8), instances


@register_dataset("synthetic-scenes")
class SyntheticScenes(Dataset):
    has_annotations = True

    @property
    def generator(self) -> SceneGenerator:
        c = self.cfg
        return SceneGenerator(
            self.seed,
            c.get("split", "val"),
            c.get("min_size", 256),
            c.get("max_size", 512),
            c.get("min_objects", 2),
            c.get("max_objects", 6),
            tuple(c.get("object_scale", OBJECT_SCALE)),
        )

    def _list(self) -> list[Item]:
        split = self.cfg.get("split", "val")
        n = self.cfg.get("num_images", 24)
        return [
            Item(id=f"{split}_{i:06d}", source=f"synthetic:{split}:{i}", extra={"index": i})
            for i in range(n)
        ]

    @functools.lru_cache(maxsize=4)  # noqa: B019 - load, label and annotations share renders
    def _render_index(self, index: int) -> tuple[np.ndarray, list[dict]]:
        return self.generator.render(index)

    def _render(self, item: Item) -> tuple[np.ndarray, list[dict]]:
        return self._render_index(int(item.id.rsplit("_", 1)[1]))

    def _load(self, item: Item) -> Image.Image:
        return Image.fromarray(self._render(item)[0])

    def label(self, item: Item) -> int:
        """Category of the largest visible object."""
        _, instances = self._render(item)
        return max(instances, key=lambda d: d["mask"].sum())["category"] if instances else 0

    def annotations(self, items: list[Item], sizes: Mapping[str, tuple[int, int]]) -> dict:
        from pycocotools import mask as mask_utils

        images, anns = [], []
        for item in items:
            index = int(item.id.rsplit("_", 1)[1])
            image, instances = self._render(item)
            h, w = image.shape[:2]
            images.append(
                {
                    "id": index,
                    "file_name": f"{item.id}.png",
                    "width": w,
                    "height": h,
                    "label": self.label(item),
                }
            )
            for inst in instances:
                rle = mask_utils.encode(np.asfortranarray(inst["mask"].astype(np.uint8)))
                bbox = [float(v) for v in mask_utils.toBbox(rle)]
                rle["counts"] = rle["counts"].decode("ascii")
                anns.append(
                    {
                        "id": index * 100 + len([a for a in anns if a["image_id"] == index]) + 1,
                        "image_id": index,
                        "category_id": inst["category"] + 1,
                        "segmentation": rle,
                        "area": float(inst["mask"].sum()),
                        "bbox": bbox,
                        "iscrowd": 0,
                    }
                )
        categories = [
            {"id": k + 1, "name": name, "supercategory": "shape"}
            for k, name in enumerate(CATEGORIES)
        ]
        return {"images": images, "annotations": anns, "categories": categories}
