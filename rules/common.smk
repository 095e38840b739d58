# Config validation, the run plan, wildcard constraints and input functions.

import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir)))

from discover.config import validate_config
from discover.errors import DiscoverError
from discover.plan import Plan

try:
    _validated = validate_config(config)
    # The same schema through Snakemake's validator (defaults were filled above).
    validate(_validated, "../schemas/config.schema.yaml", set_default=False)
    config.clear()
    config.update(_validated)
    PLAN = Plan(config, basedir=workflow.basedir)
    OUT = PLAN.out
    # Listing the datasets here makes a missing dataset fail before any job runs.
    for _ds in PLAN.datasets:
        PLAN.shards(_ds)
    for _codec in PLAN.measured_codecs:
        for _rate in PLAN.rates(_codec):
            PLAN.codec_weight_files(_codec, _rate)
    PLAN.demo_features_model
    PLAN.check_semantics()
    for _ds in PLAN.datasets:
        PLAN.fid_protocol(_ds)
except DiscoverError as exc:
    raise WorkflowError(str(exc)) from None


wildcard_constraints:
    dataset="[A-Za-z0-9][A-Za-z0-9_.-]*",
    codec="[A-Za-z0-9][A-Za-z0-9_.-]*",
    rate="[^/]+",
    shard="s[0-9]{4}",
    metric="[A-Za-z0-9_]+",
    features="[a-z]+",
    task="[A-Za-z0-9_.-]+",
    model="[A-Za-z0-9][A-Za-z0-9_.-]*",
    filename="[^/]+",


def res(key, scale=1):
    return int(config["resources"][key] * scale)


def reference_shards(wildcards):
    return expand(
        f"{OUT}/{{dataset}}/reference/{{shard}}",
        dataset=wildcards.dataset,
        shard=PLAN.shards(wildcards.dataset),
    )


def codec_metric_csvs(wildcards):
    by_rate = PLAN.row_metric_csvs(wildcards.dataset, wildcards.codec)
    return [csv for csvs in by_rate.values() for csv in csvs]


def aggregate_inputs(wildcards):
    inputs = {"shards": codec_metric_csvs(wildcards)}
    if PLAN.fid_feature_sets:
        inputs["fid"] = f"{OUT}/metrics/{wildcards.dataset}/fid/{wildcards.codec}.csv"
    inputs["tasks"] = [
        f"{OUT}/metrics/{wildcards.dataset}/tasks/{t}/{wildcards.codec}.csv"
        for t in PLAN.tasks_for_row(wildcards.dataset, wildcards.codec)
    ]
    return inputs


def task_predict_inputs(wildcards):
    ref = f"{OUT}/{wildcards.dataset}/reference/{wildcards.shard}"
    if wildcards.row == "reference":
        images = [ref]
    else:
        # a task model looks at the machine view of a DISCOVER row (its own decode where the
        # composition's machine steps differ from the human ones)
        images = [
            PLAN.decoded_dir(
                wildcards.dataset, wildcards.row, rate, wildcards.shard, "machine"
            )
            for rate in PLAN.task_rates(wildcards.row)
        ]
    weights = [ancient(f) for f in PLAN.task_weight_files(wildcards.task)]
    return {"reference": ref, "images": images, "weights": weights}


def task_eval_inputs(wildcards):
    return {
        "reference": reference_shards(wildcards),
        "predictions": [
            f"{OUT}/tasks/{wildcards.dataset}/{wildcards.task}/{wildcards.row}/{shard}"
            for shard in PLAN.shards(wildcards.dataset)
        ],
    }


def fid_reference_inputs(wildcards):
    inputs = {"reference": reference_shards(wildcards)}
    if wildcards.features == "demo":
        inputs["model"] = ancient(str(PLAN.demo_features_model))
    return inputs


def fid_kid_inputs(wildcards):
    inputs = {
        "reference": reference_shards(wildcards),
        "decoded": [
            f"{OUT}/{wildcards.dataset}/{wildcards.row}/{rate}/{shard}"
            for rate in PLAN.rates(wildcards.row)
            for shard in PLAN.shards(wildcards.dataset)
        ],
        "features": [
            f"{OUT}/metrics/{wildcards.dataset}/fid/reference.{f}.npy"
            for f in PLAN.fid_feature_sets
        ],
    }
    if PLAN.demo_features_model is not None:
        inputs["model"] = ancient(str(PLAN.demo_features_model))
    return inputs


