"""Training DISCOVER with generative composition at the paper's size: step time, memory, GPU-hours.

What is measured: one optimizer step of Eq. 4 (rate + λ_diff ε-MSE through the frozen prior and
the control module C + latent MSE; Adam, gradient clipping) through the project's own trainer,
:class:`discover.training.composition.CompositionTrainer`, on one fixed batch drawn with
``trainer.sample_batch()``: the median of ``--repeat`` calls of ``trainer.train_step(fixed=batch)``
after one warm-up step, and the peak memory over those steps
(``torch.cuda.max_memory_allocated``, reset once the trainer is built; on CPU the process's peak
RSS, ``ru_maxrss``, construction included). Stage II is measured after
``trainer.begin_stage(2)``: ŷ's 0-50 % drop masks, encoder, hyperprior and entropy model frozen.
Each case runs in a fresh process, so a peak belongs to its case.

* GPU (the default when CUDA is present): the paper's sizes (§4.1.1: "we employ Stable Diffusion
  2.1-base", "ELIC serves as our base codec", "randomly cropped to a size of 512x512"): the
  ``full`` codec preset, SD 2.1-base's UNet, VAE and text encoder (the published configs in
  :mod:`discover.composition.prior`) and a ControlNet-sized C copied from the UNet, 512x512
  crops, bf16 autocast (the trainer keeps the codec in float32), with and without gradient
  checkpointing, batch 1, 2, 4, 8 (``--batches``). A case that runs out of GPU memory is
  reported as such, and the larger batches of the same stage and checkpointing setting are
  skipped.
* CPU (``--tiny``, the default without CUDA): the same code on the mini sizes (``mini`` codec,
  ``TINY_UNET_CONFIG``, the tiny text encoder, the committed VAE of weights/discover-mini),
  128x128 crops, float32, batch 1 and 2: a check that the benchmark runs, not the paper's cost.
  On CPU cores other jobs share, ``--threads 1`` keeps torch's threads from oversubscribing
  them (measured on 2 loaded cores: 16 s per stage-I step with the default threads, 0.19 s
  with one).

Weights: random (the codec with ``codec_init: scratch``; UNet, text encoder and, at full size,
VAE built on the meta device and materialised on the measuring device with PyTorch's default
initialisation, no multi-GB files on disk), SD 2.1-base shaped: the work per step is the same as
with trained weights; λ_R (1 here) only weighs the rate term. The step times include the
deterministic kernels the trainer selects on CUDA (``deterministic_cuda``) and the host-to-device
copy of the batch, but not the drawing of a batch (real data loading is assumed to overlap the
step).

Projection: the paper trains "for 300,000 iterations, followed by an additional 50,000
iterations in the Stage II", one model per λ_R ∈ {1, 2, 4, 8}, so

    GPU-hours = (300,000 x t_I + 50,000 x t_II) x 4 / 3600 x N

with t_I, t_II the step times at the per-GPU batch and N the number of GPUs. The paper states
neither its batch size nor its GPUs; our choice: each measured batch B is taken as the global
batch of one step, and on N ∈ {1, 4, 8} GPUs the per-GPU batch is B / N (rows where B / N is
not a measured batch are left out). Assumptions: one iteration = one optimizer step without
gradient accumulation; ideal data-parallel scaling (no communication or input-pipeline cost);
the four rate points are trained one after another (wall-clock = GPU-hours / N).

    python benchmarks/training_scale.py              # on a GPU: the paper's sizes
    python benchmarks/training_scale.py --tiny       # on CPU: the mini sizes
        [--repeat 3] [--batches 1 2 4 8] [--stages 1 2] [--checkpointing off on]
        [--threads 0] [--out results.json]

Prints a markdown table of the cases, the projection, and one JSON line with every measurement.
Each case builds its models afresh in its own process; ``--stages`` and
``--checkpointing`` split the 16 GPU cases over several shorter runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MINI_VAE = ROOT / "weights" / "discover-mini" / "vae"

#: Paper §4.1.1: iterations of stage I and stage II, and the λ_R of its rate points.
STAGE_ITERATIONS = {1: 300_000, 2: 50_000}
RATE_POINTS = (1, 2, 4, 8)
GPU_COUNTS = (1, 4, 8)
#: The mini composition's C (config.yaml, composition_training.discover-gen).
MINI_CONDITIONING_CHANNELS = [16, 32]


# -- one case, in its own process ---------------------------------------------------------------
def materialise(model, device):
    """A model built on the meta device, given storage on ``device`` and PyTorch's default
    initialisation there (random weights: the work per step is that of trained ones)."""
    import torch

    model = model.to_empty(device=device)
    covered: set[int] = set()
    with torch.no_grad():
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
                covered.update(id(p) for p in module.parameters(recurse=False))
        for p in model.parameters():
            if id(p) not in covered:
                p.normal_(0, 0.02)
        for name, buffer in model.named_buffers():
            if name.endswith("position_ids"):  # CLIP's non-persistent buffer
                buffer.copy_(torch.arange(buffer.shape[-1], device=device).expand_as(buffer))
            else:
                raise RuntimeError(f"{type(model).__name__}: buffer {name} has no known value")
    return model


def random_prior(tiny: bool, device):
    """SD 2.1-base's UNet, VAE and text encoder (``tiny``: the mini sizes and the committed mini
    VAE), random weights on ``device``, frozen as ``load_prior`` freezes them; the tokenizer only
    has to give the empty prompt's token ids; the scheduler is SD 2.1-base's DDIM schedule."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from discover.composition import prior as sd
    from discover.composition.pipeline import Prior

    with torch.device("meta"):  # no host memory, no initialisation on the CPU
        if tiny:
            unet = UNet2DConditionModel(**sd.TINY_UNET_CONFIG)
            text_encoder = sd.tiny_text_encoder()
        else:
            unet = UNet2DConditionModel(**sd.SD21_BASE_UNET_CONFIG)
            text_encoder = CLIPTextModel(CLIPTextConfig(**sd.SD21_BASE_TEXT_CONFIG))
            vae = AutoencoderKL(**sd.SD21_BASE_VAE_CONFIG)
    torch.manual_seed(0)
    unet = materialise(unet, device)
    text_encoder = materialise(text_encoder, device)
    if tiny:
        vae = AutoencoderKL.from_pretrained(MINI_VAE)
    else:
        vae = materialise(vae, device)
    for model in (unet, vae, text_encoder):
        model.requires_grad_(False).eval()
    tokenizer = sd.tiny_tokenizer(text_encoder.config.max_position_embeddings)
    return Prior(unet, vae.to(device), text_encoder, tokenizer, DDIMScheduler(**sd.SD_SCHEDULE))


