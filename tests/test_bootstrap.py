"""Bootstrap intervals of BD cells, sample counts and flags (bd.bootstrap, bd.flags).

The intervals are checked against a recomputation written here from the files on disk (the
resampled image lists materialised, bpp and means taken with pandas, BD by the bjontegaard
package), and their coverage on synthetic curves whose true BD-rate is known; the flags against
the thresholds, on both sides of each."""

from __future__ import annotations

import warnings

import bjontegaard
import numpy as np
import pandas as pd
import pytest

from discover.bd import BDResult, bd, bd_bootstrap
from discover.cli import main
from discover.resampling import resample_counts
from discover.stages.bootstrap import Resampler, RowSamples
from discover.stages.tables import aggregate_rd, bd_table

RATES = ["1", "2", "3", "4"]
BPP = np.array([0.1, 0.2, 0.4, 0.8])


def settings(resamples=40, seed=3, level=0.9, **flags):
    return {
        "method": "pchip",
        "min_points": 4,
        "min_front_points": 3,
        "envelope": "pareto",
        "bootstrap": {"resamples": resamples, "seed": seed, "level": level},
        "flags": {
            "min_overlap": 0.0,
            "fid_samples_per_dim": 1.0,
            "min_objects": 30,
            "kid_negative_se": 3,
            **flags,
        },
    }


def per_image_rows(rng, n, scale, offset):
    """Per-image rows of a codec: sizes vary, bits grow with the rate point, PSNR rises
    steeply with rate (so every resampled curve stays monotone)."""
    sizes = [(64, 48), (80, 64), (96, 96), (128, 72)]
    rows = []
    for k, rate in enumerate(RATES):
        for i in range(n):
            w, h = sizes[i % len(sizes)]
            f = 0.6 + 0.8 * ((i * 7919) % 13) / 13
            bits = int(w * h * BPP[k] * f * scale * (1 + 0.05 * rng.standard_normal()))
            psnr = 26 + 4 * np.log2(BPP[k] / 0.1) + (i % 5) * 0.7 + offset
            psnr += 0.2 * rng.standard_normal()
            rows.append(
                {
                    "rate": rate,
                    "id": f"img{i:03d}",
                    "width": w,
                    "height": h,
                    "pixels": w * h,
                    "bits": bits,
                    "bpp": bits / (w * h),
                    "psnr": psnr,
                }
            )
    return pd.DataFrame(rows)


def rd_rows(codec, df):
    out = []
    for rate, g in df.groupby("rate", sort=False):
        out.append(
            {
                "dataset": "d",
                "codec": codec,
                "label": codec,
                "rate": rate,
                "images": len(g),
                "bpp": g["bits"].sum() / g["pixels"].sum(),
                "psnr": g["psnr"].mean(),
                "n_psnr": len(g),
                "published": False,
            }
        )
    return out


@pytest.fixture
def two_codecs(tmp_path):
    rng = np.random.default_rng(11)
    n = 17
    frames = {"a": per_image_rows(rng, n, 1.0, 0.0), "t": per_image_rows(rng, n, 0.85, 0.3)}
    samples = {}
    rows = []
    for codec, df in frames.items():
        path = tmp_path / f"{codec}.per_image.csv"
        df.to_csv(path, index=False)
        samples[codec] = {"per_image": str(path), "tasks": {}, "features": None}
        rows += rd_rows(codec, df)
    rd = tmp_path / "rd.csv"
    pd.DataFrame(rows).to_csv(rd, index=False)
    return rd, samples, frames


def psnr_bd_table(rd, out, samples, **boot):
    """The BD table of PSNR against codec a, with the bootstrap settings ``boot``."""
    return bd_table(
        rd,
        out,
        dataset="d",
        anchor="a",
        metrics=["psnr"],
        bd_settings=settings(**boot),
        metric_status={},
        samples=samples,
    )


