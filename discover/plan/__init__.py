"""The run plan the Snakefile reads at parse time: what datasets, shards, codecs, rates, rows and
jobs exist. Cheap (file listings, no pixels), so that ``snakemake -n`` on a paper-scale config
stays fast.

Split by layer, each module building on the one below: ``weights`` (weight paths, training
specs) < ``catalog`` (datasets, codecs, rates, tasks, metrics) < ``rows`` (table rows,
consumers, figures) < ``jobs`` (per-job configs) < ``counts`` (:class:`Plan`, job counts).
"""

from discover.plan.counts import Plan
from discover.plan.run import SNAKEFILE, snakemake_command

__all__ = ["SNAKEFILE", "Plan", "snakemake_command"]
