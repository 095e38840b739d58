"""Generative composition: the latent-resolution control module, the SD-layout pipeline and
the two-stage training of Eq. 4 (tiny models built in temporary directories)."""

from __future__ import annotations

import csv
import json
import re
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from discover.composition.control import (
    LatentControlNetModel,
    control_from_unet,
    load_control,
    parameter_count,
)
from discover.composition.pipeline import (
    CompositionPipeline,
    CompositionSettings,
    decode_composed,
    load_prior,
)
from discover.composition.prior import (
    SD21_BASE_TEXT_CONFIG,
    SD21_BASE_UNET_CONFIG,
    SD21_BASE_VAE_CONFIG,
)
from discover.errors import CheckpointMismatchError, DiscoverError
from discover.images import tensor_to_image
from discover.training.common import cast_state
from discover.training.composition import (
    CompositionTrainer,
    checkpoints,
    diffusion_target,
    resolve_mixed_precision,
    train_composition,
    train_prior,
)
from discover.weights import HubSpec, sha256

from .conftest import MINI_VAE as VAE
from .conftest import TEST_TEXT, TEST_UNET

SPEC = {
    "codec": "mini",
    "batch_size": 1,
    "crop": 64,
    "num_images": 2,
    "lr": 1e-3,
    "conditioning_embedding_out_channels": [8, 16],
}


@pytest.fixture(scope="module")
def pipe(prior_dir, control_dir):
    return CompositionPipeline.from_pretrained(prior_dir, control_dir)


def state(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- the control module -----------------------------------------------------------------------
def test_latent_conditioning_keeps_resolution_and_round_trips(prior_dir, tmp_path):
    unet = load_prior(prior_dir).unet
    control = control_from_unet(unet, (8, 16))
    z = torch.randn(2, 4, 8, 12)
    text = torch.randn(2, 8, 16)
    assert control.controlnet_cond_embedding(z).shape == (2, 16, 8, 12)  # C0 x h x w
    # Zero convolutions: a fresh C leaves the prior's prediction exactly as it was.
    down, mid = control(z, 10, text, z, return_dict=False)
    assert all(not r.any() for r in down) and not mid.any()

    with torch.no_grad():
        for p in control.parameters():
            p.normal_()
    control.save_pretrained(tmp_path / "c")
    assert json.loads((tmp_path / "c" / "config.json").read_text())["_class_name"] == (
        "LatentControlNetModel"
    )
    loaded = load_control(tmp_path / "c")
    assert type(loaded) is LatentControlNetModel
    assert same(state(control), state(loaded))
    assert all(conv.stride == (1, 1) for conv in loaded.controlnet_cond_embedding.blocks)
    out_a = control(z, 10, text, z, return_dict=False)
    out_b = loaded(z, 10, text, z, return_dict=False)
    assert all(torch.equal(a, b) for a, b in zip(out_a[0], out_b[0], strict=True))
    assert torch.equal(out_a[1], out_b[1])


def test_sd21_base_unet_and_control_module_on_meta_device():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):  # shapes only: no memory, no initialisation
        vae = AutoencoderKL(**SD21_BASE_VAE_CONFIG)
        text_encoder = CLIPTextModel(CLIPTextConfig(**SD21_BASE_TEXT_CONFIG))
        unet = UNet2DConditionModel(**SD21_BASE_UNET_CONFIG)
        control = control_from_unet(unet)
        z = torch.empty(1, 4, 64, 64)  # ẑ_c of a 512x512 image
        text = torch.empty(1, 77, 1024)
        embedded = control.controlnet_cond_embedding(z)
        down, mid = control(z, 999, text, z, return_dict=False)
        eps = unet(
            z, 999, text, down_block_additional_residuals=down, mid_block_additional_residual=mid
        )
    assert parameter_count(unet) == 865_910_724
    assert parameter_count(vae) == 83_653_863
    assert parameter_count(text_encoder) == 340_387_840
    # Stock ControlNet-for-SD-2.1 size: the stride-1 embedding has the stock layer shapes.
    assert parameter_count(control) == 364_228_384
    assert parameter_count(control.controlnet_cond_embedding) == 1_086_624
    assert embedded.shape == (1, 320, 64, 64)
    assert [tuple(r.shape[-2:]) for r in down[:3]] == [(64, 64)] * 3
    assert mid.shape == (1, 1280, 8, 8)
    assert eps.sample.shape == (1, 4, 64, 64)


