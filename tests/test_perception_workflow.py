"""Human-perception metrics in the DAG: LPIPS/DISTS per image, FID/KID per row on the patch
protocol (Inception and the pipeline's own demo features), the perception table, and metrics
whose weights are missing reported as "not computed" with the fix, while the DAG still
finishes."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cleanfid import fid
from PIL import Image

from discover.metrics.distribution import demo_feature_extractor
from discover.metrics.fid import write_fid_patches
from discover.metrics.perceptual import lpips_backbone_weight, lpips_distance, torchvision_weight

from .conftest import (
    check_recorded_digest,
    job_threads,
    save_random_backbone,
    snakemake,
    tiny_config,
    write_config,
)

PATCH = 32


def perception_config(work: Path) -> dict:
    cfg = tiny_config(shard_size=4)
    cfg["datasets"]["scenes"]["fid_protocol"] = {"patch": PATCH, "shifted": True}
    cfg["codecs"] = {
        "jpeg": {"type": "jpeg", "rates": [15, 35, 60, 90]},
        "webp": {"type": "webp", "rates": [10, 30, 60, 90]},
    }
    cfg["anchor"] = "jpeg"
    cfg["metrics"] = ["psnr", "lpips", "dists", "fid", "kid"]
    cfg["fid"] = {"features": ["inception", "demo"], "demo": "tiny-classifier", "batch_size": 16}
    # The train rule runs for a few steps; its weights go to the test's own folder.
    cfg["classifier_training"] = {"tiny-classifier": {"steps": 5, "num_images": 12}}
    cfg["trained_weights_dir"] = str(work / "weights")
    cfg["weights_cache"] = str(work / "cache")
    return cfg


@pytest.fixture(scope="module")
def perception_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("perception_run")
    (work / "cache").mkdir()
    # LPIPS's backbone is "fetched" (a random AlexNet under the official file name); DISTS's
    # VGG16 and clean-fid's Inception are not.
    save_random_backbone("alexnet", work / "cache" / lpips_backbone_weight("alex").filename, 1)
    config = write_config(work / "config.yaml", perception_config(work))
    proc = snakemake(work, config)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work, config


def _fix(weight: str) -> str:
    return f"not computed: weight {weight} missing, run `snakemake fetch_weights`"


def test_missing_weights_are_reported_not_computed_and_the_dag_finishes(perception_run):
    work, _ = perception_run
    rd = pd.read_csv(work / "results/tables/scenes/rd.csv", dtype={"rate": str})
    assert rd["lpips"].notna().all() and (rd["lpips"] > 0).all()
    assert rd["fid_demo"].notna().all() and rd["kid_demo"].notna().all()
    for column in ("dists", "fid", "kid"):
        assert rd[column].isna().all()
    vgg = torchvision_weight("vgg16")
    inception = "clean-fid/inception-2015-12-05 (inception-2015-12-05.pt)"
    # why they are not computed: once per cause (FID and KID share Inception), not per row
    assert "notes" not in rd
    notes = pd.read_csv(work / "results/tables/scenes/rd.notes.csv")
    causes = dict(zip(notes["note"], notes["metrics"], strict=True))
    assert causes == {_fix(f"{vgg.name} ({vgg.filename})"): "dists", _fix(inception): "fid kid"}
    # every metric has its sample count next to it
    assert (rd["n_lpips"] == rd["images"]).all()
    assert (rd["n_fid_demo"] > 0).all()

    bd = pd.read_csv(work / "results/tables/scenes/bd.csv")
    assert set(bd[bd.metric == "fid"]["note"]) == {_fix(inception)}
    webp = bd[(bd.codec == "webp") & (bd.metric == "fid_demo")].iloc[0]
    assert webp["bd_metric_name"] == "BD-FID (demo features)"
    assert np.isfinite(webp["bd_metric"]) or webp["note"].startswith("not computed:")

    table = (work / "results/tables/scenes/perception.md").read_text()
    assert table.count(_fix(inception)) == 1  # FID and KID: one cause, one note
    assert "BD-FID (demo features)" in table and "BD-DISTS" in table
    # plots exist for the computed metrics only
    plots = {p.name for p in (work / "results/plots/scenes").glob("*.png")}
    assert {"rd_lpips.png", "rd_fid_demo.png"} <= plots and "rd_fid.png" not in plots


def test_lpips_per_image_equals_the_package_on_the_decoded_image(perception_run):
    work, _ = perception_run
    per_image = pd.read_csv(
        work / "results/metrics/scenes/jpeg/per_image.csv", dtype={"id": str, "rate": str}
    )
    row = per_image[per_image.rate == "15"].iloc[0]
    ref = np.asarray(Image.open(work / f"results/scenes/reference/s0000/{row.id}.png"))
    out = np.asarray(Image.open(work / f"results/scenes/jpeg/15/s0000/{row.id}.png"))
    expected = lpips_distance(ref, out, "alex", cache=work / "cache")
    assert row["lpips"] == pytest.approx(expected, abs=1e-7)


def test_demo_fid_and_kid_equal_clean_fid_on_the_same_patch_folders(perception_run, tmp_path):
    work, _ = perception_run
    # The decoded folder also holds the .jpg bitstreams: patches of the PNG reconstructions only.
    decoded = tmp_path / "decoded"
    decoded.mkdir()
    for png in (work / "results/scenes/jpeg/15/s0000").glob("*.png"):
        shutil.copy(png, decoded / png.name)
    n = write_fid_patches(work / "results/scenes/reference/s0000", tmp_path / "ref", PATCH, True)
    assert write_fid_patches(decoded, tmp_path / "out", PATCH, True) == n
    # the fid_kid job runs with one thread (rules/perception.smk): recompute as it does
    with job_threads(1):
        model = work / "weights/tiny-classifier/model.pth"
        extractor = demo_feature_extractor(model)
        options = dict(mode="clean", num_workers=0, batch_size=16, device=torch.device("cpu"))
        expected_fid = fid.compute_fid(
            str(tmp_path / "ref"),
            str(tmp_path / "out"),
            custom_feat_extractor=extractor,
            verbose=False,
            **options,
        )
        ref_feats = fid.get_folder_features(
            str(tmp_path / "ref"), extractor, verbose=False, **options
        )
        out_feats = fid.get_folder_features(
            str(tmp_path / "out"), extractor, verbose=False, **options
        )
        np.random.seed(0)  # the config's seed: KID's subsets
        expected_kid = fid.kernel_distance(ref_feats, out_feats)

    rows = pd.read_csv(work / "results/metrics/scenes/fid/jpeg.csv", dtype={"rate": str})
    got = rows.set_index("rate").loc["15"]
    assert got["fid_samples_demo"] == n
    assert got["protocol"] == f"patches-{PATCH}-shifted"
    assert got["fid_demo"] == pytest.approx(expected_fid, rel=1e-6)
    assert got["kid_demo"] == pytest.approx(expected_kid, rel=1e-6, abs=1e-9)


def test_fetching_a_missing_weight_reruns_the_jobs_that_can_now_compute_it(
    perception_run,
):
    work, config = perception_run
    before = snakemake(work, config, "-n", "--quiet", "rules")
    assert before.returncode == 0, before.stderr[-2000:]
    assert "Nothing to be done" in before.stdout + before.stderr
    vgg = work / "cache" / torchvision_weight("vgg16").filename
    save_random_backbone("vgg16", vgg, 2)
    try:
        after = snakemake(work, config, "-n", "--quiet", "rules")
        assert after.returncode == 0, after.stderr[-2000:]
        stats = dict(re.findall(r"^(\w+)\s+(\d+)$", after.stdout.split("Job stats:")[1], re.M))
        # every codec job (now with DISTS) and what reads its outputs; not the reference
        # features (neither their weights nor their images changed)
        assert int(stats["codec_shard"]) == 8
        assert "fid_reference" not in stats and "prepare_shard" not in stats
        assert "perception_table" in stats
    finally:
        vgg.unlink()


def test_outputs_equal_those_recorded_before_the_code_moved(perception_run):
    """Streams, reconstructions, metrics and tables byte for byte as the commit before the
    re-homing of the package wrote them (tests/data/recorded_digests.json)."""
    check_recorded_digest(perception_run[0], "perception_run")
