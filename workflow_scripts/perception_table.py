from discover import stages
from discover.rule_context import rule_context

smk = snakemake
with rule_context(smk):
    stages.perception_tables(
        smk.params.config,
        smk.wildcards.dataset,
        smk.input.rd,
        smk.input.bd,
        smk.output.csv,
        smk.output.md,
    )
