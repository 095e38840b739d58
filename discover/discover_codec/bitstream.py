"""The ``.dsc`` container: one encode of an image, serving every consumer.

Layout (integers are LEB128 varints unless sized; "blob" = varint length + bytes)::

    magic "DSCV" | version u8 | flags u8 (bit 0: rest stream present)
    model id (blob, UTF-8) | weights fingerprint (8 bytes) | rate point (blob, UTF-8)
    image height | image width
    task count, then per task: name (blob) | mask (blob, see masks.py) | ỹ_i stream (blob)
    ẑ stream (blob)
    [rest-of-ŷ stream (blob), if flag bit 0]
    CRC-32 of everything above (4 bytes, big endian)

Consumers: a task receives the header with its own task entry, ẑ and its ỹ_i stream; the
``human`` consumer receives everything (all task streams + the rest = all of ŷ).
:meth:`Container.for_consumer` cuts that out of the full container without re-encoding, and a
consumer's bits are exactly the length of what it receives. The CRC makes every truncation and
bit flip a :class:`BitstreamError` before any entropy decoding starts.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace

import numpy as np

from discover.discover_codec.masks import decode_mask, encode_mask
from discover.discover_codec.net import latent_grid
from discover.discover_codec.varint import Reader, write_varint
from discover.errors import BitstreamError

MAGIC = b"DSCV"
VERSION = 1
HUMAN = "human"
MAX_SIDE = 1 << 16
_FLAG_REST = 1


@dataclass
class TaskPart:
    name: str
    mask: np.ndarray  # (h, w) bool on the latent grid
    stream: bytes


@dataclass
class Container:
    model_id: str
    weights: bytes  # 8-byte fingerprint of the model's weights
    rate: str
    height: int
    width: int
    z_stream: bytes
    tasks: list[TaskPart] = field(default_factory=list)
    rest: bytes | None = None  # None: a task consumer's cut (no human decoding possible)

    @property
    def grid(self) -> tuple[int, int]:
        return latent_grid(self.height, self.width)

    @property
    def consumers(self) -> list[str]:
        names = [t.name for t in self.tasks]
        return names + [HUMAN] if self.rest is not None else names

    def task(self, name: str) -> TaskPart:
        for t in self.tasks:
            if t.name == name:
                return t
        raise BitstreamError(
            f"stream has no part for task {name!r} (it carries: {', '.join(self.consumers)})"
        )

    def for_consumer(self, consumer: str) -> Container:
        """What ``consumer`` receives: the whole container for ``human``, else one task."""
        if consumer == HUMAN:
            if self.rest is None:
                raise BitstreamError(
                    "the human consumer needs all of ŷ, but this stream is the cut for task(s) "
                    f"{', '.join(t.name for t in self.tasks)}; extract it from the full stream"
                )
            return self
        return replace(self, tasks=[self.task(consumer)], rest=None)

    def decodes_like(self, other: Container) -> bool:
        """True when a decoder given either container gets the same input: model, weights,
        rate, size, ẑ stream, the rest of ŷ and each part's mask and stream, task names aside
        (the cut of one task and that of another whose grounding found the same boxes)."""

        def unnamed(c: Container) -> bytes:
            parts = [replace(t, name=f"part{i}") for i, t in enumerate(c.tasks)]
            return replace(c, tasks=parts).to_bytes()

        return unnamed(self) == unnamed(other)

    # -- serialisation ---------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names) or HUMAN in names:
            raise ValueError(f"task names must be unique and not {HUMAN!r}: {names}")
        if len(self.weights) != 8:
            raise ValueError("weights fingerprint must be 8 bytes")
        out = bytearray(MAGIC)
        out.append(VERSION)
        out.append(_FLAG_REST if self.rest is not None else 0)
        _blob(out, self.model_id.encode())
        out += self.weights
        _blob(out, self.rate.encode())
        write_varint(out, self.height)
        write_varint(out, self.width)
        write_varint(out, len(self.tasks))
        for t in self.tasks:
            if t.mask.shape != self.grid:
                raise ValueError(f"mask of task {t.name!r} is {t.mask.shape}, grid {self.grid}")
            _blob(out, t.name.encode())
            _blob(out, encode_mask(t.mask))
            _blob(out, t.stream)
        _blob(out, self.z_stream)
        if self.rest is not None:
            _blob(out, self.rest)
        out += zlib.crc32(out).to_bytes(4, "big")
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "stream") -> Container:
        """Parse and verify; every problem is a BitstreamError naming ``source``."""
        if len(data) < 6 or data[:4] != MAGIC:
            raise BitstreamError(f"{source}: not a DISCOVER stream (bad magic)")
        if data[4] != VERSION:
            raise BitstreamError(
                f"{source}: format version {data[4]}, this decoder reads version {VERSION}"
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
        height = r.varint(limit=MAX_SIDE, field="image height")
        width = r.varint(limit=MAX_SIDE, field="image width")
        if height == 0 or width == 0:
            raise BitstreamError(f"{source}: empty image ({width}x{height})")
        grid = latent_grid(height, width)
        tasks = []
        for _ in range(r.varint(limit=255, field="task count")):
            name = r.text("task name")
            mask = decode_mask(r.blob("task mask"), grid, f"{source}: mask of task {name!r}")
            tasks.append(TaskPart(name, mask, r.blob(f"stream of task {name!r}")))
        z_stream = r.blob("ẑ stream")
        rest = r.blob("rest stream") if flags & _FLAG_REST else None
        if not r.at_end():
            raise BitstreamError(f"{source}: {r.remaining()} bytes after the last stream")
        return cls(model_id, weights, rate, height, width, z_stream, tasks, rest)

    def sizes(self) -> dict[str, int]:
        """Bytes of each part: header (everything but the entropy-coded streams), ẑ, streams."""
        total = len(self.to_bytes())
        parts = {"z": len(self.z_stream)}
        for t in self.tasks:
            parts[f"task:{t.name}"] = len(t.stream)
        if self.rest is not None:
            parts["rest"] = len(self.rest)
        return {"header": total - sum(parts.values()), **parts, "total": total}

    def consumer_bytes(self) -> dict[str, int]:
        """Bytes each consumer receives (what its bpp counts)."""
        return {c: len(self.for_consumer(c).to_bytes()) for c in self.consumers}


def _blob(out: bytearray, data: bytes) -> None:
    write_varint(out, len(data))
    out += data
