"""Exact FID and KID of resampled image multisets, from features computed once.

A bootstrap confidence interval of a row's FID/KID recomputes both on many resampled image sets.
Re-extracting features per resample is out of the question, and so is building the repeated
feature arrays and handing them to clean-fid each time (a 5,000 x 2,048 covariance and a
``scipy.linalg.sqrtm`` of a 2,048 x 2,048 product per resample and decoded set). Here the
features of the reference and of a decoded set are kept once (:class:`FeatureSet`), a resample
is a vector of image multiplicities ``counts`` (the same for both sets: the pairs stay paired),
and the resampled set is every feature row of image ``i`` repeated ``counts[i]`` times. Under the
whole-image protocol an image has one row; under the patch protocols (discover.metrics.patches)
it has one per patch, and images may have different numbers of patches.

FID. :func:`fid` equals clean-fid's ``fid.frechet_distance(mu1, sigma1, mu2, sigma2)`` with
``mu = np.mean(x, axis=0)`` and ``sigma = np.cov(x, rowvar=False)`` of the repeated arrays (what
``fid.fid_from_feats`` computes, discover.metrics.fid). The mean and covariance come from row
weights (weight of a row = ``counts`` of its image). The trace term tr sqrt(S1 S2) is computed
without ``sqrtm``: with S = Y^T Y, where Y holds the rows of non-zero weight, centred, scaled by
sqrt(weight / (n - 1)) (n = rows of the repeated set),

- *low-rank route* (both sets have fewer such rows than dimensions): tr sqrt(S1 S2) is the sum
  of the singular values of Y1 Y2^T, a (rows1 x rows2) matrix;
- *d x d route* (otherwise): with S1 = V diag(l) V^T, tr sqrt(S1 S2) is the sum of the singular
  values of Z = Y2 V diag(sqrt l) (right-multiplying by V^T keeps them), the square roots of the
  eigenvalues of Z^T Z or Z Z^T, whichever is smaller. V diag(sqrt l) is the reference's share
  of the work and is computed once per resample for every decoded set (:func:`fid_kid_grid`).

Both are exact in exact arithmetic; clean-fid's ``sqrtm`` of the non-symmetric product S1 S2
is the approximation (it also drops an imaginary part below 1e-3 and, when the root is not
finite, adds 1e-6 to the diagonals). Measured in tests/test_resample.py: on the d x d route
(more rows than dimensions, well conditioned) the two agree to a relative 1e-12 (asserted:
1e-9). On the low-rank route S1 S2 is singular, and a float64 covariance turns its zero
eigenvalues into +-1e-16, whose square roots (1e-8 each) ``sqrtm`` adds to the trace: clean-fid
is off by about 1e-8 of tr S1 + tr S2 + |mu1 - mu2|^2 (a relative 1e-7 to 1e-6 of the FID),
while the singular values of Y1 Y2^T keep the exact rank and agree with a 40-digit computation
on the repeated arrays to a relative 1e-12 or better (asserted: 1e-10). Everything here is
float64; on float32 features clean-fid keeps ``np.mean`` and KID's kernels in float32, so the
two agree only up to float32 rounding there.

KID. :func:`kid` is the unbiased MMD^2 with clean-fid's kernel k(x, y) = (x.y / d + 1)^3 over
the whole repeated sets: with c the row weights and K the kernel matrix of the (unique) rows,
(c^T K c - sum_i c_i K_ii) / (n (n - 1)) within each set (pairs of distinct copies, so two copies
of one row count as a pair), c_r^T K_rx c_x / (n_r n_x) across, KID = within_r + within_x -
2 across. This is what ``fid.kernel_distance`` returns when both sets have the same number of
rows and at most ``max_subset_size`` (then every one of its subsets is the whole set); for larger
or unequal sets clean-fid averages random subsets of min(n_r, n_x, max_subset_size) rows, and
the expectation of that average is this value (every pair of rows is equally likely to be in a
subset).

Bootstrap. :func:`bootstrap_counts` draws the resamples (``default_rng(seed).integers``);
:func:`kid_standard_error` is the bootstrap standard error of KID over images. This module
needs numpy and scipy only (no PyTorch, no clean-fid).
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import scipy.linalg

from discover.errors import MetricInputError
from discover.resampling import resample_counts

Key = TypeVar("Key", bound=Hashable)

#: resamples per block of the vectorised KID quadratic forms (bounds memory to block x rows)
KID_BLOCK = 256


class FeatureSet:
    """Feature rows of one image set and the image each row belongs to.

    ``features`` is (rows, d); ``image`` (rows,) holds each row's image index in
    ``0 .. n_images - 1`` (an image may have no row, e.g. one too small for a patch). ``name``
    labels the set in error messages. The features are kept as float64, with the diagonal of
    the KID kernel; the (rows x rows) kernel itself is computed when needed, not kept (5,000
    rows would hold 200 MB per set)."""

    def __init__(self, features, image, n_images: int, *, name: str = "feature set") -> None:
        self.name = name
        feats = np.asarray(features)
        if feats.ndim != 2 or feats.shape[1] < 1:
            raise MetricInputError(
                f"{name}: features must be a (rows, dims) array, got shape {feats.shape}"
            )
        if not np.issubdtype(feats.dtype, np.number) or np.iscomplexobj(feats):
            raise MetricInputError(f"{name}: features must be real numbers, got {feats.dtype}")
        feats = feats.astype(np.float64)
        if not np.isfinite(feats).all():
            bad = int(np.flatnonzero(~np.isfinite(feats).all(axis=1))[0])
            raise MetricInputError(f"{name}: features row {bad} is not finite")
        image = np.asarray(image)
        if image.shape != (feats.shape[0],):
            raise MetricInputError(
                f"{name}: image must hold one index per feature row ({feats.shape[0]}), "
                f"got shape {image.shape}"
            )
        if image.size and not np.issubdtype(image.dtype, np.integer):
            raise MetricInputError(f"{name}: image indices must be integers, got {image.dtype}")
        if int(n_images) != n_images or n_images < 1:
            raise MetricInputError(f"{name}: n_images must be a positive integer, got {n_images}")
        n_images = int(n_images)
        if image.size and (image.min() < 0 or image.max() >= n_images):
            bad = int(np.flatnonzero((image < 0) | (image >= n_images))[0])
            raise MetricInputError(
                f"{name}: row {bad} belongs to image {int(image[bad])}, outside "
                f"0..{n_images - 1} (n_images={n_images})"
            )
        self.features = feats
        self.image = image.astype(np.int64)
        self.n_images = n_images
        self.dim = feats.shape[1]
        #: feature rows of each image
        self.rows_per_image = np.bincount(self.image, minlength=n_images)
        #: k(x_i, x_i) of clean-fid's kernel, the diagonal KID's unbiased estimate leaves out
        self.kernel_diagonal = (np.einsum("ij,ij->i", feats, feats) / self.dim + 1.0) ** 3

    def __len__(self) -> int:
        return self.features.shape[0]

    def __repr__(self) -> str:
        return (
            f"FeatureSet({self.name!r}, rows={len(self)}, dim={self.dim}, n_images={self.n_images})"
        )

    def row_weights(self, counts: np.ndarray) -> np.ndarray:
        """Weight of each row (how often it is in the resampled set): ``counts`` of its image;
        (B, rows) for a (B, n_images) counts matrix."""
        return counts[..., self.image]


def kernel(a: FeatureSet, b: FeatureSet) -> np.ndarray:
    """clean-fid's KID kernel (x.y / d + 1)^3 between every row of ``a`` and of ``b``."""
    return (a.features @ b.features.T / a.dim + 1.0) ** 3


