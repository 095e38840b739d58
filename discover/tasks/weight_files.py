"""The weight files a task reads, named without torch: the plan lists them at parse time.

A task's ``weights`` is a checkpoint path, a torchvision weights name (``Xxx_Weights.MEMBER``,
read from the weights cache), or with ``backend: mmdet`` an mmdet checkpoint (plus its config).
The URLs of the paper's torchvision weights are written out below, so that naming their cache
files needs no torchvision; tests/test_tasks.py holds them against ``torchvision.models``. Any
other weights name is looked up in torchvision.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from discover.errors import ConfigError
from discover.weights import WeightSpec, cache_dir

#: torchvision weights name -> the URL torchvision downloads it from (the paper's task models:
#: Faster / Mask R-CNN R50-FPN on COCO, ResNet-50 on ImageNet, and their newer variants)
TORCHVISION_URLS = {
    "FasterRCNN_ResNet50_FPN_Weights.COCO_V1": (
        "https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"
    ),
    "FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1": (
        "https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth"
    ),
    "MaskRCNN_ResNet50_FPN_Weights.COCO_V1": (
        "https://download.pytorch.org/models/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
    ),
    "MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1": (
        "https://download.pytorch.org/models/maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth"
    ),
    "ResNet50_Weights.IMAGENET1K_V1": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "ResNet50_Weights.IMAGENET1K_V2": "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
}

#: an mmdet config named inside the mmdet package (``mmdet::faster_rcnn/...py``)
PACKAGED_PREFIX = "mmdet::"


def is_weights_name(value: str) -> bool:
    """``Xxx_Weights.MEMBER`` (torchvision's spelling) rather than a file path."""
    head, dot, member = str(value).partition(".")
    return bool(dot) and head.endswith("_Weights") and member.isidentifier() and "/" not in value


def torchvision_weights(name: str) -> Any:
    """The torchvision weights enum member called ``name``."""
    from torchvision.models import get_weight

    try:
        return get_weight(name)
    except (KeyError, ValueError, AttributeError) as exc:
        raise ConfigError(
            f"{name!r} is not a torchvision weights name (e.g. ResNet50_Weights.IMAGENET1K_V1)"
        ) from exc


def weight_spec(name: str) -> WeightSpec:
    """Where torchvision weights ``name`` come from and their file name in the weights cache
    (what ``fetch_weights`` downloads)."""
    url = TORCHVISION_URLS.get(name)
    return WeightSpec(name, url if url is not None else torchvision_weights(name).url)


def required_weights(task_cfg: Mapping[str, Any]) -> list[WeightSpec]:
    """The official weights a task's config needs in the cache (none for a checkpoint)."""
    weights = task_cfg.get("weights")
    return [weight_spec(str(weights))] if weights and is_weights_name(str(weights)) else []


def required_files(
    task_cfg: Mapping[str, Any], weights_cache: str | os.PathLike | None, task: str = "<task>"
) -> list[str]:
    """The files a task with backend mmdet reads (its checkpoint and, unless packaged with
    mmdet, its config), for a workflow's inputs."""
    files = []
    for key in ("config", "weights"):
        value = str(task_cfg.get(key) or "")
        if value and not value.startswith(PACKAGED_PREFIX):
            path = Path(value).expanduser()
            files.append(str(path if path.is_file() else cache_dir(weights_cache) / value))
        elif not value:
            raise ConfigError(f"config key tasks.{task}.{key}: needed by backend mmdet")
    return files
