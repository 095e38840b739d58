"""Does the trained mini composition follow ẑ_c? Latent MSE and PSNR of composed images.

For each rate point of a composition-trained model (default: the committed
``weights/discover-gen``), on crops of synthetic-scenes val images (never seen in training):

* baseline, measured in the same run: the VAE decoding ẑ_c ("w/o composition") and the VAE's
  own ceiling D(z_c);
* composition: 8 and 50 DDIM steps, starting from noise (the paper's z_T ~ N(0, I)) and from
  the diffused condition (``start: condition``), and the same sampler with C switched off
  (``conditioning_scale`` 0: the unconditional prior started the same way).

Printed: latent MSE to z_c = E(x) and PSNR to x, and the ratio of composed to VAE-decoded MSE.
A model whose C is ignored gives the same numbers with and without C.

    python benchmarks/composition_quality.py [--model weights/discover-gen] [--images 8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from discover.composition.pipeline import CompositionPipeline  # noqa: E402
from discover.datasets.synthetic_scenes import SceneGenerator  # noqa: E402
from discover.discover_codec.model import load_codec_net  # noqa: E402
from discover.discover_codec.vae import decode_latent, encode_latent  # noqa: E402


def val_crops(n: int, crop: int, seed: int = 0) -> torch.Tensor:
    """Centre crops of synthetic-scenes val images (the train split is another stream)."""
    gen = SceneGenerator(seed, "val", max(crop, 256), max(crop, 384), 2, 6)
    out = []
    for i in range(n):
        img = gen.render(i)[0]
        y, x = (img.shape[0] - crop) // 2, (img.shape[1] - crop) // 2
        out.append(img[y : y + crop, x : x + crop])
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float().div(255)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / F.mse_loss(a, b)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=str(ROOT / "weights" / "discover-gen"))
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = Path(args.model)
    rates = sorted((p.name[1:-8] for p in model.glob("r*.pth.tar")), key=float)
    x = val_crops(args.images, args.crop)
    print(f"{model}: {args.images} val crops of {args.crop} px, rates {rates}")
    print(
        f"{'rate':>5s} {'decoder':34s} {'latent MSE':>10s} {'PSNR dB':>8s} {'MSE / VAE':>9s}",
        flush=True,
    )
    for rate in rates:
        pipe = CompositionPipeline.from_pretrained(model / "prior", model / "control" / f"r{rate}")
        codec = load_codec_net(model / f"r{rate}.pth.tar")
        with torch.no_grad():
            z_c = encode_latent(pipe.vae, x)
            z_c_hat = codec(x)["z_c_hat"]
            base = F.mse_loss(z_c_hat, z_c).item()
            rows = [
                ("VAE on z_c (ceiling)", z_c),
                ("VAE on ẑ_c (w/o composition)", z_c_hat),
            ]
            for steps in (8, 50):
                for start in ("noise", "condition"):
                    for scale, what in ((1.0, "C"), (0.0, "no C")):
                        z0 = pipe.compose(
                            z_c_hat, steps, seed=0, start=start, conditioning_scale=scale
                        )
                        rows.append((f"{steps} steps, start {start}, {what}", z0))
            for label, z in rows:
                mse = F.mse_loss(z, z_c).item()
                image = decode_latent(pipe.vae, z)
                print(
                    f"{rate:>5s} {label:34s} {mse:10.3f} {psnr(image, x):8.2f} {mse / base:9.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
