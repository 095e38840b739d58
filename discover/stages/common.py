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