# -- the pipeline -----------------------------------------------------------------------------
def test_local_directory_and_cached_hub_id_load_alike(prior_dir, control_dir, tmp_path):
    cache = tmp_path / "cache"
    for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        spec = HubSpec("someone/tiny-sd", name)
        shutil.copytree(prior_dir / name, cache / spec.snapshot / name)
        (cache / spec.filename).write_text("{}")
    local = CompositionPipeline.from_pretrained(prior_dir, control_dir)
    hub = CompositionPipeline.from_pretrained("someone/tiny-sd", control_dir, cache=cache)
    assert same(state(local.unet), state(hub.unet))
    assert same(state(local.vae), state(hub.vae))
    z = torch.randn(1, 4, 8, 8)
    assert torch.equal(local.compose(z, 2, seed=3), hub.compose(z, 2, seed=3))
    with pytest.raises(DiscoverError, match="no unet/"):
        CompositionPipeline.from_pretrained(tmp_path / "cache")


def test_sampling_is_seeded_and_batchable(pipe):
    torch.manual_seed(0)
    z = torch.randn(1, 4, 8, 8)
    first = pipe.compose(z, 3, seed=7)
    assert torch.equal(first, pipe.compose(z, 3, seed=7))
    assert not torch.allclose(first, pipe.compose(z, 3, seed=8))
    # The condition matters, and a stream's item does not depend on its batch.
    assert not torch.allclose(first, pipe.compose(z + 1, 3, seed=7))
    both = pipe.compose(torch.cat((z, z + 1)), 3, seed=7)
    assert torch.allclose(both[:1], first, atol=1e-5)
    image = pipe.decode(first)
    assert image.shape == (1, 3, 64, 64) and 0 <= image.min() and image.max() <= 1


def test_sampling_can_start_from_the_diffused_condition(pipe):
    """start: condition begins at q(z_T | ẑ_c): seeded like the default start, and what it
    starts from is the scheduler's forward process at the first sampled step."""
    from diffusers import DDIMScheduler

    torch.manual_seed(0)
    z = torch.randn(1, 4, 8, 8)
    first = pipe.compose(z, 3, seed=7, start="condition")
    assert torch.equal(first, pipe.compose(z, 3, seed=7, start="condition"))
    assert not torch.allclose(first, pipe.compose(z, 3, seed=7))

    class Spy(DDIMScheduler):  # records the latents each step starts from
        seen: list = []

        def step(self, model_output, timestep, sample, **kwargs):
            Spy.seen.append(sample.clone())
            return super().step(model_output, timestep, sample, **kwargs)

    original = pipe.scheduler
    pipe.scheduler = Spy.from_config(original.config)
    try:
        assert torch.equal(pipe.compose(z, 3, seed=7, start="condition"), first)
    finally:
        pipe.scheduler = original
    sched = DDIMScheduler.from_config(original.config)
    sched.set_timesteps(3)
    noise = pipe.initial_noise(z.shape, 7)
    expected = sched.add_noise(z, noise, sched.timesteps[:1])
    assert torch.allclose(Spy.seen[0], expected) and not torch.allclose(expected, noise)
    assert CompositionSettings.from_dict({"prior": "p", "start": "condition"}).start == "condition"
    with pytest.raises(DiscoverError, match="start"):
        CompositionSettings.from_dict({"prior": "p", "start": "image"})
    with pytest.raises(DiscoverError, match="start"):
        pipe.compose(z, 1, start="image")


def test_steps_come_from_the_config():
    settings = CompositionSettings.from_dict({"prior": "p", "control": "c", "steps": {"human": 50}})
    assert settings.steps_for("human") == 50
    assert settings.steps_for("machine") == 8  # paper §4.1.1, the default
    with pytest.raises(DiscoverError, match="viewer 'detection'"):
        settings.steps_for("detection")  # steps follow the viewer, not the stream
    assert str(settings.control_dir(2)).endswith("r2")
    with pytest.raises(DiscoverError, match="unknown keys"):
        CompositionSettings.from_dict({"prior": "p", "stepz": 3})


