"""The work of each Snakemake rule as a plain function (importable without Snakemake)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from discover.codecs import get_codec
from discover.datasets import get_dataset, shard_items
from discover.errors import CodecError, DatasetError, DiscoverError
from discover.io import atomic_dir, atomic_path, write_bytes_atomic, write_text_atomic
from discover.metrics.catalog import image_scorers, metric_columns, metric_info

log = logging.getLogger("discover")

INDEX = "index.csv"


# -- datasets -------------------------------------------------------------------------------
def prepare_shard(config: Mapping[str, Any], dataset: str, shard: str, out_dir: str | Path) -> None:
    """Write the shard's reference images (after the dataset protocol) as PNG plus index.csv,
    and the shard's COCO annotations when the dataset has them."""
    ds = get_dataset(dataset, config)
    items = shard_items(ds.list_items(), config["shard_size"], shard)
    with atomic_dir(out_dir) as tmp:
        rows, sizes = [], {}
        for item in items:
            image = ds.load(item)
            h, w = image.shape[:2]
            Image.fromarray(image).save(tmp / f"{item.id}.png", format="PNG", compress_level=1)
            sizes[item.id] = (w, h)
            rows.append(
                {
                    "id": item.id,
                    "width": w,
                    "height": h,
                    "label": ds.label(item),
                    "source": item.source,
                }
            )
        pd.DataFrame(rows).to_csv(tmp / INDEX, index=False)
        if ds.has_annotations:
            ann = ds.annotations(items, sizes)
            (tmp / "annotations.json").write_text(json.dumps(ann))
        log.info("dataset %s shard %s: %d images", dataset, shard, len(rows))


def merge_annotations(shard_dirs: Sequence[str | Path], out_json: str | Path) -> None:
    """Concatenate the shards' COCO annotations into one instances file."""
    merged: dict[str, list] = {"images": [], "annotations": [], "categories": []}
    for d in shard_dirs:
        path = Path(d) / "annotations.json"
        if not path.exists():
            continue
        part = json.loads(path.read_text())
        merged["images"] += part["images"]
        merged["annotations"] += part["annotations"]
        merged["categories"] = part["categories"]
    write_text_atomic(out_json, json.dumps(merged))


def read_index(reference_dir: str | Path) -> pd.DataFrame:
    path = Path(reference_dir) / INDEX
    if not path.exists():
        raise DatasetError(f"reference shard {reference_dir} has no {INDEX}")
    return pd.read_csv(path, dtype={"id": str})


# -- codecs ---------------------------------------------------------------------------------
def run_codec_shard(
    config: Mapping[str, Any],
    codec: str,
    rate: str,
    reference_dir: str | Path,
    out_dir: str | Path,
    metrics_csv: str | Path,
    threads: int = 1,
) -> pd.DataFrame:
    """Encode and decode every image of a reference shard; record bits and fidelity.

    ``out_dir`` receives ``{id}.{ext}`` bitstreams and ``{id}.png`` reconstructions;
    ``metrics_csv`` one row per image (bits = 8 x bitstream file size).
    """
    c, rate_value, index, metrics = _shard_job(config, codec, rate, reference_dir, threads)
    c.check()
    rows = []
    with atomic_dir(out_dir) as tmp:
        for rec in index.itertuples(index=False):
            ref_path, ref = _reference_image(reference_dir, rec.id)
            stream = tmp / f"{rec.id}.{c.extension}"
            t0 = time.perf_counter()
            try:
                c.encode(ref, rate_value, stream)
                t1 = time.perf_counter()
                out = c.decode(stream, ref.shape[:2], rate_value)
            except CodecError as exc:
                raise CodecError(f"{exc} [image {ref_path}, rate {rate}]") from exc
            t2 = time.perf_counter()
            Image.fromarray(out).save(tmp / f"{rec.id}.png", format="PNG", compress_level=1)
            row = _metric_row(rec, ref, out, 8 * stream.stat().st_size, metrics)
            row["encode_s"] = round(t1 - t0, 6)
            row["decode_s"] = round(t2 - t1, 6)
            rows.append(row)
        df = _write_metrics(rows, metrics_csv, tmp / "timings.csv")
    return df


