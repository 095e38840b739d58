from pathlib import Path

from discover.metrics.distribution import row_fid_kid
from discover.rule_context import rule_context

smk = snakemake
with rule_context(smk):
    # .../{dataset}/{row}/{rate}/{shard} -> decoded shard folders grouped by rate
    decoded = {str(rate): [] for rate in smk.params.rates}
    for path in smk.input.decoded:
        decoded[Path(path).parent.name].append(path)
    row_fid_kid(
        smk.params.config,
        smk.params.protocol,
        list(smk.input.reference),
        decoded,
        dict(zip(smk.params.features, smk.input.features, strict=True)),
        smk.output.csv,
        demo_model=smk.input.get("model"),
        features_npz=smk.output.features,
        keep_features=smk.params.keep_features,
    )
