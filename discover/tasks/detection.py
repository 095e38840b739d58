"""Object detection: a torchvision detector (Faster R-CNN R50-FPN as in the paper, or the
small one the pipeline trains), scored by COCO box AP.

Config (``tasks.<name>``)::

    type: detection
    weights: FasterRCNN_ResNet50_FPN_Weights.COCO_V1   # or weights/<model>/model.pt
    protocol: coco-val            # or {resize: 800, crop: null}; default: as is
    evaluator: pycocotools        # or faster-coco-eval (same numbers, faster)
    batch_size: 1
    score_threshold: 0.0          # drop detections below (the model has its own cut too)
    device: cpu
    backend: torchvision          # or mmdet: config (an mmdet .py) + weights (its checkpoint)

Predictions are a COCO results list in the pixels of the images as given: the protocol's
resize/crop is undone, and the model's classes are mapped to the dataset's category ids by
name (torchvision's COCO models label with 91 indices, "N/A" in the gaps). With ``backend:
mmdet`` (``discover.tasks.mmdet_backend``) mmdet's ``inference_detector`` runs instead and its
outputs go through the same conversion.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from discover.errors import ConfigError, TaskError
from discover.grounding.base import label_key
from discover.tasks.base import Geometry, Predictions, Task, batched
from discover.tasks.evaluation import EVALUATORS, coco_evaluate, coco_metric_names
from discover.tasks.registry import register_task

if TYPE_CHECKING:
    import torch

NOT_A_CATEGORY = {"__background__", "n/a", "background"}


def category_ids(
    model_categories: Mapping[int, str], dataset_categories: Sequence[Mapping[str, Any]] | None
) -> dict[int, int]:
    """Model label -> dataset category id. Without dataset categories the model's labels are
    the ids (torchvision's COCO models, models trained here); with them, names decide, and
    labels the dataset does not have are left out."""
    usable = {
        label: name
        for label, name in model_categories.items()
        if label_key(name) not in NOT_A_CATEGORY
    }
    if dataset_categories is None:
        return {label: label for label in usable}
    by_name = {label_key(c["name"]): int(c["id"]) for c in dataset_categories}
    mapping = {
        label: by_name[label_key(name)]
        for label, name in usable.items()
        if label_key(name) in by_name
    }
    if not mapping:
        raise TaskError(
            f"the model's categories ({sorted(usable.values())[:8]}...) share no name with the "
            f"dataset's ({sorted(by_name)[:8]}...)"
        )
    return mapping


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW float in [0, 1] (torchvision detectors normalise inside)."""
    import torch  # the plan reads this task's metrics without torch

    # astype copies: inputs may be read-only views (PIL arrays), which torch warns about
    return torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1) / 255.0


@register_task("detection")
class DetectionTask(Task):
    """COCO box AP of a detector (``model``: a ``TorchvisionDetector`` or, with backend
    mmdet, an ``MMDetDetector``)."""

    metrics = coco_metric_names("bbox")
    iou_types: tuple[str, ...] = ("bbox",)
    defaults = {
        "weights": None,
        "architecture": None,
        "protocol": None,
        "evaluator": "pycocotools",
        "batch_size": 1,
        "score_threshold": 0.0,
        "device": "cpu",
        "backend": "torchvision",
        "config": None,  # backend mmdet: the mmdet config file
    }

    def __init__(self, cfg: Mapping[str, Any] | None = None, **kwargs: Any):
        super().__init__(cfg, **kwargs)
        self.score_threshold = self._number("score_threshold", 0.0, 1.0)
        self.evaluator = str(self.cfg["evaluator"])
        if self.evaluator not in EVALUATORS:
            raise ConfigError(
                f"config key tasks.{self.task_name}.evaluator: unknown evaluator "
                f"{self.evaluator!r} (known: {list(EVALUATORS)})"
            )
        if not hasattr(self.model, "categories") or not hasattr(self.model, "model"):
            raise TaskError(f"task {self.task_name}: the model is not a TorchvisionDetector")

    def predict(
        self,
        images: Iterable[tuple[int | str, np.ndarray]],
        categories: Sequence[Mapping[str, Any]] | None = None,
    ) -> Predictions:
        import torch  # the plan reads this task's metrics without torch

        ids = category_ids(self.model.categories, categories)
        # a batch holds images whose processed sizes are equal, so that the model pads none of
        # them to another's size: an image's detections do not depend on its batch mates;
        # records come back in the images' order
        pending: dict[tuple[int, ...], list] = {}
        records: dict[int, Predictions] = {}

        def run(group: list) -> None:
            outputs = self._forward([arr for _, _, arr, _ in group])
            for (pos, iid, _, geometry), output in zip(group, outputs, strict=True):
                output = {k: v.cpu() for k, v in output.items()}
                records[pos] = self._records(iid, geometry, output, ids)

        with torch.inference_mode():
            for pos, ((iid, image),) in enumerate(batched(images, 1)):
                arr, geometry = self.protocol.apply(image)
                group = pending.setdefault(tuple(arr.shape), [])
                group.append((pos, iid, arr, geometry))
                if len(group) == self.batch_size:
                    run(pending.pop(tuple(arr.shape)))
            for group in pending.values():
                run(group)
        return [r for pos in sorted(records) for r in records[pos]]

    def _forward(self, arrays: list[np.ndarray]) -> list[dict[str, torch.Tensor]]:
        """Torchvision-style outputs (boxes, labels, scores, masks) of processed images."""
        forward_images = getattr(self.model, "forward_images", None)
        if forward_images is not None:  # backends that run their own pipeline (mmdet)
            return forward_images(arrays)
        device = next(self.model.model.parameters()).device
        return self.model.model([to_tensor(arr).to(device) for arr in arrays])

    def provenance(self) -> dict[str, Any]:
        out = super().provenance()
        if self.cfg.get("backend") == "mmdet":
            out.update(backend="mmdet", config=self.cfg.get("config"))
        return out

    def _records(
        self, iid: int, geometry: Geometry, output: Mapping[str, torch.Tensor], ids: dict
    ) -> Predictions:
        boxes = geometry.boxes_to_original(output["boxes"].double().numpy())
        keep = [
            k
            for k, (label, score) in enumerate(
                zip(output["labels"].tolist(), output["scores"].tolist(), strict=True)
            )
            if label in ids
            and score >= self.score_threshold
            and boxes[k, 2] > boxes[k, 0]
            and boxes[k, 3] > boxes[k, 1]
        ]
        records = []
        for k in keep:
            x0, y0, x1, y1 = boxes[k]
            # rounded here, so predictions in memory equal those read back from the file
            records.append(
                {
                    "image_id": iid,
                    "category_id": ids[int(output["labels"][k])],
                    "bbox": [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
                    "score": round(float(output["scores"][k]), 5),
                }
            )
        return self._add_masks(records, keep, geometry, output)

    def _add_masks(
        self,
        records: Predictions,
        keep: list[int],
        geometry: Geometry,
        output: Mapping[str, torch.Tensor],
    ) -> Predictions:
        return records  # boxes only; instance segmentation adds the masks

    def evaluate(
        self,
        predictions: Predictions,
        annotations: Mapping[str, Any] | str | os.PathLike,
        image_ids: Iterable[int | str] | None = None,
    ) -> dict[str, float | None]:
        image_ids = list(image_ids) if image_ids is not None else None
        metrics: dict[str, float | None] = {}
        for iou_type in self.iou_types:
            metrics.update(
                coco_evaluate(
                    predictions,
                    annotations,
                    iou_type,
                    evaluator=self.evaluator,
                    image_ids=image_ids,
                )
            )
        return metrics
