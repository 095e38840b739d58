from discover.rule_context import rule_context
from discover.stages.tables import combine_rd

smk = snakemake
with rule_context(smk):
    combine_rd(list(smk.input), smk.output[0])
