"""DISCOVER encode/decode time and peak memory per image, against ELIC in the same run.

Each case runs in a fresh process (peak RSS = ``ru_maxrss`` of that process):

* ``mini``: the committed mini model (CPU), synthetic scenes at 256x256 and 512x512;
* ``full``: the paper-size codec (N=192, M=320, untrained weights: the coding work is the same)
  at 512x512 on CPU, and on CUDA when a GPU is present;
* baseline: CompressAI's ``Elic2022Official`` compress/decompress on the same image and device.

Times are medians over ``--repeat`` runs after one warm-up; "ratio" = DISCOVER / ELIC. Also prints
the task stream's size against the masked fraction of the latent (it should be proportional).

    python benchmarks/discover_codec.py [--repeat 3] [--skip-full]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

CASE = textwrap.dedent(
    """
    import json, resource, statistics, sys, time
    import numpy as np, torch
    from discover.datasets.synthetic_scenes import SceneGenerator
    kind, size, device, repeat = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    torch.manual_seed(0)
    image = SceneGenerator(0, "val", size, size, 3, 6).render(0)[0][:size, :size]
    image = np.ascontiguousarray(image)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    if kind == "elic":
        from compressai.models import Elic2022Official
        from discover.discover_codec.net import pad_image
        net = Elic2022Official().eval().to(device)
        net.update(force=True)
        x = pad_image(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255).to(device)
        def enc():
            with torch.no_grad():
                return net.compress(x)
        def dec(out):
            with torch.no_grad():
                return net.decompress(out["strings"], out["shape"])
        size_of = lambda out: sum(len(s[0]) for s in out["strings"])
    else:
        from discover.discover_codec.model import DiscoverModel, load_model_dir
        from discover.discover_codec.net import FULL, DiscoverCodecNet
        if kind == "mini":
            model = load_model_dir("discover-mini", "1", device=device)
        else:
            net = DiscoverCodecNet(FULL)
            net.update()
            model = DiscoverModel(net, None, "discover-full", "1", device)
        from discover.discover_codec.model import masks_from_boxes
        masks = masks_from_boxes({"detection": [[0, 0, size // 2, size // 2]]}, size, size)
        def enc():
            with torch.no_grad():
                return model.encode(image, masks)
        def dec(c):
            return model.decode_latent(c, "human")
        size_of = lambda c: len(c.to_bytes())
    times_e, times_d = [], []
    for i in range(repeat + 1):
        sync(); t0 = time.perf_counter(); out = enc(); sync(); t1 = time.perf_counter()
        dec(out); sync(); t2 = time.perf_counter()
        if i:
            times_e.append(t1 - t0); times_d.append(t2 - t1)
    cuda = device.startswith("cuda")
    print(json.dumps({
        "encode_s": statistics.median(times_e), "decode_s": statistics.median(times_d),
        "bytes": size_of(out),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else 0,
    }))
    """
)

FRACTIONS = textwrap.dedent(
    """
    import json, numpy as np
    from discover.discover_codec.model import load_model_dir
    from discover.discover_codec.net import latent_grid
    from discover.datasets.synthetic_scenes import SceneGenerator
    model = load_model_dir("discover-mini", "1")
    image = SceneGenerator(1, "val", 512, 512, 4, 8).render(0)[0][:512, :512]
    image = np.ascontiguousarray(image)
    grid = latent_grid(512, 512)
    out = {}
    for frac in (0.0, 0.125, 0.25, 0.5, 0.75, 1.0):
        mask = np.zeros(grid, bool)
        mask.reshape(-1)[: round(frac * mask.size)] = True
        out[frac] = len(model.encode(image, {"t": mask}).part("t").stream)
    print(json.dumps(out))
    """
)


def run(kind: str, size: int, device: str, repeat: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CASE, kind, str(size), device, str(repeat)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-full", action="store_true")
    args = ap.parse_args()
    import torch

    cases = [("mini", 256, "cpu"), ("mini", 512, "cpu")]
    if not args.skip_full:
        cases.append(("full", 512, "cpu"))
        if torch.cuda.is_available():
            cases.append(("full", 512, "cuda"))
    print(
        f"{'case':<22}{'encode s':>10}{'decode s':>10}{'bytes':>9}{'RSS MiB':>9}"
        f"{'GPU MiB':>9}{'enc ratio':>11}{'dec ratio':>11}"
    )
    for kind, size, device in cases:
        r = run(kind, size, device, args.repeat)
        base = run("elic", size, device, args.repeat)
        name = f"{kind} {size}px {device}"
        print(
            f"{name:<22}{r['encode_s']:>10.3f}{r['decode_s']:>10.3f}{r['bytes']:>9}"
            f"{r['peak_rss_mib']:>9.0f}{r['gpu_peak_mib']:>9.0f}"
            f"{r['encode_s'] / base['encode_s']:>11.2f}{r['decode_s'] / base['decode_s']:>11.2f}"
        )
        print(
            f"{'  ELIC (baseline)':<22}{base['encode_s']:>10.3f}{base['decode_s']:>10.3f}"
            f"{base['bytes']:>9}{base['peak_rss_mib']:>9.0f}{base['gpu_peak_mib']:>9.0f}"
        )
    proc = subprocess.run(
        [sys.executable, "-c", FRACTIONS], capture_output=True, text=True, check=True
    )
    sizes = {float(k): v for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}
    print("\ntask stream vs masked fraction (mini, 512x512):")
    for frac, n in sizes.items():
        share = n / sizes[1.0] if sizes[1.0] else 0.0
        print(f"  fraction {frac:>5.3f}: {n:>7} bytes  ({share:.3f} of the full-mask stream)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
