"""Machine-vision tasks in the DAG: task models trained by the pipeline (a few steps here),
predictions saved per shard, metrics next to bpp for every row (DISCOVER: its task stream and
its full stream) plus the uncompressed reference, BD-rate per task metric and the task table."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from discover.grounding import read_grounding

from .conftest import (
    ROOT,
    check_bd_table,
    check_recorded_digest,
    copy_committed_weights,
    job_threads,
    snakemake,
    tiny_config,
    write_config,
)

DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.fixture(scope="module")
def tasks_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("tasks_run")
    cfg = tiny_config(shard_size=4)
    # classification on single-object images (ImageNet-like), detection on the scenes
    cfg["datasets"]["objects"] = {
        **cfg["datasets"]["scenes"],
        "num_images": 2,
        "min_objects": 1,
        "max_objects": 1,
    }
    cfg["codecs"] = {
        "jpeg": {"type": "jpeg", "rates": [15, 90]},
        "discover-mini": {
            "type": "discover",
            "trained": "discover-mini",
            "rates": [1, 8],
            "tasks": {"detection": {"mask": "grounding"}, "classification": {"mask": "grounding"}},
        },
    }
    cfg["anchor"] = "jpeg"
    cfg["metrics"] = ["psnr"]
    cfg["bd"] = {"method": "pchip", "min_points": 4}  # 2 rate points: BD reports "not computed"
    cfg["discover_training"] = copy.deepcopy(DEFAULT["discover_training"])
    cfg["training_data"] = copy.deepcopy(DEFAULT["training_data"])  # the pools it names
    labels = {"backend": "static", "path": "synthetic-scenes-detection.txt"}
    cfg["tasks"] = {
        "detection": {
            "trained": "tiny-detector",
            "score_threshold": 0.0,
            "labels": labels,
            "datasets": ["scenes"],
        },
        "classification": {"trained": "tiny-classifier", "labels": labels, "datasets": ["objects"]},
    }
    # DISCOVER's masks: the boxes of the detector the pipeline trains, filtered to the labels
    cfg["semantics"] = {
        "labels": {"backend": "static", "min_labels": 100},
        "grounding": {
            "backend": "detector",
            "detector": {"trained": "tiny-detector", "score_threshold": 0.0},
        },
    }
    cfg["task_training"] = {
        # a 3-step detector scores every box near chance: keep all its boxes (torchvision's
        # default 0.05 cut can leave none, and then the AP tests would compare nothing)
        "tiny-detector": {
            "kind": "detection",
            "steps": 3,
            "num_images": 4,
            "val_images": 2,
            "kwargs": {"box_score_thresh": 0.0},
        },
        "tiny-classifier": {"kind": "classification", "steps": 3, "num_images": 8, "val_images": 4},
    }
    # the task models train into the test's folder; the committed DISCOVER weights are copied
    cfg["trained_weights_dir"] = str(work / "weights")
    copy_committed_weights(work / "weights", "discover-mini")
    config = write_config(work / "config.yaml", cfg)
    proc = snakemake(work, config, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work


def test_task_metrics_sit_next_to_bpp_for_every_row(tasks_run):
    rd = pd.read_csv(tasks_run / "results/tables/scenes/rd.csv", dtype={"rate": str})
    # DISCOVER decodes a task's stream only where the task is evaluated (tasks.<t>.datasets)
    assert set(rd.codec) == {"jpeg", "discover-mini@human", "discover-mini@detection"}
    assert rd["detection_bbox_AP"].notna().all()
    assert "classification_top1" not in rd
    objects = pd.read_csv(tasks_run / "results/tables/objects/rd.csv", dtype={"rate": str})
    assert set(objects.codec) == {"jpeg", "discover-mini@human", "discover-mini@classification"}
    assert objects["classification_top1"].notna().all() and "detection_bbox_AP" not in objects
    bd = pd.read_csv(tasks_run / "results/tables/scenes/bd.csv")
    assert "detection_bbox_AP" in set(bd.metric)
    others = bd[bd.codec != "jpeg"]
    # 2 rate points: no BD; a metric a row has no value of (APs: no small object) is not evaluated
    assert others["note"].str.match("not computed|not evaluated").all()
    assert others[others.metric == "detection_bbox_AP"]["note"].str.startswith("not computed").all()
    table = (tasks_run / "results/tables/scenes/tasks.md").read_text()
    # readable headers, the uncompressed score in a table of its own, no raw column names
    ref = pd.read_csv(tasks_run / "results/metrics/scenes/tasks/detection/reference.csv")
    score = f"| detection | bbox AP | {ref['detection_bbox_AP'].iloc[0]:.3f} |"
    assert "uncompressed" in table and score in table, table
    header = next(line for line in table.splitlines() if line.startswith("| row |"))
    assert "| detection: bbox AP: BD-rate (%) |" in header and "detection_bbox_AP" not in header
    # a missing BD-rate says why, once, under the table
    assert "| not computed [1] |" in table and "\n[1] not computed: " in table


def test_masks_come_from_the_detector_the_pipeline_trains(tasks_run):
    provenance, _ = read_grounding(tasks_run / "results/semantics/scenes/detection/s0000.json")
    assert provenance["backend"] == "detector"
    assert provenance["checkpoint"].endswith("tiny-detector/model.pt")
    assert (tasks_run / "results/semantics/objects/classification/s0000.json").is_file()
    assert not (tasks_run / "results/semantics/objects/detection").exists()


def test_saved_predictions_give_the_table_ap_with_pycocotools(tasks_run):
    out = tasks_run / "results"
    gt = COCO()
    gt.dataset = json.loads((out / "scenes/reference/s0000/annotations.json").read_text())
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    preds = json.loads((out / "tasks/scenes/detection/jpeg/s0000/15.json").read_text())
    metrics = pd.read_csv(out / "metrics/scenes/tasks/detection/jpeg.csv", dtype={"rate": str})
    got = metrics.set_index("rate").loc["15", "detection_bbox_AP"]
    if not preds:  # an untrained detector may find nothing: pycocotools' AP is then 0
        assert got == 0
        return
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(preds), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    expected = max(float(ev.stats[0]), 0.0) if ev.stats[0] >= 0 else np.nan
    assert got == pytest.approx(expected, abs=1e-12, nan_ok=True)


def _coco_ap(gt: dict, predictions: list[dict]) -> list[float]:
    """COCOeval's AP, AP50, AP75, APs, APm, APl (NaN where pycocotools says -1: no object of
    that size)."""
    coco = COCO()
    coco.dataset = copy.deepcopy(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(predictions)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) if v >= 0 else np.nan for v in ev.stats[:6]]


def test_discover_task_row_ap_is_pycocotools_on_the_decoded_pngs(tasks_run):
    """DISCOVER's detection row: the job's detector (its job config names the checkpoint),
    run here on the decoded PNGs on disk with the job's one thread, converted to COCO results
    and scored by COCOeval against the dataset's annotations.json, gives the predictions the
    job saved and the APs of the row's metrics file and of the rd table, at every rate."""
    from PIL import Image

    from discover.config import validate_config
    from discover.plan import Plan
    from discover.tasks.models import load_task_model

    row, out = "discover-mini@detection", tasks_run / "results"
    config = validate_config(yaml.safe_load((tasks_run / "config.yaml").read_text()))
    job = Plan(config, basedir=ROOT).task_job_config("detection")["tasks"]["detection"]
    assert job["weights"] == str(tasks_run / "weights/tiny-detector/model.pt")
    detector = load_task_model("detection", job["weights"])
    gt = json.loads((out / "scenes/annotations.json").read_text())
    category_id = {c["name"]: c["id"] for c in gt["categories"]}
    label_id = {k: category_id[n] for k, n in detector.categories.items() if n in category_id}
    metrics = pd.read_csv(out / f"metrics/scenes/tasks/detection/{row}.csv", dtype={"rate": str})
    rd = pd.read_csv(out / "tables/scenes/rd.csv", dtype={"rate": str})
    columns = [f"detection_bbox_{m}" for m in ("AP", "AP50", "AP75", "APs", "APm", "APl")]
    assert sorted(metrics["rate"]) == ["1", "8"]
    for rate in metrics["rate"]:
        predictions = []
        for img in gt["images"]:
            (png,) = (out / f"scenes/{row}/{rate}").glob(f"s*/{img['file_name']}")
            rgb = np.asarray(Image.open(png).convert("RGB"))
            x = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1) / 255.0
            with job_threads(1), torch.inference_mode():
                found = detector.model.eval()([x])[0]
            for box, label, score in zip(
                found["boxes"].double().numpy(),
                found["labels"].tolist(),
                found["scores"].tolist(),
                strict=True,
            ):
                x0, x1 = box[0::2].clip(0, img["width"])
                y0, y1 = box[1::2].clip(0, img["height"])
                if label in label_id and score >= job["score_threshold"] and x1 > x0 and y1 > y0:
                    predictions.append(
                        {
                            "image_id": img["id"],
                            "category_id": label_id[label],
                            "bbox": [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
                            "score": round(float(score), 5),
                        }
                    )
        assert predictions, "the detector finds nothing: no AP to compare"
        saved = [
            p
            for f in sorted((out / f"tasks/scenes/detection/{row}").glob(f"s*/{rate}.json"))
            for p in json.loads(f.read_text())
        ]
        assert sorted(map(json.dumps, predictions)) == sorted(map(json.dumps, saved))
        expected = _coco_ap(gt, predictions)
        table = metrics.set_index("rate").loc[rate, columns].astype(float).tolist()
        in_rd = rd[(rd["codec"] == row) & (rd["rate"] == rate)][columns].astype(float)
        assert len(in_rd) == 1
        for got in (table, in_rd.iloc[0].tolist()):
            assert got == pytest.approx(expected, abs=1e-9, nan_ok=True)


def test_every_bd_row_says_why_it_has_no_number(tasks_run):
    """2 rate points per row: no BD number anywhere but the anchor's, each row's reason in
    its note (recomputed: bjontegaard cannot take these curves)."""
    for dataset in ("scenes", "objects"):
        assert check_bd_table(tasks_run, dataset) == 0


def test_reference_row_scores_the_uncompressed_images(tasks_run):
    ref = pd.read_csv(tasks_run / "results/metrics/objects/tasks/classification/reference.csv")
    assert list(ref["rate"].astype(str)) == ["clean"] and ref["images"].iloc[0] == 2
    assert 0.0 <= ref["classification_top1"].iloc[0] <= 1.0
    meta = json.loads((tasks_run / "weights/tiny-classifier/model.json").read_text())
    assert meta["steps"] == 3 and "val_metrics" in meta and len(meta["sha256"]) == 64


def test_ablation_plot_and_column_name_the_paper_variants(tasks_run, tmp_path):
    """Fig. 8: one plot per (dataset, task) DISCOVER decodes; its rows are DISCOVER's task
    stream ("w/o composition": no prior here) and its full stream ("w/o disentanglement")."""
    from discover.errors import DiscoverError
    from discover.stages.tasks import ablation_plot

    res = tasks_run / "results"
    for ds, task in (("scenes", "detection"), ("objects", "classification")):
        assert (res / f"plots/{ds}/ablation_{task}.png").stat().st_size > 0
        assert (res / f"plots/{ds}/ablation_{task}.pdf").stat().st_size > 0
    table = pd.read_csv(res / "tables/scenes/tasks.csv").set_index("row")
    assert table.loc["discover-mini@detection", "ablation"] == "w/o composition"
    assert table.loc["discover-mini@human", "ablation"] == "w/o composition, w/o disentanglement"
    assert pd.isna(table.loc["jpeg", "ablation"])
    rows = {
        "discover-mini@detection": "w/o composition",
        "discover-mini@human": "w/o composition, w/o disentanglement",
    }
    task_cfg = {"trained": "tiny-detector"}
    args = (res / "tables/scenes/rd.csv", res / "metrics/scenes/tasks/detection/reference.csv")
    sub = ablation_plot(
        "scenes", "detection", task_cfg, rows, *args, tmp_path / "a.png", tmp_path / "a.pdf"
    )
    assert list(sub["label"].unique()) == list(rows.values())
    assert len(sub) == 4 and sub["detection_bbox_AP"].notna().all()  # 2 rows x 2 rates
    with pytest.raises(DiscoverError, match="no rows \\['hevc'\\]"):
        ablation_plot(
            "scenes",
            "detection",
            task_cfg,
            {"hevc": "base"},
            *args,
            tmp_path / "b.png",
            tmp_path / "b.pdf",
        )


def test_ablation_roles_with_and_without_composition():
    from discover.config import validate_config
    from discover.errors import ConfigError
    from discover.plan import Plan

    cfg = copy.deepcopy(DEFAULT)
    cfg["codecs"]["discover-gen"] = {
        **cfg["codecs"]["discover-mini"],
        "composition": {"prior": "stabilityai/stable-diffusion-2-1-base"},
    }
    cfg["ablation"] = {"base": "hyperprior-mini"}
    plan = Plan(validate_config(cfg), basedir=ROOT)
    assert plan.ablation_role("discover-gen@detection", "detection") == "DISCOVER"
    assert plan.ablation_role("discover-gen@human", "detection") == "w/o disentanglement"
    assert plan.ablation_role("discover-mini@detection", "detection") == "w/o composition"
    assert plan.ablation_role("discover-gen@classification", "detection") is None
    assert plan.ablation_role("jpeg", "detection") is None
    rows = plan.ablation_rows("scenes", "detection")
    assert rows["hyperprior-mini"] == "base codec (hyperprior-mini)"
    assert rows["discover-gen@detection"] == "DISCOVER (discover-gen@detection)"
    assert set(rows) == {
        "hyperprior-mini",
        "discover-mini@human",
        "discover-mini@detection",
        "discover-gen@human",
        "discover-gen@detection",
    }
    assert ("objects", "classification") in plan.ablation_datasets()
    # the embedded default's own DISCOVER (on the objects): composition through its trained
    # model
    rows = plan.ablation_rows("objects", "classification")
    assert rows["discover@classification"] == "DISCOVER (discover@classification)"
    assert {"discover@human", "discover-mini@classification"} <= set(rows)
    cfg["ablation"] = {"base": "elic"}
    with pytest.raises(ConfigError, match="ablation.base: 'elic' is not a configured codec"):
        validate_config(cfg)


def test_outputs_equal_those_recorded_before_the_code_moved(tasks_run):
    """Streams, reconstructions, metrics and tables byte for byte as the commit before the
    re-homing of the package wrote them (tests/data/recorded_digests.json)."""
    check_recorded_digest(tasks_run, "tasks_run")


def test_summary_page_reads_top_to_bottom(tasks_run):
    """results/summary.html: per dataset the BD table of bd.csv, the task table, the headline
    figures, then the rest; RD plots only for the headline task metrics."""
    import base64
    import re

    page = (tasks_run / "results/summary.html").read_text()
    plots = tasks_run / "results/plots"
    for dataset, task_column in (
        ("scenes", "detection_bbox_AP"),
        ("objects", "classification_top1"),
    ):
        section = page.split(f'<h2 id="{dataset}">')[1].split("<h2 ")[0]
        order = [section.index(s) for s in ("BD-rate (%) against", "Machine tasks on", "Headline")]
        assert order == sorted(order), dataset
        bd = pd.read_csv(tasks_run / f"results/tables/{dataset}/bd.csv")
        for _, row in bd[(bd.metric == "psnr") & (bd.codec != "jpeg")].iterrows():
            pattern = rf"<td>{re.escape(row.codec)}</td><td>[^<]*</td><td>([^<]*)<"
            cell = re.search(pattern, section).group(1)
            if pd.isna(row.bd_rate_pct):
                assert cell == "—" or cell.startswith("not computed"), (row.codec, cell)
            else:
                assert cell.startswith(f"{row.bd_rate_pct:.2f}"), (row.codec, cell)
        # the headline figure of the task is the very file the DAG wrote
        png = (plots / dataset / f"rd_{task_column}.png").read_bytes()
        headline = section.split("Headline figures")[1].split("More figures")[0]
        assert base64.b64encode(png).decode() in headline
        # the AP variants stay in the tables: no plot of their own
        assert not list((plots / dataset).glob("rd_*_AP50.png"))
        assert not list((plots / dataset).glob("rd_*_top5.png"))
