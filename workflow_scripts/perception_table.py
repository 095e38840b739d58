from discover.rule_context import rule_context
from discover.stages.perception import perception_tables

smk = snakemake
with rule_context(smk):
    perception_tables(
        smk.params.config,
        smk.wildcards.dataset,
        smk.input.rd,
        smk.input.bd,
        smk.output.csv,
        smk.output.md,
        metric_status=smk.params.metric_status,
    )
