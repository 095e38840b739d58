from discover import stages
from discover.rule_context import rule_context

smk = snakemake
with rule_context(smk):
    stages.prepare_shard(
        smk.params.config, smk.wildcards.dataset, smk.wildcards.shard, smk.output[0]
    )