def test_codec_decodes_with_composition(pipe):
    from discover.datasets.synthetic_scenes import SceneGenerator
    from discover.discover_codec.model import load_model_dir

    # The committed mini codec targets the VAE the test prior was built with.
    model = load_model_dir("discover-mini", "1")
    image = np.ascontiguousarray(SceneGenerator(0, "val", 64, 64, 1, 2).render(0)[0][:60, :64])
    container = model.encode(image, {})
    settings = CompositionSettings(prior="unused", steps={"machine": 2, "human": 3}, seed=5)
    out = decode_composed(model, container, "human", pipe, settings)
    assert out.shape == (60, 64, 3) and out.dtype == np.uint8
    z_c_hat = model.decode_latent(container, "human").clone()
    expected = pipe.decode(pipe.compose(z_c_hat, 3, seed=5))
    assert np.array_equal(out, tensor_to_image(expected, 60, 64))


# -- training ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stages(prior_dir):
    """A few steps of each stage on one fixed mini batch, with snapshots around stage II."""
    trainer = CompositionTrainer(SPEC, 1.0, prior=prior_dir, steps=3, stage2_steps=3)
    frozen_prior = {"unet": state(trainer.unet), "vae": state(trainer.vae)}
    initial = state(trainer.model)
    fixed = trainer.sample_batch()
    one = [trainer.train_step(fixed)["loss"] for _ in range(3)]
    trainer.begin_stage(2)
    fixed = trainer.sample_batch()
    assert fixed.keep is not None and fixed.keep.shape == (1, 1, 4, 4)
    before = state(trainer.model)
    two = [trainer.train_step(fixed)["loss"] for _ in range(3)]
    return {
        "trainer": trainer,
        "stage1": one,
        "stage2": two,
        "initial": initial,
        "before": before,
        "after": state(trainer.model),
        "prior_before": frozen_prior,
    }


def test_both_stages_decrease_their_losses(stages):
    assert stages["stage1"][-1] < stages["stage1"][0]
    assert stages["stage2"][-1] < stages["stage2"][0]


def test_stage_one_trains_every_part_of_codec_and_control(stages):
    initial, after = stages["initial"], stages["before"]  # before stage II: after stage I
    parts = ("codec.g_a.", "codec.latent_codec.", "codec.M.", "codec.g_s.", "control.")
    for part in parts:
        assert any(not torch.equal(initial[n], after[n]) for n in initial if n.startswith(part)), (
            f"{part} not trained in stage I"
        )
    assert {n.split(".")[0] for n in initial} == {"codec", "control"}


def test_stage_two_freezes_encoder_hyperprior_and_prior(stages):
    before, after = stages["before"], stages["after"]
    frozen = ("codec.g_a.", "codec.latent_codec.")  # g_a; h_a, h_s, entropy model, contexts
    for name in before:
        if name.startswith(frozen):
            assert torch.equal(before[name], after[name]), f"{name} changed in stage II"
    for part in ("codec.g_s.", "codec.M.", "control."):
        assert any(not torch.equal(before[n], after[n]) for n in before if n.startswith(part)), (
            f"{part} not trained in stage II"
        )
    trainer = stages["trainer"]
    assert same(stages["prior_before"]["unet"], state(trainer.unet))
    assert same(stages["prior_before"]["vae"], state(trainer.vae))
    assert not any(p.requires_grad for p in trainer.unet.parameters())


