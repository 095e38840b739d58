"""Scoring saved predictions: COCO AP (pycocotools, the reference, or faster-coco-eval, same
numbers) and classification accuracy.

Both evaluators get the same inputs: the ground truth as a COCO dict, the predictions as a
COCO results list, and the image ids evaluated (default: every image of the ground truth; an
image fed to the model without any detection still counts its objects as missed). For
``segm``, detections' ``bbox`` is dropped before loading so that their area is the mask's
(pycocotools would take the box's; Detectron2 does the same).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from discover.errors import ConfigError, TaskError
from discover.tasks.base import Predictions, image_id

EVALUATORS = ("pycocotools", "faster-coco-eval")
# COCOeval.stats[0:6] of the summary, in its order
AP_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def coco_metric_names(iou_type: str) -> tuple[str, ...]:
    """``bbox_AP``, ``bbox_AP50``, ... (``segm_...`` for masks)."""
    return tuple(f"{iou_type}_{name}" for name in AP_NAMES)


def read_annotations(annotations: Mapping[str, Any] | str | os.PathLike) -> dict[str, Any]:
    """A COCO ground-truth dict, given as one or as the path of its JSON file."""
    if isinstance(annotations, Mapping):
        data, where = dict(annotations), "annotations"
    else:
        where = str(annotations)
        try:
            data = json.loads(Path(annotations).read_text())
        except (OSError, ValueError) as exc:
            raise TaskError(f"cannot read annotations {annotations}: {exc}") from exc
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if missing:
        raise TaskError(f"{where}: not COCO annotations (no {missing[0]!r})")
    return data


def check_image_ids(
    gt: Mapping[str, Any],
    predictions: Predictions,
    image_ids: Iterable[int | str] | None = None,
) -> list[int]:
    """The evaluated image ids; an image fed to the model or predicted on that the annotations
    do not have is an error naming the first such id (annotations of another dataset, split
    or subset)."""
    known = {image_id(img["id"]) for img in gt["images"]}
    if image_ids is None:
        ids = sorted(known)
    else:
        ids = [image_id(i) for i in image_ids]
        stray = [i for i in ids if i not in known]
        if stray:
            raise TaskError(
                f"image {stray[0]} is not in the annotations ({len(stray)} of {len(ids)} "
                "images are not): the annotations belong to other images"
            )
    wanted = set(ids)
    for record in predictions:
        iid = image_id(record["image_id"])
        if iid not in wanted:
            where = "the annotations" if iid not in known else "the evaluated images"
            raise TaskError(
                f"prediction for image {iid}, which is not in {where}: predictions and "
                "annotations belong to different images"
            )
    return sorted(wanted)


def _copy_records(value: Any) -> Any:
    """A copy of a COCO dataset (a dict of lists of records) or of a list of records, one
    level deep: new dicts and lists, the values inside shared. The COCO libraries only set keys
    of the records they are given (area, bbox, id, ignore, iscrowd, segmentation, rle; tested:
    the caller's data stays unchanged), so a deep copy would be wasted time in what the
    evaluator benchmark compares."""
    if isinstance(value, dict):
        return {k: _copy_records(v) if isinstance(v, list) else v for k, v in value.items()}
    return [dict(v) if isinstance(v, dict) else v for v in value]


def _results_for(predictions: Predictions, iou_type: str) -> list[dict[str, Any]]:
    results = []
    for k, record in enumerate(predictions):
        need = ("category_id", "score", "segmentation" if iou_type == "segm" else "bbox")
        absent = [key for key in need if key not in record]
        if absent:
            raise TaskError(f"prediction {k} (image {record.get('image_id')}) has no {absent[0]!r}")
        entry = dict(record)  # loadRes writes into its input
        entry["image_id"] = image_id(entry["image_id"])
        if iou_type == "segm":
            entry.pop("bbox", None)  # area from the mask, as Detectron2 evaluates
        results.append(entry)
    return results


def coco_evaluate(
    predictions: Predictions,
    annotations: Mapping[str, Any] | str | os.PathLike,
    iou_type: str = "bbox",
    *,
    evaluator: str = "pycocotools",
    image_ids: Iterable[int | str] | None = None,
    rle_workers: int = 1,
) -> dict[str, float | None]:
    """COCO AP@[.5:.95], AP50, AP75 and AP small/medium/large (as ``{iou_type}_AP`` etc., in
    [0, 1]; None where the images have no object of that size).

    ``rle_workers``: faster-coco-eval's threads for mask IoUs. One (its default is 8): its
    thread pool cost more than it gained on 500 images, 4,810 masks (segm 0.20 vs 0.28 s on 2
    CPUs, 0.18 vs 0.26 s on 16; ``benchmarks/tasks.py --rle-workers``)."""
    if evaluator not in EVALUATORS:
        raise ConfigError(f"unknown evaluator {evaluator!r} (known: {list(EVALUATORS)})")
    if iou_type not in ("bbox", "segm"):
        raise TaskError(f"iou_type must be bbox or segm, got {iou_type!r}")
    gt_data = read_annotations(annotations)
    ids = check_image_ids(gt_data, predictions, image_ids)
    results = _results_for(predictions, iou_type)
    if evaluator == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval as Evaluator
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as Evaluator
    # both libraries print their progress and summary; the numbers are returned instead
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = _copy_records(gt_data)  # evaluate() writes into the annotations
        gt.createIndex()
        if not results:
            dt = _empty_results(COCO, gt_data)
        elif evaluator == "faster-coco-eval" and iou_type == "segm":
            dt = _mask_results_faster(gt, results)
        else:
            dt = gt.loadRes(results)
        if evaluator == "pycocotools":
            coco_eval = Evaluator(gt, dt, iou_type)
        else:
            coco_eval = Evaluator(
                gt,
                dt,
                iou_type,
                print_function=lambda *a, **k: None,
                rle_iou_max_workers=rle_workers,
            )
        coco_eval.params.imgIds = ids
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    stats = np.asarray(coco_eval.stats, dtype=np.float64)[: len(AP_NAMES)]
    return {
        name: (float(v) if v > -1 else None)
        for name, v in zip(coco_metric_names(iou_type), stats, strict=True)
    }


def _mask_results_faster(gt: Any, results: list[dict[str, Any]]) -> Any:
    """faster-coco-eval's ``loadRes`` for mask results, with the areas and boxes of all masks
    computed in one call each instead of one call per mask (those per-mask calls were a third
    of its segm time: 0.07 of 0.2 s for 4,810 masks). The records are the ones ``loadRes``
    makes: area and bbox from the mask, ids from 1, iscrowd 0, the ground truth's images and
    categories (tested against ``loadRes`` and pycocotools)."""
    from faster_coco_eval import COCO
    from faster_coco_eval.core import mask as mask_api

    masks = [r["segmentation"] for r in results]
    areas, boxes = mask_api.area(masks), mask_api.toBbox(masks)
    for k, (record, area, box) in enumerate(zip(results, areas, boxes, strict=True)):
        record.update(area=area, bbox=box, id=k + 1, iscrowd=0)
    dt = COCO()
    dt.dataset = {
        "info": dict(gt.dataset.get("info", {})),
        "images": list(gt.dataset["images"]),
        "categories": _copy_records(gt.dataset["categories"]),
        "annotations": results,
    }
    dt.createIndex()
    return dt


def _empty_results(coco_cls: type, gt_data: Mapping[str, Any]) -> Any:
    # loadRes fails on an empty list; no detection at all is a valid (AP 0) result
    dt = coco_cls()
    dt.dataset = {
        "images": _copy_records(gt_data["images"]),
        "categories": _copy_records(gt_data["categories"]),
        "annotations": [],
    }
    dt.createIndex()
    return dt


def image_labels(labels: Mapping[Any, Any] | str | os.PathLike) -> dict[int, int]:
    """Image id -> class index, from a mapping or from COCO annotations whose images carry a
    ``label`` (as synthetic-scenes' do)."""
    if not isinstance(labels, Mapping) or "images" in labels:
        gt = read_annotations(labels)
        missing = [img["id"] for img in gt["images"] if "label" not in img]
        if missing:
            raise TaskError(f"image {missing[0]} of the annotations has no 'label'")
        return {image_id(img["id"]): int(img["label"]) for img in gt["images"]}
    return {image_id(k): int(v) for k, v in labels.items()}


def classification_accuracy(
    predictions: Predictions,
    labels: Mapping[Any, Any] | str | os.PathLike,
    *,
    image_ids: Iterable[int | str] | None = None,
    ks: tuple[int, ...] = (1, 5),
) -> dict[str, float | None]:
    """Top-k accuracy (``top1``, ``top5``) of saved top-k predictions; every evaluated image
    needs a prediction and a label (the error names the first image without). A model with
    fewer than k classes lists them all, so its top-k counts every class."""
    truth = image_labels(labels)
    by_image = {}
    for record in predictions:
        iid = image_id(record["image_id"])
        if iid not in truth:
            raise TaskError(
                f"prediction for image {iid}, which has no label: predictions and labels "
                "belong to different images"
            )
        by_image[iid] = [int(c) for c in record["topk"]]
    ids = sorted(truth) if image_ids is None else [image_id(i) for i in image_ids]
    for iid in ids:
        if iid not in truth:
            raise TaskError(f"image {iid} has no label (labels of other images?)")
        if iid not in by_image:
            raise TaskError(f"image {iid} has no prediction")
    out: dict[str, float | None] = {}
    for k in ks:
        hits = sum(truth[iid] in by_image[iid][:k] for iid in ids)
        out[f"top{k}"] = hits / len(ids) if ids else None
    return out


#: pycocotools' area ranges (Params.areaRng, both ends included) of AP, APs, APm, APl
AREA_RANGES = {
    "all": (0.0, 1e10),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e10),
}
_AP_AREA = dict(zip(AP_NAMES, ("all", "all", "all", "small", "medium", "large"), strict=True))


def object_counts(
    annotations: Mapping[str, Any] | str | os.PathLike,
    iou_type: str = "bbox",
    *,
    image_ids: Iterable[int | str] | None = None,
) -> dict[str, int]:
    """The annotated objects each AP number rests on, as pycocotools counts them (not crowd,
    ``area`` inside the range, both ends included): ``{iou_type}_AP`` ... ``{iou_type}_APl``."""
    gt = read_annotations(annotations)
    wanted = None if image_ids is None else {image_id(i) for i in image_ids}
    areas = [
        float(a.get("area", 0.0))
        for a in gt["annotations"]
        if not a.get("iscrowd", 0) and (wanted is None or image_id(a["image_id"]) in wanted)
    ]
    per_area = {
        name: sum(lo <= area <= hi for area in areas) for name, (lo, hi) in AREA_RANGES.items()
    }
    return {
        metric: per_area[_AP_AREA[name]]
        for metric, name in zip(coco_metric_names(iou_type), AP_NAMES, strict=True)
    }
