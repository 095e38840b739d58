from discover.metrics.distribution import reference_features
from discover.rule_context import rule_context

smk = snakemake
with rule_context(smk):
    reference_features(
        smk.params.config,
        smk.wildcards.features,
        smk.params.protocol,
        list(smk.input.reference),
        smk.output[0],
        demo_model=smk.input.get("model"),
    )
