from discover import stages
from discover.rule_context import rule_context

with rule_context(snakemake):  # noqa: F821
    stages.merge_annotations(list(snakemake.input), snakemake.output[0])  # noqa: F821
