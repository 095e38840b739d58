"""The small ResNet classifier the pipeline trains on the embedded data, for inference: the
network, its input normalisation and the loader of a trained one.

The embedded default cannot download an ImageNet ResNet-50 or an Inception network, so the
pipeline trains its own classifiers on synthetic-scenes (:mod:`discover.training.classifier`,
:mod:`discover.training.task_models`). One is the ``mini-resnet`` classification task model
(:mod:`discover.tasks.models`), another the feature extractor of "FID (demo features)"
(:mod:`discover.metrics.distribution`; its pooled penultimate features, labelled so that no
one mistakes it for Inception FID).

The network is torchvision's ResNet building block (``BasicBlock``) in four stages of one block
each, with narrow widths: same family as ResNet-18/50, ~0.3 M parameters.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

from discover.errors import DiscoverError
from discover.weights import sha256

# ImageNet statistics, as torchvision's classifiers normalise their inputs.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class MiniResNet(nn.Module):
    """ResNet with one ``BasicBlock`` per stage; ``features`` gives the pooled embedding."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (16, 32, 64, 128)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages, inplanes = [], widths[0]
        for k, planes in enumerate(widths):
            stride = 1 if k == 0 else 2
            down = None
            if stride != 1 or inplanes != planes:
                down = nn.Sequential(
                    nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes),
                )
            stages.append(BasicBlock(inplanes, planes, stride, down))
            inplanes = planes
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(inplanes, num_classes)
        self.embedding_dim = inplanes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, embedding_dim) global-average-pooled features of normalised inputs."""
        return torch.flatten(F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def normalise(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> ImageNet-normalised."""
    mean = x.new_tensor(MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def load_classifier(
    path: str | Path, meta_path: str | Path | None = None
) -> tuple[MiniResNet, dict]:
    """A trained MiniResNet and its sidecar; the file must match the sidecar's sha256."""
    path = Path(path)
    meta_path = Path(meta_path) if meta_path else path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise DiscoverError(f"classifier {path} or its sidecar {meta_path} is missing")
    meta = json.loads(meta_path.read_text())
    if meta.get("sha256") and sha256(path) != meta["sha256"]:
        raise DiscoverError(f"classifier {path}: sha256 differs from {meta_path}")
    model = MiniResNet(int(meta["num_classes"]), tuple(meta["widths"]))
    state = torch.load(path, map_location="cpu", weights_only=True)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise DiscoverError(
            f"classifier {path}: missing keys {result.missing_keys[:5]}, "
            f"unexpected keys {result.unexpected_keys[:5]}"
        )
    return model.eval(), meta