def _shard_job(config, codec: str, rate: str, reference_dir, threads: int):
    """(codec, rate value, shard index, fidelity metrics) of a per-shard codec job."""
    c = get_codec(codec, config, threads=threads)
    rate_value = _rate_value(config["codecs"][codec]["rates"], rate, codec)
    return c, rate_value, read_index(reference_dir), image_scorers(config)


def _metric_row(
    rec, ref: np.ndarray, out: np.ndarray, bits: int, metrics: Mapping[str, Callable]
) -> dict:
    """Per-image row: bits (8 x the bytes the decoder received), bpp and per-image metrics."""
    pixels = int(rec.width) * int(rec.height)
    row = {
        "id": rec.id,
        "width": int(rec.width),
        "height": int(rec.height),
        "pixels": pixels,
        "bits": bits,
        "bpp": bits / pixels,
    }
    for m, score in metrics.items():
        row[m] = score(ref, out)
    return row


def _write_metrics(rows: list[dict], metrics_csv: str | Path, timings_csv: Path) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    timing_cols = [c for c in df.columns if c.endswith("_s")]
    with atomic_path(metrics_csv) as tmp_csv:
        df.drop(columns=timing_cols).to_csv(tmp_csv, index=False)
    # Timings are measurements, not results: kept apart so results stay byte-identical.
    df[["id", *timing_cols]].to_csv(timings_csv, index=False)
    return df


def _reference_image(reference_dir: str | Path, image_id: str) -> tuple[Path, np.ndarray]:
    path = Path(reference_dir) / f"{image_id}.png"
    return path, np.asarray(Image.open(path).convert("RGB"))