def test_resume_after_kill_gives_the_same_weights(prior_dir, tmp_path):
    # Killed inside stage II: its optimizer, LR schedule and mask stream must all resume.
    spec = {**SPEC, "grad_accum": 2, "checkpoint_every": 1}

    def run(out, **kw):
        return train_composition(
            out / "r1.pth.tar",
            out / "control" / "r1",
            out / "r1.json",
            spec,
            1.0,
            prior=prior_dir,
            model_id="test",
            steps=1,
            stage2_steps=2,
            log_csv=out / "r1.losses.csv",
            **kw,
        )

    run(tmp_path / "whole")
    killed = tmp_path / "killed"
    assert run(killed, stop_after=2) == {"finished": False, "step": 2}
    assert [p.name for p in checkpoints(killed / "control" / ".r1.checkpoints")] == [
        "step-00000001.pt",
        "step-00000002.pt",
    ]
    with pytest.raises(CheckpointMismatchError, match="lambda_r"):
        train_composition(
            killed / "r2.pth.tar",
            killed / "control" / "r1",
            killed / "r2.json",
            spec,
            2.0,
            prior=prior_dir,
            model_id="test",
            steps=1,
            stage2_steps=2,
        )
    torch.manual_seed(12345)  # a new process starts from other RNG states
    meta = run(killed)
    assert meta["final"]["step"] == 3 and meta["final"]["stage"] == 2
    whole = torch.load(tmp_path / "whole" / "r1.pth.tar", weights_only=True)
    resumed = torch.load(killed / "r1.pth.tar", weights_only=True)
    assert same(whole, resumed)
    assert same(
        state(load_control(tmp_path / "whole" / "control" / "r1")),
        state(load_control(killed / "control" / "r1")),
    )

    def losses(out):
        with open(out / "r1.losses.csv") as fh:
            return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]

    assert losses(tmp_path / "whole") == losses(killed)
    assert not (killed / "control" / ".r1.checkpoints").exists()  # removed once finished
    # The codec loads like any trained rate point.
    from discover.discover_codec.model import load_codec_net

    load_codec_net(killed / "r1.pth.tar")


def test_float16_storage_is_the_float32_result_cast(prior_dir, tmp_path):
    """save_dtype: float16 stores what the float32 run trains, cast (half the bytes), and it
    loads back into float32 models; control_lr gives C its own learning rate."""
    from safetensors.torch import load_file

    def run(out, **extra):
        return train_composition(
            out / "r1.pth.tar",
            out / "control" / "r1",
            out / "r1.json",
            {**SPEC, "control_lr": 1e-2, **extra},
            1.0,
            prior=prior_dir,
            model_id="test",
            steps=1,
            stage2_steps=0,
        )

    run(tmp_path / "f32")
    run(tmp_path / "f16", save_dtype="float16")
    full = torch.load(tmp_path / "f32" / "r1.pth.tar", weights_only=True)
    half = torch.load(tmp_path / "f16" / "r1.pth.tar", weights_only=True)
    from discover.discover_codec.model import load_codec_net
    from discover.training.common import parameter_names

    net = load_codec_net(tmp_path / "f16" / "r1.pth.tar")
    assert same(half, cast_state(full, torch.float16, parameter_names(net)))
    # buffers float16 cannot hold stay float32: the likelihood bound 1e-9 is not 0
    assert half["latent_codec.hyper.entropy_bottleneck.likelihood_lower_bound.bound"].item() > 0
    assert net.entropy_bottleneck.likelihood_lower_bound.bound.item() == pytest.approx(1e-9)
    weights = "diffusion_pytorch_model.safetensors"
    c16 = load_file(tmp_path / "f16" / "control" / "r1" / weights)
    c32 = load_file(tmp_path / "f32" / "control" / "r1" / weights)
    assert same(c16, cast_state(c32, torch.float16))
    assert load_control(tmp_path / "f16" / "control" / "r1").dtype == torch.float32
    assert next(net.parameters()).dtype == torch.float32
    trainer = CompositionTrainer({**SPEC, "control_lr": 1e-2}, 1.0, prior=prior_dir, steps=1)
    lrs = [g["initial_lr"] for g in trainer.optimizer.param_groups]
    assert lrs[:2] == [SPEC["lr"], 1e-2]


def test_a_non_finite_loss_stops_training_with_the_step_named(prior_dir):
    trainer = CompositionTrainer(SPEC, 1.0, prior=prior_dir, steps=2)
    fixed = trainer.sample_batch()
    fixed.x[0, 0, 0, 0] = float("nan")
    with pytest.raises(DiscoverError, match=r"stage 1 step 1: non-finite loss terms"):
        trainer.train_step(fixed)


