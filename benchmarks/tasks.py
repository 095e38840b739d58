"""Task inference throughput and COCO evaluator speed.

1. Images/s of each task model through ``task.predict`` (protocol, model, post-processing,
   RLE encoding included) at batch sizes 1, 4 and 8, on CPU and on CUDA when present; "x b1"
   is the speed-up over batch size 1 of the same model and device, measured in the same run.
   Models: the small ones trained here (``--checkpoint KIND=PATH``, a state dict with its
   sidecar; random weights otherwise) and the
   paper's torchvision Faster R-CNN / Mask R-CNN R50-FPN and ResNet-50 (random weights: the
   work per image is the same, but an untrained detector's box count differs from a
   trained one's, so their post-processing time is only indicative).
2. faster-coco-eval against pycocotools on the same predictions (bbox and segm): seconds of
   each, ratio pycocotools / faster-coco-eval, and a check that every AP agrees to 1e-9.
   faster-coco-eval runs with ``coco_evaluate``'s mask-IoU threads (one) or with each
   ``--rle-workers`` count.

    python benchmarks/tasks.py [--images 16] [--eval-images 500] [--skip-large] [--threads 2]
        [--devices cpu,cuda] [--rle-workers 1 --rle-workers 8]
        [--checkpoint detection=weights/scenes-detector/model.pt ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

from discover.datasets.synthetic_scenes import CATEGORIES, SceneGenerator, SyntheticScenes
from discover.tasks import build_task_model, coco_evaluate, get_task

BATCH_SIZES = (1, 4, 8)
SMALL = {
    "detection": ("custom-small", {"min_size": 256, "max_size": 512}),
    "instance_segmentation": ("custom-small-mask", {"min_size": 256, "max_size": 512}),
    "classification": ("mini-resnet", {}),
}
LARGE = {
    "detection": "fasterrcnn_resnet50_fpn",
    "instance_segmentation": "maskrcnn_resnet50_fpn",
    "classification": "resnet50",
}


def small_model(kind: str, checkpoints: dict[str, str], device: str):
    if kind in checkpoints:
        cfg = {"tasks": {kind: {"weights": str(checkpoints[kind]), "device": device}}}
        return "trained", get_task(kind, cfg).model
    arch, options = SMALL[kind]
    if kind == "classification":
        protocol = {"resize": [128, 128]}
        return "random", build_task_model(kind, arch, CATEGORIES, protocol=protocol, device=device)
    classes = ["__background__", *CATEGORIES]
    return "random", build_task_model(kind, arch, classes, device=device, **options)


def large_model(kind: str, device: str):
    torch.manual_seed(0)
    if kind == "classification":
        classes = [f"class {i}" for i in range(1000)]
        return build_task_model(kind, LARGE[kind], classes, protocol="imagenet-val", device=device)
    return build_task_model(kind, LARGE[kind], [f"c{i}" for i in range(91)], device=device)


def throughput(kind: str, model, images, batch_size: int, device: str, repeat: int) -> float:
    """Images per second of ``task.predict`` (median of ``repeat`` passes after a warm-up)."""
    cfg = {"tasks": {kind: {"batch_size": batch_size, "device": device}}}
    task = get_task(kind, cfg, model=model)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    task.predict(images[:batch_size])  # warm-up: allocator, cuDNN autotuning, lazy imports
    times = []
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        task.predict(images)
        sync()
        times.append(time.perf_counter() - t0)
    return len(images) / statistics.median(times)


def run_throughput(args: argparse.Namespace) -> None:
    gen = SceneGenerator(0, "val", 256, 512, 2, 6)
    images = [(i, gen.render(i)[0]) for i in range(args.images)]
    devices = args.devices.split(",") if args.devices else ["cpu"]
    if not args.devices and torch.cuda.is_available():
        devices.append("cuda")
    print(
        f"throughput: {args.images} synthetic scenes (256-512 px; R50 models on CPU: "
        f"{max(BATCH_SIZES)}), images/s of task.predict, median of {args.repeat}"
    )
    print(f"{'model':50s} {'device':6s} {'batch':>5s} {'img/s':>8s} {'x b1':>6s}")
    for device in devices:
        for kind in SMALL:
            checkpoints = dict(entry.split("=", 1) for entry in args.checkpoint)
            rows = [(small_model(kind, checkpoints, device), SMALL[kind][0], images)]
            if not args.skip_large:
                # R50 detectors upscale to 800 px: seconds per image on CPU, so fewer images
                few = images[: max(BATCH_SIZES)] if device == "cpu" else images
                rows.append((("random", large_model(kind, device)), LARGE[kind], few))
            for (weights, model), arch, batch in rows:
                base = None
                for batch_size in BATCH_SIZES:
                    rate = throughput(kind, model, batch, batch_size, device, args.repeat)
                    base = base or rate
                    label = f"{kind} {arch} ({weights})"
                    print(
                        f"{label:50s} {device:6s} {batch_size:5d} {rate:8.2f} {rate / base:6.2f}",
                        flush=True,
                    )


def noisy_predictions(gt: dict, seed: int = 0) -> list[dict]:
    """Per object a near hit and a worse duplicate, per image two false positives."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    preds = []
    for ann in gt["annotations"]:
        mask = mask_utils.decode(ann["segmentation"])
        for shift in (1, 6):
            moved = np.roll(mask, tuple(int(v) for v in rng.integers(-shift, shift + 1, 2)), (0, 1))
            rle = mask_utils.encode(np.asfortranarray(moved))
            x, y, w, h = ann["bbox"]
            dx, dy, dw, dh = rng.normal(0, shift / 2, 4)
            preds.append(
                {
                    "image_id": ann["image_id"],
                    "category_id": ann["category_id"],
                    "bbox": [x + dx, y + dy, max(1.0, w + dw), max(1.0, h + dh)],
                    "score": float(rng.uniform(0, 1)),
                    "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                }
            )
    for img in gt["images"]:
        for _ in range(2):
            h, w = img["height"], img["width"]
            y0, x0 = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
            box = np.zeros((h, w), np.uint8)
            box[y0 : y0 + h // 4, x0 : x0 + w // 4] = 1
            rle = mask_utils.encode(np.asfortranarray(box))
            preds.append(
                {
                    "image_id": img["id"],
                    "category_id": int(rng.integers(1, len(CATEGORIES) + 1)),
                    "bbox": [float(x0), float(y0), float(w // 4), float(h // 4)],
                    "score": float(rng.uniform(0, 1)),
                    "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                }
            )
    return preds


def run_evaluators(args: argparse.Namespace) -> bool:
    dataset = SyntheticScenes(
        "val", {"split": "val", "num_images": args.eval_images, "max_size": 384}, seed=0
    )
    gt = dataset.annotations(dataset.list_items(), {})
    preds = noisy_predictions(gt)
    print(
        f"\nevaluators: {len(gt['images'])} images, {len(gt['annotations'])} objects, "
        f"{len(preds)} predictions (best of {args.repeat}); {os.cpu_count()} CPUs"
    )

    def best_of(evaluator: str, iou_type: str, workers: int) -> tuple[float, dict]:
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = coco_evaluate(preds, gt, iou_type, evaluator=evaluator, rle_workers=workers)
            times.append(time.perf_counter() - t0)
        return min(times), result

    print(
        f"{'iou':5s} {'workers':>7s} {'pycocotools s':>14s} {'faster s':>10s} {'ratio':>7s}  "
        "AP equal"
    )
    ok = True
    for iou_type in ("bbox", "segm"):
        ref_s, ref = best_of("pycocotools", iou_type, 1)
        for workers in args.rle_workers or [1]:
            fast_s, fast = best_of("faster-coco-eval", iou_type, workers)
            equal = all(
                (ref[k] is None and fast[k] is None) or abs(ref[k] - fast[k]) <= 1e-9 for k in ref
            )
            ok &= equal
            print(
                f"{iou_type:5s} {workers:>7} {ref_s:14.3f} {fast_s:10.3f} "
                f"{ref_s / fast_s:7.2f}  {'yes' if equal else 'NO'} "
                f"(AP {ref[f'{iou_type}_AP']:.4f})"
            )
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=16, help="images per throughput pass")
    ap.add_argument("--eval-images", type=int, default=500, help="images of the evaluator run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--checkpoint", action="append", default=[], help="KIND=PATH of a trained task model"
    )
    ap.add_argument("--skip-large", action="store_true", help="no R50 models (slow on CPU)")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--devices", help="comma-separated (default: cpu, and cuda when present)")
    ap.add_argument(
        "--rle-workers",
        type=int,
        action="append",
        help="faster-coco-eval mask-IoU threads (repeatable; default: coco_evaluate's, one)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} CPU threads")
    if not args.skip_throughput:
        run_throughput(args)
    return 0 if run_evaluators(args) else 2


if __name__ == "__main__":
    sys.exit(main())
