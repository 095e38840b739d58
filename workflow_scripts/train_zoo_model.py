import os

from discover.rule_context import rule_context
from discover.training.zoo import train_zoo_model

smk = snakemake
with rule_context(smk):
    target = os.path.relpath(smk.output.model, os.path.join(smk.scriptdir, ".."))
    command = f"snakemake --cores 1 --forcerun train_zoo_model -- {target}"
    train_zoo_model(smk.output.model, smk.output.meta, smk.params.spec, smk.params.lmbda,
                    seed=smk.params.seed, log_csv=smk.output.losses, command=command)
