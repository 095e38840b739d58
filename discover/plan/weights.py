"""Layer 1 of the plan: where trained and cached weights live, and the training specs.

The train rules' outputs and every job reading a weight file take their paths from here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from discover.errors import ConfigError


class Weights:
    def __init__(self, config: Mapping[str, Any], basedir: str | Path = "."):
        self.config = config
        #: committed small weights live in the repository, whatever the working directory
        self.weights_dir = _relative_to_cwd(
            Path(basedir) / config.get("trained_weights_dir", "weights")
        )
        self.out = config.get("output_dir", "results").rstrip("/")

    def trained_task_model(self, name: str, key: str) -> Path:
        """The checkpoint of the task_training entry ``name`` that config key ``key`` names."""
        if name not in (self.config.get("task_training") or {}):
            raise ConfigError(f"config key {key}: {name!r} is not a task_training entry")
        return self.task_model_path(name)

    def task_model_path(self, model: str) -> Path:
        return self.weights_dir / model / "model.pt"

    def task_training_spec(self, model: str) -> dict:
        return dict(self.config["task_training"][model])

    def task_init(self, model: str) -> str | None:
        """The checkpoint a task model starts from (spec ``init``: a task_training entry)."""
        init = self.config["task_training"][model].get("init")
        if init is None:
            return None
        if init == model:
            raise ConfigError(
                f"config key task_training.{model}.init: a model cannot start from itself"
            )
        return str(self.trained_task_model(init, f"task_training.{model}.init"))

    @staticmethod
    def name_regex(names: list[str]) -> str:
        """A wildcard constraint matching exactly these names (nothing if empty)."""
        return "|".join(re.escape(n) for n in names) or "(?!x)x"

    def classifier_path(self, model: str) -> Path:
        return self.weights_dir / model / "model.pth"

    def classifier_training_spec(self, model: str) -> dict:
        return dict(self.config["classifier_training"][model])

    def zoo_weight_path(self, model: str, rate: str) -> Path:
        if model not in self.config.get("zoo_training", {}):
            raise ConfigError(
                f"config key zoo_training.{model}: not defined (a codec says trained: {model})"
            )
        _check_rate("zoo_training", model, rate, self.config["zoo_training"][model]["lambdas"])
        return self.weights_dir / model / f"q{rate}.pth.tar"

    def _discover_spec(self, model: str) -> dict:
        specs = self.config.get("discover_training", {})
        if model in self.composition_models:
            return self.composition_spec(model)
        if model not in specs:
            raise ConfigError(
                f"config key discover_training.{model}: not defined "
                f"(a discover codec says trained: {model})"
            )
        return dict(specs[model])

    def discover_weight_path(self, model: str, rate: str) -> Path:
        composition = model in self.composition_models
        section = "composition_training" if composition else "discover_training"
        _check_rate(section, model, rate, self._discover_spec(model)["lambdas"])
        return self.weights_dir / model / f"r{rate}.pth.tar"

    def discover_vae_dir(self, model: str) -> Path:
        spec = self._discover_spec(model)
        if model in self.composition_models:  # the base model's VAE: the prior's latent space
            return self.discover_vae_dir(spec["base"])
        return self.weights_dir / model / "vae"

    @property
    def composition_models(self) -> list[str]:
        return list(self.config.get("composition_training") or {})

    def composition_loss_logs(self, model: str) -> dict[str, Path]:
        """λ_R -> the loss log train_composition writes next to that rate point's weights."""
        spec = self.composition_spec(model)
        return {
            str(rate): self.discover_weight_path(model, str(rate)).with_name(f"r{rate}.losses.csv")
            for rate in spec["lambdas"]
        }

    def composition_spec(self, model: str) -> dict:
        spec = dict(self.config["composition_training"][model])
        base = spec["base"]
        if base not in (self.config.get("discover_training") or {}):
            raise ConfigError(
                f"config key composition_training.{model}.base: {base!r} is not a "
                "discover_training entry"
            )
        return spec

    def composition_trainer_spec(self, model: str) -> dict:
        """What the Eq. 4 trainer reads: the stage settings and the base model's codec."""
        spec = self.composition_spec(model)
        drop = ("base", "lambdas", "prior", "gpus", "codec_init")
        out = {k: v for k, v in spec.items() if k not in drop}
        out["codec"] = self.config["discover_training"][spec["base"]]["codec"]
        return out

    def prior_dir(self, model: str) -> Path:
        self.composition_spec(model)
        return self.weights_dir / model / "prior"

    def control_dir(self, model: str, rate: str | None = None) -> Path:
        root = self.weights_dir / model / "control"
        return root if rate is None else root / f"r{rate}"

    def composition_gpus(self, model: str) -> int:
        """GPUs a composition training job asks the scheduler for (spec ``gpus``, default 0:
        the mini scale trains on CPU; ``accelerate`` uses what the job is given)."""
        return int(self.composition_spec(model).get("gpus", 0))

    def composition_init(self, model: str, rate: str) -> Path | None:
        """The base model's codec at the same λ_R, which stage I starts from; None with
        ``codec_init: scratch`` (a fresh codec: the base model then only lends its VAE, so its
        codecs need not exist)."""
        spec = self.composition_spec(model)
        if spec.get("codec_init", "base") == "scratch":
            return None
        return self.discover_weight_path(spec["base"], rate)

    def discover_training_spec(self, model: str) -> dict:
        return self._discover_spec(model)

    @property
    def weights_cache(self) -> str:
        return self.config.get("weights_cache", "weights-cache").rstrip("/")

    def zoo_training_spec(self, model: str) -> dict:
        return dict(self.config["zoo_training"][model])

    def zoo_lambda(self, model: str, rate: str) -> float:
        lambdas = {str(k): v for k, v in self.config["zoo_training"][model]["lambdas"].items()}
        return float(lambdas[rate])


def _relative_to_cwd(path: Path) -> Path:
    """``path`` relative to the working directory when below it, so that targets such as
    ``weights/<model>/model.pth`` given on the command line match the rules' outputs."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _check_rate(section: str, model: str, rate: str, lambdas) -> None:
    """A trained model's rate point must be one it was trained for (a lambda of its spec)."""
    have = sorted(str(k) for k in lambdas)
    if str(rate) not in have:
        raise ConfigError(
            f"config key {section}.{model}.lambdas: no lambda for rate {rate} "
            f"(has {', '.join(have)})"
        )
