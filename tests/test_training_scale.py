"""The full-size training path at tiny size, through the DAG: image folders and a list file as
sources (one image corrupt), a manifest, a Stable-Diffusion-layout prior from the weights cache
as a Hub snapshot, stage I started from an ELIC checkpoint in CompressAI's layout, stages I and
II, and the same run on 2 processes (DDP on CPU, gloo) with the same global batch.

References: the file lists and hashes are recomputed here with os/hashlib; the ELIC tensors come
from CompressAI's ``Elic2022Official``; the 2-process run is compared with the 1-process run.
"""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch

from .conftest import snakemake, tiny_config, write_config

CODEC = {"N": 32, "M": 64, "groups": [8, 8, 16, 32], "blocks": 3}


def training_config(work, training_sources, processes):
    cfg = tiny_config(shard_size=2)
    cfg["datasets"]["scenes"]["num_images"] = 2
    cfg["weights_cache"] = str(training_sources["cache"])
    cfg["trained_weights_dir"] = str(work / "w")
    root = training_sources["root"]
    cfg["training_data"] = {
        "imgs": {
            "sources": [
                {"type": "folder", "path": str(root / "a")},
                {"type": "folder", "path": str(root / "b")},
                {"type": "list", "path": str(training_sources["list"])},
            ],
            "max_bad_images": 2,
        }
    }
    cfg["composition_training"] = {
        "gen": {
            "prior": "tiny-org/tiny-sd",
            "codec": CODEC,
            "codec_init": "elic",
            "elic_weights": {1: str(training_sources["elic"])},
            "lambdas": [1],
            "steps": 3,
            "stage2_steps": 2,
            "crop": 64,
            "batch_size": 2,
            "lr": 1e-3,
            "conditioning_embedding_out_channels": [8, 16],
            "processes": processes,
            "checkpoint_every": 2,
            "log_every": 1,
        }
    }
    cfg["codecs"] = {
        "gen": {
            "type": "discover",
            "trained": "gen",
            "rates": [1],
            "tasks": {"detection": {"mask": "gt"}},
            "composition": {"steps": {"machine": 1, "human": 2}},
        }
    }
    cfg["anchor"] = "gen"
    cfg["metrics"] = ["psnr"]
    return write_config(work / "config.yaml", cfg)


@pytest.fixture(scope="module")
def single(training_sources, tmp_path_factory):
    work = tmp_path_factory.mktemp("single")
    proc = snakemake(work, training_config(work, training_sources, 1), timeout=1500)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work


def _losses(work):
    with open(work / "w/gen/r1.losses.csv") as fh:
        return list(csv.DictReader(fh))


def test_the_manifest_lists_the_training_sources_files_with_their_hashes(single, training_sources):
    with open(single / "w/training-data/imgs.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [r["path"] for r in rows] == [str(p) for p in training_sources["files"]]
    for r in rows:
        data = open(r["path"], "rb").read()
        assert r["sha256"] == hashlib.sha256(data[: 1 << 20]).hexdigest()
        assert int(r["bytes"]) == len(data)
    broken = next(r for r in rows if r["path"] == str(training_sources["corrupt"]))
    assert (broken["width"], broken["height"]) == ("96", "80")  # its header reads; the data not


def test_stage_one_starts_from_elic_and_the_corrupt_image_is_skipped_and_named(
    single, training_sources
):
    meta = json.loads((single / "w/gen/r1.json").read_text())
    init = meta["init"]
    assert init["codec_init"] == "elic" and init["from"] == str(training_sources["elic"])
    elic = training_sources["elic_state"]
    g_a = {k for k in elic if k.startswith("g_a.")}
    assert g_a <= set(init["loaded"])  # ELIC's analysis transform, every tensor
    assert any(k.startswith("M.") for k in init["initialised"])  # DISCOVER's own module
    assert any(k.startswith("g_s.13.") for k in init["dropped"])  # ELIC's last decoder layers
    assert meta["prior"] == "tiny-org/tiny-sd" and meta["steps"] == 3
    assert meta["stage2_steps"] == 2 and meta["processes"] == 1
    assert meta["data"]["bad_images"] == [str(training_sources["corrupt"])]
    assert meta["data"]["small_images"] == 0 and meta["data"]["images"] == len(
        training_sources["files"]
    )
    log = (single / "results/logs/train_composition/gen/r1.log").read_text()
    assert f"skipping training image {training_sources['corrupt']}" in log
    rows = _losses(single)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    assert [int(r["stage"]) for r in rows] == [1, 1, 1, 2, 2]
    # the trained rate point decodes in the benchmark, with the prior from the cache
    rd = pd.read_csv(single / "results/tables/scenes/rd.csv")
    assert set(rd.codec) == {"gen@human", "gen@detection"} and rd["psnr"].notna().all()


def test_two_processes_train_like_one_with_the_same_global_batch(
    single, training_sources, tmp_path
):
    """DDP on 2 CPU processes (torch.distributed.run, gloo), each with half of the global
    batch of 2: every rank's crops, masks, diffusion noise and timesteps are the slots of the
    1-process run; only the codec's quantisation noise (drawn per forward pass) differs. The
    replicas end identical (gradients averaged) and the loss curve stays close to the
    1-process run's (measured: within 0.3 %)."""
    work = tmp_path / "ddp"
    work.mkdir()
    proc = snakemake(
        work, training_config(work, training_sources, 2), "--", "w/gen/r1.pth.tar", timeout=1500
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    meta = json.loads((work / "w/gen/r1.json").read_text())
    assert meta["processes"] == 2
    sums = meta["replica_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    log = (work / "results/logs/train_composition/gen/r1.log").read_text()
    assert "launching 2 training processes" in log and "rank 1" in log
    one, two = _losses(single), _losses(work)
    assert [r["step"] for r in one] == [r["step"] for r in two]
    for key in ("loss", "diffusion", "latent_mse"):
        a = np.array([float(r[key]) for r in one])
        b = np.array([float(r[key]) for r in two])
        assert np.allclose(a, b, rtol=0.02), (key, a, b)
    w1 = torch.load(single / "w/gen/r1.pth.tar", weights_only=True)
    w2 = torch.load(work / "w/gen/r1.pth.tar", weights_only=True)
    start = training_sources["elic_state"]
    for w in (w1, w2):  # both runs moved the ELIC start
        assert any(
            k in start and w[k].shape == start[k].shape and not torch.equal(w[k], start[k])
            for k in w
        )
