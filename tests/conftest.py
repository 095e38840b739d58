from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import torchvision
import yaml

from discover.workflow import snakemake_command

ROOT = Path(__file__).resolve().parent.parent


def tiny_config(out: str = "results", **overrides) -> dict:
    """A config small enough to run the whole DAG in seconds: 4 images, 2 codecs x 3 rates.

    ``out`` is relative to the Snakemake working directory, so a copied run stays valid.
    """
    cfg = {
        "output_dir": str(out),
        "seed": 0,
        "shard_size": 2,
        "datasets": {
            "scenes": {
                "type": "synthetic-scenes",
                "split": "val",
                "num_images": 4,
                "min_size": 96,
                "max_size": 136,
                "max_objects": 3,
            },
        },
        "codecs": {
            "jpeg": {"type": "jpeg", "rates": [15, 50, 90]},
            "hevc": {"type": "hevc", "rates": [40, 32, 24]},
        },
        "anchor": "hevc",
        "metrics": ["psnr", "msssim"],
        "bd": {"method": "pchip", "min_points": 4},
    }
    cfg.update(overrides)
    return cfg


def save_random_backbone(arch: str, path: Path, seed: int) -> None:
    """A random torchvision ``arch`` state dict, loadable by ``arch(pretrained=True)``.

    Only ``features`` get real values (He-scaled, so activations keep their size through the
    layers): LPIPS and DISTS use nothing else. The classifier is a stride-0 view of one zero,
    which torch.save stores as one element, so the VGG16 file is 59 MB instead of 553 MB.
    """
    with torch.device("meta"):  # shapes only, no memory, no init
        shapes = {k: v.shape for k, v in getattr(torchvision.models, arch)().state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.startswith("features.") and key.endswith(".weight"):
            state[key] = torch.randn(shape, generator=gen) * math.sqrt(2.0 / math.prod(shape[1:]))
        elif key.startswith("features."):
            state[key] = torch.randn(shape, generator=gen) * 0.01
        else:
            state[key] = torch.zeros(()).expand(shape)
    torch.save(state, path)


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake(
    workdir: Path, configfile: Path, *args: str, cores: int = 2, timeout: int = 600, **popen
) -> subprocess.CompletedProcess:
    cmd = snakemake_command(configfile, "--rerun-incomplete", *args, workdir=workdir, cores=cores)
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        **popen,
    )


def tree_digest(root: Path, pattern: str = "**/*") -> dict[str, str]:
    """sha256 of every file below root matching pattern (relative path -> digest)."""
    out = {}
    for p in sorted(root.glob(pattern)):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """One complete run of the DAG on the tiny config; tests must not modify it."""
    work = tmp_path_factory.mktemp("run_a")
    cfg = write_config(work / "config.yaml", tiny_config())
    proc = snakemake(work, cfg)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work


@pytest.fixture
def copy_of_run(finished_run, tmp_path) -> Path:
    """A private copy (mtimes kept) of the finished run, safe to break."""
    dst = tmp_path / "run"
    shutil.copytree(finished_run, dst, symlinks=True)
    return dst