# -- DISCOVER: encode once per image, decode per consumer -----------------------------------
def run_discover_encode(
    config: Mapping[str, Any],
    codec: str,
    rate: str,
    reference_dir: str | Path,
    out_dir: str | Path,
    threads: int = 1,
    grounding: Mapping[str, str | Path] | None = None,
    consumers: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Write one ``.dsc`` container per image of a shard (a stream per task + ẑ + the rest).

    Task masks come from the codec's mask sources: ``grounding`` maps a task to the shard's
    grounding file (discover.semantics), ``gt`` reads the shard's annotated boxes.
    ``consumers``: the ones evaluated on this dataset (default: all the codec can serve)."""
    from discover.codecs.discover_codec import load_image_annotations
    from discover.semantics import grounded_boxes

    c, rate_value, index, _ = _shard_job(config, codec, rate, reference_dir, threads)
    annotations = load_image_annotations(reference_dir)
    if consumers is None:
        consumers = c.consumers(annotations is not None)
    tasks = [t for t in consumers if t in c.tasks]
    by_task = {t: grounded_boxes([p]) for t, p in (grounding or {}).items()}
    rows = []
    with atomic_dir(out_dir) as tmp:
        for rec in index.itertuples(index=False):
            ref_path, ref = _reference_image(reference_dir, rec.id)
            anns = None if annotations is None else annotations.get(rec.id, [])
            grounded = {t: boxes.get(rec.id, []) for t, boxes in by_task.items()}
            t0 = time.perf_counter()
            try:
                boxes = c.task_boxes(anns, tasks, grounded)
                c.encode(ref, rate_value, tmp / f"{rec.id}.dsc", boxes)
            except CodecError as exc:
                raise CodecError(f"{exc} [image {ref_path}, rate {rate}]") from exc
            rows.append({"id": rec.id, "encode_s": round(time.perf_counter() - t0, 6)})
        pd.DataFrame(rows).to_csv(tmp / "timings.csv", index=False)
    return pd.DataFrame(rows)


def run_discover_decode(
    config: Mapping[str, Any],
    codec: str,
    rate: str,
    consumer: str,
    reference_dir: str | Path,
    streams_dir: str | Path,
    out_dir: str | Path,
    metrics_csv: str | Path,
    threads: int = 1,
    reuse: tuple[str, str | Path] | None = None,
) -> pd.DataFrame:
    """Cut each image's ``consumer`` stream out of its container, decode it and measure: bits
    = 8 x the bytes that consumer receives.

    ``out_dir`` keeps the cut streams (``{id}.dsc``) and reconstructions (``{id}.png``).
    ``reuse``: (another consumer, its ``out_dir``): an image whose cut decodes like that
    consumer's (the same bits and decode settings; two tasks whose grounding found the same
    boxes) takes its PNG instead of being decoded again; the result is the same bytes."""
    from discover.codec.bitstream import Container

    c, rate_value, index, metrics = _shard_job(config, codec, rate, reference_dir, threads)
    if reuse is not None and c.decode_settings(consumer) != c.decode_settings(reuse[0]):
        reuse = None
    rows, reused = [], 0
    with atomic_dir(out_dir) as tmp:
        for rec in index.itertuples(index=False):
            ref_path, ref = _reference_image(reference_dir, rec.id)
            source = Path(streams_dir) / f"{rec.id}.dsc"
            cut = tmp / f"{rec.id}.dsc"
            t0 = time.perf_counter()
            try:
                full = Container.from_bytes(source.read_bytes(), str(source))
                mine = full.for_consumer(consumer)
                write_bytes_atomic(cut, mine.to_bytes())
                same = reuse is not None and _decodes_like(mine, Path(reuse[1]) / cut.name)
                if same:
                    out = np.asarray(Image.open(Path(reuse[1]) / f"{rec.id}.png").convert("RGB"))
                    reused += 1
                else:
                    out = c.decode(cut, ref.shape[:2], rate_value, consumer)
            except CodecError as exc:
                raise CodecError(f"{exc} [image {ref_path}, consumer {consumer}]") from exc
            t1 = time.perf_counter()
            Image.fromarray(out).save(tmp / f"{rec.id}.png", format="PNG", compress_level=1)
            row = _metric_row(rec, ref, out, 8 * cut.stat().st_size, metrics)
            row["decode_s"] = round(t1 - t0, 6)
            rows.append(row)
        df = _write_metrics(rows, metrics_csv, tmp / "timings.csv")
    if reuse is not None:
        log.info("%s: %d of %d images decode like %s's", consumer, reused, len(rows), reuse[0])
    return df


def _decodes_like(cut, other_path: Path) -> bool:
    """Whether the cut stream at ``other_path`` (absent: no) gives the decoder what ``cut``
    gives it."""
    from discover.codec.bitstream import Container

    if not other_path.is_file():
        return False
    return cut.decodes_like(Container.from_bytes(other_path.read_bytes(), str(other_path)))


def _rate_value(rates: Sequence, rate: str, codec: str):
    for r in rates:
        if str(r) == str(rate):
            return r
    raise CodecError(f"codec {codec!r}: rate {rate!r} is not among its rates {list(rates)}")


# -- aggregation ----------------------------------------------------------------------------
def aggregate_rd(
    config: Mapping[str, Any],
    dataset: str,
    codec: str,
    shard_csvs: Mapping[str, Sequence[str | Path]],
    rd_csv: str | Path,
    per_image_csv: str | Path,
    fid_csv: str | Path | None = None,
    task_csvs: Sequence[str | Path] = (),
) -> pd.DataFrame:
    """One RD row per rate point: bpp = all bits / all pixels (the paper's definition); per-image
    metrics are means over images, FID/KID come from the row's ``fid_csv``. Per-image rows are
    kept alongside; task metrics (``<task>_<metric>``) come from the row's ``task_csvs``. A
    metric that is not computed (``config["metric_status"]``) stays empty and the reason is in
    the row's ``notes``."""
    entry = config["codecs"][codec]
    columns = metric_columns(config)
    status = config.get("metric_status") or {}
    distribution = pd.DataFrame()
    if fid_csv is not None:
        distribution = pd.read_csv(fid_csv, dtype={"rate": str}).set_index("rate")
    task_metrics = [pd.read_csv(p, dtype={"rate": str}).set_index("rate") for p in task_csvs]
    rows, per_image = [], []
    for rate in entry["rates"]:
        parts = [pd.read_csv(p, dtype={"id": str}) for p in shard_csvs[str(rate)]]
        df = pd.concat(parts, ignore_index=True)
        df.insert(0, "rate", str(rate))
        per_image.append(df)
        row = {
            "dataset": dataset,
            "codec": codec,
            "label": entry.get("label", codec),
            "rate": str(rate),
            "images": len(df),
            "bits": int(df["bits"].sum()),
            "pixels": int(df["pixels"].sum()),
        }
        row["bpp"] = row["bits"] / row["pixels"]
        row["bpp_mean_per_image"] = float(df["bpp"].mean())
        for m in columns:
            if m in status:
                row[m] = np.nan
            elif metric_info(m).kind == "distribution":
                row[m] = float(distribution.loc[str(rate), m])
            else:
                row[m] = float(df[m].replace([np.inf], np.nan).mean())
        for t in task_metrics:
            for column in t.columns:
                if column != "images":
                    row[column] = float(t.loc[str(rate), column])
        row["published"] = False
        row["source"] = "measured"
        row["notes"] = "; ".join(
            f"{metric_info(m).label} {status[m]}" for m in columns if m in status
        )
        rows.append(row)
    rd = pd.DataFrame(rows).sort_values("bpp", kind="stable").reset_index(drop=True)
    with atomic_path(rd_csv) as tmp:
        rd.to_csv(tmp, index=False, float_format="%.10g")
    with atomic_path(per_image_csv) as tmp:
        pd.concat(per_image, ignore_index=True).to_csv(tmp, index=False, float_format="%.10g")
    return rd


def import_published(
    config: Mapping[str, Any], dataset: str, codec: str, rd_csv: str | Path
) -> pd.DataFrame:
    """RD rows of a published curve for ``dataset``, in the layout of measured RD tables."""
    rd = get_codec(codec, config).points(dataset, config.get("metrics", []))
    with atomic_path(rd_csv) as tmp:
        rd.to_csv(tmp, index=False, float_format="%.10g")
    return rd


def combine_rd(rd_csvs: Sequence[str | Path], out_csv: str | Path) -> pd.DataFrame:
    df = pd.concat([pd.read_csv(p, dtype={"rate": str}) for p in rd_csvs], ignore_index=True)
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False, float_format="%.10g")
    return df