def test_diffusion_target_follows_the_prediction_type():
    from diffusers import DDIMScheduler

    z0, noise, t = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4), torch.tensor([10, 900])
    eps = DDIMScheduler(prediction_type="epsilon")
    v = DDIMScheduler(prediction_type="v_prediction")
    assert torch.equal(diffusion_target(eps, z0, noise, t), noise)
    a = v.alphas_cumprod[t].view(-1, 1, 1, 1)
    assert torch.allclose(diffusion_target(v, z0, noise, t), a.sqrt() * noise - (1 - a).sqrt() * z0)
    with pytest.raises(DiscoverError, match="prediction_type"):
        diffusion_target(DDIMScheduler(prediction_type="sample"), z0, noise, t)


def test_mixed_precision_is_off_on_cpu():
    assert resolve_mixed_precision("auto", torch.device("cpu")) == "no"
    with pytest.raises(DiscoverError, match="CUDA"):
        resolve_mixed_precision("bf16", torch.device("cpu"))


def test_train_prior_writes_a_prior_the_pipeline_loads(tmp_path):
    spec = {"steps": 2, "batch_size": 1, "crop": 64, "num_images": 1, "save_dtype": "float16"}
    spec["scheduler"] = {"prediction_type": "v_prediction"}
    meta = train_prior(
        tmp_path / "prior",
        {**spec, "unet": TEST_UNET, "text_encoder": TEST_TEXT},
        vae_dir=VAE,
        meta_path=tmp_path / "prior.json",
    )
    assert meta["final"]["step"] == 2
    assert "unet/diffusion_pytorch_model.safetensors" in meta["sha256"]
    # The VAE is the codec's: ẑ_c and the prior's latents are the same space.
    vae_file = "diffusion_pytorch_model.safetensors"
    assert meta["sha256"][f"vae/{vae_file}"] == sha256(VAE / vae_file)
    pipe = CompositionPipeline.from_pretrained(tmp_path / "prior")
    assert pipe.compose(torch.zeros(1, 4, 8, 8), 2).shape == (1, 4, 8, 8)
    # stored in float16, loaded in float32; the schedule is SD's with v-prediction
    from safetensors.torch import load_file

    stored = load_file(tmp_path / "prior/unet/diffusion_pytorch_model.safetensors")
    assert {v.dtype for v in stored.values()} == {torch.float16}
    assert pipe.dtype == torch.float32
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    assert pipe.scheduler.config.beta_schedule == "scaled_linear"


def test_train_prior_changes_the_unet_and_lowers_its_loss_on_a_fixed_batch(tmp_path, monkeypatch):
    """0 steps save the prior's initial UNet (same seed); 10 steps on one fixed batch of
    crops change every block of it and lower the diffusion loss on that batch, measured at
    fixed noise and timesteps spread over the schedule."""
    from discover.composition.pipeline import prompt_embedding
    from discover.discover_codec.vae import encode_latent
    from discover.training.data import CropStream, TrainingData

    spec = {"batch_size": 2, "crop": 64, "num_images": 1, "lr": 1e-3}
    spec.update(unet=TEST_UNET, text_encoder=TEST_TEXT)
    x = next(TrainingData.synthetic(0, 1, 64).stream(64, 2, seed=7))
    monkeypatch.setattr(CropStream, "__next__", lambda stream: x.clone())
    for steps in (0, 10):
        train_prior(tmp_path / f"prior{steps}", spec, vae_dir=VAE, steps=steps)
    parts = {steps: load_prior(tmp_path / f"prior{steps}") for steps in (0, 10)}
    before, after = (state(parts[s].unet) for s in (0, 10))
    blocks = {n.split(".")[0] for n in before}  # conv_in, time_embedding, down_blocks, ...
    assert {n.split(".")[0] for n in before if not torch.equal(before[n], after[n])} == blocks

    p = parts[0]
    t = torch.tensor([50, 300, 550, 800, 950, 999])
    with torch.no_grad():
        z0 = encode_latent(p.vae, x).repeat(3, 1, 1, 1)
        noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(1))
        text = prompt_embedding(p.tokenizer, p.text_encoder, "").expand(len(t), -1, -1)
        target = diffusion_target(p.scheduler, z0, noise, t)
        z_t = p.scheduler.add_noise(z0, noise, t)
        loss = {
            s: float(F.mse_loss(parts[s].unet.eval()(z_t, t, text).sample, target)) for s in (0, 10)
        }
    assert loss[10] < 0.95 * loss[0], loss


