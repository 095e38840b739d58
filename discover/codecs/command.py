"""A codec defined entirely in config by two shell command templates.

Placeholders: ``{input}``, ``{output}`` (paths, shell-quoted) and ``{rate}``. Encoding reads a
PNG and writes the bitstream; decoding reads the bitstream and writes any image format Pillow
reads (PNG recommended), so any external codec can join the benchmark without code.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from discover.codecs.base import Codec
from discover.codecs.registry import register_codec
from discover.errors import CodecError
from discover.images import write_png


@register_codec("command")
class CommandCodec(Codec):
    @property
    def extension(self) -> str:  # type: ignore[override]
        return self.cfg["extension"].lstrip(".")

    @property
    def rate_increases_bits(self) -> bool:  # type: ignore[override]
        return bool(self.cfg.get("rate_increases_bits", True))

    def _program(self, key: str) -> str:
        template = self.cfg[key]
        try:
            argv = shlex.split(template)
        except ValueError as exc:
            raise CodecError(
                f"codec {self.name!r}: codecs.{self.name}.{key} is not a valid command line: {exc}"
            ) from exc
        if not argv:
            raise CodecError(f"codec {self.name!r}: codecs.{self.name}.{key} is empty")
        return argv[0]

    def check(self) -> str:
        for key in ("encode", "decode"):
            prog = self._program(key)
            if shutil.which(prog) is None:
                raise CodecError(
                    f"codec {self.name!r}: program {prog!r} of codecs.{self.name}."
                    f"{key} not found on PATH"
                )
        return f"encode: {self.cfg['encode']} | decode: {self.cfg['decode']}"

    def _run_template(self, key: str, src: Path, dst: Path, rate) -> None:
        self.check()
        cmd = self.cfg[key].format(
            input=shlex.quote(str(src)), output=shlex.quote(str(dst)), rate=shlex.quote(str(rate))
        )
        proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise CodecError(
                f"codec {self.name!r}: {key} command failed (exit "
                f"{proc.returncode}): {cmd}\n{(proc.stderr or proc.stdout)[-800:]}"
            )
        if not dst.is_file():
            raise CodecError(f"codec {self.name!r}: {key} command wrote no file {dst}: {cmd}")

    def encode(self, image: np.ndarray, rate, path: Path) -> None:
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            src = Path(tmp) / "in.png"
            write_png(image, src)
            out = Path(tmp) / f"out.{self.extension}"
            self._run_template("encode", src, out, rate)
            out.replace(path)

    def decode(self, path: Path, shape: tuple[int, int], rate) -> np.ndarray:
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            out = Path(tmp) / "out.png"
            self._run_template("decode", path, out, rate)
            return self.read_decoded(out, shape)
