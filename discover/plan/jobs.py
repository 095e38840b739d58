"""Layer 4 of the plan: each job's config, narrowed to what the job depends on, so that
editing one codec or adding a rate reruns only the jobs it affects.
"""

from __future__ import annotations

from discover.codecs import get_codec
from discover.config import grounding_config
from discover.discover_codec.consumers import HUMAN, MACHINE
from discover.labels.config import label_cache_key
from discover.metrics import METRICS
from discover.plan.rows import Rows


class JobConfigs(Rows):
    def decode_views(self, codec: str) -> list[str]:
        """Viewers with a decode of their own of every DISCOVER row of ``codec``: ``human``,
        and ``machine`` when the composition samples another number of steps for machines."""
        views = self.__dict__.setdefault("_decode_views", {})
        if codec not in views:
            # the job's config: a trained entry's composition paths are filled in there
            job = self.codec_job_config(codec, str(self.rates(codec)[0]))
            views[codec] = get_codec(codec, job).decode_views()
        return views[codec]

    def decoded_dir(
        self, dataset: str, row: str, rate: str, shard: str, viewer: str = HUMAN
    ) -> str:
        """The decoded shard a viewer of a row looks at: a DISCOVER row's machine view has a
        directory of its own where its decodes differ from the human view's."""
        codec, _, consumer = row.partition("@")
        if viewer == MACHINE and consumer and MACHINE in self.decode_views(codec):
            return f"{self.out}/{dataset}/{row}/{rate}/{MACHINE}/{shard}"
        return f"{self.out}/{dataset}/{row}/{rate}/{shard}"

    def machine_view_rows(self, dataset: str) -> list[str]:
        """DISCOVER rows of a dataset decoded a second time for the task models that read them
        (their machine steps differ from the human ones)."""
        rows = {r for t in self.dataset_tasks(dataset) for r in self.task_rows(dataset, t)}
        return sorted(
            r for r in rows if "@" in r and MACHINE in self.decode_views(r.partition("@")[0])
        )

    def decode_reuse(
        self, codec: str, dataset: str, consumer: str, viewer: str = HUMAN
    ) -> str | None:
        """The consumer whose decoded images a DISCOVER consumer's decode for ``viewer`` may
        take: the first task consumer, for a later task (tasks whose grounding finds the same
        boxes receive the same bits; the decode job compares them per image)."""

        tasks = [c for c in self.consumers(codec, dataset) if c != HUMAN]
        return tasks[0] if consumer in tasks[1:] else None

    def decode_reuse_dirs(
        self, codec: str, dataset: str, consumer: str, rate: str, shard: str, viewer: str = HUMAN
    ) -> list[str]:
        """The decoded shard of :meth:`decode_reuse`'s consumer for the viewer (an input)."""
        other = self.decode_reuse(codec, dataset, consumer, viewer)
        if other is None:
            return []
        return [self.decoded_dir(dataset, f"{codec}@{other}", rate, shard, viewer)]

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
