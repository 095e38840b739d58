"""AVIF through libavif's command-line tools (avifenc / avifdec)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from discover.codecs.base import Codec
from discover.codecs.registry import register_codec
from discover.images import write_png


@register_codec("avif")
class AvifCodec(Codec):
    """Rate = AV1 quantizer 0-63 (lower is better quality, more bits)."""

    extension = "avif"
    rate_increases_bits = False
    binaries = (("encoder", "avifenc", "libavif-bin"), ("decoder", "avifdec", "libavif-bin"))

    def encode(self, image: np.ndarray, rate, path: Path) -> None:
        q = str(int(rate))
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            src = Path(tmp) / "in.png"
            write_png(image, src)
            out = Path(tmp) / f"out.{self.extension}"
            self.run(
                [
                    self.binary("encoder"),
                    "--jobs",
                    "1",
                    "--speed",
                    str(self.cfg.get("speed", 6)),
                    "--yuv",
                    self.cfg.get("chroma_format", "444"),
                    "--min",
                    q,
                    "--max",
                    q,
                    "--ignore-exif",
                    "--ignore-xmp",
                    "--ignore-icc",
                    str(src),
                    str(out),
                ],
                "encode",
            )
            out.replace(path)

    def decode(self, path: Path, shape: tuple[int, int], rate) -> np.ndarray:
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            out = Path(tmp) / "out.png"
            self.run([self.binary("decoder"), "--jobs", "1", str(path), str(out)], "decode")
            return self.read_decoded(out, shape)
