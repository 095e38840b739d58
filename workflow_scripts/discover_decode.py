from discover.rule_context import rule_context
from discover.stages.discover import run_discover_decode

smk = snakemake
with rule_context(smk):
    run_discover_decode(
        smk.params.config,
        smk.wildcards.codec,
        smk.wildcards.rate,
        smk.wildcards.consumer,
        smk.input.reference,
        smk.input.streams,
        smk.output.decoded,
        smk.output.get("metrics"),
        threads=smk.threads,
        metric_status=smk.params.metric_status,
        reuse=(smk.params.reuse, smk.input.reuse[0]) if smk.params.reuse else None,
        viewer=smk.params.viewer,
    )
