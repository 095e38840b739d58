"""FID/KID of resampled image multisets equal clean-fid's on the explicitly repeated arrays.

Every reference number here is clean-fid's own (``fid.frechet_distance`` of ``np.mean`` /
``np.cov``, ``fid.kernel_distance``) on features repeated with ``np.repeat``, or a 40-digit
mpmath computation on those arrays; never the module's own output."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from cleanfid import fid as clean_fid

from discover.errors import MetricInputError
from discover.metrics.resample import (
    FeatureSet,
    ReferenceResamples,
    fid,
    fid_kid_grid,
    fid_kid_many,
    kid,
    kid_standard_error,
)

from .conftest import ROOT

#: (dims, images): the low-rank route needs fewer non-zero-weight rows than dims, the d x d
#: route more (asserted in each test, so a change of sizes cannot silently skip a route)
ROUTES = {"low-rank": (48, 14), "square": (12, 90)}


def _layout(rng, n_images, max_rows):
    """Row -> image of a patch layout: 1..max_rows rows per image, different per image."""
    rows = rng.integers(1, max_rows + 1, n_images)
    assert len(set(rows.tolist())) > 1
    return np.repeat(np.arange(n_images), rows)


def _features(rng, rows, dim, shift=0.2):
    """Correlated non-negative features (like pooled activations) whose covariance
    eigenvalues span about five decades, and a noisier decode."""
    mixing = rng.standard_normal((dim, dim)) * np.logspace(0, -3, dim)[:, None]
    ref = np.abs(rng.standard_normal((rows, dim)) @ mixing * 0.2 + 0.4)
    out = np.abs(ref + 0.3 * rng.standard_normal(ref.shape) + shift)
    return ref, out


def _counts(rng, n_images):
    """A multiset with images left out and images drawn 2 and 3 times."""
    counts = rng.integers(0, 4, n_images)
    counts[:3] = (0, 2, 3)
    return counts


def _clean_fid(ref, out):
    """clean-fid's FID of two arrays (its fid_from_feats, mean/cov as it computes them)."""
    with warnings.catch_warnings():  # sqrtm of a singular product may warn
        warnings.simplefilter("ignore")
        return float(
            clean_fid.frechet_distance(
                np.mean(ref, axis=0),
                np.cov(ref, rowvar=False),
                np.mean(out, axis=0),
                np.cov(out, rowvar=False),
            )
        )


def _clean_kid(ref, out):
    """clean-fid's KID over the whole sets (every subset is the whole set)."""
    assert len(ref) == len(out)
    return clean_fid.kernel_distance(ref, out, num_subsets=3, max_subset_size=len(ref) + 5)


def _fid_scale(ref, out):
    """tr S1 + tr S2 + |mu1 - mu2|^2: the terms FID is the difference of."""
    diff = ref.mean(axis=0) - out.mean(axis=0)
    return np.trace(np.cov(ref, rowvar=False)) + np.trace(np.cov(out, rowvar=False)) + diff @ diff


def _assert_fid_close(ours, ref_rows, out_rows, route):
    expected = _clean_fid(ref_rows, out_rows)
    if route == "square":
        assert ours == pytest.approx(expected, rel=1e-9)
    else:  # clean-fid's sqrtm of the singular product is off by ~1e-8 of the terms
        assert abs(ours - expected) <= 1e-7 * _fid_scale(ref_rows, out_rows)
        assert ours == pytest.approx(expected, rel=1e-5)


def _unique_rows(image, counts):
    return int((counts[image] > 0).sum())


def _case(route, seed=0, max_rows=3):
    dim, n_images = ROUTES[route]
    rng = np.random.default_rng(seed)
    image = _layout(rng, n_images, max_rows)
    ref, out = _features(rng, len(image), dim)
    return rng, image, ref, out, dim, n_images


@pytest.mark.parametrize("route", ["low-rank", "square"])
def test_fid_of_the_whole_sets_equals_clean_fid(route):
    rng, image, ref, out, dim, n_images = _case(route)
    ones = np.ones(n_images, int)
    assert (_unique_rows(image, ones) < dim) == (route == "low-rank")
    ours = fid(FeatureSet(ref, image, n_images), FeatureSet(out, image, n_images))
    _assert_fid_close(ours, ref, out, route)


@pytest.mark.parametrize("route", ["low-rank", "square"])
def test_fid_of_a_multiset_equals_clean_fid_on_repeated_arrays(route):
    rng, image, ref, out, dim, n_images = _case(route, seed=1)
    counts = _counts(rng, n_images)
    assert (_unique_rows(image, counts) < dim) == (route == "low-rank")
    ours = fid(FeatureSet(ref, image, n_images), FeatureSet(out, image, n_images), counts)
    rows = counts[image]
    _assert_fid_close(ours, np.repeat(ref, rows, axis=0), np.repeat(out, rows, axis=0), route)
    # a resample is not the whole set: the value moved
    whole = _clean_fid(ref, out)
    assert abs(ours - whole) > 1e-3 * whole


