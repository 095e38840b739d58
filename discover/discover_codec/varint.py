"""Byte-level helpers of the ``.dsc`` format: LEB128 varints and a bounds-checked reader."""

from __future__ import annotations

from discover.errors import BitstreamError

__all__ = ["BitstreamError", "Reader", "write_varint"]


def write_varint(out: bytearray, value: int) -> None:
    if value < 0:
        raise ValueError(f"varint of negative value {value}")
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


class Reader:
    """Reads a byte string front to back; every overrun is a BitstreamError naming ``what``."""

    def __init__(self, data: bytes, what: str):
        self.data = memoryview(data)
        self.pos = 0
        self.what = what

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, field: str = "field") -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise BitstreamError(
                f"{self.what}: truncated ({field} needs {n} bytes at offset {self.pos}, "
                f"{self.remaining()} left)"
            )
        out = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return out

    def byte(self, field: str = "field") -> int:
        return self.take(1, field)[0]

    def varint(self, limit: int = 1 << 40, field: str = "number") -> int:
        value, shift = 0, 0
        while True:
            byte = self.byte(field)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 63:
                raise BitstreamError(f"{self.what}: malformed {field} at offset {self.pos}")
        if value > limit:
            raise BitstreamError(f"{self.what}: {field} {value} out of range (max {limit})")
        return value

    def blob(self, field: str, limit: int = 1 << 32) -> bytes:
        return self.take(self.varint(limit=limit, field=f"length of {field}"), field)

    def text(self, field: str, limit: int = 255) -> str:
        raw = self.blob(field, limit)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BitstreamError(f"{self.what}: {field} is not UTF-8") from exc