def test_the_dag_decodes_each_stream_with_the_steps_of_each_viewer(
    prior_dir, control_dir, tmp_path
):
    """Paper §4.1.1: "the sampling step is set as 8 for machine vision tasks, 50 for human
    perception tasks". Every DISCOVER row is decoded for each viewer: the task models read the
    machine-step decode (of the task's stream, and of the full stream: "w/o
    disentanglement"), the human metrics the human-step decode (of the full stream, and of
    the task's: "Ours (Detection)"). The UNet evaluations each decode job counted (a forward
    hook) are the viewer's steps; each image equals the library's decode for that viewer."""
    import copy

    import pandas as pd
    import yaml
    from PIL import Image

    from discover.config import validate_config
    from discover.discover_codec.bitstream import Container
    from discover.discover_codec.model import load_model_dir
    from discover.plan import Plan

    from .conftest import ROOT, job_threads, snakemake, tiny_config, write_config

    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg = tiny_config(shard_size=4)
    settings = {
        "prior": str(prior_dir),
        "control": str(control_dir.parent),
        "steps": {"machine": 2, "human": 3},
        "seed": 5,
    }
    cfg["codecs"] = {
        "discover-gen": {
            "type": "discover",
            "trained": "discover-mini",
            "rates": [1],
            "tasks": {"detection": {"mask": "gt"}},
            "composition": settings,
        }
    }
    cfg["anchor"] = "discover-gen"
    cfg["metrics"] = ["psnr"]
    cfg["discover_training"] = copy.deepcopy(default["discover_training"])
    cfg["training_data"] = copy.deepcopy(default["training_data"])  # the pools it names
    cfg["tasks"] = {"detection": copy.deepcopy(default["tasks"]["detection"])}
    cfg["task_training"] = {"scenes-detector": default["task_training"]["scenes-detector"]}
    config = write_config(tmp_path / "config.yaml", cfg)
    proc = snakemake(tmp_path, config)
    assert proc.returncode == 0, proc.stderr[-3000:]

    model = load_model_dir("discover-mini", "1")
    pipe = CompositionPipeline.from_pretrained(prior_dir, control_dir)
    out = tmp_path / "results/scenes"
    steps = settings["steps"]
    for consumer in ("human", "detection"):
        views = {
            "human": out / f"discover-gen@{consumer}/1/s0000",
            "machine": out / f"discover-gen@{consumer}/1/machine/s0000",
        }
        for viewer, folder in views.items():
            timings = pd.read_csv(folder / "timings.csv")
            assert len(timings) == 4 and not timings.reused.any()
            assert (timings.unet_evaluations == steps[viewer]).all(), (consumer, viewer)
            png = sorted(folder.glob("*.png"))[0]
            stream = Container.from_bytes(png.with_suffix(".dsc").read_bytes())
            with job_threads(1):  # the decode job's threads (rules/discover.smk)
                expected = decode_composed(
                    model,
                    stream,
                    consumer,
                    pipe,
                    CompositionSettings.from_dict(settings),
                    viewer=viewer,
                )
            assert np.array_equal(np.asarray(Image.open(png)), expected), (consumer, viewer)
        # one cut, two decodes: the same bits for either viewer
        bits = [pd.read_csv(f / "timings.csv").bits.tolist() for f in views.values()]
        assert bits[0] == bits[1]
    # the per-image metrics (the human metrics' input) are those of the human view
    metrics = pd.read_csv(out.parent / "metrics/scenes/discover-gen@detection/1/s0000.csv")
    human_view = out / "discover-gen@detection/1/s0000"
    ref = out / "reference/s0000"
    for rec in metrics.itertuples():
        a = np.asarray(Image.open(ref / f"{rec.id}.png"), dtype=np.float64)
        b = np.asarray(Image.open(human_view / f"{rec.id}.png"), dtype=np.float64)
        assert rec.psnr == pytest.approx(10 * np.log10(255**2 / np.mean((a - b) ** 2)), abs=1e-6)
    # the task models read the machine views: forcing those decodes reruns the predictions on
    # both rows (task stream, and full stream: "w/o disentanglement"), and no human-view decode
    plan = Plan(validate_config(cfg), basedir=ROOT)
    machine = plan.decoded_dir("scenes", "discover-gen@human", "1", "s0000", "machine")
    assert machine == "results/scenes/discover-gen@human/1/machine/s0000"
    forced = ("--forcerun", "discover_decode_machine")
    dry = snakemake(tmp_path, config, "-n", "--quiet", "rules", *forced)
    assert dry.returncode == 0, dry.stderr[-3000:]
    stats = dry.stdout.split("Job stats:")[1].split("Reasons:")[0]
    assert re.search(r"^discover_decode_machine\s+2$", stats, re.M), stats
    assert re.search(r"^task_predict\s+2$", stats, re.M), stats
    assert not re.search(r"^discover_decode\s", stats, re.M), stats