#: bd.csv's note for a row that has no value of a metric at all (not a failed BD).
NOT_EVALUATED = "not evaluated"


def bd_table(
    config: Mapping[str, Any], dataset: str, rd_csv: str | Path, out_csv: str | Path
) -> pd.DataFrame:
    """BD-rate and BD-metric of every codec against the configured anchor, per metric.

    Sign convention: BD-rate < 0 means fewer bits for the same quality; BD-metric is in the
    metric's own units at equal rate, so it is > 0 for a better PSNR/MS-SSIM and < 0 for a
    better LPIPS/DISTS/FID/KID (lower is better). A metric that is not computed gets its
    reason as the note."""
    from discover.bd import bd
    from discover.errors import MetricInputError

    rd = pd.read_csv(rd_csv, dtype={"rate": str})
    anchor = config.get("anchor") or next(iter(config["codecs"]))
    method = config.get("bd", {}).get("method", "pchip")
    min_points = config.get("bd", {}).get("min_points", 4)
    envelope = config.get("bd", {}).get("envelope", "pareto")
    min_front_points = config.get("bd", {}).get("min_front_points", 3)
    metrics = [m for m in config.get("metrics", []) if m in rd.columns]
    status = config.get("metric_status") or {}
    a = rd[rd.codec == anchor]
    rows = []
    for codec, t in rd.groupby("codec", sort=False):
        for m in metrics:
            row = {
                "dataset": dataset,
                "codec": codec,
                "label": t["label"].iloc[0],
                "published": bool(t["published"].iloc[0]) if "published" in t else False,
                "anchor": anchor,
                "metric": m,
                "bd_metric_name": f"BD-{metric_info(m).label}",
                "method": method,
            }
            if m in status:
                row.update(bd_rate_pct=float("nan"), bd_metric=float("nan"), note=status[m])
            elif codec == anchor:
                row.update(bd_rate_pct=0.0, bd_metric=0.0, note="anchor")
            elif t[m].isna().all():  # e.g. DISCOVER's detection stream has no segm AP
                row.update(
                    bd_rate_pct=float("nan"),
                    bd_metric=float("nan"),
                    note=f"{NOT_EVALUATED}: {codec} has no {m}",
                )
            else:
                try:
                    r = bd(
                        a["bpp"],
                        a[m],
                        t["bpp"],
                        t[m],
                        method=method,
                        anchor_name=f"{dataset}/{anchor}/{m}",
                        test_name=f"{dataset}/{codec}/{m}",
                        min_points=min_points,
                        higher_is_better=metric_info(m).higher_is_better,
                        envelope=envelope,
                        min_front_points=min_front_points,
                    )
                    row.update(bd_rate_pct=r.bd_rate, bd_metric=r.bd_metric, note=r.note)
                except MetricInputError as exc:
                    row.update(
                        bd_rate_pct=float("nan"),
                        bd_metric=float("nan"),
                        note=f"not computed: {exc}",
                    )
            rows.append(row)
    df = pd.DataFrame(rows)
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6f")
    return df


