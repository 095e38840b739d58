from discover import stages
from discover.rule_context import rule_context

smk = snakemake
with rule_context(smk):
    stages.run_visual_grid(
        smk.wildcards.dataset,
        smk.params.rows,
        smk.input.reference,
        smk.input.rd,
        smk.output[0],
        **smk.params.settings,
    )
