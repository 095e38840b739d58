"""Layer 2 of the plan: what the config holds (datasets and shards, codecs and rates, tasks,
metrics) and the weight files each reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from discover.codecs import get_codec
from discover.config import grounding_config
from discover.datasets import get_dataset, shard_ids
from discover.datasets.base import dataset_shard_size
from discover.errors import ConfigError
from discover.metrics import METRICS
from discover.metrics.catalog import (
    distribution_feature_sets,
    feature_suffix,
    fid_config,
    fid_protocol,
    metric_columns,
    metric_status,
)
from discover.plan.weights import Weights
from discover.tasks.weight_files import is_weights_name, required_files, required_weights

RESERVED_DATASET_NAMES = {"metrics", "tables", "plots", "logs", "benchmarks", "report", "semantics"}
RESERVED_CODEC_NAMES = {"reference"}


class Catalog(Weights):
    def __init__(self, config: Mapping[str, Any], basedir: str | Path = "."):
        super().__init__(config, basedir)
        for name in config["datasets"]:
            if name in RESERVED_DATASET_NAMES:
                raise ConfigError(
                    f"config key datasets.{name}: the name {name!r} is reserved "
                    f"for outputs ({', '.join(sorted(RESERVED_DATASET_NAMES))})"
                )
        for name in config["codecs"]:
            if name in RESERVED_CODEC_NAMES:
                raise ConfigError(f"config key codecs.{name}: the name {name!r} is reserved")
        self._codecs: dict[str, Any] = {}

    def codec(self, name: str):
        """The codec ``name`` of the config, built once: its facts (GPUs, weights, consumers)
        are asked for by every job of the DAG."""
        if name not in self._codecs:
            self._codecs[name] = get_codec(name, self.config)
        return self._codecs[name]

    @cached_property
    def datasets(self) -> list[str]:
        return [n for n, e in self.config["datasets"].items() if e.get("evaluate", True)]

    @cached_property
    def _counts(self) -> dict[str, int]:
        return {n: len(get_dataset(n, self.config).list_items()) for n in self.datasets}

    def num_images(self, dataset: str) -> int:
        return self._counts[dataset]

    def shards(self, dataset: str) -> list[str]:
        return shard_ids(self._counts[dataset], dataset_shard_size(self.config, dataset))

    @property
    def codecs(self) -> list[str]:
        """Every codec of the tables: measured ones and published curves."""
        return list(self.config["codecs"])

    def is_published(self, codec: str) -> bool:
        return self.config["codecs"][codec]["type"] == "published"

    @property
    def measured_codecs(self) -> list[str]:
        return [c for c in self.codecs if not self.is_published(c)]

    @property
    def published_codecs(self) -> list[str]:
        return [c for c in self.codecs if self.is_published(c)]

    @property
    def discover_codecs(self) -> list[str]:
        return [c for c in self.measured_codecs if self.config["codecs"][c]["type"] == "discover"]

    @property
    def pipeline_codecs(self) -> list[str]:
        """Codecs run by the generic encode+decode job (every measured one but DISCOVER)."""
        return [c for c in self.measured_codecs if c not in self.discover_codecs]

    def runs_on(self, codec: str, dataset: str) -> bool:
        """Whether a codec is evaluated on a dataset (``codecs.<c>.datasets``, default all):
        an expensive codec (composition at 50 steps, a GPU-only comparator) can be restricted
        to a subset."""
        wanted = self.config["codecs"][codec].get("datasets")
        return not wanted or dataset in wanted

    def codec_shards(self, codec: str) -> int:
        """Shards a codec encodes: those of the datasets it runs on."""
        return sum(len(self.shards(d)) for d in self.datasets if self.runs_on(codec, d))

    @property
    def evaluated_tasks(self) -> list[str]:
        """Tasks with a model (``weights`` or ``trained``): their metrics join the tables."""
        return [
            t
            for t, cfg in (self.config.get("tasks") or {}).items()
            if (cfg or {}).get("weights") or (cfg or {}).get("trained")
        ]

    def task_kind(self, task: str) -> str:

        # the task registry loads the task modules (PyTorch) on first use
        from discover.tasks.registry import task_type

        return task_type(task, self.config["tasks"][task])

    def task_datasets(self, task: str) -> list[str]:
        """Datasets a task is evaluated on: with annotations (detection, segmentation) or
        class labels (classification), restricted by the task's ``datasets``."""
        cfg = self.config["tasks"][task]
        wanted = cfg.get("datasets") or self.datasets
        out = []
        for d in self.datasets:
            if d not in wanted:
                continue
            labelled = self.config["datasets"][d]["type"] == "imagenet"
            if self.has_annotations(d) or (self.task_kind(task) == "classification" and labelled):
                out.append(d)
        return out

    def has_composition(self, codec: str) -> bool:
        """A DISCOVER codec that decodes through the diffusion prior (its ``composition``
        section, or ``trained:`` naming a composition_training entry)."""
        entry = self.config["codecs"][codec]
        if entry.get("composition") is False:  # a composition-trained codec decoded by the VAE
            return False
        return bool(entry.get("composition")) or entry.get("trained") in self.composition_models

    def task_checkpoint(self, task: str) -> str | None:
        """The task model's checkpoint file (trained by the pipeline or given), or None for a
        torchvision weights name (read from the weights cache)."""
        cfg = self.config["tasks"][task]
        if cfg.get("trained"):
            return str(self.trained_task_model(cfg["trained"], f"tasks.{task}.trained"))
        weights = str(cfg["weights"])
        return None if is_weights_name(weights) and not Path(weights).is_file() else weights

    def task_weight_files(self, task: str) -> list[str]:
        cfg = self.config["tasks"][task]
        if cfg.get("backend") == "mmdet":  # an mmdet config + checkpoint (no sidecar)
            return required_files(cfg, self.weights_cache, task)
        checkpoint = self.task_checkpoint(task)
        if checkpoint is not None:
            return [checkpoint, str(Path(checkpoint).with_suffix(".json"))]
        specs = required_weights(self.config["tasks"][task])
        return [f"{self.weights_cache}/{spec.filename}" for spec in specs]

    def task_env(self, task: str) -> str:
        """Conda env file of a task's prediction jobs (relative to rules/): mmdet's own."""
        mmdet = (self.config["tasks"][task] or {}).get("backend") == "mmdet"
        return "../envs/mmdet.yaml" if mmdet else "../envs/core.yaml"

    def dataset_tasks(self, dataset: str) -> list[str]:
        return [t for t in self.evaluated_tasks if dataset in self.task_datasets(t)]

    def task_rates(self, row: str) -> list[str]:
        """Rate points of a task row ("clean" for the reference images)."""
        return ["clean"] if row == "reference" else self.rates(row)

    def task_gpus(self, task: str) -> int:
        device = str(self.config["tasks"][task].get("device", "cpu"))
        return 1 if device.startswith("cuda") else 0

    def _grounding_detector(self) -> dict:
        """The detector grounding backend's checkpoint: given, or a task model the pipeline
        trains (``trained: <task_training entry>``)."""

        cfg = dict(grounding_config(self.config).get("detector") or {})
        trained = cfg.pop("trained", None)
        if trained:
            key = "semantics.grounding.detector.trained"
            cfg["checkpoint"] = str(self.trained_task_model(trained, key))
        if not cfg.get("checkpoint"):
            raise ConfigError(
                "config key semantics.grounding.detector: the detector backend needs a "
                "checkpoint (or trained: <task_training entry>)"
            )
        return cfg

    @property
    def grounding_gpus(self) -> int:

        cfg = grounding_config(self.config)
        device = str((cfg.get(cfg["backend"]) or {}).get("device", "cpu"))
        return 1 if device.startswith("cuda") else 0

    def rates(self, codec: str) -> list[str]:
        """Rate points of a codec or of a table row (``codec@consumer``)."""
        codec = codec.split("@")[0]
        return [str(r) for r in self.config["codecs"][codec].get("rates", [])]

    def codec_gpus(self, codec: str) -> int:
        """GPUs per encode/decode job: the config's ``gpus`` or the codec class default."""

        entry = self.config["codecs"][codec]
        return int(entry.get("gpus", self.codec(codec).gpus))

    def codec_gpu_model(self, codec: str) -> str:
        """The SLURM GPU model of a codec's GPU jobs ("" when it names none or uses no GPU)."""
        if not self.codec_gpus(codec):
            return ""
        return str(self.config["codecs"][codec].get("gpu_model", ""))

    def codec_group(self, codec: str) -> str:
        """The cluster group of a codec's shard jobs: ``codec_cpu``, ``codec_gpu``, or
        ``codec_gpu_<model>`` for GPU jobs that name a ``gpu_model`` (jobs of one group job
        must ask for one GPU model, so codecs on different models never share one)."""
        if not self.codec_gpus(codec):
            return "codec_cpu"
        model = self.codec_gpu_model(codec)
        return f"codec_gpu_{model}" if model else "codec_gpu"

    @property
    def anchor(self) -> str:
        return self.config.get("anchor") or self.codecs[0]

    @property
    def metrics(self) -> list[str]:
        """Metric columns of the tables (``fid`` -> ``fid``, ``fid_demo``, ...)."""

        return metric_columns(self.config)

    @cached_property
    def metric_status(self) -> dict[str, str]:
        """Column -> why it is not computed (its weight is not in the cache). Jobs get it as a
        param: fetching the weight later reruns exactly the jobs that can now compute it."""

        return metric_status(self.config, self.weights_cache)

    @property
    def plotted_metrics(self) -> list[str]:
        return [m for m in self.metrics if m not in self.metric_status]

    @property
    def human_metrics(self) -> list[str]:

        return [m for m in self.metrics if METRICS[m].kind != "fidelity"]

    @property
    def fid_feature_sets(self) -> list[str]:
        """Feature sets FID/KID are computed with (those whose weights are available)."""

        return [
            f
            for f in distribution_feature_sets(self.config)
            if not {f"fid{feature_suffix(f)}", f"kid{feature_suffix(f)}"} <= set(self.metric_status)
        ]

    def fid_protocol(self, dataset: str) -> dict:
        return fid_protocol(self.config["datasets"][dataset], dataset)

    @property
    def demo_features_model(self) -> Path | None:
        """The trained classifier of "FID (demo features)" (None without demo features)."""
        if "demo" not in self.fid_feature_sets:
            return None

        name = fid_config(self.config).get("demo")
        entries = self.config.get("classifier_training") or {}
        if not name or name not in entries:
            raise ConfigError(
                "config key fid.demo: FID with demo features needs the name of a "
                f"classifier_training entry (got {name!r}; classifier_training: "
                f"{', '.join(entries) or 'none'})"
            )
        return self.classifier_path(name)

    def has_annotations(self, dataset: str) -> bool:
        return get_dataset(dataset, self.config).has_annotations

    def loss_plot_models(self) -> list[str]:
        """Composition models a measured codec decodes with: their loss logs (prior and each
        λ_R) become a figure of the report."""
        used = {self.config["codecs"][c].get("trained") for c in self.discover_codecs}
        return [m for m in self.composition_models if m in used]

    def official_weight(self, codec: str, rate: str):
        """The official weight a codec's rate point loads from the cache, or None."""

        return self.codec(codec).official_weight(rate)

    def official_codec_weights(self, codec: str, rate: str) -> list:
        """Every cached weight a codec's rate point loads (e.g. a Hub prior's five parts)."""

        return self.codec(codec).official_weights(rate)

    def codec_weight_files(self, codec: str, rate: str) -> list[str]:
        """Weight files a codec job reads: trained by a rule, given in config, or the cached
        official file (fetched by the fetch_weight localrule on a machine with internet)."""
        entry = self.config["codecs"][codec]
        if "trained" in entry and entry["type"] == "discover":
            model = entry["trained"]
            files = [str(self.discover_weight_path(model, rate)), *self.discover_vae_inputs(model)]
            if model in self.composition_models:  # the sidecar written with the control dir
                files.append(str(self.discover_weight_path(model, rate).with_name(f"r{rate}.json")))
                if self.has_composition(codec):  # and the prior's
                    files += self.prior_inputs(model)
            return list(dict.fromkeys(files))
        if "trained" in entry:
            return [str(self.zoo_weight_path(entry["trained"], rate))]
        weights = {str(k): v for k, v in (entry.get("weights") or {}).items()}
        files = [weights[rate]] if rate in weights else []
        # official weights besides given ones (DISCOVER's SD VAE and prior from the Hub)
        specs = self.official_codec_weights(codec, rate)
        return files + [f"{self.weights_cache}/{spec.filename}" for spec in specs]