def perception_tables(
    config: Mapping[str, Any],
    dataset: str,
    rd_csv: str | Path,
    bd_csv: str | Path,
    table_csv: str | Path,
    table_md: str | Path,
) -> pd.DataFrame:
    """The paper's Table 2 for a dataset (BD-FID, BD-DISTS, ... of every row against the
    anchor) and the human-perception metrics at every rate point, as CSV and Markdown.

    A metric that is not computed shows its reason ("not computed: weight X missing, run
    `snakemake fetch_weights`") in its cells, never a blank or a made-up number."""
    status = config.get("metric_status") or {}
    human = [m for m in metric_columns(config) if metric_info(m).kind != "fidelity"]
    rd = pd.read_csv(rd_csv, dtype={"rate": str})
    bd = pd.read_csv(bd_csv)

    def cell(value: float, metric: str, digits: int) -> str:
        if metric in status:
            return status[metric]
        return "" if pd.isna(value) else f"{value:.{digits}f}"

    rows = []
    for codec, t in bd.groupby("codec", sort=False):
        row = {"row": codec, "label": t["label"].iloc[0]}
        for m in human:
            hit = t[t["metric"] == m]
            label = metric_info(m).label
            value = hit["bd_metric"].iloc[0] if len(hit) else float("nan")
            rate = hit["bd_rate_pct"].iloc[0] if len(hit) else float("nan")
            row[f"BD-{label}"] = cell(value, m, 4)
            row[f"BD-rate {label} (%)"] = cell(rate, m, 2)
        rows.append(row)
    table = pd.DataFrame(rows)
    with atomic_path(table_csv) as tmp:
        table.to_csv(tmp, index=False)
    # Markdown: a short marker per cell and each reason spelled out once under the table.
    notes = {m: f"not computed [{k + 1}]" for k, m in enumerate(sorted(set(status) & set(human)))}
    md_table = table.copy()
    for m in human:
        for column in (f"BD-{metric_info(m).label}", f"BD-rate {metric_info(m).label} (%)"):
            if m in notes and column in md_table:
                md_table[column] = notes[m]
    anchor = config.get("anchor", "")
    lines = [
        f"# Human perception on {dataset}",
        "",
        f"BD against the anchor `{anchor}` (BD-metric in the metric's units at equal rate; "
        "lower LPIPS/DISTS/FID/KID is better, so negative = better; BD-rate < 0 = fewer bits). "
        "An empty cell: the curve does not allow a BD value (see bd.csv's note).",
        "",
        _markdown(md_table),
        "",
        "## Metric vs bpp",
        "",
    ]
    per_rate = rd[["label", "rate", "bpp"]].copy()
    per_rate["bpp"] = per_rate["bpp"].map(lambda v: f"{v:.4f}")
    for m in human:
        values = rd[m] if m in rd else [float("nan")] * len(rd)
        per_rate[metric_info(m).label] = [notes.get(m) or cell(v, m, 4) for v in values]
    lines.append(_markdown(per_rate))
    if notes:
        lines += [
            "",
            *(f"[{n.split('[')[1]} {metric_info(m).label} {status[m]}" for m, n in notes.items()),
        ]
    write_text_atomic(table_md, "\n".join(lines) + "\n")
    return table


