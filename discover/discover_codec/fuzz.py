"""Mutated ``.dsc`` streams for robustness checks (the test suite and benchmarks/fuzz_bitstream)."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from discover.discover_codec.bitstream import Container
from discover.errors import BitstreamError

KINDS = ("truncate", "bit_flip", "insert", "delete", "garbage")


def mutations(data: bytes, rng: np.random.Generator, n: int) -> Iterator[tuple[str, bytes]]:
    """``n`` mutants of ``data``: truncations, 1-3 bit flips, inserted or deleted bytes, and
    garbage after a valid magic + version (cycling through the kinds)."""
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        b = bytearray(data)
        if kind == "truncate":
            b = b[: rng.integers(0, len(b))]
        elif kind == "bit_flip":
            for _ in range(rng.integers(1, 4)):
                pos = rng.integers(0, len(b))
                b[pos] ^= 1 << int(rng.integers(0, 8))
        elif kind == "insert":
            pos = rng.integers(0, len(b) + 1)
            b[pos:pos] = rng.bytes(int(rng.integers(1, 5)))
        elif kind == "delete":
            pos = rng.integers(0, len(b))
            del b[pos : pos + int(rng.integers(1, 5))]
        else:
            b = bytearray(data[:6]) + bytearray(rng.bytes(int(rng.integers(0, 200))))
        yield kind, bytes(b)


@dataclass
class FuzzReport:
    cases: int = 0
    rejected: int = 0  # BitstreamError: the wanted outcome
    crashes: int = 0  # any other exception
    wrong_decodes: int = 0  # decoded without error to something else than the original
    identical: int = 0  # the mutation happened to give the original bytes back
    decoded: int = 0  # checksum-repaired mutants that parsed and entropy-decoded


def fuzz(
    model, data: bytes, rng: np.random.Generator, n: int, repair_checksum: bool = False
) -> FuzzReport:
    """Feed ``n`` mutants of ``data`` to the container parser and ``model``'s decoder.

    ``repair_checksum`` recomputes each mutant's CRC, so that the mutants reach the field checks,
    the entropy decoder and the per-stream checks of the decoded values: a mutant that still
    decodes must give every consumer it shares with the original the original's ŷ (a renamed
    task is no wrong decode; other values for the same consumer are)."""
    original = Container.from_bytes(data)
    truth = {c: model.decode_y(original, c)[0] for c in original.consumers}
    report = FuzzReport()
    for _, bad in mutations(data, rng, n):
        if repair_checksum and len(bad) > 10:
            bad = bad[:-4] + zlib.crc32(bad[:-4]).to_bytes(4, "big")
        report.cases += 1
        if bad == data:
            report.identical += 1
            continue
        try:
            c = Container.from_bytes(bad, "fuzzed.dsc")
            decoded = {k: model.decode_y(c, k)[0] for k in c.consumers}
        except BitstreamError:
            report.rejected += 1
            continue
        except Exception:  # noqa: BLE001  (counting what should never happen)
            report.crashes += 1
            continue
        if repair_checksum:
            report.decoded += 1
            shared = decoded.keys() & truth.keys()
            if any(not torch.equal(decoded[k], truth[k]) for k in shared):
                report.wrong_decodes += 1
        elif decoded.keys() != truth.keys() or any(
            not torch.equal(decoded[k], truth[k]) for k in truth
        ):
            report.wrong_decodes += 1
    return report
