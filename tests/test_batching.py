"""Batched codec jobs (discover.batching): batches of one padded size, streams that do not depend
on their batch, every stream decoding alone with the single-image decoder, and reruns that are
byte-identical."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch
from compressai.models import ScaleHyperprior
from PIL import Image

from discover.batching import Overlap, bucket_counts, read_ahead, size_batches
from discover.cli import main as cli
from discover.codecs import get_codec
from discover.datasets.synthetic_scenes import SceneGenerator
from discover.stages.codecs import run_codec_shard
from discover.stages.discover import run_discover_decode, run_discover_encode

from .conftest import ROOT, tree_digest

# mixed sizes (height, width): 96x120, 100x128, 120x100 pad to 128x128, 70x64 and 80x60 to
# 128x64, 130x90 to 192x128
SIZES = [(96, 120), (70, 64), (100, 128), (130, 90), (120, 100), (80, 60), (128, 128)]


def test_batches_group_images_of_one_padded_size_in_index_order():
    # by hand: padded to 64 -> (128,128): 0, 2, 4, 6; (128,64): 1, 5; (192,128): 3
    assert size_batches(SIZES, 3, 64) == [[0, 2, 4], [6], [1, 5], [3]]
    assert size_batches(SIZES, 1, 64) == [[i] for i in (0, 2, 4, 6, 1, 5, 3)]
    assert size_batches(SIZES, 8, 1) == [[i] for i in range(7)]  # every size its own
    assert bucket_counts(SIZES, 64) == {(128, 128): 4, (128, 64): 2, (192, 128): 1}
    with pytest.raises(ValueError, match="batch_size"):
        size_batches(SIZES, 0, 64)


def test_read_ahead_keeps_order_runs_ahead_and_raises_where_it_failed():
    produced = []

    def items():
        for i in range(5):
            produced.append(i)
            yield i
        raise OSError("image 5 is unreadable")

    got = []
    with pytest.raises(OSError, match="image 5"):
        for i in read_ahead(items(), depth=2):
            if i == 0:
                time.sleep(0.2)  # the producer runs ahead meanwhile
                assert len(produced) >= 2
            got.append(i)
    assert got == [0, 1, 2, 3, 4]


def test_overlap_runs_calls_in_order_on_another_thread_and_raises_the_first_error():
    seen = []
    with Overlap(depth=2) as worker:
        for i in range(4):
            worker.submit(lambda i: seen.append((i, threading.current_thread().name)) or i, i)
        assert worker.results() == [0, 1, 2, 3]
    assert [i for i, _ in seen] == [0, 1, 2, 3]
    assert all(name != threading.current_thread().name for _, name in seen)

    def fail():
        raise ValueError("stream of image 3")

    with pytest.raises(ValueError, match="image 3"), Overlap() as worker:
        worker.submit(fail)
        worker.results()


def _shard(folder, sizes, seed=0):
    """A reference shard of synthetic scenes, cropped to ``sizes``."""
    folder.mkdir(parents=True)
    gen = SceneGenerator(seed, "val", 140, 160, 1, 3)
    rows = []
    for i, (h, w) in enumerate(sizes):
        image = gen.render(i)[0][:h, :w]
        Image.fromarray(image).save(folder / f"im{i}.png")
        rows.append({"id": f"im{i}", "width": w, "height": h, "label": 0, "source": "x"})
    pd.DataFrame(rows).to_csv(folder / "index.csv", index=False)
    return folder


def _discover_config(batch_size):
    entry = {"type": "discover", "trained": "discover-mini", "rates": [4]}
    if batch_size:
        entry["batch_size"] = batch_size
    return {"codecs": {"d": entry}, "metrics": ["psnr"]}


def test_discover_job_streams_do_not_depend_on_their_batch_and_decode_alone(tmp_path):
    ref = _shard(tmp_path / "ref", SIZES)
    for bs in (1, 3):
        run_discover_encode(_discover_config(bs), "d", "4", ref, tmp_path / f"s{bs}", ["human"])
    # batch 1: the bytes `discover encode` writes for each image alone
    for i in range(len(SIZES)):
        out = tmp_path / f"cli{i}.dsc"
        assert cli(["encode", str(ref / f"im{i}.png"), "-o", str(out), "--model",
                    "discover-mini", "--rate", "4"]) == 0  # fmt: skip
        assert out.read_bytes() == (tmp_path / "s1" / f"im{i}.dsc").read_bytes(), i
    # batch 3 in another shard, where im0 is the only image of its padded size: a batch of
    # one filled with copies of it, against a batch of three scenes in the first shard
    other = _shard(tmp_path / "other", [SIZES[0], (70, 64), (130, 90)], seed=0)
    run_discover_encode(_discover_config(3), "d", "4", other, tmp_path / "o3", ["human"])
    assert (tmp_path / "o3" / "im0.dsc").read_bytes() == (tmp_path / "s3" / "im0.dsc").read_bytes()

    # every stream of the batched job decodes with the single-image decoder, its values passing
    # the encoder's checks, to (almost) the image the batched decode job writes
    run_discover_decode(
        _discover_config(3), "d", "4", "human", ref, tmp_path / "s3", tmp_path / "d3",
        tmp_path / "m3.csv",
    )  # fmt: skip
    for i in range(len(SIZES)):
        png = tmp_path / f"cli{i}.png"
        assert cli(["decode", str(tmp_path / "s3" / f"im{i}.dsc"), "-o", str(png)]) == 0
        alone = np.asarray(Image.open(png)).astype(int)
        job = np.asarray(Image.open(tmp_path / "d3" / f"im{i}.png")).astype(int)
        assert alone.shape == (*SIZES[i], 3)
        # g_s and the VAE decoder run on a batch of 3 in the job, on one image in the CLI:
        # float rounding, never a different ŷ
        assert np.abs(alone - job).max() <= 2, i

    # a rerun of the batched jobs is byte-identical
    run_discover_encode(_discover_config(3), "d", "4", ref, tmp_path / "r3", ["human"])
    run_discover_decode(
        _discover_config(3), "d", "4", "human", ref, tmp_path / "r3", tmp_path / "rd3",
        tmp_path / "rm3.csv",
    )  # fmt: skip
    assert tree_digest(tmp_path / "r3", "*.dsc") == tree_digest(tmp_path / "s3", "*.dsc")
    assert tree_digest(tmp_path / "rd3", "*.png") == tree_digest(tmp_path / "d3", "*.png")
    assert (tmp_path / "rm3.csv").read_text() == (tmp_path / "m3.csv").read_text()


def test_compressai_batched_shard_job_matches_the_single_image_codec(tmp_path):
    torch.manual_seed(0)
    model = ScaleHyperprior(16, 24)
    model.update(force=True)
    torch.save(model.state_dict(), tmp_path / "w.pth.tar")
    ref = _shard(tmp_path / "ref", SIZES)

    def config(batch_size):
        entry = {
            "type": "compressai",
            "architecture": "bmshj2018-hyperprior",
            "rates": [1],
            "weights": {1: str(tmp_path / "w.pth.tar")},
            "batch_size": batch_size,
        }
        return {"codecs": {"c": entry}, "metrics": ["psnr"]}

    for bs in (1, 3):
        run_codec_shard(config(bs), "c", "1", ref, tmp_path / f"o{bs}", tmp_path / f"m{bs}.csv")
    single = get_codec("c", config(1))
    for i, (h, w) in enumerate(SIZES):
        image = np.asarray(Image.open(ref / f"im{i}.png"))
        single.encode(image, 1, tmp_path / "a.cai")
        assert (tmp_path / "o1" / f"im{i}.cai").read_bytes() == (tmp_path / "a.cai").read_bytes()
        # the batched job's stream decodes alone; its image differs by float rounding only
        alone = single.decode(tmp_path / "o3" / f"im{i}.cai", (h, w), 1).astype(int)
        job = np.asarray(Image.open(tmp_path / "o3" / f"im{i}.png")).astype(int)
        assert np.abs(alone - job).max() <= 2, i
    m1, m3 = pd.read_csv(tmp_path / "m1.csv"), pd.read_csv(tmp_path / "m3.csv")
    assert list(m3["id"]) == [f"im{i}" for i in range(len(SIZES))]  # the shard's order
    assert (m3["bits"] - m1["bits"]).abs().max() <= 8 * 8  # streams of (almost) equal size


def test_detection_batches_images_of_one_size_and_predicts_as_one_at_a_time():
    from discover.tasks import get_task
    from discover.tasks.models import load_task_model

    # the committed trained detector: its scores are spread out, so the comparison is not at the
    # mercy of ties (a random model scores every box alike to 1e-3 and its top-100 cut then
    # depends on the last bits of the forward pass, which batching may change on some CPUs)
    model = load_task_model("detection", ROOT / "weights" / "scenes-detector" / "model.pt")
    gen = SceneGenerator(3, "val", 140, 160, 1, 3)
    # three aspect ratios, interleaved: batches of mixed sizes would pad images to each other
    shapes = [(100, 140), (140, 100), (100, 140), (120, 120), (140, 100), (100, 140)]
    images = []
    for i, (h, w) in enumerate(shapes):
        images.append((i + 1, np.ascontiguousarray(gen.render(i)[0][:h, :w])))

    def predict(batch_size):
        cfg = {"tasks": {"detection": {"batch_size": batch_size}}}
        return get_task("detection", cfg, model=model).predict(iter(images))

    one, three = predict(1), predict(3)
    assert [p["image_id"] for p in three] == [p["image_id"] for p in one]  # the images' order
    assert len(one) >= len(images)  # the trained detector finds the shapes
    # the same predictions per image, each matched to an equal one of the other run
    left = list(three)
    for a in one:
        match = next(
            (
                b
                for b in left
                if b["image_id"] == a["image_id"]
                and b["category_id"] == a["category_id"]
                and np.allclose(a["bbox"], b["bbox"], atol=0.05)
                and b["score"] == pytest.approx(a["score"], abs=1e-4)
            ),
            None,
        )
        assert match is not None, f"no batched prediction equals {a}"
        left.remove(match)
    assert not left
