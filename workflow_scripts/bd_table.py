from discover import stages
from discover.rule_context import rule_context

smk = snakemake
with rule_context(smk):
    config = {
        "anchor": smk.params.anchor,
        "bd": smk.params.bd,
        "metrics": smk.params.metrics,
        "metric_status": smk.params.metric_status,
        "codecs": {smk.params.anchor: {}},
    }
    stages.bd_table(config, smk.wildcards.dataset, smk.input[0], smk.output[0])
