from discover.rule_context import rule_context
from discover.stages.tasks import task_tables

smk = snakemake
with rule_context(smk):
    task_tables(
        smk.params.config,
        smk.wildcards.dataset,
        smk.input.bd,
        dict(zip(smk.params.tasks, smk.input.reference, strict=True)),
        smk.output.csv,
        smk.output.md,
        ablation_roles=smk.params.ablation_roles,
    )
