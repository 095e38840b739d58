from pathlib import Path

from discover import stages
from discover.rule_context import rule_context

smk = snakemake
with rule_context(smk):
    # .../{row}/{rate}/{shard}.json -> prediction files grouped by rate
    predictions = {str(rate): [] for rate in smk.params.rates}
    for path in smk.input.predictions:
        predictions[Path(path).parent.name].append(path)
    stages.run_task_eval(
        smk.params.config,
        smk.wildcards.task,
        list(smk.input.reference),
        predictions,
        smk.output[0],
    )
