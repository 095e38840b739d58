"""Parse-time helpers for the Snakefile: what datasets, shards, codecs and rates exist.

Everything here is cheap (file listings, no pixels) so that ``snakemake -n`` on a paper-scale
config stays fast. Per-job parameters are narrowed to what the job depends on, so that editing one
codec or adding a rate only reruns the jobs it affects.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from discover.datasets import get_dataset, shard_ids
from discover.errors import ConfigError

RESERVED_DATASET_NAMES = {"metrics", "tables", "plots", "logs", "benchmarks", "report"}
RESERVED_CODEC_NAMES = {"reference"}


class Plan:
    def __init__(self, config: Mapping[str, Any]):
        self.config = config
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
        return list(self.config["codecs"])

    def rates(self, codec: str) -> list[str]:
        return [str(r) for r in self.config["codecs"][codec]["rates"]]

    def codec_gpus(self, codec: str) -> int:
        """GPUs per encode/decode job: the config's ``gpus`` or the codec class default."""
        from discover.codecs import resolve

        entry = self.config["codecs"][codec]
        return int(entry.get("gpus", resolve(entry["type"]).gpus))

    @property
    def anchor(self) -> str:
        return self.config.get("anchor") or self.codecs[0]

    @property
    def metrics(self) -> list[str]:
        return list(self.config.get("metrics", ["psnr", "msssim"]))

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
        return {"codecs": {codec: entry}, "metrics": self.metrics}

    def job_count(self) -> dict[str, int]:
        """Jobs of a full run by rule (what ``discover info`` prints)."""
        n_rates = sum(len(self.rates(c)) for c in self.codecs)
        shards = sum(len(self.shards(d)) for d in self.datasets)
        counts = {
            "prepare_shard": shards,
            "codec_shard": shards * n_rates,
            "aggregate_rd": len(self.datasets) * len(self.codecs),
            "combine_rd": len(self.datasets),
            "bd_table": len(self.datasets),
            "rd_plot": len(self.datasets) * len(self.metrics),
            "merge_annotations": sum(self.has_annotations(d) for d in self.datasets),
        }
        counts["all"] = 1
        counts["total"] = sum(counts.values())
        return counts
