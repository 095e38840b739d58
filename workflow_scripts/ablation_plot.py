from discover.rule_context import rule_context
from discover.stages.tasks import ablation_plot

smk = snakemake
with rule_context(smk):
    ablation_plot(
        smk.wildcards.dataset,
        smk.wildcards.task,
        smk.params.task,
        smk.params.rows,
        smk.input.rd,
        smk.input.reference,
        smk.output.png,
        smk.output.pdf,
    )