def _markdown(df: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join([header, rule, *body])


# -- machine-vision tasks ---------------------------------------------------------------------
def _coco_ids(reference_dir: str | Path) -> dict[str, int]:
    """Image id of the shard index -> its integer COCO image id (from the shard's annotations;
    without annotations, the image's position in the dataset)."""
    index = read_index(reference_dir)
    path = Path(reference_dir) / "annotations.json"
    if path.is_file():
        images = json.loads(path.read_text())["images"]
        by_stem = {Path(img["file_name"]).stem: int(img["id"]) for img in images}
        missing = [i for i in index["id"] if i not in by_stem]
        if missing:
            raise DatasetError(f"{path}: image {missing[0]} of the shard has no annotation entry")
        return {i: by_stem[i] for i in index["id"]}
    shard = int(Path(reference_dir).name.lstrip("s") or 0)
    return {i: shard * 1_000_000 + k for k, i in enumerate(index["id"])}


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
    from discover.tasks import get_task, save_predictions

    t = get_task(task, config, config.get("weights_cache"))
    ids = _coco_ids(reference_dir)
    categories = None
    ann = Path(reference_dir) / "annotations.json"
    if ann.is_file():
        categories = json.loads(ann.read_text())["categories"]

    def images(folder: Path):
        for stem, coco_id in ids.items():
            path = folder / f"{stem}.png"
            try:
                yield coco_id, np.asarray(Image.open(path).convert("RGB"))
            except OSError as exc:
                raise DatasetError(f"cannot read image {path}: {exc}") from exc

    out = {}
    with atomic_dir(out_dir) as tmp:
        for rate, folder in images_dirs.items():
            out[str(rate)] = t.predict(images(Path(folder)), categories=categories)
            save_predictions(Path(tmp) / f"{rate}.json", out[str(rate)])
    return out


def run_task_eval(
    config: Mapping[str, Any],
    task: str,
    reference_dirs: Sequence[str | Path],
    predictions: Mapping[str, Sequence[str | Path]],
    out_csv: str | Path,
) -> pd.DataFrame:
    """Task metrics of one table row at each rate point (``predictions``: rate -> the shards'
    prediction files), from the saved predictions and the shards' annotations/labels."""
    from discover.tasks import classification_accuracy, coco_evaluate, load_predictions
    from discover.tasks.registry import resolve, task_type

    cfg = dict((config.get("tasks") or {})[task])
    cls = resolve(task_type(task, cfg))
    gt = _merged_annotations(reference_dirs)
    ids = [i for d in reference_dirs for i in _coco_ids(d).values()]
    evaluator = str(cfg.get("evaluator", "pycocotools"))
    rows = []
    for rate, files in predictions.items():
        preds = [p for f in files for p in load_predictions(f)]
        # the task types' own evaluation, from saved predictions (no model needed)
        if hasattr(cls, "iou_types"):
            metrics: dict = {}
            for iou_type in cls.iou_types:
                metrics.update(
                    coco_evaluate(preds, gt, iou_type, evaluator=evaluator, image_ids=ids)
                )
        else:
            metrics = classification_accuracy(preds, gt, image_ids=ids)
        row = {"rate": str(rate), "images": len(ids)}
        row.update({f"{task}_{k}": v for k, v in metrics.items()})
        rows.append(row)
    df = pd.DataFrame(rows)
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False, float_format="%.10g")
    log.info("task %s (%s): %d rate points", task, cls.name, len(rows))
    return df


