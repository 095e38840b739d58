"""Bootstrap FID/KID from cached features: time per resample, and the cost of a row's interval.

Random features stand in for a dataset's reference features and one decoded set at one rate
point (the cost depends on the sizes, not on the values), for the Inception features (d=2048)
and the demo features (d=128), at three sizes:

* kodak: 24 images x 6 patches (768x512 px in 256-px patches), 144 rows;
* clic: 428 images x 7..11 patches (~9 per image), ~3,850 rows;
* coco: 5,000 images, whole-image protocol, one row each.

Resamples are drawn by ``bootstrap_counts`` and scored with ``fid_kid_grid`` (the reference side
of each resample computed once, shared by every decoded set). Printed per case:

* ref s/res: the reference side of one resample (its mean and scaled rows, on the d x d route
  the eigendecomposition of its covariance; KID's within-reference term, timed on a block of
  256 resamples as ``fid_kid_grid`` computes it), paid once per resample for all rows and rates;
* out s/res: one decoded set on one resample (its FID and KID terms), the rest of the grid's time;
* kernels s: KID's two kernel matrices of one decoded set, once per set (whatever the
  resamples; the reference kernel, once per dataset, is in the projection);
* parts s / grid s: the parts summed over the timed resamples, and ``fid_kid_grid`` on them end
  to end (a check that the parts account for the whole);
* clean-fid s/res: clean-fid on the explicitly repeated arrays of one resample
  (``fid_from_feats`` and ``kernel_distance`` over the whole sets), the route this replaces;
* 1000x5 row: projected seconds for 1,000 resamples x 5 rate points of one row, the reference
  side included (with more rows it is shared: each row adds only 5 x (kernels + 1,000 x out)).

    python benchmarks/bootstrap_fid.py [--resamples 5] [--sizes kodak clic coco] [--dims 2048 128]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from discover.metrics import resample
from discover.metrics.resample import (
    FeatureSet,
    ReferenceResamples,
    bootstrap_counts,
    fid_kid_grid,
    kernel,
)

#: name -> (images, rows per image: fixed, or a (low, high) range drawn per image)
SIZES: dict[str, tuple[int, int | tuple[int, int]]] = {
    "kodak": (24, 6),
    "clic": (428, (7, 11)),
    "coco": (5000, 1),
}
PROJECTED_RESAMPLES, PROJECTED_RATES = 1000, 5


def make_case(size: str, dim: int, seed: int = 0) -> tuple[FeatureSet, FeatureSet]:
    """Reference and decoded features of one size: non-negative, correlated, like pooled
    activations; the decoded ones a noisy copy (paired images, the same rows per image)."""
    n_images, per_image = SIZES[size]
    rng = np.random.default_rng(seed)
    if isinstance(per_image, tuple):
        rows = rng.integers(per_image[0], per_image[1] + 1, n_images)
    else:
        rows = np.full(n_images, per_image)
    image = np.repeat(np.arange(n_images), rows)
    mixing = rng.standard_normal((dim, dim)).astype(np.float32) / np.sqrt(dim)
    ref = np.abs(rng.standard_normal((len(image), dim)).astype(np.float32) @ mixing + 0.3)
    out = np.abs(ref + 0.2 * rng.standard_normal(ref.shape).astype(np.float32))
    return (
        FeatureSet(ref, image, n_images, name=f"{size} reference"),
        FeatureSet(out, image, n_images, name=f"{size} decoded"),
    )


def clean_fid_seconds(ref: FeatureSet, out: FeatureSet, counts: np.ndarray) -> float:
    """clean-fid on the repeated arrays of one resample (whole sets for KID)."""
    from cleanfid import fid  # only for the comparison (it imports PyTorch)

    t0 = time.perf_counter()
    r = np.repeat(ref.features, ref.row_weights(counts), axis=0)
    x = np.repeat(out.features, out.row_weights(counts), axis=0)
    fid.fid_from_feats(r, x)
    fid.kernel_distance(r, x, num_subsets=1, max_subset_size=max(len(r), len(x)))
    return time.perf_counter() - t0


def run_case(size: str, dim: int, resamples: int, baseline: bool) -> dict:
    ref, out = make_case(size, dim)
    counts = bootstrap_counts(ref.n_images, resamples, seed=0)

    # end to end: what a caller pays for one decoded set on these resamples
    reference = ReferenceResamples(ref, counts)
    t0 = time.perf_counter()
    fid_kid_grid(reference, {"rate": out})
    grid = time.perf_counter() - t0

    # the parts: kernels once per set, the reference and the decoded side of each resample;
    # KID's quadratic forms on a full block of resamples (a block reads each kernel once)
    kid_counts = bootstrap_counts(ref.n_images, max(resamples, resample.KID_BLOCK), seed=1)
    wr = ref.row_weights(kid_counts).astype(np.float64)
    wx = out.row_weights(kid_counts).astype(np.float64)
    t0 = time.perf_counter()
    k_rr = kernel(ref, ref)
    ref_kernel = time.perf_counter() - t0
    t0 = time.perf_counter()
    k_xx, k_rx = kernel(out, out), kernel(ref, out)
    out_kernels = time.perf_counter() - t0
    t0 = time.perf_counter()
    resample._within(ref, wr, k_rr)
    ref_kid = time.perf_counter() - t0
    t0 = time.perf_counter()
    resample._within(out, wx, k_xx), resample._quadratic(wr, k_rx, wx)
    out_kid = time.perf_counter() - t0

    reference = ReferenceResamples(ref, counts)
    out_fid = 0.0
    low_rank = 0
    for b in range(resamples):
        side_r = reference.side(b)  # reference side: timed in reference.seconds
        t0 = time.perf_counter()
        side_x = resample._side(out, out.row_weights(counts[b]))
        out_fid += time.perf_counter() - t0
        if resample._low_rank(side_r, side_x, dim):
            low_rank += 1
            t0 = time.perf_counter()
            resample._trace_sqrt_low_rank(side_r, side_x)
        else:
            root = reference.root(b)
            t0 = time.perf_counter()
            resample._trace_sqrt_square(root, side_x)
        out_fid += time.perf_counter() - t0
    ref_per = reference.seconds / resamples + ref_kid / len(kid_counts)
    out_per = out_fid / resamples + out_kid / len(kid_counts)
    projected = (
        ref_kernel
        + PROJECTED_RESAMPLES * ref_per
        + PROJECTED_RATES * (out_kernels + PROJECTED_RESAMPLES * out_per)
    )
    route = {resamples: "low-rank", 0: "d x d"}.get(low_rank, "mixed")
    return {
        "size": size,
        "dim": dim,
        "images": ref.n_images,
        "rows": len(ref),
        "route": route,
        "ref_per": ref_per,
        "out_per": out_per,
        "kernels": out_kernels,
        "parts": ref_kernel + out_kernels + resamples * (ref_per + out_per),
        "grid": grid,
        "clean_fid": clean_fid_seconds(ref, out, counts[0]) if baseline else float("nan"),
        "projected": projected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resamples", type=int, default=5, help="resamples timed per case")
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=list(SIZES))
    parser.add_argument("--dims", nargs="+", type=int, default=[2048, 128])
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip timing clean-fid on one resample"
    )
    args = parser.parse_args()

    print(
        f"{'case':>5s} {'d':>4s} {'images':>6s} {'rows':>5s} {'route':>8s} {'ref s/res':>9s} "
        f"{'out s/res':>9s} {'kernels s':>9s} {'parts s':>8s} {'grid s':>7s} "
        f"{'clean-fid s/res':>15s} {'1000x5 row s':>12s}"
    )
    for dim in args.dims:
        for size in args.sizes:
            r = run_case(size, dim, args.resamples, not args.no_baseline)
            print(
                f"{r['size']:>5s} {r['dim']:4d} {r['images']:6d} {r['rows']:5d} "
                f"{r['route']:>8s} {r['ref_per']:9.4f} {r['out_per']:9.4f} {r['kernels']:9.3f} "
                f"{r['parts']:8.2f} {r['grid']:7.2f} {r['clean_fid']:15.3f} "
                f"{r['projected']:12.0f}"
            )
    print(
        f"{args.resamples} resamples per case; parts s = the parts summed for them, grid s = "
        "fid_kid_grid on them end to end (one decoded set)"
    )


if __name__ == "__main__":
    main()
