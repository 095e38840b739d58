from discover.rule_context import rule_context
from discover.stages.tables import run_visual_grid

smk = snakemake
with rule_context(smk):
    run_visual_grid(
        smk.wildcards.dataset,
        smk.params.rows,
        smk.input.reference,
        smk.input.rd,
        smk.output[0],
        grounding=smk.params.grounding,
        **smk.params.settings,
    )