def test_low_rank_fid_equals_a_40_digit_computation():
    mpmath = pytest.importorskip("mpmath")  # installed with PyTorch (through sympy)
    mpmath.mp.dps = 40
    rng = np.random.default_rng(2)
    n_images, dim = 9, 20
    image = _layout(rng, n_images, 2)
    ref, out = _features(rng, len(image), dim)
    counts = _counts(rng, n_images)
    assert _unique_rows(image, counts) < dim
    rows = counts[image]

    def moments(x):
        x = mpmath.matrix(np.repeat(x, rows, axis=0).tolist())
        n = x.rows
        mean = [mpmath.fsum(x[i, j] for i in range(n)) / n for j in range(dim)]
        centred = mpmath.matrix([[x[i, j] - mean[j] for j in range(dim)] for i in range(n)])
        return mpmath.matrix(mean), centred.T * centred / (n - 1)

    def psd_sqrt(s):
        lam, vec = mpmath.eigsy(s)
        return vec * mpmath.diag([mpmath.sqrt(max(v, 0)) for v in lam]) * vec.T

    (m1, s1), (m2, s2) = moments(ref), moments(out)
    h = psd_sqrt(s1)
    eig, _ = mpmath.eigsy(h * s2 * h)
    trace_sqrt = mpmath.fsum(mpmath.sqrt(max(v, 0)) for v in eig)
    diff = m1 - m2
    expected = mpmath.fsum(v**2 for v in diff) + sum(s1[i, i] + s2[i, i] for i in range(dim))
    expected -= 2 * trace_sqrt
    ours = fid(FeatureSet(ref, image, n_images), FeatureSet(out, image, n_images), counts)
    assert ours == pytest.approx(float(expected), rel=1e-10)


def test_kid_equals_clean_fid_kernel_distance_on_repeated_arrays():
    rng = np.random.default_rng(3)
    n_images, dim = 40, 16
    image = _layout(rng, n_images, 4)
    ref, out = _features(rng, len(image), dim, shift=0.05)
    r, x = FeatureSet(ref, image, n_images), FeatureSet(out, image, n_images)
    assert kid(r, x) == pytest.approx(_clean_kid(ref, out), rel=1e-10, abs=1e-14)
    counts = _counts(rng, n_images)
    rows = counts[image]
    expected = _clean_kid(np.repeat(ref, rows, axis=0), np.repeat(out, rows, axis=0))
    assert kid(r, x, counts) == pytest.approx(expected, rel=1e-10, abs=1e-14)
    assert abs(expected - kid(r, x)) > 1e-3 * abs(expected)


def test_kid_of_unequal_sets_is_the_mean_of_clean_fid_subsets():
    # more rows per image in the reference: clean-fid subsamples it to the decoded set's size
    rng = np.random.default_rng(4)
    n_images, dim = 8, 6
    ref_image = np.repeat(np.arange(n_images), 3)
    out_image = np.repeat(np.arange(n_images), 2)
    ref = rng.standard_normal((len(ref_image), dim)) + 0.5
    out = rng.standard_normal((len(out_image), dim)) * 1.3 + 0.8
    counts = _counts(rng, n_images)
    ref_rows = np.repeat(ref, counts[ref_image], axis=0)
    out_rows = np.repeat(out, counts[out_image], axis=0)
    state = np.random.get_state()
    np.random.seed(0)
    try:
        per_subset = [clean_fid.kernel_distance(ref_rows, out_rows, 1, 10**6) for _ in range(4000)]
    finally:
        np.random.set_state(state)
    mean, se = np.mean(per_subset), np.std(per_subset) / np.sqrt(len(per_subset))
    ours = kid(FeatureSet(ref, ref_image, n_images), FeatureSet(out, out_image, n_images), counts)
    assert abs(ours - mean) < 4 * se
    assert se < 0.05 * abs(mean)  # the check is sharp enough to see a wrong normalisation


@pytest.mark.parametrize("route", ["low-rank", "square"])
def test_fid_kid_many_rows_equal_single_calls_and_clean_fid(route):
    rng, image, ref, out, dim, n_images = _case(route, seed=5)
    r, x = FeatureSet(ref, image, n_images), FeatureSet(out, image, n_images)
    counts = np.stack([_counts(rng, n_images) for _ in range(4)])
    many = fid_kid_many(r, x, counts)
    assert many["fid"].shape == many["kid"].shape == (4,)
    for b, c in enumerate(counts):
        assert (_unique_rows(image, c) < dim) == (route == "low-rank")
        assert many["fid"][b] == pytest.approx(fid(r, x, c), rel=1e-12)
        assert many["kid"][b] == pytest.approx(kid(r, x, c), rel=1e-12, abs=1e-15)
        rows = c[image]
        ref_rows, out_rows = np.repeat(ref, rows, axis=0), np.repeat(out, rows, axis=0)
        _assert_fid_close(many["fid"][b], ref_rows, out_rows, route)
        assert many["kid"][b] == pytest.approx(_clean_kid(ref_rows, out_rows), rel=1e-10)


