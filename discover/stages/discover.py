"""Stages of rules/discover.smk: DISCOVER's encode once per image, decode per consumer."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from discover.batching import Overlap, in_index_order, read_ahead, size_batches
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
    ``consumers``: the ones evaluated on this dataset (:meth:`discover.plan.Plan.consumers`).

    Images of one padded size go through the analysis transforms together
    (``codecs.<codec>.batch_size``, discover.batching); each image's entropy coding, computed
    as for that image alone, and its file run on a worker thread during the next batch's
    forward pass, while the batch after it is read. ``encode_s`` per image: its share of the
    batch's forward pass plus its own entropy coding."""
    c, rate_value, index, _ = codec_job(config, codec, rate, reference_dir, threads)
    annotations = annotations_by_image(reference_dir)
    tasks = [t for t in consumers if t in c.tasks]
    by_task = {t: grounded_boxes([p]) for t, p in (grounding or {}).items()}
    recs = list(index.itertuples(index=False))
    batches = size_batches([(r.height, r.width) for r in recs], c.batch_size, c.batch_multiple)

    def load(batch: list[int]):
        items = []
        for i in batch:
            rec = recs[i]
            ref = read_image(reference_dir, rec.id)
            anns = None if annotations is None else annotations.get(rec.id, [])
            grounded = {t: boxes.get(rec.id, []) for t, boxes in by_task.items()}
            try:
                boxes = c.task_boxes(anns, tasks, grounded)
            except CodecError as exc:
                raise CodecError(f"{exc} [image {image_path(reference_dir, rec.id)}]") from exc
            items.append((rec, ref, boxes))
        return items

    with atomic_dir(out_dir) as tmp, Overlap() as worker:

        def finish(items, analyzed, forward_s: float) -> list[dict]:
            rows = []
            for i, (rec, ref, boxes) in enumerate(items):
                t0 = time.perf_counter()
                try:
                    c.encode_item(analyzed, i, ref, rate_value, tmp / f"{rec.id}.dsc", boxes)
                except CodecError as exc:
                    raise CodecError(
                        f"{exc} [image {image_path(reference_dir, rec.id)}, rate {rate}]"
                    ) from exc
                own = time.perf_counter() - t0
                rows.append({"id": rec.id, "encode_s": round(forward_s / len(items) + own, 6)})
            return rows

        for items in read_ahead(map(load, batches)):
            t0 = time.perf_counter()
            try:
                analyzed = c.analyze([ref for _, ref, _ in items], rate_value)
            except CodecError as exc:
                names = ", ".join(str(image_path(reference_dir, r.id)) for r, _, _ in items)
                raise CodecError(f"{exc} [images {names}, rate {rate}]") from exc
            worker.submit(finish, items, analyzed, time.perf_counter() - t0)
        rows = [r for rows in worker.results() for r in rows]
        rows = in_index_order([r.id for r in recs], rows, key=lambda row: row["id"])
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
    is the same bytes.

    Streams are entropy-decoded one image at a time (as ``discover decode`` does) on a
    read-ahead thread; g_s and the VAE decoder (or the composition) run on batches of images
    of one latent grid (``codecs.<codec>.batch_size``); PNGs and per-image metrics are
    written on a worker thread during the next batch's forward pass."""

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
    recs = list(index.itertuples(index=False))
    batches = size_batches([(r.height, r.width) for r in recs], c.batch_size, c.batch_multiple)

    with atomic_dir(out_dir) as tmp, Overlap() as worker:

        def where(rec) -> str:
            return (
                f"image {image_path(reference_dir, rec.id)}, consumer {consumer}, viewer {viewer}"
            )

        def entropy_decode(batch: list[int]):
            """Per image: (rec, reference, the reused PNG or None, the entropy-decoded
            part or None, seconds)."""
            items = []
            for i in batch:
                rec = recs[i]
                ref = read_image(reference_dir, rec.id)
                source = Path(streams_dir) / f"{rec.id}.dsc"
                cut = tmp / f"{rec.id}.dsc"
                t0 = time.perf_counter()
                try:
                    mine = Container.from_bytes(source.read_bytes(), str(source))
                    mine = mine.for_consumer(consumer)
                    write_bytes_atomic(cut, mine.to_bytes())
                    if reuse is not None and _decodes_like(mine, Path(reuse[1]) / cut.name):
                        items.append((rec, ref, read_image(reuse[1], rec.id), None, 0.0))
                        continue
                    decoded = c.decode_entropy(cut, ref.shape[:2], rate_value, consumer)
                except CodecError as exc:
                    raise CodecError(f"{exc} [{where(rec)}]") from exc
                items.append((rec, ref, None, decoded, time.perf_counter() - t0))
            return items

        def finish(items, outs, forward_s: float, evaluations: int) -> list[tuple[dict, dict]]:
            done = []
            n = sum(1 for item in items if item[3] is not None)
            for (rec, ref, reused, _, own_s), out in zip(items, outs, strict=True):
                write_image(tmp, rec.id, out)
                bits = 8 * (tmp / f"{rec.id}.dsc").stat().st_size
                timing = {
                    "id": rec.id,
                    "bits": bits,
                    "decode_s": round(0.0 if reused is not None else own_s + forward_s / n, 6),
                    "unet_evaluations": 0 if reused is not None else evaluations,
                    "reused": reused is not None,
                }
                done.append((metric_row(rec, ref, out, bits, metrics), timing))
            return done

        for items in read_ahead(map(entropy_decode, batches)):
            todo = [k for k, item in enumerate(items) if item[3] is not None]
            outs = [item[2] for item in items]
            t0, before = time.perf_counter(), c.unet_evaluations(rate_value)
            if todo:
                try:
                    images = c.decode_batch(
                        [items[k][3] for k in todo],
                        [items[k][1].shape[:2] for k in todo],
                        rate_value,
                        viewer,
                    )
                except CodecError as exc:
                    names = "; ".join(where(items[k][0]) for k in todo)
                    raise CodecError(f"{exc} [{names}]") from exc
                for k, image in zip(todo, images, strict=True):
                    outs[k] = image
            evaluations = c.unet_evaluations(rate_value) - before
            worker.submit(finish, items, outs, time.perf_counter() - t0, evaluations)
        done = [d for batch in worker.results() for d in batch]
        done = in_index_order([r.id for r in recs], done, key=lambda d: d[0]["id"])
        rows, timings = [d[0] for d in done], [d[1] for d in done]
        reused = sum(t["reused"] for t in timings)
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
