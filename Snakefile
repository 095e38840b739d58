# discover-bench: rate-distortion (and later task / perception) benchmarks of image codecs.
# Wiring only: every rule's work is a function in the `discover` package.

from snakemake.utils import min_version

min_version("9.0")


# The embedded default; a config given with --configfile replaces it instead of merging into it.
if not workflow.config_settings.configfiles:

    configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/datasets.smk"
include: "rules/codecs.smk"
include: "rules/semantics.smk"
include: "rules/discover.smk"
include: "rules/tables.smk"
include: "rules/perception.smk"
include: "rules/tasks.smk"
include: "rules/training.smk"
include: "rules/weights.smk"


report: "report/workflow.rst"


# Cheap aggregation runs where Snakemake runs (the login node on a cluster).
localrules:
    all,
    merge_annotations,
    aggregate_rd,
    import_published,
    combine_rd,
    bd_table,
    rd_plot,
    perception_table,
    task_table,
    ablation_plot,
    training_loss_plot,
    summary,
    discover_model_index,
    task_labels,
    grounding_report,
    fetch_weight,
    fetch_weights,
    train_all,


rule all:
    default_target: True
    input:
        final_targets(),
