"""How good is the embedded DISCOVER? Whole-image quality of the mini VAE and codec (issue 21).

On the embedded default's own datasets (``config.yaml``: the scenes and objects val images,
the photos), whole images as the pipeline codes them, never training crops:

* **VAE bound**: x -> E -> D, no codec (images padded to a multiple of 8 by edge replication,
  cropped back, rounded to 8 bits as the pipeline's PNGs are): PSNR per image (mean over the
  dataset) and the standard deviation of the scaled latent z_c over every latent element of
  the dataset (SD's scaling factor is chosen for 1).
* **Colours**: on the photos, the largest difference of a channel's mean between input and
  output; on the photos made grey (the same value in R, G, B), the output's mean chroma
  (the standard deviation across R, G, B per pixel, in 8-bit levels; 0 for a grey image).
* **DISCOVER w/o composition, full stream** (``--codec``, a ``type: discover`` entry of the
  config): real ``.dsc`` files through the codec adapter, bpp = all bits / all pixels of the
  dataset, PSNR per image; its gap to the VAE bound; and, against ``--anchor`` (default
  ``hyperprior-mini``, coded the same way), BD-PSNR from the ``bjontegaard`` package (pchip)
  over the bpp interval both curves cover (printed, with the share of the codec's own
  log-rate range it is).
* **Textures** (``--textures``): the VAE bound on generated 256×256 images of one texture the
  synthetic scenes draw (two random colours, the scenes' grain and background blur), by
  stripe period and checker cell in pixels, 8 images each: where the 1/8-resolution latent
  stops carrying a pattern.

    python benchmarks/mini_quality.py [--codec discover-mini] [--vae DIR] [--no-codec]
        [--datasets scenes objects photos] [--anchor hyperprior-mini] [--textures]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from discover.codecs.registry import get_codec  # noqa: E402
from discover.config import load_config  # noqa: E402
from discover.datasets.registry import get_dataset  # noqa: E402
from discover.discover_codec.net import pad_image  # noqa: E402
from discover.discover_codec.vae import decode_latent, encode_latent, load_vae  # noqa: E402
from discover.images import image_to_tensor, tensor_to_image  # noqa: E402
from discover.plan import Plan  # noqa: E402


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0**2 / max(mse, 1e-10))


def vae_roundtrip(vae, image: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    h, w = image.shape[:2]
    z = encode_latent(vae, pad_image(image_to_tensor(image), 8))
    with torch.no_grad():
        return tensor_to_image(decode_latent(vae, z), h, w), z


def grey(image: np.ndarray) -> np.ndarray:
    y = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.repeat(y.round().astype(np.uint8)[..., None], 3, axis=2)


def chroma(image: np.ndarray) -> float:
    return float(image.astype(np.float64).std(axis=2).mean())


def colour_shift(a: np.ndarray, b: np.ndarray) -> float:
    means = [im.reshape(-1, 3).astype(np.float64).mean(0) for im in (a, b)]
    return float(np.abs(means[0] - means[1]).max())


def vae_report(vae, name: str, images: list[np.ndarray]) -> float:
    values, latents, t0 = [], [], time.perf_counter()
    shifts, greys = [], []
    for image in images:
        out, z = vae_roundtrip(vae, image)
        values.append(psnr(out, image))
        latents.append(z.flatten())
        if name == "photos":
            shifts.append(colour_shift(out, image))
            greys.append(chroma(vae_roundtrip(vae, grey(image))[0]))
    z = torch.cat(latents)
    line = (
        f"VAE  {name:8s} {len(images):3d} images  PSNR {np.mean(values):6.2f} dB "
        f"(min {min(values):5.2f})  latent std {z.std().item():.3f} mean {z.mean().item():+.3f}"
    )
    if shifts:
        line += f"  colour shift {max(shifts):.1f}  grey-input chroma {max(greys):.1f}"
    print(line + f"  [{time.perf_counter() - t0:.1f} s]", flush=True)
    return float(np.mean(values))


def codec_curve(plan: Plan, name: str, images: list[np.ndarray], tmp: Path, threads: int):
    """(rate, bpp, PSNR) per rate of a codec's adapter, configured for each rate as the
    pipeline's codec jobs are (``Plan.codec_job_config``: trained weights resolved): real
    files, all bits / all pixels."""
    pixels = sum(im.shape[0] * im.shape[1] for im in images)
    curve = []
    for rate in plan.config["codecs"][name]["rates"]:
        codec = get_codec(name, plan.codec_job_config(name, str(rate)), threads=threads)
        bits, values = 0, []
        for i, image in enumerate(images):
            path = tmp / f"{name}-{rate}-{i}.{codec.extension}"
            codec.encode(image, rate, path)
            bits += path.stat().st_size * 8
            values.append(psnr(codec.decode(path, image.shape[:2], rate), image))
        curve.append((rate, bits / pixels, float(np.mean(values))))
    return curve


def texture_image(rng: np.random.Generator, kind: str, px: float, size: int = 256) -> np.ndarray:
    """Stripes of period ``px`` (random angle and phase) or a checker of ``px``-pixel cells
    (random offset), two random colours, drawn as ``synthetic_scenes`` draws its backgrounds
    (sign of a sine / cell parity; grain of 6 levels; Gaussian blur 0.6)."""
    from PIL import Image, ImageFilter

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if kind == "stripes":
        theta, phase = rng.uniform(0, math.pi), rng.uniform(0, px)
        u = xx * math.cos(theta) + yy * math.sin(theta) + phase
        t = (np.sin(u * 2 * math.pi / px) > 0).astype(np.float32)
    else:
        ox, oy = rng.integers(0, int(px), 2)
        t = ((((xx + ox) // int(px)) + ((yy + oy) // int(px))) % 2).astype(np.float32)
    c1, c2 = (rng.integers(0, 256, 3).astype(np.float32) for _ in range(2))
    img = c1 * (1 - t[..., None]) + c2 * t[..., None] + rng.normal(0, 6, (size, size, 1))
    img = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    return np.asarray(img.filter(ImageFilter.GaussianBlur(0.6)))


def texture_report(vae, n: int = 8) -> None:
    for kind, sizes in (("stripes", (6, 8, 11, 16, 24)), ("checker", (6, 8, 12, 16, 23))):
        cells = []
        for px in sizes:
            rng = np.random.default_rng(1000 + px)
            scores = [
                psnr(im, vae_roundtrip(vae, im)[0])
                for im in (texture_image(rng, kind, px) for _ in range(n))
            ]
            cells.append(f"{px} px {np.mean(scores):.2f} dB")
        print(f"textures {kind:8s} " + "  ".join(cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument("--datasets", nargs="+", default=["scenes", "objects", "photos"])
    ap.add_argument("--vae", default=str(ROOT / "weights" / "discover-mini" / "vae"))
    ap.add_argument("--codec", default="discover-mini")
    ap.add_argument("--anchor", default="hyperprior-mini")
    ap.add_argument("--no-codec", action="store_true", help="the VAE bound only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--textures", action="store_true", help="the VAE bound per texture scale")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    data = {}
    for name in args.datasets:
        ds = get_dataset(name, cfg)
        data[name] = [ds.load(item) for item in ds.list_items()]
    vae = load_vae(args.vae).float()
    print(f"VAE {args.vae} (scaling factor {vae.config.scaling_factor:.4f})")
    bound = {name: vae_report(vae, name, images) for name, images in data.items()}
    if args.textures:
        texture_report(vae)
    if args.no_codec:
        return
    import bjontegaard

    with tempfile.TemporaryDirectory() as tmp:
        curves = {}
        plan = Plan(cfg, basedir=ROOT)
        for which in (args.codec, args.anchor):
            for name, images in data.items():
                t0 = time.perf_counter()
                curves[which, name] = curve = codec_curve(
                    plan, which, images, Path(tmp), args.threads
                )
                points = "  ".join(f"{r}: {b:.3f} bpp {p:5.2f} dB" for r, b, p in curve)
                print(f"{which:16s} {name:8s} {points}  [{time.perf_counter() - t0:.1f} s]")
        for name in data:
            ours = sorted(curves[args.codec, name], key=lambda c: c[1])
            anchor = sorted(curves[args.anchor, name], key=lambda c: c[1])
            rising = all(b[2] > a[2] for a, b in zip(ours, ours[1:], strict=False))
            first = next(p for r, _, p in curves[args.codec, name] if float(r) == 1.0)
            # BD-PSNR integrates over the bpp interval both curves cover; the anchor spans
            # far more rates than the four λ_R, so bjontegaard's own overlap (common / union,
            # warning below 0.75) says little here: the common interval is printed instead,
            # with the share of this codec's log-rate range it covers.
            lo = max(ours[0][1], anchor[0][1])
            hi = min(ours[-1][1], anchor[-1][1])
            try:
                if hi <= lo:
                    raise ValueError(f"no common bpp interval: from {lo:.3f} to {hi:.3f} bpp")
                bd = bjontegaard.bd_psnr(
                    [c[1] for c in anchor],
                    [c[2] for c in anchor],
                    [c[1] for c in ours],
                    [c[2] for c in ours],
                    method="pchip",
                    require_matching_points=False,
                    min_overlap=0,
                )
                covered = math.log(hi / lo) / math.log(ours[-1][1] / ours[0][1])
                bd_text = (
                    f"{bd:+.2f} dB over {lo:.3f}-{hi:.3f} bpp "
                    f"({covered:.0%} of {args.codec}'s log-rate range)"
                )
            except Exception as exc:  # no common interval: say so
                bd_text = f"not computed ({exc})"
            print(
                f"{name:8s} {args.codec}: PSNR rising with rate {rising}; λ_R=1 "
                f"{first:.2f} dB, {bound[name] - first:.2f} dB under the VAE bound; "
                f"BD-PSNR vs {args.anchor} {bd_text}"
            )


if __name__ == "__main__":
    main()
