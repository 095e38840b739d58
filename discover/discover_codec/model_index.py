"""A DISCOVER model directory and what its ``model_index.json`` says belongs to it.

The directory holds the codec of each rate point (``r<λ_R>.pth.tar`` with its sidecar
``r<λ_R>.json``); ``model_index.json`` names the rest, as diffusers' ``model_index.json`` names
a pipeline's parts: the VAE whose latent the codec synthesises and, for a model with
generative composition, the diffusion prior, the control modules and the decode settings.
The DAG writes it from the config (rule ``discover_model_index``), so a stream decoded from
the command line goes through the same parts as in the benchmark. Read without PyTorch (the
CLI lists models and reads headers without it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from discover.discover_codec.vae import SD21_VAE
from discover.errors import CodecError

#: The file of a model directory that names its parts.
MODEL_INDEX = "model_index.json"
#: The repository's committed models (weights/<name>/).
REPO_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


@dataclass(frozen=True)
class ModelDir:
    """A DISCOVER model directory: its rate points and the parts its index names, local
    paths resolved against the directory (a Hub id stays a string)."""

    path: Path
    rates: list[str]
    vae: str
    composition: dict[str, Any] | None = None
    indexed: bool = False
    index: dict[str, Any] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        """The id written into streams: the directory's name."""
        return self.path.name

    def weights(self, rate) -> Path:
        path = self.path / f"r{rate}.pth.tar"
        if not path.is_file():
            raise CodecError(
                f"model {self.path}: no rate point {rate} ({path.name}; it has "
                f"{', '.join(self.rates) or 'none'}: --rate is λ_R, larger spends fewer bits)"
            )
        return path


def _resolve(root: Path, ref: str) -> str:
    """A path of the index relative to the model directory, or a Hub id as it is."""
    local = root / ref
    return os.path.normpath(local) if local.exists() or ref.startswith((".", "/")) else ref


def read_model_dir(path: str | os.PathLike) -> ModelDir:
    """The model at ``path``: its index when it has one, else what the directory holds
    (``vae/`` beside the codecs, or SD 2.1-base's VAE)."""
    root = Path(path)
    rates = sorted(
        (p.name[1 : -len(".pth.tar")] for p in root.glob("r*.pth.tar")),
        key=lambda r: (float(r) if r.replace(".", "", 1).isdigit() else float("inf"), r),
    )
    index_file = root / MODEL_INDEX
    if not index_file.is_file():
        vae = str(root / "vae") if (root / "vae").is_dir() else SD21_VAE
        return ModelDir(root, rates, vae)
    try:
        index = json.loads(index_file.read_text())
        vae = _resolve(root, str(index["vae"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CodecError(f"{index_file}: not a readable model index ({exc!r})") from exc
    composition = index.get("composition")
    if composition is not None:
        composition = dict(composition)
        for key in ("prior", "control"):
            if key in composition:
                composition[key] = _resolve(root, str(composition[key]))
    return ModelDir(root, rates, vae, composition, indexed=True, index=index)


def is_model_dir(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and ((p / MODEL_INDEX).is_file() or any(p.glob("r*.pth.tar")))


def repo_models() -> list[ModelDir]:
    """The DISCOVER models committed under the repository's weights/."""
    if not REPO_WEIGHTS.is_dir():
        return []
    return [read_model_dir(p) for p in sorted(REPO_WEIGHTS.iterdir()) if is_model_dir(p)]


def find_model_dir(model: str | os.PathLike, codecs: dict | None = None) -> ModelDir:
    """``--model``: a model directory, else the name of one under the repository's weights/,
    else the name of a DISCOVER codec of the config (``codecs``) that is ``trained:`` one."""
    path = Path(model)
    if is_model_dir(path):
        return read_model_dir(path)
    if is_model_dir(REPO_WEIGHTS / str(model)):
        return read_model_dir(REPO_WEIGHTS / str(model))
    entry = (codecs or {}).get(str(model)) or {}
    if entry.get("type") == "discover" and entry.get("trained"):
        if is_model_dir(REPO_WEIGHTS / str(entry["trained"])):
            return read_model_dir(REPO_WEIGHTS / str(entry["trained"]))
    names = ", ".join(m.model_id for m in repo_models()) or "none"
    why = f"{path} is a directory without r<λ_R>.pth.tar" if path.is_dir() else "no such directory"
    raise CodecError(
        f"model {str(model)!r}: {why}, and not a model under {REPO_WEIGHTS} (models there: "
        f"{names}; `discover models` lists them with their rates)"
    )
