"""Every codec writes a real bitstream, decodes it, and spends more bits at higher quality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from discover.codecs import get_codec
from discover.codecs.yuv import from_planes, to_planes
from discover.datasets.synthetic_scenes import SceneGenerator
from discover.errors import CodecError
from discover.metrics import psnr
from discover.stages.codecs import run_codec_shard

CODECS = {
    "jpeg": {"type": "jpeg", "rates": [10, 50, 90]},
    "webp": {"type": "webp", "rates": [10, 50, 90]},
    "avif": {"type": "avif", "rates": [50, 35, 20]},
    "hevc": {"type": "hevc", "rates": [42, 32, 22]},
    "hevc420": {"type": "hevc", "rates": [42, 32, 22], "chroma_format": "420"},
    "cwebp": {
        "type": "command",
        "rates": [10, 50, 90],
        "extension": "webp",
        "encode": "cwebp -quiet -q {rate} {input} -o {output}",
        "decode": "dwebp -quiet {input} -o {output}",
    },
}
CONFIG = {"codecs": CODECS, "metrics": ["psnr", "msssim"]}


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    img, _ = SceneGenerator(3, "val", 131, 131, 3, 3).render(0)  # odd size on purpose
    return img


@pytest.mark.parametrize("name", list(CODECS))
def test_round_trip_and_size_monotone_in_rate(name, image, tmp_path):
    codec = get_codec(name, CONFIG)
    sizes, quality = [], []
    for rate in codec.rates:
        path = tmp_path / f"{rate}.{codec.extension}"
        codec.encode(image, rate, path)
        assert path.stat().st_size > 0
        rec = codec.decode(path, image.shape[:2], rate)
        assert rec.shape == image.shape and rec.dtype == np.uint8
        sizes.append(path.stat().st_size)
        quality.append(psnr(image, rec))
    # rates are listed from low to high quality for every codec above
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes), sizes
    assert quality == sorted(quality) and quality[-1] > quality[0] + 1.0, quality
    assert quality[-1] > 24.0


@pytest.mark.parametrize("name", ["jpeg", "webp", "avif", "hevc", "cwebp"])
def test_encoding_is_deterministic(name, image, tmp_path):
    codec = get_codec(name, CONFIG)
    rate = codec.rates[1]
    a, b = tmp_path / f"a.{codec.extension}", tmp_path / f"b.{codec.extension}"
    codec.encode(image, rate, a)
    codec.encode(image, rate, b)
    assert a.read_bytes() == b.read_bytes()


def test_yuv_harness_444_is_nearly_lossless(image):
    rec = from_planes(to_planes(image, "444"), "444")
    assert np.abs(rec.astype(int) - image).max() <= 2


def test_bpp_is_eight_times_bytes_over_pixels(image, tmp_path):
    ref = tmp_path / "ref"
    ref.mkdir()
    Image.fromarray(image).save(ref / "a.png")
    Image.fromarray(image[:100, :77]).save(ref / "b.png")
    pd.DataFrame(
        [
            {"id": "a", "width": 131, "height": 131, "label": 0, "source": "x"},
            {"id": "b", "width": 77, "height": 100, "label": 0, "source": "y"},
        ]
    ).to_csv(ref / "index.csv", index=False)
    out, csv = tmp_path / "out", tmp_path / "m.csv"
    run_codec_shard(CONFIG, "hevc", "32", ref, out, csv)
    df = pd.read_csv(csv, dtype={"id": str})
    for row in df.itertuples():
        nbytes = (out / f"{row.id}.hevc").stat().st_size
        assert row.bits == 8 * nbytes
        assert row.bpp == pytest.approx(8 * nbytes / (row.width * row.height), rel=1e-12)
        rec = np.asarray(Image.open(out / f"{row.id}.png"))
        assert rec.shape == (row.height, row.width, 3)


def test_missing_encoder_binary_names_binary_and_package(image, tmp_path):
    cfg = {"codecs": {"hevc": {"type": "hevc", "rates": [30], "encoder": "x265-not-here"}}}
    codec = get_codec("hevc", cfg)
    with pytest.raises(CodecError, match="x265-not-here") as err:
        codec.encode(image, 30, tmp_path / "a.hevc")
    assert "codecs.hevc.encoder" in str(err.value) and "'x265'" in str(err.value)
    assert not (tmp_path / "a.hevc").exists()


def _command_codec(encode: str):
    entry = {
        "type": "command",
        "rates": [1],
        "extension": "bin",
        "encode": encode,
        "decode": "cat {input} > {output}",
    }
    return get_codec("c", {"codecs": {"c": entry}})


def test_command_codec_missing_program_is_named(image, tmp_path):
    with pytest.raises(CodecError, match="no-such-encoder"):
        _command_codec("no-such-encoder {input} {output}").encode(image, 1, tmp_path / "a.bin")


def test_failing_command_reports_exit_and_stderr(image, tmp_path):
    codec = _command_codec("sh -c 'echo broken >&2; exit 3' {input} {output}")
    with pytest.raises(CodecError, match=r"exit 3\)(.|\n)*broken"):
        codec.encode(image, 1, tmp_path / "a.bin")


def test_plugin_codec_by_module_path(image, tmp_path):
    cfg = {"codecs": {"p": {"type": "discover.codecs.pillow_codecs:JpegCodec", "rates": [50]}}}
    codec = get_codec("p", cfg)
    codec.encode(image, 50, tmp_path / "a.jpg")
    assert codec.decode(tmp_path / "a.jpg", image.shape[:2], 50).shape == image.shape
