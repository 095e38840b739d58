# Datasets: preprocessed reference images per shard, and merged COCO annotations.


rule prepare_shard:
    message:
        "Preparing {wildcards.dataset} shard {wildcards.shard}"
    output:
        directory(f"{OUT}/{{dataset}}/reference/{{shard}}"),
    params:
        config=lambda wc: PLAN.dataset_job_config(wc.dataset),
    log:
        f"{OUT}/logs/prepare_shard/{{dataset}}/{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/prepare_shard/{{dataset}}/{{shard}}.tsv"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    conda:
        "../envs/core.yaml"
    script:
        "../workflow_scripts/prepare_shard.py"


rule merge_annotations:
    message:
        "Merging COCO annotations of {wildcards.dataset}"
    input:
        reference_shards,
    output:
        f"{OUT}/{{dataset}}/annotations.json",
    log:
        f"{OUT}/logs/merge_annotations/{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/merge_annotations/{{dataset}}.tsv"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    conda:
        "../envs/core.yaml"
    script:
        "../workflow_scripts/merge_annotations.py"
