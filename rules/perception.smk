# Human perception: FID/KID per table row over every image of a dataset (LPIPS and DISTS are
# per image, in the codec jobs), then the perception table per dataset (BD-LPIPS, BD-DISTS,
# BD-FID, BD-KID per row against the anchor; the paper plots these metrics in its Fig. 6). A
# metric whose weight is not in the weights cache is reported as "not computed" with its
# reason; the DAG still finishes.


rule fid_reference:
    input:
        unpack(fid_reference_inputs),
    output:
        f"{OUT}/metrics/{{dataset}}/fid/reference.{{features}}.npy",
    log:
        f"{OUT}/logs/fid_reference/{{dataset}}/{{features}}.log",
    benchmark:
        f"{OUT}/benchmarks/fid_reference/{{dataset}}/{{features}}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
        gpu=0,
    params:
        config=PLAN.fid_job_config(),
        protocol=lambda wc: PLAN.fid_protocol(wc.dataset),
    message:
        "FID/KID reference features ({wildcards.features}) of {wildcards.dataset}"
    script:
        "../workflow_scripts/fid_reference.py"


rule fid_kid:
    input:
        unpack(fid_kid_inputs),
    output:
        csv=f"{OUT}/metrics/{{dataset}}/fid/{{row}}.csv",
        # the decoded features, for the BD table's bootstrap (bd.bootstrap)
        features=f"{OUT}/metrics/{{dataset}}/fid/{{row}}.features.npz",
    log:
        f"{OUT}/logs/fid_kid/{{dataset}}/{{row}}.log",
    benchmark:
        f"{OUT}/benchmarks/fid_kid/{{dataset}}/{{row}}.tsv"
    wildcard_constraints:
        row=PLAN.name_regex(PLAN.measured_rows),
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
        gpu=0,
    params:
        config=PLAN.fid_job_config(),
        protocol=lambda wc: PLAN.fid_protocol(wc.dataset),
        rates=lambda wc: PLAN.rates(wc.row),
        features=PLAN.fid_feature_sets,
        keep_features=PLAN.bootstrap_on,
    message:
        "FID/KID of {wildcards.row} on {wildcards.dataset}"
    script:
        "../workflow_scripts/fid_kid.py"


rule perception_table:
    input:
        rd=f"{OUT}/tables/{{dataset}}/rd.csv",
        bd=f"{OUT}/tables/{{dataset}}/bd.csv",
    output:
        csv=f"{OUT}/tables/{{dataset}}/perception.csv",
        md=f"{OUT}/tables/{{dataset}}/perception.md",
    log:
        f"{OUT}/logs/perception_table/{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/perception_table/{{dataset}}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    params:
        config=PLAN.metric_job_config(),
        metric_status=PLAN.metric_status_of(),
    message:
        "Human-perception table of {wildcards.dataset}"
    script:
        "../workflow_scripts/perception_table.py"
