import pandas as pd

from discover.plots import METRIC_LABELS, rd_plot
from discover.rule_context import rule_context
from discover.stages.tables import plot_warning

smk = snakemake
with rule_context(smk):
    rd = pd.read_csv(smk.input[0], dtype={"rate": str})
    metric = smk.wildcards.metric
    title = f"{smk.wildcards.dataset}: {METRIC_LABELS.get(metric, metric)} vs bpp"
    rd_plot(
        rd,
        metric,
        smk.output.png,
        smk.output.pdf,
        title=title,
        anchor=smk.params.anchor,
        warning=plot_warning(rd, metric),
    )
