from pathlib import Path

from discover import stages
from discover.rule_context import rule_context

smk = snakemake
with rule_context(smk):
    # .../semantics/{dataset}/{task}/{shard}.json -> task: grounding file of this shard
    grounding = {Path(p).parent.name: p for p in smk.input.get("grounding", [])}
    stages.run_discover_encode(
        smk.params.config,
        smk.wildcards.codec,
        smk.wildcards.rate,
        smk.input.reference,
        smk.output.streams,
        threads=smk.threads,
        grounding=grounding,
        consumers=smk.params.consumers,
    )
