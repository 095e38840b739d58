# Machine-vision tasks on decoded images: predictions per (dataset, task, row, shard), one file
# per rate point (the model is loaded once for all of them), saved so that metrics can be
# recomputed without the model; metrics per (dataset, task, row); the "uncompressed" reference
# row; the task table per dataset (BD-rate per task; the paper shows these comparisons as the
# curves of its Fig. 5).


rule task_predict:
    input:
        unpack(task_predict_inputs),
    output:
        directory(f"{OUT}/tasks/{{dataset}}/{{task}}/{{row}}/{{shard}}"),
    log:
        f"{OUT}/logs/task_predict/{{dataset}}/{{task}}/{{row}}/{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/task_predict/{{dataset}}/{{task}}/{{row}}/{{shard}}.tsv"
    wildcard_constraints:
        task=PLAN.name_regex(PLAN.evaluated_tasks),
        row=PLAN.name_regex([*PLAN.measured_rows, "reference"]),
    group:
        "tasks"
    conda:
        lambda wc: PLAN.task_env(wc.task)
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
        gpu=lambda wc: PLAN.task_gpus(wc.task),
    params:
        config=lambda wc: PLAN.task_job_config(wc.task),
        rates=lambda wc: PLAN.task_rates(wc.row),
    message:
        "{wildcards.task} on {wildcards.row}, {wildcards.dataset}/{wildcards.shard}"
    script:
        "../workflow_scripts/task_predict.py"


rule task_eval:
    input:
        unpack(task_eval_inputs),
    output:
        csv=f"{OUT}/metrics/{{dataset}}/tasks/{{task}}/{{row}}.csv",
        # per-image matches / hits, for the BD table's bootstrap (bd.bootstrap)
        samples=directory(f"{OUT}/metrics/{{dataset}}/tasks/{{task}}/{{row}}.samples"),
    log:
        f"{OUT}/logs/task_eval/{{dataset}}/{{task}}/{{row}}.log",
    benchmark:
        f"{OUT}/benchmarks/task_eval/{{dataset}}/{{task}}/{{row}}.tsv"
    wildcard_constraints:
        task=PLAN.name_regex(PLAN.evaluated_tasks),
        row=PLAN.name_regex([*PLAN.measured_rows, "reference"]),
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    params:
        config=lambda wc: PLAN.task_job_config(wc.task),
        rates=lambda wc: PLAN.task_rates(wc.row),
        bootstrap=lambda wc: wc.row != "reference" and PLAN.bootstrap_on,
    message:
        "{wildcards.task} metrics of {wildcards.row} on {wildcards.dataset}"
    script:
        "../workflow_scripts/task_eval.py"


rule task_table:
    input:
        bd=f"{OUT}/tables/{{dataset}}/bd.csv",
        reference=lambda wc: [
            f"{OUT}/metrics/{wc.dataset}/tasks/{t}/reference.csv"
            for t in PLAN.dataset_tasks(wc.dataset)
        ],
    output:
        csv=f"{OUT}/tables/{{dataset}}/tasks.csv",
        md=f"{OUT}/tables/{{dataset}}/tasks.md",
    log:
        f"{OUT}/logs/task_table/{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/task_table/{{dataset}}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    params:
        config=lambda wc: {
            "anchor": PLAN.anchor,
            "bd": config["bd"],
            "tasks": {
                t: PLAN.task_job_config(t)["tasks"][t]
                for t in PLAN.dataset_tasks(wc.dataset)
            },
        },
        ablation_roles=lambda wc: PLAN.ablation_roles(wc.dataset),
        tasks=lambda wc: PLAN.dataset_tasks(wc.dataset),
    message:
        "Machine-task table of {wildcards.dataset}"
    script:
        "../workflow_scripts/task_table.py"


# Paper Fig. 8: a task's headline metric vs bpp for DISCOVER with and without composition and
# disentanglement (and ablation.base), with the uncompressed images' score as a line.
rule ablation_plot:
    input:
        rd=f"{OUT}/tables/{{dataset}}/rd.csv",
        reference=f"{OUT}/metrics/{{dataset}}/tasks/{{task}}/reference.csv",
    output:
        png=report(
            f"{OUT}/plots/{{dataset}}/ablation_{{task}}.png",
            caption="../report/ablation_plot.rst",
            category="Machine tasks",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "plot": "ablation {task}"},
        ),
        pdf=f"{OUT}/plots/{{dataset}}/ablation_{{task}}.pdf",
    log:
        f"{OUT}/logs/ablation_plot/{{dataset}}/{{task}}.log",
    benchmark:
        f"{OUT}/benchmarks/ablation_plot/{{dataset}}/{{task}}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    params:
        rows=lambda wc: PLAN.ablation_rows(wc.dataset, wc.task),
        task=lambda wc: PLAN.task_job_config(wc.task)["tasks"][wc.task],
    message:
        "Ablation plot (Fig. 8) of {wildcards.task} on {wildcards.dataset}"
    script:
        "../workflow_scripts/ablation_plot.py"