def test_train_rules_train_the_prior_then_each_rate_point_for_the_dag(tmp_path):
    """composition_training in the DAG: train_prior, then train_composition per λ_R (from the
    base model's codec at that λ_R), then the codec decodes with what was trained."""
    import copy

    import pandas as pd
    import yaml

    from .conftest import ROOT, copy_committed_weights, snakemake, tiny_config, write_config

    cfg = tiny_config(shard_size=4)
    cfg["datasets"]["scenes"]["num_images"] = 2
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["discover_training"] = copy.deepcopy(default["discover_training"])
    cfg["training_data"] = copy.deepcopy(default["training_data"])  # the pools it names
    cfg["composition_training"] = {
        "gen": {
            "base": "discover-mini",
            "data": "scenes",
            "lambdas": [1, 8],
            "prior": {
                "steps": 2,
                "batch_size": 1,
                "crop": 64,
                "num_images": 1,
                "unet": TEST_UNET,
                "text_encoder": TEST_TEXT,
            },
            "steps": 2,
            "stage2_steps": 1,
            **{k: v for k, v in SPEC.items() if k != "codec"},
        }
    }
    cfg["codecs"] = {
        "gen": {
            "type": "discover",
            "trained": "gen",
            "rates": [1, 8],
            "tasks": {"detection": {"mask": "gt"}},
            "composition": {"steps": {"machine": 1, "human": 2}},
        }
    }
    cfg["anchor"] = "gen"
    cfg["metrics"] = ["psnr"]
    cfg["trained_weights_dir"] = str(tmp_path / "w")
    copy_committed_weights(tmp_path / "w", "discover-mini")
    proc = snakemake(tmp_path, write_config(tmp_path / "config.yaml", cfg))
    assert proc.returncode == 0, proc.stderr[-3000:]

    d = tmp_path / "w" / "gen"
    prior = json.loads((d / "prior.json").read_text())
    assert prior["steps"] == 2 and "train_prior" in prior["command"]
    for rate in (1, 8):
        meta = json.loads((d / f"r{rate}.json").read_text())
        assert meta["lambda_R"] == rate and meta["sha256"] == sha256(d / f"r{rate}.pth.tar")
        assert meta["codec_init"].endswith(f"discover-mini/r{rate}.pth.tar")
        assert (d / "control" / f"r{rate}" / "config.json").is_file()
        assert "train_composition" in meta["command"]
    assert not list((tmp_path / "results/checkpoints").rglob("*.pt"))  # removed once done
    rd = pd.read_csv(tmp_path / "results/tables/scenes/rd.csv")
    assert set(rd.codec) == {"gen@human", "gen@detection"} and rd["psnr"].notna().all()
    # the loss logs as a report figure
    for ext in ("png", "pdf"):
        assert (tmp_path / f"results/plots/training/gen_losses.{ext}").stat().st_size > 0


