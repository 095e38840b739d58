"""Config errors name the key at fault before anything runs."""

from __future__ import annotations

import copy

import pytest
import yaml

from discover.config import load_config, validate_config
from discover.errors import ConfigError
from discover.plan import Plan

from .conftest import ROOT, tiny_config


def test_embedded_default_is_valid():
    cfg = load_config(ROOT / "config.yaml")
    assert cfg["anchor"] in cfg["codecs"]
    assert cfg["bd"]["method"] == "pchip"


def test_defaults_are_filled():
    cfg = validate_config(
        {"datasets": {"p": {"type": "photos"}}, "codecs": {"j": {"type": "jpeg", "rates": [50]}}}
    )
    assert cfg["output_dir"] == "results"
    assert cfg["shard_size"] >= 1
    assert cfg["bd"]["method"] == "pchip"


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda c: c.update(shard_sise=4), "config key shard_sise: unknown key"),
        (lambda c: c["codecs"]["jpeg"].update(qualty=3), "codecs.jpeg.qualty: unknown key"),
        (
            lambda c: c["datasets"]["scenes"].update(num_images="many"),
            "datasets.scenes.num_images: expected integer",
        ),
        (lambda c: c.update(shard_size="4"), "config key shard_size: expected integer"),
        (
            lambda c: c["codecs"]["hevc"].update(chroma_format="422"),
            "codecs.hevc.chroma_format: '422' is not one of",
        ),
        (lambda c: c.update(anchor="vtm"), "config key anchor: 'vtm' is not a configured codec"),
        (lambda c: c["codecs"]["jpeg"].update(rates=[]), "codecs.jpeg.rates"),
        (lambda c: c["codecs"].update(x={"type": "command", "rates": [1]}), "codecs.x"),
        (
            lambda c: c["codecs"].update(x={"type": "nonsense", "rates": [1]}),
            "codecs.x.type: unknown codec type 'nonsense'",
        ),
        (
            lambda c: c["datasets"]["scenes"].update(protocol="imagenet-ish"),
            "datasets.scenes.protocol: unknown protocol",
        ),
        (lambda c: c["bd"].update(method="linear"), "config key bd.method"),
    ],
)
def test_bad_config_names_the_key(mutate, needle):
    cfg = copy.deepcopy(tiny_config())
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert needle in str(err.value)


def test_reserved_dataset_names_are_rejected():
    cfg = validate_config(tiny_config(datasets={"tables": {"type": "photos"}}))
    with pytest.raises(ConfigError, match="datasets.tables"):
        Plan(cfg)


def test_load_config_reports_file(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("datasets: [unclosed\n")
    with pytest.raises(ConfigError, match=str(bad)):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")


def test_schema_documents_every_top_level_key():
    schema = yaml.safe_load((ROOT / "schemas" / "config.schema.yaml").read_text())
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert set(default) <= set(schema["properties"])


def test_references_to_trained_task_models_name_the_key():
    base = {"tasks": {"detection": {"trained": "det"}}, "task_training": {}}
    cases = [
        (base, "tasks.detection.trained: 'det' is not a task_training entry"),
        (
            {"task_training": {"seg": {"kind": "instance_segmentation", "init": "det"}}},
            "task_training.seg.init: 'det' is not a task_training entry",
        ),
        (
            {"semantics": {"grounding": {"backend": "detector", "detector": {"trained": "det"}}}},
            "semantics.grounding.detector.trained: 'det' is not a task_training entry",
        ),
    ]
    for extra, needle in cases:
        plan = Plan(validate_config(tiny_config(**extra)))
        with pytest.raises(ConfigError) as err:
            if "tasks" in extra:
                plan.task_checkpoint("detection")
            elif "task_training" in extra:
                plan.task_init("seg")
            else:
                plan.grounding_weight_files()
        assert needle in str(err.value)


def test_every_job_config_carries_only_keys_the_schema_knows():
    """The plan narrows the config for each job; what it hands a job must still be config (the
    schema checks it, ``required`` aside: a job gets only its part), with no key of its own."""
    import jsonschema

    from discover.config import load_schema

    schema = load_schema()
    schema.pop("required")
    validator = jsonschema.Draft202012Validator(schema)
    plan = Plan(load_config(ROOT / "config.yaml"), basedir=ROOT)
    jobs = {f"dataset_job_config({d})": plan.dataset_job_config(d) for d in plan.datasets}
    for codec in plan.measured_codecs:
        for rate in plan.rates(codec):
            jobs[f"codec_job_config({codec}, {rate})"] = plan.codec_job_config(codec, rate)
    for task in plan.evaluated_tasks:
        jobs[f"task_job_config({task})"] = plan.task_job_config(task)
    if plan.semantic_tasks:
        jobs["grounding_job_config()"] = plan.grounding_job_config()
    jobs["metric_job_config()"] = plan.metric_job_config()
    jobs["fid_job_config()"] = plan.fid_job_config()
    assert any("discover" in name for name in jobs)  # the DISCOVER entries are among them
    errors = {
        name: [e.message for e in validator.iter_errors(job)]
        for name, job in jobs.items()
        if not validator.is_valid(job)
    }
    assert errors == {}
