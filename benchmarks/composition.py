"""Generative composition: decode time and peak memory per image, and training step time.

Each case runs in a fresh process (peak RSS = ``ru_maxrss`` of that process; GPU peak =
``torch.cuda.max_memory_allocated``):

* ``mini``: the mini prior's architecture (``TINY_UNET_CONFIG``, untrained weights: the work per
  step is the same) + its control module + the committed mini VAE, on CPU, at 128x128 and
  256x256. Baseline in the same run: decoding ẑ_c without composition (the VAE decoder alone).
* ``full`` (CUDA only): SD 2.1-base's UNet, VAE and text encoder (OpenCLIP ViT-H text tower)
  plus the latent ControlNet, random weights (built on the meta device, materialised on the GPU,
  fp16), at 512x512.
* ``train``: one optimizer step of Eq. 4 (mini codec + tiny prior + C; CPU, and CUDA when
  present) against a stage-I step of the codec alone (rate + latent MSE, as ``train_codec``)
  measured in the same process.

Times are medians over ``--repeat`` runs after one warm-up; ratios: 50 vs 8 steps, composition vs
the VAE decoder alone, composition training step vs codec-only step.

    python benchmarks/composition.py [--repeat 3] [--skip-full] [--skip-decode] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

CASE = textwrap.dedent(
    """
    import json, resource, statistics, sys, tempfile, time
    import torch
    # n: sampling steps (decode cases) or batch size (train case)
    kind, size, device, repeat, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(
        sys.argv[4]), int(sys.argv[5])
    threads = int(sys.argv[6])
    if threads:
        torch.set_num_threads(threads)
    from discover.discover_codec.vae import decode_latent
    from discover.composition.pipeline import CompositionPipeline
    TMP = tempfile.TemporaryDirectory()  # the mini prior's directory, removed at exit
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def full_pipeline():
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel
        from discover.composition.control import control_from_unet
        from discover.composition.prior import (SD21_BASE_TEXT_CONFIG, SD21_BASE_UNET_CONFIG,
            SD21_BASE_VAE_CONFIG, SD_SCHEDULE, tiny_tokenizer)
        with torch.device("meta"):  # no host memory, no CPU initialisation
            unet = UNet2DConditionModel(**SD21_BASE_UNET_CONFIG)
            control = control_from_unet(unet, load_weights_from_unet=False)
            vae = AutoencoderKL(**SD21_BASE_VAE_CONFIG)
            text = CLIPTextModel(CLIPTextConfig(**SD21_BASE_TEXT_CONFIG))
        gen = torch.Generator(device).manual_seed(0)
        def materialise(model, dtype):
            model = model.to_empty(device=device)
            with torch.no_grad():
                for p in model.parameters():
                    p.normal_(0, 0.02, generator=gen)  # small: fp16 must not overflow
                for name, b in model.named_buffers():  # non-persistent buffers, e.g. CLIP's
                    if name.endswith("position_ids"):
                        b.copy_(torch.arange(b.shape[-1], device=device).expand_as(b))
            return model.to(dtype)
        # Random weights: only the work per step is measured. The tokenizer only has to give
        # 77 token ids for the (empty) prompt.
        return CompositionPipeline(materialise(unet, torch.float16),
            materialise(control, torch.float16), materialise(vae, torch.float32),
            materialise(text, torch.float16), tiny_tokenizer(77),
            DDIMScheduler(**SD_SCHEDULE))

    def mini_pipeline():
        from discover.composition.prior import build_prior
        prior = build_prior(TMP.name + "/prior", "weights/discover-mini/vae")
        return CompositionPipeline.from_pretrained(prior, device=device)

    if kind == "train":
        import numpy as np
        import torch.nn.functional as F
        from discover.discover_codec.vae import encode_latent
        from discover.composition.prior import build_prior
        from discover.training.composition import CompositionTrainer
        prior = build_prior(TMP.name + "/prior", "weights/discover-mini/vae")
        spec = {"codec": "mini", "batch_size": n, "crop": size, "num_images": 8,
                "lr": 1e-4, "conditioning_embedding_out_channels": [16, 32],
                "device": "cpu" if not cuda else "auto"}
        trainer = CompositionTrainer(spec, 1.0, prior=prior, steps=10 ** 6)
        batch = trainer.sample_batch()
        net = trainer.model.codec
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        x_dev = batch.x.to(next(net.parameters()).device)
        def codec_step():
            x = x_dev
            out = net(x)
            bpp = sum(torch.log2(lik).sum() for lik in out["likelihoods"].values()) / -(
                x.shape[0] * x.shape[-2] * x.shape[-1])
            loss = bpp + F.mse_loss(out["z_c_hat"], encode_latent(trainer.vae, x))
            opt.zero_grad(); loss.backward(); opt.step()
        times, base = [], []
        for i in range(repeat + 1):
            sync(); t0 = time.perf_counter(); trainer.train_step(batch); sync()
            t1 = time.perf_counter(); codec_step(); sync(); t2 = time.perf_counter()
            if i:
                times.append(t1 - t0); base.append(t2 - t1)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        gpu = torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0
        print(json.dumps({"step_s": statistics.median(times),
                          "codec_step_s": statistics.median(base), "peak_rss_mib": rss,
                          "gpu_peak_mib": gpu}))
        raise SystemExit

    pipe = full_pipeline() if kind == "full" else mini_pipeline()
    torch.manual_seed(0)
    z_c_hat = torch.randn(1, 4, size // 8, size // 8, device=device)
    times, base = [], []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for i in range(repeat + 1):
        sync(); t0 = time.perf_counter()
        pipe(z_c_hat, steps=n, seed=0)
        sync(); t1 = time.perf_counter()
        with torch.no_grad():
            decode_latent(pipe.vae, z_c_hat.to(pipe.vae.dtype))
        sync(); t2 = time.perf_counter()
        if i:
            times.append(t1 - t0); base.append(t2 - t1)
    print(json.dumps({
        "decode_s": statistics.median(times), "vae_only_s": statistics.median(base),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else 0,
    }))
    """
)


def run(kind: str, size: int, device: str, repeat: int, n: int, threads: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CASE, kind, str(size), device, str(repeat), str(n), str(threads)],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise SystemExit(f"case {kind} {size} {device} {n} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--train-batch", type=int, default=4)
    ap.add_argument("--skip-decode", action="store_true", help="training steps only")
    args = ap.parse_args()
    import torch

    cuda = ["cuda"] if torch.cuda.is_available() else []
    cases = [] if args.skip_decode else [("mini", 128, "cpu"), ("mini", 256, "cpu")]
    if not args.skip_full and not args.skip_decode and cuda:
        cases.append(("full", 512, "cuda"))
    print(
        f"{'case':<22}{'steps':>6}{'decode s':>10}{'VAE s':>8}{'RSS MiB':>9}{'GPU MiB':>9}"
        f"{'vs VAE':>9}{'50 vs 8':>9}"
    )
    for kind, size, device in cases:
        results = {s: run(kind, size, device, args.repeat, s, args.threads) for s in (8, 50)}
        for steps, r in results.items():
            ratio = r["decode_s"] / results[8]["decode_s"]
            print(
                f"{f'{kind} {size}px {device}':<22}{steps:>6}{r['decode_s']:>10.3f}"
                f"{r['vae_only_s']:>8.3f}{r['peak_rss_mib']:>9.0f}{r['gpu_peak_mib']:>9.0f}"
                f"{r['decode_s'] / r['vae_only_s']:>9.1f}{ratio:>9.2f}"
            )
    for device in ["cpu", *cuda]:
        r = run("train", 128, device, args.repeat, args.train_batch, args.threads)
        print(
            f"\ntraining step (mini, {device}, batch {args.train_batch} x 128px): "
            f"{r['step_s']:.3f} s with composition, {r['codec_step_s']:.3f} s codec only "
            f"(ratio {r['step_s'] / r['codec_step_s']:.2f}), peak RSS "
            f"{r['peak_rss_mib']:.0f} MiB, GPU {r['gpu_peak_mib']:.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
