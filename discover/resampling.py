"""The bootstrap's resampled image sets: one draw shared by BD intervals, FID/KID and AP.

Resample b draws ``n`` samples with replacement; row b of :func:`resample_counts` counts how often
each sample is drawn. The draws are ``numpy.random.default_rng(seed).integers(0, n, size=(B, n))``
(PCG64), so a seed gives the same resamples on every machine. numpy only: the FID/KID and AP
modules use it without loading the BD package.
"""

from __future__ import annotations

import numpy as np

from discover.errors import MetricInputError


def resample_counts(n: int, resamples: int, seed: int = 0) -> np.ndarray:
    """(resamples, n) multiplicities of a bootstrap over ``n`` samples (see the module)."""
    if int(n) < 1 or int(resamples) < 1:
        raise MetricInputError(
            f"a bootstrap needs at least one sample and one resample, got n={n}, "
            f"resamples={resamples}"
        )
    n, b = int(n), int(resamples)
    draws = np.random.default_rng(seed).integers(0, n, size=(b, n))
    counts = np.zeros((b, n), dtype=np.int64)
    np.add.at(counts, (np.arange(b)[:, None], draws), 1)
    return counts
