"""Fuzzing the DISCOVER stream: mutated ``.dsc`` files fed to the parser and the decoder.

Encodes one synthetic scene (two tasks) with the committed mini model, then feeds N mutants
(truncations, bit flips, inserted/deleted bytes, garbage) to ``Container.from_bytes`` and every
consumer's decoder. Every mutant must raise BitstreamError: reports crashes (any other exception)
and wrong decodes (no error but another ŷ), both targets 0, and the time per case. A second pass
repairs each mutant's checksum so the mutants reach the field checks, the rANS decoder and the
checks of the decoded values: a mutant that still decodes must give every consumer it shares
with the original the original's ŷ (wrong decodes, target 0), and nothing may crash or hang.

    python benchmarks/fuzz_bitstream.py [--cases 10000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from discover.datasets.synthetic_scenes import SceneGenerator
from discover.discover_codec.fuzz import fuzz
from discover.discover_codec.model import load_model_dir, masks_from_boxes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="discover-mini")
    ap.add_argument("--rate", default="1")
    args = ap.parse_args()

    model = load_model_dir(args.model, args.rate)
    image = SceneGenerator(args.seed, "val", 192, 256, 2, 4).render(0)[0]
    boxes = {"detection": [[10, 20, 90, 70]], "segmentation": [[60, 40, 120, 100]]}
    data = model.encode(image, masks_from_boxes(boxes, *image.shape[:2])).to_bytes()
    print(f"stream: {len(data)} bytes, {image.shape[1]}x{image.shape[0]}, model {args.model}")
    failures = 0
    for repair in (False, True):
        t0 = time.perf_counter()
        r = fuzz(model, data, np.random.default_rng(args.seed), args.cases, repair_checksum=repair)
        dt = time.perf_counter() - t0
        print(
            "\nchecksum repaired (mutants reach the field checks and the entropy decoder):"
            if repair
            else "\nmutants as they are:"
        )
        print(f"  cases          {r.cases}")
        print(f"  rejected       {r.rejected}  (BitstreamError)")
        print(f"  identical      {r.identical}  (mutation gave the original back)")
        if repair:
            print(f"  decoded        {r.decoded}  (valid checksum, altered payload, same values)")
        print(f"  crashes        {r.crashes}  (target 0)")
        print(f"  wrong decodes  {r.wrong_decodes}  (target 0)")
        print(f"  time           {dt:.1f} s, {1000 * dt / max(r.cases, 1):.2f} ms per case")
        failures += r.crashes + r.wrong_decodes
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