def bootstrap_counts(n_images: int, resamples: int, seed: int = 0) -> np.ndarray:
    """(resamples, n_images) image multiplicities of a bootstrap over images: the draw of
    :func:`discover.resampling.resample_counts` (the one the BD intervals use)."""
    return resample_counts(n_images, resamples, seed)


def _check_pair(ref: FeatureSet, out: FeatureSet) -> None:
    for s in (ref, out):
        if not isinstance(s, FeatureSet):
            raise MetricInputError(f"expected a FeatureSet, got {type(s).__name__}")
    if ref.n_images != out.n_images:
        raise MetricInputError(
            f"{ref.name} and {out.name} must cover the same images (paired resamples): "
            f"n_images {ref.n_images} vs {out.n_images}"
        )
    if ref.dim != out.dim:
        raise MetricInputError(
            f"{ref.name} and {out.name} have features of different dimensions: "
            f"{ref.dim} vs {out.dim}"
        )


def _counts_matrix(counts, n_images: int, sets: tuple[FeatureSet, ...]) -> np.ndarray:
    """``counts`` as a validated (B, n_images) int64 matrix; each resampled set needs >= 2 rows."""
    c = np.asarray(counts)
    if c.ndim != 2 or c.shape[1] != n_images:
        raise MetricInputError(
            f"counts must be (resamples, n_images={n_images}) image multiplicities, "
            f"got shape {c.shape}"
        )
    if c.size and not np.issubdtype(c.dtype, np.integer):
        if not np.issubdtype(c.dtype, np.floating) or not np.array_equal(c, np.round(c)):
            raise MetricInputError(f"counts must be whole numbers, got {c.dtype} values")
    c = c.astype(np.int64)
    if c.size and c.min() < 0:
        b, i = (int(v[0]) for v in np.nonzero(c < 0))
        raise MetricInputError(f"counts of resample {b}, image {i} is negative ({c[b, i]})")
    for s in sets:
        n = c @ s.rows_per_image
        if c.shape[0] and n.min() < 2:  # a covariance and KID's unbiased estimate need two
            b = int(np.argmin(n))
            raise MetricInputError(
                f"resample {b} holds {int(n[b])} rows of {s.name}; FID/KID need at least 2"
            )
    return c


