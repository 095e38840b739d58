"""Layer 4 of the plan: each job's config, narrowed to what the job depends on, so that
editing one codec or adding a rate reruns only the jobs it affects.
"""

from __future__ import annotations

from discover.codecs import get_codec
from discover.config import grounding_config
from discover.labels.config import label_cache_key
from discover.metrics import METRICS
from discover.plan.rows import Rows


class JobConfigs(Rows):
    def decode_reuse(self, codec: str, dataset: str, consumer: str) -> str | None:
        """The consumer whose decoded images a DISCOVER consumer's decode may take: the first
        task consumer, for a later task decoded with the same settings (tasks whose grounding
        finds the same boxes receive the same bits; the decode job compares them per image)."""

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

    def task_job_config(self, task: str) -> dict:
        cfg = {k: v for k, v in self.config["tasks"][task].items() if k not in ("trained",)}
        cfg.pop("description", None)
        cfg.pop("labels", None)
        cfg.pop("datasets", None)
        checkpoint = self.task_checkpoint(task)
        if checkpoint is not None:
            cfg["weights"] = checkpoint
        return {"tasks": {task: cfg}, "weights_cache": self.weights_cache}

    def label_cache_key(self, task: str) -> str:

        return label_cache_key(self.config, task)

    def grounding_job_config(self) -> dict:

        cfg = grounding_config(self.config)
        # only the chosen backend's options: editing another backend's reruns nothing
        section = {k: v for k, v in cfg.items() if k in ("backend", "stride", cfg["backend"])}
        if cfg["backend"] == "detector":
            section["detector"] = self._grounding_detector()  # trained: <name> -> checkpoint
        return {"semantics": {"grounding": section}, "weights_cache": self.weights_cache}

    def metric_job_config(self) -> dict:
        """What a job tabulating metrics depends on."""
        keys = ("metrics", "perceptual", "seed", "anchor")
        job = {k: self.config[k] for k in keys if k in self.config}
        job["fid"] = {k: v for k, v in (self.config.get("fid") or {}).items() if k == "features"}
        job["weights_cache"] = self.weights_cache
        return job

    def metric_status_of(self, kinds: tuple[str, ...] | None = None) -> dict[str, str]:
        """:attr:`metric_status` narrowed to metrics of ``kinds`` (a job's param: a codec job
        does not rerun when Inception is fetched)."""
        return {
            m: why
            for m, why in self.metric_status.items()
            if kinds is None or METRICS[m].kind in kinds
        }

    def per_image_job_config(self) -> dict:
        """What a codec job's per-image metrics depend on: adding FID or changing the anchor
        reruns no codec job."""

        per_image = [m for m in self.config.get("metrics", []) if METRICS[m].kind != "distribution"]
        job = {"metrics": per_image}
        if {"lpips", "dists"} & set(per_image):
            job["perceptual"] = self.config.get("perceptual", {})
            job["weights_cache"] = self.weights_cache
        return job

    def fid_job_config(self) -> dict:
        """What a FID/KID job depends on (not LPIPS/DISTS weights)."""
        job = {k: self.config[k] for k in ("fid", "seed") if k in self.config}
        job["weights_cache"] = self.weights_cache
        return job

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
        job = {"codecs": {codec: entry}, **self.per_image_job_config()}
        if self.official_codec_weights(codec, rate) or "composition" in entry:
            job["weights_cache"] = self.weights_cache
        return job
