"""Bjontegaard deltas through the ``bjontegaard`` package, with input checks that name the curve.

BD-rate (%) is negative when the test codec needs fewer bits for the same quality. BD-metric is
the average quality difference at equal rate (positive = better for PSNR/MS-SSIM).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import bjontegaard
import numpy as np

from discover.errors import MetricInputError

METHODS = ("pchip", "cubic", "akima")


@dataclass(frozen=True)
class BDResult:
    bd_rate: float
    bd_metric: float
    method: str
    note: str = ""


def check_curve(rate, metric, name: str, min_points: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Sort a curve by rate and check it is usable for BD (>= min_points, strictly monotone)."""
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
    if not np.all(np.diff(metric) > 0):
        bad = int(np.argmax(np.diff(metric) <= 0))
        raise MetricInputError(
            f"{name}: curve is not monotone: quality {metric[bad + 1]:.6g} at rate "
            f"{rate[bad + 1]:.6g} is not above {metric[bad]:.6g} at rate {rate[bad]:.6g}"
        )
    return rate, metric


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
) -> BDResult:
    """BD-rate and BD-metric of ``test`` against ``anchor``.

    For metrics where lower is better (LPIPS, FID, DISTS) pass ``higher_is_better=False``: the
    curves are negated for the computation and BD-metric is reported in the metric's own units
    (negative = better).
    """
    if method not in METHODS:
        raise MetricInputError(f"unknown BD method {method!r} (one of {', '.join(METHODS)})")
    sign = 1.0 if higher_is_better else -1.0
    ar, am = check_curve(
        anchor_rate, sign * np.asarray(anchor_metric, float), anchor_name, min_points
    )
    tr, tm = check_curve(test_rate, sign * np.asarray(test_metric, float), test_name, min_points)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rate = bjontegaard.bd_rate(ar, am, tr, tm, method=method, require_matching_points=False)
        quality = bjontegaard.bd_psnr(ar, am, tr, tm, method=method, require_matching_points=False)
    note = "; ".join(sorted({str(w.message) for w in caught}))
    return BDResult(float(rate), sign * float(quality), method, note)
