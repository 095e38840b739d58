"""Boxes on a latent grid: rasterising pixel boxes into a mask of latent positions, and the
run-length form masks are stored in. Shared by the grounding stage (its records) and the DISCOVER
codec (its task masks), so both select exactly the same positions for the same boxes.

A latent position (r, c) at stride s stands for the pixels [s*r, s*r+s) x [s*c, s*c+s); a box
selects every position it overlaps, rounded outwards, so no part of a task object is left out.
At stride 16 this is exactly :func:`discover.discover_codec.masks.boxes_to_mask`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from discover.errors import GroundingError


def latent_grid(image_size: tuple[int, int], stride: int = 16) -> tuple[int, int]:
    """(ceil(H / stride), ceil(W / stride)): the positions needed to cover every pixel."""
    height, width = image_size
    return -(-int(height) // stride), -(-int(width) // stride)


def boxes_to_latent_mask(
    boxes: Iterable[Sequence[float]],
    image_size: tuple[int, int],
    stride: int = 16,
    grid: tuple[int, int] | None = None,
) -> np.ndarray:
    """Rasterise COCO ``[x, y, w, h]`` pixel boxes onto a latent grid of the given stride.

    ``image_size`` is (H, W) of the image the boxes refer to; boxes are clipped to it, and boxes
    with no area inside it (outside, w <= 0, h <= 0, not finite) are ignored. ``grid`` (h, w)
    defaults to :func:`latent_grid`; pass it for a padded image whose latent is larger.
    """
    if int(stride) != stride or stride < 1:
        raise GroundingError(f"latent stride must be a positive integer, got {stride!r}")
    stride = int(stride)
    gh, gw = latent_grid(image_size, stride) if grid is None else (int(grid[0]), int(grid[1]))
    height, width = (float(v) for v in image_size)
    mask = np.zeros((gh, gw), dtype=bool)
    for box in boxes:
        x, y, w, h = (float(v) for v in box)
        x0, y0 = max(0.0, x), max(0.0, y)
        x1, y1 = min(width, x + w), min(height, y + h)
        if not all(map(math.isfinite, (x0, y0, x1, y1))) or x1 <= x0 or y1 <= y0:
            continue
        # floor of the start, ceil of the end: a box touching a position selects it
        c0, r0 = int(x0 // stride), int(y0 // stride)
        c1, r1 = -int(-x1 // stride), -int(-y1 // stride)
        mask[r0 : min(r1, gh), c0 : min(c1, gw)] = True
    return mask


def masked_fraction(mask: np.ndarray) -> float:
    """Share of latent positions selected (0.0 for an empty grid)."""
    mask = np.asarray(mask, dtype=bool)
    return float(mask.mean()) if mask.size else 0.0


def mask_to_runs(mask: np.ndarray) -> list[int]:
    """Row-major run lengths of ``mask``, alternating False/True and starting with False."""
    flat = np.asarray(mask, dtype=bool).reshape(-1)
    if flat.size == 0:
        return []
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], edges, [flat.size]))).tolist()
    return [0, *runs] if flat[0] else runs


def runs_to_mask(runs: Sequence[int], grid: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`mask_to_runs`; GroundingError if the runs do not fill ``grid``."""
    h, w = (int(v) for v in grid)
    counts = np.asarray(runs, dtype=np.int64)
    if counts.ndim != 1 or (counts < 0).any() or counts.sum() != h * w:
        raise GroundingError(
            f"{counts.size} mask run lengths summing to {counts.sum()} do not cover the "
            f"{h}x{w} latent grid"
        )
    values = np.arange(counts.size) % 2 == 1
    return np.repeat(values, counts).reshape(h, w)
