# Datasets: preprocessed reference images per shard, and merged COCO annotations.


rule prepare_shard:
    output:
        directory(f"{OUT}/{{dataset}}/reference/{{shard}}"),
    log:
        f"{OUT}/logs/prepare_shard/{{dataset}}/{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/prepare_shard/{{dataset}}/{{shard}}.tsv"
    group:
        "prepare"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    params:
        config=lambda wc: PLAN.dataset_job_config(wc.dataset),
    message:
        "Preparing {wildcards.dataset} shard {wildcards.shard}"
    script:
        "../workflow_scripts/prepare_shard.py"


rule merge_annotations:
    input:
        reference_shards,
    output:
        f"{OUT}/{{dataset}}/annotations.json",
    log:
        f"{OUT}/logs/merge_annotations/{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/merge_annotations/{{dataset}}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    message:
        "Merging COCO annotations of {wildcards.dataset}"
    script:
        "../workflow_scripts/merge_annotations.py"
