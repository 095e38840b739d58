from discover.rule_context import rule_context
from discover.stages.codecs import run_codec_shard

smk = snakemake
with rule_context(smk):
    run_codec_shard(
        smk.params.config,
        smk.wildcards.codec,
        smk.wildcards.rate,
        smk.input.reference,
        smk.output.streams,
        smk.output.metrics,
        threads=smk.threads,
        metric_status=smk.params.metric_status,
    )
