"""Cost of bootstrap confidence intervals of COCO AP, against the evaluation itself.

A COCO-val-sized synthetic case (default 5,000 images, 80 categories with a long-tailed
frequency, about 7 objects per image with COCO's size mix: about 41 % small, 34 % medium,
25 % large, 1 % crowds; 100 box detections per image: jittered hits and duplicates of the
objects, the rest false positives) stands for the predictions of one codec at one rate point.
Timed on it, best of ``--repeat``:

- ``coco_evaluate`` with faster-coco-eval and with pycocotools (the evaluation of a rate point);
- ``coco_records`` (one pycocotools ``evaluate()`` plus turning its per-image results into
  arrays), and ``ap_many`` of ``--resamples`` bootstrap resamples (multinomial counts);
- whether ``CocoRecords.ap()`` equals pycocotools' AP (to 1e-12) and ``ap_many`` of the
  unresampled row equals it.

Prints the seconds of each, the bootstrap cost (records + resamples) per rate point and for
one codec x 5 rate points (5 x the rate point: every rate point has its own predictions), and
that cost divided by the evaluation's with each evaluator.

    python benchmarks/bootstrap_ap.py [--images 5000] [--resamples 1000] [--repeat 1] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from discover.tasks.coco_records import coco_records
from discover.tasks.evaluation import coco_evaluate

RATES = 5
SIZE_MIX = {"small": (0.41, 4.0, 32.0), "medium": (0.34, 32.0, 96.0), "large": (0.25, 96.0, 400.0)}


def synthetic_case(n_images: int, n_categories: int, seed: int) -> tuple[dict, list[dict]]:
    """COCO ground truth and 100 detections per image (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    frequency = 1.0 / np.arange(1, n_categories + 1) ** 0.9  # a long tail, as COCO's
    frequency /= frequency.sum()
    shares = np.array([v[0] for v in SIZE_MIX.values()])
    images, annotations, predictions = [], [], []
    for iid in range(1, n_images + 1):
        height, width = (480, 640) if rng.random() < 0.7 else (640, 480)
        images.append({"id": iid, "height": height, "width": width, "file_name": f"{iid}.jpg"})
        n_objects = int(rng.poisson(7.3))
        categories = rng.choice(n_categories, n_objects, p=frequency) + 1
        sizes = rng.choice(len(SIZE_MIX), n_objects, p=shares)
        detections = []
        for category, size in zip(categories, sizes, strict=True):
            _, lo, hi = list(SIZE_MIX.values())[size]
            side = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            aspect = float(np.exp(rng.normal(0, 0.4)))
            w = min(side * aspect, width - 1.0)
            h = min(side / aspect, height - 1.0)
            x, y = float(rng.uniform(0, width - w)), float(rng.uniform(0, height - h))
            crowd = int(rng.random() < 0.01)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": iid,
                    "category_id": int(category),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": crowd,
                }
            )
            found = rng.random() < (0.55, 0.8, 0.9)[size]  # small objects are found less often
            for k in range(int(found) + int(found and rng.random() < 0.3)):  # hit, duplicate
                spread = 0.08 if k == 0 else 0.25
                dx, dy, dw, dh = rng.normal(0, spread, 4) * [w, h, w, h]
                score = rng.beta(5, 2) if k == 0 else rng.beta(2, 4)
                box = [x + dx, y + dy, max(1.0, w + dw), max(1.0, h + dh)]
                detections.append((int(category), box, float(score)))
        own = list(categories) or [1]
        for _ in range(max(0, 100 - len(detections))):  # false positives
            side = float(np.exp(rng.uniform(np.log(6.0), np.log(300.0))))
            w, h = min(side, width - 1.0), min(side, height - 1.0)
            box = [float(rng.uniform(0, width - w)), float(rng.uniform(0, height - h)), w, h]
            near = rng.random() < 0.5
            category = int(rng.choice(own)) if near else int(rng.integers(1, n_categories + 1))
            detections.append((category, box, float(rng.beta(1, 5))))
        for category, box, score in detections[:100]:
            predictions.append(
                {"image_id": iid, "category_id": category, "bbox": box, "score": score}
            )
    gt = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c, "name": f"class {c}"} for c in range(1, n_categories + 1)],
    }
    return gt, predictions


def best_of(repeat: int, fn, *args, **kwargs):
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    return min(times), result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--categories", type=int, default=80)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    gt, preds = synthetic_case(args.images, args.categories, args.seed)
    print(
        f"case: {len(gt['images'])} images, {args.categories} categories, "
        f"{len(gt['annotations'])} objects, {len(preds)} detections (bbox), made in "
        f"{time.perf_counter() - t0:.1f} s; {os.cpu_count()} CPUs, best of {args.repeat}"
    )
    faster_s, faster = best_of(args.repeat, coco_evaluate, preds, gt, evaluator="faster-coco-eval")
    ref_s, ref = best_of(args.repeat, coco_evaluate, preds, gt, evaluator="pycocotools")
    records_s, records = best_of(args.repeat, coco_records, preds, gt)
    n = records.n_images
    counts = np.random.default_rng(args.seed).multinomial(n, [1.0 / n] * n, size=args.resamples)
    records.ap_many(counts[:1])  # index arrays are made once per records object
    many_s, many = best_of(args.repeat, records.ap_many, counts)

    own = records.ap()
    whole = records.ap_many(np.ones((1, n), int))

    def same(a: float | None, b: float | None, tol: float) -> bool:
        return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= tol)

    equal = all(same(own[k], ref[k], 1e-12) for k in ref) and all(
        same(None if np.isnan(whole[k][0]) else float(whole[k][0]), ref[k], 1e-12) for k in ref
    )
    fast_equal = all(same(faster[k], ref[k], 1e-9) for k in ref)
    objects = records.objects()
    print(
        f"AP {ref['bbox_AP']:.4f} (AP50 {ref['bbox_AP50']:.4f}, APs/m/l {ref['bbox_APs']:.4f}/"
        f"{ref['bbox_APm']:.4f}/{ref['bbox_APl']:.4f}); objects all/s/m/l "
        f"{objects['bbox_AP']}/{objects['bbox_APs']}/{objects['bbox_APm']}/{objects['bbox_APl']}"
    )
    print(
        f"records.ap() == pycocotools: {'yes' if equal else 'NO'}; faster-coco-eval == "
        f"pycocotools: {'yes' if fast_equal else 'NO'}; "
        f"bootstrap sd of AP over {args.resamples}: {np.nanstd(many['bbox_AP']):.4f}"
    )
    boot_s = records_s + many_s
    rows = [
        ("coco_evaluate faster-coco-eval", faster_s),
        ("coco_evaluate pycocotools", ref_s),
        ("coco_records (evaluate + arrays)", records_s),
        (f"ap_many, {args.resamples} resamples", many_s),
        ("  per resample", many_s / max(1, args.resamples)),
        ("bootstrap per rate point", boot_s),
        (f"bootstrap, 1 codec x {RATES} rates", RATES * boot_s),
    ]
    print(f"\n{'step':40s} {'seconds':>9s}")
    for label, seconds in rows:
        print(f"{label:40s} {seconds:9.3f}")
    print(f"\n{'bootstrap / evaluation':40s} {'ratio':>9s}")
    print(f"{'vs faster-coco-eval':40s} {boot_s / faster_s:9.2f}")
    print(f"{'vs pycocotools':40s} {boot_s / ref_s:9.2f}")
    print(f"{'ap_many alone vs faster-coco-eval':40s} {many_s / faster_s:9.2f}")
    return 0 if equal and fast_equal else 2


if __name__ == "__main__":
    sys.exit(main())
