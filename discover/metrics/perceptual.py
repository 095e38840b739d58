"""LPIPS and DISTS through their reference packages, pretrained weights from the weights cache.

Each package builds a torchvision backbone with ``pretrained=True``, which goes through torch.hub:
torch.hub loads ``<hub dir>/checkpoints/<file name of the URL>`` when that file exists and only
downloads otherwise. While a model is built, ``torch_hub_from_cache`` makes the hub directory a
temporary one holding links to cached files under those names, so the package's own loading code
reads the cache and nothing is downloaded (compute nodes may be offline).

Weights (``discover.metrics.weights.perceptual_weight_specs`` lists them for
`snakemake fetch_weights`):

- LPIPS (``lpips``): torchvision's ImageNet AlexNet / VGG16 / SqueezeNet 1.1; the calibrated
  linear layers ship inside the lpips package.
- DISTS, authors' code (``DISTS_pytorch``): torchvision's ImageNet VGG16; alpha/beta ship with
  the package (installed as ``<sys.prefix>/weights.pt``, where its code looks for them).
- DISTS, ``piq``: torchvision's ImageNet VGG16 and piq's released alpha/beta ``dists_weights.pt``.

The two DISTS backends compute the same formula, but ``piq.DISTS`` first downsamples (bilinear,
no antialiasing) any input whose short side exceeds 256 px to a 256-px short side, while
DISTS_pytorch scores the image as given: they agree only on images with a short side <= 256
(e.g. the 256x256 FID patches).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import lpips
import numpy as np
import piq
import torch
from DISTS_pytorch import DISTS
from DISTS_pytorch.DISTS_pt import prepare_image
from PIL import Image
from torchvision.transforms.functional import to_tensor

from discover.errors import WeightsMissingError
from discover.metrics.weights import (  # noqa: F401  (re-exported)
    LPIPS_BACKBONES,
    lpips_backbone_weight,
    piq_dists_weight,
    torchvision_weight,
)
from discover.weights import WeightSpec, resolve

PathLike = str | os.PathLike

DISTS_BACKENDS = ("dists_pytorch", "piq")

# Built models, per process: building one reads hundreds of MB and initialises a full network.
_MODELS: dict[tuple[str, ...], torch.nn.Module] = {}
# torch.hub's directory is process-global; two models must not be built with different ones.
_HUB_LOCK = threading.Lock()


@contextlib.contextmanager
def torch_hub_from_cache(weights: Iterable[tuple[WeightSpec, PathLike]]) -> Iterator[None]:
    """While the block builds a model, torch.hub finds each spec's file instead of downloading.

    ``weights`` pairs a spec (whose URL's file name torch.hub looks for) with the local file to
    use, normally ``resolve(spec, cache)``. A file the block asks torch.hub for that is not named
    here would still be downloaded, so name every file the library loads.
    """
    with _HUB_LOCK, tempfile.TemporaryDirectory(prefix="discover-hub-") as hub:
        checkpoints = Path(hub) / "checkpoints"
        checkpoints.mkdir()
        for spec, path in weights:
            (checkpoints / spec.filename).symlink_to(Path(path).resolve())
        previous = torch.hub.get_dir()
        torch.hub.set_dir(hub)
        try:
            with warnings.catch_warnings():
                # The packages still call torchvision's deprecated ``pretrained=True``; nothing
                # for the person running the benchmark to act on.
                warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
                yield
        finally:
            torch.hub.set_dir(previous)


def _check_pair(ref: np.ndarray, out: np.ndarray) -> None:
    if ref.shape != out.shape:
        raise ValueError(f"shape mismatch {ref.shape} vs {out.shape}")
    if ref.ndim != 3 or ref.shape[2] != 3 or ref.dtype != np.uint8 or out.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8 images, got {ref.shape} {ref.dtype}")


# -- LPIPS ---------------------------------------------------------------------------------------
def lpips_model(
    net: str = "alex",
    weights: PathLike | None = None,
    *,
    cache: PathLike | None = None,
    device: str | torch.device = "cpu",
) -> lpips.LPIPS:
    """``lpips.LPIPS(net=net, pretrained=True)`` (v0.1), backbone from ``weights`` or the cache.

    ``weights`` is a local torchvision state-dict file for the backbone; without it the official
    torchvision file is read from the weights cache ``cache`` (WeightsMissingError if absent).
    """
    spec = lpips_backbone_weight(net)
    path = resolve(weights if weights is not None else spec, cache)
    key = ("lpips", net, str(path.resolve()), str(device))
    if key not in _MODELS:
        with torch_hub_from_cache([(spec, path)]):
            model = lpips.LPIPS(net=net, pretrained=True, verbose=False)
        _MODELS[key] = model.to(device).eval()
    return _MODELS[key]


def lpips_distance(
    ref: np.ndarray,
    out: np.ndarray,
    net: str = "alex",
    weights: PathLike | None = None,
    *,
    cache: PathLike | None = None,
    device: str | torch.device = "cpu",
) -> float:
    """LPIPS between two (H, W, 3) uint8 images (lower = more similar).

    Images are scaled to [-1, 1] with ``lpips.im2tensor``, as the package documents.
    """
    _check_pair(ref, out)
    model = lpips_model(net, weights, cache=cache, device=device)
    x = lpips.im2tensor(ref).to(device)
    y = lpips.im2tensor(out).to(device)
    with torch.no_grad():
        return float(model(x, y))


# -- DISTS ---------------------------------------------------------------------------------------
def _vgg16_file(weights: PathLike | None, cache: PathLike | None) -> tuple[WeightSpec, Path]:
    spec = torchvision_weight("vgg16")
    return spec, resolve(weights if weights is not None else spec, cache)


def dists_pytorch_model(
    weights: PathLike | None = None,
    *,
    cache: PathLike | None = None,
    device: str | torch.device = "cpu",
) -> DISTS:
    """The authors' ``DISTS_pytorch.DISTS()``; VGG16 from ``weights`` or the weights cache."""
    alpha_beta = Path(sys.prefix) / "weights.pt"
    if not alpha_beta.is_file():
        raise WeightsMissingError(
            f"DISTS_pytorch's alpha/beta file {alpha_beta} is missing; reinstall the package "
            "(pip install --force-reinstall DISTS-pytorch)"
        )
    spec, path = _vgg16_file(weights, cache)
    key = ("dists_pytorch", str(path.resolve()), str(device))
    if key not in _MODELS:
        with torch_hub_from_cache([(spec, path)]):
            model = DISTS()
        _MODELS[key] = model.to(device).eval()
    return _MODELS[key]


def piq_dists_model(
    weights: PathLike | None = None,
    *,
    cache: PathLike | None = None,
    device: str | torch.device = "cpu",
) -> piq.DISTS:
    """``piq.DISTS()``; VGG16 from ``weights`` or the cache, alpha/beta from the cache."""
    vgg_spec, vgg_path = _vgg16_file(weights, cache)
    ab_spec = piq_dists_weight()
    ab_path = resolve(ab_spec, cache)
    key = ("piq_dists", str(vgg_path.resolve()), str(ab_path.resolve()), str(device))
    if key not in _MODELS:
        with torch_hub_from_cache([(vgg_spec, vgg_path), (ab_spec, ab_path)]):
            model = piq.DISTS(reduction="mean")
        _MODELS[key] = model.to(device).eval()
    return _MODELS[key]


def _score(model, prepare, ref: np.ndarray, out: np.ndarray, device) -> float:
    """``model(prepare(ref), prepare(out))`` as a float, after checking the pair."""
    _check_pair(ref, out)
    with torch.no_grad():
        return float(model(prepare(ref).to(device), prepare(out).to(device)))


def dists_pytorch_distance(
    ref: np.ndarray,
    out: np.ndarray,
    weights: PathLike | None = None,
    *,
    cache: PathLike | None = None,
    device: str | torch.device = "cpu",
) -> float:
    """DISTS with the authors' package; images converted by its ``prepare_image`` ([0, 1])."""
    model = dists_pytorch_model(weights, cache=cache, device=device)
    return _score(model, lambda im: prepare_image(Image.fromarray(im)), ref, out, device)


def piq_dists_distance(
    ref: np.ndarray,
    out: np.ndarray,
    weights: PathLike | None = None,
    *,
    cache: PathLike | None = None,
    device: str | torch.device = "cpu",
) -> float:
    """DISTS with piq (inputs in [0, 1]); short sides > 256 px are downsampled to 256 by piq."""
    model = piq_dists_model(weights, cache=cache, device=device)
    return _score(model, lambda im: to_tensor(im)[None], ref, out, device)


def dists_distance(
    ref: np.ndarray,
    out: np.ndarray,
    *,
    backend: str = "dists_pytorch",
    weights: PathLike | None = None,
    cache: PathLike | None = None,
    device: str | torch.device = "cpu",
) -> float:
    """DISTS between two (H, W, 3) uint8 images (lower = more similar), either backend."""
    if backend == "dists_pytorch":
        return dists_pytorch_distance(ref, out, weights, cache=cache, device=device)
    if backend == "piq":
        return piq_dists_distance(ref, out, weights, cache=cache, device=device)
    raise ValueError(f"unknown DISTS backend {backend!r} (one of {', '.join(DISTS_BACKENDS)})")


PERCEPTUAL_METRICS = {"lpips": lpips_distance, "dists": dists_distance}
