"""Bjontegaard deltas through the ``bjontegaard`` package, with input checks that name the curve.

BD-rate (%) is negative when the test codec needs fewer bits for the same quality. BD-metric is
the average quality difference at equal rate (positive = better for PSNR/MS-SSIM).

Envelope. BD interpolates rate as a function of quality, so a curve must be strictly monotone.
Task accuracies are often not: they saturate at the task model's clean score and, on small sets,
move by one image's worth between neighbouring rate points. With ``envelope="pareto"`` a curve is
reduced to its Pareto front before the bjontegaard package sees it: sorted by rate, a point is
kept only if its quality is above that of every cheaper point of the same curve (the same idea as
libvmaf's BD-rate, which keeps the rate-quality convex hull). The dropped points are named in the
result's note; ``envelope="none"`` rejects a non-monotone curve instead.

Overlap. Each result carries the curves' overlap as the bjontegaard package defines it (the
length of the common interval over the length of the union): along quality for BD-rate, along
log10 rate for BD-metric. The package warns below 0.75; here the value is returned and the
caller decides (the pipeline flags cells below ``bd.flags.min_overlap``).

Bootstrap. :func:`discover.resampling.resample_counts` draws image multiplicities (the same
resampled image set for anchor and test at every rate point, so pairs stay paired);
:func:`bd_bootstrap` turns the resampled curves into percentile intervals of BD-rate and
BD-metric.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import bjontegaard
import numpy as np

from discover.errors import MetricInputError

METHODS = ("pchip", "cubic", "akima")
ENVELOPES = ("none", "pareto")


@dataclass(frozen=True)
class BDResult:
    bd_rate: float
    bd_metric: float
    method: str
    note: str = ""
    #: overlap of the curves along quality (BD-rate's integration axis), in [0, 1]
    overlap_quality: float = float("nan")
    #: overlap along log10 rate (BD-metric's integration axis), in [0, 1]
    overlap_rate: float = float("nan")


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """The bjontegaard package's overlap of two curves along one axis: common interval over
    union interval (0 when disjoint)."""
    union = max(a.max(), b.max()) - min(a.min(), b.min())
    common = min(a.max(), b.max()) - max(a.min(), b.min())
    return float(max(common, 0.0) / union) if union > 0 else 1.0


def pareto_front(rate: np.ndarray, metric: np.ndarray) -> np.ndarray:
    """Indices (into the rate-sorted arrays) of the points whose metric is above that of every
    lower-rate point: the curve's Pareto front, strictly monotone by construction."""
    keep, best = [], -np.inf
    for i, m in enumerate(metric):
        if m > best:
            keep.append(i)
            best = m
    return np.asarray(keep, dtype=int)


