from discover import stages
from discover.rule_context import rule_context

smk = snakemake
with rule_context(smk):
    stages.run_discover_decode(
        smk.params.config,
        smk.wildcards.codec,
        smk.wildcards.rate,
        smk.wildcards.consumer,
        smk.input.reference,
        smk.input.streams,
        smk.output.decoded,
        smk.output.metrics,
        threads=smk.threads,
        reuse=(smk.params.reuse, smk.input.reuse[0]) if smk.params.reuse else None,
    )
