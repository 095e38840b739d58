"""A codec defined entirely in config by two shell command templates.

Placeholders: ``{input}``, ``{output}`` (paths, shell-quoted) and ``{rate}``. Encoding reads a
PNG and writes the bitstream; decoding reads the bitstream and writes any image format Pillow
reads (PNG recommended), so any external codec can join the benchmark without code. Both
templates need ``{input}`` and ``{output}`` (the job passes the files only through them), and
the encode template ``{rate}`` when there is more than one rate point (otherwise every point
would code the same stream); :func:`check_templates` holds the config to that before any job.
Literal braces are written ``{{`` and ``}}`` (``str.format``).
"""

from __future__ import annotations

import shlex
import shutil
import string
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from discover.codecs.base import Codec
from discover.codecs.registry import register_codec
from discover.errors import CodecError, ConfigError
from discover.images import write_png

PLACEHOLDERS = ("input", "output", "rate")
#: template -> what its {input} is read from and its {output} written to
_FILES = {"encode": ("the PNG", "the bitstream"), "decode": ("the bitstream", "the decoded image")}


def template_fields(template: str, key: str) -> set[str]:
    """The placeholders of a command template; ConfigError naming ``key`` for anything
    ``str.format`` would fail on in the job (an unknown or positional field, a conversion or
    format spec, an unmatched brace)."""
    fields = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(
            f"config key {key}: not a valid template ({exc}; write literal braces as {{{{ and }}}})"
        ) from exc
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in PLACEHOLDERS:
            raise ConfigError(
                f"config key {key}: unknown placeholder {{{field}}} (placeholders: "
                f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)}; literal braces: {{{{ }}}})"
            )
        if spec or conversion:
            raise ConfigError(
                f"config key {key}: placeholder {{{field}}} takes no conversion or format spec "
                "(its value is a shell-quoted string)"
            )
        fields.add(field)
    return fields


def check_templates(name: str, entry: Mapping[str, Any]) -> None:
    """ConfigError naming ``codecs.<name>.encode`` / ``.decode`` when a template cannot run:
    both must name ``{input}`` and ``{output}``; the encode template ``{rate}`` as soon as the
    codec has two rate points."""
    for key in ("encode", "decode"):
        where = f"codecs.{name}.{key}"
        fields = template_fields(str(entry[key]), where)
        required = ["input", "output"]
        if key == "encode" and len(entry.get("rates") or []) > 1:
            required.append("rate")
        missing = [f"{{{f}}}" for f in required if f not in fields]
        if missing:
            reads, writes = _FILES[key]
            raise ConfigError(
                f"config key {where}: the template lacks {' and '.join(missing)} ({{input}} is "
                f"{reads} to read, {{output}} {writes} to write, {{rate}} the rate point; "
                f"got {entry[key]!r})"
            )


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
        try:
            check_templates(self.name, self.cfg)
        except ConfigError as exc:
            raise CodecError(f"codec {self.name!r}: {exc}") from exc
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