def test_the_interval_equals_a_direct_recomputation_from_the_per_image_files(tmp_path, two_codecs):
    rd, samples, frames = two_codecs
    out = psnr_bd_table(rd, tmp_path / "bd.csv", samples, resamples=40, seed=3, level=0.9)
    cell = pd.read_csv(tmp_path / "bd.csv").set_index("codec").loc["t"]
    assert cell["resamples"] == 40 and cell["resamples_failed"] == 0
    assert cell["samples"] == 17 and cell["level"] == 0.9

    # the documented draw: resample b takes images sorted by id, indices
    # default_rng(seed).integers(0, n, (B, n))[b]
    images = sorted(frames["a"]["id"].unique())
    draws = np.random.default_rng(3).integers(0, len(images), size=(40, len(images)))
    rates, metrics = [], []
    for b in range(40):
        chosen = [images[j] for j in draws[b]]
        curves = []
        for codec in ("a", "t"):
            df = frames[codec]
            bpp, psnr = [], []
            for rate in RATES:
                sub = df[df["rate"] == rate].set_index("id").loc[chosen]
                bpp.append(sub["bits"].sum() / sub["pixels"].sum())
                psnr.append(sub["psnr"].mean())
            curves.append((np.array(bpp), np.array(psnr)))
        (ar, aq), (tr, tq) = curves
        assert np.all(np.diff(aq) > 0) and np.all(np.diff(tq) > 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rates.append(bjontegaard.bd_rate(ar, aq, tr, tq, method="pchip", min_overlap=0))
            metrics.append(bjontegaard.bd_psnr(ar, aq, tr, tq, method="pchip", min_overlap=0))
    lo, hi = np.percentile(rates, [5, 95])
    assert cell["bd_rate_lo"] == pytest.approx(lo, rel=1e-8)
    assert cell["bd_rate_hi"] == pytest.approx(hi, rel=1e-8)
    lo, hi = np.percentile(metrics, [5, 95])
    assert cell["bd_metric_lo"] == pytest.approx(lo, rel=1e-8)
    assert cell["bd_metric_hi"] == pytest.approx(hi, rel=1e-8)
    # the test codec is better: both ends of the BD-rate interval below zero, and a seed
    # gives the same interval again
    assert cell["bd_rate_hi"] < 0 < cell["bd_metric_lo"]
    again = psnr_bd_table(rd, tmp_path / "bd2.csv", samples, resamples=40, seed=3, level=0.9)
    pd.testing.assert_frame_equal(out, again)
    assert (tmp_path / "bd.csv").read_bytes() == (tmp_path / "bd2.csv").read_bytes()


def test_resample_counts_draw_n_images_with_replacement_deterministically():
    counts = resample_counts(9, 200, seed=5)
    assert counts.shape == (200, 9) and (counts.sum(axis=1) == 9).all()
    assert np.array_equal(counts, resample_counts(9, 200, seed=5))
    assert not np.array_equal(counts, resample_counts(9, 200, seed=6))
    draws = np.random.default_rng(5).integers(0, 9, size=(200, 9))
    assert np.array_equal(counts, np.stack([np.bincount(d, minlength=9) for d in draws]))


def test_interval_coverage_on_curves_with_a_known_bd_rate():
    """Per image, the test codec spends c_i times the anchor's bits for the same quality, with
    c_i drawn from a distribution of mean 0.8: the population's BD-rate is exactly -20 %
    (bits proportional: the curve shifts by a constant factor in rate). A 95 % interval from
    30 images must cover -20 % in about 95 % of the trials."""
    rng = np.random.default_rng(2024)
    trials, n, resamples = 80, 30, 150
    covered = 0
    for _ in range(trials):
        c = rng.uniform(0.5, 1.1, size=n)  # mean 0.8
        base = rng.uniform(0.5, 1.5, size=n)
        pixels = np.full((len(BPP), n), 4096.0)
        bits_a = pixels * BPP[:, None] * base[None, :]
        quality = np.tile(30 + 5 * np.log2(BPP / 0.1)[:, None], (1, n)) + rng.normal(0, 1, n)
        a = RowSamples("a", RATES, bits_a, pixels, {"psnr": quality})
        t = RowSamples("t", RATES, bits_a * c[None, :], pixels, {"psnr": quality.copy()})
        r = Resampler(resample_counts(n, resamples, int(rng.integers(1 << 30))))
        i = bd_bootstrap(r.bpp(a), r.curve(a, "psnr"), r.bpp(t), r.curve(t, "psnr"), level=0.95)
        assert i.failed == 0
        covered += i.bd_rate_lo <= -20.0 <= i.bd_rate_hi
    # binomial(80, 0.95): 95 % of draws lie in [72, 80]; the percentile bootstrap of a ratio
    # at n = 30 runs a little below nominal, so 0.85 is the lower bound
    print(f"coverage {covered / trials:.3f} of {trials} trials")
    assert covered / trials >= 0.85, f"coverage {covered / trials:.2f}"
    assert covered / trials <= 1.0


def write_shards(tmp_path, df):
    paths = {}
    for rate, g in df.groupby("rate", sort=False):
        p = tmp_path / f"shard_{rate}.csv"
        g.drop(columns=["rate"]).to_csv(p, index=False)
        paths[rate] = [str(p)]
    return paths


def test_flags_appear_exactly_where_the_thresholds_say(tmp_path):
    rng = np.random.default_rng(0)
    df = per_image_rows(rng, 4, 1.0, 0.0)
    shards = write_shards(tmp_path, df)
    fid = pd.DataFrame(
        {
            "rate": RATES,
            "fid_demo": [40.0, 30.0, 20.0, 10.0],
            "kid_demo": [-0.31, -0.29, 0.01, 0.0],
            "fid_samples_demo": [127, 128, 128, 300],
            "fid_dim_demo": [128, 128, 128, 128],
            "kid_se_demo": [0.1, 0.1, 0.1, 0.1],
        }
    )
    fid.to_csv(tmp_path / "fid.csv", index=False)
    task = pd.DataFrame(
        {
            "rate": RATES,
            "images": 4,
            "detection_bbox_AP": [0.1, 0.2, 0.3, 0.4],
            "n_detection_bbox_AP": [29, 30, 30, 30],
            "detection_bbox_APs": [0.0, 0.1, 0.1, 0.2],
            "n_detection_bbox_APs": [2, 2, 2, 2],
        }
    )
    task.to_csv(tmp_path / "task.csv", index=False)
    config = {"metrics": ["psnr", "fid_demo", "kid_demo"], "fid": {"features": ["demo"]}}
    rd = aggregate_rd(
        config,
        "d",
        "c",
        {"rates": RATES, "label": "c"},
        shards,
        tmp_path / "rd.csv",
        tmp_path / "per_image.csv",
        fid_csv=tmp_path / "fid.csv",
        task_csvs=[tmp_path / "task.csv"],
        flags=settings()["flags"],
    )
    rd = rd.set_index("rate").loc[RATES]
    flags = {
        rate: dict(p.split(": ", 1) for p in f.split("; ") if p) for rate, f in rd["flags"].items()
    }

    def flagged(metric):
        return [metric in flags[r] for r in RATES]

    assert flagged("fid_demo") == [True, False, False, False]  # 127 < 1.0 x 128
    # KID: too few samples at rate 1; -0.31 < -3 x 0.1 at rate 1 only (-0.29 is within)
    assert flagged("kid_demo") == [True, False, False, False]
    assert "standard errors" in flags["1"]["kid_demo"] and "127 samples" in flags["1"]["kid_demo"]
    assert flagged("detection_bbox_AP") == [True, False, False, False]  # 29 < 30 objects
    assert flagged("detection_bbox_APs") == [True] * 4
    assert flagged("psnr") == [False] * 4
    # sample counts: images for means, samples for FID, objects for AP
    assert list(rd["n_psnr"]) == [4] * 4
    assert list(rd["n_fid_demo"]) == [127, 128, 128, 300]
    assert list(rd["n_detection_bbox_AP"]) == [29, 30, 30, 30]


def test_bd_flags_overlap_below_the_threshold(tmp_path):
    # anchor quality 30..36, test 33..39 over the same rates: overlap 3/9 along quality
    rows = []
    for codec, q0 in (("a", 30.0), ("t", 33.0)):
        for k, rate in enumerate(RATES):
            rows.append(
                {
                    "dataset": "d",
                    "codec": codec,
                    "label": codec,
                    "rate": rate,
                    "bpp": BPP[k] * (1.0 if codec == "a" else 1.5),
                    "psnr": q0 + 2 * k,
                    "published": False,
                }
            )
    pd.DataFrame(rows).to_csv(tmp_path / "rd.csv", index=False)
    expected_quality = 3 / 9
    expected_rate = (np.log10(0.8) - np.log10(0.15)) / (np.log10(1.2) - np.log10(0.1))
    for threshold, rate_flag, metric_flag in (
        (0.3, False, False),
        (0.34, True, False),
        (0.7, True, True),
    ):
        bd_table(
            tmp_path / "rd.csv",
            tmp_path / "bd.csv",
            dataset="d",
            anchor="a",
            metrics=["psnr"],
            bd_settings=settings(resamples=0, min_overlap=threshold),
            metric_status={},
        )
        cell = pd.read_csv(tmp_path / "bd.csv", keep_default_na=False).set_index("codec").loc["t"]
        assert float(cell["overlap_quality"]) == pytest.approx(expected_quality)
        assert float(cell["overlap_rate"]) == pytest.approx(expected_rate)
        assert bool(cell["flag_bd_rate"]) == rate_flag, (threshold, cell["flag_bd_rate"])
        assert bool(cell["flag_bd_metric"]) == metric_flag, (threshold, cell["flag_bd_metric"])
        if rate_flag:
            assert "33% of their quality range" in cell["flag_bd_rate"]


def test_bd_result_overlap_is_the_bjontegaard_definition():
    ar, aq = [0.1, 0.2, 0.4, 0.8], [30, 32, 34, 36]
    tr, tq = [0.2, 0.4, 0.8, 1.6], [31, 33, 35, 37]
    r: BDResult = bd(ar, aq, tr, tq)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bjontegaard.bd_rate(ar, aq, tr, tq, method="pchip", min_overlap=0.9)
    # the package warns with the overlap in percent along quality: 5 / 7
    assert any("71.43" in str(w.message) for w in caught)
    assert r.overlap_quality == pytest.approx(5 / 7)


def test_cli_bd_uses_the_pipeline_defaults_and_prints_the_interval(tmp_path, two_codecs, capsys):
    rd, samples, frames = two_codecs
    table = pd.read_csv(rd, dtype={"rate": str})
    for codec in ("a", "t"):
        table[table.codec == codec].to_csv(tmp_path / f"{codec}.rd.csv", index=False)
    # a curve with one point below a cheaper one: the pipeline's default (pareto) takes it
    bent = table[table.codec == "t"].copy()
    bent.loc[bent.index[1], "psnr"] = bent["psnr"].iloc[0] - 0.5
    bent.to_csv(tmp_path / "bent.rd.csv", index=False)
    code = main(
        ["bd", "--anchor", str(tmp_path / "a.rd.csv"), "--test", str(tmp_path / "bent.rd.csv")]
    )
    assert code == 0, capsys.readouterr().err
    assert "envelope: pareto" in capsys.readouterr().out

    psnr_bd_table(rd, tmp_path / "bd.csv", samples, resamples=30, seed=7, level=0.95)
    cell = pd.read_csv(tmp_path / "bd.csv").set_index("codec").loc["t"]
    args = ["bd", "--anchor", str(tmp_path / "a.rd.csv"), "--test", str(tmp_path / "t.rd.csv")]
    args += ["--anchor-per-image", samples["a"]["per_image"]]
    args += ["--test-per-image", samples["t"]["per_image"], "--resamples", "30", "--seed", "7"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"BD-rate [{cell['bd_rate_lo']:.4f}, {cell['bd_rate_hi']:.4f}] %" in out
    assert "30 of 30 resamples of 17 images" in out


def test_ap_on_resampled_images_equals_pycocotools_on_the_duplicated_images(tmp_path):
    """The task path of the bootstrap: records saved as the task_eval job saves them (COCO
    image ids that do not follow the dataset's image order), read back, and AP of a resample
    taken from the dataset's image order, against pycocotools on the duplicated images."""
    from discover.stages.bootstrap import SAMPLE_IMAGES, coco_samples_name, read_row_samples
    from discover.tasks.coco_records import coco_records
    from discover.tasks.evaluation import coco_evaluate

    from .test_coco_records import duplicated, make_case

    gt, preds = make_case(5, n_images=12)
    coco_ids = [int(img["id"]) for img in gt["images"]]
    # image stems whose sorted order is not the COCO ids' order
    stems = {i: f"im{(7 * k) % 12:02d}" for k, i in enumerate(coco_ids)}
    images = sorted(stems.values())
    folder = tmp_path / "detection.samples"
    folder.mkdir()
    pd.DataFrame({"id": list(stems.values()), "coco_id": list(stems)}).to_csv(
        folder / SAMPLE_IMAGES, index=False
    )
    coco_records(preds, gt, "bbox").save(folder / coco_samples_name("1", "bbox"))
    per_image = pd.DataFrame(
        {"rate": "1", "id": images, "pixels": 100, "bits": 50, "width": 10, "height": 10}
    )
    per_image.to_csv(tmp_path / "per_image.csv", index=False)
    s = read_row_samples("c", images, tmp_path / "per_image.csv", {"detection": folder})
    counts = resample_counts(len(images), 3, seed=9)
    got = Resampler(counts).curve(s, "detection_bbox_AP")[:, 0]
    for b in range(3):
        # counts[b] is over `images` (sorted stems): the same multiplicities per COCO image
        per_coco = np.array([counts[b][images.index(stems[i])] for i in sorted(coco_ids)])
        dup_gt, dup_preds = duplicated(gt, preds, per_coco)
        expected = coco_evaluate(dup_preds, dup_gt, "bbox")["bbox_AP"]
        assert got[b] == pytest.approx(expected, abs=1e-12), b


def test_object_counts_without_records_equal_the_records_counts():
    from discover.tasks.coco_records import coco_records
    from discover.tasks.evaluation import object_counts

    from .test_coco_records import make_case

    for iou_type in ("bbox", "segm"):
        gt, preds = make_case(3, n_images=10, iou_type=iou_type)
        assert object_counts(gt, iou_type) == coco_records(preds, gt, iou_type).objects()
