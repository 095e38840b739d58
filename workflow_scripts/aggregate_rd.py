from pathlib import Path

from discover import stages
from discover.rule_context import rule_context

smk = snakemake
with rule_context(smk):
    # .../metrics/{dataset}/{codec}/{rate}/{shard}.csv -> csvs grouped by rate
    by_rate: dict[str, list[str]] = {}
    for path in smk.input.shards:
        by_rate.setdefault(Path(path).parent.name, []).append(path)
    config = {"codecs": {smk.wildcards.codec: smk.params.codec}, **smk.params.config}
    stages.aggregate_rd(
        config,
        smk.wildcards.dataset,
        smk.wildcards.codec,
        by_rate,
        smk.output.rd,
        smk.output.per_image,
        fid_csv=smk.input.get("fid"),
        task_csvs=list(smk.input.get("tasks", [])),
    )
