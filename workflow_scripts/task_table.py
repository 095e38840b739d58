from discover import stages
from discover.rule_context import rule_context

smk = snakemake
with rule_context(smk):
    stages.task_tables(
        smk.params.config,
        smk.wildcards.dataset,
        smk.input.bd,
        dict(zip(smk.params.tasks, smk.input.reference, strict=True)),
        smk.output.csv,
        smk.output.md,
    )
