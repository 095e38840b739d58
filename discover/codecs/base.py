"""Codec interface: encode an RGB image at a rate point to a file; decode that file back.

The bitstream file is the truth: its size in bytes times eight is the bit count, whatever the
codec. Subclasses set ``extension`` and implement ``encode`` / ``decode``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from discover.errors import CodecError
from discover.images import read_rgb

T = TypeVar("T")


class Codec:
    type_name: str = ""
    extension: str = "bin"
    #: True if a larger rate value gives more bits (JPEG quality); False for QP-like values.
    rate_increases_bits: bool = True
    #: False for curves imported from publications (no encoder; never run by the pipeline).
    measured: bool = True
    #: GPUs an encode/decode job of this codec requests on a cluster (learned codecs: 1).
    gpus: int = 0
    #: Binaries this codec runs, as (config key, default, Debian package).
    binaries: Sequence[tuple[str, str, str]] = ()
    #: The weights cache official weights are read from (the config's ``weights_cache``, set by
    #: :func:`discover.codecs.get_codec`; None: the default cache).
    weights_cache: str | None = None

    #: Learned codecs that batch their forward passes: the multiple their images are padded
    #: to (images of one padded size share a batch); None: one image at a time.
    batch_multiple: int | None = None

    def __init__(self, name: str, cfg: Mapping[str, Any] | None = None, threads: int = 1):
        self.name = name
        self.cfg = dict(cfg or {})
        self.threads = max(1, int(threads))

    @property
    def batch_size(self) -> int:
        """Images per forward pass of a codec job (``codecs.<name>.batch_size``, default 1;
        1 for a codec without :attr:`batch_multiple`)."""
        value = self.cfg.get("batch_size", 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise CodecError(
                f"codecs.{self.name}.batch_size must be an integer >= 1, got {value!r}"
            )
        return value if self.batch_multiple else 1

    def filled(self, items: Sequence[T]) -> list[T]:
        """A batch filled up to :attr:`batch_size` with copies of its last item: every forward
        pass of a job has the same batch size, so an image's output depends on the image, the
        model, the batch size and the device, never on its batch's other images or their
        number (a batch of one takes other convolution kernels than a batch of two; tested)."""
        return list(items) + [items[-1]] * (self.batch_size - len(items))

    @property
    def label(self) -> str:
        return self.cfg.get("label", self.name)

    @property
    def rates(self) -> list:
        return list(self.cfg.get("rates", []))

    # -- external binaries -----------------------------------------------------------------
    def binary(self, key: str) -> str:
        """Resolve a configured binary to an absolute path, or raise naming it."""
        for k, default, package in self.binaries:
            if k == key:
                exe = self.cfg.get(k, default)
                found = shutil.which(exe)
                if found is None:
                    raise CodecError(
                        f"codec {self.name!r}: {k} binary {exe!r} not found on PATH "
                        f"(install the Debian package '{package}', or set codecs.{self.name}.{k} "
                        "to the binary's path)"
                    )
                return found
        raise KeyError(key)

    def official_weight(self, rate):
        """The pretrained weight (a discover.weights.WeightSpec) this rate point reads from the
        weights cache, or None (no weights, or weights given explicitly)."""
        return None

    def official_weights(self, rate) -> list:
        """Every cached weight of a rate point (most codecs read at most one)."""
        spec = self.official_weight(rate)
        return [] if spec is None else [spec]

    def check(self) -> str:
        """Verify that everything the codec needs is present; return a one-line description."""
        return ", ".join(f"{k}={self.binary(k)}" for k, _, _ in self.binaries) or "built in"

    def run(self, args: list[str], what: str) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run(args, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise CodecError(f"codec {self.name!r}: cannot run {args[0]}: {exc}") from exc
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip()[-800:]
            raise CodecError(
                f"codec {self.name!r}: {what} failed (exit {proc.returncode}): "
                f"{' '.join(args)}\n{tail}"
            )
        return proc

    # -- the interface ---------------------------------------------------------------------
    def encode(self, image: np.ndarray, rate: Any, path: Path) -> None:
        """Write the bitstream of ``image`` (H, W, 3 uint8 RGB) at ``rate`` to ``path``."""
        raise NotImplementedError

    def decode(self, path: Path, shape: tuple[int, int], rate) -> np.ndarray:
        """Read the bitstream at ``path`` (encoded at ``rate``); return the (H, W, 3) uint8 RGB
        reconstruction."""
        raise NotImplementedError

    def read_decoded(self, path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
        """A decoder's output image, checked to be ``shape`` (H, W); CodecError naming it."""
        return read_rgb(
            path, shape, error=CodecError, context=f"codec {self.name!r}: decoder output: "
        )
