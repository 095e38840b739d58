"""Stages of rules/tables.smk: rate-distortion rows, BD tables, the visual grid."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from discover.bd import bd
from discover.codecs import get_codec
from discover.errors import DatasetError, DiscoverError, MetricInputError
from discover.images import read_rgb
from discover.io import atomic_path
from discover.metrics.catalog import metric_columns, metric_info
from discover.plots import visual_grid
from discover.shards import (
    image_path,
    read_image,
    read_index,
)
from discover.stages.common import NOT_EVALUATED

log = logging.getLogger("discover")


def aggregate_rd(
    config: Mapping[str, Any],
    dataset: str,
    codec: str,
    entry: Mapping[str, Any],
    shard_csvs: Mapping[str, Sequence[str | Path]],
    rd_csv: str | Path,
    per_image_csv: str | Path,
    fid_csv: str | Path | None = None,
    task_csvs: Sequence[str | Path] = (),
    metric_status: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """One RD row per rate point: bpp = all bits / all pixels (the paper's definition); per-image
    metrics are means over images, FID/KID come from the row's ``fid_csv``. Per-image rows are
    kept alongside; task metrics (``<task>_<metric>``) come from the row's ``task_csvs``. A
    metric that is not computed (``metric_status``: metric -> why) stays empty and the reason is
    in the row's ``notes``. ``entry``: the row's rates and label (:meth:`Plan.row_entry`)."""
    columns = metric_columns(config)
    status = metric_status or {}
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


def bd_table(
    rd_csv: str | Path,
    out_csv: str | Path,
    *,
    dataset: str,
    anchor: str,
    metrics: Sequence[str],
    bd_settings: Mapping[str, Any],
    metric_status: Mapping[str, str],
) -> pd.DataFrame:
    """BD-rate and BD-metric of every codec against ``anchor``, per metric of ``metrics``
    present in the rd table; ``bd_settings``: the config's ``bd`` section (schema defaults
    filled in); ``metric_status``: metric -> why it is not computed.

    Sign convention: BD-rate < 0 means fewer bits for the same quality; BD-metric is in the
    metric's own units at equal rate, so it is > 0 for a better PSNR/MS-SSIM and < 0 for a
    better LPIPS/DISTS/FID/KID (lower is better). A metric that is not computed gets its
    reason as the note."""
    rd = pd.read_csv(rd_csv, dtype={"rate": str})
    method = bd_settings["method"]
    min_points = bd_settings["min_points"]
    envelope = bd_settings["envelope"]
    min_front_points = bd_settings["min_front_points"]
    metrics = [m for m in metrics if m in rd.columns]
    status = metric_status
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

    index = read_index(reference_dir)
    image = image or str(index["id"].iloc[0])
    if image not in set(index["id"].astype(str)):
        raise DiscoverError(f"visual grid of {dataset}: image {image!r} is not in {reference_dir}")
    points: dict[str, list[tuple[float, str, Path]]] = {}
    for row, rates in rows.items():
        for rate, (metrics_csv, decoded) in rates.items():
            per_image = pd.read_csv(metrics_csv, dtype={"id": str}).set_index("id")
            value = float(per_image.loc[image, "bpp"])
            points.setdefault(row, []).append((value, rate, image_path(decoded, image)))
    if bpp is None:
        human = [r for r in points if r.endswith("@human")]
        pool = sorted(points[human[0]]) if human else sorted(p for v in points.values() for p in v)
        bpp = pool[len(pool) // 2][0]
    labels = {}
    if Path(rd_csv).is_file():
        rd = pd.read_csv(rd_csv)
        if "label" in rd:
            labels = dict(zip(rd["codec"], rd["label"], strict=False))
    panels = [("original", read_image(reference_dir, image), None)]
    chosen = {}
    for row, candidates in points.items():
        value, rate, png = min(candidates, key=lambda p: (abs(p[0] - bpp), p[0]))
        label = f"{labels.get(row, row)}\n(rate {rate})"
        panels.append((label, read_rgb(png, error=DatasetError), value))
        chosen[row] = {"rate": rate, "bpp": value}
    visual_grid(panels, out_png, f"{dataset}: image {image}, target {bpp:.3f} bpp")
    return {"image": image, "bpp": bpp, "rows": chosen}