def measure(case: dict[str, Any]) -> dict[str, Any]:
    """Build the trainer for ``case`` and time its optimizer steps (see module doc)."""
    import gc
    import resource

    import torch

    from discover.training.composition import CompositionTrainer

    if case["threads"]:
        torch.set_num_threads(case["threads"])
    tiny, b = case["tiny"], case["batch"]
    device = torch.device("cpu" if tiny else "cuda")
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    spec: dict[str, Any] = {
        "codec": "mini" if tiny else "full",
        "codec_init": "scratch",  # random weights, as the prior's
        "crop": case["crop"],
        "batch_size": b,
        "num_images": 4,  # the pool the crops come from; the work per step does not depend on it
        "mixed_precision": "no" if tiny else "bf16",
        "gradient_checkpointing": case["checkpointing"],
        "device": "cpu" if tiny else "auto",
        "steps": 10,
        "stage2_steps": 10,
    }
    if tiny:
        spec["conditioning_embedding_out_channels"] = MINI_CONDITIONING_CHANNELS
    result: dict[str, Any] = {**case, "device_name": "cpu"}
    if cuda:
        result["device_name"] = torch.cuda.get_device_name(device)
        result["gpu_total_mib"] = torch.cuda.get_device_properties(device).total_memory / 2**20
    try:
        t0 = time.perf_counter()
        # λ_R only weighs the rate term: the work per step is the same at every rate point.
        trainer = CompositionTrainer(
            spec, 1.0, prior=random_prior(tiny, device), steps=10, stage2_steps=10
        )
        if case["stage"] == 2:
            trainer.begin_stage(2)
        batch = trainer.sample_batch()
        gc.collect()  # the text encoder is only needed for the prompt embedding
        if cuda:
            torch.cuda.empty_cache()
            result["gpu_resident_mib"] = torch.cuda.memory_allocated(device) / 2**20
            torch.cuda.reset_peak_memory_stats(device)
        result["setup_s"] = time.perf_counter() - t0
        result["trainable_parameters"] = sum(p.numel() for p in trainer.params)
        times = []
        for i in range(case["repeat"] + 1):
            sync()
            start = time.perf_counter()
            terms = trainer.train_step(fixed=batch)
            sync()
            if i:  # the first step is the warm-up (allocations, Adam's state, kernel choice)
                times.append(time.perf_counter() - start)
    except torch.cuda.OutOfMemoryError as exc:
        return {**result, "oom": True, "error": str(exc).splitlines()[0]}
    result.update(
        oom=False,
        step_s=statistics.median(times),
        step_s_all=times,
        images_per_s=b / statistics.median(times),
        loss=terms["loss"],
        gpu_peak_mib=torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    return result


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """``measure(case)`` in a fresh process; its last stdout line is the result."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--case", json.dumps(case)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if proc.returncode == 0:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    if "out of memory" in proc.stderr.lower():  # ran out outside the guarded part
        return {**case, "oom": True, "error": proc.stderr.strip().splitlines()[-1]}
    raise SystemExit(f"case {json.dumps(case)} failed:\n{proc.stderr[-4000:]}")


# -- the report ---------------------------------------------------------------------------------
def projection(results: list[dict[str, Any]], batches: list[int]) -> list[dict[str, Any]]:
    """GPU-hours of the paper's schedule per global batch, GPU count and checkpointing setting,
    from the measured per-GPU step times (assumptions in the module doc)."""
    step = {
        (r["stage"], r["batch"], r["checkpointing"]): r["step_s"]
        for r in results
        if not r.get("oom") and not r.get("skipped")
    }
    rows = []
    for global_batch in batches:
        for n in GPU_COUNTS:
            if global_batch % n:
                continue
            per_gpu = global_batch // n
            for ckpt in (False, True):
                t1, t2 = step.get((1, per_gpu, ckpt)), step.get((2, per_gpu, ckpt))
                if t1 is None or t2 is None:
                    continue
                per_rate_h = (STAGE_ITERATIONS[1] * t1 + STAGE_ITERATIONS[2] * t2) / 3600
                gpu_hours = per_rate_h * len(RATE_POINTS) * n
                rows.append(
                    {
                        "global_batch": global_batch,
                        "gpus": n,
                        "per_gpu_batch": per_gpu,
                        "checkpointing": ckpt,
                        "stage1_step_s": t1,
                        "stage2_step_s": t2,
                        "gpu_hours": gpu_hours,
                        "wall_hours": gpu_hours / n,
                    }
                )
    return rows


def print_report(results: list[dict[str, Any]], rows: list[dict[str, Any]], tiny: bool) -> None:
    unit = "process" if tiny else "GPU"  # tiny: N CPU processes stand in for the N GPUs
    mem = "peak RSS MiB" if tiny else "peak GPU MiB"
    print(
        f"| stage | batch | grad. ckpt | s/step | images/s | {mem} | trainable M | setup s | loss |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        head = f"| {r['stage']} | {r['batch']} | {'on' if r['checkpointing'] else 'off'} |"
        if r.get("skipped"):
            print(f"{head} skipped: {r['skipped']} | | | | | |")
        elif r.get("oom"):
            print(f"{head} out of memory | | | | | |")
        else:
            peak = r["peak_rss_mib"] if tiny else r["gpu_peak_mib"]
            print(
                f"{head} {r['step_s']:.3f} | {r['images_per_s']:.2f} | {peak:.0f} | "
                f"{r['trainable_parameters'] / 1e6:.1f} | {r['setup_s']:.1f} | {r['loss']:.3f} |"
            )
    iterations = " + ".join(f"{n:,} (stage {s})" for s, n in STAGE_ITERATIONS.items())
    print(
        f"\nProjection: {iterations} iterations x {len(RATE_POINTS)} rate points, the batch as "
        f"the global batch, ideal data-parallel scaling (module doc)"
        + (" -- tiny sizes on CPU: a check of the arithmetic, not the paper's cost" if tiny else "")
    )
    units = f"{unit}es" if tiny else f"{unit}s"
    print(
        f"\n| global batch | {units} | per-{unit} batch | grad. ckpt | s/step I | s/step II | "
        f"{unit}-hours | wall-clock days |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for p in rows:
        print(
            f"| {p['global_batch']} | {p['gpus']} | {p['per_gpu_batch']} | "
            f"{'on' if p['checkpointing'] else 'off'} | {p['stage1_step_s']:.3f} | "
            f"{p['stage2_step_s']:.3f} | {p['gpu_hours']:,.0f} | {p['wall_hours'] / 24:.1f} |"
        )
    if not rows:
        print("| (no batch measured in both stages) | | | | | | | |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="timed steps after one warm-up")
    ap.add_argument("--tiny", action="store_true", help="mini sizes on CPU (default without CUDA)")
    ap.add_argument("--batches", type=int, nargs="+", help="default 1 2 4 8 (GPU), 1 2 (tiny)")
    ap.add_argument("--stages", type=int, nargs="+", choices=(1, 2), default=[1, 2])
    ap.add_argument(
        "--checkpointing",
        nargs="+",
        choices=("off", "on"),
        default=["off", "on"],
        help="gradient checkpointing settings to measure",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", type=Path, help="also write the JSON to this file")
    ap.add_argument("--case", help=argparse.SUPPRESS)  # internal: one case, in a child process
    args = ap.parse_args(argv)
    if args.case:
        print(json.dumps(measure(json.loads(args.case))))
        return 0
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")

    import torch

    tiny = args.tiny or not torch.cuda.is_available()
    batches = sorted(set(args.batches or ([1, 2] if tiny else [1, 2, 4, 8])))
    if batches[0] < 1:
        ap.error("--batches must be positive")
    crop = 128 if tiny else 512
    results = []
    t0 = time.perf_counter()
    for stage in args.stages:
        for ckpt in (c == "on" for c in args.checkpointing):
            ran_out = None
            for b in batches:
                case = {
                    "tiny": tiny,
                    "crop": crop,
                    "stage": stage,
                    "batch": b,
                    "checkpointing": ckpt,
                    "repeat": args.repeat,
                    "threads": args.threads,
                }
                if ran_out is not None:
                    results.append({**case, "skipped": f"batch {ran_out} ran out of memory"})
                    continue
                result = run_case(case)
                results.append(result)
                if result.get("oom"):
                    ran_out = b
                print(f"measured: stage {stage} batch {b} ckpt {ckpt}", file=sys.stderr)
    rows = projection(results, batches)
    print_report(results, rows, tiny)
    import accelerate
    import diffusers

    report = {
        "benchmark": "training_scale",
        "tiny": tiny,
        "crop": crop,
        "device": next((r["device_name"] for r in results if "device_name" in r), None),
        "versions": {
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "accelerate": accelerate.__version__,
        },
        "assumptions": {
            "stage_iterations": STAGE_ITERATIONS,
            "rate_points": list(RATE_POINTS),
            "batch": "each measured batch taken as the global batch (the paper states none)",
            "scaling": "ideal data parallel, per-GPU batch = global / N",
        },
        "wall_s": time.perf_counter() - t0,
        "cases": results,
        "projection": rows,
    }
    if args.out:
        from discover.io import write_text_atomic

        write_text_atomic(args.out, json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
