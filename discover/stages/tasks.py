"""Stages of rules/tasks.smk: task predictions, their metrics, the task table and Fig. 8."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from discover.batching import read_ahead
from discover.errors import DiscoverError
from discover.io import atomic_dir, atomic_path, write_text_atomic
from discover.plots import rd_plot
from discover.shards import (
    coco_ids,
    merged_annotations,
    read_annotations,
    read_image,
)
from discover.stages.bootstrap import SAMPLE_IMAGES, coco_samples_name, topk_samples_name
from discover.stages.common import (
    Footnotes,
    bd_cell,
    markdown_table,
    samples_phrase,
)

log = logging.getLogger("discover")


def run_task_predict(
    config: Mapping[str, Any],
    task: str,
    reference_dir: str | Path,
    images_dirs: Mapping[str, str | Path],
    out_dir: str | Path,
) -> dict[str, list]:
    """A task model's predictions on one shard of decoded (or reference) images at each rate
    point (``images_dirs``: rate -> folder of PNGs), saved per image as ``out_dir/<rate>.json``
    (COCO results / top-k) so that metrics can be recomputed without the model. The model is
    loaded once for all rate points."""
    # the task package loads its models (PyTorch): the task-table jobs run without it
    from discover.tasks import get_task, save_predictions

    t = get_task(task, config, config.get("weights_cache"))
    ids = coco_ids(reference_dir)
    annotations = read_annotations(reference_dir)
    categories = None if annotations is None else annotations["categories"]

    def images(folder: Path):
        for stem, coco_id in ids.items():
            yield coco_id, read_image(folder, stem)

    out = {}
    with atomic_dir(out_dir) as tmp:
        for rate, folder in images_dirs.items():
            # PNGs read on a thread, ahead of the model's batched forward passes
            batches = read_ahead(images(Path(folder)), depth=2 * max(1, t.batch_size))
            out[str(rate)] = t.predict(batches, categories=categories)
            save_predictions(Path(tmp) / f"{rate}.json", out[str(rate)])
    return out


def run_task_eval(
    config: Mapping[str, Any],
    task: str,
    reference_dirs: Sequence[str | Path],
    predictions: Mapping[str, Sequence[str | Path]],
    out_csv: str | Path,
    samples_dir: str | Path | None = None,
    bootstrap: bool = True,
) -> pd.DataFrame:
    """Task metrics of one table row at each rate point (``predictions``: rate -> the shards'
    prediction files), from the saved predictions and the shards' annotations/labels.

    Each metric has its sample count (``n_<task>_<metric>``): the annotated objects of the AP's
    area range (crowds left out, as pycocotools counts them), or the images of
    a top-k accuracy. ``samples_dir``: what the BD table's bootstrap re-evaluates on resampled
    images: per rate the per-image COCO matches (``<rate>.<bbox|segm>.npz``,
    :class:`discover.tasks.coco_records.CocoRecords`) or the per-image hits
    (``<rate>.topk.csv``), and ``images.csv`` (image id, COCO image id); with ``bootstrap``
    off (``bd.bootstrap.resamples: 0``) only ``images.csv``."""
    # the task package and registry load PyTorch: the task-table jobs run without it
    from discover.tasks import classification_accuracy, coco_evaluate, load_predictions
    from discover.tasks.coco_records import coco_records
    from discover.tasks.evaluation import image_labels, object_counts
    from discover.tasks.registry import resolve, task_type

    cfg = dict((config.get("tasks") or {})[task])
    cls = resolve(task_type(task, cfg))
    gt = merged_annotations(reference_dirs)
    stems = {stem: i for d in reference_dirs for stem, i in coco_ids(d).items()}
    ids = list(stems.values())
    evaluator = str(cfg.get("evaluator", "pycocotools"))
    rows = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(atomic_dir(samples_dir))) if samples_dir else None
        bootstrap = bootstrap and tmp is not None
        if tmp is not None:
            pd.DataFrame({"id": list(stems), "coco_id": ids}).to_csv(
                tmp / SAMPLE_IMAGES, index=False
            )
        for rate, files in predictions.items():
            preds = [p for f in files for p in load_predictions(f)]
            row: dict[str, Any] = {"rate": str(rate), "images": len(ids)}
            # the task types' own evaluation, from saved predictions (no model needed)
            if hasattr(cls, "iou_types"):
                for iou_type in cls.iou_types:
                    if bootstrap:
                        # one pycocotools evaluation gives the per-image matches and, with
                        # pycocotools as the evaluator, the AP itself (equal to it, tested)
                        records = coco_records(preds, gt, iou_type, image_ids=ids)
                        records.save(tmp / coco_samples_name(str(rate), iou_type))
                        objects = records.objects()
                        if evaluator == "pycocotools":
                            metrics = records.ap()
                    if not bootstrap or evaluator != "pycocotools":
                        metrics = coco_evaluate(
                            preds, gt, iou_type, evaluator=evaluator, image_ids=ids
                        )
                    if not bootstrap:
                        objects = object_counts(gt, iou_type, image_ids=ids)
                    for k, v in metrics.items():
                        row[f"{task}_{k}"] = v
                        row[f"n_{task}_{k}"] = objects[k]
            else:
                metrics = classification_accuracy(preds, gt, image_ids=ids)
                for k, v in metrics.items():
                    row[f"{task}_{k}"] = v
                    row[f"n_{task}_{k}"] = len(ids)
                if bootstrap:
                    truth = image_labels(gt)
                    topk = {int(p["image_id"]): [int(c) for c in p["topk"]] for p in preds}
                    hits = pd.DataFrame({"id": list(stems)})
                    for k in (1, 5):
                        hits[f"top{k}"] = [int(truth[i] in topk[i][:k]) for i in stems.values()]
                    hits.to_csv(tmp / topk_samples_name(str(rate)), index=False)
            rows.append(row)
    df = pd.DataFrame(rows)
    with atomic_path(out_csv) as tmp_csv:
        df.to_csv(tmp_csv, index=False, float_format="%.10g")
    log.info("task %s (%s): %d rate points", task, cls.name, len(rows))
    return df


def task_tables(
    config: Mapping[str, Any],
    dataset: str,
    bd_csv: str | Path,
    reference_csvs: Mapping[str, str | Path],
    table_csv: str | Path,
    table_md: str | Path,
    ablation_roles: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The machine-task table of a dataset: rows codecs, columns tasks: BD-rate (%)
    of each task's main metric against the anchor, and the uncompressed images' score;
    ``ablation_roles``: row -> its role in the paper's ablation (a column when given)."""
    bd = pd.read_csv(bd_csv)
    tasks = config.get("tasks") or {}
    main = {t: main_task_metric(t, tasks[t]) for t in reference_csvs}
    rows = []
    reference = {"row": "uncompressed", "label": "uncompressed (reference images)"}
    for t, path in reference_csvs.items():
        ref = pd.read_csv(path)
        reference[f"{main[t]}"] = float(ref[main[t]].iloc[0])
        reference[f"BD-rate {main[t]} (%)"] = ""
    notes = Footnotes()  # why a BD-rate is missing or cannot hold, numbered as cited
    roles = ablation_roles or {}
    if roles:
        reference["ablation"] = ""
    anchor = config.get("anchor")
    samples = {}
    for column in main.values():
        hit = bd[(bd["codec"] == anchor) & (bd["metric"] == column)]
        n = hit["samples"].iloc[0] if len(hit) and "samples" in hit else float("nan")
        samples[column] = samples_phrase(n, column)
    headers = {c: metric_header(c) for c in main.values()}
    md_rows = []
    for codec, g in bd.groupby("codec", sort=False):
        row = {"row": codec, "label": g["label"].iloc[0]}
        if roles:
            row["ablation"] = roles.get(codec) or ""
        md_row = dict(row)
        for column in main.values():
            hit = g[g["metric"] == column]
            row[column] = ""
            value = hit["bd_rate_pct"].iloc[0] if len(hit) else float("nan")
            key = f"BD-rate {column} (%)"
            row[key] = "" if pd.isna(value) else f"{value:.2f}"
            for end in ("lo", "hi"):
                bound = hit[f"bd_rate_{end}"].iloc[0] if f"bd_rate_{end}" in hit else np.nan
                row[f"{key} {end}"] = "" if pd.isna(bound) else f"{bound:.2f}"
            n = hit["samples"].iloc[0] if len(hit) and "samples" in hit else np.nan
            row[f"n {column}"] = "" if pd.isna(n) else int(n)
            flag = hit["flag_bd_rate"].iloc[0] if len(hit) and "flag_bd_rate" in hit else ""
            row[f"flag {key}"] = flag if isinstance(flag, str) else ""
            cell = bd_cell(hit.iloc[0].to_dict(), "rate", 2, notes) if len(hit) else "—"
            md_row[f"{headers[column]}: BD-rate (%)"] = cell
        rows.append(row)
        md_rows.append(md_row)
    table = pd.DataFrame([reference, *rows])
    with atomic_path(table_csv) as tmp:
        table.to_csv(tmp, index=False)
    md = pd.DataFrame(md_rows).fillna("")
    uncompressed = pd.DataFrame(
        [
            {
                "task": headers[c].split(": ")[0],
                "metric": headers[c].split(": ")[1],
                "score": f"{reference[c]:.3f}",
                "samples": samples[c] or "—",
            }
            for c in main.values()
        ]
    )
    envelope = config["bd"]["envelope"]
    boot = config["bd"].get("bootstrap") or {}
    lines = [
        f"# Machine tasks on {dataset}",
        "",
        "## The task models on the uncompressed images",
        "",
        markdown_table(uncompressed),
        "",
        f"## BD-rate (%) against `{anchor}`",
        "",
        "BD-rate of each task's headline metric against the anchor (negative = fewer bits for "
        "the same task accuracy). DISCOVER rows are its task stream (`codec@task`) and its "
        "full stream (`codec@human`); the ablation column names the paper's Fig. 8 variants "
        "(w/o composition: the VAE decodes ẑ_c; w/o disentanglement: the full stream goes to "
        "the machine). "
        + (
            "Each curve is reduced to its Pareto front first (points whose accuracy is not above "
            "a cheaper point of the same codec are dropped, listed in bd.csv's note). "
            if envelope == "pareto"
            else "Curves that are not strictly monotone get no BD-rate (bd.envelope: none). "
        )
        + (
            f"In brackets: the {float(boot.get('level', 0.95)):.0%} bootstrap interval over "
            f"images ({int(boot['resamples'])} resamples, seed {int(boot.get('seed', 0))}). "
            if int(boot.get("resamples", 0)) > 0
            else ""
        )
        + "⚠ marks a value that cannot hold; the notes under the table say why. Every task "
        "metric of every row (AP50, AP75, by object size, top-5) is in rd.csv and bd.csv.",
        "",
        markdown_table(md),
    ]
    if notes.numbers:
        lines += ["", *notes.lines()]
    write_text_atomic(table_md, "\n".join(lines) + "\n")
    return table


