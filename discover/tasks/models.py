"""Task model backends: torchvision detection/segmentation/classification networks and the
small ones the pipeline trains, with their weights from a checkpoint or the weights cache.

``weights`` is either

- a checkpoint path ``x.pt`` with its JSON sidecar ``x.json`` (``architecture``,
  ``num_classes``, ``categories``, ``kwargs``; see :mod:`discover.grounding.detector`), as the
  pipeline's training writes, or
- a torchvision weights name, ``FasterRCNN_ResNet50_FPN_Weights.COCO_V1``,
  ``MaskRCNN_ResNet50_FPN_Weights.COCO_V1``, ``ResNet50_Weights.IMAGENET1K_V1``, ...: the file
  its URL names, read from the weights cache (``snakemake fetch_weights`` puts it there;
  compute nodes never download). The model is built exactly as torchvision's builder builds
  it for those weights (frozen batch norm, its eps), and its categories are the weights'
  own (COCO's 91-index labels, ImageNet's 1000 classes).

Detection tasks with ``backend: mmdet`` instead run an mmdet config + checkpoint
(:mod:`discover.tasks.mmdet_backend`; mmdet is optional and imported only then).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from discover.checkpoints import fitting_state_dict
from discover.errors import ConfigError, GroundingError, TaskError
from discover.grounding.detector import PROVENANCE_KEYS, TorchvisionDetector, build_detector
from discover.io import atomic_path, write_text_atomic
from discover.tasks.base import InputProtocol
from discover.tasks.mini_resnet import MiniResNet, normalise
from discover.tasks.mmdet_backend import BACKENDS, MMDetDetector, load_mmdet_model
from discover.tasks.weight_files import (  # noqa: F401  (re-exported)
    is_weights_name,
    required_weights,
    torchvision_weights,
    weight_spec,
)
from discover.weights import WeightSpec, resolve, sha256

MINI_RESNET = "mini-resnet"
CLASSIFIER_SIDECAR_KEYS = ("architecture", "num_classes", "categories", "kwargs", "protocol")
DETECTION_KINDS = ("detection", "instance_segmentation")


# -- torchvision weights names ---------------------------------------------------------------


def architecture_of(weights: Any) -> str:
    """The torchvision builder whose weights enum ``weights`` belongs to."""
    import torchvision

    for arch in torchvision.models.list_models():
        if torchvision.models.get_model_weights(arch) is type(weights):
            return arch
    raise TaskError(f"no torchvision model builder takes {type(weights).__name__}")


@contextlib.contextmanager
def _hub_with(cached: Path) -> Iterator[None]:
    """torch.hub's cache pointed at a directory holding only ``cached``: torchvision's builder
    then loads that file instead of downloading (its own loading code, so the model equals the
    one it builds online)."""
    previous = torch.hub.get_dir()
    with tempfile.TemporaryDirectory(prefix="discover-hub-") as tmp:
        checkpoints = Path(tmp) / "checkpoints"
        checkpoints.mkdir()
        (checkpoints / cached.name).symlink_to(cached.resolve())
        torch.hub.set_dir(tmp)
        try:
            yield
        finally:
            torch.hub.set_dir(previous)


def load_official(
    name: str, weights_cache: str | os.PathLike | None, architecture: str | None = None
) -> tuple[nn.Module, str, list[str]]:
    """(model in eval mode, architecture, category names) of torchvision weights ``name``,
    read from the weights cache; missing -> WeightsMissingError naming the weight and
    ``snakemake fetch_weights``."""
    import torchvision

    weights = torchvision_weights(name)
    arch = architecture_of(weights)
    if architecture and architecture != arch:
        raise ConfigError(f"weights {name} belong to {arch}, not to architecture {architecture}")
    path = resolve(WeightSpec(name, weights.url), weights_cache)
    builder = torchvision.models.get_model_builder(arch)
    kwargs = {"weights_backbone": None} if "weights_backbone" in _params(builder) else {}
    try:
        with _hub_with(path):
            model = builder(weights=weights, progress=False, **kwargs)
    except RuntimeError as exc:  # load_state_dict's key/shape report
        raise TaskError(f"weights {name} ({path}) do not fit {arch}: {exc}") from exc
    return model.eval(), arch, [str(c) for c in weights.meta["categories"]]


def _params(fn: Any) -> set[str]:
    import inspect

    return set(inspect.signature(fn).parameters)


# -- classifiers -----------------------------------------------------------------------------


def classification_architectures() -> list[str]:
    """``mini-resnet`` (trained here) and torchvision's classification builders."""
    import torchvision

    return [MINI_RESNET, *sorted(torchvision.models.list_models(module=torchvision.models))]


