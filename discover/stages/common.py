"""Helpers shared by the stage modules (as rules/common.smk is by the rule files)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from discover.codecs import get_codec
from discover.errors import CodecError
from discover.io import atomic_path
from discover.metrics.catalog import image_scorers
from discover.shards import read_index

log = logging.getLogger("discover")


NOT_EVALUATED = "not evaluated"


def codec_job(
    config: Mapping[str, Any],
    codec: str,
    rate: str,
    reference_dir: str | Path,
    threads: int,
    metric_status: Mapping[str, str] | None = None,
):
    """(codec, rate value, shard index, per-image scorers) of a per-shard codec job;
    ``metric_status``: the metrics not computed (their weights are missing)."""
    c = get_codec(codec, config, threads=threads)
    value = rate_value(config["codecs"][codec]["rates"], rate, codec)
    return c, value, read_index(reference_dir), image_scorers(config, metric_status or {})


def metric_row(
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


def write_metrics(
    rows: list[dict], metrics_csv: str | Path, timings_csv: Path | None = None
) -> pd.DataFrame:
    """The per-image metrics CSV; the rows' timing columns (``*_s``) go to ``timings_csv``."""
    df = pd.DataFrame(rows)
    timing_cols = [c for c in df.columns if c.endswith("_s")]
    with atomic_path(metrics_csv) as tmp_csv:
        df.drop(columns=timing_cols).to_csv(tmp_csv, index=False)
    # Timings are measurements, not results: kept apart so results stay byte-identical.
    if timings_csv is not None:
        df[["id", *timing_cols]].to_csv(timings_csv, index=False)
    return df


def rate_value(rates: Sequence, rate: str, codec: str):
    for r in rates:
        if str(r) == str(rate):
            return r
    raise CodecError(f"codec {codec!r}: rate {rate!r} is not among its rates {list(rates)}")


def markdown_table(df: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join([header, rule, *body])


class Footnotes:
    """Reasons under a Markdown table, numbered in the order the table first cites them; the
    same reason cited twice keeps its number."""

    def __init__(self) -> None:
        self.numbers: dict[str, int] = {}

    def cite(self, reason: str) -> int:
        return self.numbers.setdefault(reason, len(self.numbers) + 1)

    def lines(self) -> list[str]:
        return [f"[{n}] {reason}" for reason, n in self.numbers.items()]


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def bd_cell(bd_row: Mapping[str, Any], which: str, digits: int, notes: Footnotes) -> str:
    """One BD value of a bd.csv row (``which``: ``rate`` for BD-rate, ``metric`` for
    BD-metric) as a Markdown cell: the value, its bootstrap interval in brackets, and a
    footnote mark where the value cannot hold (``⚠[n]``) or is not computed."""
    value = _number(bd_row.get("bd_rate_pct" if which == "rate" else "bd_metric"))
    note = bd_row.get("note")
    note = note if isinstance(note, str) else ""
    if np.isnan(value):
        if note.startswith(NOT_EVALUATED) or not note:
            return "—"
        return f"not computed [{notes.cite(note)}]"
    cell = f"{value:.{digits}f}"
    lo, hi = (_number(bd_row.get(f"bd_{which}_{end}")) for end in ("lo", "hi"))
    if not np.isnan(lo) and not np.isnan(hi):
        cell += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    flag = bd_row.get(f"flag_bd_{which}")
    if isinstance(flag, str) and flag:
        cell += f" ⚠[{notes.cite(flag)}]"
    return cell


def value_cell(value: Any, digits: int, flag: str | None, notes: Footnotes) -> str:
    """A measured value as a Markdown cell, with ``⚠[n]`` where it cannot hold."""
    v = _number(value)
    cell = "" if np.isnan(v) else f"{v:.{digits}f}"
    if flag:
        cell += f" ⚠[{notes.cite(flag)}]"
    return cell


def samples_phrase(n: Any, metric: str) -> str:
    """ "36 objects", "24 images", "144 samples": what a metric's sample count counts."""
    v = _number(n)
    if np.isnan(v):
        return ""
    what = (
        "objects"
        if "_AP" in metric
        else "samples"
        if metric.startswith(("fid", "kid"))
        else "images"
    )
    return f"{int(v)} {what}"


def sample_column(metric: str) -> str:
    """The rd.csv column holding how many samples (images, patches, objects) ``metric`` of a
    row rests on."""
    return f"n_{metric}"


def row_flags(row: Mapping[str, Any]) -> dict[str, str]:
    """metric -> why its value cannot hold, from an rd.csv row's ``flags`` cell
    (``metric: reason; metric: reason``)."""
    cell = row.get("flags")
    if not isinstance(cell, str) or not cell:
        return {}
    out = {}
    for part in cell.split("; "):
        metric, _, reason = part.partition(": ")
        out[metric] = reason
    return out