@dataclass
class _Side:
    """One resampled set, as FID needs it: mean, trace of covariance, the scaled centred rows."""

    mean: np.ndarray
    trace: float
    scaled: np.ndarray  # Y: rows of non-zero weight, centred, * sqrt(weight / (n - 1))


def _side(s: FeatureSet, weights: np.ndarray) -> _Side:
    keep = weights > 0
    w = weights[keep].astype(np.float64)
    x = s.features[keep]
    n = w.sum()
    mean = w @ x / n
    y = (x - mean) * np.sqrt(w / (n - 1.0))[:, None]
    return _Side(mean, float(np.einsum("ij,ij->", y, y)), y)


def _root(side: _Side) -> np.ndarray:
    """V diag(sqrt l) of S = Y^T Y = V diag(l) V^T, columns of zero eigenvalue dropped."""
    lam, vec = np.linalg.eigh(side.scaled.T @ side.scaled)
    keep = lam > 0
    return vec[:, keep] * np.sqrt(lam[keep])


def _low_rank(ref: _Side, out: _Side, dim: int) -> bool:
    return max(len(ref.scaled), len(out.scaled)) < dim


def _trace_sqrt_low_rank(ref: _Side, out: _Side) -> float:
    """tr sqrt(S1 S2) = nuclear norm of Y1 Y2^T."""
    return float(np.linalg.svd(ref.scaled @ out.scaled.T, compute_uv=False).sum())


def _trace_sqrt_square(root: np.ndarray, out: _Side) -> float:
    """tr sqrt(S1 S2) = nuclear norm of Z = Y2 V diag(sqrt l), from the smaller Gram of Z."""
    z = out.scaled @ root
    gram = z @ z.T if z.shape[0] < z.shape[1] else z.T @ z
    eig = scipy.linalg.eigh(gram, eigvals_only=True, driver="evd", check_finite=False)
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def _frechet(ref: _Side, out: _Side, trace_sqrt: float) -> float:
    diff = ref.mean - out.mean
    return float(diff @ diff + ref.trace + out.trace - 2.0 * trace_sqrt)


def _one(ref: FeatureSet, out: FeatureSet, counts) -> np.ndarray:
    _check_pair(ref, out)
    c = np.ones(ref.n_images, np.int64) if counts is None else np.asarray(counts)
    if c.ndim != 1:
        raise MetricInputError(
            f"counts of one resample must be (n_images={ref.n_images},), got shape {c.shape}"
        )
    return _counts_matrix(c[None], ref.n_images, (ref, out))[0]


