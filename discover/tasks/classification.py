"""Image classification: a torchvision classifier (ResNet-50 on ImageNet as in the paper, or
the small ResNet trained here on whole synthetic scenes), scored by top-1 and top-5 accuracy.

Config (``tasks.<name>``)::

    type: classification
    weights: ResNet50_Weights.IMAGENET1K_V1      # or weights/<model>/model.pt
    protocol: imagenet-val        # resize 256 + center crop 224 (default, unless the
                                  # checkpoint records the protocol it was trained with)
    batch_size: 8
    device: cpu

Predictions: per image the five best classes (model class indices) and their softmax scores;
labels are class indices in the same space (ImageNet's 0-999, synthetic-scenes' category of
the largest object).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from discover.errors import TaskError
from discover.tasks.base import TOPK, Predictions, Task, batched
from discover.tasks.evaluation import classification_accuracy
from discover.tasks.registry import register_task

if TYPE_CHECKING:
    import torch


@register_task("classification")
class ClassificationTask(Task):
    """Top-1/top-5 accuracy of a ``TorchvisionClassifier``."""

    metrics = ("top1", "top5")
    default_protocol = "imagenet-val"
    defaults = {
        "weights": None,
        "architecture": None,
        "protocol": None,
        "batch_size": 8,
        "device": "cpu",
    }

    def __init__(self, cfg: Mapping[str, Any] | None = None, **kwargs: Any):
        super().__init__(cfg, **kwargs)
        if not hasattr(self.model, "logits"):
            raise TaskError(f"task {self.task_name}: the model is not a TorchvisionClassifier")

    def predict(
        self,
        images: Iterable[tuple[int | str, np.ndarray]],
        categories: Sequence[Mapping[str, Any]] | None = None,
    ) -> Predictions:
        """Top-5 classes per image (``categories`` is not used: labels share the model's
        class indices)."""
        import torch  # the plan reads this task's metrics without torch

        predictions: Predictions = []
        for group in batched(images, self.batch_size):
            arrays = [self.protocol.apply(image)[0] for _, image in group]
            # a protocol without a fixed size leaves sizes unequal: one image at a time then
            same = len({a.shape for a in arrays}) == 1
            chunks = [arrays] if same else [[a] for a in arrays]
            logits = torch.cat([self.model.logits(_stack(chunk)) for chunk in chunks])
            probs = torch.softmax(logits.double(), dim=1)
            scores, classes = probs.topk(min(TOPK, probs.shape[1]), dim=1)
            for (iid, _), top, score in zip(group, classes.tolist(), scores.tolist(), strict=True):
                predictions.append(
                    {"image_id": iid, "topk": top, "scores": [round(s, 6) for s in score]}
                )
        return predictions

    def evaluate(
        self,
        predictions: Predictions,
        annotations: Mapping[str, Any] | str | os.PathLike,
        image_ids: Iterable[int | str] | None = None,
    ) -> dict[str, float | None]:
        """Top-1/top-5 against COCO-style annotations whose images have a ``label``, or an
        image id -> label mapping."""
        return classification_accuracy(predictions, annotations, image_ids=image_ids)


def _stack(arrays: list[np.ndarray]) -> torch.Tensor:
    import torch  # the plan reads this task's metrics without torch

    batch = np.stack(arrays).astype(np.float32) / 255.0
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()
