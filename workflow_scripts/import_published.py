from discover.rule_context import rule_context
from discover.stages.tables import import_published

smk = snakemake
with rule_context(smk):
    config = {"codecs": {smk.wildcards.codec: smk.params.codec}, "metrics": smk.params.metrics}
    import_published(config, smk.wildcards.dataset, smk.wildcards.codec, smk.output.rd)
