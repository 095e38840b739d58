# Aggregation (bpp = all bits / all pixels), RD tables, BD tables and RD plots.


rule aggregate_rd:
    input:
        unpack(aggregate_inputs),
    output:
        rd=f"{OUT}/tables/{{dataset}}/rd/{{codec}}.csv",
        per_image=f"{OUT}/metrics/{{dataset}}/{{codec}}/per_image.csv",
    log:
        f"{OUT}/logs/aggregate_rd/{{dataset}}/{{codec}}.log",
    benchmark:
        f"{OUT}/benchmarks/aggregate_rd/{{dataset}}/{{codec}}.tsv"
    wildcard_constraints:
        codec=PLAN.name_regex(PLAN.measured_rows),
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    params:
        codec=lambda wc: PLAN.row_entry(wc.codec),
        shards_by_rate=lambda wc: PLAN.row_metric_csvs(wc.dataset, wc.codec),
        config=PLAN.metric_job_config(),
        metric_status=PLAN.metric_status_of(),
        flags=config["bd"]["flags"],
    message:
        "RD points of {wildcards.codec} on {wildcards.dataset}"
    script:
        "../workflow_scripts/aggregate_rd.py"


rule import_published:
    input:
        lambda wc: config["codecs"][wc.codec]["file"],
    output:
        rd=f"{OUT}/tables/{{dataset}}/rd/{{codec}}.csv",
    log:
        f"{OUT}/logs/import_published/{{dataset}}/{{codec}}.log",
    benchmark:
        f"{OUT}/benchmarks/import_published/{{dataset}}/{{codec}}.tsv"
    wildcard_constraints:
        codec=PLAN.name_regex(PLAN.published_codecs),
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    params:
        codec=lambda wc: config["codecs"][wc.codec],
        metrics=PLAN.metrics,
    message:
        "Published RD points of {wildcards.codec} on {wildcards.dataset}"
    script:
        "../workflow_scripts/import_published.py"


rule combine_rd:
    input:
        dataset_rd_csvs,
    output:
        f"{OUT}/tables/{{dataset}}/rd.csv",
        notes=f"{OUT}/tables/{{dataset}}/rd.notes.csv",
    log:
        f"{OUT}/logs/combine_rd/{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/combine_rd/{{dataset}}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    params:
        metric_status=PLAN.metric_status,
    message:
        "RD table of {wildcards.dataset}"
    script:
        "../workflow_scripts/combine_rd.py"


rule bd_table:
    input:
        unpack(bd_table_inputs),
    output:
        f"{OUT}/tables/{{dataset}}/bd.csv",
    log:
        f"{OUT}/logs/bd_table/{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/bd_table/{{dataset}}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    params:
        anchor=PLAN.anchor,
        bd=config["bd"],
        metrics=lambda wc: PLAN.table_metrics(wc.dataset),
        metric_status=PLAN.metric_status,
        samples=lambda wc: PLAN.bootstrap_samples(wc.dataset),
        reference_features=lambda wc: PLAN.bootstrap_reference_features(wc.dataset),
    message:
        "BD table of {wildcards.dataset} against {params.anchor}"
    script:
        "../workflow_scripts/bd_table.py"


rule rd_plot:
    input:
        f"{OUT}/tables/{{dataset}}/rd.csv",
    output:
        png=report(
            f"{OUT}/plots/{{dataset}}/rd_{{metric}}.png",
            caption="../report/rd_plot.rst",
            category="Rate-distortion",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "plot": "{metric} vs bpp"},
        ),
        pdf=f"{OUT}/plots/{{dataset}}/rd_{{metric}}.pdf",
    log:
        f"{OUT}/logs/rd_plot/{{dataset}}/{{metric}}.log",
    benchmark:
        f"{OUT}/benchmarks/rd_plot/{{dataset}}/{{metric}}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    params:
        anchor=PLAN.anchor,
    message:
        "RD plot of {wildcards.dataset}: {wildcards.metric}"
    script:
        "../workflow_scripts/rd_plot.py"


# Like the paper's Fig. 7: the original and each row's reconstruction of one image at similar bpp (of
# DISCOVER: each grounded task's stream and the full stream), and the grounded boxes.
rule visual_grid:
    input:
        reference=lambda wc: f"{OUT}/{wc.dataset}/reference/{PLAN.shards(wc.dataset)[0]}",
        rd=f"{OUT}/tables/{{dataset}}/rd.csv",
        decoded=lambda wc: PLAN.visual_grid_inputs(wc.dataset),
        grounding=lambda wc: list(PLAN.visual_grid_grounding(wc.dataset).values()),
    output:
        report(
            f"{OUT}/plots/{{dataset}}/visual_grid.png",
            caption="../report/visual_grid.rst",
            category="Visual comparison",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "plot": "visual grid"},
        ),
    log:
        f"{OUT}/logs/visual_grid/{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/visual_grid/{{dataset}}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    params:
        rows=lambda wc: PLAN.visual_grid_rows(wc.dataset),
        settings=lambda wc: PLAN.visual_grid_settings(wc.dataset),
        grounding=lambda wc: PLAN.visual_grid_grounding(wc.dataset),
    message:
        "Visual grid of {wildcards.dataset}"
    script:
        "../workflow_scripts/visual_grid.py"


# Paper Fig. 4: z_c = E(x), ẑ_c of a task's stream and the composed z_0, each decoded by D.
rule latent_figure:
    input:
        unpack(latent_figure_inputs),
    output:
        report(
            f"{OUT}/plots/{{dataset}}/latent_figure.png",
            caption="../report/latent_figure.rst",
            category="Visual comparison",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "plot": "composition latents"},
        ),
    log:
        f"{OUT}/logs/latent_figure/{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/latent_figure/{{dataset}}.tsv"
    wildcard_constraints:
        dataset=PLAN.name_regex([d for d in PLAN.datasets if PLAN.latent_figure(d)]),
    conda:
        "../envs/codecs.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
        # a stream decodes on the kind of device that encoded it
        gpu=lambda wc: PLAN.codec_gpus(PLAN.latent_figure(wc.dataset)["codec"]),
        gpu_model=lambda wc: PLAN.codec_gpu_model(
            PLAN.latent_figure(wc.dataset)["codec"]
        ),
    params:
        figure=lambda wc: PLAN.latent_figure(wc.dataset),
        config=lambda wc: PLAN.codec_job_config(
            PLAN.latent_figure(wc.dataset)["codec"],
            PLAN.latent_figure(wc.dataset)["rate"],
        ),
    message:
        "Composition latents (Fig. 4) of {wildcards.dataset}"
    script:
        "../workflow_scripts/latent_figure.py"


# One page to read top to bottom: per dataset the headline tables and figures, then the rest.
rule summary:
    input:
        summary_inputs,
    output:
        report(
            f"{OUT}/summary.html",
            caption="../report/summary.rst",
            category="1. Summary",
            labels={"page": "all datasets"},
        ),
    log:
        f"{OUT}/logs/summary.log",
    benchmark:
        f"{OUT}/benchmarks/summary.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    params:
        sections=PLAN.summary_sections(),
    message:
        "The results page (results/summary.html)"
    run:
        from discover.stages.summary import write_summary

        write_summary(output[0], params.sections)