def build_classifier(arch: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """A randomly initialised classifier: ``mini-resnet`` (``widths``, default 16..128) or a
    torchvision classification builder (``resnet50``, ...; nothing is downloaded)."""
    if arch == MINI_RESNET:
        widths = tuple(int(w) for w in kwargs.pop("widths", (16, 32, 64, 128)))
        if kwargs:
            raise TypeError(f"mini-resnet takes only 'widths', got {sorted(kwargs)}")
        return MiniResNet(num_classes, widths)
    known = classification_architectures()
    if arch not in known:
        raise TaskError(f"unknown classification architecture {arch!r} (known: {known})")
    import torchvision

    return torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **kwargs)


def check_state(model: nn.Module, state: Any, path: str | os.PathLike) -> OrderedDict:
    """``state`` as a state dict of ``model``; otherwise an error naming ``path`` and the
    missing, unexpected and mis-shaped keys."""
    return fitting_state_dict(model, state, path, error=TaskError)


class TorchvisionClassifier:
    """A classifier with the names of its classes and the input protocol it was trained with
    (None: the task's default). ``logits`` takes (N, 3, H, W) in [0, 1] and normalises with
    ImageNet statistics, as torchvision's and the pipeline's classifiers expect."""

    def __init__(
        self,
        model: nn.Module,
        categories: Sequence[str],
        *,
        architecture: str = "",
        kwargs: Mapping[str, Any] | None = None,
        protocol: Mapping[str, Any] | str | None = None,
        device: str = "cpu",
    ):
        self.categories = [str(c) for c in categories]
        self.num_classes = len(self.categories)
        self.architecture = architecture
        self.kwargs = dict(kwargs or {})
        self.protocol = protocol
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(normalise(batch.to(self.device))).float().cpu()

    @staticmethod
    def sidecar_path(path: str | os.PathLike) -> Path:
        return Path(path).with_suffix(".json")

    def sidecar(self) -> dict[str, Any]:
        """What :meth:`from_checkpoint` needs to rebuild the model."""
        protocol = self.protocol
        if protocol is not None and not isinstance(protocol, str):
            protocol = InputProtocol.from_config(protocol).to_config()
        return {
            "architecture": self.architecture,
            "num_classes": self.num_classes,
            "categories": self.categories,
            "kwargs": self.kwargs,
            "protocol": protocol,
        }

    def save(self, path: str | os.PathLike, **provenance: Any) -> None:
        """State dict to ``path`` and sidecar next to it, both atomically; ``provenance``
        (spec, seed, command, metrics, ...) goes into the sidecar with the state's sha256."""
        if not self.architecture:
            raise TaskError("cannot save a classifier whose architecture name is unknown")
        with atomic_path(path) as tmp:
            torch.save(self.model.state_dict(), tmp)
            digest = sha256(tmp)
        meta = {**self.sidecar(), **provenance}
        if provenance:
            meta["sha256"] = digest
        write_text_atomic(self.sidecar_path(path), json.dumps(meta, indent=1) + "\n")

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "cpu") -> TorchvisionClassifier:
        """Build the sidecar's architecture and load ``path`` into it."""
        path = Path(path)
        meta = read_sidecar(path, CLASSIFIER_SIDECAR_KEYS)
        kwargs = dict(meta.get("kwargs") or {})
        try:
            model = build_classifier(str(meta["architecture"]), int(meta["num_classes"]), **kwargs)
        except (TypeError, ValueError) as exc:
            raise TaskError(f"{cls.sidecar_path(path)}: cannot build the model: {exc}") from exc
        model.load_state_dict(check_state(model, _torch_load(path), path))
        categories = meta["categories"]
        if isinstance(categories, Mapping):
            categories = [categories.get(str(i), f"class {i}") for i in range(meta["num_classes"])]
        return cls(
            model,
            categories,
            architecture=str(meta["architecture"]),
            kwargs=kwargs,
            protocol=meta.get("protocol"),
            device=device,
        )


