"""Stages of rules/codecs.smk: encode + decode + per-image metrics of a codec on a shard."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from discover.batching import Overlap, in_index_order, read_ahead, size_batches
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

    Images are read ahead on a thread, and PNGs and per-image metrics written on a worker
    thread. A learned codec that batches (``codecs.<codec>.batch_size``, discover.batching)
    runs g_a on a batch of images of one padded size while a coder thread entropy-codes the
    batch before it image by image (encode, then decode to ŷ), then g_s on that batch.
    ``encode_s`` / ``decode_s`` per image: its share of the batch's transform plus its own
    entropy coding.
    """
    c, rate_value, index, metrics = codec_job(
        config, codec, rate, reference_dir, threads, metric_status
    )
    c.check()
    recs = list(index.itertuples(index=False))
    batches = size_batches([(r.height, r.width) for r in recs], c.batch_size, c.batch_multiple or 1)

    def load(batch: list[int]):
        return [(recs[i], read_image(reference_dir, recs[i].id)) for i in batch]

    def failed(exc: CodecError, rec) -> CodecError:
        return CodecError(f"{exc} [image {image_path(reference_dir, rec.id)}, rate {rate}]")

    with atomic_dir(out_dir) as tmp, Overlap() as worker:

        def stream(rec) -> Path:
            return tmp / f"{rec.id}.{c.extension}"

        def measure(items, outs, seconds) -> list[dict]:
            rows = []
            for (rec, ref), out, (enc_s, dec_s) in zip(items, outs, seconds, strict=True):
                write_image(tmp, rec.id, out)
                row = metric_row(rec, ref, out, 8 * stream(rec).stat().st_size, metrics)
                row["encode_s"] = round(enc_s, 6)
                row["decode_s"] = round(dec_s, 6)
                rows.append(row)
            return rows

        if c.batch_multiple is None:  # one image at a time (classic codecs, binaries)
            for items in read_ahead(map(load, batches)):
                ((rec, ref),) = items
                t0 = time.perf_counter()
                try:
                    c.encode(ref, rate_value, stream(rec))
                    t1 = time.perf_counter()
                    out = c.decode(stream(rec), ref.shape[:2], rate_value)
                except CodecError as exc:
                    raise failed(exc, rec) from exc
                worker.submit(measure, items, [out], [(t1 - t0, time.perf_counter() - t1)])
        else:

            def code(items, analyzed, forward_s: float):
                """Per image: entropy-code, then decode the stream back to ŷ."""
                decoded, seconds = [], []
                for i, (rec, ref) in enumerate(items):
                    t0 = time.perf_counter()
                    try:
                        c.encode_item(analyzed, i, ref, rate_value, stream(rec))
                        t1 = time.perf_counter()
                        decoded.append(c.decode_entropy(stream(rec), ref.shape[:2], rate_value))
                    except CodecError as exc:
                        raise failed(exc, rec) from exc
                    seconds.append((forward_s / len(items) + t1 - t0, time.perf_counter() - t1))
                return items, decoded, seconds

            def synthesize(coded) -> None:
                items, decoded, seconds = coded
                t0 = time.perf_counter()
                outs = c.decode_batch(decoded, [ref.shape[:2] for _, ref in items], rate_value)
                share = (time.perf_counter() - t0) / len(items)
                worker.submit(measure, items, outs, [(e, d + share) for e, d in seconds])

            with Overlap(depth=2, keep=False) as coder:
                previous = None  # the batch being entropy-coded while g_a runs on the next
                for items in read_ahead(map(load, batches)):
                    t0 = time.perf_counter()
                    analyzed = c.analyze([ref for _, ref in items], rate_value)
                    future = coder.submit(code, items, analyzed, time.perf_counter() - t0)
                    if previous is not None:
                        synthesize(previous.result())
                    previous = future
                if previous is not None:
                    synthesize(previous.result())
        rows = [r for rows in worker.results() for r in rows]
        rows = in_index_order([r.id for r in recs], rows, key=lambda row: row["id"])
        df = write_metrics(rows, metrics_csv, tmp / "timings.csv")
    return df
