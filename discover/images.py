"""Images as the package passes them: files <-> (H, W, 3) uint8 RGB arrays <-> float tensors."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from discover.errors import DiscoverError

if TYPE_CHECKING:
    import torch


def read_rgb(
    path: str | os.PathLike,
    shape: tuple[int, int] | None = None,
    *,
    error: type[DiscoverError] = DiscoverError,
    context: str = "",
) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB; ``error`` naming the file (after ``context``, e.g.
    "codec 'jpeg': ") when it cannot be read or is not ``shape`` (H, W)."""
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        # PIL reports truncated or corrupt files as OSError (or SyntaxError for some formats)
        raise error(f"{context}cannot read image {path}: {exc}") from exc
    if shape is not None and arr.shape[:2] != tuple(shape):
        raise error(
            f"{context}image {path} is {arr.shape[1]}x{arr.shape[0]}, "
            f"expected {shape[1]}x{shape[0]}"
        )
    return arr


def write_png(image: np.ndarray, path: str | os.PathLike) -> None:
    """An RGB array as PNG, fast compression (the pipeline's images are intermediate)."""
    Image.fromarray(image).save(path, format="PNG", compress_level=1)


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float in [0, 1], the input learned codecs take."""
    import torch  # PyTorch only where a tensor is made: table and plot jobs read images too

    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div(255)


def tensor_to_image(x_hat: torch.Tensor, height: int, width: int) -> np.ndarray:
    """(1, 3, H', W') in [0, 1] -> (height, width, 3) uint8, cropping any padding."""
    x_hat = x_hat[0, :, :height, :width].clamp(0, 1).mul(255).round().byte()
    return x_hat.permute(1, 2, 0).cpu().numpy()
