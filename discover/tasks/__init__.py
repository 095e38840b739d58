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

from discover.registry import lazy_exports

# name -> the module that defines it; loaded on first use, so that the plan (which asks the
# registry for task types) and header-reading commands import without PyTorch
_EXPORTS = {
    "TaskError": "discover.errors",
    "PRESETS": "discover.tasks.base",
    "Geometry": "discover.tasks.base",
    "InputProtocol": "discover.tasks.base",
    "Predictions": "discover.tasks.base",
    "Task": "discover.tasks.base",
    "load_predictions": "discover.tasks.base",
    "save_predictions": "discover.tasks.base",
    "ClassificationTask": "discover.tasks.classification",
    "DetectionTask": "discover.tasks.detection",
    "category_ids": "discover.tasks.detection",
    "EVALUATORS": "discover.tasks.evaluation",
    "classification_accuracy": "discover.tasks.evaluation",
    "coco_evaluate": "discover.tasks.evaluation",
    "read_annotations": "discover.tasks.evaluation",
    "InstanceSegmentationTask": "discover.tasks.instance_segmentation",
    "MMDetDetector": "discover.tasks.mmdet_backend",
    "TorchvisionClassifier": "discover.tasks.models",
    "build_classifier": "discover.tasks.models",
    "build_task_model": "discover.tasks.models",
    "load_task_model": "discover.tasks.models",
    "required_weights": "discover.tasks.models",
    "weight_spec": "discover.tasks.models",
    "available": "discover.tasks.registry",
    "get_task": "discover.tasks.registry",
    "register_task": "discover.tasks.registry",
    "resolve": "discover.tasks.registry",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
