"""HEVC intra through the x265 encoder CLI and FFmpeg's HEVC decoder.

One intra frame, constant QP (the rate point), no info SEI (it would add ~2 kB of encoder
settings to every image). RGB goes through the shared Y'CbCr harness (discover.codecs.yuv).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from discover.codecs import yuv
from discover.codecs.base import Codec
from discover.codecs.registry import register_codec
from discover.errors import CodecError


@register_codec("hevc")
class HevcCodec(Codec):
    """Rate = QP 0-51 (lower is better quality, more bits)."""

    extension = "hevc"
    rate_increases_bits = False
    binaries = (("encoder", "x265", "x265"), ("decoder", "ffmpeg", "ffmpeg"))

    @property
    def chroma(self) -> str:
        return self.cfg.get("chroma_format", "444")

    def encode(self, image: np.ndarray, rate, path: Path) -> None:
        padded = yuv.pad_even(image) if self.chroma == "420" else image
        planes = yuv.to_planes(padded, self.chroma)
        profile = "main444-8" if self.chroma == "444" else "main"
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            src = Path(tmp) / "in.y4m"
            yuv.write_y4m(src, planes, self.chroma)
            out = Path(tmp) / f"out.{self.extension}"
            self.run(
                [
                    self.binary("encoder"),
                    "--input",
                    str(src),
                    "--output",
                    str(out),
                    "--qp",
                    str(int(rate)),
                    "--preset",
                    self.cfg.get("preset", "medium"),
                    "--profile",
                    profile,
                    "--frames",
                    "1",
                    "--keyint",
                    "1",
                    "--no-info",
                    "--range",
                    "full",
                    "--pools",
                    str(self.threads),
                    "--frame-threads",
                    "1",
                    "--log-level",
                    "error",
                ],
                "encode",
            )
            out.replace(path)

    def decode(self, path: Path, shape: tuple[int, int], rate) -> np.ndarray:
        h, w = shape
        ph, pw = (h + h % 2, w + w % 2) if self.chroma == "420" else (h, w)
        pix = "yuv444p" if self.chroma == "444" else "yuv420p"
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            out = Path(tmp) / "out.yuv"
            self.run(
                [
                    self.binary("decoder"),
                    "-nostdin",
                    "-v",
                    "error",
                    "-threads",
                    "1",
                    "-f",
                    "hevc",
                    "-i",
                    str(path),
                    "-frames:v",
                    "1",
                    "-f",
                    "rawvideo",
                    "-pix_fmt",
                    pix,
                    str(out),
                ],
                "decode",
            )
            try:
                planes = yuv.read_raw_yuv(out, pw, ph, self.chroma)
            except ValueError as exc:
                raise CodecError(f"codec {self.name!r}: decoding {path}: {exc}") from exc
        return yuv.from_planes(planes, self.chroma)[:h, :w]