def _merged_annotations(reference_dirs: Sequence[str | Path]) -> dict:
    """The shards' COCO annotations as one document; without annotations, images with the
    index's class labels (classification)."""
    merged: dict[str, list] = {"images": [], "annotations": [], "categories": []}
    for d in reference_dirs:
        path = Path(d) / "annotations.json"
        if path.is_file():
            part = json.loads(path.read_text())
            merged["images"] += part["images"]
            merged["annotations"] += part["annotations"]
            merged["categories"] = part["categories"]
            continue
        index = read_index(d)
        for stem, coco_id in _coco_ids(d).items():
            label = index.loc[index["id"] == stem, "label"].iloc[0]
            merged["images"].append({"id": coco_id, "file_name": f"{stem}.png", "label": label})
    return merged


def task_tables(
    config: Mapping[str, Any],
    dataset: str,
    bd_csv: str | Path,
    reference_csvs: Mapping[str, str | Path],
    table_csv: str | Path,
    table_md: str | Path,
) -> pd.DataFrame:
    """The paper-style machine-task table of a dataset: rows codecs, columns tasks: BD-rate (%)
    of each task's main metric against the anchor, and the uncompressed images' score."""
    bd = pd.read_csv(bd_csv)
    tasks = config.get("tasks") or {}
    main = {t: main_task_metric(t, tasks[t]) for t in reference_csvs}
    rows = []
    reference = {"row": "uncompressed", "label": "uncompressed (reference images)"}
    for t, path in reference_csvs.items():
        ref = pd.read_csv(path)
        reference[f"{main[t]}"] = float(ref[main[t]].iloc[0])
        reference[f"BD-rate {main[t]} (%)"] = ""
    reasons: dict[str, int] = {}  # why a BD-rate is missing -> its footnote number
    md_rows = []
    roles = config.get("ablation_roles") or {}
    if roles:
        reference["ablation"] = ""
    for codec, g in bd.groupby("codec", sort=False):
        row = {"row": codec, "label": g["label"].iloc[0]}
        if roles:
            row["ablation"] = roles.get(codec) or ""
        md_row = dict(row)
        for column in main.values():
            hit = g[g["metric"] == column]
            row[column] = md_row[column] = ""
            value = hit["bd_rate_pct"].iloc[0] if len(hit) else float("nan")
            key = f"BD-rate {column} (%)"
            row[key] = md_row[key] = "" if pd.isna(value) else f"{value:.2f}"
            note = hit["note"].iloc[0] if len(hit) else None
            if pd.isna(value) and isinstance(note, str) and note.startswith(NOT_EVALUATED):
                md_row[key] = "—"
            elif pd.isna(value) and isinstance(note, str):
                reason = note
                number = reasons.setdefault(reason, len(reasons) + 1)
                md_row[key] = f"not computed [{number}]"
        rows.append(row)
        md_rows.append(md_row)
    table = pd.DataFrame([reference, *rows])
    with atomic_path(table_csv) as tmp:
        table.to_csv(tmp, index=False)
    envelope = (config.get("bd") or {}).get("envelope", "pareto")
    lines = [
        f"# Machine tasks on {dataset}",
        "",
        f"BD-rate (%) of each task's main metric against the anchor `{config.get('anchor')}` "
        "(negative = fewer bits for the same task accuracy); the first row is the task models' "
        "score on the uncompressed images. DISCOVER rows are its task stream "
        "(`codec@task`) and its full stream (`codec@human`); the ablation column names the "
        "paper's Fig. 8 variants (w/o composition: the VAE decodes ẑ_c; w/o disentanglement: "
        "the full stream goes to the machine). "
        + (
            "Each curve is reduced to its Pareto front first (points whose accuracy is not above "
            "a cheaper point of the same codec are dropped, listed in bd.csv's note)."
            if envelope == "pareto"
            else "Curves that are not strictly monotone get no BD-rate (bd.envelope: none)."
        ),
        "",
        _markdown(pd.DataFrame([reference, *md_rows]).fillna("")),
    ]
    if reasons:
        lines += ["", *(f"[{n}] {reason}" for reason, n in reasons.items())]
    write_text_atomic(table_md, "\n".join(lines) + "\n")
    return table


