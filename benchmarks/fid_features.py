"""FID/KID feature extraction: throughput per batch size, and memory as the image count grows.

Each case runs in a fresh process (peak RSS = ``ru_maxrss`` of that process) and extracts
features through clean-fid's own ``get_folder_features`` (mode "clean": every image resized to
299x299), as the ``fid_kid`` rule does:

* throughput (images/s) at batch 32 and 64 for the Inception network (clean-fid's TorchScript
  file when it is in the weights cache; otherwise torchvision's Inception-v3 architecture with
  random weights, the same amount of compute) and for the demo features (the committed
  scenes-classifier), on CPU and on CUDA when present; ratio = images/s / that of batch 32;
* memory: demo features of ``--small`` and ``--large`` (default 50,000) images of 64x64 px;
  images stream through the data loader, so peak memory must grow only by the feature matrix
  (N x D floats), not with the images: ratio = peak(large) / peak(small).

    python benchmarks/fid_features.py [--images 256] [--large 50000] [--skip-memory]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CASE = textwrap.dedent(
    """
    import json, resource, sys, time
    import numpy as np, torch
    from cleanfid import fid
    folder, kind, device, batch, cache = sys.argv[1:6]
    batch = int(batch)
    torch.manual_seed(0)
    if kind == "inception":
        from discover.metrics.fid import inception_feature_extractor
        from discover.errors import WeightsMissingError
        try:
            extractor = inception_feature_extractor("clean", cache=cache, device=device)
            name = "clean-fid Inception (cached weights)"
        except WeightsMissingError:
            import torchvision
            net = torchvision.models.inception_v3(
                weights=None, aux_logits=False, init_weights=False
            ).eval().to(device)
            net.fc = torch.nn.Identity()
            def extractor(x):
                with torch.no_grad():
                    return net((x / 255.0 - 0.5) / 0.5)
            name = "Inception-v3 architecture (random weights)"
    else:
        from discover.metrics.distribution import demo_feature_extractor
        extractor = demo_feature_extractor("weights/scenes-classifier/model.pth", device=device)
        name = "demo features (scenes-classifier)"
    options = dict(num_workers=0, batch_size=batch, device=torch.device(device), mode="clean",
                   verbose=False)
    fid.get_folder_features(folder, extractor, **options)  # warm-up (and file-system cache)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    feats = fid.get_folder_features(folder, extractor, **options)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    print(json.dumps({"name": name, "images": len(feats), "dim": int(feats.shape[1]),
                      "seconds": seconds, "images_per_s": len(feats) / seconds,
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


def write_images(folder: Path, n: int, size: int) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    for k in range(n):
        img = np.roll(base, (k * 7) % size, axis=k % 2)
        Image.fromarray(img).save(folder / f"{k:06d}.png", compress_level=1)


def run_case(folder: Path, kind: str, device: str, batch: int, cache: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CASE, str(folder), kind, device, str(batch), cache],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"case {kind}/{device}/{batch} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256, help="images per throughput case")
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=50000)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--weights-cache", default="weights-cache")
    args = parser.parse_args()

    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory(prefix="fid-bench-") as tmp:
        folder = Path(tmp) / "throughput"
        write_images(folder, args.images, 256)
        print(f"throughput: {args.images} images of 256x256, clean mode (resize to 299)")
        print(f"{'extractor':44s} {'device':6s} {'batch':>5s} {'images/s':>9s} {'ratio':>6s}")
        for kind in ("inception", "demo"):
            for device in devices:
                base = None
                for batch in (32, 64):
                    r = run_case(folder, kind, device, batch, args.weights_cache)
                    base = base or r["images_per_s"]
                    print(
                        f"{r['name']:44s} {device:6s} {batch:5d} {r['images_per_s']:9.1f} "
                        f"{r['images_per_s'] / base:6.2f}"
                    )
        if args.skip_memory:
            return
        print(f"\nmemory: demo features, {args.small} vs {args.large} images of 64x64 (CPU)")
        peaks = {}
        for n in (args.small, args.large):
            sub = Path(tmp) / f"mem{n}"
            write_images(sub, n, 64)
            r = run_case(sub, "demo", "cpu", 64, args.weights_cache)
            peaks[n] = r["peak_mib"]
            features_mib = n * r["dim"] * 4 / 2**20
            print(
                f"{n:7d} images: peak {r['peak_mib']:8.1f} MiB, features {features_mib:6.1f} MiB,"
                f" {r['images_per_s']:7.1f} images/s"
            )
        ratio = peaks[args.large] / peaks[args.small]
        print(f"ratio peak({args.large}) / peak({args.small}) = {ratio:.3f}")


if __name__ == "__main__":
    main()
