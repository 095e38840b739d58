"""Instance segmentation: a Mask R-CNN (R50-FPN as in the paper, or the small one trained
here), scored by COCO mask AP and box AP.

Config as for ``detection`` (``type: instance_segmentation``, ``weights:
MaskRCNN_ResNet50_FPN_Weights.COCO_V1`` or a checkpoint of ``custom-small-mask``; or
``backend: mmdet`` with a Mask R-CNN config, whose binary masks take the same path). Each
prediction carries the detector's box and its mask as COCO RLE (``segmentation``), thresholded
at 0.5 in the pixels of the image as given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from discover.tasks.base import Geometry, Predictions
from discover.tasks.detection import DetectionTask
from discover.tasks.evaluation import coco_metric_names
from discover.tasks.registry import register_task

if TYPE_CHECKING:
    import torch

MASK_THRESHOLD = 0.5  # Mask R-CNN's (torchvision's paste_masks, Detectron2)


def masks_to_original(probabilities: torch.Tensor, geometry: Geometry) -> np.ndarray:
    """(N, 1, h, w) mask probabilities of the processed image -> (N, H, W) bool masks of the
    original: pasted back into the resized frame (outside the crop: background), resized."""
    import torch.nn.functional as F  # the plan reads this task's metrics without torch

    probs = probabilities[:, 0].float()
    if geometry.identity:
        return (probs >= MASK_THRESHOLD).numpy()
    n = probs.shape[0]
    frame = probs.new_zeros((n, geometry.resized_height, geometry.resized_width))
    oy, ox = int(geometry.offset_y), int(geometry.offset_x)
    frame[:, oy : oy + probs.shape[1], ox : ox + probs.shape[2]] = probs
    full = F.interpolate(
        frame[:, None], size=(geometry.height, geometry.width), mode="bilinear", align_corners=False
    )
    return (full[:, 0] >= MASK_THRESHOLD).numpy()


def encode_masks(masks: np.ndarray) -> list[dict]:
    """(N, H, W) bool -> COCO RLEs with ``counts`` as text (JSON-ready)."""
    from pycocotools import mask as mask_utils

    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return list(rles)


@register_task("instance_segmentation")
class InstanceSegmentationTask(DetectionTask):
    """COCO mask AP (``segm_*``) and box AP (``bbox_*``) of a Mask R-CNN."""

    metrics = coco_metric_names("segm") + coco_metric_names("bbox")
    iou_types = ("segm", "bbox")

    def _add_masks(
        self,
        records: Predictions,
        keep: list[int],
        geometry: Geometry,
        output: Mapping[str, torch.Tensor],
    ) -> Predictions:
        masks = masks_to_original(output["masks"][keep], geometry) if keep else np.zeros((0,))
        for record, rle in zip(records, encode_masks(masks), strict=True):
            record["segmentation"] = rle
        return records
