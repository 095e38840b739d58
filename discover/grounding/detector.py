"""A closed-set detector's boxes, kept where the category is one of the task's labels.

Checkpoints are a full ``state_dict`` (``model.pt``) with a JSON sidecar next to it
(``model.json``)::

    {"architecture": "fasterrcnn_mobilenet_v3_large_320_fpn" | "fasterrcnn_resnet50_fpn" |
                     "maskrcnn_resnet50_fpn" | ... | "custom-small",
     "num_classes": 3,
     "categories": ["__background__", "cat", "dog"],   # index = model label id
     "kwargs": {"min_size": 320}}

``categories`` may instead map ids to names (``{"1": "person", ...}``, COCO's sparse ids).
A sidecar written by training may also carry provenance (``spec``, ``seed``, ``command``,
``val_metrics``, ``sha256``, ...); with ``sha256`` the state dict must match it.
Any model of ``torchvision.models.detection`` is built with ``weights=None,
weights_backbone=None`` (nothing is downloaded); ``custom-small`` is a few-conv Faster R-CNN
that runs fast on CPU, for training small task models here, and ``custom-small-mask`` the
Mask R-CNN with the same backbone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from discover.checkpoints import fitting_state_dict
from discover.errors import GroundingError
from discover.grounding.base import Detections, Grounder, check_image, label_key
from discover.grounding.gt import label_lookup
from discover.grounding.registry import register_grounder
from discover.io import atomic_path, write_text_atomic
from discover.weights import sha256

CUSTOM_SMALL = "custom-small"
CUSTOM_SMALL_MASK = "custom-small-mask"
SIDECAR_KEYS = ("architecture", "num_classes", "categories", "kwargs")
# What training adds to a sidecar: read by people and reports, ignored when loading.
PROVENANCE_KEYS = (
    "kind",
    "spec",
    "seed",
    "steps",
    "command",
    "val_metrics",
    "val_images",
    "train_seconds",
    "final_loss",
    "sha256",
    "init",
)


@runtime_checkable
class Detector(Protocol):
    """Anything that finds objects: ``detect`` returns every detection with its category name
    as the label (no filtering by task labels; the grounder does that)."""

    def detect(self, image: np.ndarray) -> Detections: ...


def torchvision_architectures() -> list[str]:
    """Names of torchvision's detection model builders."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models.detection))


