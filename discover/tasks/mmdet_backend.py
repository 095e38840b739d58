"""mmdet backend of the detection and instance-segmentation tasks: an mmdet config + checkpoint
(e.g. the standard Faster / Mask R-CNN R50-FPN 1x models) run through mmdet's own
``init_detector`` / ``inference_detector``, its outputs converted to what the torchvision path
produces, so predictions are the same COCO results format.

Config (``tasks.<name>``)::

    type: detection                     # or instance_segmentation (a Mask R-CNN config)
    backend: mmdet                      # default: torchvision
    config: mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py   # or a .py file
    weights: faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth  # a file or in the cache

``config`` is a local file, a file in the weights cache, or ``mmdet::<path>``: a config mmdet
ships (its ``.mim/configs``). ``weights`` is an mmdet checkpoint (``{"state_dict", "meta":
{"dataset_meta": {"classes": ...}}}``), a local file or one in the weights cache; nothing is
ever downloaded (the config's pretrained-backbone ``init_cfg`` is dropped, as mmdet's
``init_detector`` does).

mmdet, mmengine and mmcv (with its compiled ops) are optional: ``make mmdet`` installs them
(``scripts/mmdet/install.sh`` builds mmcv once into a wheel cache). They are imported only
when a task uses this backend.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from discover.errors import ConfigError, TaskError
from discover.grounding.base import Detections, check_image
from discover.tasks.weight_files import PACKAGED_PREFIX, required_files  # noqa: F401
from discover.weights import cache_dir

BACKENDS = ("torchvision", "mmdet")
INSTALL_HINT = "make mmdet (or: bash scripts/mmdet/install.sh <venv>)"
BACKGROUND = "__background__"


def import_mmdet(where: str) -> Any:
    """``mmdet.apis``, or an error naming the config key that asked for it and the install
    command (mmcv without its compiled ops, e.g. mmcv-lite, fails here too)."""
    try:
        import mmdet.apis
    except (ImportError, AssertionError) as exc:  # mmdet asserts its mmcv/mmengine versions
        raise TaskError(
            f"config key {where}: backend mmdet needs mmdet 3.3, mmengine and mmcv 2.1 with its "
            f"compiled ops, which do not import here ({type(exc).__name__}: {exc}); install "
            f"them with `{INSTALL_HINT}`"
        ) from exc
    return mmdet.apis


def resolve_file(value: str, weights_cache: str | os.PathLike | None, where: str) -> Path:
    """A config or checkpoint file: a path as given, else a file of that name in the weights
    cache; ``mmdet::<path>`` is a config mmdet ships."""
    if value.startswith(PACKAGED_PREFIX):
        import mmdet

        configs = Path(mmdet.__file__).parent / ".mim" / "configs"
        path = configs / value[len(PACKAGED_PREFIX) :]
        if not path.is_file():
            raise ConfigError(f"config key {where}: mmdet ships no config {value!r} ({path})")
        return path
    path = Path(value).expanduser()
    if path.is_file():
        return path
    cached = cache_dir(weights_cache) / value
    if cached.is_file():
        return cached
    raise ConfigError(
        f"config key {where}: {value!r} is neither a file nor in the weights cache "
        f"{cache_dir(weights_cache)} (the mmdet backend never downloads; place the file there)"
    )


def to_bgr(image: np.ndarray) -> np.ndarray:
    """HxWx3 RGB -> BGR, contiguous: mmdet's pipelines take images as OpenCV loads them (its
    data preprocessors convert with ``bgr_to_rgb``)."""
    return np.ascontiguousarray(np.asarray(image)[..., ::-1])


class MMDetDetector:
    """An mmdet detector behind the interface of ``TorchvisionDetector``: ``categories`` maps
    labels to names with 0 the background (mmdet label ``i`` is label ``i + 1`` here, as in
    torchvision's and the pipeline's own detectors), ``model`` is the mmdet ``nn.Module``,
    ``detect`` returns named boxes, and ``forward_images`` returns torchvision-style outputs
    (``boxes`` xyxy, ``labels``, ``scores`` and, with a mask head, ``masks`` (N, 1, H, W) in
    [0, 1]) in the pixels of the images given."""

    def __init__(
        self, model: Any, *, config: str | os.PathLike = "", checkpoint: str | os.PathLike = ""
    ):
        self.model = model
        self.config = str(config)
        self.checkpoint = str(checkpoint)
        meta = getattr(model, "dataset_meta", None) or {}
        classes = meta.get("classes")
        if not classes:
            raise TaskError(f"mmdet checkpoint {checkpoint}: its meta names no dataset classes")
        self.classes = tuple(str(c) for c in classes)
        self.categories = {0: BACKGROUND, **{i + 1: c for i, c in enumerate(self.classes)}}
        self.num_classes = len(self.categories)
        self.architecture = f"mmdet:{Path(self.config).stem or type(model).__name__}"
        self.has_masks = bool(getattr(model, "with_mask", False))

    @classmethod
    def from_files(
        cls,
        config: str | os.PathLike,
        checkpoint: str | os.PathLike,
        *,
        device: str = "cpu",
        where: str = "tasks.<task>",
    ) -> MMDetDetector:
        """mmdet's ``init_detector`` on a config file and a checkpoint (both local)."""
        apis = import_mmdet(f"{where}.backend")
        try:
            model = apis.init_detector(str(config), str(checkpoint), device=device)
        except Exception as exc:  # mmengine raises many types for a bad config or state
            raise TaskError(
                f"mmdet cannot build {config} with checkpoint {checkpoint} ({where}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return cls(model, config=config, checkpoint=checkpoint)

    def samples(self, images: Sequence[np.ndarray]) -> list[Any]:
        """mmdet's ``DetDataSample`` of each ``HxWx3 uint8 RGB`` image (``inference_detector``,
        the config's test pipeline)."""
        from mmdet.apis import inference_detector

        if not images:
            return []
        return list(inference_detector(self.model, [to_bgr(check_image(i)) for i in images]))

    def convert(self, sample: Any) -> dict[str, torch.Tensor]:
        """One ``DetDataSample`` as torchvision's detectors give their outputs."""
        pred = sample.pred_instances
        out = {
            "boxes": pred.bboxes.detach().float().cpu().reshape(-1, 4),
            "labels": pred.labels.detach().cpu().long() + 1,
            "scores": pred.scores.detach().float().cpu(),
        }
        if self.has_masks:  # binary (N, H, W) already: thresholding at 0.5 keeps them as is
            out["masks"] = pred.masks.detach().cpu().float()[:, None]
        return out

    def forward_images(self, images: Sequence[np.ndarray]) -> list[dict[str, torch.Tensor]]:
        """Torchvision-style outputs for ``HxWx3 uint8 RGB`` images."""
        return [self.convert(s) for s in self.samples(images)]

    def detect(self, image: np.ndarray) -> Detections:
        """Every detection of the model (above its config's ``score_thr``), labelled with
        class names."""
        arr = check_image(image)
        (out,) = self.forward_images([arr])
        labels = [self.categories.get(int(i), f"class {int(i)}") for i in out["labels"].tolist()]
        return Detections.from_xyxy(
            out["boxes"].tolist(), labels, out["scores"].tolist(), arr.shape[:2]
        )


def load_mmdet_model(
    kind: str,
    config: str | None,
    weights: str,
    *,
    task: str,
    architecture: str | None = None,
    weights_cache: str | os.PathLike | None = None,
    device: str = "cpu",
) -> MMDetDetector:
    """The model of task ``task`` with backend mmdet (``tasks.<task>.config`` and
    ``.weights``); an instance-segmentation task needs a config with a mask head."""
    where = f"tasks.{task}"
    if not config:
        raise ConfigError(
            f"config key {where}.config: backend mmdet needs an mmdet config (a .py file, or "
            "mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py)"
        )
    if architecture:
        raise ConfigError(
            f"config key {where}.architecture: not used by backend mmdet (its config says)"
        )
    import_mmdet(f"{where}.backend")
    config_path = resolve_file(str(config), weights_cache, f"{where}.config")
    checkpoint = resolve_file(str(weights), weights_cache, f"{where}.weights")
    detector = MMDetDetector.from_files(config_path, checkpoint, device=device, where=where)
    if kind == "instance_segmentation" and not detector.has_masks:
        raise TaskError(
            f"config key {where}.config: {config_path} has no mask head (instance_segmentation "
            "needs a Mask R-CNN config, e.g. mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py)"
        )
    return detector
