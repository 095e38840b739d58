"""One weights cache for every pretrained model the pipeline loads.

Compute nodes may be offline: they only read the cache. The `fetch_weights` rule (a localrule,
run on a machine with internet) downloads every configured official weight into it. A weight is
named by a file name; where the file name carries a sha256 prefix (CompressAI's and torchvision's
convention, ``name-<8 hex>.pth``) the download is checked against it.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from discover.errors import DiscoverError, WeightsMissingError
from discover.io import atomic_path, write_text_atomic

DEFAULT_CACHE = "weights-cache"
_HASH_RE = re.compile(r"-([0-9a-f]{8,})\.")


@dataclass(frozen=True)
class WeightSpec:
    """A downloadable weight: where it comes from and the file name it has in the cache."""

    name: str
    url: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def hash_prefix(self) -> str | None:
        m = _HASH_RE.search(self.filename)
        return m.group(1) if m else None


@dataclass(frozen=True)
class HubSpec:
    """A model directory on the Hugging Face Hub (e.g. SD 2.1-base's ``vae`` subfolder).

    In the cache it is a snapshot under ``hf/<owner>--<name>/`` plus a manifest file (the
    ``filename``) written last, listing the snapshot's files and their sha256.
    """

    repo_id: str
    subfolder: str = ""

    @property
    def name(self) -> str:
        return f"{self.repo_id}/{self.subfolder}".rstrip("/")

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo_id}"

    @property
    def snapshot(self) -> str:
        return "hf/" + self.repo_id.replace("/", "--")

    @property
    def filename(self) -> str:
        sub = f"--{self.subfolder.replace('/', '--')}" if self.subfolder else ""
        return f"{self.snapshot.replace('/', '--')}{sub}.manifest.json"

    hash_prefix = None


def resolve_pretrained_dir(ref: str | os.PathLike, cache: str | os.PathLike | None) -> Path:
    """A ``from_pretrained`` directory: an existing local directory as is, else the cached
    snapshot of the Hub id ``ref`` (``owner/name`` or ``owner/name/subfolder``)."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    spec = hub_spec(str(ref))
    manifest = cache_dir(cache) / spec.filename
    target = cache_dir(cache) / spec.snapshot / spec.subfolder
    if not manifest.is_file() or not target.is_dir():
        raise WeightsMissingError(
            f"model {str(ref)!r} is neither a local directory nor in the weights cache "
            f"{cache_dir(cache)}; run `snakemake fetch_weights` on a machine with internet "
            "access (compute nodes never download)"
        )
    return target


#: The SD layout every diffusion prior directory has (Hub repos keep more, e.g.
#: ``feature_extractor``).
PRIOR_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


def prior_component_dir(
    prior: str | os.PathLike, name: str, cache: str | os.PathLike | None
) -> Path:
    """``prior/name`` as a local directory, or the cached snapshot of the Hub id
    ``prior/name``: the same call serves a local SD-layout directory and a Hub id, and a Hub
    prior is fetched one subfolder at a time (SD repos also hold multi-GB checkpoints)."""
    local = Path(prior).expanduser()
    if local.is_dir() and not (local / name).is_dir():
        raise DiscoverError(
            f"diffusion prior {local} has no {name}/ (needs {list(PRIOR_COMPONENTS)})"
        )
    return resolve_pretrained_dir(local / name if local.is_dir() else f"{prior}/{name}", cache)


def is_local_dir(ref: str | os.PathLike) -> bool:
    return Path(str(ref)).expanduser().is_dir()


def prior_hub_specs(prior: str) -> list[HubSpec]:
    """The cached parts of a Hub prior, one per SD component (none for a local directory)."""
    if is_local_dir(prior):
        return []
    return [hub_spec(f"{prior}/{name}") for name in PRIOR_COMPONENTS]


def hub_spec(ref: str) -> HubSpec:
    parts = ref.strip("/").split("/")
    if len(parts) < 2:
        raise DiscoverError(f"{ref!r} is neither a local directory nor a Hub id owner/name")
    return HubSpec("/".join(parts[:2]), "/".join(parts[2:]))


def cache_dir(config_value: str | os.PathLike | None = None) -> Path:
    """The cache directory: the config's ``weights_cache`` (default ./weights-cache)."""
    return Path(config_value or DEFAULT_CACHE).expanduser()


def resolve(spec: WeightSpec | str | os.PathLike, cache: str | os.PathLike | None) -> Path:
    """Path of a weight: an existing local file as is, else the cached copy of ``spec``."""
    if not isinstance(spec, WeightSpec):
        path = Path(spec).expanduser()
        if path.is_file():
            return path
        raise WeightsMissingError(f"weight file {path} does not exist")
    path = cache_dir(cache) / spec.filename
    if not path.is_file():
        raise WeightsMissingError(
            f"weight {spec.name!r} ({spec.filename}) is missing from the weights cache "
            f"{cache_dir(cache)}; run `snakemake fetch_weights` on a machine with internet "
            "access (compute nodes never download)"
        )
    return path


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_hub(spec: HubSpec, cache: str | os.PathLike | None) -> Path:
    """Snapshot a Hub model directory into the cache; the manifest is written last."""
    import json

    from huggingface_hub import snapshot_download

    root = cache_dir(cache)
    manifest = root / spec.filename
    if manifest.is_file():
        return manifest
    local = root / spec.snapshot
    patterns = [f"{spec.subfolder}/*"] if spec.subfolder else None
    try:
        snapshot_download(spec.repo_id, local_dir=local, allow_patterns=patterns)
    except Exception as exc:
        raise DiscoverError(f"cannot download {spec.name!r} from the Hub: {exc}") from exc
    files = sorted(p for p in (local / spec.subfolder).rglob("*") if p.is_file())
    listing = {str(p.relative_to(root)): sha256(p) for p in files if ".cache" not in p.parts}
    write_text_atomic(manifest, json.dumps({"repo_id": spec.repo_id, "files": listing}, indent=1))
    return manifest


def fetch(spec: WeightSpec, cache: str | os.PathLike | None, progress: bool = False) -> Path:
    """Download ``spec`` into the cache unless present; verify its hash prefix if it has one."""
    from torch.hub import download_url_to_file

    if isinstance(spec, HubSpec):
        return fetch_hub(spec, cache)
    dest = cache_dir(cache) / spec.filename
    if dest.is_file():
        return dest
    with atomic_path(dest) as tmp:
        try:
            download_url_to_file(spec.url, str(tmp), hash_prefix=None, progress=progress)
        except Exception as exc:
            raise DiscoverError(
                f"cannot download weight {spec.name!r} from {spec.url}: {exc}"
            ) from exc
        if spec.hash_prefix and not sha256(tmp).startswith(spec.hash_prefix):
            raise DiscoverError(
                f"weight {spec.name!r}: downloaded file's sha256 does not start "
                f"with {spec.hash_prefix} (corrupt download?)"
            )
    return dest
