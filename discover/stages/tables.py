"""Stages of rules/tables.smk: rate-distortion rows, BD tables, the visual grid (paper Fig. 7)
and the composition's latents (paper Fig. 4)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from discover.bd import bd, bd_bootstrap
from discover.codecs import get_codec
from discover.discover_codec.consumers import HUMAN
from discover.errors import DatasetError, DiscoverError, MetricInputError
from discover.images import read_rgb
from discover.io import atomic_path
from discover.metrics.catalog import metric_columns, metric_info
from discover.plots import Panel, draw_boxes, latent_figure, latent_rgb, visual_grid
from discover.resampling import resample_counts
from discover.shards import (
    image_path,
    read_image,
    read_index,
)
from discover.stages.bootstrap import Resampler, read_row_samples, reference_feature_sets
from discover.stages.common import NOT_EVALUATED, rate_value, row_flags, sample_column

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
    flags: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """One RD row per rate point: bpp = all bits / all pixels (the paper's definition); per-image
    metrics are means over images, FID/KID come from the row's ``fid_csv``. Per-image rows are
    kept alongside; task metrics (``<task>_<metric>``) come from the row's ``task_csvs``. A
    metric that is not computed (``metric_status``: metric -> why) stays empty; why is said once
    per dataset, in the tables' notes (not on every row).

    Every metric has its sample count next to it (``n_<metric>``: the images a mean is over,
    the FID/KID samples, the annotated objects of an AP's area range), and a value that cannot
    hold is named in ``flags`` (``metric: reason; ...``), with the thresholds of ``flags``
    (the config's ``bd.flags``): FID/KID on fewer samples than ``fid_samples_per_dim`` x the
    feature dimension, a KID below ``-kid_negative_se`` standard errors, an AP on fewer than
    ``min_objects`` objects."""
    columns = metric_columns(config)
    status = metric_status or {}
    flags = dict(flags or {})
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
        counts: dict[str, float] = {}
        flagged: dict[str, str] = {}
        for m in columns:
            if m in status:
                row[m] = np.nan
            elif metric_info(m).kind == "distribution":
                point = distribution.loc[str(rate)]
                row[m] = float(point[m])
                counts[m], reason = _distribution_flag(m, point, flags)
                if reason:
                    flagged[m] = reason
            else:
                values = df[m].replace([np.inf, -np.inf], np.nan)
                row[m] = float(values.mean())
                counts[m] = int(values.notna().sum())
        for t in task_metrics:
            point = t.loc[str(rate)]
            for column in t.columns:
                if column == "images" or column.startswith("n_"):
                    continue
                row[column] = float(point[column])
                n = point.get(sample_column(column), point.get("images"))
                counts[column] = float(n)
                objects = sample_column(column) in t.columns and "_AP" in column
                if objects and n < int(flags.get("min_objects", 0)):
                    flagged[column] = (
                        f"AP on {int(n)} annotated objects (bd.flags.min_objects "
                        f"{int(flags['min_objects'])})"
                    )
        for m, n in counts.items():
            row[sample_column(m)] = n
        row["flags"] = "; ".join(f"{m}: {why}" for m, why in flagged.items())
        row["published"] = False
        row["source"] = "measured"
        rows.append(row)
    rd = pd.DataFrame(rows).sort_values("bpp", kind="stable").reset_index(drop=True)
    with atomic_path(rd_csv) as tmp:
        rd.to_csv(tmp, index=False, float_format="%.10g")
    with atomic_path(per_image_csv) as tmp:
        pd.concat(per_image, ignore_index=True).to_csv(tmp, index=False, float_format="%.10g")
    return rd


def _distribution_flag(metric: str, point: pd.Series, flags: Mapping[str, Any]):
    """(samples, why the FID/KID value cannot hold or '') of one rate point of a fid CSV."""
    suffix = metric[3:]  # fid_demo -> _demo
    samples = float(point.get(f"fid_samples{suffix}", np.nan))
    dim = float(point.get(f"fid_dim{suffix}", np.nan))
    per_dim = float(flags.get("fid_samples_per_dim", 0))
    reasons = []
    if np.isfinite(dim) and samples < per_dim * dim:
        reasons.append(
            f"{int(samples)} samples for {int(dim)}-d features (bd.flags.fid_samples_per_dim "
            f"{per_dim:g})"
        )
    se = float(point.get(f"kid_se{suffix}", np.nan))
    k = float(flags.get("kid_negative_se", 0))
    if metric.startswith("kid") and k > 0 and np.isfinite(se) and point[metric] < -k * se:
        reasons.append(
            f"KID {point[metric]:.3g} is {-point[metric] / se:.1f} standard errors "
            f"({se:.2g}) below zero (bd.flags.kid_negative_se {k:g})"
        )
    return samples, " and ".join(reasons)


def import_published(
    config: Mapping[str, Any], dataset: str, codec: str, rd_csv: str | Path
) -> pd.DataFrame:
    """RD rows of a published curve for ``dataset``, in the layout of measured RD tables."""
    rd = get_codec(codec, config).points(dataset, config.get("metrics", []))
    with atomic_path(rd_csv) as tmp:
        rd.to_csv(tmp, index=False, float_format="%.10g")
    return rd


def combine_rd(
    rd_csvs: Sequence[str | Path],
    out_csv: str | Path,
    notes_csv: str | Path | None = None,
    metric_status: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The dataset's RD table from its rows' tables; ``notes_csv``: why metrics are not
    computed (``metric_status``), one line per cause with the metrics it leaves empty."""
    df = pd.concat([pd.read_csv(p, dtype={"rate": str}) for p in rd_csvs], ignore_index=True)
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False, float_format="%.10g")
    if notes_csv is not None:
        causes: dict[str, list[str]] = {}
        for metric, why in (metric_status or {}).items():
            causes.setdefault(why, []).append(metric)
        notes = pd.DataFrame(
            [{"metrics": " ".join(ms), "note": why} for why, ms in causes.items()],
            columns=["metrics", "note"],
        )
        with atomic_path(notes_csv) as tmp:
            notes.to_csv(tmp, index=False)
    return df


def plot_warning(rd: pd.DataFrame, metric: str) -> str:
    """What an RD plot of ``metric`` must warn of: the flags of its points (rd.csv ``flags``),
    each reason once (the first two, then how many more points are flagged), '' when none."""
    reasons = curve_flags(rd, metric)
    if len(reasons) <= 2:
        return "; ".join(reasons)
    return "; ".join(reasons[:2]) + f"; and {len(reasons) - 2} more (rd.csv flags)"


def curve_flags(curve: pd.DataFrame, metric: str) -> list[str]:
    """The flags of ``metric`` on a curve's points, each reason once, in point order."""
    reasons = (row_flags(point).get(metric) for point in curve.to_dict("records"))
    return list(dict.fromkeys(r for r in reasons if r))


def bd_table(
    rd_csv: str | Path,
    out_csv: str | Path,
    *,
    dataset: str,
    anchor: str,
    metrics: Sequence[str],
    bd_settings: Mapping[str, Any],
    metric_status: Mapping[str, str],
    samples: Mapping[str, Mapping[str, Any]] | None = None,
    reference_features: Mapping[str, str | Path] | None = None,
) -> pd.DataFrame:
    """BD-rate and BD-metric of every codec against ``anchor``, per metric of ``metrics``
    present in the rd table; ``bd_settings``: the config's ``bd`` section (schema defaults
    filled in); ``metric_status``: metric -> why it is not computed.

    Sign convention: BD-rate < 0 means fewer bits for the same quality; BD-metric is in the
    metric's own units at equal rate, so it is > 0 for a better PSNR/MS-SSIM and < 0 for a
    better LPIPS/DISTS/FID/KID (lower is better). A metric that is not computed gets its
    reason as the note.

    Every cell carries its sample count (``samples``: the fewest images, patches or objects
    behind a point of either curve), the curves' overlaps, and, with ``bd.bootstrap``
    resamples and the rows' per-sample files (``samples``: row -> {per_image, tasks,
    features}; ``reference_features``: feature set -> the reference's .npy), a percentile
    interval (:mod:`discover.stages.bootstrap`). ``flag_bd_rate`` / ``flag_bd_metric`` say
    why a value cannot hold (overlap below ``bd.flags.min_overlap``, a curve point flagged in
    rd.csv); such a value stays in the CSV."""
    rd = pd.read_csv(rd_csv, dtype={"rate": str})
    method = bd_settings["method"]
    min_points = bd_settings["min_points"]
    envelope = bd_settings["envelope"]
    min_front_points = bd_settings["min_front_points"]
    boot = dict(bd_settings.get("bootstrap") or {})
    flags_cfg = dict(bd_settings.get("flags") or {})
    min_overlap = float(flags_cfg.get("min_overlap", 0.75))
    metrics = [m for m in metrics if m in rd.columns]
    status = metric_status
    a = rd[rd.codec == anchor]
    resampler, row_samples = _bootstrap_samples(samples, reference_features, boot)
    level = float(boot.get("level", 0.95))
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
                "samples": _fewest_samples(a, t, m),
            }
            if m in status:
                row.update(bd_rate_pct=float("nan"), bd_metric=float("nan"), note=status[m])
            elif a[m].isna().all():  # the anchor has no such value: nothing to compare with
                row.update(
                    bd_rate_pct=float("nan"),
                    bd_metric=float("nan"),
                    note=f"{NOT_EVALUATED}: the anchor {anchor} has no {m}",
                )
            elif codec == anchor:
                row.update(bd_rate_pct=0.0, bd_metric=0.0, note="anchor")
            elif t[m].isna().all():  # e.g. DISCOVER's detection stream has no segm AP
                row.update(
                    bd_rate_pct=float("nan"),
                    bd_metric=float("nan"),
                    note=f"{NOT_EVALUATED}: {codec} has no {m}",
                )
            else:
                kw = {
                    "method": method,
                    "anchor_name": f"{dataset}/{anchor}/{m}",
                    "test_name": f"{dataset}/{codec}/{m}",
                    "min_points": min_points,
                    "higher_is_better": metric_info(m).higher_is_better,
                    "envelope": envelope,
                    "min_front_points": min_front_points,
                }
                try:
                    r = bd(a["bpp"], a[m], t["bpp"], t[m], **kw)
                except MetricInputError as exc:
                    row.update(
                        bd_rate_pct=float("nan"),
                        bd_metric=float("nan"),
                        note=f"not computed: {exc}",
                    )
                else:
                    row.update(
                        bd_rate_pct=r.bd_rate,
                        bd_metric=r.bd_metric,
                        note=r.note,
                        overlap_quality=r.overlap_quality,
                        overlap_rate=r.overlap_rate,
                    )
                    row.update(_bd_flags(r, a, t, m, min_overlap))
                    if resampler is not None:
                        row.update(_interval(resampler, row_samples, anchor, codec, m, level, kw))
            rows.append(row)
    df = pd.DataFrame(rows)
    # every table has the same columns, the extra ones last (empty where nothing applies)
    df = df.reindex(
        columns=[*(c for c in df.columns if c not in BD_EXTRA_COLUMNS), *BD_EXTRA_COLUMNS]
    )
    with atomic_path(out_csv) as tmp:
        # 10 significant digits: BD-KID is of the order of 1e-5
        df.to_csv(tmp, index=False, float_format="%.10g")
    return df


#: bd.csv's columns after the BD values and the note
BD_EXTRA_COLUMNS = (
    "samples",
    "overlap_quality",
    "overlap_rate",
    "flag_bd_rate",
    "flag_bd_metric",
    "level",
    "bd_rate_lo",
    "bd_rate_hi",
    "bd_metric_lo",
    "bd_metric_hi",
    "resamples",
    "resamples_failed",
    "interval_note",
)


def _fewest_samples(a: pd.DataFrame, t: pd.DataFrame, metric: str) -> float:
    column = sample_column(metric)
    values = [df[column] for df in (a, t) if column in df]
    if not values:
        return float("nan")
    both = pd.concat(values).dropna()
    return float(both.min()) if len(both) else float("nan")


def _bd_flags(r, a: pd.DataFrame, t: pd.DataFrame, metric: str, min_overlap: float) -> dict:
    """Why the BD-rate / BD-metric of a cell cannot hold ('' where it can)."""
    common = list(dict.fromkeys([*curve_flags(a, metric), *curve_flags(t, metric)]))
    rate, quality = list(common), list(common)
    if r.overlap_quality < min_overlap:
        rate.insert(
            0,
            f"the curves overlap on {r.overlap_quality:.0%} of their quality range "
            f"(bd.flags.min_overlap {min_overlap:.0%})",
        )
    if r.overlap_rate < min_overlap:
        quality.insert(
            0,
            f"the curves overlap on {r.overlap_rate:.0%} of their log-rate range "
            f"(bd.flags.min_overlap {min_overlap:.0%})",
        )
    return {"flag_bd_rate": "; ".join(rate), "flag_bd_metric": "; ".join(quality)}


def _bootstrap_samples(samples, reference_features, boot):
    """(Resampler, row -> RowSamples) of the bootstrap, or (None, {}) when it is off."""
    if not samples or int(boot.get("resamples", 0)) <= 0:
        return None, {}
    first = next(iter(samples.values()))
    ids = pd.read_csv(first["per_image"], dtype={"id": str}, usecols=["id"])["id"]
    images = sorted(dict.fromkeys(ids))
    rows = {
        row: read_row_samples(
            row, images, spec["per_image"], spec.get("tasks"), spec.get("features")
        )
        for row, spec in samples.items()
    }
    counts = resample_counts(len(images), int(boot["resamples"]), int(boot.get("seed", 0)))
    reference = reference_feature_sets(reference_features or {}, samples, images)
    resampler = Resampler(
        counts, reference, boot.get("distribution_resamples"), rows=list(rows.values())
    )
    return resampler, rows


def _interval(resampler, rows, anchor, codec, metric, level, bd_kwargs) -> dict:
    if anchor not in rows or codec not in rows:
        missing = anchor if anchor not in rows else codec
        return {"interval_note": f"no per-sample values of {missing} (published curve)"}
    a, t = rows[anchor], rows[codec]
    try:
        curves = [(resampler.bpp(s, metric), resampler.curve(s, metric)) for s in (a, t)]
    except MetricInputError as exc:
        return {"interval_note": str(exc)}
    i = bd_bootstrap(*curves[0], *curves[1], level=level, **bd_kwargs)
    out = {
        "level": level,
        "bd_rate_lo": i.bd_rate_lo,
        "bd_rate_hi": i.bd_rate_hi,
        "bd_metric_lo": i.bd_metric_lo,
        "bd_metric_hi": i.bd_metric_hi,
        "resamples": i.resamples,
        "resamples_failed": i.failed,
    }
    notes = []
    if i.failed:
        notes.append(f"{i.failed} of {i.resamples + i.failed} resamples gave no BD value")
    if i.metric_failed:
        notes.append(
            f"{i.metric_failed} of {i.resamples} resamples gave BD-rate but no BD-metric (no "
            "overlap in rate)"
        )
    if notes:
        out["interval_note"] = "; ".join(notes) + " (left out of the interval)"
    return out


#: the grid's title of a DISCOVER stream (paper Fig. 7: "Ours (Detection)", "Ours (Full)")
FULL_STREAM = "Full"


def task_title(task: str) -> str:
    """A task as the paper's Fig. 7 names it: ``detection`` -> "Detection"."""
    return task.replace("_", " ").strip().title()


def run_visual_grid(
    dataset: str,
    rows: Mapping[str, Mapping[str, tuple[str | Path, str | Path]]],
    reference_dir: str | Path,
    rd_csv: str | Path,
    out_png: str | Path,
    image: str | None = None,
    bpp: float | None = None,
    grounding: Mapping[str, str | Path] | None = None,
) -> dict[str, Any]:
    """Like the paper's Fig. 7: the original and every row's reconstruction of one image at the
    rate whose bpp (of that image) is closest to ``bpp`` — by default DISCOVER's full stream at
    its middle rate point — then, per task of ``grounding`` (task -> the shard's grounding
    file), the boxes the grounding model found drawn on the original ("Ground Truth
    (Detection)").

    ``rows``: row -> rate -> (per-image metrics CSV, folder of decoded PNGs), in the order the
    panels take. A DISCOVER task stream (``codec@task``: "Ours (Detection)", the image a human
    sees when only the task's part of the bitstream is sent) is shown at the rate point chosen
    for the codec's full stream ("Ours (Full)"), so the two are cut from the same bitstream.

    Returns the image, the target bpp, each row's rate and bpp, the panels (title, caption,
    kind, row, task, rate, bpp and the image drawn) and the figure's layout
    (:func:`discover.plots.image_grid`)."""

    index = read_index(reference_dir)
    image = image or str(index["id"].iloc[0])
    if image not in set(index["id"].astype(str)):
        raise DiscoverError(f"visual grid of {dataset}: image {image!r} is not in {reference_dir}")
    points: dict[str, list[tuple[float, str, Path]]] = {}
    for row, rates in rows.items():
        for rate, (metrics_csv, decoded) in rates.items():
            per_image = pd.read_csv(metrics_csv, dtype={"id": str}).set_index("id")
            if image not in per_image.index:
                raise DiscoverError(
                    f"visual grid of {dataset}: {metrics_csv} has no image {image!r}"
                )
            value = float(per_image.loc[image, "bpp"])
            points.setdefault(row, []).append((value, str(rate), image_path(decoded, image)))
    if bpp is None:
        human = [r for r in points if r.endswith(f"@{HUMAN}")]
        pool = sorted(points[human[0]]) if human else sorted(p for v in points.values() for p in v)
        bpp = pool[len(pool) // 2][0]
    labels = {}
    if Path(rd_csv).is_file():
        rd = pd.read_csv(rd_csv)
        if "label" in rd:
            labels = dict(zip(rd["codec"], rd["label"], strict=False))

    def closest(row: str) -> tuple[float, str, Path]:
        return min(points[row], key=lambda p: (abs(p[0] - bpp), p[0]))

    picked = {}
    for row in points:  # full streams and other codecs first: task streams follow their codec
        if row.partition("@")[2] in ("", HUMAN):
            picked[row] = closest(row)
    for row in points:
        codec, _, consumer = row.partition("@")
        if row in picked:
            continue
        full = picked.get(f"{codec}@{HUMAN}")
        same = [p for p in points[row] if full is not None and p[1] == full[1]]
        picked[row] = same[0] if same else closest(row)

    ref = read_image(reference_dir, image)
    h, w = ref.shape[:2]
    panels = [
        {
            "kind": "original",
            "title": "Original",
            "caption": f"{image} ({w}x{h} px)",
            "image": ref,
        }
    ]
    chosen = {}
    for row in points:
        value, rate, png = picked[row]
        codec, _, consumer = row.partition("@")
        label = str(labels.get(row, codec))
        if consumer:
            label = label.removesuffix(f" [{consumer}]")
            stream = FULL_STREAM if consumer == HUMAN else task_title(consumer)
            title = f"Ours ({stream})\n{label}, λ_R = {rate}"
        else:
            title = f"{label}\nrate {rate}"
        panels.append(
            {
                "kind": "decoded",
                "row": row,
                "task": None if consumer in ("", HUMAN) else consumer,
                "rate": rate,
                "bpp": value,
                "title": title,
                "caption": f"{value:.3f} bpp",
                "image": read_rgb(png, error=DatasetError),
            }
        )
        chosen[row] = {"rate": rate, "bpp": value}
    for task, path in (grounding or {}).items():
        # the grounding package imports its backends (PyTorch): loaded where a grid has boxes
        from discover.grounding.shard import grounded_boxes

        boxes = grounded_boxes([path])
        if image not in boxes:
            raise DiscoverError(
                f"visual grid of {dataset}: grounding file {path} has no image {image!r}"
            )
        found = boxes[image]
        panels.append(
            {
                "kind": "grounding",
                "task": task,
                "boxes": found,
                "title": f"Ground Truth ({task_title(task)})",
                "caption": f"{len(found)} grounded box{'es' if len(found) != 1 else ''}",
                "image": draw_boxes(ref, found),
            }
        )
    layout = visual_grid(
        [Panel(p["title"], p["image"], p["caption"]) for p in panels],
        out_png,
        f"{dataset}: image {image}, target {bpp:.3f} bpp",
    )
    return {"image": image, "bpp": bpp, "rows": chosen, "panels": panels, "layout": layout}


def run_latent_figure(
    config: Mapping[str, Any],
    codec: str,
    rate: str,
    consumer: str,
    reference_dir: str | Path,
    decoded_dir: str | Path,
    out_png: str | Path,
    image: str | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Paper Fig. 4, the intermediate steps of the composition for one image: its target latent
    z_c = E(x), the latent ẑ_c the codec decodes from what ``consumer`` receives (a task's
    part ỹ_i of ŷ and the side information ẑ; the paper shows a task stream), and the latent
    z_0 the diffusion prior composes from it, with the human viewer's steps; under each latent
    its decode by the VAE decoder D: D(z_c), D(ẑ_c) ("w/o composition") and x̂ = D(z_0).

    The stream is the consumer's cut in ``decoded_dir`` (the human view of the row
    ``codec@consumer`` at ``rate``), so x̂ is the image the pipeline decoded there; whether it
    is, is logged and returned (``matches_decoded``). Returns the image, the panels (title,
    caption, image) and the figure's layout, with the latents' mean squared distances to z_c
    and the decodes' PSNR against the original."""
    # PyTorch, diffusers and the DISCOVER model: the figure's job only (tables stay light)
    import torch

    # the DISCOVER model's and the composition's modules, which import PyTorch and diffusers
    from discover.composition.pipeline import compose_latent
    from discover.discover_codec.bitstream import Container
    from discover.discover_codec.geometry import LATENT_STRIDE
    from discover.discover_codec.vae import decode_latent
    from discover.images import tensor_to_image
    from discover.metrics.fidelity import psnr

    c = get_codec(codec, config, threads=threads)
    settings = getattr(c, "composition", None)
    if settings is None:
        raise DiscoverError(
            f"latent figure: codec {codec!r} decodes without composition (config key "
            f"codecs.{codec}.composition), so there is no z_0 to show"
        )
    value = rate_value(config["codecs"][codec]["rates"], rate, codec)
    index = read_index(reference_dir)
    image = image or str(index["id"].iloc[0])
    if image not in set(index["id"].astype(str)):
        raise DiscoverError(f"latent figure: image {image!r} is not in {reference_dir}")
    stream = Path(decoded_dir) / f"{image}.dsc"
    decoded_png = image_path(decoded_dir, image)
    if not stream.is_file():
        raise DiscoverError(
            f"latent figure: {stream} (the {consumer} stream of {image}) is missing"
        )
    x = read_image(reference_dir, image)
    h, w = x.shape[:2]
    container = Container.from_bytes(stream.read_bytes(), str(stream))
    model, composer = c.model(value), c.composer(value)
    z_c = model.target_latent(x)
    z_hat = model.decode_latent(container, consumer, str(stream))
    z_0 = compose_latent(composer, z_hat, settings, HUMAN)
    x_hat = tensor_to_image(composer.decode(z_0), h, w)
    with torch.inference_mode():
        d_zc = tensor_to_image(decode_latent(model.vae, z_c), h, w)
        d_zhat = tensor_to_image(decode_latent(model.vae, z_hat), h, w)
    decoded = read_rgb(decoded_png, error=DatasetError)
    matches = bool(np.array_equal(decoded, x_hat))
    if not matches:
        log.warning("latent figure: x̂ differs from the pipeline's decode %s", decoded_png)

    # the latents over the image (the codec pads it), first three of their channels
    lh, lw = -(-h // 8), -(-w // 8)
    latents = [z.detach().float().cpu().numpy()[0, :, :lh, :lw] for z in (z_c, z_hat, z_0)]
    shown = latent_rgb(latents)
    distance = {
        name: float(np.mean((z - latents[0]) ** 2))
        for name, z in zip(("z_c_hat", "z_0"), latents[1:], strict=True)
    }
    # the ŷ positions the consumer receives, on the original (the rest dimmed)
    received = np.zeros(container.grid, dtype=bool)
    for part in container.for_consumer(consumer).parts:
        received |= np.asarray(part.mask, dtype=bool)
    if consumer == HUMAN:
        received[:] = True
    pixels = np.kron(received, np.ones((LATENT_STRIDE, LATENT_STRIDE), dtype=bool))[:h, :w]
    dimmed = np.where(pixels[..., None], x, (x * 0.3).astype(np.uint8))
    bits = 8 * stream.stat().st_size
    stream_name = "the full stream" if consumer == HUMAN else f"the {consumer} stream"
    scores = {
        name: psnr(x, img) for name, img in (("D(z_c)", d_zc), ("D(ẑ_c)", d_zhat), ("x̂", x_hat))
    }
    panels = [
        Panel("original $x$", x, f"{image} ({w}x{h} px)"),
        Panel("$z_c = \\mathcal{E}(x)$", shown[0], "target latent", nearest=True),
        Panel(
            "$\\hat{z}_c$ from $\\tilde{y}_i$ and $\\hat{z}$",
            shown[1],
            f"MSE to $z_c$ {distance['z_c_hat']:.4f}",
            nearest=True,
        ),
        Panel(
            f"$z_0$ (composed, {settings.steps_for(HUMAN)} steps)",
            shown[2],
            f"MSE to $z_c$ {distance['z_0']:.4f}",
            nearest=True,
        ),
        Panel(
            f"$\\tilde{{y}}_i$: {stream_name}",
            dimmed,
            f"{received.mean():.0%} of ŷ received, {bits / (h * w):.3f} bpp",
            nearest=True,
        ),
        Panel("$\\mathcal{D}(z_c)$", d_zc, f"PSNR {scores['D(z_c)']:.2f} dB"),
        Panel(
            "$\\mathcal{D}(\\hat{z}_c)$, w/o composition", d_zhat, f"PSNR {scores['D(ẑ_c)']:.2f} dB"
        ),
        Panel(
            "$\\hat{x} = \\mathcal{D}(z_0)$",
            x_hat,
            f"PSNR {scores['x̂']:.2f} dB" + ("" if matches else ", not the decoded PNG"),
        ),
    ]
    layout = latent_figure(
        panels,
        out_png,
        f"{codec} at λ_R = {rate}, {stream_name}: the composition of {image}",
    )
    return {
        "image": image,
        "consumer": consumer,
        "rate": str(rate),
        "bits": bits,
        "matches_decoded": matches,
        "decoded_png": str(decoded_png),
        "latent_mse": distance,
        "psnr": scores,
        "panels": panels,
        "layout": layout,
    }
