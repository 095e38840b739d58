from discover.rule_context import rule_context
from discover.stages.semantics import run_grounding

smk = snakemake
with rule_context(smk):
    run_grounding(smk.params.config, smk.input.reference, smk.input.labels, smk.output[0])
