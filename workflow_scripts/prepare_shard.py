from discover import stages
from discover.rule_context import rule_context

with rule_context(snakemake):  # noqa: F821
    stages.prepare_shard(snakemake.params.config, snakemake.wildcards.dataset,  # noqa: F821
                         snakemake.wildcards.shard, snakemake.output[0])  # noqa: F821
