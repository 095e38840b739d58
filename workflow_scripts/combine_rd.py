from discover import stages
from discover.rule_context import rule_context

smk = snakemake
with rule_context(smk):
    stages.combine_rd(list(smk.input), smk.output[0])
