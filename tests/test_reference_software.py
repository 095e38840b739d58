"""VTM / HM harness: command lines, version parsing and the raw YUV files they read and write.

The reference encoders cannot be installed on this project's machines (they are built from the
JVET / JCT-VC sources by the user); the YUV harness they share is exercised end to end with x265
in test_codecs.py, and here with the files' exact layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from discover.codecs import get_codec, yuv
from discover.codecs.reference_software import parse_version
from discover.errors import CodecError


@pytest.mark.parametrize(
    "banner,version",
    [
        (
            "\nVVCSoftware: VTM Encoder Version 12.1 [Linux][GCC 9.4.0][64 bit] [SIMD=AVX2]\n",
            "12.1",
        ),
        ("VVCSoftware: VTM Decoder Version 23.4 [Linux][GCC 12.2.0][64 bit]", "23.4"),
        (
            "HM software: Encoder Version [16.20] (including RExt)[Linux][GCC 7.5.0][64 bit]",
            "16.20",
        ),
        ("no banner here", None),
    ],
)
def test_version_banner_parsing(banner, version):
    assert parse_version(banner) == version


def _codec(kind="vtm", **extra):
    entry = {"type": kind, "rates": [37, 32, 27, 22], **extra}
    return get_codec("anchor", {"codecs": {"anchor": entry}})


def test_vtm_command_lines():
    codec = _codec(bit_depth=10)
    enc = codec.encoder_args(
        "EncoderAppStatic", "intra.cfg", Path("in.yuv"), 768, 512, 32, Path("out.bin")
    )
    assert enc[:3] == ["EncoderAppStatic", "-c", "intra.cfg"]
    joined = " ".join(enc)
    for part in (
        "-i in.yuv",
        "-b out.bin",
        "-o /dev/null",
        "-wdt 768",
        "-hgt 512",
        "-q 32",
        "-f 1",
        "--InputBitDepth=8",
        "--InternalBitDepth=10",
        "--OutputBitDepth=10",
        "--InputChromaFormat=444",
        "--ChromaFormatIDC=444",
        "--ConformanceWindowMode=1",
    ):
        assert part in joined
    dec = codec.decoder_args("DecoderAppStatic", Path("out.bin"), Path("rec.yuv"))
    assert dec == ["DecoderAppStatic", "-b", "out.bin", "-o", "rec.yuv", "-d", "8"]
    assert codec.rate_increases_bits is False


def test_hm_420_command_line():
    codec = _codec("hm", chroma_format="420", bit_depth=8)
    joined = " ".join(
        codec.encoder_args("TAppEncoderStatic", "c.cfg", Path("a.yuv"), 10, 6, 47, Path("b.bin"))
    )
    assert "--ChromaFormatIDC=420" in joined and "--InternalBitDepth=8" in joined


def test_missing_binaries_and_cfg_are_named(tmp_path):
    image = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(CodecError, match=r"codecs\.anchor\.encoder"):
        _codec().encode(image, 32, tmp_path / "a.bin")
    with pytest.raises(CodecError, match="EncoderAppStatic-missing"):
        _codec(encoder="EncoderAppStatic-missing").check()
    with pytest.raises(CodecError, match="encoder configuration file"):
        _codec(encoder="true", cfg=str(tmp_path / "none.cfg"))._cfg_file()


@pytest.mark.parametrize("chroma", ["444", "420"])
def test_raw_yuv_layout_round_trip(tmp_path, chroma):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    planes = yuv.to_planes(rgb, chroma)
    yuv.write_raw_yuv(tmp_path / "a.yuv", planes)
    size = (tmp_path / "a.yuv").stat().st_size
    assert size == (60 * 3 if chroma == "444" else 60 + 2 * 15)
    back = yuv.read_raw_yuv(tmp_path / "a.yuv", 10, 6, chroma)
    assert all(np.array_equal(a, b) for a, b in zip(planes, back, strict=True))
    with pytest.raises(ValueError, match="expected"):
        yuv.read_raw_yuv(tmp_path / "a.yuv", 12, 6, chroma)
