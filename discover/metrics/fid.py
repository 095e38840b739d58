"""FID and KID between two folders of images with clean-fid (Parmar et al., CVPR 2022).

Everything numeric is clean-fid's own code (``from cleanfid import fid``):

- features: ``fid.get_folder_features`` (its ``ResizeDataset``; in mode "clean" each image is
  resized to 299x299 with PIL bicubic, and the extractor gets an (N, 3, 299, 299) float batch
  in [0, 255]);
- FID: ``fid.fid_from_feats`` (mean and covariance of each feature set, then
  ``fid.frechet_distance``), what ``fid.compute_fid(fdir1, fdir2)`` computes;
- KID: ``fid.kernel_distance`` (unbiased MMD with a cubic polynomial kernel averaged over random
  subsets), what ``fid.compute_kid(fdir1, fdir2)`` computes.

Each folder's features are extracted once and handed to both: ``compute_kid`` has no
``custom_feat_extractor`` argument, so this is how a custom extractor also gets a KID.

The Inception network: clean-fid's ``InceptionV3W`` would download ``inception-2015-12-05.pt``
(StyleGAN2-ADA's TorchScript port of the TF Inception) into /tmp; here it is built the way
``cleanfid.features.feature_extractor`` builds it, but from the weights cache with
``download=False``.

FID/KID on high-resolution images uses patches: ``write_fid_patches`` turns a folder of images
into a folder of their ``fid_patches`` (discover.metrics.patches), which is then handed here.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cleanfid import fid
from cleanfid.inception_torchscript import InceptionV3W
from PIL import Image

from discover.datasets.base import id_from_path, list_image_files, open_image
from discover.errors import DatasetError, MetricInputError
from discover.io import atomic_dir
from discover.metrics.patches import fid_patches
from discover.metrics.weights import inception_weight  # noqa: F401  (re-exported)
from discover.weights import resolve

PathLike = str | os.PathLike
FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]

# clean-fid's modes: how images are resized before the extractor (see cleanfid.resize).
MODES = ("clean", "legacy_tensorflow", "legacy_pytorch")
# The modes whose Inception is the TorchScript file; "legacy_pytorch" uses pytorch-fid's port
# (another file, not wired to the cache: use "clean", the protocol clean-fid recommends).
INCEPTION_MODES = ("clean", "legacy_tensorflow")

# Built Inception extractors, per process (the TorchScript file is ~100 MB).
_EXTRACTORS: dict[tuple[str, ...], FeatureExtractor] = {}


def inception_feature_extractor(
    mode: str = "clean", *, cache: PathLike | None = None, device: str | torch.device = "cpu"
) -> FeatureExtractor:
    """clean-fid's Inception feature extractor for ``mode``, weights from the weights cache.

    As ``cleanfid.features.build_feature_extractor(mode)`` minus the download and the
    DataParallel wrapper: 2048-d pool features of images in [0, 255]; "legacy_tensorflow"
    resizes inside the network, "clean" gets 299x299 inputs already resized by clean-fid.
    """
    if mode not in INCEPTION_MODES:
        raise ValueError(
            f"Inception features are wired for modes {', '.join(INCEPTION_MODES)}, not {mode!r}"
        )
    path = resolve(inception_weight(), cache)
    key = (mode, str(path.resolve()), str(device))
    if key not in _EXTRACTORS:
        # InceptionV3W takes the directory holding "inception-2015-12-05.pt": the cache.
        model = InceptionV3W(
            str(path.parent), download=False, resize_inside=mode == "legacy_tensorflow"
        )
        _EXTRACTORS[key] = model.to(device).eval()
    return _EXTRACTORS[key]


def folder_features(
    folder: PathLike,
    feature_extractor: FeatureExtractor,
    *,
    mode: str = "clean",
    batch_size: int = 32,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """(N, D) features of every image under ``folder`` (``fid.get_folder_features``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} does not exist")
    feats = fid.get_folder_features(
        str(folder),
        feature_extractor,
        num_workers=num_workers,
        batch_size=batch_size,
        device=torch.device(device),
        mode=mode,
        verbose=False,
    )
    return feats


