from discover.rule_context import rule_context
from discover.stages.tables import combine_rd

smk = snakemake
with rule_context(smk):
    combine_rd(
        [str(p) for p in smk.input],
        smk.output[0],
        notes_csv=smk.output.notes,
        metric_status=smk.params.metric_status,
    )