def check_curve(
    rate,
    metric,
    name: str,
    min_points: int = 4,
    envelope: str = "none",
    sign: float = 1.0,
    min_front_points: int = 3,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Sort a curve by rate and check it is usable for BD: >= ``min_points`` measured points,
    strictly monotone; with ``envelope == "pareto"`` its Pareto front is taken first and must
    keep >= ``min_front_points``. Returns the curve and a note naming the dropped points (metric
    values in the caller's sign, i.e. divided by ``sign``)."""
    if envelope not in ENVELOPES:
        raise MetricInputError(f"unknown BD envelope {envelope!r} (one of {', '.join(ENVELOPES)})")
    rate = np.asarray(rate, dtype=float)
    metric = np.asarray(metric, dtype=float)
    if rate.shape != metric.shape or rate.ndim != 1:
        raise MetricInputError(f"{name}: rate and metric must be 1-D of equal length")
    if len(rate) < min_points:
        raise MetricInputError(f"{name}: {len(rate)} rate points, BD needs at least {min_points}")
    if not (np.all(np.isfinite(rate)) and np.all(np.isfinite(metric))):
        raise MetricInputError(f"{name}: rate or metric contains NaN/inf")
    if np.any(rate <= 0):
        raise MetricInputError(f"{name}: rates must be positive (log-rate domain)")
    order = np.argsort(rate)
    rate, metric = rate[order], metric[order]
    if np.any(np.diff(rate) <= 0):
        dup = rate[1:][np.diff(rate) <= 0][0]
        raise MetricInputError(f"{name}: two points share the rate {dup}")
    note = ""
    if envelope == "pareto":
        keep = pareto_front(rate, metric)
        if len(keep) < len(rate):
            dropped = np.setdiff1d(np.arange(len(rate)), keep)
            points = ", ".join(f"{metric[i] / sign:.4g} at {rate[i]:.4g}" for i in dropped)
            note = (
                f"{name}: {len(dropped)} of {len(rate)} points off the Pareto front dropped "
                f"({points})"
            )
            rate, metric = rate[keep], metric[keep]
        if len(rate) < min_front_points:
            raise MetricInputError(
                f"{name}: {len(rate)} points on the Pareto front (quality rising with rate), "
                f"BD needs at least {min_front_points}; {note.split(': ', 1)[-1]}"
            )
    if not np.all(np.diff(metric) > 0):
        bad = int(np.argmax(np.diff(metric) <= 0))
        raise MetricInputError(
            f"{name}: curve is not monotone: quality {metric[bad + 1]:.6g} at rate "
            f"{rate[bad + 1]:.6g} is not above {metric[bad]:.6g} at rate {rate[bad]:.6g}"
        )
    return rate, metric, note


def bd(
    anchor_rate,
    anchor_metric,
    test_rate,
    test_metric,
    method: str = "pchip",
    anchor_name: str = "anchor",
    test_name: str = "test",
    min_points: int = 4,
    higher_is_better: bool = True,
    envelope: str = "none",
    min_front_points: int = 3,
) -> BDResult:
    """BD-rate and BD-metric of ``test`` against ``anchor``.

    For metrics where lower is better (LPIPS, FID, DISTS) pass ``higher_is_better=False``: the
    curves are negated for the computation and BD-metric is reported in the metric's own units
    (negative = better). ``envelope``: see the module's docstring; ``min_points`` counts the
    measured points, ``min_front_points`` those left on a Pareto front (pchip needs 2; 3 keep a
    curve, not a line).
    """
    if method not in METHODS:
        raise MetricInputError(f"unknown BD method {method!r} (one of {', '.join(METHODS)})")
    sign = 1.0 if higher_is_better else -1.0
    (ar, am, anchor_note), (tr, tm, test_note) = (
        check_curve(r, sign * np.asarray(m, float), n, min_points, envelope, sign, min_front_points)
        for r, m, n in (
            (anchor_rate, anchor_metric, anchor_name),
            (test_rate, test_metric, test_name),
        )
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # min_overlap=0: the overlap is returned (overlap_quality / overlap_rate), not warned of
        kw = {"method": method, "require_matching_points": False, "min_overlap": 0}
        rate = bjontegaard.bd_rate(ar, am, tr, tm, **kw)
        quality = bjontegaard.bd_psnr(ar, am, tr, tm, **kw)
    if np.isnan(rate):
        lo_a, hi_a = sorted((am[0] / sign, am[-1] / sign))
        lo_t, hi_t = sorted((tm[0] / sign, tm[-1] / sign))
        raise MetricInputError(
            f"{test_name} and {anchor_name} do not overlap in quality "
            f"({lo_t:.4g}..{hi_t:.4g} vs {lo_a:.4g}..{hi_a:.4g}): no BD-rate"
        )
    messages = sorted({str(w.message) for w in caught})
    note = "; ".join(n for n in (anchor_note, test_note, *messages) if n)
    return BDResult(
        float(rate),
        sign * float(quality),
        method,
        note,
        overlap_quality=overlap(am, tm),
        overlap_rate=overlap(np.log10(ar), np.log10(tr)),
    )


@dataclass(frozen=True)
class BDInterval:
    """Percentile bootstrap interval of one BD cell."""

    level: float
    bd_rate_lo: float
    bd_rate_hi: float
    bd_metric_lo: float
    bd_metric_hi: float
    #: resamples that gave a BD value / that did not (curves not monotone or disjoint there)
    resamples: int
    failed: int
    #: of the ``resamples``, those whose curves did not overlap in rate (no BD-metric)
    metric_failed: int = 0


def bd_bootstrap(
    anchor_rate,
    anchor_metric,
    test_rate,
    test_metric,
    *,
    level: float = 0.95,
    **bd_kwargs,
) -> BDInterval:
    """Percentile interval of BD-rate and BD-metric over bootstrap resamples.

    Each argument is (B, points): the curve as recomputed on resample b (rates and quality of
    the same resampled image set for anchor and test). Resample b's BD is :func:`bd` on row b
    with ``bd_kwargs`` (method, envelope, ...); a resample whose curves give no BD value (not
    monotone there, disjoint) is counted in ``failed`` and left out of the interval."""
    arrays = [np.atleast_2d(np.asarray(x, dtype=float)) for x in (anchor_rate, anchor_metric)]
    tests = [np.atleast_2d(np.asarray(x, dtype=float)) for x in (test_rate, test_metric)]
    b = arrays[0].shape[0]
    if any(x.shape[0] != b for x in (*arrays, *tests)):
        raise MetricInputError("bootstrap curves of anchor and test need the same resamples")
    rates, metrics, failed = [], [], 0
    for k in range(b):
        try:
            r = bd(arrays[0][k], arrays[1][k], tests[0][k], tests[1][k], **bd_kwargs)
        except MetricInputError:
            failed += 1
            continue
        rates.append(r.bd_rate)
        # BD-metric needs overlapping rates: a resample can give BD-rate without it
        if np.isfinite(r.bd_metric):
            metrics.append(r.bd_metric)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    lo_r, hi_r = np.percentile(rates, q) if rates else (np.nan, np.nan)
    lo_m, hi_m = np.percentile(metrics, q) if metrics else (np.nan, np.nan)
    return BDInterval(
        level,
        float(lo_r),
        float(hi_r),
        float(lo_m),
        float(hi_m),
        len(rates),
        failed,
        metric_failed=len(rates) - len(metrics),
    )
