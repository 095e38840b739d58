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


DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())


def _listing(section: str) -> str:
    """The entries of a section of the embedded default, as the error lists them."""
    return f"{section}: {', '.join(DEFAULT[section])}"


def _grounding_without_detector(c):
    c["semantics"]["grounding"]["detector"] = {"score_threshold": 0.5}


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (
            lambda c: c["tasks"]["detection"].update(trained="nope"),
            "config key tasks.detection.trained: 'nope' is not a task_training entry "
            f"({_listing('task_training')})",
        ),
        (
            lambda c: c["task_training"]["scenes-segmenter"].update(init="nope"),
            "config key task_training.scenes-segmenter.init: 'nope' is not a task_training "
            f"entry ({_listing('task_training')})",
        ),
        (
            lambda c: c["task_training"]["scenes-segmenter"].update(init="scenes-segmenter"),
            "task_training.scenes-segmenter.init: a model cannot start from itself",
        ),
        (
            lambda c: c["semantics"]["grounding"]["detector"].update(trained="nope"),
            "config key semantics.grounding.detector.trained: 'nope' is not a task_training "
            f"entry ({_listing('task_training')})",
        ),
        (
            _grounding_without_detector,
            "config key semantics.grounding.detector: the detector backend needs a checkpoint",
        ),
        (
            lambda c: c["codecs"]["hyperprior-mini"].update(trained="nope"),
            "config key codecs.hyperprior-mini.trained: 'nope' is not a zoo_training entry "
            f"({_listing('zoo_training')})",
        ),
        (
            lambda c: c["codecs"]["discover"].update(trained="nope"),
            "config key codecs.discover.trained: 'nope' is not a discover_training or "
            f"composition_training entry ({_listing('discover_training')}; "
            f"{_listing('composition_training')})",
        ),
        (
            lambda c: c["codecs"]["discover"].update(consumers=["human", "detecton"]),
            "config key codecs.discover.consumers: 'detecton' is neither 'human' nor one of "
            "the codec's tasks (codecs.discover.tasks: detection, instance_segmentation, "
            "classification)",
        ),
        (
            lambda c: c["tasks"]["detection"].update(datasets=["coco"]),
            "config key tasks.detection.datasets: 'coco' is not a configured dataset "
            f"(datasets: {', '.join(DEFAULT['datasets'])})",
        ),
        (
            lambda c: c.update(visual_grid={"datasets": ["coco"]}),
            "config key visual_grid.datasets: 'coco' is not a configured dataset",
        ),
    ],
)
def test_references_to_other_entries_fail_at_validation(mutate, needle):
    """A key naming a trained model, task or dataset that the config lacks fails when the
    config is validated (before the plan, the DAG and any job), naming the key and what
    exists."""
    validate_config(copy.deepcopy(DEFAULT))  # the embedded default is fine
    cfg = copy.deepcopy(DEFAULT)
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert needle in str(err.value)


def test_references_hold_on_a_tiny_config():
    """The same checks on configs that lack the referenced section altogether."""
    cases = [
        (
            {"tasks": {"detection": {"trained": "det"}}},
            "tasks.detection.trained: 'det' is not a task_training entry (task_training: none)",
        ),
        (
            {"task_training": {"seg": {"kind": "instance_segmentation", "init": "det"}}},
            "task_training.seg.init: 'det' is not a task_training entry (task_training: seg)",
        ),
        (
            {"semantics": {"grounding": {"backend": "detector", "detector": {"trained": "det"}}}},
            "semantics.grounding.detector.trained: 'det' is not a task_training entry",
        ),
    ]
    for extra, needle in cases:
        with pytest.raises(ConfigError) as err:
            validate_config(tiny_config(**extra))
        assert needle in str(err.value)
    # another backend does not read the detector section
    other = {"semantics": {"grounding": {"backend": "gt", "detector": {"trained": "det"}}}}
    validate_config(tiny_config(**other))


