from discover import stages
from discover.rule_context import rule_context

smk = snakemake
with rule_context(smk):
    config = {"codecs": {smk.wildcards.codec: smk.params.codec}, "metrics": smk.params.metrics}
    stages.import_published(config, smk.wildcards.dataset, smk.wildcards.codec, smk.output.rd)
