from pathlib import Path

from discover.rule_context import rule_context
from discover.weights import fetch

smk = snakemake
with rule_context(smk):
    fetch(smk.params.spec, Path(smk.output[0]).parent)