def metric_header(column: str) -> str:
    """A task metric column as a table header: ``instance_segmentation_segm_AP`` ->
    ``instance segmentation: segm AP``, ``classification_top1`` -> ``classification: top-1``."""
    for sep in ("_bbox_", "_segm_", "_top"):
        task, hit, rest = column.partition(sep)
        if hit:
            metric = f"{hit.strip('_')} {rest}" if sep != "_top" else f"top-{rest}"
            return f"{task.replace('_', ' ')}: {metric.replace('_', ' ')}"
    return column.replace("_", " ")


def main_task_metric(task: str, task_cfg: Mapping[str, Any]) -> str:
    """The rd.csv column of a task's headline metric (bbox AP, segm AP, top-1)."""
    # the task registry loads the task modules (PyTorch) on first use
    from discover.tasks.registry import resolve, task_type

    return f"{task}_{resolve(task_type(task, task_cfg)).metrics[0]}"


def ablation_plot(
    dataset: str,
    task: str,
    task_cfg: Mapping[str, Any],
    rows: Mapping[str, str],
    rd_csv: str | Path,
    reference_csv: str | Path,
    png: str | Path,
    pdf: str | Path,
) -> pd.DataFrame:
    """Paper Fig. 8 for one task: its headline metric vs bpp for DISCOVER's ablation rows
    (``rows``: row -> legend label) and the uncompressed images' score as a line."""

    metric = main_task_metric(task, task_cfg)
    rd = pd.read_csv(rd_csv, dtype={"rate": str})
    missing = sorted(set(rows) - set(rd["codec"]))
    if missing:
        raise DiscoverError(f"{rd_csv}: no rows {missing} for the {task} ablation plot")
    if metric not in rd:
        raise DiscoverError(f"{rd_csv}: no column {metric!r} for the {task} ablation plot")
    sub = rd[rd["codec"].isin(list(rows))].copy()
    sub["codec"] = pd.Categorical(sub["codec"], categories=list(rows), ordered=True)
    sub = sub.sort_values(["codec", "bpp"])
    sub["codec"] = sub["codec"].astype(str)
    sub["label"] = sub["codec"].map(dict(rows))
    reference = float(pd.read_csv(reference_csv)[metric].iloc[0])
    rd_plot(
        sub,
        metric,
        png,
        pdf,
        title=f"{dataset}: ablation ({task})",
        reference=reference,
    )
    return sub
