"""MS-ILLM through NeuralCompression: the adapter builds and loads the model like the package's
zoo does, and writes real entropy-coded streams."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from discover.codecs import get_codec
from discover.datasets.synthetic_scenes import SceneGenerator
from discover.errors import CodecError, WeightsMissingError

from .conftest import REQUIRE_OPTIONAL, import_optional

# a skip without NeuralCompression; a failure with DISCOVER_REQUIRE_OPTIONAL=1, as in CI
INSTALL = "`pip install -e '.[comparators]'` (part of `make setup`)"
models = import_optional("neuralcompression.models", INSTALL)

TINY = {"latent_features": 8, "hyper_features": 8, "num_residual_blocks": 1}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    net = models.HiFiCAutoencoder(**TINY)
    path = tmp_path_factory.mktemp("illm") / "tiny.ckpt"
    torch.save(net.state_dict(), path)
    return path


def test_round_trip_is_deterministic(weights, tmp_path):
    image = SceneGenerator(2, "val", 70, 90, 1, 2).render(0)[0]
    cfg = {
        "codecs": {
            "illm": {"type": "illm", "rates": [1], "weights": {1: str(weights)}, "model": TINY}
        }
    }
    codec = get_codec("illm", cfg)
    codec.encode(image, 1, tmp_path / "a.cai")
    get_codec("illm", cfg).encode(image, 1, tmp_path / "b.cai")
    assert (tmp_path / "a.cai").read_bytes() == (tmp_path / "b.cai").read_bytes()
    rec = get_codec("illm", cfg).decode(tmp_path / "a.cai", image.shape[:2], 1)
    assert rec.shape == image.shape and rec.dtype == np.uint8
    assert np.array_equal(rec, codec.decode(tmp_path / "a.cai", image.shape[:2], 1))


def test_official_weights_come_from_the_cache(tmp_path):
    codec = get_codec(
        "illm",
        {"codecs": {"illm": {"type": "illm", "rates": [1, 6]}}, "weights_cache": str(tmp_path)},
    )
    assert codec.official_weight(1).filename == "msillm_target_0.035bpp.ckpt"
    assert codec.official_weight(6).filename == "msillm_target_0.9bpp.ckpt"
    with pytest.raises(WeightsMissingError, match="fetch_weights"):
        codec.weight_path(1)


def test_mismatched_weights_are_named(weights, tmp_path):
    cfg = {
        "codecs": {
            "illm": {
                "type": "illm",
                "rates": [1],
                "weights": {1: str(weights)},
                "model": {**TINY, "latent_features": 12},
            }
        }
    }
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(CodecError, match="tiny.ckpt"):
        get_codec("illm", cfg).encode(image, 1, tmp_path / "a.cai")


def test_missing_neuralcompression_skips_or_fails_where_required(monkeypatch):
    monkeypatch.setitem(sys.modules, "neuralcompression.models", None)  # as if not installed
    monkeypatch.delenv(REQUIRE_OPTIONAL, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"neuralcompression\.models not importable"):
        import_optional("neuralcompression.models", INSTALL)
    monkeypatch.setenv(REQUIRE_OPTIONAL, "1")
    with pytest.raises(pytest.fail.Exception, match=r"\[comparators\].*required"):
        import_optional("neuralcompression.models", INSTALL)


def test_the_written_out_model_names_are_the_packages():
    # the plan reads the names without importing NeuralCompression (and so torch)
    from neuralcompression.zoo._msillm import VALID_WEIGHTS

    from discover.codecs.illm import MSILLM_WEIGHTS

    assert list(MSILLM_WEIGHTS) == list(VALID_WEIGHTS)