def bd_table_inputs(wildcards):
    """rd.csv, and the per-sample files of every measured row for the bootstrap."""
    inputs = {"rd": f"{OUT}/tables/{wildcards.dataset}/rd.csv", "samples": []}
    for spec in PLAN.bootstrap_samples(wildcards.dataset).values():
        inputs["samples"].append(spec["per_image"])
        inputs["samples"] += list(spec["tasks"].values())
        if spec["features"]:
            inputs["samples"].append(spec["features"])
    inputs["samples"] += list(
        PLAN.bootstrap_reference_features(wildcards.dataset).values()
    )
    return inputs


def dataset_rd_csvs(wildcards):
    return [
        f"{OUT}/tables/{wildcards.dataset}/rd/{row}.csv"
        for row in PLAN.table_rows(wildcards.dataset)
    ]


def zoo_weight_targets():
    return [
        str(PLAN.zoo_weight_path(model, str(rate)))
        for model, spec in config["zoo_training"].items()
        for rate in spec["lambdas"]
    ]


def discover_weight_targets():
    targets = []
    for model, spec in config.get("discover_training", {}).items():
        if PLAN.pretrained_vae(model) is None:
            targets.append(str(PLAN.discover_vae_dir(model).with_suffix(".json")))
        targets += [
            str(PLAN.discover_weight_path(model, str(r))) for r in spec["lambdas"]
        ]
    return targets


def composition_weight_targets():
    targets = []
    for model, spec in config.get("composition_training", {}).items():
        if model in PLAN.trained_priors:
            targets.append(str(PLAN.prior_dir(model).with_suffix(".json")))
        targets += [
            str(PLAN.discover_weight_path(model, str(r))) for r in spec["lambdas"]
        ]
    return targets


def model_index_targets(models=None):
    """weights/<model>/model_index.json of DISCOVER models trained here (all, or ``models``)."""
    return [
        str(PLAN.model_index_path(m))
        for m in PLAN.discover_models
        if models is None or m in models
    ]


def task_weight_targets():
    return [str(PLAN.task_model_path(m)) for m in config.get("task_training", {})]


def classifier_weight_targets():
    return [str(PLAN.classifier_path(m)) for m in config.get("classifier_training", {})]


def latent_figure_inputs(wildcards):
    figure = PLAN.latent_figure(wildcards.dataset)
    return {
        "reference": f"{OUT}/{wildcards.dataset}/reference/{figure['shard']}",
        "decoded": figure["decoded"],
        "weights": PLAN.codec_weight_files(figure["codec"], figure["rate"]),
    }


def summary_inputs(wildcards=None):
    files = []
    for s in PLAN.summary_sections():
        files += [s["bd_csv"], *s["tables"], *(p for p, _ in s["headline"] + s["more"])]
    return files


def final_targets():
    targets = [f"{OUT}/summary.html"]
    for ds in PLAN.datasets:
        targets += [f"{OUT}/tables/{ds}/rd.csv", f"{OUT}/tables/{ds}/bd.csv"]
        targets += expand(
            f"{OUT}/plots/{ds}/rd_{{metric}}.{{ext}}",
            metric=PLAN.plot_metrics(ds),
            ext=["png", "pdf"],
        )
        if PLAN.dataset_tasks(ds):
            targets += [f"{OUT}/tables/{ds}/tasks.csv", f"{OUT}/tables/{ds}/tasks.md"]
        if PLAN.human_metrics:
            targets += [
                f"{OUT}/tables/{ds}/perception.csv",
                f"{OUT}/tables/{ds}/perception.md",
            ]
        if PLAN.has_annotations(ds):
            targets.append(f"{OUT}/{ds}/annotations.json")
        if ds in PLAN.visual_grid_datasets():
            targets.append(f"{OUT}/plots/{ds}/visual_grid.png")
        if PLAN.latent_figure(ds):
            targets.append(f"{OUT}/plots/{ds}/latent_figure.png")
        grounded = {t for c in PLAN.discover_codecs for t in PLAN.grounded_tasks(c, ds)}
        for task in sorted(grounded):
            targets += [
                f"{OUT}/plots/{ds}/grounding_{task}.png",
                f"{OUT}/plots/{ds}/masked_fraction_{task}.png",
            ]
    for ds, task in PLAN.ablation_datasets():
        targets += [f"{OUT}/plots/{ds}/ablation_{task}.{ext}" for ext in ("png", "pdf")]
    targets += model_index_targets(
        {config["codecs"][c].get("trained") for c in PLAN.discover_codecs}
    )
    for model in PLAN.loss_plot_models():
        targets += [
            f"{OUT}/plots/training/{model}_losses.{ext}" for ext in ("png", "pdf")
        ]
    return targets