def read_sidecar(path: Path, keys: Sequence[str]) -> dict[str, Any]:
    """The JSON sidecar of checkpoint ``path``, checked: required keys present, no unknown
    key, the state dict's sha256 as recorded (when it is)."""
    sidecar = path.with_suffix(".json")
    if not path.is_file():
        raise TaskError(f"checkpoint {path} does not exist")
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError) as exc:
        raise TaskError(f"checkpoint {path}: cannot read its sidecar {sidecar}: {exc}") from exc
    missing = [k for k in ("architecture", "num_classes", "categories") if k not in meta]
    if missing:
        raise TaskError(f"{sidecar}: missing keys {missing}")
    unknown = sorted(set(meta) - set(keys) - set(PROVENANCE_KEYS))
    if unknown:
        raise TaskError(f"{sidecar}: unknown keys {unknown}")
    if meta.get("sha256") and sha256(path) != meta["sha256"]:
        raise TaskError(f"checkpoint {path}: its sha256 differs from the one in {sidecar}")
    return meta


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises a variety of types for a bad file
        raise TaskError(f"cannot read checkpoint {path}: {exc}") from exc


# -- one entry point -------------------------------------------------------------------------


def load_task_model(
    kind: str,
    weights: str | os.PathLike,
    *,
    architecture: str | None = None,
    weights_cache: str | os.PathLike | None = None,
    device: str = "cpu",
    backend: str = "torchvision",
    config: str | None = None,
    task: str | None = None,
) -> TorchvisionDetector | TorchvisionClassifier | MMDetDetector:
    """The model of a ``kind`` task (detection, instance_segmentation, classification) from a
    checkpoint path or a torchvision weights name (read from the weights cache); with
    ``backend="mmdet"`` an mmdet ``config`` + checkpoint (``discover.tasks.mmdet_backend``).
    ``task`` names the task in errors."""
    if kind not in (*DETECTION_KINDS, "classification"):
        raise TaskError(f"unknown task kind {kind!r}")
    where = f"tasks.{task or kind}"
    if backend not in BACKENDS:
        raise ConfigError(
            f"config key {where}.backend: unknown backend {backend!r} (known: {list(BACKENDS)})"
        )
    if backend == "mmdet":
        if kind not in DETECTION_KINDS:
            raise ConfigError(f"config key {where}.backend: mmdet runs detection tasks only")
        return load_mmdet_model(
            kind,
            config,
            str(weights),
            task=task or kind,
            architecture=architecture,
            weights_cache=weights_cache,
            device=device,
        )
    if config:
        raise ConfigError(f"config key {where}.config: only backend mmdet reads a model config")
    if is_weights_name(str(weights)) and not Path(weights).expanduser().is_file():
        model, arch, categories = load_official(str(weights), weights_cache, architecture)
        if kind == "classification":
            return TorchvisionClassifier(model, categories, architecture=arch, device=device)
        loaded = TorchvisionDetector(model, categories, architecture=arch, device=device)
    else:
        path = Path(weights).expanduser()
        if kind == "classification":
            return TorchvisionClassifier.from_checkpoint(path, device=device)
        try:
            loaded = TorchvisionDetector.from_checkpoint(path, device=device)
        except GroundingError as exc:  # same message, the task's error type
            raise TaskError(str(exc)) from exc
    if kind == "instance_segmentation" and not _has_masks(loaded.model):
        raise TaskError(
            f"{weights}: {loaded.architecture} has no mask head (instance_segmentation needs "
            "a Mask R-CNN, e.g. maskrcnn_resnet50_fpn or custom-small-mask)"
        )
    return loaded


def _has_masks(model: nn.Module) -> bool:
    heads = getattr(model, "roi_heads", None)
    return bool(heads is not None and heads.has_mask())


def build_task_model(
    kind: str,
    architecture: str,
    categories: Sequence[str],
    *,
    device: str = "cpu",
    protocol: Mapping[str, Any] | str | None = None,
    **kwargs: Any,
) -> TorchvisionDetector | TorchvisionClassifier:
    """A randomly initialised model of a ``kind`` task (for training, tests and benchmarks):
    ``categories[i]`` names model class ``i`` (index 0 is the background for detectors)."""
    if kind == "classification":
        model = build_classifier(architecture, len(categories), **dict(kwargs))
        return TorchvisionClassifier(
            model,
            categories,
            architecture=architecture,
            kwargs=kwargs,
            protocol=protocol,
            device=device,
        )
    model = build_detector(architecture, len(categories), **kwargs)
    return TorchvisionDetector(
        model, list(categories), architecture=architecture, kwargs=kwargs, device=device
    )