@pytest.mark.parametrize("route", ["low-rank", "square"])
def test_grid_computes_each_reference_resample_once_for_all_decoded_sets(route):
    rng, image, ref, _, dim, n_images = _case(route, seed=6)
    outs = {
        (row, rate): FeatureSet(
            np.abs(ref + s * rng.standard_normal(ref.shape)), image, n_images, name=f"{row}@{rate}"
        )
        for row, rate, s in (("a", 1, 0.1), ("a", 2, 0.3), ("b", 1, 0.5))
    }
    counts = np.stack([_counts(rng, n_images) for _ in range(3)])
    reference = ReferenceResamples(FeatureSet(ref, image, n_images), counts)
    grid = fid_kid_grid(reference, outs)
    assert reference.sides_computed == len(counts)
    # the d x d route's eigendecomposition once per resample; the low-rank route needs none
    assert reference.roots_computed == (len(counts) if route == "square" else 0)
    for key, out in outs.items():
        for b, c in enumerate(counts):
            rows = c[image]
            ref_rows = np.repeat(ref, rows, axis=0)
            out_rows = np.repeat(out.features, rows, axis=0)
            assert (_unique_rows(image, c) < dim) == (route == "low-rank")
            _assert_fid_close(grid[key]["fid"][b], ref_rows, out_rows, route)
            assert grid[key]["kid"][b] == pytest.approx(_clean_kid(ref_rows, out_rows), rel=1e-10)
    # a prepared reference side scores one more set the same way, without redoing its kernel
    single = fid_kid_many(reference, outs[("a", 1)])
    np.testing.assert_allclose(single["fid"], grid[("a", 1)]["fid"], rtol=1e-12)
    np.testing.assert_allclose(single["kid"], grid[("a", 1)]["kid"], rtol=1e-12)


def test_kid_standard_error_is_the_std_of_clean_fid_bootstrap_kids():
    rng = np.random.default_rng(7)
    n_images, dim, resamples, seed = 25, 10, 30, 11
    image = _layout(rng, n_images, 3)
    ref, out = _features(rng, len(image), dim, shift=0.05)
    r, x = FeatureSet(ref, image, n_images), FeatureSet(out, image, n_images)
    se = kid_standard_error(r, x, resamples=resamples, seed=seed)
    assert kid_standard_error(r, x, resamples=resamples, seed=seed) == se
    assert kid_standard_error(r, x, resamples=resamples, seed=seed + 1) != se
    # the documented draw: n_images images with replacement per resample, default_rng(seed)
    draws = np.random.default_rng(seed).integers(0, n_images, size=(resamples, n_images))
    kids = []
    for drawn in draws:
        rows = np.concatenate([np.flatnonzero(image == i) for i in drawn])
        kids.append(_clean_kid(ref[rows], out[rows]))
    assert se == pytest.approx(np.std(kids, ddof=1), rel=1e-8)
    assert se > 0


def test_bad_input_names_what_is_wrong():
    feats = np.ones((4, 3))
    with pytest.raises(MetricInputError, match="decoded: features must be a \\(rows, dims\\)"):
        FeatureSet(np.ones(4), [0, 1, 2, 3], 4, name="decoded")
    with pytest.raises(MetricInputError, match="one index per feature row \\(4\\)"):
        FeatureSet(feats, [0, 1, 2], 4)
    with pytest.raises(MetricInputError, match="row 3 belongs to image 4, outside 0..3"):
        FeatureSet(feats, [0, 1, 2, 4], 4)
    with pytest.raises(MetricInputError, match="row 1 is not finite"):
        FeatureSet(np.array([[0.0], [np.nan]]), [0, 1], 2)
    rng = np.random.default_rng(8)
    a = FeatureSet(rng.standard_normal((4, 3)), [0, 1, 2, 3], 4, name="reference")
    b = FeatureSet(rng.standard_normal((3, 3)), [0, 1, 2], 3, name="jpeg@50")
    with pytest.raises(MetricInputError, match="reference and jpeg@50 must cover the same"):
        fid(a, b)
    c = FeatureSet(rng.standard_normal((4, 3)), [0, 1, 2, 3], 4, name="webp@70")
    with pytest.raises(MetricInputError, match="\\(n_images=4,\\), got shape \\(2, 4\\)"):
        kid(a, c, np.ones((2, 4), int))
    with pytest.raises(MetricInputError, match="resample 0, image 2 is negative"):
        fid(a, c, [1, 1, -1, 1])
    with pytest.raises(MetricInputError, match="resample 1 holds 1 rows of reference"):
        fid_kid_many(a, c, [[1, 1, 1, 1], [0, 0, 1, 0]])


def test_module_imports_neither_pytorch_nor_clean_fid():
    code = (
        "import sys, discover.metrics.resample\n"
        "print(sorted({'torch', 'cleanfid', 'matplotlib', 'pandas'} & set(sys.modules)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "[]"
