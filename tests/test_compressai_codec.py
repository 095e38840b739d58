"""CompressAI models as codecs: real entropy-coded streams, the zoo loading path, the weights
cache and its fetch rule, and the pipeline's own training of a small zoo model."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from compressai.models import (
    Cheng2020Anchor,
    Elic2022Official,
    MeanScaleHyperprior,
    ScaleHyperprior,
)

from discover.codecs import get_codec
from discover.codecs.compressai_models import official_weight, pack, unpack
from discover.datasets.synthetic_scenes import SceneGenerator
from discover.errors import CodecError, DiscoverError, WeightsMissingError
from discover.training.zoo import train_zoo_model
from discover.weights import WeightSpec, fetch, sha256

from .conftest import ROOT


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return SceneGenerator(5, "val", 97, 101, 2, 3).render(0)[0]  # odd sizes on purpose


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = ScaleHyperprior(16, 24)
    model.update(force=True)
    path = tmp_path_factory.mktemp("w") / "tiny.pth.tar"
    torch.save(model.state_dict(), path)
    return path


def _codec(weights, **extra):
    entry = {
        "type": "compressai",
        "architecture": "bmshj2018-hyperprior",
        "rates": [1],
        "weights": {1: str(weights)},
        **extra,
    }
    return get_codec("c", {"codecs": {"c": entry}})


def test_round_trip_is_deterministic_and_bits_are_the_file(image, weights, tmp_path):
    codec = _codec(weights)
    a, b = tmp_path / "a.cai", tmp_path / "b.cai"
    codec.encode(image, 1, a)
    codec.encode(image, 1, b)
    assert a.read_bytes() == b.read_bytes()
    rec = codec.decode(a, image.shape[:2], 1)
    assert rec.shape == image.shape and rec.dtype == np.uint8
    # a fresh codec object (another process in the DAG) decodes the same pixels
    assert np.array_equal(_codec(weights).decode(a, image.shape[:2], 1), rec)
    h, w, strings, _ = unpack(a.read_bytes(), "a")
    assert (h, w) == image.shape[:2]
    payload = sum(len(s) for group in strings for s in group)
    assert payload < a.stat().st_size < payload + 200  # header + length prefixes only


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda d: b"XXXX" + d[4:], "bad magic"),
        (lambda d: d[:4] + b"\x09" + d[5:], "version"),
        (lambda d: d[: len(d) - 3], "truncated"),
        (lambda d: d[:7] + b"x" + d[8:], "corrupt header"),
    ],
)
def test_corrupt_streams_are_rejected(image, weights, tmp_path, mutate, needle):
    codec = _codec(weights)
    path = tmp_path / "a.cai"
    codec.encode(image, 1, path)
    path.write_bytes(mutate(path.read_bytes()))
    with pytest.raises(CodecError, match=needle):
        codec.decode(path, image.shape[:2], 1)


def test_pack_unpack_nested_strings():
    strings = [[b"abc"], [b"", b"xyz"], [[b"1"], [b"22"]]]
    data = pack(3, 5, strings, {"y": [4, 6], "z": (2, 3)})
    h, w, back, shape = unpack(data, "x")
    assert (h, w, back, shape) == (3, 5, strings, {"y": [4, 6], "z": [2, 3]})


def test_wrong_weights_name_the_file(image, tmp_path):
    torch.save({"g_a.0.weight": torch.zeros(4, 3, 5, 5)}, tmp_path / "bad.pth.tar")
    with pytest.raises(CodecError, match="bad.pth.tar"):
        _codec(tmp_path / "bad.pth.tar").encode(image, 1, tmp_path / "a.cai")


def test_official_weights_load_from_the_cache_through_compressai_loading(image, tmp_path):
    spec = official_weight("bmshj2018-hyperprior", "mse", 1)
    assert spec.filename == "bmshj2018-hyperprior-1-7eb97409.pth.tar"
    entry = {
        "type": "compressai",
        "architecture": "bmshj2018-hyperprior",
        "rates": [1],
    }
    config = {"codecs": {"z": entry}, "weights_cache": str(tmp_path)}
    codec = get_codec("z", config)
    with pytest.raises(WeightsMissingError, match="snakemake fetch_weights"):
        codec.encode(image, 1, tmp_path / "a.cai")
    # A state dict saved under the official name in the official layout (quality 1: N=128,
    # M=192; old ParameterList keys, as in the published files) loads through the same path.
    torch.manual_seed(1)
    model = ScaleHyperprior(128, 192)
    state = {
        k.replace("entropy_bottleneck._matrix", "entropy_bottleneck._matrices.")
        if "._matrix" in k
        else k: v
        for k, v in model.state_dict().items()
    }
    torch.save(state, tmp_path / spec.filename)
    codec = get_codec("z", config)
    codec.encode(image, 1, tmp_path / "a.cai")
    assert codec.decode(tmp_path / "a.cai", image.shape[:2], 1).shape == image.shape


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetch_downloads_once_and_checks_the_hash(http_server, tmp_path):
    root, url = http_server
    payload = b"weights" * 1000
    good_name = f"model-1-{hashlib.sha256(payload).hexdigest()[:8]}.pth.tar"
    (root / good_name).write_bytes(payload)
    (root / "model-2-deadbeef.pth.tar").write_bytes(payload)
    cache = tmp_path / "cache"
    path = fetch(WeightSpec("m1", f"{url}/{good_name}"), cache)
    assert path.read_bytes() == payload
    (root / good_name).unlink()  # a second fetch must not download again
    assert fetch(WeightSpec("m1", f"{url}/{good_name}"), cache) == path
    with pytest.raises(DiscoverError, match="sha256"):
        fetch(WeightSpec("m2", f"{url}/model-2-deadbeef.pth.tar"), cache)
    assert not (cache / "model-2-deadbeef.pth.tar").exists()
    with pytest.raises(DiscoverError, match="cannot download"):
        fetch(WeightSpec("m3", f"{url}/absent-12345678.pth.tar"), cache)


def test_training_a_few_steps_gives_a_loadable_codec(image, tmp_path):
    spec = {
        "architecture": "bmshj2018-hyperprior",
        "N": 16,
        "M": 24,
        "steps": 4,
        "num_images": 2,
        "crop": 64,
        "batch_size": 2,
    }
    out, meta = tmp_path / "q1.pth.tar", tmp_path / "q1.json"
    info = train_zoo_model(out, meta, spec, 0.01, log_csv=tmp_path / "l.csv")
    assert json.loads(meta.read_text())["sha256"] == sha256(out) == info["sha256"]
    assert len(pd.read_csv(tmp_path / "l.csv")) >= 1
    codec = _codec(out)
    codec.encode(image, 1, tmp_path / "a.cai")
    assert codec.decode(tmp_path / "a.cai", image.shape[:2], 1).shape == image.shape


def test_committed_demo_weights_match_their_sidecars():
    files = sorted((ROOT / "weights").glob("*/*.pth.tar"))
    assert files, "weights/ holds the demo's trained models"
    for path in files:
        meta = json.loads(path.with_name(path.name.replace(".pth.tar", ".json")).read_text())
        assert meta["sha256"] == sha256(path), path
        assert "snakemake" in meta["command"]
    # the whole committed tree (codecs, VAE, prior, control modules, task models) under 50 MiB
    total = sum(
        p.stat().st_size
        for p in (ROOT / "weights").rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )
    assert total < 50 * 2**20, f"weights/ holds {total / 2**20:.1f} MiB"


def test_demo_uses_committed_weights_and_train_rule_runs(tmp_path):
    from .conftest import snakemake, tiny_config, write_config

    cfg = tiny_config()
    cfg["codecs"] = {
        "mini": {
            "type": "compressai",
            "architecture": "bmshj2018-hyperprior",
            "trained": "hyperprior-mini",
            "rates": [1, 2, 3, 4],
        }
    }
    cfg["anchor"] = "mini"
    default = __import__("yaml").safe_load((ROOT / "config.yaml").read_text())
    cfg["zoo_training"] = default["zoo_training"]
    config = write_config(tmp_path / "config.yaml", cfg)
    dry = snakemake(tmp_path, config, "-n", "--quiet", "rules")
    assert dry.returncode == 0, dry.stderr[-3000:]
    stats = dry.stdout.split("Job stats:")[1].split("Reasons:")[0]
    assert "train_zoo_model" not in stats  # committed weights: no training needed
    # The train rule itself, for a few steps, into a scratch weights directory.
    cfg["trained_weights_dir"] = str(tmp_path / "w")
    cfg["zoo_training"]["hyperprior-mini"].update(steps=3, num_images=2, crop=64, batch_size=2)
    write_config(config, cfg)
    proc = snakemake(tmp_path, config, "train_all")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for q in (1, 2, 3, 4):
        meta = json.loads((tmp_path / "w" / "hyperprior-mini" / f"q{q}.json").read_text())
        assert meta["steps"] == 3 and meta["sha256"] == sha256(
            tmp_path / "w" / "hyperprior-mini" / f"q{q}.pth.tar"
        )


@pytest.mark.parametrize(
    "architecture,build",
    [
        ("mbt2018-mean", lambda: MeanScaleHyperprior(16, 24)),
        ("cheng2020-anchor", lambda: Cheng2020Anchor(16)),
        ("elic2022-official", lambda: Elic2022Official(16)),  # M = 320: ELIC's channel groups
    ],
)
def test_zoo_architectures_round_trip(architecture, build, image, tmp_path):
    torch.manual_seed(0)
    model = build()
    model.update(force=True)
    torch.save(model.state_dict(), tmp_path / "w.pth.tar")
    codec = _codec(tmp_path / "w.pth.tar", architecture=architecture)
    codec.encode(image, 1, tmp_path / "a.cai")
    rec = _codec(tmp_path / "w.pth.tar", architecture=architecture).decode(
        tmp_path / "a.cai", image.shape[:2], 1
    )
    assert rec.shape == image.shape
    assert np.array_equal(rec, codec.decode(tmp_path / "a.cai", image.shape[:2], 1))


def test_learned_codec_on_gpu_requests_a_gpu_on_the_cluster(weights):
    from discover.config import validate_config
    from discover.plan import Plan

    base = {
        "type": "compressai",
        "architecture": "bmshj2018-hyperprior",
        "rates": [1],
        "weights": {1: str(weights)},
    }
    cfg = validate_config(
        {
            "datasets": {"p": {"type": "photos"}},
            "codecs": {
                "gpu": {**base, "device": "cuda"},
                "cpu": base,
                "jpeg": {"type": "jpeg", "rates": [50]},
            },
        }
    )
    plan = Plan(cfg)
    assert [plan.codec_gpus(c) for c in ("gpu", "cpu", "jpeg")] == [1, 0, 0]
