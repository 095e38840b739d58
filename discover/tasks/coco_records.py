"""Per-image COCO matches, kept so that AP can be recomputed for any multiset of the evaluated
images (a bootstrap resample) without matching detections again.

``coco_records`` runs pycocotools' ``COCOeval.evaluate()`` once, on the same inputs and with
the same conventions as ``coco_evaluate`` (``discover.tasks.evaluation``): default parameters,
the evaluated image ids, ``segm`` detections without their ``bbox``. What ``accumulate()`` and
``summarize()`` need of its per-image results for ``stats[0:6]`` (AP, AP50, AP75, APs, APm,
APl: 100 detections per image, area ranges all / small / medium / large) becomes a few numpy
arrays: per (category, area range) the detections in the order ``accumulate()`` sorts them,
with their image, score, and per IoU threshold whether they matched an object and whether
they are ignored, and per (category, area range, image) the number of objects that count.

``CocoRecords.ap(counts)`` is then what pycocotools reports on a dataset in which image ``i``
appears ``counts[i]`` times, and ``ap_many`` does the same for a matrix of resamples, without
a Python loop over detections. Typical use::

    records = coco_records(predictions, gt, "bbox")   # one pycocotools evaluate()
    records.save(path)
    n = CocoRecords.load(path).n_images
    counts = np.random.default_rng(0).multinomial(n, [1 / n] * n, size=1000)
    boot = records.ap_many(counts)                    # {"bbox_AP": (1000,) array, ...}

What matches is fixed by the images alone (pycocotools matches within an image and category),
so a copy of an image matches as the image does; only the ranking by score over all images,
and the number of objects, depend on the multiset. faster-coco-eval is not an option here:
its per-image results live in a C++ structure that Python cannot read.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from discover.errors import TaskError
from discover.io import atomic_path
from discover.tasks.base import Predictions
from discover.tasks.evaluation import (
    AP_NAMES,
    _copy_records,
    _empty_results,
    _results_for,
    check_image_ids,
    coco_metric_names,
    read_annotations,
)

FORMAT = "discover-coco-records/1"
AREAS = ("all", "small", "medium", "large")  # pycocotools' areaRngLbl, the order of stats
# summarize()'s entries: their IoU threshold (None: the mean over all) and area range
_SUMMARY = dict(
    zip(
        AP_NAMES,
        ((None, "all"), (0.5, "all"), (0.75, "all"), (None, "small"), (None, "medium"))
        + ((None, "large"),),
        strict=True,
    )
)
_ARRAYS = (
    "image_ids",
    "category_ids",
    "iou_thresholds",
    "recall_thresholds",
    "area_ranges",
    "offsets",
    "det_image",
    "det_score",
    "det_matched",
    "det_ignored",
    "gt_counts",
)
_ELEMENTS_PER_CHUNK = 1 << 22  # entries of one (resamples, detections) work array of ap_many


@dataclass(frozen=True, eq=False)
class CocoRecords:
    """The per-image results of one COCO evaluation, enough to recompute AP on any multiset of
    its images. Detections of (category ``k``, area range ``a``) lie at
    ``offsets[k * A + a] : offsets[k * A + a + 1]`` of the ``det_*`` arrays, in the order
    ``accumulate()`` ranks them (mergesort on -score over the images' detections concatenated
    in image order, at most ``max_dets`` per image and category); a detection ignored at every
    IoU threshold is left out (it moves neither the true- nor the false-positive count, so no
    precision changes)."""

    iou_type: str
    image_ids: np.ndarray  # (I,) int64, ascending: the evaluated images
    category_ids: np.ndarray  # (K,) int64
    iou_thresholds: np.ndarray  # (T,) float64, pycocotools' iouThrs
    recall_thresholds: np.ndarray  # (R,) float64, pycocotools' recThrs
    area_ranges: np.ndarray  # (A, 2) float64, in AREAS order
    offsets: np.ndarray  # (K * A + 1,) int64
    det_image: np.ndarray  # (D,) int32, index into image_ids
    det_score: np.ndarray  # (D,) float64
    det_matched: np.ndarray  # (T, D) bool: matched an object (dtMatches != 0)
    det_ignored: np.ndarray  # (T, D) bool: dtIgnore
    gt_counts: np.ndarray  # (K, A, I) int32: objects that count (gtIgnore == 0)
    max_dets: int = 100
    _fast: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.iou_type not in ("bbox", "segm"):
            raise TaskError(f"iou_type must be bbox or segm, got {self.iou_type!r}")
        n_images, n_cats = len(self.image_ids), len(self.category_ids)
        n_t, n_det = len(self.iou_thresholds), len(self.det_score)
        expected = {
            "area_ranges": (len(AREAS), 2),
            "offsets": (n_cats * len(AREAS) + 1,),
            "det_image": (n_det,),
            "det_matched": (n_t, n_det),
            "det_ignored": (n_t, n_det),
            "gt_counts": (n_cats, len(AREAS), n_images),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise TaskError(
                    f"COCO records: {name} has shape {getattr(self, name).shape}, expected {shape}"
                )
        if self.offsets[0] != 0 or self.offsets[-1] != n_det or np.any(np.diff(self.offsets) < 0):
            raise TaskError("COCO records: offsets do not cover the detections in order")
        if n_det and (self.det_image.min() < 0 or self.det_image.max() >= n_images):
            raise TaskError("COCO records: det_image points outside the images")

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    # -- files ------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the records to ``path`` (``.npz``, compressed), atomically: a temporary file in
        the same folder, renamed onto ``path`` when complete."""
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        meta = {
            "format": np.array(FORMAT),
            "iou_type": np.array(self.iou_type),
            "max_dets": np.array(self.max_dets),
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **meta, **arrays)  # a file object: no ".npz" appended

    @classmethod
    def load(cls, path: str | os.PathLike) -> CocoRecords:
        """Records written by ``save``; a file that is not one is an error naming it."""
        try:
            data = np.load(path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise TaskError(f"{path} is not a COCO records file (one array, not .npz)")
            with data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise TaskError(f"cannot read COCO records {path}: {exc}") from exc
        if str(arrays.get("format", "")) != FORMAT:
            raise TaskError(f"{path} is not a COCO records file (no format {FORMAT!r})")
        missing = [name for name in (*_ARRAYS, "iou_type", "max_dets") if name not in arrays]
        if missing:
            raise TaskError(f"{path}: COCO records without {missing[0]!r}")
        try:
            return cls(
                iou_type=str(arrays["iou_type"]),
                max_dets=int(arrays["max_dets"]),
                **{name: arrays[name] for name in _ARRAYS},
            )
        except TaskError as exc:
            raise TaskError(f"{path}: {exc}") from exc

    # -- what the numbers rest on ----------------------------------------------------------

    def objects(self, counts: Iterable[int] | np.ndarray | None = None) -> dict[str, int]:
        """Objects that count (not crowd, inside the area range) behind each AP number, as
        ``{iou_type}_AP`` ... ``{iou_type}_APl``: the sample size of AP, AP50 and AP75 is
        every object, of APs/APm/APl the small/medium/large ones. ``counts`` as in ``ap``."""
        weights = self._counts(counts)
        per_area = np.einsum("kai,i->a", self.gt_counts.astype(np.int64), weights)
        return {name: int(per_area[AREAS.index(area)]) for name, (_, area) in self._entries()}

    def ties(self) -> int:
        """Neighbouring detections of one image, category and area range with the same score
        and a different outcome (matched or ignored) at some IoU threshold. Where this is 0,
        ``ap(counts)`` is exact for every multiset; otherwise counts above 1 may rank such a
        pair's copies otherwise than pycocotools (see ``ap``)."""
        if len(self.det_score) < 2:
            return 0
        same = (np.diff(self.det_image) == 0) & (np.diff(self.det_score) == 0)
        differ = np.any(self.det_matched[:, 1:] != self.det_matched[:, :-1], axis=0)
        differ |= np.any(self.det_ignored[:, 1:] != self.det_ignored[:, :-1], axis=0)
        starts = self.offsets[1:-1]
        same[starts[(starts > 0) & (starts < len(self.det_score))] - 1] = False  # other block
        return int(np.count_nonzero(same & differ))

    # -- AP of one multiset -----------------------------------------------------------------

    def ap(self, counts: Iterable[int] | np.ndarray | None = None) -> dict[str, float | None]:
        """COCO AP, AP50, AP75, APs, APm, APl (the dict ``coco_evaluate`` returns; None where
        pycocotools gives -1) of the multiset in which image ``i`` (of ``image_ids``) appears
        ``counts[i]`` times (None: every image once; 0: left out).

        This is pycocotools' ``accumulate()`` and ``summarize()`` on the dataset with
        ``counts[i]`` copies of image ``i`` (each copy a new image id next to the original's,
        its annotations and detections copied): a copy matches as its image does, and the
        ranking (mergesort on -score over the images in id order) puts the copies of one
        detection next to each other, which is ``np.repeat`` of the ranked detections by their
        image's count. That is exact when no two different detections of one image and
        category have the same score (ties across images keep pycocotools' order, the copies
        being adjacent; counts of 0 and 1 are always exact); with such a tie pycocotools
        would alternate the copies (a, b, a, b where this gives a, a, b, b): ``ties()``
        counts such pairs. Written as
        pycocotools writes it, one (category, area) at a time; ``ap_many`` is the fast form."""
        weights = self._counts(counts)
        n_t, n_r = len(self.iou_thresholds), len(self.recall_thresholds)
        n_cats = len(self.category_ids)
        precision = -np.ones((n_t, n_r, n_cats, len(AREAS)))
        for k, a in itertools.product(range(n_cats), range(len(AREAS))):
            npig = int(weights @ self.gt_counts[k, a].astype(np.int64))
            if npig == 0:
                continue  # no object: pycocotools leaves -1
            block = self._block(k, a)
            repeats = weights[self.det_image[block]]
            matched = np.repeat(self.det_matched[:, block], repeats, axis=1)
            ignored = np.repeat(self.det_ignored[:, block], repeats, axis=1)
            tps = np.logical_and(matched, np.logical_not(ignored))
            fps = np.logical_and(np.logical_not(matched), np.logical_not(ignored))
            tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)
            fp_sum = np.cumsum(fps, axis=1).astype(dtype=float)
            for t in range(n_t):
                tp, fp = tp_sum[t], fp_sum[t]
                rc = tp / npig
                pr = tp / (fp + tp + np.spacing(1))
                pr = np.maximum.accumulate(pr[::-1])[::-1]  # the precision envelope
                inds = np.searchsorted(rc, self.recall_thresholds, side="left")
                q = np.zeros(n_r)
                inside = inds < len(pr)  # past the last detection, pycocotools keeps 0
                q[inside] = pr[inds[inside]]
                precision[t, :, k, a] = q
        return self._summarize(precision)

    def _summarize(self, precision: np.ndarray) -> dict[str, float | None]:
        """``summarize()``'s stats[0:6] of a (T, R, K, A) precision array."""
        out: dict[str, float | None] = {}
        for name, (iou, area) in self._entries():
            s = precision
            if iou is not None:
                s = s[np.where(iou == self.iou_thresholds)[0]]
            s = s[:, :, :, AREAS.index(area)]
            valid = s[s > -1]
            out[name] = float(np.mean(valid)) if valid.size else None
        return out

    # -- AP of many multisets ----------------------------------------------------------------

    def ap_many(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """``ap`` of each row of ``counts`` (B, n_images): ``{iou_type}_AP`` ... as (B,) float
        arrays, NaN where ``ap`` gives None. The same numbers as ``ap`` row by row (the same
        ranking, so the same condition on tied scores; the means summed in another order, so
        equal to about 1e-15), with no Python loop over detections, images or (category,
        area) pairs: resamples go in blocks of a few million work entries, each block in
        vectorised passes over all (category, area, IoU threshold) segments at once: about 12
        ms per resample of 5,000 images x 100 detections on one core, a thousand resamples
        about one faster-coco-eval evaluation (``benchmarks/bootstrap_ap.py``).

        How: for one (category, area, IoU threshold) pycocotools' precision at recall
        threshold r is the best precision of the states (tp, fp) after a detection with
        tp / n_objects >= r. Of the run of copies of one detection only the last state can be
        that best one (along the copies of a true positive precision rises, along those of a
        false positive it falls from the state before them, itself a state; an ignored one
        changes nothing), so only the states after true positives are needed: per resample the
        count-weighted true positives and counted detections up to each true positive, from
        cumulative sums of the counts gathered per detection. With E_j the best precision from
        true positive j on and m_j the number of recall thresholds its state reaches, the sum
        of the precisions over the recall thresholds is sum_j (m_j - m_{j-1}) E_j."""
        matrix = self._count_matrix(counts)
        fast = self._fast_layout()
        n_t, n_r = len(self.iou_thresholds), len(self.recall_thresholds)
        n_cats, n_areas = len(self.category_ids), len(AREAS)
        work = len(fast["query_image"]) + len(fast["count_image"])
        chunk = max(1, _ELEMENTS_PER_CHUNK // work)
        gt = self.gt_counts.reshape(n_cats * n_areas, self.n_images).astype(np.float64)
        npig = np.rint(matrix.astype(np.float64) @ gt.T).astype(np.int64)  # exact integers
        sums = np.empty((len(matrix), n_cats * n_areas * n_t))  # per segment, over thresholds
        for start in range(0, len(matrix), chunk):
            rows = slice(start, start + chunk)
            sums[rows] = self._precision_sums(matrix[rows], npig[rows], fast)
        valid = (npig > 0).reshape(len(matrix), n_cats, n_areas)
        sums = sums.reshape(len(matrix), n_cats, n_areas, n_t) * valid[..., None]
        out = {}
        for name, (iou, area) in self._entries():
            a = AREAS.index(area)
            ts = np.arange(n_t) if iou is None else np.where(iou == self.iou_thresholds)[0]
            total = sums[:, :, a][:, :, ts].sum(axis=(1, 2))
            entries = valid[:, :, a].sum(axis=1) * len(ts) * n_r
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name] = np.where(entries > 0, total / entries, np.nan)
        return out

    def _precision_sums(
        self, counts: np.ndarray, npig: np.ndarray, fast: dict[str, Any]
    ) -> np.ndarray:
        """(rows, segments): per row of ``counts`` the precision of each (category, area, IoU
        threshold) segment summed over the recall thresholds (``npig``: the rows' objects per
        (category, area))."""
        n_rows, n_images = counts.shape
        segment, block = fast["query_segment"], fast["segment_block"]
        first = fast["segment_start"][:-1]
        out = np.zeros((n_rows, len(first)))
        if len(segment) == 1:  # the sentinel only: no true positive anywhere
            return out
        # column n_images: weight 0, the sentinel in front of every list
        dtype = np.int32 if counts.max(initial=0) * len(self.det_score) < 2**31 else np.int64
        weights = np.zeros((n_rows, n_images + 1), dtype)
        weights[:, :n_images] = counts
        take = np.take  # along axis 1 it is twice as fast as indexing with [:, index]
        # counted detections up to each true positive: the (category, area) list plus the
        # threshold's own, each a difference of one cumulative sum
        counted = np.cumsum(take(weights, fast["count_image"], axis=1), axis=1, dtype=dtype)
        before = take(counted, fast["low_u"], axis=1) + take(counted, fast["low_d"], axis=1)
        n_counted = take(counted, fast["high_u"], axis=1)
        n_counted += take(counted, fast["high_d"], axis=1)
        n_counted -= take(before, segment, axis=1)
        del counted, before
        tp = np.cumsum(take(weights, fast["query_image"], axis=1), axis=1, dtype=dtype)
        tp -= take(take(tp, first - 1, axis=1), segment, axis=1)  # restart at each segment
        precision = tp / (n_counted + np.spacing(1))
        del n_counted
        # recall thresholds reached by each state: a lookup table per (row, category, area)
        table, offset = self._reached_tables(npig)
        tp += take(take(offset, block, axis=1), segment, axis=1)
        reached = take(table, tp)
        del tp
        # per segment, padded with its last true positive (a repeated state changes
        # nothing): E, the best precision from each true positive on, and the thresholds
        # first reached there; their products summed
        for segments, index, width in fast["classes"]:
            shape = (n_rows, len(segments), width)
            best = take(precision, index, axis=1).reshape(shape)[:, :, ::-1]
            np.maximum.accumulate(best, axis=2, out=best)
            steps = take(reached, index, axis=1).reshape(shape)
            newly = np.diff(steps, axis=2, prepend=np.zeros((*shape[:2], 1), steps.dtype))
            out[:, segments] = np.einsum("rsw,rsw->rs", best[:, :, ::-1], newly)
        return out

    def _reached_tables(self, npig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each (row, category, area) with n objects, the number of recall thresholds
        that ``np.searchsorted(tp / n, recThrs, side="left")`` counts as reached, for every
        tp in 0..n: one flat table, and each (row, category, area)'s offset into it."""
        thresholds = self.recall_thresholds
        distinct, where = np.unique(np.maximum(npig, 1), return_inverse=True)
        n = distinct[:, None].astype(np.float64)
        # the least k with k / n >= r in floating point, from just below r * n upwards
        k = np.maximum(np.floor(thresholds * n) - 1, 0)
        for _ in range(4):
            k = np.where(k / n < thresholds, k + 1, k)
        if np.any(k / n < thresholds) or np.any((k > 0) & ((k - 1) / n >= thresholds)):
            raise TaskError("recall thresholds: the least true-positive counts did not settle")
        k = k.astype(np.int64)[where.reshape(npig.shape)]
        levels = np.maximum(npig, 0)[..., None] + 1
        edges = np.concatenate([np.zeros_like(levels), k, levels], axis=-1)
        lengths = np.diff(edges, axis=-1)  # levels reaching 0, 1, ..., R thresholds
        n_r = len(thresholds)
        values = np.tile(np.arange(n_r + 1, dtype=np.int16), levels.size)
        table = np.repeat(values, lengths.ravel())
        offset = np.concatenate([[0], np.cumsum(levels.ravel())[:-1]]).reshape(npig.shape)
        return table, offset.astype(np.int32 if len(table) < 2**31 else np.int64)

    def _fast_layout(self) -> dict[str, Any]:
        """Index arrays of ``ap_many``, made once per records object.

        Segments s = (category, area, IoU threshold); per segment its true positives (the
        queries) in rank order. A detection counted at every threshold is listed once per
        (category, area) (the "u" list), one counted at some thresholds only once per segment
        (the "d" list); the counted detections up to a query are read from one cumulative sum
        of both lists as ``cumsum[high] - cumsum[low]``. Position 0 of the lists and of the
        queries is a sentinel of weight 0 (image index n_images), so that ``low`` and
        ``segment_start - 1`` exist. Detections ranked after the last true positive of their
        (category, area) are left out: they come after every state that matters."""
        if self._fast:
            return self._fast
        n_t = len(self.iou_thresholds)
        n_blocks = len(self.category_ids) * len(AREAS)
        n_seg = n_blocks * n_t
        sentinel = np.array([self.n_images])
        count_image, query_image, query_segment = [sentinel], [sentinel], [np.zeros(1, np.int64)]
        high_u, high_d = [np.zeros(1, np.int64)], [np.zeros(1, np.int64)]
        low_u, low_d = np.zeros(n_seg, np.int64), np.zeros(n_seg, np.int64)
        query_len = np.zeros(n_seg, np.int64)
        cursor = 1  # entries of the counted lists so far
        for b in range(n_blocks):
            block = slice(self.offsets[b], self.offsets[b + 1])
            counted = ~self.det_ignored[:, block]
            true_pos = self.det_matched[:, block] & counted
            hits = np.flatnonzero(true_pos.any(axis=0))
            if not len(hits):
                continue
            end = hits[-1] + 1
            counted, true_pos = counted[:, :end], true_pos[:, :end]
            image = self.det_image[block][:end]
            everywhere = counted.all(axis=0)
            start_u = cursor
            count_image.append(image[everywhere])
            cursor += int(everywhere.sum())
            upto_u = np.cumsum(everywhere)
            for t in range(n_t):
                s = b * n_t + t
                only_here = counted[t] & ~everywhere
                low_u[s], low_d[s] = start_u - 1, cursor - 1
                count_image.append(image[only_here])
                cursor += int(only_here.sum())
                where = np.flatnonzero(true_pos[t])
                query_image.append(image[where])
                query_segment.append(np.full(len(where), s, np.int64))
                high_u.append(low_u[s] + upto_u[where])
                high_d.append(low_d[s] + np.cumsum(only_here)[where])
                query_len[s] = len(where)
        query_start = np.concatenate(([1], 1 + np.cumsum(query_len)))
        classes = []
        used = np.flatnonzero(query_len)
        # widths 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 19, ... (x 1.25): little padding
        sizes = np.unique(np.ceil(1.25 ** np.arange(80)).astype(np.int64))
        widths = sizes[np.searchsorted(sizes, query_len[used])]
        for width in np.unique(widths):
            segments = used[widths == width]
            first, last = query_start[segments, None], query_start[segments + 1, None] - 1
            index = np.minimum(first + np.arange(width), last).ravel()
            classes.append((segments, index, int(width)))
        self._fast.update(
            classes=classes,
            count_image=np.concatenate(count_image).astype(np.int64),
            query_image=np.concatenate(query_image).astype(np.int64),
            query_segment=np.concatenate(query_segment),
            high_u=np.concatenate(high_u),
            high_d=np.concatenate(high_d),
            low_u=low_u,
            low_d=low_d,
            segment_start=query_start,
            segment_block=np.arange(n_seg) // n_t,
        )
        return self._fast

    # -- helpers -----------------------------------------------------------------------------

    def _entries(self) -> list[tuple[str, tuple[float | None, str]]]:
        """``({iou_type}_AP, (IoU threshold, area))`` ... in ``summarize()``'s order."""
        return list(zip(coco_metric_names(self.iou_type), _SUMMARY.values(), strict=True))

    def _block(self, k: int, a: int) -> slice:
        b = k * len(AREAS) + a
        return slice(int(self.offsets[b]), int(self.offsets[b + 1]))

    def _count_matrix(self, counts: np.ndarray) -> np.ndarray:
        matrix = np.asarray(counts)
        if matrix.ndim != 2 or matrix.shape[1] != self.n_images:
            raise TaskError(
                f"counts must be a (resamples, {self.n_images}) matrix, got shape {matrix.shape}"
            )
        return _whole_counts(matrix)

    def _counts(self, counts: Iterable[int] | np.ndarray | None) -> np.ndarray:
        if counts is None:
            return np.ones(self.n_images, np.int64)
        values = np.asarray(counts)
        if values.shape != (self.n_images,):
            raise TaskError(
                f"counts must hold one multiplicity per image ({self.n_images}), "
                f"got shape {values.shape}"
            )
        return _whole_counts(values)


def _whole_counts(values: np.ndarray) -> np.ndarray:
    """``values`` as int64 multiplicities; fractional or negative ones are an error."""
    if values.dtype.kind not in "iub" and not np.all(values == np.round(values)):
        raise TaskError("counts must be whole numbers (how often each image appears)")
    values = values.astype(np.int64)
    if np.any(values < 0):
        where = np.argwhere(values < 0)[0]
        raise TaskError(f"counts must not be negative (at {tuple(int(i) for i in where)})")
    return values


def coco_records(
    predictions: Predictions,
    annotations: Mapping[str, Any] | str | os.PathLike,
    iou_type: str = "bbox",
    *,
    image_ids: Iterable[int | str] | None = None,
) -> CocoRecords:
    """The per-image results of pycocotools' ``COCOeval.evaluate()`` on ``predictions``
    against ``annotations`` (a COCO dict or its JSON file) over ``image_ids`` (default: every
    image of the annotations), as ``CocoRecords``: ``coco_records(...).ap()`` is
    ``coco_evaluate(..., evaluator="pycocotools")``."""
    if iou_type not in ("bbox", "segm"):
        raise TaskError(f"iou_type must be bbox or segm, got {iou_type!r}")
    gt_data = read_annotations(annotations)
    ids = check_image_ids(gt_data, predictions, image_ids)
    results = _results_for(predictions, iou_type)
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = _copy_records(gt_data)  # evaluate() writes into the annotations
        gt.createIndex()
        dt = gt.loadRes(results) if results else _empty_results(COCO, gt_data)
        evaluator = COCOeval(gt, dt, iou_type)
        evaluator.params.imgIds = ids
        evaluator.evaluate()
    return _from_evaluator(evaluator, iou_type)


def _from_evaluator(evaluator: Any, iou_type: str) -> CocoRecords:
    """``evalImgs`` of an evaluated ``COCOeval`` as records (the order of ``accumulate()``)."""
    p = evaluator.params
    if list(p.areaRngLbl) != list(AREAS):
        raise TaskError(f"COCO area ranges {p.areaRngLbl} are not pycocotools' defaults")
    n_images, n_cats, n_areas = len(p.imgIds), len(p.catIds), len(AREAS)
    n_t, max_det = len(p.iouThrs), p.maxDets[-1]
    gt_counts = np.zeros((n_cats, n_areas, n_images), np.int32)
    offsets, images, scores, matched, ignored = [0], [], [], [], []
    for k, a in itertools.product(range(n_cats), range(n_areas)):
        start = (k * n_areas + a) * n_images  # evalImgs: category, area range, image
        present = [(i, e) for i, e in enumerate(evaluator.evalImgs[start : start + n_images]) if e]
        if not present:
            offsets.append(offsets[-1])
            continue
        where = [i for i, _ in present]
        evals = [e for _, e in present]
        gt_counts[k, a, where] = [np.count_nonzero(e["gtIgnore"] == 0) for e in evals]
        per_image = [len(e["dtScores"][:max_det]) for e in evals]
        score = np.fromiter(
            itertools.chain.from_iterable(e["dtScores"][:max_det] for e in evals),
            np.float64,
            count=sum(per_image),
        )
        image = np.repeat(np.asarray(where, np.int32), per_image)
        dtm = np.concatenate([e["dtMatches"][:, :max_det] for e in evals], axis=1)
        dtig = np.concatenate([e["dtIgnore"][:, :max_det] for e in evals], axis=1)
        order = np.argsort(-score, kind="mergesort")  # as accumulate() ranks them
        keep = order[~dtig[:, order].astype(bool).all(axis=0)]
        images.append(image[keep])
        scores.append(score[keep])
        matched.append(dtm[:, keep] != 0)
        ignored.append(dtig[:, keep].astype(bool))
        offsets.append(offsets[-1] + len(keep))
    return CocoRecords(
        iou_type=iou_type,
        image_ids=np.asarray(p.imgIds, np.int64),
        category_ids=np.asarray(p.catIds, np.int64),
        iou_thresholds=np.asarray(p.iouThrs, np.float64),
        recall_thresholds=np.asarray(p.recThrs, np.float64),
        area_ranges=np.asarray(p.areaRng, np.float64),
        offsets=np.asarray(offsets, np.int64),
        det_image=np.concatenate(images) if images else np.zeros(0, np.int32),
        det_score=np.concatenate(scores) if scores else np.zeros(0),
        det_matched=np.concatenate(matched, axis=1) if matched else np.zeros((n_t, 0), bool),
        det_ignored=np.concatenate(ignored, axis=1) if ignored else np.zeros((n_t, 0), bool),
        gt_counts=gt_counts,
        max_dets=int(max_det),
    )


__all__ = ["AP_NAMES", "CocoRecords", "coco_records"]
