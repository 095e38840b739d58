from discover import stages
from discover.rule_context import rule_context

smk = snakemake
with rule_context(smk):
    stages.ablation_plot(
        smk.wildcards.dataset,
        smk.wildcards.task,
        smk.params.task,
        smk.params.rows,
        smk.input.rd,
        smk.input.reference,
        smk.output.png,
        smk.output.pdf,
    )