def fid(ref: FeatureSet, out: FeatureSet, counts=None) -> float:
    """FID of the resampled sets: clean-fid's ``frechet_distance`` of the mean and covariance
    of the repeated arrays (each row of image i ``counts[i]`` times; every row once when
    ``counts`` is None). Low-rank or d x d route as in the module docstring."""
    c = _one(ref, out, counts)
    a, b = _side(ref, ref.row_weights(c)), _side(out, out.row_weights(c))
    if _low_rank(a, b, ref.dim):
        return _frechet(a, b, _trace_sqrt_low_rank(a, b))
    return _frechet(a, b, _trace_sqrt_square(_root(a), b))


def _quadratic(weights: np.ndarray, k: np.ndarray, other: np.ndarray | None = None) -> np.ndarray:
    """w_b^T K v_b for each resample b (v = w when ``other`` is None), in blocks of resamples."""
    other = weights if other is None else other
    out = np.empty(len(weights))
    for lo in range(0, len(weights), KID_BLOCK):
        w, v = weights[lo : lo + KID_BLOCK], other[lo : lo + KID_BLOCK]
        out[lo : lo + KID_BLOCK] = np.einsum("bj,bj->b", w @ k, v)
    return out


def _within(s: FeatureSet, weights: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Mean kernel over ordered pairs of distinct copies in each resampled set (B,)."""
    n = weights.sum(axis=1)
    pairs = _quadratic(weights, k) - weights @ s.kernel_diagonal
    return pairs / (n * (n - 1.0))


def kid(ref: FeatureSet, out: FeatureSet, counts=None) -> float:
    """KID of the resampled sets: the unbiased MMD^2 with clean-fid's kernel (x.y / d + 1)^3
    over the whole repeated sets (module docstring). It equals ``fid.kernel_distance`` on the
    repeated arrays when both have the same number of rows, at most ``max_subset_size``; for
    larger (or unequal) sets clean-fid averages random subsets, whose expectation is this
    value. For many resamples of one pair use :func:`fid_kid_many` (the kernels once)."""
    c = _one(ref, out, counts)[None]
    return float(_kid_all(ref, out, c)[0])


def _kid_all(
    ref: FeatureSet, out: FeatureSet, counts: np.ndarray, ref_within: np.ndarray | None = None
) -> np.ndarray:
    wr, wx = ref.row_weights(counts).astype(np.float64), out.row_weights(counts).astype(np.float64)
    if ref_within is None:
        ref_within = _within(ref, wr, kernel(ref, ref))
    out_within = _within(out, wx, kernel(out, out))
    across = _quadratic(wr, kernel(ref, out), wx) / (wr.sum(axis=1) * wx.sum(axis=1))
    return ref_within + out_within - 2.0 * across


class ReferenceResamples:
    """The reference's side of B paired resamples, shared by every decoded set scored on them.

    Built from the reference :class:`FeatureSet` and a (B, n_images) counts matrix (e.g.
    :func:`bootstrap_counts`). What depends on the reference and the resample alone is computed
    here once: KID's within-reference term of every resample (one reference kernel, all B at
    once), and per resample the mean, trace and scaled rows of the reference and, on the d x d
    route, V diag(sqrt l) of its covariance (the eigendecomposition, the costly part).
    :func:`fid_kid_grid` walks the resamples once and scores every decoded set on each, so 10
    rows x 5 rates x 1,000 resamples cost 1,000 reference sides, not 50,000.
    ``sides_computed`` and ``roots_computed`` count that work, ``seconds`` its time."""

    def __init__(self, ref: FeatureSet, counts) -> None:
        if not isinstance(ref, FeatureSet):
            raise MetricInputError(f"expected the reference FeatureSet, got {type(ref).__name__}")
        self.ref = ref
        self.counts = _counts_matrix(counts, ref.n_images, (ref,))
        self.sides_computed = 0
        self.roots_computed = 0
        self.seconds = 0.0
        self._kid_within: np.ndarray | None = None
        self._cached: tuple[int, _Side, list[np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self.counts)

    def kid_within(self) -> np.ndarray:
        """KID's within-reference term of every resample (B,), computed on first use."""
        if self._kid_within is None:
            start = time.perf_counter()
            wr = self.ref.row_weights(self.counts).astype(np.float64)
            self._kid_within = _within(self.ref, wr, kernel(self.ref, self.ref))
            self.seconds += time.perf_counter() - start
        return self._kid_within

    def side(self, b: int) -> _Side:
        """Mean, covariance trace and scaled rows of resample ``b`` (the last one is kept)."""
        if self._cached is None or self._cached[0] != b:
            start = time.perf_counter()
            self._cached = (b, _side(self.ref, self.ref.row_weights(self.counts[b])), [])
            self.sides_computed += 1
            self.seconds += time.perf_counter() - start
        return self._cached[1]

    def root(self, b: int) -> np.ndarray:
        """V diag(sqrt l) of resample ``b``'s covariance (the d x d route), kept with its side."""
        side = self.side(b)
        roots = self._cached[2]
        if not roots:
            start = time.perf_counter()
            roots.append(_root(side))
            self.roots_computed += 1
            self.seconds += time.perf_counter() - start
        return roots[0]


