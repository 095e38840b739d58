from pathlib import Path

from discover.rule_context import rule_context
from discover.stages.tasks import run_task_eval

smk = snakemake
with rule_context(smk):
    # .../{row}/{shard}/{rate}.json: the shards' prediction files per rate
    predictions = {
        str(rate): [str(Path(d) / f"{rate}.json") for d in smk.input.predictions]
        for rate in smk.params.rates
    }
    run_task_eval(
        smk.params.config,
        smk.wildcards.task,
        list(smk.input.reference),
        predictions,
        smk.output.csv,
        samples_dir=smk.output.samples,
        bootstrap=smk.params.bootstrap,
    )
