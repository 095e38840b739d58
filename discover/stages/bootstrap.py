"""Bootstrap intervals of the BD table (``bd.bootstrap``), from what a run keeps per sample.

One resample draws the dataset's images with replacement (:func:`discover.bd.resample_counts`);
every table row's curve is recomputed on that same image multiset, so anchor and test stay
paired at every rate point, and BD is taken of the recomputed curves:

* bpp: all bits / all pixels of the resampled images (the paper's definition of bpp);
* PSNR, MS-SSIM, LPIPS, DISTS: the mean of the per-image values (``per_image.csv``; an image
  whose value is not finite, e.g. PSNR of a lossless decode, is left out as in the RD table);
* COCO AP: re-accumulated over the resampled images from the saved per-image matches
  (:class:`discover.tasks.coco_records.CocoRecords`, equal to pycocotools on the duplicated
  images); top-1: the mean of the per-image hits;
* FID/KID: recomputed from the cached features of the resampled images and of the same
  resampled reference images (:mod:`discover.metrics.resample`).

The interval is the percentile interval of the resampled BD values; resamples whose curves give
no BD (not monotone, disjoint) are counted and left out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from discover.errors import MetricInputError
from discover.metrics.catalog import METRICS, feature_suffix
from discover.metrics.resample import FeatureSet, ReferenceResamples, fid_kid_grid

log = logging.getLogger("discover")

#: file names inside a task row's samples folder (written by the task_eval job)
SAMPLE_IMAGES = "images.csv"


def coco_samples_name(rate: str, iou_type: str) -> str:
    return f"{rate}.{iou_type}.npz"


def topk_samples_name(rate: str) -> str:
    return f"{rate}.topk.csv"


@dataclass
class RowSamples:
    """One table row's per-sample data, aligned to the dataset's image order ``images``.

    ``bits``/``pixels``: (rates, images); ``values``: metric -> (rates, images) of per-image
    values (NaN where not finite); ``coco``: metric -> per rate (records, column index of each
    records image in ``images``, the records' metric name); ``features``: feature set -> per
    rate the decoded features (the ``<features>@<rate>`` arrays of the row's .features.npz)."""

    row: str
    rates: list[str]
    bits: np.ndarray
    pixels: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)
    coco: dict[str, list[tuple[Any, np.ndarray]]] = field(default_factory=dict)
    features: dict[str, list[Any]] = field(default_factory=dict)


def _align(ids: Sequence[str], images: Sequence[str], where: str) -> np.ndarray:
    """Column of each of ``ids`` in ``images``; the sets must be equal."""
    position = {image: k for k, image in enumerate(images)}
    missing = [i for i in ids if i not in position]
    if missing or len(set(ids)) != len(images):
        extra = sorted(set(images) - set(ids))
        what = f"image {missing[0]!r} is not" if missing else f"image {extra[0]!r} is missing"
        raise MetricInputError(f"{where}: {what} among the dataset's {len(images)} images")
    return np.asarray([position[i] for i in ids], dtype=np.int64)


def read_row_samples(
    row: str,
    images: Sequence[str],
    per_image_csv: str | Path,
    task_dirs: Mapping[str, str | Path] | None = None,
    features_npz: str | Path | None = None,
) -> RowSamples:
    """The per-sample files of one measured table row (a codec, or ``codec@consumer``)."""
    df = pd.read_csv(per_image_csv, dtype={"id": str, "rate": str})
    rates = list(dict.fromkeys(df["rate"]))
    n = len(images)
    bits = np.zeros((len(rates), n))
    pixels = np.zeros((len(rates), n))
    skip = {"rate", "id", "width", "height", "pixels", "bits", "bpp"}
    value_cols = [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])]
    values = {c: np.full((len(rates), n), np.nan) for c in value_cols}
    for r, rate in enumerate(rates):
        part = df[df["rate"] == rate]
        cols = _align(list(part["id"]), images, f"{per_image_csv} (rate {rate})")
        bits[r, cols] = part["bits"].to_numpy(float)
        pixels[r, cols] = part["pixels"].to_numpy(float)
        for c in value_cols:
            v = part[c].to_numpy(float)
            values[c][r, cols] = np.where(np.isfinite(v), v, np.nan)
    samples = RowSamples(row, rates, bits, pixels, values)
    for task, folder in (task_dirs or {}).items():
        _read_task_samples(samples, task, Path(folder), images)
    if features_npz is not None:
        with np.load(features_npz) as npz:
            ids = [str(i) for i in npz["ids"]]
            image = npz["image"]
            order = _align(ids, images, str(features_npz))
            mapped = order[image]
            for key in npz.files:
                features, _, rate = key.partition("@")
                if not rate:
                    continue
                samples.features.setdefault(features, [None] * len(rates))
                if rate not in rates:
                    raise MetricInputError(f"{features_npz}: rate {rate!r} is not among {rates}")
                samples.features[features][rates.index(rate)] = FeatureSet(npz[key], mapped, n)
    return samples


