"""VTM (VVC) and HM (HEVC) reference software as codecs: the paper's anchor is VTM-12.1.

The binaries are user-supplied (build them from the JVET / JCT-VC repositories and point
``encoder``/``decoder`` at EncoderAppStatic / DecoderAppStatic or TAppEncoderStatic /
TAppDecoderStatic; ``cfg`` at the intra configuration, e.g. cfg/encoder_intra_vtm.cfg).
RGB goes through the shared Y'CbCr harness (discover.codecs.yuv): 8-bit 4:4:4 (or 4:2:0) raw
YUV in, coded at ``bit_depth`` internally, decoded back to 8 bit. Rate point = QP. Bits are the
size of the ``.bin`` the encoder writes. `discover check-codec NAME` runs the encoder once to
read its version and compares it with ``version`` from config.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from discover.codecs import yuv
from discover.codecs.base import Codec
from discover.codecs.registry import register_codec
from discover.errors import CodecError

_VERSION_PATTERNS = (
    re.compile(r"VTM (?:Encoder|Decoder) Version\s*\[?([0-9][0-9.]*)"),
    re.compile(r"HM software: (?:Encoder|Decoder) Version \[([0-9][0-9.]*)"),
    re.compile(r"Version\s*\[?([0-9]+\.[0-9.]+)"),
)


def parse_version(banner: str) -> str | None:
    """The version number in a VTM/HM start-up banner (None if there is none)."""
    for pattern in _VERSION_PATTERNS:
        m = pattern.search(banner)
        if m:
            return m.group(1).rstrip(".")
    return None


class ReferenceSoftwareCodec(Codec):
    extension = "bin"
    rate_increases_bits = False
    software = ""

    @property
    def chroma(self) -> str:
        return str(self.cfg.get("chroma_format", "444"))

    @property
    def bit_depth(self) -> int:
        return int(self.cfg.get("bit_depth", 10))

    def _binary_path(self, key: str) -> str:
        import shutil

        exe = self.cfg.get(key)
        if not exe:
            raise CodecError(
                f"codec {self.name!r}: set codecs.{self.name}.{key} to the "
                f"{self.software} {key} binary (it is not installable here: build "
                "it from the reference software repository)"
            )
        found = shutil.which(exe)
        if found is None:
            raise CodecError(
                f"codec {self.name!r}: {key} binary {exe!r} not found (codecs.{self.name}.{key})"
            )
        return found

    def _cfg_file(self) -> str:
        cfg = self.cfg.get("cfg")
        if not cfg or not Path(cfg).is_file():
            raise CodecError(
                f"codec {self.name!r}: encoder configuration file "
                f"codecs.{self.name}.cfg = {cfg!r} does not exist"
            )
        return str(cfg)

    def encoder_args(
        self, encoder: str, cfg: str, src: Path, width: int, height: int, qp: int, bitstream: Path
    ) -> list[str]:
        fmt = self.chroma
        return [
            encoder,
            "-c",
            cfg,
            "-i",
            str(src),
            "-b",
            str(bitstream),
            "-o",
            "/dev/null",
            "-wdt",
            str(width),
            "-hgt",
            str(height),
            "-q",
            str(int(qp)),
            "-fr",
            "1",
            "-f",
            "1",
            "--InputBitDepth=8",
            f"--InternalBitDepth={self.bit_depth}",
            f"--OutputBitDepth={self.bit_depth}",
            f"--InputChromaFormat={fmt}",
            f"--ChromaFormatIDC={fmt}",
            "--ConformanceWindowMode=1",
        ]

    def decoder_args(self, decoder: str, bitstream: Path, out: Path) -> list[str]:
        return [decoder, "-b", str(bitstream), "-o", str(out), "-d", "8"]

    def version(self) -> str:
        exe = self._binary_path("encoder")
        try:
            proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CodecError(f"codec {self.name!r}: cannot run {exe}: {exc}") from exc
        found = parse_version(proc.stdout + proc.stderr)
        if found is None:
            raise CodecError(f"codec {self.name!r}: {exe} printed no {self.software} version")
        return found

    def check(self) -> str:
        found = self.version()
        expected = self.cfg.get("version")
        if expected and str(expected) != found:
            raise CodecError(
                f"codec {self.name!r}: {self.software} version {found}, config expects {expected}"
            )
        self._binary_path("decoder")
        self._cfg_file()
        return f"{self.software} {found}"

    def encode(self, image: np.ndarray, rate, path: Path) -> None:
        padded = yuv.pad_even(image) if self.chroma == "420" else image
        planes = yuv.to_planes(padded, self.chroma)
        h, w = planes[0].shape
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            src = Path(tmp) / "in.yuv"
            yuv.write_raw_yuv(src, planes)
            out = Path(tmp) / "out.bin"
            self.run(
                self.encoder_args(
                    self._binary_path("encoder"), self._cfg_file(), src, w, h, int(rate), out
                ),
                "encode",
            )
            out.replace(path)

    def decode(self, path: Path, shape: tuple[int, int], rate) -> np.ndarray:
        h, w = shape
        ph, pw = (h + h % 2, w + w % 2) if self.chroma == "420" else (h, w)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            out = Path(tmp) / "rec.yuv"
            self.run(self.decoder_args(self._binary_path("decoder"), path, out), "decode")
            try:
                planes = yuv.read_raw_yuv(out, pw, ph, self.chroma)
            except ValueError as exc:
                raise CodecError(f"codec {self.name!r}: decoding {path}: {exc}") from exc
        return yuv.from_planes(planes, self.chroma)[:h, :w]


@register_codec("vtm")
class VtmCodec(ReferenceSoftwareCodec):
    software = "VTM"


@register_codec("hm")
class HmCodec(ReferenceSoftwareCodec):
    software = "HM"
