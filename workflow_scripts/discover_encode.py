from discover.rule_context import rule_context
from discover.stages.discover import run_discover_encode

smk = snakemake
with rule_context(smk):
    run_discover_encode(
        smk.params.config,
        smk.wildcards.codec,
        smk.wildcards.rate,
        smk.input.reference,
        smk.output.streams,
        consumers=smk.params.consumers,
        threads=smk.threads,
        grounding=smk.params.grounding,
    )
