from discover.rule_context import rule_context
from discover.stages.datasets import merge_annotations

smk = snakemake
with rule_context(smk):
    merge_annotations(list(smk.input), smk.output[0])
