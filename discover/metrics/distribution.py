"""FID/KID of a table row: every image of a dataset, all shards, one rate point at a time.

The images are first brought to the dataset's FID protocol (``FID_PROTOCOLS``): whole images, or
the 256x256 patch grid of HiFiC / MS-ILLM / PerCo (optionally with the half-patch-shifted second
grid), written to a scratch folder next to the output, handed to clean-fid, and removed. Features
stream through clean-fid's data loader batch by batch: memory grows with the number of feature
vectors (N x 2048 floats for Inception), never with the number of images.

The reference features of a dataset are computed once per feature set and reused by every row.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from discover.errors import ConfigError, DatasetError
from discover.images import read_rgb
from discover.io import atomic_path
from discover.metrics.catalog import (  # noqa: F401  (fid_protocol re-exported)
    FID_PROTOCOLS,
    feature_suffix,
    fid_config,
    fid_protocol,
)
from discover.metrics.fid import (
    fid_kid_from_features,
    folder_features,
    inception_feature_extractor,
)
from discover.metrics.patches import fid_patches
from discover.metrics.resample import FeatureSet, kid_standard_error
from discover.shards import shard_images
from discover.tasks.mini_resnet import load_classifier, normalise

PathLike = str | os.PathLike


def write_protocol_images(
    paths: Sequence[Path], dest: Path, protocol: Mapping[str, Any]
) -> list[int]:
    """Write what FID/KID see of ``paths`` into ``dest``: the patches, or links to the images.
    Returns how many protocol images each path gave (in the order clean-fid reads them:
    sorted file names, path by path)."""
    counts = []
    for k, path in enumerate(paths):
        if not protocol.get("patch"):
            (dest / f"{k:07d}{path.suffix}").symlink_to(path.resolve())
            counts.append(1)
            continue
        image = read_rgb(path, error=DatasetError)
        patches = fid_patches(image, int(protocol["patch"]), protocol["shifted"])
        for j, patch in enumerate(patches):
            Image.fromarray(patch).save(dest / f"{k:07d}_{j:03d}.png", compress_level=1)
        counts.append(len(patches))
    return counts


def protocol_features_by_image(
    paths: Sequence[Path],
    protocol: Mapping[str, Any],
    extractor: Callable[[torch.Tensor], torch.Tensor],
    scratch_parent: PathLike,
    *,
    mode: str = "clean",
    batch_size: int = 32,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features of the protocol images of ``paths`` (N = images or patches) and, per
    feature row, the index in ``paths`` of the image it comes from (a patch protocol gives
    several rows per image)."""
    Path(scratch_parent).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".fid-", dir=scratch_parent))
    try:
        counts = write_protocol_images(paths, scratch, protocol)
        image = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        if sum(counts) == 0:
            return np.zeros((0, 0), np.float32), image
        feats = folder_features(scratch, extractor, mode=mode, batch_size=batch_size, device=device)
        return feats, image
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def feature_extractor(features: str, config: Mapping[str, Any], demo_model: PathLike | None):
    """The extractor of a feature set: clean-fid's Inception from the weights cache, or the
    classifier the pipeline trained (``demo``)."""
    fc = fid_config(config)
    device = str(fc.get("device", "cpu"))
    if features == "inception":
        return inception_feature_extractor(
            fc["mode"], cache=config.get("weights_cache"), device=device
        )
    if features == "demo":
        if demo_model is None:
            raise ConfigError("config key fid.demo: FID with demo features needs a trained model")
        return demo_feature_extractor(demo_model, device=device)
    raise ConfigError(f"config key fid.features: unknown feature set {features!r}")


