"""Every metric a table can show: its column, label, direction and the weights it needs.

Config ``metrics`` names what to measure; a name can give several columns: ``fid`` and ``kid``
give one column per feature set of ``fid.features`` (``fid`` with clean-fid's Inception,
``fid_demo`` with the classifier the pipeline trains itself, labelled "FID (demo features)" so
that no one mistakes it for Inception FID).

A metric whose weight is not in the weights cache is not computed: its status says which weight
is missing and how to fetch it, and tables show that text instead of a number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from discover.errors import ConfigError
from discover.metrics.weights import (
    inception_weight,
    lpips_backbone_weight,
    piq_dists_weight,
    torchvision_weight,
)
from discover.weights import WeightSpec, cache_dir


@dataclass(frozen=True)
class Metric:
    column: str
    label: str
    higher_is_better: bool
    kind: str  # "fidelity" (per image), "perceptual" (per image, pretrained) or "distribution"


METRICS: dict[str, Metric] = {
    m.column: m
    for m in (
        Metric("psnr", "PSNR (dB)", True, "fidelity"),
        Metric("msssim", "MS-SSIM", True, "fidelity"),
        Metric("lpips", "LPIPS", False, "perceptual"),
        Metric("dists", "DISTS", False, "perceptual"),
        Metric("fid", "FID", False, "distribution"),
        Metric("kid", "KID", False, "distribution"),
        Metric("fid_demo", "FID (demo features)", False, "distribution"),
        Metric("kid_demo", "KID (demo features)", False, "distribution"),
    )
}

FEATURE_SETS = ("inception", "demo")


def metric_info(column: str) -> Metric:
    """A column's metric; columns not in METRICS are task metrics (``<task>_<metric>``, e.g.
    ``detection_bbox_AP``, ``classification_top1``): higher is better."""
    if column in METRICS:
        return METRICS[column]
    return Metric(column, column.replace("_", " "), True, "task")


def feature_suffix(features: str) -> str:
    return "" if features == "inception" else f"_{features}"


def metric_columns(config: Mapping[str, Any]) -> list[str]:
    """Columns of the tables, in config order (``fid`` -> ``fid``, ``fid_demo``, ...)."""
    features = fid_config(config)["features"]
    columns = []
    for name in config.get("metrics", ["psnr", "msssim"]):
        if name in ("fid", "kid"):
            columns += [name + feature_suffix(f) for f in features]
        else:
            columns.append(name)
    return columns


def fid_config(config: Mapping[str, Any]) -> dict:
    cfg = {
        "mode": "clean",
        "features": ["inception"],
        "batch_size": 32,
        "kid_subsets": 100,
        "kid_subset_size": 1000,
    }
    cfg.update(config.get("fid") or {})
    return cfg


def perceptual_config(config: Mapping[str, Any]) -> dict:
    cfg = {"lpips_net": "alex", "dists_backend": "dists_pytorch", "device": "cpu"}
    cfg.update(config.get("perceptual") or {})
    return cfg


def distribution_feature_sets(config: Mapping[str, Any]) -> list[str]:
    """Feature sets FID/KID are computed with (none unless ``fid`` or ``kid`` is measured)."""
    if not {"fid", "kid"} & set(config.get("metrics", [])):
        return []
    return list(fid_config(config)["features"])


def metric_weights(column: str, config: Mapping[str, Any]) -> list[WeightSpec]:
    """Official weights (from the weights cache) that computing ``column`` reads."""
    pc = perceptual_config(config)
    if column == "lpips":
        return [lpips_backbone_weight(pc["lpips_net"])]
    if column == "dists":
        specs = [torchvision_weight("vgg16")]
        return specs + ([piq_dists_weight()] if pc["dists_backend"] == "piq" else [])
    if column in ("fid", "kid"):
        return [inception_weight()]
    return []


def metric_status(config: Mapping[str, Any], cache: str | Path | None = None) -> dict[str, str]:
    """Column -> why it is not computed, for every configured column whose weight is missing."""
    root = cache_dir(cache if cache is not None else config.get("weights_cache"))
    status = {}
    for column in metric_columns(config):
        missing = [s for s in metric_weights(column, config) if not (root / s.filename).is_file()]
        if missing:
            names = ", ".join(f"{s.name} ({s.filename})" for s in missing)
            status[column] = f"not computed: weight {names} missing, run `snakemake fetch_weights`"
    return status


def official_metric_weights(config: Mapping[str, Any]) -> list[WeightSpec]:
    """Every cached weight the configured metrics read (for `snakemake fetch_weights`)."""
    specs = {}
    for column in metric_columns(config):
        for spec in metric_weights(column, config):
            specs[spec.filename] = spec
    return list(specs.values())


def image_scorers(config: Mapping[str, Any], metric_status: Mapping[str, str]) -> dict:
    """Column -> ``score(ref, out)`` for every per-image metric a codec job computes.

    ``metric_status`` (computed when the DAG is built, so a later `fetch_weights` reruns the
    jobs) lists the columns that are not computed; the rest must load."""
    from functools import partial

    # PyTorch-backed scorers, loaded by the codec jobs that compute them (not by table jobs)
    from discover.metrics.fidelity import FIDELITY_METRICS

    status = metric_status
    pc = perceptual_config(config)
    cache = config.get("weights_cache")
    scorers = {}
    for column in metric_columns(config):
        if column in status:
            continue
        if column in FIDELITY_METRICS:
            scorers[column] = FIDELITY_METRICS[column]
        elif column == "lpips":
            from discover.metrics.perceptual import lpips_distance  # PyTorch, see above

            scorers[column] = partial(
                lpips_distance, net=pc["lpips_net"], cache=cache, device=pc["device"]
            )
        elif column == "dists":
            from discover.metrics.perceptual import dists_distance  # PyTorch, see above

            scorers[column] = partial(
                dists_distance, backend=pc["dists_backend"], cache=cache, device=pc["device"]
            )
    return scorers


FID_PROTOCOLS: dict[str, dict[str, Any]] = {
    "whole": {"patch": None, "shifted": False},
    "patches-256": {"patch": 256, "shifted": False},
    "patches-256-shifted": {"patch": 256, "shifted": True},
}
# The paper divides CLIC 2020 images (after the clic2020 resize/crop) into 256x256 patches for
# FID/KID (§4.1.2); the same patches on Kodak and whole images on COCO are our choice.
DEFAULT_FID_PROTOCOL = {"kodak": "patches-256", "clic2020": "patches-256"}


def fid_protocol(dataset_cfg: Mapping[str, Any], dataset: str = "") -> dict[str, Any]:
    """The FID protocol of a dataset entry: ``fid_protocol`` (a preset name or
    ``{patch, shifted}``), else the preset of its image protocol, else whole images."""
    value = dataset_cfg.get("fid_protocol")
    if value is None:
        image_protocol = dataset_cfg.get("protocol") or dataset_cfg.get("type")
        value = DEFAULT_FID_PROTOCOL.get(str(image_protocol), "whole")
    if isinstance(value, str):
        if value not in FID_PROTOCOLS:
            raise ConfigError(
                f"config key datasets.{dataset}.fid_protocol: unknown preset {value!r} "
                f"(one of {', '.join(FID_PROTOCOLS)}, or {{patch: <px>, shifted: <bool>}})"
            )
        return {"name": value, **FID_PROTOCOLS[value]}
    patch = value.get("patch")
    shifted = bool(value.get("shifted", False))
    name = f"patches-{patch}{'-shifted' if shifted else ''}" if patch else "whole"
    return {"name": name, "patch": patch, "shifted": shifted}
