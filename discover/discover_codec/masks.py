"""Task masks on the latent grid: rasterising boxes, coding masks losslessly, random masks.

A latent position (r, c) stands for the 16x16 pixels [16r, 16r+16) x [16c, 16c+16) of the
image; a box selects every position it overlaps (rounded outwards), so nothing of a task object
is left out.

Mask coding (in the ``.dsc`` header): one mode byte, then
``0`` empty | ``1`` full | ``2`` rectangles: count, then (row, col, height, width) each |
``3`` run lengths: alternating runs of 0 and 1 in row-major order, starting with 0.
All numbers are LEB128 varints. The encoder writes whichever of 2 and 3 is shorter; masks from
boxes are a few rectangles, so a typical task mask costs a handful of bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from discover.discover_codec.geometry import LATENT_STRIDE
from discover.discover_codec.varint import Reader, write_varint
from discover.errors import BitstreamError
from discover.latent_masks import boxes_to_latent_mask, mask_to_runs

EMPTY, FULL, RECTANGLES, RUNS = 0, 1, 2, 3


def boxes_to_mask(
    boxes: Iterable[Sequence[float]], grid: tuple[int, int], image_size: tuple[int, int]
) -> np.ndarray:
    """Rasterise ``[x, y, w, h]`` pixel boxes (COCO convention) onto the latent grid.

    ``grid`` is (h, w) of ŷ, ``image_size`` (height, width) of the image; boxes are clipped.
    The grounding stage's rasteriser at the codec's stride (one rule for both).
    """
    return boxes_to_latent_mask(boxes, image_size, LATENT_STRIDE, grid)


def rectangles(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Exact cover of ``mask`` by disjoint rectangles (row, col, height, width), greedily:
    the first uncovered cell in row-major order grows right, then down."""
    todo = mask.astype(bool).copy()
    rects = []
    h, w = todo.shape
    for r in range(h):
        c = 0
        while c < w:
            if not todo[r, c]:
                c += 1
                continue
            c1 = c
            while c1 < w and todo[r, c1]:
                c1 += 1
            r1 = r + 1
            while r1 < h and todo[r1, c:c1].all():
                r1 += 1
            todo[r:r1, c:c1] = False
            rects.append((r, c, r1 - r, c1 - c))
            c = c1
    return rects


def encode_mask(mask: np.ndarray) -> bytes:
    """Lossless, compact code of a boolean (h, w) mask (its size is known to the decoder)."""
    if not mask.any():
        return bytes([EMPTY])
    if mask.all():
        return bytes([FULL])
    rect_code = bytearray([RECTANGLES])
    rects = rectangles(mask)
    write_varint(rect_code, len(rects))
    for rect in rects:
        for v in rect:
            write_varint(rect_code, v)
    run_code = bytearray([RUNS])
    for run in mask_to_runs(mask):
        write_varint(run_code, run)
    return bytes(min(rect_code, run_code, key=len))


def decode_mask(data: bytes, grid: tuple[int, int], what: str = "mask") -> np.ndarray:
    """Inverse of :func:`encode_mask`; raises BitstreamError on anything inconsistent."""
    h, w = grid
    reader = Reader(data, what)
    mode = reader.byte()
    mask = np.zeros(grid, dtype=bool)
    if mode == EMPTY:
        pass
    elif mode == FULL:
        mask[:] = True
    elif mode == RECTANGLES:
        count = reader.varint(limit=h * w)
        for _ in range(count):
            r, c, rh, rw = (reader.varint(limit=max(h, w)) for _ in range(4))
            if rh == 0 or rw == 0 or r + rh > h or c + rw > w:
                raise BitstreamError(f"{what}: rectangle outside the {h}x{w} latent grid")
            mask[r : r + rh, c : c + rw] = True
    elif mode == RUNS:
        flat, pos, value = mask.reshape(-1), 0, False
        while not reader.at_end():
            run = reader.varint(limit=h * w)
            if pos + run > flat.size:
                raise BitstreamError(f"{what}: run lengths exceed the {h}x{w} latent grid")
            flat[pos : pos + run] = value
            pos, value = pos + run, not value
        if pos != flat.size:
            raise BitstreamError(f"{what}: run lengths cover {pos} of {flat.size} positions")
    else:
        raise BitstreamError(f"{what}: unknown mask coding mode {mode}")
    if not reader.at_end():
        raise BitstreamError(f"{what}: {reader.remaining()} unexpected trailing bytes")
    return mask


def random_keep_mask(
    rng: np.random.Generator, grid: tuple[int, int], max_drop: float = 0.5
) -> np.ndarray:
    """Training mask (paper, stage II): a random rectangle covering 0-``max_drop`` of the grid
    is zeroed; returns the kept positions."""
    h, w = grid
    keep = np.ones(grid, dtype=bool)
    frac = rng.uniform(0.0, max_drop)
    if frac <= 0:
        return keep
    area = frac * h * w
    aspect = np.exp(rng.uniform(-1.0, 1.0))
    rh = int(np.clip(round(np.sqrt(area * aspect)), 1, h))
    rw = int(np.clip(round(area / rh), 1, w))
    r = int(rng.integers(0, h - rh + 1))
    c = int(rng.integers(0, w - rw + 1))
    keep[r : r + rh, c : c + rw] = False
    return keep
