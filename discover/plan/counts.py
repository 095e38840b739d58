"""Layer 5 of the plan: the whole plan, and the jobs a full run has per rule."""

from __future__ import annotations

from discover.plan.jobs import JobConfigs


class Plan(JobConfigs):
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
            "discover_decode_machine": sum(
                len(self.shards(d)) * len(self.rates(r))
                for d in self.datasets
                for r in self.machine_view_rows(d)
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
            "rd_plot": sum(len(self.plot_metrics(d)) for d in self.datasets),
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
            "latent_figure": sum(1 for d in self.datasets if self.latent_figure(d)),
            "ablation_plot": len(self.ablation_datasets()),
            "training_loss_plot": len(self.loss_plot_models()),
        }
        counts["summary"] = 1  # results/summary.html, every dataset on one page
        counts["all"] = 1
        counts["total"] = sum(counts.values())
        return counts