def main_task_metric(task: str, task_cfg: Mapping[str, Any]) -> str:
    """The rd.csv column of a task's headline metric (bbox AP, segm AP, top-1)."""
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
    from discover.plots import rd_plot

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


def run_visual_grid(
    dataset: str,
    rows: Mapping[str, Mapping[str, tuple[str | Path, str | Path]]],
    reference_dir: str | Path,
    rd_csv: str | Path,
    out_png: str | Path,
    image: str | None = None,
    bpp: float | None = None,
) -> dict[str, Any]:
    """Paper Fig. 7: the original and every row's reconstruction of one image at the rate whose
    bpp (of that image) is closest to ``bpp`` — by default DISCOVER's full stream at its middle
    rate point. ``rows``: row -> rate -> (per-image metrics CSV, folder of decoded PNGs)."""
    from discover.plots import visual_grid

    index = read_index(reference_dir)
    image = image or str(index["id"].iloc[0])
    if image not in set(index["id"].astype(str)):
        raise DiscoverError(f"visual grid of {dataset}: image {image!r} is not in {reference_dir}")
    points: dict[str, list[tuple[float, str, Path]]] = {}
    for row, rates in rows.items():
        for rate, (metrics_csv, decoded) in rates.items():
            per_image = pd.read_csv(metrics_csv, dtype={"id": str}).set_index("id")
            value = float(per_image.loc[image, "bpp"])
            points.setdefault(row, []).append((value, rate, Path(decoded) / f"{image}.png"))
    if bpp is None:
        human = [r for r in points if r.endswith("@human")]
        pool = sorted(points[human[0]]) if human else sorted(p for v in points.values() for p in v)
        bpp = pool[len(pool) // 2][0]
    labels = {}
    if Path(rd_csv).is_file():
        rd = pd.read_csv(rd_csv)
        if "label" in rd:
            labels = dict(zip(rd["codec"], rd["label"], strict=False))
    panels = [("original", np.asarray(Image.open(Path(reference_dir) / f"{image}.png")), None)]
    chosen = {}
    for row, candidates in points.items():
        value, rate, png = min(candidates, key=lambda p: (abs(p[0] - bpp), p[0]))
        label = f"{labels.get(row, row)}\n(rate {rate})"
        panels.append((label, np.asarray(Image.open(png)), value))
        chosen[row] = {"rate": rate, "bpp": value}
    visual_grid(panels, out_png, f"{dataset}: image {image}, target {bpp:.3f} bpp")
    return {"image": image, "bpp": bpp, "rows": chosen}


def training_loss_plot(
    model: str,
    prior_csv: str | Path | None,
    rate_csvs: Mapping[str, str | Path],
    png: str | Path,
    pdf: str | Path,
) -> None:
    """The loss log of a composition model as a figure for the report (the CSVs the train
    rules write next to the weights)."""
    from discover.plots import training_loss_plot as plot

    def read(path, columns):
        df = pd.read_csv(path)
        missing = [c for c in columns if c not in df]
        if missing or df.empty:
            raise DiscoverError(f"{path}: not a loss log (no rows or no columns {missing})")
        return df

    prior = read(prior_csv, ["step", "loss"]) if prior_csv else None
    columns = ["step", "stage", "loss", "diffusion", "latent_mse"]
    rates = {str(rate): read(path, columns) for rate, path in rate_csvs.items()}
    plot(prior, rates, png, pdf, title=f"{model}: training losses")
