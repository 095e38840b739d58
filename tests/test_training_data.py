"""Training images: sources -> manifest -> crops, and the ELIC start of stage I.

References are independent of the code under test: sha256 by hashlib over the files on disk,
pixels read back with PIL, the ELIC tensors from CompressAI's own ``Elic2022Official``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from discover.errors import CodecError
from discover.training.data import (
    TrainingData,
    TrainingDataError,
    build_manifest,
    load_image,
    read_manifest,
)


def _image(path, w, h, seed, mode="RGB"):
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    if mode != "RGB":
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return np.asarray(img.convert("RGB"))


@pytest.fixture
def sources(tmp_path):
    """Two folders (one nested, one JPEG), a list file and a COCO annotation file."""
    a, b = tmp_path / "a", tmp_path / "b"
    _image(a / "x1.png", 96, 80, 1)
    _image(a / "sub" / "x2.png", 70, 100, 2)
    (a / "notes.txt").write_text("not an image")
    for i in range(4):
        _image(b / f"y{i}.jpg", 128, 96, 10 + i)
    lst = tmp_path / "lists" / "train.txt"
    _image(tmp_path / "lists" / "imgs" / "z0.png", 100, 100, 20)
    _image(tmp_path / "lists" / "imgs" / "z1.png", 64, 40, 21)  # smaller than a 64 crop
    lst.write_text("# a comment\nimgs/z0.png\n\nimgs/z1.png\n")
    coco_dir = tmp_path / "coco"
    _image(coco_dir / "c0.png", 200, 120, 30)
    _image(coco_dir / "c1.png", 60, 50, 31)
    ann = tmp_path / "instances.json"
    ann.write_text(
        json.dumps(
            {
                "images": [
                    {"file_name": "c0.png", "width": 200, "height": 120},
                    {"file_name": "c1.png", "width": 60, "height": 50},
                ]
            }
        )
    )
    spec = {
        "sources": [
            {"type": "folder", "path": str(a)},
            {"type": "folder", "path": str(b), "num_images": 2},
            {"type": "list", "path": str(lst)},
            {
                "type": "coco",
                "annotations": str(ann),
                "images": str(coco_dir),
                "min_short_side": 64,
            },
        ]
    }
    return tmp_path, spec


def test_the_manifest_lists_every_source_with_sizes_and_hashes(sources):
    tmp_path, spec = sources
    manifest = tmp_path / "m.tsv"
    build_manifest(manifest, spec, seed=0)
    with open(manifest) as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    names = [r["path"].replace(str(tmp_path) + "/", "") for r in rows]
    # folder a sorted by relative path (sub/x2 before x1), the non-image skipped
    assert names[:2] == ["a/sub/x2.png", "a/x1.png"]
    picked = [n for n in names if n.startswith("b/")]
    assert len(picked) == 2 and picked == sorted(picked)
    assert names[4:6] == ["lists/imgs/z0.png", "lists/imgs/z1.png"]
    assert names[6:] == ["coco/c0.png"]  # c1's short side 50 < 64
    for r in rows:
        data = open(r["path"], "rb").read()
        assert int(r["bytes"]) == len(data)
        assert r["sha256"] == hashlib.sha256(data[: 1 << 20]).hexdigest()
        with Image.open(r["path"]) as img:
            assert (int(r["width"]), int(r["height"])) == img.size
    # the pick is seeded: the same seed picks the same, another seed may not
    again = tmp_path / "m2.tsv"
    build_manifest(again, spec, seed=0)
    assert again.read_text() == manifest.read_text()
    assert [e.path for e in read_manifest(manifest)] == [r["path"] for r in rows]


def test_source_errors_name_the_file_and_key(sources):
    tmp_path, spec = sources
    bad_list = tmp_path / "lists" / "bad.txt"
    bad_list.write_text("imgs/z0.png\nimgs/missing.png\n")
    with pytest.raises(TrainingDataError, match=r"sources\[0\].*bad.txt:2: no file"):
        build_manifest(
            tmp_path / "m.tsv", {"sources": [{"type": "list", "path": str(bad_list)}]}, 0
        )
    too_many = {"sources": [{"type": "folder", "path": str(tmp_path / "b"), "num_images": 9}]}
    with pytest.raises(TrainingDataError, match=r"sources\[0\]: num_images 9 but the source has 4"):
        build_manifest(tmp_path / "m.tsv", too_many, 0)
    (tmp_path / "broken.tsv").write_text("source\tpath\n")
    with pytest.raises(TrainingDataError, match="broken.tsv: not a training manifest"):
        read_manifest(tmp_path / "broken.tsv")


def test_crops_are_of_the_images_and_small_ones_resized_or_skipped(sources, caplog):
    tmp_path, spec = sources
    build_manifest(tmp_path / "m.tsv", spec, seed=0)
    data = TrainingData.from_manifest(tmp_path / "m.tsv")
    originals = {e.path: np.asarray(Image.open(e.path).convert("RGB")) for e in data.entries}
    with caplog.at_level(logging.INFO, logger="discover.training"):
        stream = data.stream(64, 4, seed=3, stop=6)
        batches = [next(stream) for _ in range(6)]
    assert "1 of 7 training images are smaller than the 64-pixel crop: resized up" in caplog.text
    for x in batches:
        assert x.shape == (4, 3, 64, 64) and x.dtype == torch.float32
    # every crop is a window of an image (or its mirror); the small one (64x40) is first
    # resized to a short side of 64 (bicubic)
    for path, img in list(originals.items()):
        if min(img.shape[:2]) < 64:
            originals[path] = np.asarray(Image.fromarray(img).resize((102, 64), Image.BICUBIC))
    sources_hit = set()
    for x in batches:
        for crop in (x * 255).round().byte().permute(0, 2, 3, 1).numpy():
            hits = []
            for path, img in originals.items():
                for view in (img, img[:, ::-1]):
                    windows = np.lib.stride_tricks.sliding_window_view(view, (64, 64), (0, 1))
                    if (windows == crop.transpose(2, 0, 1)).all(axis=(2, 3, 4)).any():
                        hits.append(path)
            assert hits, "a crop that is no window of any training image"
            sources_hit.update(hits)
    assert len(sources_hit) >= 5  # 24 crops drawn over the 7 images
    skip = TrainingData.from_manifest(tmp_path / "m.tsv", {"small_images": "skip"})
    s = skip.stream(64, 2, seed=3)
    next(s)
    assert len(s.dataset) == 6 and s.report()["small_images"] == 1


def test_grayscale_and_palette_images_come_back_as_rgb(tmp_path):
    gray = _image(tmp_path / "g" / "gray.png", 80, 80, 5, mode="L")
    data_spec = {"sources": [{"type": "folder", "path": str(tmp_path / "g")}]}
    build_manifest(tmp_path / "m.tsv", data_spec, 0)
    x = next(TrainingData.from_manifest(tmp_path / "m.tsv").stream(64, 2, seed=0))
    assert x.shape == (2, 3, 64, 64)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    assert gray.shape == (80, 80, 3)


def test_crops_depend_on_the_step_not_on_workers_ranks_or_resume(sources):
    tmp_path, spec = sources
    build_manifest(tmp_path / "m.tsv", spec, seed=0)
    data = TrainingData.from_manifest(tmp_path / "m.tsv")
    one = data.stream(64, 4, seed=1, stop=5)
    straight = [next(one) for _ in range(5)]
    workers = TrainingData.from_manifest(tmp_path / "m.tsv", {"workers": 2})
    parallel = workers.stream(64, 4, seed=1, stop=5)
    assert all(torch.equal(a, next(parallel)) for a in straight)
    # two ranks each take half of the global batch
    halves = [data.stream(64, 4, seed=1, stop=5, rank=r, world=2) for r in (0, 1)]
    for a in straight:
        assert torch.equal(a, torch.cat([next(h) for h in halves]))
    resumed = data.stream(64, 4, seed=1, start=3, stop=5)
    assert torch.equal(next(resumed), straight[3]) and resumed.position == (3, 0)
    with pytest.raises(TrainingDataError, match="batch_size 3 is the global batch"):
        data.stream(64, 3, seed=1, world=2)


def test_an_image_that_cannot_be_decoded_is_skipped_named_and_counted(sources, caplog):
    tmp_path, spec = sources
    build_manifest(tmp_path / "m.tsv", spec, seed=0)
    entries = read_manifest(tmp_path / "m.tsv")
    victim = entries[0].path
    with open(victim, "r+b") as fh:  # truncate the PNG after its header: decoding fails
        fh.truncate(200)
    data = TrainingData.from_manifest(tmp_path / "m.tsv", {"max_bad_images": 1})
    stream = data.stream(64, 8, seed=0, stop=20)
    with caplog.at_level(logging.WARNING, logger="discover.training"):
        for _ in range(20):
            assert next(stream).shape == (8, 3, 64, 64)
    assert stream.report()["bad_images"] == [victim]
    assert caplog.text.count(f"skipping training image {victim}") == 1
    with open(entries[1].path, "r+b") as fh:
        fh.truncate(100)
    data = TrainingData.from_manifest(tmp_path / "m.tsv", {"max_bad_images": 1})
    stream = data.stream(64, 8, seed=0, stop=50)
    with pytest.raises(TrainingDataError, match="more than max_bad_images 1") as err:
        for _ in range(50):
            next(stream)
    assert victim in str(err.value) and entries[1].path in str(err.value)


def test_an_elic_checkpoint_starts_stage_one_where_names_and_shapes_match(tmp_path):
    """A CompressAI Elic2022Official state dict (saved as training scripts save it, under
    ``state_dict`` with DDP's ``module.`` prefix) loads into DISCOVER's codec: g_a and the
    hyperprior exactly, what DISCOVER changed freshly initialised, the rest reported."""
    from compressai.models import Elic2022Official

    from discover.discover_codec.model import load_elic_state
    from discover.discover_codec.net import CodecConfig, DiscoverCodecNet
    from discover.training.init import initial_codec

    torch.manual_seed(0)
    elic = Elic2022Official(N=32, M=64, groups=[8, 8, 16, 32])
    reference = elic.state_dict()
    path = tmp_path / "elic.pth.tar"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.items()}}, path)
    cfg = CodecConfig(N=32, M=64, groups=(8, 8, 16, 32), blocks=3)
    net, report = initial_codec(cfg, {"codec_init": "elic", "elic_weights": str(path)}, 1.0)
    assert report["codec_init"] == "elic" and report["from"] == str(path)
    state = net.state_dict()
    g_a = [k for k in reference if k.startswith("g_a.")]
    hyper = [
        k
        for k in reference
        if k.startswith("latent_codec.hyper.") and "_cdf" not in k and "_offset" not in k
    ]
    assert g_a and hyper and set(g_a + hyper) <= set(report["loaded"])
    for key in report["loaded"]:
        assert torch.equal(state[key], reference[key]), key
    assert any(k.startswith("M.") for k in report["initialised"])
    assert any(d.startswith("g_s.13.") for d in report["dropped"])  # ELIC's last layers
    assert not set(report["loaded"]) & set(report["initialised"])
    # a checkpoint of another model is refused, naming the file
    other = tmp_path / "hyperprior.pth.tar"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(CodecError, match=r"hyperprior.pth.tar is not an ELIC checkpoint"):
        load_elic_state(DiscoverCodecNet(cfg), other)


def test_bundled_photos_are_listed_hashed_and_read_as_rgb(tmp_path):
    import skimage.data

    spec = {"sources": [{"type": "photos", "names": ["camera", "immunohistochemistry"]}]}
    entries = build_manifest(tmp_path / "m.tsv", spec, 0)
    assert [e.path for e in entries] == ["photos:camera", "photos:immunohistochemistry"]
    assert [e.path for e in read_manifest(tmp_path / "m.tsv")] == [e.path for e in entries]
    # the reference: scikit-image's own arrays; the grey one comes back with R = G = B
    camera = skimage.data.camera()
    assert (entries[0].width, entries[0].height) == (camera.shape[1], camera.shape[0])
    grey = np.repeat(camera[..., None], 3, axis=2)
    np.testing.assert_array_equal(load_image(entries[0].path), grey)
    np.testing.assert_array_equal(load_image(entries[1].path), skimage.data.immunohistochemistry())
    pixels = np.ascontiguousarray(skimage.data.immunohistochemistry())
    assert entries[1].sha256 == hashlib.sha256(pixels.tobytes()).hexdigest()
    with pytest.raises(TrainingDataError, match="no sample image 'nope'"):
        build_manifest(tmp_path / "n.tsv", {"sources": [{"type": "photos", "names": ["nope"]}]}, 0)


def test_a_photo_both_trained_on_and_evaluated_is_refused():
    from discover.config import validate_config
    from discover.errors import ConfigError

    config = {
        "datasets": {"photos": {"type": "photos", "names": ["astronaut", "chelsea"]}},
        "codecs": {"jpeg": {"type": "jpeg", "rates": [50]}},
        "training_data": {"scenes": {"sources": [{"type": "photos", "names": ["camera", "cat"]}]}},
    }
    with pytest.raises(ConfigError, match=r"training_data.scenes.sources\[0\].names: 'cat'"):
        validate_config(config)
    config["training_data"]["scenes"]["sources"][0]["names"] = ["camera"]
    validate_config(config)
    # without names a photos dataset evaluates scikit-image's default list, cut by max_images
    config["training_data"]["scenes"]["sources"][0]["names"] = ["camera", "hubble_deep_field"]
    config["datasets"]["photos"] = {"type": "photos"}
    with pytest.raises(ConfigError, match="'hubble_deep_field' is also evaluated"):
        validate_config(config)
    config["datasets"]["photos"] = {"type": "photos", "max_images": 3}  # astronaut .. coffee
    validate_config(config)
    config["datasets"]["photos"]["max_images"] = 4
    with pytest.raises(ConfigError, match="'hubble_deep_field' is also evaluated"):
        validate_config(config)
