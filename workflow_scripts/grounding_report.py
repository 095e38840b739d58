from discover.rule_context import rule_context
from discover.stages.semantics import grounding_report

smk = snakemake
with rule_context(smk):
    grounding_report(
        smk.wildcards.task,
        list(smk.input.reference),
        list(smk.input.grounding),
        smk.output.examples,
        smk.output.histogram,
    )
