"""Training of DISCOVER with generative composition (paper §3.4, Eq. 4) and of the mini prior.

* :func:`train_composition` trains one rate point (one λ_R) of the codec together with its
  control module C, the diffusion prior (UNet, VAE, text encoder) frozen:

  - stage I:  L = λ_R (R(ŷ) + R(ẑ)) + λ_diff ‖ε − ε_θ(z_t, t, C(ẑ_c))‖² + ‖z_c − ẑ_c‖²,
    codec and C trained (z_t: z_c = E(x) noised to a uniform random t; λ_diff = 2); the
    diffusion term's target is what the prior's scheduler predicts: ε as in Eq. 4 (SD
    2.1-base), or v for a v-prediction prior (the committed mini prior, our choice);
  - stage II: 0–50 % of ŷ zeroed at random before g_s (the codec's own stage-II masks), the
    encoder, hyperprior and entropy model frozen, g_s, M and C trained; the rate term is R(ỹ),
    the bits of the kept part of ŷ, plus R(ẑ) (constant in stage II: nothing that shapes it
    is trained, it is logged so the loss is Eq. 4's).

  Rates are in bits per pixel, the latent MSE per element, as in
  :func:`discover.training.discover.train_codec`; ẑ's quantiles are fitted by CompressAI's
  auxiliary loss in stage I (its gradient reaches nothing else: ``stop_gradient``).

  Engineering: checkpoints every ``checkpoint_every`` optimizer steps and exact resume (model,
  optimizers, LR schedule, AMP scaler, the torch / CUDA / data / noise RNG states: a resumed
  run ends with bit-identical weights on the same device); gradient accumulation; mixed
  precision on GPUs (the diffusion models under autocast, the codec in float32: its
  likelihoods go down to 1e-9, which bf16 cannot tell apart); several GPUs through
  ``accelerate`` (``accelerate launch``); a CSV loss log.

* :func:`train_prior` trains the tiny UNet of :mod:`discover.composition.prior` as an
  unconditional (empty-prompt) prior on VAE latents of synthetic-scenes crops: ε-prediction
  by default, v-prediction with ``scheduler: {prediction_type: v_prediction}`` (the committed
  ``weights/discover-gen/prior`` and config.yaml; docs/composition.md says why).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from discover.composition.control import CONDITIONING_EMBEDDING_CHANNELS, control_from_unet
from discover.composition.pipeline import Prior, load_prior, prompt_embedding
from discover.composition.prior import build_prior
from discover.discover_codec.masks import random_keep_mask
from discover.discover_codec.model import PRESETS, portable_state
from discover.discover_codec.net import CodecConfig, DiscoverCodecNet
from discover.discover_codec.vae import encode_latent
from discover.errors import CheckpointMismatchError, DiscoverError
from discover.io import atomic_dir, atomic_path, write_text_atomic
from discover.training.common import (
    deterministic_cuda,
    parameter_names,
    save_dtype,
    save_state,
    setup,
    training_data,
    write_losses,
)
from discover.training.data import CropStream, TrainingData
from discover.training.discover import _frozen_in_stage_two
from discover.training.init import initial_codec
from discover.weights import sha256

log = logging.getLogger("discover.training")

#: Defaults of a ``composition_training`` entry (paper values where the paper gives them).
COMPOSITION_DEFAULTS: dict[str, Any] = {
    "lambda_diff": 2.0,
    "lr": 1e-4,
    "control_lr": None,
    "aux_lr": 1e-3,
    "batch_size": 4,
    "grad_accum": 1,
    "crop": 128,
    "max_drop": 0.5,
    "clip_grad_norm": 1.0,
    "mixed_precision": "auto",
    "gradient_checkpointing": False,
    "checkpoint_every": 0,
    "keep_checkpoints": 2,
    "conditioning_embedding_out_channels": list(CONDITIONING_EMBEDDING_CHANNELS),
    "save_dtype": "float32",
}


#: Spec keys that do not change what is computed: a run may resume with other values.
BOOKKEEPING = ("checkpoint_every", "keep_checkpoints", "log_every", "save_dtype")


def resolve_mixed_precision(setting: str, device: torch.device) -> str:
    """``auto`` -> bf16 on a GPU that has it, else fp16 on a GPU, ``no`` on CPU; an explicit
    setting on CPU is refused rather than silently ignored."""
    if setting not in ("auto", "no", "bf16", "fp16"):
        raise DiscoverError(f"mixed_precision: {setting!r} is not one of auto, no, bf16, fp16")
    if device.type != "cuda":
        if setting in ("bf16", "fp16"):
            raise DiscoverError(f"mixed_precision {setting} needs a CUDA device")
        return "no"
    if setting == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return setting


@dataclass
class Batch:
    """One micro-batch: images, stage-II keep mask on ŷ's grid, diffusion noise and steps."""

    x: torch.Tensor
    keep: torch.Tensor | None
    noise: torch.Tensor
    timesteps: torch.Tensor


