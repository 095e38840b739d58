# Encode + decode one shard of a dataset with one codec at one rate point; per-image bits and
# fidelity metrics are measured in the same job (the images are already in memory).


rule codec_shard:
    input:
        reference=f"{OUT}/{{dataset}}/reference/{{shard}}",
        weights=lambda wc: PLAN.codec_weight_files(wc.codec, wc.rate),
    output:
        streams=directory(f"{OUT}/{{dataset}}/{{codec}}/{{rate}}/{{shard}}"),
        metrics=f"{OUT}/metrics/{{dataset}}/{{codec}}/{{rate}}/{{shard}}.csv",
    log:
        f"{OUT}/logs/codec_shard/{{dataset}}/{{codec}}/{{rate}}/{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/codec_shard/{{dataset}}/{{codec}}/{{rate}}/{{shard}}.tsv"
    wildcard_constraints:
        codec=PLAN.name_regex(PLAN.pipeline_codecs),
    group:
        # on a cluster, batch shards into one job; GPU and CPU codecs never share a job
        lambda wc: PLAN.codec_group(wc.codec)
    conda:
        "../envs/codecs.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
        gpu=lambda wc: PLAN.codec_gpus(wc.codec),
        # every job of a group job asks for the same GPU model ("" for none)
        gpu_model=lambda wc: PLAN.codec_gpu_model(wc.codec),
    params:
        config=lambda wc: PLAN.codec_job_config(wc.codec, wc.rate),
        metric_status=PLAN.metric_status_of(("fidelity", "perceptual")),
    message:
        "{wildcards.codec} @ {wildcards.rate} on {wildcards.dataset}/{wildcards.shard}"
    script:
        "../workflow_scripts/codec_shard.py"
