# Models the pipeline trains itself for the embedded default. Their outputs are committed under
# weights/ (with a JSON sidecar: spec, command, sha256), so a demo needs no training;
# `snakemake --forcerun train_zoo_model` reproduces them.
#
# `run:` rather than `script:` on purpose: Snakemake reruns a script rule whose outputs are older
# than its script file, and a fresh git clone gives committed weights and scripts arbitrary
# relative mtimes, which would retrain on every clone.


rule train_zoo_model:
    output:
        model=f"{PLAN.weights_dir}/{{model}}/q{{rate}}.pth.tar",
        meta=f"{PLAN.weights_dir}/{{model}}/q{{rate}}.json",
        losses=f"{PLAN.weights_dir}/{{model}}/q{{rate}}.losses.csv",
    log:
        f"{OUT}/logs/train_zoo_model/{{model}}/q{{rate}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_zoo_model/{{model}}/q{{rate}}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime", 4),
        gpu=0,
    params:
        spec=lambda wc: PLAN.zoo_training_spec(wc.model),
        lmbda=lambda wc: PLAN.zoo_lambda(wc.model, wc.rate),
        seed=config["seed"],
    message:
        "Training {wildcards.model} at rate {wildcards.rate}"
    run:
        import os
        from types import SimpleNamespace
        from discover.rule_context import rule_context
        from discover.training.zoo import train_zoo_model

        target = os.path.relpath(output.model, workflow.basedir)
        with rule_context(SimpleNamespace(threads=threads, log=log)):
            train_zoo_model(
                output.model,
                output.meta,
                params.spec,
                params.lmbda,
                seed=params.seed,
                log_csv=output.losses,
                command=f"snakemake --cores 1 --forcerun train_zoo_model -- {target}",
            )


rule train_all:
    input:
        zoo_weight_targets(),
