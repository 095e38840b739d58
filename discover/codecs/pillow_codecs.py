"""JPEG (libjpeg) and WebP (libwebp) through Pillow."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from discover.codecs.base import Codec
from discover.codecs.registry import register_codec
from discover.io import write_bytes_atomic

_SUBSAMPLING = {"444": 0, "422": 1, "420": 2}


@register_codec("jpeg")
class JpegCodec(Codec):
    """Baseline JPEG; rate = quality 0-100; chroma subsampling from config (default 4:2:0)."""

    extension = "jpg"

    def encode(self, image: np.ndarray, rate, path: Path) -> None:
        buf = io.BytesIO()
        Image.fromarray(image).save(
            buf,
            format="JPEG",
            quality=int(rate),
            subsampling=_SUBSAMPLING[self.cfg.get("subsampling", "420")],
        )
        write_bytes_atomic(path, buf.getvalue())

    def decode(self, path: Path, shape: tuple[int, int], rate) -> np.ndarray:
        return self.read_decoded(path, shape)


@register_codec("webp")
class WebpCodec(Codec):
    """Lossy WebP; rate = quality 0-100; ``method`` = effort 0-6 (default 4)."""

    extension = "webp"

    def encode(self, image: np.ndarray, rate, path: Path) -> None:
        buf = io.BytesIO()
        Image.fromarray(image).save(
            buf,
            format="WEBP",
            quality=int(rate),
            lossless=False,
            method=int(self.cfg.get("method", 4)),
            exact=True,
        )
        write_bytes_atomic(path, buf.getvalue())

    def decode(self, path: Path, shape: tuple[int, int], rate) -> np.ndarray:
        return self.read_decoded(path, shape)
