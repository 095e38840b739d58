"""The trainers of discover/training/ learn: a few steps on a fixed batch change the weights
they save and lower their loss on that batch. The initial weights are those the same trainer
saves after 0 steps (same seed, same initialisation); both files are scored on the batch, each
model in the mode it is saved for. The trainers draw their crops from a
``discover.training.data.CropStream``; here it returns the fixed batch (the classifier trains on a
fixed set of object crops and is scored on all of them). The composition and task-model
trainers are checked in tests/test_composition.py and tests/test_tasks.py."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import torch
import torch.nn.functional as F

from discover.datasets.synthetic_scenes import SceneGenerator
from discover.training.data import CropStream, TrainingData

from .conftest import ROOT

VAE = ROOT / "weights" / "discover-mini" / "vae"


def unchanged_parts(before: Mapping, after: Mapping, parameters: list[str]) -> list[str]:
    """Top-level modules none of whose parameters differs between two state dicts."""
    assert before.keys() == after.keys()
    parts = sorted({name.split(".")[0] for name in parameters})
    return [
        part
        for part in parts
        if all(torch.equal(before[n], after[n]) for n in parameters if n.split(".")[0] == part)
    ]


def fixed_batch(
    monkeypatch, module, seed: int, num_images: int, crop: int, size: int
) -> torch.Tensor:
    """``size`` crops of the trainer's train images (its pool for ``seed``), drawn once: every
    training batch the trainers draw from now on (a batch of another size, as the VAE
    trainer's sample for its latent scaling, is drawn as before)."""
    x = next(TrainingData.synthetic(seed, num_images, crop).stream(crop, size, seed=1234))
    drawn = CropStream.__next__

    def same_batch(stream) -> torch.Tensor:
        out = drawn(stream)
        return x.clone() if out.shape == x.shape else out

    monkeypatch.setattr(CropStream, "__next__", same_batch)
    return x


def test_zoo_trainer_changes_the_weights_and_lowers_the_rd_loss(tmp_path, monkeypatch):
    from compressai.losses import RateDistortionLoss
    from compressai.zoo.image import model_architectures

    from discover.training import zoo

    spec = {"architecture": "bmshj2018-hyperprior", "N": 16, "M": 24, "num_images": 2}
    spec.update(crop=64, batch_size=4, lr=1e-3)
    lmbda = 0.01
    x = fixed_batch(monkeypatch, zoo, 0, spec["num_images"], spec["crop"], spec["batch_size"])
    nets = {}
    for steps in (0, 20):
        out = tmp_path / f"q{steps}.pth.tar"
        zoo.train_zoo_model(out, tmp_path / f"q{steps}.json", spec, lmbda, seed=0, steps=steps)
        net = model_architectures[spec["architecture"]](spec["N"], spec["M"])
        net.load_state_dict(torch.load(out, weights_only=True))
        nets[steps] = net.eval()
    params = [n for n, _ in nets[0].named_parameters()]
    assert not unchanged_parts(nets[0].state_dict(), nets[20].state_dict(), params)
    criterion = RateDistortionLoss(lmbda=lmbda)
    with torch.no_grad():
        loss = {s: float(criterion(net(x), x)["loss"]) for s, net in nets.items()}
    assert loss[20] < 0.95 * loss[0], loss


def test_vae_trainer_changes_the_weights_and_lowers_the_reconstruction_loss(tmp_path, monkeypatch):
    from diffusers import AutoencoderKL

    from discover.training import discover as trainers

    spec = {"crop": 32, "batch_size": 4, "num_images": 2, "lr": 1e-3}
    x = fixed_batch(monkeypatch, trainers, 0, spec["num_images"], spec["crop"], spec["batch_size"])
    x = x * 2 - 1  # the VAE's input range
    vaes = {}
    for steps in (0, 15):
        trainers.train_vae(
            tmp_path / f"vae{steps}", tmp_path / f"vae{steps}.json", spec, steps=steps
        )
        vaes[steps] = AutoencoderKL.from_pretrained(tmp_path / f"vae{steps}").eval()
    params = [n for n, _ in vaes[0].named_parameters()]
    assert not unchanged_parts(vaes[0].state_dict(), vaes[15].state_dict(), params)

    def loss(vae) -> float:  # the trainer's objective, decoding the posterior's mode
        dist = vae.encode(x).latent_dist
        x_hat = vae.decode(dist.mode()).sample
        kl = dist.kl().mean() / x[0].numel()
        return float(F.l1_loss(x_hat, x) + F.mse_loss(x_hat, x) + 1e-6 * kl)

    with torch.no_grad():
        losses = {s: loss(vae) for s, vae in vaes.items()}
    assert losses[15] < 0.95 * losses[0], losses

    # the scaling factor gives unit variance on whole training images (the pool's scenes,
    # rendered anew, padded to a multiple of 8), not only on crops
    pool = TrainingData.synthetic(0, spec["num_images"], spec["crop"])
    latents = []
    with torch.no_grad():
        for entry in pool.entries:
            image = SceneGenerator(0, "train", 256, 384, 2, 6).render(
                int(entry.path.split(":")[-1])
            )[0]
            h, w = image.shape[:2]
            assert (w, h) == (entry.width, entry.height)
            x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
            x = F.pad(x, (0, (-w) % 8, 0, (-h) % 8), mode="replicate")
            latents.append(vaes[15].encode(x * 2 - 1).latent_dist.mode().flatten())
    scaled = torch.cat(latents) * vaes[15].config.scaling_factor
    assert abs(float(scaled.std()) - 1) < 1e-3, float(scaled.std())


def test_codec_trainer_changes_the_weights_lowers_the_loss_and_freezes_in_stage_two(
    tmp_path, monkeypatch
):
    from discover.discover_codec.model import load_codec_net
    from discover.discover_codec.vae import encode_latent, load_vae
    from discover.training import discover as trainers

    spec = {"codec": "mini", "crop": 64, "batch_size": 2, "num_images": 2, "lr": 1e-3}
    x = fixed_batch(monkeypatch, trainers, 0, spec["num_images"], spec["crop"], spec["batch_size"])
    lambda_r = 1.0
    runs = {"initial": (0, 0), "stage1": (12, 0), "stage2": (12, 4)}
    nets = {}
    for name, (steps, stage2) in runs.items():
        out = tmp_path / f"{name}.pth.tar"
        trainers.train_codec(
            out,
            tmp_path / f"{name}.json",
            spec,
            lambda_r,
            VAE,
            model_id="test",
            steps=steps,
            stage2_steps=stage2,
        )
        nets[name] = load_codec_net(out).eval()
    state = {name: net.state_dict() for name, net in nets.items()}
    params = [n for n, _ in nets["initial"].named_parameters()]
    assert not unchanged_parts(state["initial"], state["stage1"], params)
    # stage II (paper §4.1.1) trains g_s and M only; stage I's steps are the same in both runs
    assert unchanged_parts(state["stage1"], state["stage2"], params) == sorted(
        {n.split(".")[0] for n in params} - {"g_s", "M"}
    )
    with torch.no_grad():
        z_c = encode_latent(load_vae(VAE), x)

        def loss(net) -> float:  # stage I's objective: λ_R·bpp + latent MSE
            out = net(x)
            bits = -sum(torch.log2(lik).sum() for lik in out["likelihoods"].values())
            bpp = bits / (x.shape[0] * x.shape[2] * x.shape[3])
            return float(lambda_r * bpp + F.mse_loss(out["z_c_hat"], z_c))

        losses = {name: loss(net) for name, net in nets.items()}
    assert losses["stage1"] < 0.95 * losses["initial"], losses


def first_logged_row(path) -> dict:
    import csv

    with open(path, newline="") as f:
        return {k: float(v) for k, v in next(csv.DictReader(f)).items()}


def test_codec_trainer_pixel_weight_trains_through_the_frozen_vae(tmp_path, monkeypatch):
    from discover.discover_codec.model import load_codec_net
    from discover.discover_codec.vae import encode_latent, load_vae
    from discover.training import discover as trainers

    spec = {"codec": "mini", "crop": 64, "batch_size": 2, "num_images": 2, "lr": 1e-3}
    x = fixed_batch(monkeypatch, trainers, 0, spec["num_images"], spec["crop"], spec["batch_size"])
    nets = {}
    for name, weight, steps in [("initial", 0, 0), ("latent", 0, 12), ("pixel", 50.0, 12)]:
        out = tmp_path / f"{name}.pth.tar"
        meta = trainers.train_codec(
            out,
            tmp_path / f"{name}.json",
            {**spec, "pixel_weight": weight},
            1.0,
            VAE,
            model_id="test",
            steps=steps,
            stage2_steps=0,
            log_csv=tmp_path / f"{name}.csv",
        )
        nets[name] = load_codec_net(out).eval()
    assert "pixel_mse" in meta["final"]
    vae = load_vae(VAE)
    with torch.no_grad():
        z_c = encode_latent(vae, x)

        def loss(net) -> float:  # λ_R·bpp + latent MSE + 50 · pixel MSE of D(ẑ_c), recomputed
            out = net(x)
            bits = -sum(torch.log2(lik).sum() for lik in out["likelihoods"].values())
            bpp = bits / (x.shape[0] * x.shape[2] * x.shape[3])
            x_hat = (vae.decode(out["z_c_hat"] / vae.config.scaling_factor).sample + 1) / 2
            pixels = F.mse_loss(x_hat, x)
            return float(bpp + F.mse_loss(out["z_c_hat"], z_c) + 50.0 * pixels)

        losses = {name: loss(net) for name, net in nets.items()}
        first = first_logged_row(tmp_path / "pixel.csv")
        x_hat = nets["initial"](x)["z_c_hat"] / vae.config.scaling_factor
        initial_pixels = F.mse_loss((vae.decode(x_hat).sample + 1) / 2, x)
    # step 1 logs the pixel MSE of the initial codec's D(ẑ_c), recomputed here
    assert first["pixel_mse"] == pytest.approx(float(initial_pixels), rel=1e-4)
    assert losses["pixel"] < 0.95 * losses["initial"], losses
    # the term reaches the codec through the frozen decoder: other weights than without it
    params = [n for n, _ in nets["initial"].named_parameters()]
    assert not unchanged_parts(nets["latent"].state_dict(), nets["pixel"].state_dict(), params)


def test_classifier_trainer_changes_the_weights_and_lowers_the_loss(tmp_path):
    from discover.datasets.synthetic_scenes import CATEGORIES
    from discover.tasks.mini_resnet import MiniResNet, normalise
    from discover.training.classifier import scene_examples, train_classifier

    spec = {"input_size": 32, "batch_size": 16, "num_images": 8, "val_images": 2}
    spec.update(widths=[8, 16], lr=3e-3)
    nets = {}
    for steps in (0, 20):
        out = tmp_path / f"c{steps}.pt"
        train_classifier(out, tmp_path / f"c{steps}.json", spec, steps=steps)
        net = MiniResNet(len(CATEGORIES), tuple(spec["widths"]))
        net.load_state_dict(torch.load(out, weights_only=True))
        nets[steps] = net.eval()
    params = [n for n, _ in nets[0].named_parameters()]
    assert not unchanged_parts(nets[0].state_dict(), nets[20].state_dict(), params)
    # object crops of the train scenes, as the trainer draws them
    x, y = scene_examples(0, "train", spec["num_images"], spec["input_size"])
    with torch.no_grad():
        loss = {s: float(F.cross_entropy(net(normalise(x)), y)) for s, net in nets.items()}
    assert loss[20] < 0.95 * loss[0], loss


def test_vae_trainer_keeps_sds_latent_and_trains_under_bf16_autocast(tmp_path):
    from diffusers import AutoencoderKL

    from discover.errors import ConfigError
    from discover.training import discover as trainers

    spec = {"crop": 32, "batch_size": 2, "num_images": 2, "autocast": "bfloat16"}
    for arch in ({"latent_channels": 8}, {"block_out_channels": [16, 32, 48]}):
        with pytest.raises(ConfigError, match="vae.architecture: the mini VAE keeps SD's"):
            trainers.train_vae(
                tmp_path / "x", tmp_path / "x.json", {**spec, "architecture": arch}, steps=1
            )
    trainers.train_vae(tmp_path / "vae", tmp_path / "vae.json", spec, steps=2)
    vae = AutoencoderKL.from_pretrained(tmp_path / "vae")
    assert all(p.dtype == torch.float32 for p in vae.parameters())  # autocast, not a bf16 model
    assert not (tmp_path / "x").exists()
