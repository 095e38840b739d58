# Models the pipeline trains itself for the embedded default. Their outputs are committed under
# weights/ (with a JSON sidecar: spec, command, sha256), so a demo needs no training;
# `snakemake --forcerun train_zoo_model` reproduces them.


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
    script:
        "../workflow_scripts/train_zoo_model.py"


rule train_all:
    input:
        zoo_weight_targets(),
