"""Batches of a shard's images and the worker threads that keep a model busy.

A codec or task job runs its network's forward passes on batches of images whose padded sizes
are equal (nothing is padded further than the codec pads one image, since padding costs bits)
and hands what is per image (entropy coding, PNG and stream writing, per-image metrics) to a
worker thread, so that this work overlaps the next batch's forward pass; images are read ahead
on another thread. Nothing here imports torch: PyTorch releases the GIL inside its kernels, so
Python threads overlap with them.

The batches of a shard depend only on its index (the images' sizes, in index order) and the
batch size: a rerun of the same config forms the same batches.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_DONE = object()


def padded(height: int, width: int, multiple: int) -> tuple[int, int]:
    """The size an image of ``height`` x ``width`` is padded to (sides multiples of
    ``multiple``)."""
    return -(-int(height) // multiple) * multiple, -(-int(width) // multiple) * multiple


def size_batches(
    sizes: Sequence[tuple[int, int]], batch_size: int, multiple: int = 1
) -> list[list[int]]:
    """Positions of ``sizes`` (height, width per image) in batches of at most ``batch_size``
    whose padded sizes are equal: buckets in the order their first image appears, images in
    index order within a bucket."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    buckets: dict[tuple[int, int], list[int]] = {}
    for i, (h, w) in enumerate(sizes):
        buckets.setdefault(padded(h, w, multiple), []).append(i)
    return [
        members[k : k + batch_size]
        for members in buckets.values()
        for k in range(0, len(members), batch_size)
    ]


def size_order(sizes: Sequence[tuple[int, int]], multiple: int) -> list[int]:
    """Positions of ``sizes`` (height, width per image) grouped by padded size, then exact
    size, then position: the order ``shard_order: size`` cuts a dataset into shards in."""
    keys = [(*padded(h, w, multiple), h, w, pos) for pos, (h, w) in enumerate(sizes)]
    return [k[-1] for k in sorted(keys)]


def in_index_order(ids: Sequence[str], done: Iterable[T], key: Callable[[T], str]) -> list[T]:
    """Per-image results of a job's batches (a batch per padded size) back in the order of the
    shard's ``ids``."""
    order = {image_id: i for i, image_id in enumerate(ids)}
    return sorted(done, key=lambda d: order[key(d)])


def bucket_counts(sizes: Iterable[tuple[int, int]], multiple: int) -> dict[tuple[int, int], int]:
    """Images per padded size (height, width), most frequent first: how a dataset's mixed
    sizes bucket."""
    counts: dict[tuple[int, int], int] = {}
    for h, w in sizes:
        key = padded(h, w, multiple)
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def read_ahead(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """``items`` produced on a background thread, up to ``depth`` ahead of the consumer (image
    reading overlaps the forward passes). An exception raised while producing is raised here,
    at the item it stopped at."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put((item, None))
        except BaseException as exc:  # handed to the consumer
            q.put((None, exc))
            return
        q.put((_DONE, None))

    thread = threading.Thread(target=produce, name="discover-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if exc is not None:
                raise exc
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass


class Overlap:
    """Per-batch work on one worker thread, at most ``depth`` calls behind the caller: the
    caller's next forward pass runs while the worker codes and writes the last batch. Calls run
    in submission order; ``results()`` waits for all of them and returns their results (kept
    only with ``keep``), raising the first error."""

    def __init__(self, depth: int = 1, keep: bool = True):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="discover-worker")
        self._depth = max(1, depth)
        self._keep = keep
        self._pending: list[Future] = []
        self._done: list[Any] = []

    def _retire(self) -> None:
        result = self._pending.pop(0).result()
        if self._keep:
            self._done.append(result)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Queue ``fn(*args)``, first waiting while ``depth`` calls are unfinished."""
        while len(self._pending) >= self._depth:
            self._retire()
        future = self._pool.submit(fn, *args)
        self._pending.append(future)
        return future

    def results(self) -> list[Any]:
        """Every submitted call's result, in order (an empty list without ``keep``)."""
        while self._pending:
            self._retire()
        return self._done

    def __enter__(self) -> Overlap:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:  # an error in the caller: drop what has not started
            for f in self._pending:
                f.cancel()
        self._pool.shutdown(wait=True)