def _read_task_samples(samples: RowSamples, task: str, folder: Path, images: Sequence[str]):
    index = pd.read_csv(folder / SAMPLE_IMAGES, dtype={"id": str})
    by_coco = dict(zip(index["coco_id"].astype(int), index["id"], strict=True))
    n = len(images)
    for r, rate in enumerate(samples.rates):
        topk = folder / topk_samples_name(rate)
        if topk.is_file():
            hits = pd.read_csv(topk, dtype={"id": str})
            cols = _align(list(hits["id"]), images, str(topk))
            for k in [c for c in hits.columns if c != "id"]:
                metric = f"{task}_{k}"
                samples.values.setdefault(metric, np.full((len(samples.rates), n), np.nan))
                samples.values[metric][r, cols] = hits[k].to_numpy(float)
            continue
        found = sorted(folder.glob(f"{rate}.*.npz"))
        if not found:
            raise MetricInputError(f"{folder}: no samples of rate {rate} (task {task})")
        # the tasks package imports its models (PyTorch): loaded where a row has COCO samples
        from discover.tasks.coco_records import CocoRecords
        from discover.tasks.evaluation import coco_metric_names

        for path in found:
            records = CocoRecords.load(path)
            try:
                stems = [by_coco[int(i)] for i in records.image_ids]
            except KeyError as exc:
                raise MetricInputError(
                    f"{path}: image {exc.args[0]} is not in {folder / SAMPLE_IMAGES}"
                ) from None
            cols = _align(stems, images, str(path))
            for name in coco_metric_names(records.iou_type):
                metric = f"{task}_{name}"
                samples.coco.setdefault(metric, [None] * len(samples.rates))
                samples.coco[metric][r] = (records, cols, name)


class Resampler:
    """Curves of every row on the same bootstrap resamples (``counts``: (B, images))."""

    def __init__(
        self,
        counts: np.ndarray,
        reference: Mapping[str, Any] | None = None,
        distribution_resamples: int | None = None,
        rows: Sequence[RowSamples] = (),
    ):
        self.counts = np.asarray(counts)
        #: every row of the table: FID/KID of all of them are computed in one pass
        self.rows = list(rows)
        #: FID/KID are recomputed on the first ``distribution_resamples`` resamples only
        d = len(self.counts) if distribution_resamples is None else int(distribution_resamples)
        self.distribution_counts = self.counts[: min(d, len(self.counts))]
        #: feature set -> the reference FeatureSet (FID/KID resample it with the same counts)
        self.reference = dict(reference or {})
        self._coco: dict[int, dict[str, np.ndarray]] = {}
        self._fid: dict[int, dict[str, np.ndarray]] = {}

    @staticmethod
    def is_distribution(metric: str) -> bool:
        return metric in METRICS and METRICS[metric].kind == "distribution"

    def bpp(self, s: RowSamples, metric: str = "") -> np.ndarray:
        """(B, rates) bpp on each resample (the distribution resamples for FID/KID)."""
        counts = self.distribution_counts if self.is_distribution(metric) else self.counts
        return (counts @ s.bits.T) / (counts @ s.pixels.T)

    def curve(self, s: RowSamples, metric: str) -> np.ndarray:
        """(B, rates) of ``metric`` on each resample."""
        if metric in s.values:
            v = s.values[metric]
            finite = np.isfinite(v)
            total = self.counts @ np.where(finite, v, 0.0).T
            with np.errstate(invalid="ignore", divide="ignore"):
                return total / (self.counts @ finite.T.astype(float))
        if metric in s.coco:
            out = np.full((len(self.counts), len(s.rates)), np.nan)
            for r, entry in enumerate(s.coco[metric]):
                if entry is None:
                    continue
                records, cols, name = entry
                key = id(records)
                if key not in self._coco:
                    many = records.ap_many(self.counts[:, cols])
                    self._coco[key] = {k: np.asarray(v, dtype=float) for k, v in many.items()}
                out[:, r] = self._coco[key][name]
            return out
        for features, per_rate in s.features.items():
            suffix = feature_suffix(features)
            if metric not in (f"fid{suffix}", f"kid{suffix}"):
                continue
            out = np.full((len(self.distribution_counts), len(s.rates)), np.nan)
            for r, feats in enumerate(per_rate):
                if feats is None:
                    continue
                key = id(feats)
                if key not in self._fid:
                    self._fid[key] = self._fid_kid(features, feats)
                out[:, r] = self._fid[key]["fid" if metric.startswith("fid") else "kid"]
            return out
        raise MetricInputError(f"row {s.row}: no per-sample values of {metric}")

    def _fid_kid(self, features: str, feats: Any) -> dict[str, np.ndarray]:
        """FID/KID of ``feats`` on the distribution resamples. The first call of a feature
        set scores every decoded set of every row (:attr:`rows`) in one walk over the
        resamples (:func:`discover.metrics.resample.fid_kid_grid`: the reference side of each
        resample is computed once for all of them)."""
        if features not in self.reference:
            raise MetricInputError(f"no reference features {features!r} for the FID bootstrap")
        outs = {id(feats): feats}
        for s in self.rows:
            for f in s.features.get(features, []):
                if f is not None:
                    outs[id(f)] = f
        reference = ReferenceResamples(self.reference[features], self.distribution_counts)
        self._fid.update(fid_kid_grid(reference, outs))
        return self._fid[id(feats)]


def reference_feature_sets(
    reference_npys: Mapping[str, str | Path],
    samples: Mapping[str, Mapping[str, Any]],
    images: Sequence[str],
) -> dict[str, Any]:
    """Feature set -> the reference features as a FeatureSet: the rows of a reference .npy are
    the protocol images (whole images or patches) in the order of a row's ``.features.npz``,
    whose ``ids`` / ``image`` arrays say which image each feature row belongs to."""
    if not reference_npys:
        return {}
    with_features = [s["features"] for s in samples.values() if s.get("features")]
    if not with_features:
        return {}
    with np.load(with_features[0]) as npz:
        ids = [str(i) for i in npz["ids"]]
        image = npz["image"]
    mapped = _align(ids, images, str(with_features[0]))[image]
    out = {}
    for features, path in reference_npys.items():
        feats = np.load(path)
        if len(feats) != len(mapped):
            raise MetricInputError(
                f"{path}: {len(feats)} feature rows, but {with_features[0]} lays out "
                f"{len(mapped)} protocol images"
            )
        out[features] = FeatureSet(feats, mapped, len(images))
    return out