def fid_kid_grid(
    reference: ReferenceResamples, outs: Mapping[Key, FeatureSet]
) -> dict[Key, dict[str, np.ndarray]]:
    """FID and KID of every decoded set in ``outs`` on each of the reference's resamples.

    Returns ``{key: {"fid": (B,), "kid": (B,)}}``; entry b of each is :func:`fid` /
    :func:`kid` with ``counts = reference.counts[b]``. The resamples are walked once, in order,
    and each resample's reference side is computed once for all of ``outs``; KID takes every
    resample of one decoded set at once (its kernels are computed per set and dropped)."""
    if not isinstance(reference, ReferenceResamples):
        raise MetricInputError(
            f"expected ReferenceResamples (reference side of the resamples), got "
            f"{type(reference).__name__}"
        )
    ref, counts = reference.ref, reference.counts
    for out in outs.values():
        _check_pair(ref, out)
        _counts_matrix(counts, ref.n_images, (out,))
    results = {
        key: {
            "fid": np.empty(len(counts)),
            "kid": _kid_all(ref, out, counts, reference.kid_within()),
        }
        for key, out in outs.items()
    }
    for b in range(len(counts)):
        a = reference.side(b)
        for key, out in outs.items():
            side = _side(out, out.row_weights(counts[b]))
            if _low_rank(a, side, ref.dim):
                trace_sqrt = _trace_sqrt_low_rank(a, side)
            else:
                trace_sqrt = _trace_sqrt_square(reference.root(b), side)
            results[key]["fid"][b] = _frechet(a, side, trace_sqrt)
    return results


def fid_kid_many(
    ref: FeatureSet | ReferenceResamples, out: FeatureSet, counts_matrix=None
) -> dict[str, np.ndarray]:
    """FID and KID of one decoded set on B resamples: ``{"fid": (B,), "kid": (B,)}``, row b
    equal to :func:`fid` / :func:`kid` with ``counts_matrix[b]``.

    ``ref`` is the reference FeatureSet with ``counts_matrix`` (B, n_images), or a prepared
    :class:`ReferenceResamples` (then ``counts_matrix`` is its own and may be left out). To
    score several decoded sets (rows, rates) on the same resamples, pass them together to
    :func:`fid_kid_grid`, which computes each resample's reference side once for all."""
    if isinstance(ref, ReferenceResamples):
        if counts_matrix is not None and not np.array_equal(counts_matrix, ref.counts):
            raise MetricInputError(
                "counts_matrix differs from the resamples the ReferenceResamples was built on"
            )
        reference = ref
    else:
        if counts_matrix is None:
            raise MetricInputError("fid_kid_many needs counts_matrix (resamples, n_images)")
        reference = ReferenceResamples(ref, counts_matrix)
    return fid_kid_grid(reference, {0: out})[0]


def kid_standard_error(
    ref: FeatureSet, out: FeatureSet, resamples: int = 100, seed: int = 0
) -> float:
    """Bootstrap standard error of KID over images: the sample standard deviation (ddof=1) of
    :func:`kid` on ``resamples`` paired resamples drawn by :func:`bootstrap_counts` with
    ``seed`` (deterministic for a seed)."""
    _check_pair(ref, out)
    if int(resamples) < 2:
        raise MetricInputError(f"a standard error needs at least 2 resamples, got {resamples}")
    counts = _counts_matrix(
        bootstrap_counts(ref.n_images, int(resamples), seed), ref.n_images, (ref, out)
    )
    return float(np.std(_kid_all(ref, out, counts), ddof=1))
