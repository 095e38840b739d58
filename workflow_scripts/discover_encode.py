from discover import stages
from discover.rule_context import rule_context

smk = snakemake
with rule_context(smk):
    stages.run_discover_encode(
        smk.params.config,
        smk.wildcards.codec,
        smk.wildcards.rate,
        smk.input.reference,
        smk.output.streams,
        threads=smk.threads,
    )
