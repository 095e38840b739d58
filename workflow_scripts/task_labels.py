from discover.rule_context import rule_context
from discover.stages.semantics import run_task_labels

smk = snakemake
with rule_context(smk):
    run_task_labels(smk.config, smk.wildcards.task, smk.output[0])