def test_codec_init_scratch_needs_only_the_base_vae(tmp_path):
    """codec_init: scratch starts stage I from a fresh codec: the DAG trains the prior and the
    rate points without asking for (or training) the base model's codecs."""
    import copy
    import re

    import yaml

    from discover.config import validate_config
    from discover.plan import Plan

    from .conftest import ROOT, copy_committed_weights, snakemake, tiny_config, write_config

    cfg = tiny_config(shard_size=4)
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["discover_training"] = copy.deepcopy(default["discover_training"])
    cfg["training_data"] = copy.deepcopy(default["training_data"])  # the pools it names
    cfg["composition_training"] = {
        "gen": {
            "base": "discover-mini",
            "data": "scenes",
            "codec_init": "scratch",
            "lambdas": [1, 8],
            "prior": {"steps": 2, "unet": TEST_UNET, "text_encoder": TEST_TEXT},
            "steps": 2,
        }
    }
    cfg["trained_weights_dir"] = str(tmp_path / "w")
    # the base's VAE only, no codecs
    copy_committed_weights(tmp_path / "w", "discover-mini", files=("vae", "vae.json"))
    plan = Plan(validate_config(copy.deepcopy(cfg)), basedir=tmp_path)
    assert plan.composition_init("gen", "1") is None
    assert plan.composition_trainer_spec("gen")["codec_init"] == "scratch"
    config = write_config(tmp_path / "config.yaml", cfg)
    proc = snakemake(tmp_path, config, "-n", "--quiet", "rules", "--", "w/gen/r8.pth.tar")
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = proc.stdout.split("Job stats:")[1]
    assert re.search(r"^train_prior\s+1$", stats, re.M), stats
    assert re.search(r"^train_composition\s+1$", stats, re.M), stats
    assert "train_discover" not in stats, stats  # neither the base's codecs nor its VAE


def test_composition_false_decodes_a_composition_trained_codec_with_the_vae(tmp_path):
    """`composition: false` on a codec trained with composition: the same codec weights, ẑ_c
    decoded by the VAE ("w/o composition"), and the prior is not an input of its jobs."""
    import copy

    import yaml

    from discover.config import validate_config
    from discover.plan import Plan

    from .conftest import ROOT, tiny_config

    cfg = tiny_config(shard_size=4)
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["discover_training"] = copy.deepcopy(default["discover_training"])
    cfg["training_data"] = copy.deepcopy(default["training_data"])  # the pools it names
    cfg["composition_training"] = {
        "gen": {
            "base": "discover-mini",
            "data": "scenes",
            "lambdas": [1],
            "prior": {"steps": 1},
            "steps": 1,
        }
    }
    tasks = {"detection": {"mask": "gt"}}
    cfg["codecs"] = {
        "gen": {"type": "discover", "trained": "gen", "rates": [1], "tasks": tasks},
        "gen-vae": {
            "type": "discover",
            "trained": "gen",
            "rates": [1],
            "tasks": tasks,
            "composition": False,
        },
    }
    cfg["anchor"] = "gen"
    plan = Plan(validate_config(copy.deepcopy(cfg)), basedir=tmp_path)
    assert plan.has_composition("gen") and not plan.has_composition("gen-vae")
    assert plan.ablation_role("gen-vae@detection", "detection") == "w/o composition"
    assert plan.ablation_role("gen@detection", "detection") == "DISCOVER"
    with_prior = plan.codec_job_config("gen", "1")["codecs"]["gen"]
    without = plan.codec_job_config("gen-vae", "1")["codecs"]["gen-vae"]
    assert with_prior["composition"]["prior"].endswith("gen/prior")
    assert "composition" not in without
    assert without["weights"] == with_prior["weights"]
    assert any(f.endswith("prior.json") for f in plan.codec_weight_files("gen", "1"))
    files = plan.codec_weight_files("gen-vae", "1")
    assert not any(f.endswith("prior.json") for f in files)
    assert any(f.endswith("gen/r1.json") for f in files)  # written with the codec weights
    bad = copy.deepcopy(cfg)
    bad["codecs"]["gen-vae"]["composition"] = True
    with pytest.raises(Exception, match="composition"):
        validate_config(bad)
