import pandas as pd

from discover.plots import METRIC_LABELS, rd_plot
from discover.rule_context import rule_context

smk = snakemake
with rule_context(smk):
    rd = pd.read_csv(smk.input[0], dtype={"rate": str})
    rd_plot(
        rd,
        smk.wildcards.metric,
        smk.output.png,
        smk.output.pdf,
        title=f"{smk.wildcards.dataset}: {METRIC_LABELS.get(smk.wildcards.metric, smk.wildcards.metric)} vs bpp",
        anchor=smk.params.anchor,
    )