def compute_fid_kid(
    ref_dir: PathLike,
    out_dir: PathLike,
    *,
    mode: str = "clean",
    feature_extractor: FeatureExtractor | None = None,
    cache: PathLike | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
    num_workers: int = 0,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    kid_seed: int = 0,
) -> dict[str, Any]:
    """FID and KID between the images of ``ref_dir`` and ``out_dir`` with clean-fid.

    ``feature_extractor`` maps a clean-fid batch (N, 3, H, W), float in [0, 255], to (N, D)
    features (clean-fid's ``custom_feat_extractor``); by default clean-fid's Inception, read
    from the weights cache ``cache`` (WeightsMissingError if it is not there). KID draws its
    subsets from numpy's global generator; it is seeded with ``kid_seed`` for the call and
    restored after, so a KID is reproducible (with equal-sized folders of at most
    ``kid_subset_size`` images every subset is the whole set and the seed does not matter).

    Returns ``{"fid", "kid", "mode", "feature_extractor", "n_ref", "n_out"}``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown clean-fid mode {mode!r} (one of {', '.join(MODES)})")
    if feature_extractor is None:
        extractor = inception_feature_extractor(mode, cache=cache, device=device)
        extractor_name = inception_weight().filename
    else:
        extractor = feature_extractor
        extractor_name = "custom"
    options = dict(mode=mode, batch_size=batch_size, num_workers=num_workers, device=device)
    feats = {}
    for name, folder in (("ref", ref_dir), ("out", out_dir)):
        n_images = len(_clean_fid_files(folder))
        if n_images < 2:  # a covariance and KID's unbiased estimate need two samples
            raise MetricInputError(
                f"FID/KID need at least 2 images per folder; {folder} has {n_images}"
            )
        feats[name] = folder_features(folder, extractor, **options)
    result = fid_kid_from_features(
        feats["ref"],
        feats["out"],
        kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size,
        kid_seed=kid_seed,
    )
    result.update(mode=mode, feature_extractor=extractor_name)
    return result


def fid_kid_from_features(
    ref_feats: np.ndarray,
    out_feats: np.ndarray,
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    kid_seed: int = 0,
) -> dict[str, Any]:
    """FID (``fid.fid_from_feats``) and KID (``fid.kernel_distance``) of two feature sets.

    KID's random subsets come from numpy's global generator, seeded with ``kid_seed`` for the
    call and restored after."""
    for name, feats in (("reference", ref_feats), ("reconstruction", out_feats)):
        if len(feats) < 2:  # a covariance and KID's unbiased estimate need two samples
            raise MetricInputError(f"FID/KID need at least 2 {name} samples, got {len(feats)}")
    state = np.random.get_state()
    np.random.seed(kid_seed)
    try:
        kid = fid.kernel_distance(
            ref_feats, out_feats, num_subsets=kid_subsets, max_subset_size=kid_subset_size
        )
    finally:
        np.random.set_state(state)
    return {
        "fid": float(fid.fid_from_feats(ref_feats, out_feats)),
        "kid": float(kid),
        "n_ref": len(ref_feats),
        "n_out": len(out_feats),
    }


def _clean_fid_files(folder: PathLike) -> list[str]:
    # The files fid.get_folder_features reads (its own glob), to reject too few before it runs.
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} does not exist")
    root = glob.escape(str(folder))
    patterns = [os.path.join(root, "**", f"*.{ext}") for ext in fid.EXTENSIONS]
    return sorted({f for pattern in patterns for f in glob.glob(pattern, recursive=True)})


def write_fid_patches(
    src_dir: PathLike, dest_dir: PathLike, size: int = 256, shifted: bool = False
) -> int:
    """Write the ``fid_patches`` of every image under ``src_dir`` as PNGs into ``dest_dir``.

    Patch files are named ``<image id>__p<k>.png`` (k in ``fid_patches`` order); ``dest_dir``
    is replaced as a whole, only once every patch is written. Returns the number of patches.
    """
    src = Path(src_dir)
    if not src.is_dir():
        raise DatasetError(f"image folder {src} does not exist")
    files = list_image_files(src)
    if not files:
        raise DatasetError(f"image folder {src} holds no images")
    count = 0
    with atomic_dir(dest_dir) as tmp:
        for path in files:
            image = np.asarray(open_image(path, src.name), dtype=np.uint8)
            stem = id_from_path(path, src)
            for k, patch in enumerate(fid_patches(image, size, shifted)):
                # lossless either way; level 1 is several times faster than PIL's default 6
                Image.fromarray(patch).save(tmp / f"{stem}__p{k:02d}.png", compress_level=1)
                count += 1
        if count == 0:
            raise MetricInputError(f"no image in {src} is at least {size}x{size} px: no patch")
    return count
