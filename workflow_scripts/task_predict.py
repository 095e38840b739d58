from discover.rule_context import rule_context
from discover.stages.tasks import run_task_predict

smk = snakemake
with rule_context(smk):
    run_task_predict(
        smk.params.config,
        smk.wildcards.task,
        smk.input.reference,
        dict(zip(smk.params.rates, smk.input.images, strict=True)),
        smk.output[0],
    )
