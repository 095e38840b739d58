"""Layer 1 of the plan: where trained and cached weights live, and the training specs.

The train rules' outputs and every job reading a weight file take their paths from here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from discover.discover_codec.model_index import MODEL_INDEX
from discover.errors import ConfigError
from discover.weights import hub_spec, is_local_dir, prior_hub_specs

#: The training images when a config has no ``training_data``: the embedded default's pool.
DEFAULT_TRAINING_DATA: dict[str, Any] = {
    "scenes": {
        "sources": [
            {"type": "synthetic-scenes", "num_images": 256, "min_size": 256, "max_size": 384}
        ]
    }
}
#: Config sections whose entries train on a ``training_data`` pool (task models and the
#: demo classifier read annotated datasets of their own).
POOL_SECTIONS = ("zoo_training", "discover_training", "composition_training")


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

    # -- training images ------------------------------------------------------------------
    @property
    def training_pools(self) -> dict[str, dict]:
        return dict(self.config.get("training_data") or DEFAULT_TRAINING_DATA)

    def training_pool(self, section: str, model: str, part: str | None = None) -> str:
        """The ``training_data`` entry a training entry (or its ``vae`` / ``prior`` part)
        reads: its ``data`` key, else the part's entry's, else the only pool there is."""
        entry = self.config[section][model]
        sub = entry.get(part) if part else None
        name = (sub.get("data") if isinstance(sub, Mapping) else None) or entry.get("data")
        pools = self.training_pools
        key = f"{section}.{model}" + (f".{part}" if part else "")
        if name is None:
            if len(pools) == 1:
                return next(iter(pools))
            raise ConfigError(
                f"config key {key}.data: training_data has several entries "
                f"({sorted(pools)}); name the one this trains on"
            )
        if name not in pools:
            raise ConfigError(
                f"config key {key}.data: {name!r} is not a training_data entry ({sorted(pools)})"
            )
        return name

    def manifest_path(self, pool: str) -> Path:
        """The list of files a pool trained on (written once by training_manifest; it goes
        with the weights, so committed weights say what they were trained on)."""
        return self.weights_dir / "training-data" / f"{pool}.tsv"

    def training_manifest(self, section: str, model: str, part: str | None = None) -> Path:
        return self.manifest_path(self.training_pool(section, model, part))

    def training_data_spec(self, pool: str) -> dict:
        if pool not in self.training_pools:
            raise ConfigError(f"config key training_data.{pool}: not defined")
        return dict(self.training_pools[pool])

    # -- the VAE and the prior -----------------------------------------------------------
    def pretrained_vae(self, model: str) -> str | None:
        """The VAE a DISCOVER model targets when it is not trained here: a composition model's
        pretrained prior's ``vae`` (SD 2.1-base), or a discover_training ``vae: <id or dir>``."""
        if model in self.composition_models:
            prior = self.pretrained_prior(model)
            if prior is not None:
                return f"{prior}/vae"
            return self.pretrained_vae(self.composition_spec(model)["base"])
        vae = self._discover_spec(model)["vae"]
        return vae if isinstance(vae, str) else None

    def discover_vae_dir(self, model: str) -> Path | str:
        """Where a DISCOVER model's VAE loads from: a trained ``weights/<name>/vae``, or a
        pretrained one's directory or Hub id (resolved through the weights cache)."""
        pretrained = self.pretrained_vae(model)
        if pretrained is not None:
            return pretrained
        spec = self._discover_spec(model)
        if model in self.composition_models:  # the base model's VAE: the prior's latent space
            return self.discover_vae_dir(spec["base"])
        return self.weights_dir / model / "vae"

    def discover_vae_inputs(self, model: str) -> list[str]:
        """Files a job reading the VAE depends on: the trained VAE's sidecar, a pretrained
        local directory, or the cache manifest of a Hub VAE."""
        vae = self.discover_vae_dir(model)
        if isinstance(vae, Path):
            return [str(vae.with_suffix(".json"))]
        if is_local_dir(vae):
            return [vae]
        return [f"{self.weights_cache}/{hub_spec(vae).filename}"]

    def pretrained_prior(self, model: str) -> str | None:
        """A composition model's frozen prior when it is not trained here (``prior: <id or
        dir>``, paper §4.1.1: SD 2.1-base), else None."""
        prior = self.composition_spec(model)["prior"]
        return prior if isinstance(prior, str) else None

    def prior_inputs(self, model: str) -> list[str]:
        """Files a job reading a composition model's prior depends on."""
        prior = self.pretrained_prior(model)
        if prior is None:
            return [str(self.prior_dir(model).with_suffix(".json"))]
        if is_local_dir(prior):
            return [prior]
        return [f"{self.weights_cache}/{s.filename}" for s in prior_hub_specs(prior)]

    @property
    def trained_priors(self) -> list[str]:
        """Composition models whose prior the pipeline trains (train_prior)."""
        return [m for m in self.composition_models if self.pretrained_prior(m) is None]

    def training_hub_specs(self) -> list:
        """Hub weights the train rules read (a pretrained prior, a pretrained VAE)."""
        specs = []
        for model in self.composition_models:
            prior = self.pretrained_prior(model)
            if prior is not None:
                specs += prior_hub_specs(prior)
        for model in self.config.get("discover_training") or {}:
            vae = self.pretrained_vae(model)
            if vae is not None and not is_local_dir(vae):
                specs.append(hub_spec(vae))
        return specs

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
        key = f"config key composition_training.{model}"
        base = spec.get("base")
        if base is not None and base not in (self.config.get("discover_training") or {}):
            raise ConfigError(f"{key}.base: {base!r} is not a discover_training entry")
        if base is None:
            if not isinstance(spec["prior"], str):
                raise ConfigError(
                    f"{key}.base: a prior trained here lives in the latent space of a base "
                    "model's VAE; name the base, or give a pretrained prior (prior: <Hub id "
                    "or directory>)"
                )
            if spec.get("codec_init", "scratch") == "base":
                raise ConfigError(f"{key}.codec_init: base needs a base model")
            if "codec" not in spec:
                raise ConfigError(f"{key}.codec: without a base model, name the codec (full)")
        return spec

    def composition_trainer_spec(self, model: str) -> dict:
        """What the Eq. 4 trainer reads: the stage settings and the codec (the base model's
        unless the entry names one)."""
        spec = self.composition_spec(model)
        drop = ("base", "lambdas", "prior", "gpus", "nodes", "processes", "data")
        out = {k: v for k, v in spec.items() if k not in drop}
        if out.get("codec_init") == "base":
            del out["codec_init"]  # the base codec's file comes as the codec_init input
        if "codec" not in out:
            out["codec"] = self.config["discover_training"][spec["base"]]["codec"]
        return out

    def prior_dir(self, model: str) -> Path | str:
        """A trained prior's directory, or the pretrained prior's id or directory."""
        pretrained = self.pretrained_prior(model)
        if pretrained is not None:
            return pretrained
        return self.weights_dir / model / "prior"

    def control_dir(self, model: str, rate: str | None = None) -> Path:
        root = self.weights_dir / model / "control"
        return root if rate is None else root / f"r{rate}"

    def composition_gpus(self, model: str) -> int:
        """GPUs per node a composition training job asks the scheduler for (spec ``gpus``,
        default 0: the mini scale trains on CPU)."""
        return int(self.composition_spec(model).get("gpus", 0))

    def composition_nodes(self, model: str) -> int:
        return int(self.composition_spec(model).get("nodes", 1))

    def composition_processes(self, model: str) -> int:
        """Training processes of one rate point in all (DDP ranks): spec ``processes``, else
        one per GPU on every node, else 1."""
        spec = self.composition_spec(model)
        if "processes" in spec:
            return int(spec["processes"])
        return max(1, self.composition_gpus(model) * self.composition_nodes(model))

    def composition_threads(self, model: str) -> int:
        """CPUs of one rate point's job: per process one for the training loop and one per
        DataLoader worker (at least 2: the mini trains on 2 cores)."""
        workers = int(
            self.training_data_spec(self.training_pool("composition_training", model)).get(
                "workers", 0
            )
        )
        return max(2, self.composition_processes(model) * (1 + workers))

    def composition_cpus_per_task(self, model: str) -> int:
        """SLURM --cpus-per-task of a multi-process job (0: the plugin's default, threads)."""
        processes = self.composition_processes(model)
        return self.composition_threads(model) // processes if processes > 1 else 0

    def composition_init(self, model: str, rate: str) -> Path | None:
        """The base model's codec at the same λ_R, which stage I starts from with
        ``codec_init: base`` (the default when there is a base); None otherwise (``scratch``:
        a fresh codec, the base model then only lends its VAE, so its codecs need not exist;
        ``elic``: an ELIC checkpoint, ``elic_weights``)."""
        spec = self.composition_spec(model)
        default = "base" if spec.get("base") else "scratch"
        if spec.get("codec_init", default) != "base":
            return None
        return self.discover_weight_path(spec["base"], rate)

    def elic_inputs(self, section: str, model: str, rate: str) -> list[str]:
        """The ELIC checkpoint a rate point starts from (``codec_init: elic``), as a file the
        train rule depends on."""
        spec = self.config[section][model]
        if spec.get("codec_init") != "elic":
            return []
        given = spec.get("elic_weights")
        key = f"config key {section}.{model}.elic_weights"
        if not given:
            raise ConfigError(f"{key}: codec_init elic needs the ELIC checkpoint(s)")
        if isinstance(given, Mapping):
            table = {float(k): str(v) for k, v in given.items()}
            if float(rate) not in table:
                raise ConfigError(f"{key}: no checkpoint for λ_R={rate} (it has {sorted(table)})")
            return [table[float(rate)]]
        return [str(given)]

    def model_index_path(self, model: str) -> Path:
        return self.weights_dir / model / MODEL_INDEX

    def discover_model_index(self, model: str) -> dict:
        """What ``weights/<model>/model_index.json`` says of a DISCOVER model, so that the CLI
        loads what the DAG loads: its rate points, its VAE and, with composition, its prior,
        control modules and the decode settings of the config's codec that uses it. Paths are
        relative to the model's directory; a Hub id stays one (the weights cache holds it)."""
        root = self.weights_dir / model

        def where(ref: Path | str) -> str:
            return os.path.relpath(ref, root) if isinstance(ref, Path) else str(ref)

        spec = self._discover_spec(model)
        index: dict[str, Any] = {
            "model_id": model,
            "rates": list(spec["lambdas"]),
            "rate": "λ_R, the rate weight the rate point was trained with: a larger λ_R "
            "spends fewer bits",
            "vae": where(self.discover_vae_dir(model)),
        }
        if model in self.composition_models:
            decode: dict[str, Any] = {}
            for entry in (self.config.get("codecs") or {}).values():
                if entry.get("trained") == model and entry.get("composition"):
                    decode = {
                        k: v
                        for k, v in entry["composition"].items()
                        if k not in ("prior", "control")
                    }
                    break
            index["composition"] = {
                "prior": where(self.prior_dir(model)),
                "control": where(self.control_dir(model)),
                **decode,
            }
        index["command"] = (
            f"snakemake --cores 1 --forcerun discover_model_index -- {self.model_index_path(model)}"
        )
        return index

    @property
    def discover_models(self) -> list[str]:
        """DISCOVER models trained here (discover_training and composition_training)."""
        return [*(self.config.get("discover_training") or {}), *self.composition_models]

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
