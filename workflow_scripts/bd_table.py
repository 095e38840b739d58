from discover.rule_context import rule_context
from discover.stages.tables import bd_table

smk = snakemake
with rule_context(smk):
    bd_table(
        smk.input.rd,
        smk.output[0],
        dataset=smk.wildcards.dataset,
        anchor=smk.params.anchor,
        metrics=smk.params.metrics,
        bd_settings=smk.params.bd,
        metric_status=smk.params.metric_status,
        samples=smk.params.samples,
        reference_features=smk.params.reference_features,
    )
