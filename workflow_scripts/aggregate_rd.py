from discover.rule_context import rule_context
from discover.stages.tables import aggregate_rd

smk = snakemake
with rule_context(smk):
    aggregate_rd(
        smk.params.config,
        smk.wildcards.dataset,
        smk.wildcards.codec,
        smk.params.codec,
        smk.params.shards_by_rate,
        smk.output.rd,
        smk.output.per_image,
        fid_csv=smk.input.get("fid"),
        task_csvs=list(smk.input.get("tasks", [])),
        metric_status=smk.params.metric_status,
        flags=smk.params.flags,
    )