def diffusion_target(scheduler, z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor):
    """What the UNet predicts under the prior's ``prediction_type``: ε (SD 2.1-base) or the
    velocity v = √ᾱ ε − √(1−ᾱ) z_0 (SD 2.x at 768 px; an option of the mini prior)."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(z0, noise, t)
    raise DiscoverError(f"prior scheduler: prediction_type {kind!r} is not epsilon or v_prediction")


class DiscoverComposition(nn.Module):
    """What Eq. 4 trains: the codec and the control module C. The frozen UNet and noise
    scheduler are passed to ``forward`` so that they are neither wrapped for data parallelism
    nor part of this module's state."""

    def __init__(self, codec: DiscoverCodecNet, control: nn.Module):
        super().__init__()
        self.codec = codec
        self.control = control

    def forward(
        self,
        x: torch.Tensor,
        z_c: torch.Tensor,
        keep: torch.Tensor | None,
        noise: torch.Tensor,
        timesteps: torch.Tensor,
        text: torch.Tensor,
        unet: nn.Module,
        noise_scheduler,
    ) -> dict[str, torch.Tensor]:
        """Eq. 4's terms: ``rate`` (bpp of ŷ, or of its kept part, plus ẑ), ``diffusion``
        (ε-MSE), ``latent_mse`` (‖z_c − ẑ_c‖²) and ``aux`` (ẑ's quantile fit)."""
        pixels = x.shape[0] * x.shape[-2] * x.shape[-1]
        with torch.autocast(x.device.type, enabled=False):
            out = self.codec(x.float(), keep)
            lik = out["likelihoods"]
            bits_y = -torch.log2(lik["y"])
            if keep is not None:
                bits_y = bits_y * keep
            rate = (bits_y.sum() - torch.log2(lik["z"]).sum()) / pixels
            z_c_hat = out["z_c_hat"]
            latent_mse = F.mse_loss(z_c_hat, z_c)
            aux = self.codec.entropy_bottleneck.loss()
        z_t = noise_scheduler.add_noise(z_c, noise, timesteps)
        down, mid = self.control(
            z_t, timesteps, encoder_hidden_states=text, controlnet_cond=z_c_hat, return_dict=False
        )
        pred = unet(
            z_t,
            timesteps,
            encoder_hidden_states=text,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample
        target = diffusion_target(noise_scheduler, z_c, noise, timesteps)
        diffusion = F.mse_loss(pred.float(), target.float())
        return {"rate": rate, "diffusion": diffusion, "latent_mse": latent_mse, "aux": aux}


def trainable(stage: int, name: str) -> bool:
    """Stage I trains codec and C; stage II (paper §3.4) only g_s, M and C."""
    if stage == 1 or name.startswith("control."):
        return True
    return not _frozen_in_stage_two(name.removeprefix("codec."))


class CompositionTrainer:
    """Eq. 4 training of one rate point, one optimizer step at a time (see module doc).

    ``prior`` is an SD-layout directory or a cached Hub id (or its loaded parts, a
    :class:`~discover.composition.pipeline.Prior`: benchmarks on random weights); its VAE must
    be the one the codec targets. ``codec_init`` (a file) starts the codec from the base
    model's trained codec (the mini from its ``w/o composition`` codec); else the spec's
    ``codec_init`` says where it starts (:mod:`discover.training.init`: ``elic``, ``scratch``).
    ``data``: the training images (default: generated scenes). ``batch_size`` is the global
    batch of a micro-batch: with N processes each takes 1/N of it, and every image, crop, mask,
    noise and timestep is a function of (seed, step, micro-batch, slot), so 1 and N processes
    train on the same data.
    """

    def __init__(
        self,
        spec: Mapping[str, Any],
        lambda_r: float,
        *,
        prior: str | Path | Prior,
        cache: str | Path | None = None,
        codec_init: str | Path | None = None,
        seed: int = 0,
        steps: int | None = None,
        stage2_steps: int | None = None,
        data: TrainingData | None = None,
    ):
        from accelerate import Accelerator, DistributedDataParallelKwargs

        self.spec = {**COMPOSITION_DEFAULTS, **spec}
        self.lambda_r = float(lambda_r)
        self.seed = seed
        self.steps = int(steps if steps is not None else self.spec["steps"])
        self.stage2_steps = int(
            stage2_steps if stage2_steps is not None else self.spec.get("stage2_steps", 0)
        )
        cpu = self.spec.get("device", "auto") == "cpu" or not torch.cuda.is_available()
        device = torch.device("cpu" if cpu else "cuda")
        if not cpu:
            deterministic_cuda()  # same seed, same GPU: the same weights
        self.accelerator = Accelerator(
            cpu=cpu,
            mixed_precision=resolve_mixed_precision(self.spec["mixed_precision"], device),
            # Stage II freezes part of the codec; DDP must not wait for gradients there.
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        device = self.accelerator.device
        # What a checkpoint must agree on to be resumed (bookkeeping keys may change).
        same_run = {k: v for k, v in self.spec.items() if k not in BOOKKEEPING}
        self.fingerprint = {
            "spec": json.loads(json.dumps(same_run, default=str)),
            "lambda_r": self.lambda_r,
            "seed": seed,
            "steps": self.steps,
            "stage2_steps": self.stage2_steps,
            "prior": "in memory" if isinstance(prior, Prior) else str(prior),
            "codec_init": str(codec_init) if codec_init else None,
            "processes": self.accelerator.num_processes,
        }

        torch.manual_seed(seed)
        weight_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(
            self.accelerator.mixed_precision, torch.float32
        )
        parts = prior if isinstance(prior, Prior) else load_prior(prior, cache=cache)
        codec_spec = self.spec.get("codec", "mini")
        cfg = (
            PRESETS[codec_spec]
            if isinstance(codec_spec, str)
            else CodecConfig.from_dict(codec_spec)
        )
        codec, self.init = initial_codec(cfg, self.spec, self.lambda_r, codec_init)
        # C starts as a copy of the UNet's encoder, taken before the UNet is cast below.
        control = control_from_unet(parts.unet, self.spec["conditioning_embedding_out_channels"])
        if self.spec["gradient_checkpointing"]:
            control.enable_gradient_checkpointing()
        self.model = DiscoverComposition(codec.train(), control.float().train()).to(device)
        # The frozen UNet may hold half-precision weights (it only runs under autocast); the
        # VAE encodes the targets z_c and stays in float32.
        self.unet = parts.unet.to(device)
        if weight_dtype != torch.float32:
            self.unet = self.unet.to(weight_dtype)
        self.vae = parts.vae.to(device)
        self.noise_scheduler = parts.scheduler
        # The prompt is always empty: embed it once, then the text encoder is not needed.
        self.text = prompt_embedding(parts.tokenizer, parts.text_encoder, "").to(device)
        if self.spec["gradient_checkpointing"]:
            self.unet.enable_gradient_checkpointing()

        crop = int(self.spec["crop"])
        if crop % 64:
            raise DiscoverError(f"crop {crop} is not a multiple of 64 (ẑ lives at 1/64)")
        self.data = training_data(self.spec, data, seed, crop)
        self.crops: CropStream | None = None  # opened at the first batch, from self.step
        self.step = 0
        self.stage = 0
        self.rows: list[dict] = []
        self._t0 = time.perf_counter()
        self.begin_stage(1)

    # -- stages -------------------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        return self.steps + self.stage2_steps

    def stage_at(self, step: int) -> int:
        """The stage optimizer step ``step`` (1-based) belongs to."""
        return 1 if step <= self.steps else 2

    def begin_stage(self, stage: int) -> None:
        """Freeze what the stage freezes and start its optimizer and LR schedule (×0.1 after
        80 % of the stage, as :func:`~discover.training.discover.train_codec`)."""
        self.stage = stage
        for name, p in self.model.named_parameters():
            p.requires_grad_(trainable(stage, name))
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        rest = [(n, p) for n, p in named if not n.endswith(".quantiles")]
        self.params = [p for _, p in rest]
        lr = float(self.spec["lr"])
        control_lr = float(self.spec["control_lr"] or lr)
        groups = [
            {"params": [p for n, p in rest if n.startswith("codec.")], "lr": lr},
            {"params": [p for n, p in rest if n.startswith("control.")], "lr": control_lr},
        ]
        quantiles = [p for n, p in named if n.endswith(".quantiles")]
        if quantiles:
            groups.append({"params": quantiles, "lr": float(self.spec["aux_lr"])})
        opt = torch.optim.Adam(groups)
        milestone = int((self.steps if stage == 1 else self.stage2_steps) * 0.8)
        decay = lambda i: 1.0 if i < milestone else 0.1  # noqa: E731
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            opt, [decay, decay, lambda i: 1.0][: len(groups)]
        )
        # (Re-)wrapped per stage: DDP fixes the set of parameters it reduces when it wraps.
        self.wrapped = self.accelerator.prepare_model(self.model)
        self.optimizer = self.accelerator.prepare_optimizer(opt)

    # -- data ---------------------------------------------------------------------------------
    def crop_stream(self) -> CropStream:
        """This process's crops from the current step on (reopened after a resume)."""
        acc = self.accelerator
        if self.crops is None or self.crops.start > self.step:
            self.crops = self.data.stream(
                int(self.spec["crop"]),
                int(self.spec["batch_size"]),
                seed=self.seed,
                start=self.step,
                stop=self.total_steps,
                accum=int(self.spec["grad_accum"]),
                rank=acc.process_index,
                world=acc.num_processes,
            )
        return self.crops

    def sample_batch(self) -> Batch:
        """The next micro-batch of the data stream: crops, flips, stage-II masks, noise and
        steps, each drawn from (seed, step, micro-batch, global slot)."""
        crops = self.crop_stream()
        x = next(crops)
        step, micro = crops.position
        crop = int(self.spec["crop"])
        channels = self.unet.config.in_channels
        masks, noise, timesteps = [], [], []
        for slot in crops.slots:
            key = [self.seed, step, micro, slot]
            if self.stage == 2:
                rng = np.random.default_rng([*key, 1])
                masks.append(random_keep_mask(rng, (crop // 16, crop // 16), self.spec["max_drop"]))
            gen = torch.Generator().manual_seed(
                int(np.random.SeedSequence([*key, 2]).generate_state(1)[0])
            )
            noise.append(torch.randn((channels, crop // 8, crop // 8), generator=gen))
            timesteps.append(
                torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (), generator=gen)
            )
        keep = torch.from_numpy(np.stack(masks))[:, None].float() if masks else None
        return Batch(x, keep, torch.stack(noise), torch.stack(timesteps))

    # -- one optimizer step -------------------------------------------------------------------
    def losses(self, b: Batch) -> dict[str, torch.Tensor]:
        """Eq. 4's terms on a micro-batch, and their weighted sum ``loss``."""
        device = self.accelerator.device
        x = b.x.to(device)
        z_c = encode_latent(self.vae, x)
        text = self.text.expand(x.shape[0], -1, -1)
        keep = None if b.keep is None else b.keep.to(device)
        terms = self.wrapped(
            x,
            z_c,
            keep,
            b.noise.to(device),
            b.timesteps.to(device),
            text,
            self.unet,
            self.noise_scheduler,
        )
        terms["loss"] = (
            self.lambda_r * terms["rate"]
            + float(self.spec["lambda_diff"]) * terms["diffusion"]
            + terms["latent_mse"]
        )
        return terms

    def train_step(self, fixed: Batch | None = None) -> dict[str, float]:
        """One optimizer step over ``grad_accum`` micro-batches (``fixed``: the same batch
        each time, for tests); returns the step's mean loss terms."""
        acc = self.accelerator
        accum = int(self.spec["grad_accum"])
        sums: dict[str, torch.Tensor] = {}
        for micro in range(accum):
            b = fixed if fixed is not None else self.sample_batch()
            # Gradients are reduced across processes once per step, on the last micro-batch.
            sync = micro == accum - 1
            with contextlib.nullcontext() if sync else acc.no_sync(self.wrapped):
                terms = self.losses(b)
                if not all(torch.isfinite(v).all() for v in terms.values()):
                    values = {k: float(v.detach()) for k, v in terms.items()}
                    raise DiscoverError(
                        f"λ_R={self.lambda_r:g} stage {self.stage} step {self.step + 1}: "
                        f"non-finite loss terms {values}; nothing was written"
                    )
                objective = terms["loss"] + (terms["aux"] if self.stage == 1 else 0.0)
                acc.backward(objective / accum)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.detach().float() / accum
        acc.clip_grad_norm_(self.params, float(self.spec["clip_grad_norm"]))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        keys = sorted(sums)
        means = acc.reduce(torch.stack([sums[k] for k in keys]), reduction="mean")
        return dict(zip(keys, means.tolist(), strict=True))

    def train(
        self,
        *,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
        stop_after: int | None = None,
        log_csv: str | Path | None = None,
    ) -> bool:
        """Run to the last step, checkpointing on the way. ``stop_after``: return after that
        step (and its checkpoint) as if the job were killed there. True when finished."""
        every = int(
            checkpoint_every if checkpoint_every is not None else self.spec["checkpoint_every"]
        )
        log_every = int(self.spec.get("log_every") or max(1, self.total_steps // 50))
        while self.step < self.total_steps:
            if stop_after is not None and self.step >= stop_after:
                return False
            if self.stage_at(self.step + 1) != self.stage:
                self.begin_stage(self.stage_at(self.step + 1))
            values = self.train_step()
            if self.step % log_every == 0 or self.step in (self.steps, self.total_steps):
                row = {"step": self.step, "stage": self.stage, **values}
                row["seconds"] = round(time.perf_counter() - self._t0, 2)
                self.rows.append(row)
                log.info(
                    "λ_R=%g stage %d step %d loss %.4f bpp %.4f diffusion %.4f latent mse %.4f",
                    self.lambda_r,
                    self.stage,
                    self.step,
                    values["loss"],
                    values["rate"],
                    values["diffusion"],
                    values["latent_mse"],
                )
            if checkpoint_dir and every and self.step % every == 0 and self.step < self.total_steps:
                self.save_checkpoint(checkpoint_dir)
                if self.accelerator.is_main_process:
                    write_losses(log_csv, self.rows)
        return True

    # -- checkpoints --------------------------------------------------------------------------
    def rng_state(self) -> dict[str, Any]:
        """The global RNG states (data, masks and noise are functions of the step: no state)."""
        cuda = self.accelerator.device.type == "cuda"
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(self.accelerator.device) if cuda else None,
        }

    def set_rng_state(self, state: Mapping[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        if state["cuda"] is not None:
            torch.cuda.set_rng_state(state["cuda"], self.accelerator.device)

    def save_checkpoint(self, directory: str | Path) -> Path:
        """``directory/step-<step>.pt`` (atomically), keeping the newest ``keep_checkpoints``."""
        from accelerate.utils import gather_object

        acc = self.accelerator
        rng = gather_object([self.rng_state()])  # one per process, in rank order
        path = Path(directory) / f"step-{self.step:08d}.pt"
        if acc.is_main_process:
            scaler = getattr(acc, "scaler", None)
            payload = {
                "fingerprint": self.fingerprint,
                "step": self.step,
                "stage": self.stage,
                "model": portable_state(acc.unwrap_model(self.wrapped)),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "rng": rng,
                "rows": self.rows,
            }
            with atomic_path(path) as tmp:
                torch.save(payload, tmp)
            for old in checkpoints(directory)[: -int(self.spec["keep_checkpoints"])]:
                old.unlink()
        acc.wait_for_everyone()
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Continue exactly where the run that wrote ``path`` was."""
        payload = torch.load(path, map_location="cpu", weights_only=False)
        theirs, ours = payload["fingerprint"], self.fingerprint
        if theirs != ours:
            differ = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
            raise CheckpointMismatchError(
                f"checkpoint {path} was written by a run with other settings ({differ}); "
                "remove the checkpoint directory to start over"
            )
        self.begin_stage(payload["stage"])
        model = self.accelerator.unwrap_model(self.wrapped)
        # CompressAI's CDF tables are rebuilt by update(), never checkpointed.
        expected, saved = set(portable_state(model)), set(payload["model"])
        if expected != saved:
            raise CheckpointMismatchError(
                f"checkpoint {path} does not fit the model (missing "
                f"{sorted(expected - saved)[:3]}, unexpected {sorted(saved - expected)[:3]})"
            )
        model.load_state_dict(payload["model"], strict=False)
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None and payload["scaler"] is not None:
            scaler.load_state_dict(payload["scaler"])
        self.set_rng_state(payload["rng"][self.accelerator.process_index])
        self.step = int(payload["step"])
        self.crops = None  # reopened at the resumed step
        self.rows = list(payload["rows"])


def replica_checksums(trainer: CompositionTrainer) -> list[float]:
    """The sum of every trained weight on each process, in rank order: data parallelism keeps
    the replicas identical (gradients are averaged before each step), so the sums must agree;
    a difference stops the job before anything is written."""
    from accelerate.utils import gather_object

    model = trainer.accelerator.unwrap_model(trainer.wrapped)
    with torch.no_grad():
        total = float(sum(p.detach().double().sum() for p in model.parameters()))
    sums = gather_object([total])
    if len(set(sums)) > 1:
        raise DiscoverError(
            f"λ_R={trainer.lambda_r:g}: the {len(sums)} training processes ended with different "
            f"weights (checksums {sums}); nothing was written"
        )
    return sums


def checkpoints(directory: str | Path) -> list[Path]:
    """The checkpoints in ``directory``, oldest first."""
    return sorted(Path(directory).glob("step-*.pt"))


def train_composition(
    codec_path: str | Path,
    control_dir: str | Path,
    meta_path: str | Path,
    spec: Mapping[str, Any],
    lambda_r: float,
    *,
    prior: str | Path,
    model_id: str,
    cache: str | Path | None = None,
    codec_init: str | Path | None = None,
    seed: int = 0,
    steps: int | None = None,
    stage2_steps: int | None = None,
    checkpoint_dir: str | Path | None = None,
    log_csv: str | Path | None = None,
    command: str = "",
    stop_after: int | None = None,
    data: TrainingData | None = None,
) -> dict:
    """Train one rate point: ``codec_path`` (``r<rate>.pth.tar``; ``meta_path`` is its JSON
    sidecar naming the codec config) and ``control_dir`` (C, ``save_pretrained``).

    Resumes from the newest checkpoint in ``checkpoint_dir`` (default: next to
    ``control_dir``) when one exists; removes the checkpoints once the outputs are written.
    Returns the sidecar's content, or ``{"finished": False, "step": k}`` after ``stop_after``.
    """
    trainer = CompositionTrainer(
        spec,
        lambda_r,
        prior=prior,
        cache=cache,
        codec_init=codec_init,
        seed=seed,
        steps=steps,
        stage2_steps=stage2_steps,
        data=data,
    )
    control_dir = Path(control_dir)
    checkpoint_dir = Path(
        checkpoint_dir or control_dir.with_name(f".{control_dir.name}.checkpoints")
    )
    existing = checkpoints(checkpoint_dir)
    if existing:
        log.info("resuming from %s", existing[-1])
        trainer.load_checkpoint(existing[-1])
    if not trainer.train(checkpoint_dir=checkpoint_dir, stop_after=stop_after, log_csv=log_csv):
        return {"finished": False, "step": trainer.step}

    acc = trainer.accelerator
    replicas = replica_checksums(trainer)
    meta: dict = {}
    if acc.is_main_process:
        model = acc.unwrap_model(trainer.wrapped)
        codec = model.codec.eval()
        codec.update(force=True)
        dtype = save_dtype(trainer.spec)
        save_state(portable_state(codec), codec_path, dtype, parameter_names(codec))
        with atomic_dir(control_dir) as tmp:
            model.control.to(dtype).save_pretrained(tmp)
        meta = {
            "model_id": model_id,
            "codec": codec.cfg.to_dict(),
            "lambda_R": float(lambda_r),
            "prior": str(prior),
            "codec_init": str(codec_init) if codec_init else None,
            "init": trainer.init,
            "data": trainer.crop_stream().report(),
            "spec": {k: v for k, v in trainer.spec.items() if k != "codec"},
            "seed": seed,
            "steps": trainer.steps,
            "stage2_steps": trainer.stage2_steps,
            "processes": acc.num_processes,
            "replica_checksums": replicas,
            "mixed_precision": acc.mixed_precision,
            "final": trainer.rows[-1] if trainer.rows else {},
            "command": command,
            "sha256": sha256(codec_path),
            "control_sha256": {
                p.name: sha256(p) for p in sorted(control_dir.iterdir()) if p.is_file()
            },
        }
        write_text_atomic(meta_path, json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
        write_losses(log_csv, trainer.rows)
        for ckpt in checkpoints(checkpoint_dir):
            ckpt.unlink()
        with contextlib.suppress(OSError):
            checkpoint_dir.rmdir()
    acc.wait_for_everyone()
    return meta


def train_prior(
    out_dir: str | Path,
    spec: Mapping[str, Any],
    *,
    vae_dir: str | Path,
    seed: int = 0,
    steps: int | None = None,
    meta_path: str | Path | None = None,
    log_csv: str | Path | None = None,
    command: str = "",
    data: TrainingData | None = None,
) -> dict:
    """Train the mini diffusion prior: ``out_dir`` becomes an SD-layout directory (see
    :mod:`discover.composition.prior`) whose UNet predicts ε (default) or v (the scheduler's
    ``prediction_type``) on latents of the VAE in ``vae_dir`` with the empty prompt. Spec
    keys: ``steps``, ``batch_size``, ``crop`` (a multiple of 32), ``lr``, ``num_images``,
    ``unet`` / ``text_encoder`` / ``scheduler`` (config overrides, e.g. ``scheduler:
    {prediction_type: v_prediction}``), ``save_dtype``."""
    _, steps, crop, batch_size = setup(spec, seed, steps)
    crops = training_data(spec, data, seed, crop).stream(crop, batch_size, seed=seed, stop=steps)
    rows, t0 = [], time.perf_counter()
    with atomic_dir(out_dir) as tmp:
        build_prior(
            tmp,
            vae_dir,
            seed=seed,
            unet_config=spec.get("unet"),
            text_config=spec.get("text_encoder"),
            scheduler_config=spec.get("scheduler"),
        )
        parts = load_prior(tmp)
        unet, vae, scheduler = parts.unet.train().requires_grad_(True), parts.vae, parts.scheduler
        text = prompt_embedding(parts.tokenizer, parts.text_encoder, "")
        opt = torch.optim.AdamW(unet.parameters(), lr=float(spec.get("lr", 1e-3)))
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[int(steps * 0.8)], gamma=0.1)
        gen = torch.Generator().manual_seed(seed)
        for step in range(1, steps + 1):
            z0 = encode_latent(vae, next(crops))
            noise = torch.randn(z0.shape, generator=gen)
            t = torch.randint(0, scheduler.config.num_train_timesteps, (batch_size,), generator=gen)
            pred = unet(
                scheduler.add_noise(z0, noise, t), t, text.expand(batch_size, -1, -1)
            ).sample
            loss = F.mse_loss(pred, diffusion_target(scheduler, z0, noise, t))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
            opt.step()
            sched.step()
            if step % max(1, steps // 50) == 0 or step == steps:
                rows.append(
                    {
                        "step": step,
                        "loss": loss.item(),
                        "seconds": round(time.perf_counter() - t0, 2),
                    }
                )
                log.info("prior step %d/%d loss %.4f", step, steps, loss.item())
        unet.eval().to(save_dtype(spec)).save_pretrained(Path(tmp) / "unet")
    files = sorted(p for p in Path(out_dir).rglob("*") if p.is_file())
    meta = {
        "spec": dict(spec),
        "seed": seed,
        "steps": steps,
        "vae": str(vae_dir),
        "data": crops.report(),
        "final": rows[-1] if rows else {},
        "command": command,
        "sha256": {str(p.relative_to(out_dir)): sha256(p) for p in files},
    }
    if meta_path:
        write_text_atomic(meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    write_losses(log_csv, rows)
    return meta
