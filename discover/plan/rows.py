"""Layer 3 of the plan: table rows (a codec, or ``codec@consumer`` for DISCOVER), the tasks
and figures measured on each, and the semantics stage's tasks.
"""

from __future__ import annotations

from pathlib import Path

from discover.config import grounding_config, needs_annotations
from discover.discover_codec.consumers import HUMAN
from discover.discover_codec.geometry import LATENT_STRIDE
from discover.errors import ConfigError
from discover.grounding.base import DEFAULT_MODEL
from discover.labels.config import label_config, task_config
from discover.metrics.catalog import official_metric_weights
from discover.plan.catalog import Catalog
from discover.tasks.registry import resolve
from discover.tasks.weight_files import required_weights
from discover.weights import hub_spec


class Rows(Catalog):
    def consumers(self, codec: str, dataset: str) -> list[str]:

        if not self.runs_on(codec, dataset):
            return []
        consumers = self.codec(codec).consumers(
            self.has_annotations(dataset), needs_annotations(self.config)
        )
        # a container carries the streams of the tasks evaluated on its dataset: an evaluated
        # task on the datasets it is measured on, another one where tasks.<t>.datasets allows
        tasks = self.config.get("tasks") or {}
        evaluated = set(self.evaluated_tasks)

        def here(c: str) -> bool:
            if c in evaluated:
                return dataset in self.task_datasets(c)
            return not (tasks.get(c) or {}).get("datasets") or dataset in tasks[c]["datasets"]

        return [c for c in consumers if c == HUMAN or here(c)]

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

    def row_metric_csvs(self, dataset: str, row: str) -> dict[str, list[str]]:
        """Rate -> the per-image metric CSVs of a row's shards (what aggregate_rd reads)."""
        return {
            rate: [
                f"{self.out}/metrics/{dataset}/{row}/{rate}/{shard}.csv"
                for shard in self.shards(dataset)
            ]
            for rate in self.rates(row)
        }

    def ablation_roles(self, dataset: str) -> dict[str, str]:
        """Row -> its role in the paper's ablation, for the task table of a dataset."""
        return {
            row: role
            for t in self.dataset_tasks(dataset)
            for row in self.task_rows(dataset, t)
            if (role := self.ablation_role(row, t))
        }

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

    def task_metric_columns(self, dataset: str, row: str) -> list[str]:

        return [
            f"{t}_{m}"
            for t in self.tasks_for_row(dataset, row)
            for m in resolve(self.task_kind(t)).metrics
        ]

    def table_metrics(self, dataset: str) -> list[str]:
        """Metric columns of a dataset's tables: the configured ones and its task metrics."""
        columns = list(self.metrics)
        for row in self.table_rows(dataset):
            for c in self.task_metric_columns(dataset, row):
                if c not in columns:
                    columns.append(c)
        return columns

    def plot_metrics(self, dataset: str) -> list[str]:
        """Metrics with an RD plot of their own: the configured ones and each task's headline
        metric (its first: bbox AP, segm AP, top-1). Our choice: the AP variants (AP50, AP75,
        by object size) rest on few objects of a size class in a small set; they stay in
        rd.csv and bd.csv."""
        columns = list(self.metrics)
        for row in self.table_rows(dataset):
            for t in self.tasks_for_row(dataset, row):
                column = f"{t}_{resolve(self.task_kind(t)).metrics[0]}"
                if column not in columns:
                    columns.append(column)
        return [m for m in columns if m not in self.metric_status]

    def grounded_tasks(self, codec: str, dataset: str) -> list[str]:
        """Tasks of a DISCOVER codec whose masks come from the semantics stage on a dataset."""

        sources = self.codec(codec).tasks
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

    def grounding_by_task(self, codec: str, dataset: str, shard: str) -> dict[str, str]:
        """Task -> the shard's grounding file, for each grounded task of a DISCOVER codec."""
        return {
            task: f"{self.out}/semantics/{dataset}/{task}/{shard}.json"
            for task in self.grounded_tasks(codec, dataset)
        }

    def grounding_files(self, codec: str, dataset: str, shard: str) -> list[str]:
        return list(self.grounding_by_task(codec, dataset, shard).values())

    def grounding_weight_files(self) -> list[str]:
        """Files the grounding jobs read: the detector checkpoint and its sidecar, or the
        cached snapshot of a Hub model."""

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

    def check_semantics(self) -> None:
        """Fail before any job runs: tasks defined, stride equal to DISCOVER's latent stride."""
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

    def visual_grid_rows(self, dataset: str) -> dict[str, dict[str, list[str]]]:
        """Rows of the Fig. 7 grid, in the order of its panels: the codecs, then per DISCOVER
        codec the stream of each grounded task ("Ours (Detection)") and the full stream
        ("Ours (Full)"), each as the human viewer sees it; rate -> [per-image metrics CSV,
        decoded folder] of the dataset's first shard."""
        out, shard = self.out, self.shards(dataset)[0]
        table = self.table_rows(dataset)
        codecs, discover = [], []
        for row in table:
            codec, _, consumer = row.partition("@")
            if codec not in self.measured_codecs:
                continue
            if not consumer:
                codecs.append(row)
            elif not any(r.startswith(f"{codec}@") for r in discover):
                discover += [f"{codec}@{t}" for t in self.grounded_tasks(codec, dataset)]
                discover += [f"{codec}@{HUMAN}"] if f"{codec}@{HUMAN}" in table else []
        return {
            row: {
                rate: [
                    f"{out}/metrics/{dataset}/{row}/{rate}/{shard}.csv",
                    f"{out}/{dataset}/{row}/{rate}/{shard}",  # the human view
                ]
                for rate in self.rates(row)
            }
            for row in codecs + discover
        }

    def visual_grid_grounding(self, dataset: str) -> dict[str, str]:
        """Task -> the grounding file of the dataset's first shard, for each task whose stream
        the Fig. 7 grid shows ("Ground Truth (Detection)": the grounded boxes)."""
        shard = self.shards(dataset)[0]
        files = {}
        for row in self.visual_grid_rows(dataset):
            codec, _, consumer = row.partition("@")
            if consumer and consumer != HUMAN:
                files.setdefault(consumer, self.grounding_by_task(codec, dataset, shard)[consumer])
        return files

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

    def latent_figure(self, dataset: str) -> dict | None:
        """The Fig. 4 figure of a dataset (the latents of the composition), or None where no
        DISCOVER codec with composition runs: the first such codec, at its middle rate point
        (our choice), on the stream of its first task there (the paper's Fig. 4 composes from
        "the partial task-related compressed latent ỹ_i"; the full stream without a task), for
        the grid's image; the human view of that row, the decode the figure's x̂ equals."""
        shard = self.shards(dataset)[0]
        for codec in self.discover_codecs:
            if not self.runs_on(codec, dataset) or not self.has_composition(codec):
                continue
            consumers = self.consumers(codec, dataset)
            tasks = [c for c in consumers if c != HUMAN]
            consumer = tasks[0] if tasks else HUMAN
            rates = self.rates(codec)
            rate = rates[len(rates) // 2]
            row = f"{codec}@{consumer}"
            return {
                "codec": codec,
                "rate": rate,
                "consumer": consumer,
                "row": row,
                "shard": shard,
                "decoded": f"{self.out}/{dataset}/{row}/{rate}/{shard}",  # human view
                "image": self.visual_grid_settings(dataset)["image"],
            }
        return None

    @property
    def bootstrap_on(self) -> bool:
        """Whether BD cells get bootstrap intervals (``bd.bootstrap.resamples`` > 0)."""
        return int(self.config["bd"]["bootstrap"]["resamples"]) > 0

    def bootstrap_samples(self, dataset: str) -> dict[str, dict]:
        """What the BD table's bootstrap (``bd.bootstrap``) reads per measured row of a
        dataset: its ``per_image`` CSV, per evaluated task its ``tasks`` samples folder, and
        its FID/KID ``features``; empty when the bootstrap is off."""
        if not self.bootstrap_on:
            return {}
        out = {}
        for row in self.table_rows(dataset):
            if row.split("@")[0] not in self.measured_codecs:
                continue
            out[row] = {
                "per_image": f"{self.out}/metrics/{dataset}/{row}/per_image.csv",
                "tasks": {
                    t: f"{self.out}/metrics/{dataset}/tasks/{t}/{row}.samples"
                    for t in self.tasks_for_row(dataset, row)
                },
                "features": (
                    f"{self.out}/metrics/{dataset}/fid/{row}.features.npz"
                    if self.fid_feature_sets
                    else None
                ),
            }
        return out

    def bootstrap_reference_features(self, dataset: str) -> dict[str, str]:
        """Feature set -> the reference features the FID/KID bootstrap resamples."""
        if not self.bootstrap_samples(dataset):
            return {}
        return {
            f: f"{self.out}/metrics/{dataset}/fid/reference.{f}.npy" for f in self.fid_feature_sets
        }

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

    def official_weights(self) -> dict:
        """Cache file name -> WeightSpec, for every configured official weight."""
        specs = {}
        for codec in self.measured_codecs:
            for rate in self.rates(codec):
                for spec in self.official_codec_weights(codec, rate):
                    specs[spec.filename] = spec

        for spec in official_metric_weights(self.config) + self.semantics_weights():
            specs[spec.filename] = spec
        for spec in self.training_hub_specs():  # a pretrained prior or VAE the train rules read
            specs[spec.filename] = spec
        for task in self.evaluated_tasks:  # torchvision weights names (COCO_V1, IMAGENET1K_V1)
            if (self.config["tasks"][task] or {}).get("backend") != "mmdet":
                for spec in required_weights(self.config["tasks"][task]):
                    specs[spec.filename] = spec
        return specs

    def semantics_weights(self, part: str | None = None) -> list:
        """Hub models of the semantics stage that are not local directories (``part``:
        "grounding", "labels" or both): `snakemake fetch_weights` snapshots them."""
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

    def summary_sections(self) -> list[dict]:
        """What results/summary.html shows per dataset (discover.stages.summary): its
        headline tables, the headline figures (PSNR, each task's headline metric and the
        first FID against bpp, the visual grid), then every other figure."""
        sections = []
        for ds in self.datasets:
            plots = self.plot_metrics(ds)
            first = [m for m in plots if m == "psnr" or m not in self.metrics]
            first += [m for m in plots if m.startswith("fid")][:1]

            def rd(metric: str, ds: str = ds) -> tuple[str, str]:
                return f"{self.out}/plots/{ds}/rd_{metric}.png", f"{metric} vs bpp"

            headline = [rd(m) for m in first]
            more = [rd(m) for m in plots if m not in first]
            if ds in self.visual_grid_datasets():
                headline.append((f"{self.out}/plots/{ds}/visual_grid.png", "visual comparison"))
            if self.latent_figure(ds):
                more.append((f"{self.out}/plots/{ds}/latent_figure.png", "composition latents"))
            for d, task in self.ablation_datasets():
                if d == ds:
                    more.append(
                        (f"{self.out}/plots/{ds}/ablation_{task}.png", f"ablation ({task})")
                    )
            grounded = {t for c in self.discover_codecs for t in self.grounded_tasks(c, ds)}
            for task in sorted(grounded):
                for figure in ("grounding", "masked_fraction"):
                    path = f"{self.out}/plots/{ds}/{figure}_{task}.png"
                    more.append((path, f"{figure.replace('_', ' ')} ({task})"))
            tables = []
            if self.dataset_tasks(ds):
                tables.append(f"{self.out}/tables/{ds}/tasks.md")
            if self.human_metrics:
                tables.append(f"{self.out}/tables/{ds}/perception.md")
            sections.append(
                {
                    "name": ds,
                    "anchor": self.anchor,
                    "metrics": [m for m in self.metrics if m not in self.metric_status],
                    "bd_csv": f"{self.out}/tables/{ds}/bd.csv",
                    "tables": tables,
                    "headline": headline,
                    "more": more,
                    "csvs": [f"{self.out}/tables/{ds}/rd.csv", f"{self.out}/tables/{ds}/bd.csv"],
                }
            )
        return sections
