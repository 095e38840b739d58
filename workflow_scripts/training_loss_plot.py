from discover.rule_context import rule_context
from discover.stages.training import training_loss_plot

smk = snakemake
with rule_context(smk):
    training_loss_plot(
        smk.wildcards.model,
        smk.input.prior[0] if smk.input.prior else None,
        dict(zip(smk.params.rates, smk.input.rates, strict=True)),
        smk.output.png,
        smk.output.pdf,
    )
