# DISCOVER: one encode per image (a ỹ stream per distinct task mask + ẑ + the rest of ŷ), then
# a decode per consumer from the bytes that consumer receives (ẑ_c -> VAE decoder, or the
# generative composition when the codec entry has one), per viewer: the human metrics look at
# the human-step decode, task models at the machine-step one (paper §4.1.1: 8 steps for
# machine vision, 50 for human perception), which has a rule of its own where the steps differ.


rule discover_encode:
    input:
        reference=f"{OUT}/{{dataset}}/reference/{{shard}}",
        weights=lambda wc: PLAN.codec_weight_files(wc.codec, wc.rate),
        grounding=lambda wc: PLAN.grounding_files(wc.codec, wc.dataset, wc.shard),
    output:
        streams=directory(f"{OUT}/{{dataset}}/{{codec}}/{{rate}}/{{shard}}"),
    log:
        f"{OUT}/logs/discover_encode/{{dataset}}/{{codec}}/{{rate}}/{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/discover_encode/{{dataset}}/{{codec}}/{{rate}}/{{shard}}.tsv"
    wildcard_constraints:
        codec=PLAN.name_regex(PLAN.discover_codecs),
    group:
        lambda wc: PLAN.codec_group(wc.codec)
    conda:
        "../envs/codecs.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
        gpu=lambda wc: PLAN.codec_gpus(wc.codec),
        # one GPU model for a shard's encode and decodes (a stream decodes on its encoder's kind)
        gpu_model=lambda wc: PLAN.codec_gpu_model(wc.codec),
    params:
        config=lambda wc: PLAN.codec_job_config(wc.codec, wc.rate),
        consumers=lambda wc: PLAN.consumers(wc.codec, wc.dataset),
        grounding=lambda wc: PLAN.grounding_by_task(wc.codec, wc.dataset, wc.shard),
    message:
        "DISCOVER {wildcards.codec} @ λ_R={wildcards.rate}: encoding {wildcards.dataset}/{wildcards.shard}"
    script:
        "../workflow_scripts/discover_encode.py"


rule discover_decode:
    input:
        reference=f"{OUT}/{{dataset}}/reference/{{shard}}",
        streams=f"{OUT}/{{dataset}}/{{codec}}/{{rate}}/{{shard}}",
        weights=lambda wc: PLAN.codec_weight_files(wc.codec, wc.rate),
        # a later task's images that decode like the first task's are taken from its decode
        reuse=lambda wc: PLAN.decode_reuse_dirs(
            wc.codec, wc.dataset, wc.consumer, wc.rate, wc.shard, "human"
        ),
    output:
        decoded=directory(
            f"{OUT}/{{dataset}}/{{codec}}@{{consumer}}/{{rate}}/{{shard}}"
        ),
        metrics=f"{OUT}/metrics/{{dataset}}/{{codec}}@{{consumer}}/{{rate}}/{{shard}}.csv",
    log:
        f"{OUT}/logs/discover_decode/{{dataset}}/{{codec}}@{{consumer}}/{{rate}}/{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/discover_decode/{{dataset}}/{{codec}}@{{consumer}}/{{rate}}/{{shard}}.tsv"
    wildcard_constraints:
        codec=PLAN.name_regex(PLAN.discover_codecs),
        consumer="[A-Za-z0-9_.-]+",
    group:
        lambda wc: PLAN.codec_group(wc.codec)
    conda:
        "../envs/codecs.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
        gpu=lambda wc: PLAN.codec_gpus(wc.codec),
        # one GPU model for a shard's encode and decodes (a stream decodes on its encoder's kind)
        gpu_model=lambda wc: PLAN.codec_gpu_model(wc.codec),
    params:
        config=lambda wc: PLAN.codec_job_config(wc.codec, wc.rate),
        metric_status=PLAN.metric_status_of(("fidelity", "perceptual")),
        reuse=lambda wc: PLAN.decode_reuse(wc.codec, wc.dataset, wc.consumer, "human"),
        viewer="human",
    message:
        "DISCOVER {wildcards.codec} @ λ_R={wildcards.rate}: decoding for {wildcards.consumer} on {wildcards.dataset}/{wildcards.shard}"
    script:
        "../workflow_scripts/discover_decode.py"


# The machine view: the same cut, decoded with the composition's machine steps for task models.
use rule discover_decode as discover_decode_machine with:
    input:
        reference=f"{OUT}/{{dataset}}/reference/{{shard}}",
        streams=f"{OUT}/{{dataset}}/{{codec}}/{{rate}}/{{shard}}",
        weights=lambda wc: PLAN.codec_weight_files(wc.codec, wc.rate),
        reuse=lambda wc: PLAN.decode_reuse_dirs(
            wc.codec, wc.dataset, wc.consumer, wc.rate, wc.shard, "machine"
        ),
    output:
        decoded=directory(
            f"{OUT}/{{dataset}}/{{codec}}@{{consumer}}/{{rate}}/machine/{{shard}}"
        ),
    log:
        f"{OUT}/logs/discover_decode/{{dataset}}/{{codec}}@{{consumer}}/{{rate}}/machine/{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/discover_decode/{{dataset}}/{{codec}}@{{consumer}}/{{rate}}/machine/{{shard}}.tsv"
    params:
        config=lambda wc: PLAN.codec_job_config(wc.codec, wc.rate),
        metric_status=PLAN.metric_status_of(("fidelity", "perceptual")),
        reuse=lambda wc: PLAN.decode_reuse(wc.codec, wc.dataset, wc.consumer, "machine"),
        viewer="machine",
    message:
        "DISCOVER {wildcards.codec} @ λ_R={wildcards.rate}: decoding for {wildcards.consumer} on {wildcards.dataset}/{wildcards.shard}, machine view"