def build_detector(arch: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """A randomly initialised detection model: ``custom-small`` or any torchvision detection
    builder (e.g. ``fasterrcnn_resnet50_fpn``), which gets ``num_classes`` and ``kwargs``.

    ``num_classes`` counts the background (label 0). ``custom-small`` takes ``width`` (16),
    ``out_channels`` (64), ``representation_size`` (256), ``anchor_sizes`` (32, 64, 128, 256),
    ``aspect_ratios`` (0.5, 1, 2) and any ``FasterRCNN`` keyword (``min_size`` defaults to 320,
    ``max_size`` to 512). ``custom-small-mask`` takes the same plus ``mask_channels`` (64)
    and ``mask_layers`` (2) of its mask head.
    """
    if arch == CUSTOM_SMALL:
        return _build_custom_small(num_classes, **kwargs)
    if arch == CUSTOM_SMALL_MASK:
        return _build_custom_small(num_classes, masks=True, **kwargs)
    known = torchvision_architectures()
    if arch not in known:
        raise GroundingError(
            f"unknown detector architecture {arch!r} "
            f"(known: {[CUSTOM_SMALL, CUSTOM_SMALL_MASK, *known]})"
        )
    import torchvision

    builder = getattr(torchvision.models.detection, arch)
    # weights=None and weights_backbone=None: a checkpoint supplies the weights; never download
    return builder(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)


class _SmallBackbone(nn.Sequential):
    """Four stride-2 stages (stride 16 overall), one feature map; GroupNorm rather than
    BatchNorm because detection trains with a handful of images per batch."""

    def __init__(self, width: int, out_channels: int):
        chans = [3, width, 2 * width, 4 * width, out_channels]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            layers += [
                nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                nn.GroupNorm(min(8, cout), cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                nn.GroupNorm(min(8, cout), cout),
                nn.ReLU(inplace=True),
            ]
        super().__init__(*layers)
        self.out_channels = out_channels  # what FasterRCNN reads off its backbone


def _build_custom_small(
    num_classes: int,
    width: int = 16,
    out_channels: int = 64,
    representation_size: int = 256,
    anchor_sizes: Sequence[int] = (32, 64, 128, 256),
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    masks: bool = False,
    mask_channels: int = 64,
    mask_layers: int = 2,
    **faster_rcnn_kwargs: Any,
) -> nn.Module:
    from torchvision.models.detection import FasterRCNN, MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign

    backbone = _SmallBackbone(int(width), int(out_channels))
    anchors = AnchorGenerator(
        sizes=(tuple(int(s) for s in anchor_sizes),),
        aspect_ratios=(tuple(float(a) for a in aspect_ratios),),
    )
    # a bare-tensor backbone output becomes feature map "0"
    roi_pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
    options = {"min_size": 320, "max_size": 512, **faster_rcnn_kwargs}  # small inputs: fast CPU
    box_parts = {
        "rpn_anchor_generator": anchors,
        "box_roi_pool": roi_pool,
        "box_head": TwoMLPHead(out_channels * 7 * 7, representation_size),
        "box_predictor": FastRCNNPredictor(representation_size, num_classes),
    }
    # num_classes=None: the predictors below fix it
    if not masks:
        return FasterRCNN(backbone, num_classes=None, **box_parts, **options)
    channels = int(mask_channels)
    return MaskRCNN(
        backbone,
        num_classes=None,
        **box_parts,
        mask_roi_pool=MultiScaleRoIAlign(featmap_names=["0"], output_size=14, sampling_ratio=2),
        mask_head=MaskRCNNHeads(out_channels, [channels] * int(mask_layers), dilation=1),
        mask_predictor=MaskRCNNPredictor(channels, channels, num_classes),
        **options,
    )


def _category_map(categories: Any, num_classes: int, where: str) -> dict[int, str]:
    if isinstance(categories, Mapping):
        names = {int(k): str(v) for k, v in categories.items()}
    elif isinstance(categories, Sequence) and not isinstance(categories, str):
        names = {i: str(name) for i, name in enumerate(categories)}
    else:
        raise GroundingError(f"{where}: 'categories' must be a list or an id -> name mapping")
    outside = [i for i in names if not 0 <= i < num_classes]
    if outside:
        raise GroundingError(f"{where}: category ids {outside} outside 0..{num_classes - 1}")
    return names


class TorchvisionDetector:
    """A torchvision detection model with the names of its categories (``categories[i]`` is the
    name of model label ``i``)."""

    def __init__(
        self,
        model: nn.Module,
        categories: Sequence[str] | Mapping[int, str],
        *,
        architecture: str = "",
        num_classes: int | None = None,
        kwargs: Mapping[str, Any] | None = None,
        device: str = "cpu",
    ):
        self.num_classes = int(num_classes if num_classes is not None else len(categories))
        self.categories = _category_map(categories, self.num_classes, "detector")
        self.architecture = architecture
        self.kwargs = dict(kwargs or {})
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @torch.inference_mode()
    def detect(self, image: np.ndarray) -> Detections:
        """Every detection of the model (above its own internal score cut), labelled with
        category names."""
        arr = check_image(image)
        # a copy: decoded images may be read-only arrays, which torch.from_numpy warns about
        tensor = torch.from_numpy(np.array(arr)).permute(2, 0, 1).float() / 255.0
        (out,) = self.model([tensor.to(self.device)])
        labels = [self.categories.get(int(i), f"class {int(i)}") for i in out["labels"].tolist()]
        return Detections.from_xyxy(
            out["boxes"].cpu().tolist(), labels, out["scores"].cpu().tolist(), arr.shape[:2]
        )

    # -- checkpoints -----------------------------------------------------------------------
    @staticmethod
    def sidecar_path(path: str | os.PathLike) -> Path:
        """The JSON description that accompanies state dict ``path`` (``x.pt`` -> ``x.json``)."""
        return Path(path).with_suffix(".json")

    def save(self, path: str | os.PathLike) -> None:
        """Write the state dict to ``path`` and the sidecar next to it, both atomically."""
        if not self.architecture:
            raise GroundingError("cannot save a detector whose architecture name is unknown")
        sidecar = {
            "architecture": self.architecture,
            "num_classes": self.num_classes,
            "categories": {str(k): v for k, v in sorted(self.categories.items())},
            "kwargs": self.kwargs,
        }
        with atomic_path(path) as tmp:
            torch.save(self.model.state_dict(), tmp)
        write_text_atomic(self.sidecar_path(path), json.dumps(sidecar, indent=2) + "\n")

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "cpu") -> TorchvisionDetector:
        """Build the sidecar's architecture and load the state dict ``path`` into it; errors
        name the file and, for a state dict of another model, the missing/unexpected keys."""
        path = Path(path)
        sidecar_path = cls.sidecar_path(path)
        if not path.is_file():
            raise GroundingError(f"detector checkpoint {path} does not exist")
        try:
            meta = json.loads(sidecar_path.read_text())
        except (OSError, ValueError) as exc:
            raise GroundingError(
                f"detector checkpoint {path}: cannot read its sidecar {sidecar_path}: {exc}"
            ) from exc
        missing_meta = [k for k in ("architecture", "num_classes", "categories") if k not in meta]
        if missing_meta:
            raise GroundingError(f"{sidecar_path}: missing keys {missing_meta}")
        unknown_meta = sorted(set(meta) - set(SIDECAR_KEYS) - set(PROVENANCE_KEYS))
        if unknown_meta:
            raise GroundingError(f"{sidecar_path}: unknown keys {unknown_meta}")
        if meta.get("sha256") and sha256(path) != meta["sha256"]:
            raise GroundingError(
                f"detector checkpoint {path}: its sha256 differs from the one in {sidecar_path} "
                "(a state dict of another training run?)"
            )
        num_classes = int(meta["num_classes"])
        kwargs = dict(meta.get("kwargs") or {})
        categories = _category_map(meta["categories"], num_classes, str(sidecar_path))
        try:
            model = build_detector(meta["architecture"], num_classes, **kwargs)
        except (TypeError, ValueError) as exc:  # kwargs the architecture does not take
            raise GroundingError(f"{sidecar_path}: cannot build the detector: {exc}") from exc
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises a variety of types for a bad file
            raise GroundingError(f"cannot read detector checkpoint {path}: {exc}") from exc
        _load_state(model, state, path)
        return cls(
            model,
            categories,
            architecture=str(meta["architecture"]),
            num_classes=num_classes,
            kwargs=kwargs,
            device=device,
        )


def _load_state(model: nn.Module, state: Any, path: Path) -> None:
    model.load_state_dict(
        fitting_state_dict(model, state, path, what="detector checkpoint", error=GroundingError)
    )


@register_grounder("detector")
class DetectorGrounder(Grounder):
    """Detections with score >= ``score_threshold`` whose category is one of the labels (all
    categories when labels are None or empty); labels spelled as in the task's list."""

    defaults = {"checkpoint": None, "score_threshold": 0.5, "device": "cpu"}

    def __init__(
        self,
        cfg: Mapping[str, Any] | None = None,
        *,
        weights_cache: str | os.PathLike | None = None,
        detector: Detector | None = None,
    ):
        super().__init__(cfg, weights_cache=weights_cache)
        self.score_threshold = self._number("score_threshold", 0.0, 1.0)
        if detector is None:
            if not self.cfg["checkpoint"]:
                raise GroundingError(
                    "the detector grounding backend needs semantics.grounding.detector.checkpoint"
                )
            detector = TorchvisionDetector.from_checkpoint(
                Path(self.cfg["checkpoint"]).expanduser(), device=str(self.cfg["device"])
            )
        self.detector = detector

    def ground(self, image: np.ndarray, labels: Sequence[str] | None, **context: Any) -> Detections:
        found = self.detector.detect(check_image(image))
        wanted = label_lookup(labels)
        out = Detections()
        for box, name, score in zip(found.boxes, found.labels, found.scores, strict=True):
            label = name if wanted is None else wanted.get(label_key(name))
            if label is None or score < self.score_threshold:
                continue
            out.boxes.append(box)
            out.labels.append(label)
            out.scores.append(score)
        return out
