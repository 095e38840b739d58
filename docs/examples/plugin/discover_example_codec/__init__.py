"""A discover-bench codec plugin: a PNG whose colours are quantised to a palette.

Rate point = number of palette colours (more colours, more bits). Lossy (quantisation) and
entropy-coded (PNG's DEFLATE): the file size is the bit count, like every codec.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from discover.codecs import Codec
from discover.io import write_bytes_atomic


class PaletteCodec(Codec):
    extension = "png"
    rate_increases_bits = True

    def encode(self, image: np.ndarray, rate, path: Path) -> None:
        quantised = Image.fromarray(image).quantize(
            colors=int(rate), method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
        buf = io.BytesIO()
        quantised.save(buf, format="PNG", optimize=True)
        write_bytes_atomic(path, buf.getvalue())

    def decode(self, path: Path, shape: tuple[int, int], rate) -> np.ndarray:
        return self.read_decoded(path, shape)
