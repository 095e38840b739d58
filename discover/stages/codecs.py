"""Stages of rules/codecs.smk: encode + decode + per-image metrics of a codec on a shard."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from discover.errors import CodecError
from discover.io import atomic_dir
from discover.shards import (
    image_path,
    read_image,
    write_image,
)
from discover.stages.common import (
    codec_job,
    metric_row,
    write_metrics,
)

log = logging.getLogger("discover")


def run_codec_shard(
    config: Mapping[str, Any],
    codec: str,
    rate: str,
    reference_dir: str | Path,
    out_dir: str | Path,
    metrics_csv: str | Path,
    threads: int = 1,
    metric_status: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Encode and decode every image of a reference shard; record bits and fidelity.

    ``out_dir`` receives ``{id}.{ext}`` bitstreams and ``{id}.png`` reconstructions;
    ``metrics_csv`` one row per image (bits = 8 x bitstream file size).
    """
    c, rate_value, index, metrics = codec_job(
        config, codec, rate, reference_dir, threads, metric_status
    )
    c.check()
    rows = []
    with atomic_dir(out_dir) as tmp:
        for rec in index.itertuples(index=False):
            ref_path, ref = image_path(reference_dir, rec.id), read_image(reference_dir, rec.id)
            stream = tmp / f"{rec.id}.{c.extension}"
            t0 = time.perf_counter()
            try:
                c.encode(ref, rate_value, stream)
                t1 = time.perf_counter()
                out = c.decode(stream, ref.shape[:2], rate_value)
            except CodecError as exc:
                raise CodecError(f"{exc} [image {ref_path}, rate {rate}]") from exc
            t2 = time.perf_counter()
            write_image(tmp, rec.id, out)
            row = metric_row(rec, ref, out, 8 * stream.stat().st_size, metrics)
            row["encode_s"] = round(t1 - t0, 6)
            row["decode_s"] = round(t2 - t1, 6)
            rows.append(row)
        df = write_metrics(rows, metrics_csv, tmp / "timings.csv")
    return df