def test_fid_demo_names_the_classifier_training_entries():
    cfg = copy.deepcopy(DEFAULT)
    cfg["fid"]["demo"] = "nope"
    plan = Plan(validate_config(cfg), basedir=ROOT)
    with pytest.raises(ConfigError) as err:
        plan.demo_features_model  # noqa: B018 (the property raises)
    assert "config key fid.demo" in str(err.value)
    assert f"(got 'nope'; {_listing('classifier_training')})" in str(err.value)


CWEBP = yaml.safe_load((ROOT / "docs/examples/command_codec.yaml").read_text())["cwebp"]
PATHS = {"input": "in.png", "output": "out.bin", "rate": "'5'"}


@pytest.mark.parametrize(
    "key,template,needle",
    [
        ("encode", "cwebp -q {rate} image.png -o {output}", "the template lacks {input}"),
        ("encode", "cwebp -q {rate} {input}", "the template lacks {output}"),
        ("encode", "cwebp {input} -o {output}", "the template lacks {rate}"),
        ("decode", "dwebp {input}", "the template lacks {output}"),
        ("decode", "dwebp -o {output}", "the template lacks {input}"),
        ("decode", "dwebp {input} -o {output} {quality}", "unknown placeholder {quality}"),
        ("decode", "dwebp {} {output}", "unknown placeholder {}"),
        ("encode", "cwebp -q {rate:03d} {input} -o {output}", "no conversion or format spec"),
        ("encode", "cwebp -q {rate} {input} -o {output} }", "not a valid template"),
    ],
)
def test_command_codec_templates_are_checked(key, template, needle):
    """A command codec whose templates cannot run fails at validation, naming the template's
    key; what passes formats like the job formats it."""
    cfg = tiny_config()
    cfg["codecs"]["cwebp"] = {**CWEBP, key: template}
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert f"config key codecs.cwebp.{key}:" in str(err.value)
    assert needle in str(err.value)
    # the job would fail on it (str.format) or get no path for the file it reads/writes
    try:
        formatted = template.format(**PATHS)
    except (KeyError, IndexError, ValueError):
        return
    assert not all(p in formatted for p in ("in.png", "out.bin", "'5'"))


@pytest.mark.parametrize(
    "key,template,rates",
    [
        ("encode", CWEBP["encode"], [10, 40]),
        ("encode", "cwebp -q 80 {input} -o {output}", [1]),  # one rate point: no {rate} needed
        ("decode", "dwebp {input} -o {output}", [10, 40]),
        ("decode", "dwebp {input} -o {output} && awk '{{print}}' /dev/null", [10, 40]),
    ],
)
def test_command_codec_templates_that_run_pass(key, template, rates):
    cfg = tiny_config()
    cfg["codecs"]["cwebp"] = {**CWEBP, key: template, "rates": rates}
    validate_config(cfg)
    formatted = template.format(**PATHS)
    assert "in.png" in formatted and "out.bin" in formatted


def test_broken_references_fail_before_the_dag_is_built(tmp_path):
    """Through Snakemake: a dry run on a config with a dangling reference or a command template
    without {output} stops at config validation, with the key and no traceback."""
    from .conftest import snakemake, write_config

    task = copy.deepcopy(DEFAULT)
    task["tasks"]["detection"]["trained"] = "nope"
    command = copy.deepcopy(DEFAULT)
    command["codecs"]["cwebp"] = {**CWEBP, "encode": "cwebp -q {rate} {input}"}
    for name, cfg, key in [
        ("task", task, "tasks.detection.trained"),
        ("command", command, "codecs.cwebp.encode"),
    ]:
        config = write_config(tmp_path / f"{name}.yaml", cfg)
        proc = snakemake(tmp_path / name, config, "-n", timeout=300)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, out[-3000:]
        assert f"config key {key}:" in out, out[-3000:]
        for marker in ("InputFunctionException", "Traceback", "Building DAG", "Job stats"):
            assert marker not in out, out[-3000:]


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
