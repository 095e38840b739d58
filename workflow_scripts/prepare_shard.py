from discover.rule_context import rule_context
from discover.stages.datasets import prepare_shard

smk = snakemake
with rule_context(smk):
    prepare_shard(smk.params.config, smk.wildcards.dataset, smk.wildcards.shard, smk.output[0])
