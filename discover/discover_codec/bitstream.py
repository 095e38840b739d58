"""The ``.dsc`` container: one encode of an image, serving every consumer.

Layout (integers are LEB128 varints unless sized; "blob" = varint length + bytes; "check" =
CRC-32 of the values a stream decodes to, 4 bytes big endian)::

    magic "DSCV" | version u8 | flags u8 (bit 0: rest stream present)
    model id (blob, UTF-8) | weights fingerprint (8 bytes) | rate point (blob, UTF-8)
    encoding device (blob, UTF-8: the kind of device whose float arithmetic made the streams)
    image height | image width
    part count, then per part:
        name count, names (blob each) | mask (blob, see masks.py) | ỹ stream (blob) | check
    ẑ stream (blob) | check
    [rest-of-ŷ stream (blob) | check, if flag bit 0]
    CRC-32 of everything above (4 bytes, big endian)

A *part* is the stream of one task mask; tasks whose masks are identical (two tasks grounding
the same labels) share one part, so the stream is paid once. Consumers: a task receives the
header, its own part (named for it alone), and ẑ; the ``human`` consumer receives everything
(every part + the rest = all of ŷ). :meth:`Container.for_consumer` cuts that out of the full
container without re-encoding, and a consumer's bits are exactly the length of what it
receives.

Two checks guard a decode. The CRC of the whole makes every truncation and bit flip a
:class:`BitstreamError` before any entropy decoding starts. The per-stream checks catch what no
CRC can: a decoder whose entropy parameters (float convolutions) land on the other side of a
rounding boundary than the encoder's (another GPU model, another convolution algorithm) reads
valid bytes into other symbols; the decoder compares the check of what it decoded with the
encoder's and refuses the stream, naming both devices (:meth:`DiscoverModel.decode_y`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace

import numpy as np

from discover.discover_codec.consumers import HUMAN
from discover.discover_codec.geometry import latent_grid
from discover.discover_codec.masks import decode_mask, encode_mask
from discover.discover_codec.varint import Reader, write_varint
from discover.errors import BitstreamError

MAGIC = b"DSCV"
VERSION = 2
MAX_SIDE = 1 << 16
CHECK_BYTES = 4
_FLAG_REST = 1


def values_check(values: bytes) -> bytes:
    """The check of a stream: CRC-32 of the bytes of the values it decodes to."""
    return zlib.crc32(values).to_bytes(CHECK_BYTES, "big")


@dataclass
class Part:
    """One ỹ stream: the elements of ŷ inside ``mask``, serving the tasks ``names``."""

    names: tuple[str, ...]
    mask: np.ndarray  # (h, w) bool on the latent grid
    stream: bytes
    check: bytes = b"\0" * CHECK_BYTES


@dataclass
class Container:
    model_id: str
    weights: bytes  # 8-byte fingerprint of the model's weights
    rate: str
    height: int
    width: int
    z_stream: bytes
    parts: list[Part] = field(default_factory=list)
    rest: bytes | None = None  # None: a task consumer's cut (no human decoding possible)
    device: str = ""  # the kind of device that encoded the streams
    z_check: bytes = b"\0" * CHECK_BYTES
    rest_check: bytes | None = None

    @property
    def grid(self) -> tuple[int, int]:
        return latent_grid(self.height, self.width)

    @property
    def tasks(self) -> list[str]:
        """Task names, in the order of their parts."""
        return [name for p in self.parts for name in p.names]

    @property
    def consumers(self) -> list[str]:
        return self.tasks + [HUMAN] if self.rest is not None else self.tasks

    def part(self, task: str) -> Part:
        """The part that serves ``task``."""
        for p in self.parts:
            if task in p.names:
                return p
        raise BitstreamError(
            f"stream has no part for task {task!r} (it carries: {', '.join(self.consumers)})"
        )

    def for_consumer(self, consumer: str) -> Container:
        """What ``consumer`` receives: the whole container for ``human``, else its part."""
        if consumer == HUMAN:
            if self.rest is None:
                raise BitstreamError(
                    "the human consumer needs all of ŷ, but this stream is the cut for task(s) "
                    f"{', '.join(self.tasks)}; extract it from the full stream"
                )
            return self
        mine = replace(self.part(consumer), names=(consumer,))
        return replace(self, parts=[mine], rest=None, rest_check=None)

    def decodes_like(self, other: Container) -> bool:
        """True when a decoder given either container gets the same input: model, weights,
        rate, size, ẑ stream, the rest of ŷ and each part's mask and stream, task names aside
        (the cut of one task and that of another whose grounding found the same boxes)."""

        def unnamed(c: Container) -> bytes:
            parts = [replace(p, names=(f"part{i}",)) for i, p in enumerate(c.parts)]
            return replace(c, parts=parts).to_bytes()

        return unnamed(self) == unnamed(other)

    # -- serialisation ---------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        names = self.tasks
        if len(set(names)) != len(names) or HUMAN in names or any(not p.names for p in self.parts):
            raise ValueError(
                f"task names must be unique, not {HUMAN!r}, at least one per part: {names}"
            )
        if len(self.weights) != 8:
            raise ValueError("weights fingerprint must be 8 bytes")
        checks = [p.check for p in self.parts] + [self.z_check]
        if self.rest is not None:
            checks.append(self.rest_check)
        if any(c is None or len(c) != CHECK_BYTES for c in checks):
            raise ValueError(f"every stream needs a {CHECK_BYTES}-byte check")
        out = bytearray(MAGIC)
        out.append(VERSION)
        out.append(_FLAG_REST if self.rest is not None else 0)
        _blob(out, self.model_id.encode())
        out += self.weights
        _blob(out, self.rate.encode())
        _blob(out, self.device.encode())
        write_varint(out, self.height)
        write_varint(out, self.width)
        write_varint(out, len(self.parts))
        for p in self.parts:
            if p.mask.shape != self.grid:
                raise ValueError(f"mask of part {p.names} is {p.mask.shape}, grid {self.grid}")
            write_varint(out, len(p.names))
            for name in p.names:
                _blob(out, name.encode())
            _blob(out, encode_mask(p.mask))
            _blob(out, p.stream)
            out += p.check
        _blob(out, self.z_stream)
        out += self.z_check
        if self.rest is not None:
            _blob(out, self.rest)
            out += self.rest_check
        out += zlib.crc32(out).to_bytes(4, "big")
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "stream") -> Container:
        """Parse and verify; every problem is a BitstreamError naming ``source``."""
        if len(data) < 6 or data[:4] != MAGIC:
            raise BitstreamError(f"{source}: not a DISCOVER stream (bad magic)")
        if data[4] != VERSION:
            raise BitstreamError(
                f"{source}: format version {data[4]}, this decoder reads version {VERSION} "
                "(re-encode the image with this version)"
            )
        if len(data) < 10:
            raise BitstreamError(f"{source}: truncated ({len(data)} bytes)")
        body, crc = data[:-4], int.from_bytes(data[-4:], "big")
        if zlib.crc32(body) != crc:
            raise BitstreamError(f"{source}: checksum mismatch (truncated or corrupted stream)")
        r = Reader(body, source)
        r.take(5)
        flags = r.byte("flags")
        if flags & ~_FLAG_REST:
            raise BitstreamError(f"{source}: unknown flags {flags:#04x}")
        model_id = r.text("model id")
        weights = r.take(8, "weights fingerprint")
        rate = r.text("rate point")
        device = r.text("encoding device")
        height = r.varint(limit=MAX_SIDE, field="image height")
        width = r.varint(limit=MAX_SIDE, field="image width")
        if height == 0 or width == 0:
            raise BitstreamError(f"{source}: empty image ({width}x{height})")
        grid = latent_grid(height, width)
        parts = []
        for _ in range(r.varint(limit=255, field="part count")):
            count = r.varint(limit=255, field="name count")
            if count == 0:
                raise BitstreamError(f"{source}: a part serves no task")
            names = tuple(r.text("task name") for _ in range(count))
            mask = decode_mask(r.blob("task mask"), grid, f"{source}: mask of tasks {names}")
            stream = r.blob(f"stream of tasks {names}")
            parts.append(Part(names, mask, stream, r.take(CHECK_BYTES, f"check of {names}")))
        z_stream = r.blob("ẑ stream")
        z_check = r.take(CHECK_BYTES, "check of ẑ")
        rest = rest_check = None
        if flags & _FLAG_REST:
            rest = r.blob("rest stream")
            rest_check = r.take(CHECK_BYTES, "check of the rest")
        if not r.at_end():
            raise BitstreamError(f"{source}: {r.remaining()} bytes after the last stream")
        names = [n for p in parts for n in p.names]
        if len(set(names)) != len(names) or HUMAN in names:
            raise BitstreamError(f"{source}: task names repeat or name {HUMAN!r}: {names}")
        return cls(
            model_id,
            weights,
            rate,
            height,
            width,
            z_stream,
            parts,
            rest,
            device,
            z_check,
            rest_check,
        )

    def sizes(self) -> dict[str, int]:
        """Bytes of each part: header (everything but the entropy-coded streams), ẑ, streams."""
        total = len(self.to_bytes())
        parts = {"z": len(self.z_stream)}
        for p in self.parts:
            parts[f"part:{'+'.join(p.names)}"] = len(p.stream)
        if self.rest is not None:
            parts["rest"] = len(self.rest)
        return {"header": total - sum(parts.values()), **parts, "total": total}

    def consumer_bytes(self) -> dict[str, int]:
        """Bytes each consumer receives (what its bpp counts)."""
        return {c: len(self.for_consumer(c).to_bytes()) for c in self.consumers}


def _blob(out: bytearray, data: bytes) -> None:
    write_varint(out, len(data))
    out += data
