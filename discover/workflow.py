"""Parse-time helpers for the Snakefile: what datasets, shards, codecs and rates exist.

Everything here is cheap (file listings, no pixels) so that ``snakemake -n`` on a paper-scale
config stays fast. Per-job parameters are narrowed to what the job depends on, so that editing one
codec or adding a rate only reruns the jobs it affects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from discover.datasets import get_dataset, shard_ids
from discover.errors import ConfigError

RESERVED_DATASET_NAMES = {"metrics", "tables", "plots", "logs", "benchmarks", "report", "semantics"}
RESERVED_CODEC_NAMES = {"reference"}


class Plan:
    def __init__(self, config: Mapping[str, Any], basedir: str | Path = "."):
        self.config = config
        #: committed small weights live in the repository, whatever the working directory
        self.weights_dir = _relative_to_cwd(
            Path(basedir) / config.get("trained_weights_dir", "weights")
        )
        self.out = config.get("output_dir", "results").rstrip("/")
        for name in config["datasets"]:
            if name in RESERVED_DATASET_NAMES:
                raise ConfigError(
                    f"config key datasets.{name}: the name {name!r} is reserved "
                    f"for outputs ({', '.join(sorted(RESERVED_DATASET_NAMES))})"
                )
        for name in config["codecs"]:
            if name in RESERVED_CODEC_NAMES:
                raise ConfigError(f"config key codecs.{name}: the name {name!r} is reserved")

    @cached_property
    def datasets(self) -> list[str]:
        return [n for n, e in self.config["datasets"].items() if e.get("evaluate", True)]

    @cached_property
    def _counts(self) -> dict[str, int]:
        return {n: len(get_dataset(n, self.config).list_items()) for n in self.datasets}

    def num_images(self, dataset: str) -> int:
        return self._counts[dataset]

    def shards(self, dataset: str) -> list[str]:
        return shard_ids(self._counts[dataset], self.config["shard_size"])

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

    # -- DISCOVER: one encode, one decode (and one table row) per consumer -----------------
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

    def consumers(self, codec: str, dataset: str) -> list[str]:
        from discover.codecs import get_codec
        from discover.semantics import needs_annotations

        if not self.runs_on(codec, dataset):
            return []
        consumers = get_codec(codec, self.config).consumers(
            self.has_annotations(dataset), needs_annotations(self.config)
        )
        # a task restricted to other datasets (tasks.<t>.datasets) has no stream to decode here
        tasks = self.config.get("tasks") or {}
        return [
            c
            for c in consumers
            if not (tasks.get(c) or {}).get("datasets") or dataset in tasks[c]["datasets"]
        ]

    def decode_reuse(self, codec: str, dataset: str, consumer: str) -> str | None:
        """The consumer whose decoded images a DISCOVER consumer's decode may take: the first
        task consumer, for a later task decoded with the same settings (tasks whose grounding
        finds the same boxes receive the same bits; the decode job compares them per image)."""
        from discover.codecs import get_codec

        tasks = [c for c in self.consumers(codec, dataset) if c != "human"]
        if consumer not in tasks[1:]:
            return None
        # the job's config: a trained entry's composition paths are filled in there
        c = get_codec(codec, self.codec_job_config(codec, str(self.rates(codec)[0])))
        return tasks[0] if c.decode_settings(consumer) == c.decode_settings(tasks[0]) else None

    def decode_reuse_dirs(
        self, codec: str, dataset: str, consumer: str, rate: str, shard: str
    ) -> list[str]:
        """The decoded shard of :meth:`decode_reuse`'s consumer (an input), or none."""
        other = self.decode_reuse(codec, dataset, consumer)
        return [] if other is None else [f"{self.out}/{dataset}/{codec}@{other}/{rate}/{shard}"]

    # -- machine-vision tasks -----------------------------------------------------------------
    @property
    def evaluated_tasks(self) -> list[str]:
        """Tasks with a model (``weights`` or ``trained``): their metrics join the tables."""
        return [
            t
            for t, cfg in (self.config.get("tasks") or {}).items()
            if (cfg or {}).get("weights") or (cfg or {}).get("trained")
        ]

    def task_kind(self, task: str) -> str:
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

    def task_rows(self, dataset: str, task: str) -> list[str]:
        """Rows a task is measured on: every measured codec; of DISCOVER, the task's own
        consumer and the human one (the full stream to the machine: "w/o disentanglement")."""
        rows = []
        for row in self.table_rows(dataset):
            codec, _, consumer = row.partition("@")
            if codec not in self.measured_codecs:
                continue
            if not consumer or consumer in (task, "human"):
                rows.append(row)
        return rows

    # -- ablation (paper Fig. 8) -----------------------------------------------------------------
    def has_composition(self, codec: str) -> bool:
        """A DISCOVER codec that decodes through the diffusion prior (its ``composition``
        section, or ``trained:`` naming a composition_training entry)."""
        entry = self.config["codecs"][codec]
        if entry.get("composition") is False:  # a composition-trained codec decoded by the VAE
            return False
        return bool(entry.get("composition")) or entry.get("trained") in self.composition_models

    def ablation_role(self, row: str, task: str) -> str | None:
        """What a task-table row is in the paper's ablation (Fig. 8), or None: DISCOVER's task
        stream with composition is the method itself; its full stream is "w/o
        disentanglement"; without composition the VAE decodes ẑ_c ("w/o composition");
        ``ablation.base`` names the base codec's row."""
        codec, _, consumer = row.partition("@")
        if codec == (self.config.get("ablation") or {}).get("base"):
            return "base codec"
        if codec not in self.discover_codecs or consumer not in (task, "human"):
            return None
        parts = []
        if not self.has_composition(codec):
            parts.append("w/o composition")
        if consumer == "human":
            parts.append("w/o disentanglement")
        return ", ".join(parts) or "DISCOVER"

    def ablation_rows(self, dataset: str, task: str) -> dict[str, str]:
        """Rows of a task's Fig. 8 plot on a dataset -> legend label (role, then the row)."""
        rows = {}
        for row in self.task_rows(dataset, task):
            role = self.ablation_role(row, task)
            if role is not None:
                rows[row] = f"{role} ({row})"
        return rows

    def ablation_datasets(self) -> list[tuple[str, str]]:
        """(dataset, task) pairs with a Fig. 8 plot: a DISCOVER codec decodes the task there."""
        return [
            (d, t)
            for d in self.datasets
            for t in self.dataset_tasks(d)
            if any(r.partition("@")[2] == t for r in self.ablation_rows(d, t))
        ]

    def tasks_for_row(self, dataset: str, row: str) -> list[str]:
        return [
            t
            for t in self.evaluated_tasks
            if dataset in self.task_datasets(t) and row in self.task_rows(dataset, t)
        ]

    def task_checkpoint(self, task: str) -> str | None:
        """The task model's checkpoint file (trained by the pipeline or given), or None for a
        torchvision weights name (read from the weights cache)."""
        from discover.tasks.models import is_weights_name

        cfg = self.config["tasks"][task]
        if cfg.get("trained"):
            return str(self.trained_task_model(cfg["trained"], f"tasks.{task}.trained"))
        weights = str(cfg["weights"])
        return None if is_weights_name(weights) and not Path(weights).is_file() else weights

    def trained_task_model(self, name: str, key: str) -> Path:
        """The checkpoint of the task_training entry ``name`` that config key ``key`` names."""
        if name not in (self.config.get("task_training") or {}):
            raise ConfigError(f"config key {key}: {name!r} is not a task_training entry")
        return self.task_model_path(name)

    def task_model_path(self, model: str) -> Path:
        return self.weights_dir / model / "model.pt"

    def task_weight_files(self, task: str) -> list[str]:
        from discover.tasks.models import required_weights

        cfg = self.config["tasks"][task]
        if cfg.get("backend") == "mmdet":  # an mmdet config + checkpoint (no sidecar)
            from discover.tasks.mmdet_backend import required_files

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

    def task_job_config(self, task: str) -> dict:
        cfg = {k: v for k, v in self.config["tasks"][task].items() if k not in ("trained",)}
        cfg.pop("description", None)
        cfg.pop("labels", None)
        cfg.pop("datasets", None)
        checkpoint = self.task_checkpoint(task)
        if checkpoint is not None:
            cfg["weights"] = checkpoint
        return {"tasks": {task: cfg}, "weights_cache": self.weights_cache}

    def task_metric_columns(self, dataset: str, row: str) -> list[str]:
        from discover.tasks.registry import resolve

        return [
            f"{t}_{m}"
            for t in self.tasks_for_row(dataset, row)
            for m in resolve(self.task_kind(t)).metrics
        ]

    def dataset_tasks(self, dataset: str) -> list[str]:
        return [t for t in self.evaluated_tasks if dataset in self.task_datasets(t)]

    def task_rates(self, row: str) -> list[str]:
        """Rate points of a task row ("clean" for the reference images)."""
        return ["clean"] if row == "reference" else self.rates(row)

    def task_gpus(self, task: str) -> int:
        device = str(self.config["tasks"][task].get("device", "cpu"))
        return 1 if device.startswith("cuda") else 0

    def table_metrics(self, dataset: str) -> list[str]:
        """Metric columns of a dataset's tables: the configured ones and its task metrics."""
        columns = list(self.metrics)
        for row in self.table_rows(dataset):
            for c in self.task_metric_columns(dataset, row):
                if c not in columns:
                    columns.append(c)
        return columns

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

    # -- semantics: labels per task, grounding per shard -------------------------------------
    def grounded_tasks(self, codec: str, dataset: str) -> list[str]:
        """Tasks of a DISCOVER codec whose masks come from the semantics stage on a dataset."""
        from discover.codecs import get_codec

        sources = get_codec(codec, self.config).tasks
        return [t for t in self.consumers(codec, dataset) if sources.get(t) == "grounding"]

    @property
    def semantic_tasks(self) -> list[str]:
        return sorted(
            {
                t
                for c in self.discover_codecs
                for d in self.datasets
                for t in self.grounded_tasks(c, d)
            }
        )

    def grounding_files(self, codec: str, dataset: str, shard: str) -> list[str]:
        return [
            f"{self.out}/semantics/{dataset}/{task}/{shard}.json"
            for task in self.grounded_tasks(codec, dataset)
        ]

    def label_cache_key(self, task: str) -> str:
        from discover.semantics import label_cache_key

        return label_cache_key(self.config, task)

    def grounding_job_config(self) -> dict:
        from discover.semantics import grounding_config

        cfg = grounding_config(self.config)
        # only the chosen backend's options: editing another backend's reruns nothing
        section = {k: v for k, v in cfg.items() if k in ("backend", "stride", cfg["backend"])}
        if cfg["backend"] == "detector":
            section["detector"] = self._grounding_detector()  # trained: <name> -> checkpoint
        return {"semantics": {"grounding": section}, "weights_cache": self.weights_cache}

    def _grounding_detector(self) -> dict:
        """The detector grounding backend's checkpoint: given, or a task model the pipeline
        trains (``trained: <task_training entry>``)."""
        from discover.semantics import grounding_config

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

    def grounding_weight_files(self) -> list[str]:
        """Files the grounding jobs read: the detector checkpoint and its sidecar, or the
        cached snapshot of a Hub model."""
        from discover.semantics import grounding_config

        cfg = grounding_config(self.config)
        if cfg["backend"] == "detector":
            checkpoint = self._grounding_detector()["checkpoint"]
            return [checkpoint, str(Path(checkpoint).with_suffix(".json"))]
        # a Hub model: its cache manifest (fetched by the fetch_weight localrule)
        return [
            f"{self.weights_cache}/{spec.filename}" for spec in self.semantics_weights("grounding")
        ]

    def label_weight_files(self) -> list[str]:
        return [
            f"{self.weights_cache}/{spec.filename}" for spec in self.semantics_weights("labels")
        ]

    @property
    def grounding_gpus(self) -> int:
        from discover.semantics import grounding_config

        cfg = grounding_config(self.config)
        device = str((cfg.get(cfg["backend"]) or {}).get("device", "cpu"))
        return 1 if device.startswith("cuda") else 0

    def check_semantics(self) -> None:
        """Fail before any job runs: tasks defined, stride equal to DISCOVER's latent stride."""
        from discover.codec.model import LATENT_STRIDE
        from discover.semantics import grounding_config, task_config

        tasks = self.semantic_tasks
        for task in tasks:
            task_config(self.config, task)
        stride = int(grounding_config(self.config)["stride"])
        if tasks and stride != LATENT_STRIDE:
            raise ConfigError(
                f"config key semantics.grounding.stride: DISCOVER's latent stride is "
                f"{LATENT_STRIDE}, got {stride}"
            )

    def table_rows(self, dataset: str) -> list[str]:
        """Rows of a dataset's tables: a codec, or ``codec@consumer`` for DISCOVER."""
        rows = []
        for c in self.codecs:
            if not self.runs_on(c, dataset):
                continue
            if c in self.discover_codecs:
                rows += [f"{c}@{k}" for k in self.consumers(c, dataset)]
            else:
                rows.append(c)
        return rows

    # -- figures ------------------------------------------------------------------------------
    def visual_grid_rows(self, dataset: str) -> dict[str, dict[str, list[str]]]:
        """Rows of the Fig. 7 grid (what a human sees: codecs and DISCOVER's full stream),
        rate -> [per-image metrics CSV, decoded folder] of the dataset's first shard."""
        out, shard = self.out, self.shards(dataset)[0]
        rows = {}
        for row in self.table_rows(dataset):
            codec, _, consumer = row.partition("@")
            if codec not in self.measured_codecs or consumer not in ("", "human"):
                continue
            rows[row] = {
                rate: [
                    f"{out}/metrics/{dataset}/{row}/{rate}/{shard}.csv",
                    f"{out}/{dataset}/{row}/{rate}/{shard}",
                ]
                for rate in self.rates(row)
            }
        return rows

    def visual_grid_inputs(self, dataset: str) -> list[str]:
        return [
            p
            for rates in self.visual_grid_rows(dataset).values()
            for v in rates.values()
            for p in v
        ]

    def visual_grid_settings(self, dataset: str) -> dict:
        cfg = self.config.get("visual_grid") or {}
        return {"image": cfg.get("image"), "bpp": cfg.get("bpp")}

    def visual_grid_datasets(self) -> list[str]:
        wanted = (self.config.get("visual_grid") or {}).get("datasets") or self.datasets
        return [d for d in self.datasets if d in wanted and self.visual_grid_rows(d)]

    @property
    def measured_rows(self) -> list[str]:
        rows = {r for d in self.datasets for r in self.table_rows(d)}
        return sorted(r for r in rows if r.split("@")[0] in self.measured_codecs)

    def row_entry(self, row: str) -> dict:
        """Rates and label of a table row (DISCOVER rows name their consumer)."""
        codec, _, consumer = row.partition("@")
        entry = self.config["codecs"][codec]
        label = entry.get("label", codec)
        if consumer:
            label = f"{label} [{consumer}]"
        return {"rates": entry["rates"], "label": label, "type": entry["type"]}

    @staticmethod
    def name_regex(names: list[str]) -> str:
        """A wildcard constraint matching exactly these names (nothing if empty)."""
        return "|".join(re.escape(n) for n in names) or "(?!x)x"

    def rates(self, codec: str) -> list[str]:
        """Rate points of a codec or of a table row (``codec@consumer``)."""
        codec = codec.split("@")[0]
        return [str(r) for r in self.config["codecs"][codec].get("rates", [])]

    def codec_gpus(self, codec: str) -> int:
        """GPUs per encode/decode job: the config's ``gpus`` or the codec class default."""
        from discover.codecs import get_codec

        entry = self.config["codecs"][codec]
        return int(entry.get("gpus", get_codec(codec, self.config).gpus))

    @property
    def anchor(self) -> str:
        return self.config.get("anchor") or self.codecs[0]

    @property
    def metrics(self) -> list[str]:
        """Metric columns of the tables (``fid`` -> ``fid``, ``fid_demo``, ...)."""
        from discover.metrics.catalog import metric_columns

        return metric_columns(self.config)

    @cached_property
    def metric_status(self) -> dict[str, str]:
        """Column -> why it is not computed (its weight is not in the cache). Jobs get it as a
        param: fetching the weight later reruns exactly the jobs that can now compute it."""
        from discover.metrics.catalog import metric_status

        return metric_status(self.config, self.weights_cache)

    @property
    def plotted_metrics(self) -> list[str]:
        return [m for m in self.metrics if m not in self.metric_status]

    @property
    def human_metrics(self) -> list[str]:
        from discover.metrics import METRICS

        return [m for m in self.metrics if METRICS[m].kind != "fidelity"]

    def metric_job_config(self, kinds: tuple[str, ...] | None = None) -> dict:
        """What a job computing or tabulating metrics depends on; ``kinds`` narrows the
        status to those metrics (a codec job does not rerun when Inception is fetched)."""
        from discover.metrics import METRICS

        keys = ("metrics", "perceptual", "seed", "anchor")
        job = {k: self.config[k] for k in keys if k in self.config}
        job["fid"] = {k: v for k, v in (self.config.get("fid") or {}).items() if k == "features"}
        job["metric_status"] = {
            m: why
            for m, why in self.metric_status.items()
            if kinds is None or METRICS[m].kind in kinds
        }
        job["weights_cache"] = self.weights_cache
        return job

    def per_image_job_config(self) -> dict:
        """What a codec job's per-image metrics depend on: adding FID or changing the anchor
        reruns no codec job."""
        from discover.metrics import METRICS

        per_image = [m for m in self.config.get("metrics", []) if METRICS[m].kind != "distribution"]
        job = {"metrics": per_image}
        if {"lpips", "dists"} & set(per_image):
            job["perceptual"] = self.config.get("perceptual", {})
            job["weights_cache"] = self.weights_cache
        status = self.metric_job_config(("fidelity", "perceptual"))["metric_status"]
        if status:
            job["metric_status"] = status
        return job

    def fid_job_config(self) -> dict:
        """What a FID/KID job depends on (not LPIPS/DISTS weights)."""
        job = {k: self.config[k] for k in ("fid", "seed") if k in self.config}
        job["weights_cache"] = self.weights_cache
        return job

    # -- FID / KID ---------------------------------------------------------------------------
    @property
    def fid_feature_sets(self) -> list[str]:
        """Feature sets FID/KID are computed with (those whose weights are available)."""
        from discover.metrics.catalog import distribution_feature_sets, feature_suffix

        return [
            f
            for f in distribution_feature_sets(self.config)
            if not {f"fid{feature_suffix(f)}", f"kid{feature_suffix(f)}"} <= set(self.metric_status)
        ]

    def fid_protocol(self, dataset: str) -> dict:
        from discover.metrics.distribution import fid_protocol

        return fid_protocol(self.config["datasets"][dataset], dataset)

    @property
    def demo_features_model(self) -> Path | None:
        """The trained classifier of "FID (demo features)" (None without demo features)."""
        if "demo" not in self.fid_feature_sets:
            return None
        from discover.metrics.catalog import fid_config

        name = fid_config(self.config).get("demo")
        if not name or name not in self.config.get("classifier_training", {}):
            raise ConfigError(
                "config key fid.demo: FID with demo features needs the name of a "
                f"classifier_training entry (got {name!r})"
            )
        return self.classifier_path(name)

    def classifier_path(self, model: str) -> Path:
        return self.weights_dir / model / "model.pth"

    def classifier_training_spec(self, model: str) -> dict:
        return dict(self.config["classifier_training"][model])

    def has_annotations(self, dataset: str) -> bool:
        return get_dataset(dataset, self.config).has_annotations

    # -- narrowed per-job configs ----------------------------------------------------------
    def dataset_job_config(self, dataset: str) -> dict:
        c = self.config
        return {
            "seed": c.get("seed", 0),
            "shard_size": c["shard_size"],
            "protocols": c.get("protocols", {}),
            "datasets": {dataset: c["datasets"][dataset]},
        }

    def codec_job_config(self, codec: str, rate: str) -> dict:
        entry = {
            k: v for k, v in self.config["codecs"][codec].items() if k not in ("rates", "label")
        }
        value = next(r for r in self.config["codecs"][codec]["rates"] if str(r) == rate)
        entry["rates"] = [value]
        if entry["type"] == "discover":
            from discover.semantics import needs_annotations

            entry["grounding_needs_annotations"] = needs_annotations(self.config)
        if "trained" in entry and entry["type"] == "discover":
            model = entry["trained"]
            entry["weights"] = {rate: str(self.discover_weight_path(model, rate))}
            entry["vae"] = str(self.discover_vae_dir(model))
            if entry.get("composition") is False:
                del entry["composition"]
            elif model in self.composition_models:
                entry["composition"] = {
                    **(entry.get("composition") or {}),
                    "prior": str(self.prior_dir(model)),
                    "control": str(self.control_dir(model)),
                }
        elif "trained" in entry:
            entry["weights"] = {rate: str(self.zoo_weight_path(entry.pop("trained"), rate))}
        if self.official_codec_weights(codec, rate) or "composition" in entry:
            entry["weights_cache"] = self.weights_cache
        return {"codecs": {codec: entry}, **self.per_image_job_config()}

    # -- weights ---------------------------------------------------------------------------
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

    # -- DISCOVER with composition trained by the pipeline (composition_training) --------------
    @property
    def composition_models(self) -> list[str]:
        return list(self.config.get("composition_training") or {})

    def loss_plot_models(self) -> list[str]:
        """Composition models a measured codec decodes with: their loss logs (prior and each
        λ_R) become a figure of the report."""
        used = {self.config["codecs"][c].get("trained") for c in self.discover_codecs}
        return [m for m in self.composition_models if m in used]

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

    def official_weight(self, codec: str, rate: str):
        """The official weight a codec's rate point loads from the cache, or None."""
        from discover.codecs import get_codec

        return get_codec(codec, self.config).official_weight(rate)

    def official_codec_weights(self, codec: str, rate: str) -> list:
        """Every cached weight a codec's rate point loads (e.g. a Hub prior's five parts)."""
        from discover.codecs import get_codec

        return get_codec(codec, self.config).official_weights(rate)

    def official_weights(self) -> dict:
        """Cache file name -> WeightSpec, for every configured official weight."""
        specs = {}
        for codec in self.measured_codecs:
            for rate in self.rates(codec):
                for spec in self.official_codec_weights(codec, rate):
                    specs[spec.filename] = spec
        from discover.metrics.catalog import official_metric_weights

        for spec in official_metric_weights(self.config) + self.semantics_weights():
            specs[spec.filename] = spec
        return specs

    def semantics_weights(self, part: str | None = None) -> list:
        """Hub models of the semantics stage that are not local directories (``part``:
        "grounding", "labels" or both): `snakemake fetch_weights` snapshots them."""
        from discover.grounding.grounding_dino import DEFAULT_MODEL
        from discover.semantics import grounding_config, label_config
        from discover.weights import hub_spec

        refs = []
        if self.semantic_tasks and part in (None, "grounding"):
            cfg = grounding_config(self.config)
            if cfg["backend"] == "grounding-dino":
                refs.append((cfg.get("grounding-dino") or {}).get("model", DEFAULT_MODEL))
        for task in self.semantic_tasks if part in (None, "labels") else []:
            labels = label_config(self.config, task)
            if labels["backend"] == "transformers":
                refs.append((labels.get("transformers") or {}).get("model"))
        specs = [hub_spec(str(r)) for r in refs if r and not Path(str(r)).expanduser().is_dir()]
        return list({spec.filename: spec for spec in specs}.values())

    def codec_weight_files(self, codec: str, rate: str) -> list[str]:
        """Weight files a codec job reads: trained by a rule, given in config, or the cached
        official file (fetched by the fetch_weight localrule on a machine with internet)."""
        entry = self.config["codecs"][codec]
        if "trained" in entry and entry["type"] == "discover":
            model = entry["trained"]
            vae_meta = self.discover_vae_dir(model).with_suffix(".json")
            files = [str(self.discover_weight_path(model, rate)), str(vae_meta)]
            if model in self.composition_models:  # the sidecar written with the control dir
                files.append(str(self.discover_weight_path(model, rate).with_name(f"r{rate}.json")))
                if self.has_composition(codec):  # and the prior's
                    files.append(str(self.prior_dir(model).with_suffix(".json")))
            return files
        if "trained" in entry:
            return [str(self.zoo_weight_path(entry["trained"], rate))]
        weights = {str(k): v for k, v in (entry.get("weights") or {}).items()}
        files = [weights[rate]] if rate in weights else []
        # official weights besides given ones (DISCOVER's SD VAE and prior from the Hub)
        specs = self.official_codec_weights(codec, rate)
        return files + [f"{self.weights_cache}/{spec.filename}" for spec in specs]

    def zoo_training_spec(self, model: str) -> dict:
        return dict(self.config["zoo_training"][model])

    def zoo_lambda(self, model: str, rate: str) -> float:
        lambdas = {str(k): v for k, v in self.config["zoo_training"][model]["lambdas"].items()}
        return float(lambdas[rate])

    def job_count(self) -> dict[str, int]:
        """Jobs of a full run by rule (what ``discover info`` prints)."""
        shards = sum(len(self.shards(d)) for d in self.datasets)
        counts = {
            "prepare_shard": shards,
            "codec_shard": sum(
                self.codec_shards(c) * len(self.rates(c)) for c in self.pipeline_codecs
            ),
            "discover_encode": sum(
                self.codec_shards(c) * len(self.rates(c)) for c in self.discover_codecs
            ),
            "discover_decode": sum(
                len(self.shards(d)) * len(self.rates(c)) * len(self.consumers(c, d))
                for d in self.datasets
                for c in self.discover_codecs
            ),
            "aggregate_rd": sum(
                len([r for r in self.table_rows(d) if r.split("@")[0] in self.measured_codecs])
                for d in self.datasets
            ),
            "import_published": sum(
                self.runs_on(c, d) for d in self.datasets for c in self.published_codecs
            ),
            "combine_rd": len(self.datasets),
            "bd_table": len(self.datasets),
            "rd_plot": sum(
                len([m for m in self.table_metrics(d) if m not in self.metric_status])
                for d in self.datasets
            ),
            "fid_reference": len(self.datasets) * len(self.fid_feature_sets),
            "fid_kid": sum(
                len([r for r in self.table_rows(d) if r.split("@")[0] in self.measured_codecs])
                for d in self.datasets
            )
            if self.fid_feature_sets
            else 0,
            "perception_table": len(self.datasets) if self.human_metrics else 0,
            "task_predict": sum(  # one job per (dataset, task, row, shard), all rates
                len(self.shards(d)) * (len(self.task_rows(d, t)) + 1)
                for t in self.evaluated_tasks
                for d in self.task_datasets(t)
            ),
            "task_eval": sum(
                len(self.task_rows(d, t)) + 1
                for t in self.evaluated_tasks
                for d in self.task_datasets(t)
            ),
            "task_table": sum(1 for d in self.datasets if self.dataset_tasks(d)),
            "task_labels": len(self.semantic_tasks),
            "grounding_report": sum(
                len({t for c in self.discover_codecs for t in self.grounded_tasks(c, d)})
                for d in self.datasets
            ),
            "ground_shard": sum(
                len(self.shards(d))
                * len({t for c in self.discover_codecs for t in self.grounded_tasks(c, d)})
                for d in self.datasets
            ),
            "merge_annotations": sum(self.has_annotations(d) for d in self.datasets),
            "visual_grid": len(self.visual_grid_datasets()),
            "ablation_plot": len(self.ablation_datasets()),
            "training_loss_plot": len(self.loss_plot_models()),
        }
        counts["all"] = 1
        counts["total"] = sum(counts.values())
        return counts


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


SNAKEFILE = Path(__file__).resolve().parent.parent / "Snakefile"


def snakemake_command(
    configfile: str | Path, *args: str, workdir: str | Path | None = None, cores: int | None = None
) -> list[str]:
    """argv running this repository's workflow on ``configfile`` with the current Python."""
    import sys

    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(SNAKEFILE),
        "--configfile",
        str(configfile),
    ]
    if workdir is not None:
        cmd += ["--directory", str(workdir)]
    if cores is not None:
        cmd += ["--cores", str(cores)]
    return cmd + list(args)
