"""Machine-vision tasks: detection, instance segmentation and classification, each a model
backend + an input protocol + an evaluator (paper §4.1: Faster R-CNN and Mask R-CNN R50-FPN on
COCO val2017, ResNet-50 on ImageNet; the embedded default trains small ones here).

Task types (one module each, registered with ``@register_task(name)``):

- ``detection``: COCO box AP, AP50, AP75, APs, APm, APl (``bbox_AP``, ...).
- ``instance_segmentation``: COCO mask AP (``segm_AP``, ...) and box AP.
- ``classification``: top-1 and top-5 accuracy (``top1``, ``top5``).

Config (a task's section ``tasks.<name>``; ``description`` and ``labels`` are the semantics
stage's)::

    tasks:
      detection:
        type: detection                  # default: the task's name
        weights: FasterRCNN_ResNet50_FPN_Weights.COCO_V1   # or a checkpoint x.pt (+ x.json)
        protocol: coco-val               # imagenet-val | coco-val | {resize: .., crop: ..}
        evaluator: pycocotools           # or faster-coco-eval (identical numbers)
        batch_size: 1
        device: cpu
        backend: torchvision             # or mmdet: config (mmdet .py) + weights (.pth)

Detection tasks may run mmdet models (``backend: mmdet``, ``discover.tasks.mmdet_backend``;
optional, installed by ``make mmdet``).

Typical use::

    task = get_task("detection", config, config.get("weights_cache"))
    predictions = task.predict([(image_id, rgb), ...], categories=gt["categories"])
    save_predictions(path, predictions)          # metrics can be recomputed from the file
    metrics = task.evaluate(load_predictions(path), gt)
"""

from discover.errors import TaskError
from discover.tasks import (  # noqa: F401  (registration)
    classification,
    detection,
    instance_segmentation,
)
from discover.tasks.base import (
    PRESETS,
    Geometry,
    InputProtocol,
    Predictions,
    Task,
    load_predictions,
    save_predictions,
)
from discover.tasks.classification import ClassificationTask
from discover.tasks.detection import DetectionTask, category_ids
from discover.tasks.evaluation import (
    EVALUATORS,
    classification_accuracy,
    coco_evaluate,
    read_annotations,
)
from discover.tasks.instance_segmentation import InstanceSegmentationTask
from discover.tasks.mmdet_backend import MMDetDetector
from discover.tasks.models import (
    TorchvisionClassifier,
    build_classifier,
    build_task_model,
    load_task_model,
    required_weights,
    weight_spec,
)
from discover.tasks.registry import available, get_task, register_task, resolve

__all__ = [
    "EVALUATORS",
    "PRESETS",
    "ClassificationTask",
    "DetectionTask",
    "Geometry",
    "InputProtocol",
    "InstanceSegmentationTask",
    "MMDetDetector",
    "Predictions",
    "Task",
    "TaskError",
    "TorchvisionClassifier",
    "available",
    "build_classifier",
    "build_task_model",
    "category_ids",
    "classification_accuracy",
    "coco_evaluate",
    "get_task",
    "load_predictions",
    "load_task_model",
    "read_annotations",
    "register_task",
    "required_weights",
    "resolve",
    "save_predictions",
    "weight_spec",
]
