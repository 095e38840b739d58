"""Stages of rules/discover.smk: DISCOVER's encode once per image, decode per consumer."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from discover.discover_codec.bitstream import HUMAN, Container
from discover.errors import CodecError
from discover.grounding.shard import grounded_boxes
from discover.io import atomic_dir, write_bytes_atomic
from discover.shards import (
    annotations_by_image,
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


def run_discover_encode(
    config: Mapping[str, Any],
    codec: str,
    rate: str,
    reference_dir: str | Path,
    out_dir: str | Path,
    consumers: Sequence[str],
    threads: int = 1,
    grounding: Mapping[str, str | Path] | None = None,
) -> pd.DataFrame:
    """Write one ``.dsc`` container per image of a shard (a stream per task + ẑ + the rest).

    Task masks come from the codec's mask sources: ``grounding`` maps a task to the shard's
    grounding file (discover.stages.semantics), ``gt`` reads the shard's annotated boxes.
    ``consumers``: the ones evaluated on this dataset (:meth:`discover.plan.Plan.consumers`)."""
    c, rate_value, index, _ = codec_job(config, codec, rate, reference_dir, threads)
    annotations = annotations_by_image(reference_dir)
    tasks = [t for t in consumers if t in c.tasks]
    by_task = {t: grounded_boxes([p]) for t, p in (grounding or {}).items()}
    rows = []
    with atomic_dir(out_dir) as tmp:
        for rec in index.itertuples(index=False):
            ref_path, ref = image_path(reference_dir, rec.id), read_image(reference_dir, rec.id)
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
    metrics_csv: str | Path | None,
    threads: int = 1,
    reuse: tuple[str, str | Path] | None = None,
    metric_status: Mapping[str, str] | None = None,
    viewer: str = HUMAN,
) -> pd.DataFrame:
    """Cut each image's ``consumer`` stream out of its container, decode it for ``viewer``
    and measure: bits = 8 x the bytes that consumer receives.

    ``out_dir`` keeps the cut streams (``{id}.dsc``), reconstructions (``{id}.png``) and
    ``timings.csv`` (bits, decode seconds and the composition's UNet evaluations per image).
    ``metrics_csv``: the per-image metrics the tables read (the human view); None for a
    machine view, which only task models read.
    ``reuse``: (another consumer, its ``out_dir`` for the same viewer): an image whose cut
    decodes like that consumer's (the same bits and decode settings; two tasks whose
    grounding found the same boxes) takes its PNG instead of being decoded again; the result
    is the same bytes."""

    c, rate_value, index, metrics = codec_job(
        config, codec, rate, reference_dir, threads, metric_status
    )
    if metrics_csv is None:  # a machine view: task models read its images, no metric
        metrics = {}
    if viewer not in c.decode_views():
        raise CodecError(
            f"codec {codec!r}: the {viewer} view needs no decode of its own "
            f"(views: {', '.join(c.decode_views())})"
        )
    rows, timings, reused = [], [], 0
    with atomic_dir(out_dir) as tmp:
        for rec in index.itertuples(index=False):
            ref_path, ref = image_path(reference_dir, rec.id), read_image(reference_dir, rec.id)
            source = Path(streams_dir) / f"{rec.id}.dsc"
            cut = tmp / f"{rec.id}.dsc"
            t0, evaluations = time.perf_counter(), c.unet_evaluations(rate_value)
            try:
                full = Container.from_bytes(source.read_bytes(), str(source))
                mine = full.for_consumer(consumer)
                write_bytes_atomic(cut, mine.to_bytes())
                same = reuse is not None and _decodes_like(mine, Path(reuse[1]) / cut.name)
                if same:
                    out = read_image(reuse[1], rec.id)
                    reused += 1
                else:
                    out = c.decode(cut, ref.shape[:2], rate_value, consumer, viewer)
            except CodecError as exc:
                raise CodecError(
                    f"{exc} [image {ref_path}, consumer {consumer}, viewer {viewer}]"
                ) from exc
            t1 = time.perf_counter()
            write_image(tmp, rec.id, out)
            bits = 8 * cut.stat().st_size
            timings.append(
                {
                    "id": rec.id,
                    "bits": bits,
                    "decode_s": round(t1 - t0, 6),
                    "unet_evaluations": c.unet_evaluations(rate_value) - evaluations,
                    "reused": bool(same),
                }
            )
            rows.append(metric_row(rec, ref, out, bits, metrics))
        df = pd.DataFrame(rows)
        if metrics_csv is not None:
            df = write_metrics(rows, metrics_csv)
        pd.DataFrame(timings).to_csv(tmp / "timings.csv", index=False)
    if reuse is not None:
        log.info("%s: %d of %d images decode like %s's", consumer, reused, len(rows), reuse[0])
    return df


def _decodes_like(cut, other_path: Path) -> bool:
    """Whether the cut stream at ``other_path`` (absent: no) gives the decoder what ``cut``
    gives it."""

    if not other_path.is_file():
        return False
    return cut.decodes_like(Container.from_bytes(other_path.read_bytes(), str(other_path)))