def demo_feature_extractor(model_path: PathLike, device: str = "cpu"):
    """clean-fid extractor from the pipeline's own classifier: batches (N, 3, H, W) in
    [0, 255] are resized (antialiased) to the classifier's input size, and its pooled
    penultimate features are returned."""
    model, meta = load_classifier(model_path)
    model = model.to(device)
    size = int(meta["input_size"])

    def extract(batch: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.interpolate(
            batch.float().div(255.0), size=(size, size), mode="bilinear", antialias=True
        )
        with torch.no_grad():
            return model.features(normalise(x))

    return extract


def reference_features(
    config: Mapping[str, Any],
    features: str,
    protocol: Mapping[str, Any],
    reference_dirs: Sequence[PathLike],
    out_npy: PathLike,
    demo_model: PathLike | None = None,
) -> np.ndarray:
    """Features of a dataset's reference images under its protocol, saved as .npy."""
    extractor = feature_extractor(features, config, demo_model)
    paths = shard_images(reference_dirs, reference_dirs)
    feats = _configured_features_by_image(config, paths, protocol, extractor, Path(out_npy).parent)[
        0
    ]
    with atomic_path(out_npy) as tmp, open(tmp, "wb") as fh:
        np.save(fh, feats)
    return feats


def _configured_features_by_image(config, paths, protocol, extractor, scratch_parent):
    """``protocol_features_by_image`` with the config's clean-fid mode, batch size and device."""
    fc = fid_config(config)
    return protocol_features_by_image(
        paths,
        protocol,
        extractor,
        scratch_parent,
        mode=fc["mode"],
        batch_size=int(fc["batch_size"]),
        device=str(fc.get("device", "cpu")),
    )


def row_fid_kid(
    config: Mapping[str, Any],
    protocol: Mapping[str, Any],
    reference_dirs: Sequence[PathLike],
    decoded_dirs: Mapping[str, Sequence[PathLike]],
    reference_npys: Mapping[str, PathLike],
    out_csv: PathLike,
    demo_model: PathLike | None = None,
    features_npz: PathLike | None = None,
    keep_features: bool = True,
) -> pd.DataFrame:
    """FID and KID of one table row at each rate point, per feature set.

    ``decoded_dirs`` maps a rate to the row's decoded shard folders (in reference shard order),
    ``reference_npys`` a feature set to its reference features. One CSV row per rate, with a
    ``fid<suffix>`` / ``kid<suffix>`` column pair per feature set (suffix ``_demo`` for demo),
    the samples they are computed from (``fid_samples<suffix>``), the feature dimension
    (``fid_dim<suffix>``) and KID's bootstrap standard error over images (``kid_se<suffix>``,
    :func:`discover.metrics.resample.kid_standard_error`, 100 resamples, the config's seed).

    ``features_npz``: the decoded features are kept there for the BD table's bootstrap
    (``<features>@<rate>`` arrays, and ``ids`` / ``image``: the image of each feature row);
    ``keep_features`` off (the bootstrap is off): only ``ids`` / ``image``.
    """
    fc = fid_config(config)
    rows = []
    extractors = {f: feature_extractor(f, config, demo_model) for f in reference_npys}
    ref_feats = {f: np.load(p) for f, p in reference_npys.items()}
    kept: dict[str, np.ndarray] = {}
    ids: list[str] = []
    image_index = np.zeros(0, np.int64)
    seed = int(config.get("seed", 0))
    for rate, dirs in decoded_dirs.items():
        paths = shard_images(reference_dirs, dirs)
        ids = [p.stem for p in paths]
        row: dict[str, Any] = {"rate": str(rate), "protocol": protocol["name"], "mode": fc["mode"]}
        for features, extractor in extractors.items():
            feats, image_index = _configured_features_by_image(
                config, paths, protocol, extractor, Path(out_csv).parent
            )
            r = fid_kid_from_features(
                ref_feats[features],
                feats,
                kid_subsets=int(fc["kid_subsets"]),
                kid_subset_size=int(fc["kid_subset_size"]),
                kid_seed=seed,
            )
            suffix = feature_suffix(features)
            row[f"fid{suffix}"] = r["fid"]
            row[f"kid{suffix}"] = r["kid"]
            row[f"fid_samples{suffix}"] = r["n_out"]
            row[f"fid_dim{suffix}"] = int(feats.shape[1]) if feats.ndim == 2 else 0
            if len(ref_feats[features]) == len(feats) and len(ids) > 1:
                ref = FeatureSet(ref_feats[features], image_index, len(ids))
                out = FeatureSet(feats, image_index, len(ids))
                row[f"kid_se{suffix}"] = kid_standard_error(ref, out, resamples=100, seed=seed)
            if keep_features:
                kept[f"{features}@{rate}"] = np.asarray(feats, dtype=np.float32)
        rows.append(row)
    df = pd.DataFrame(rows)
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False, float_format="%.10g")
    if features_npz is not None:
        with atomic_path(features_npz) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, ids=np.asarray(ids), image=image_index, **kept)
    return df
