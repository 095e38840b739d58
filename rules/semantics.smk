# The semantics stage of DISCOVER: task labels once per task (a multimodal LLM, a local chat
# model or a static list; cached by what determines them), then per shard of images the labels
# present and their boxes. Grounding depends on dataset, task and labels only: a new codec or
# rate point never reruns it.


rule task_labels:
    input:
        PLAN.label_weight_files(),
    output:
        report(
            f"{OUT}/semantics/labels/{{task}}.json",
            caption="../report/task_labels.rst",
            category="Semantics",
            labels={"task": "{task}", "item": "label list"},
        ),
    log:
        f"{OUT}/logs/task_labels/{{task}}.log",
    benchmark:
        f"{OUT}/benchmarks/task_labels/{{task}}.tsv"
    wildcard_constraints:
        task=PLAN.name_regex(PLAN.semantic_tasks),
    conda:
        "../envs/semantics.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    params:
        # the only param: the backend's options (timeouts, retries) are read from the config
        # in the job, so changing them never calls the model again
        cache_key=lambda wc: PLAN.label_cache_key(wc.task),
    message:
        "Labels of task {wildcards.task} (cache key {params.cache_key})"
    script:
        "../workflow_scripts/task_labels.py"


rule ground_shard:
    input:
        reference=f"{OUT}/{{dataset}}/reference/{{shard}}",
        labels=f"{OUT}/semantics/labels/{{task}}.json",
        weights=[ancient(f) for f in PLAN.grounding_weight_files()],
    output:
        f"{OUT}/semantics/{{dataset}}/{{task}}/{{shard}}.json",
    log:
        f"{OUT}/logs/ground_shard/{{dataset}}/{{task}}/{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/ground_shard/{{dataset}}/{{task}}/{{shard}}.tsv"
    wildcard_constraints:
        task=PLAN.name_regex(PLAN.semantic_tasks),
    group:
        "semantics"
    conda:
        "../envs/semantics.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
        gpu=lambda wc: PLAN.grounding_gpus,
    params:
        config=PLAN.grounding_job_config(),
    message:
        "Grounding the labels of {wildcards.task} on {wildcards.dataset}/{wildcards.shard}"
    script:
        "../workflow_scripts/ground_shard.py"


rule grounding_report:
    input:
        reference=reference_shards,
        grounding=lambda wc: expand(
            f"{OUT}/semantics/{wc.dataset}/{wc.task}/{{shard}}.json",
            shard=PLAN.shards(wc.dataset),
        ),
    output:
        examples=report(
            f"{OUT}/plots/{{dataset}}/grounding_{{task}}.png",
            caption="../report/grounding.rst",
            category="Semantics",
            subcategory="{dataset}",
            labels={
                "dataset": "{dataset}",
                "task": "{task}",
                "plot": "grounded boxes",
            },
        ),
        histogram=report(
            f"{OUT}/plots/{{dataset}}/masked_fraction_{{task}}.png",
            caption="../report/grounding.rst",
            category="Semantics",
            subcategory="{dataset}",
            labels={
                "dataset": "{dataset}",
                "task": "{task}",
                "plot": "masked fraction",
            },
        ),
    log:
        f"{OUT}/logs/grounding_report/{{dataset}}/{{task}}.log",
    benchmark:
        f"{OUT}/benchmarks/grounding_report/{{dataset}}/{{task}}.tsv"
    wildcard_constraints:
        task=PLAN.name_regex(PLAN.semantic_tasks),
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    message:
        "Grounding report of {wildcards.task} on {wildcards.dataset}"
    script:
        "../workflow_scripts/grounding_report.py"
