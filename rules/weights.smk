# The weights cache: official pretrained files are downloaded on the machine Snakemake runs on
# (a login node with internet on a cluster); compute jobs only read the cache.


rule fetch_weight:
    output:
        f"{PLAN.weights_cache}/{{filename}}",
    log:
        f"{OUT}/logs/fetch_weight/{{filename}}.log",
    benchmark:
        f"{OUT}/benchmarks/fetch_weight/{{filename}}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    params:
        spec=lambda wc: PLAN.official_weights()[wc.filename],
    message:
        "Fetching {wildcards.filename} into the weights cache"
    script:
        "../workflow_scripts/fetch_weight.py"


rule fetch_weights:
    input:
        [f"{PLAN.weights_cache}/{name}" for name in PLAN.official_weights()],
