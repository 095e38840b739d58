from discover import stages
from discover.rule_context import rule_context

smk = snakemake
with rule_context(smk):
    stages.training_loss_plot(
        smk.wildcards.model,
        smk.input.prior,
        dict(zip(smk.params.rates, smk.input.rates, strict=True)),
        smk.output.png,
        smk.output.pdf,
    )
