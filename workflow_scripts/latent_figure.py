from discover.rule_context import rule_context
from discover.stages.tables import run_latent_figure

smk = snakemake
with rule_context(smk):
    figure = smk.params.figure
    run_latent_figure(
        smk.params.config,
        figure["codec"],
        figure["rate"],
        figure["consumer"],
        smk.input.reference,
        smk.input.decoded,
        smk.output[0],
        image=figure["image"],
        threads=smk.threads,
    )
