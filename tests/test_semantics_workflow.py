"""The semantics stage in the DAG: task labels generated once per task and cached (an
OpenAI-compatible server the test runs counts the calls), grounding per shard, and DISCOVER's
task masks equal to the grounded boxes on the latent grid."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from discover.discover_codec.bitstream import Container
from discover.discover_codec.masks import boxes_to_mask
from discover.grounding import TorchvisionDetector, build_detector, read_grounding
from discover.stages.semantics import run_grounding

from .conftest import ROOT, ChatServer, check_recorded_digest, snakemake, tiny_config, write_config

DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())
KEY = "sk-test-0123456789-never-in-files"
LABELS = ["circle", "square", "triangle", "star", "hexagon", "cross", "ring", "diamond"]


def semantics_config(server: ChatServer, **openai) -> dict:
    cfg = tiny_config(shard_size=2)
    cfg["codecs"] = {
        "discover-mini": {
            "type": "discover",
            "trained": "discover-mini",
            "rates": [1, 8],
            "tasks": {"detection": {"mask": "grounding"}},
            "consumers": ["detection"],
        },
    }
    cfg["anchor"] = "discover-mini"
    cfg["metrics"] = ["psnr"]
    cfg["discover_training"] = copy.deepcopy(DEFAULT["discover_training"])
    cfg["training_data"] = copy.deepcopy(DEFAULT["training_data"])  # the pools it names
    cfg["tasks"] = {"detection": {"description": "detect the shapes"}}
    cfg["semantics"] = {
        "labels": {
            "backend": "openai",
            "min_labels": 100,
            "openai": {
                "base_url": server.base_url,
                "model": "test-model",
                "api_key_env": "SEMANTICS_TEST_KEY",
                "timeout_s": 10,
                **openai,
            },
        },
        "grounding": {"backend": "gt"},
    }
    return cfg


def run(work: Path, cfg: dict, *args: str):
    config = write_config(work / "config.yaml", cfg)
    old = os.environ.get("SEMANTICS_TEST_KEY")
    os.environ["SEMANTICS_TEST_KEY"] = KEY
    try:
        return snakemake(work, config, *args)
    finally:
        if old is None:
            del os.environ["SEMANTICS_TEST_KEY"]


@pytest.fixture(scope="module")
def semantics_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("semantics_run")
    reply = json.dumps(LABELS + [f"shape part {i}" for i in range(100)])
    with ChatServer([reply]) as server:
        cfg = semantics_config(server)
        first = run(work, cfg)
        assert first.returncode == 0, first.stderr[-4000:]
        calls = [len(server.requests)]
        # rerun, and rerun with options the cache key ignores: no new call
        again = run(work, cfg)
        assert again.returncode == 0, again.stderr[-3000:]
        calls.append(len(server.requests))
        relaxed = semantics_config(server, timeout_s=30, max_retries_http=1)
        again = run(work, relaxed)
        assert again.returncode == 0, again.stderr[-3000:]
        calls.append(len(server.requests))
        # another model: the labels are asked for again
        other = semantics_config(server, model="other-model")
        changed = run(work, other, "--until", "task_labels")
        assert changed.returncode == 0, changed.stderr[-3000:]
        calls.append(len(server.requests))
        logs = [first.stdout + first.stderr, again.stdout + again.stderr]
    return work, calls, logs


def test_labels_are_generated_once_per_task_and_cached(semantics_run):
    work, calls, _ = semantics_run
    assert calls == [1, 1, 1, 2]
    doc = json.loads((work / "results/semantics/labels/detection.json").read_text())
    assert doc["labels"][:8] == LABELS and doc["count"] == 108
    assert doc["provenance"]["backend"] == "openai"
    assert doc["provenance"]["model"] == "other-model"


def test_the_api_key_lands_in_no_file_and_no_log(semantics_run):
    work, _, logs = semantics_run
    for path in work.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert all(KEY not in text for text in logs)


def test_task_masks_are_the_grounded_boxes_on_the_latent_grid(semantics_run):
    work, _, _ = semantics_run
    out = work / "results"
    annotations = json.loads((out / "scenes/reference/s0000/annotations.json").read_text())
    provenance, records = read_grounding(out / "semantics/scenes/detection/s0000.json")
    assert provenance["backend"] == "gt" and provenance["stride"] == 16
    assert len(records) == 2
    for record in records:
        image = next(i for i in annotations["images"] if f"{record['image']}.png" == i["file_name"])
        gt = [a["bbox"] for a in annotations["annotations"] if a["image_id"] == image["id"]]
        assert record["boxes"] == gt and set(record["labels"]) <= set(LABELS)
        stream = Container.from_bytes(
            (out / f"scenes/discover-mini/1/s0000/{record['image']}.dsc").read_bytes()
        )
        (task,) = stream.parts
        assert task.names == ("detection",)
        grid = task.mask.shape
        expected = boxes_to_mask(record["boxes"], grid, (image["height"], image["width"]))
        assert np.array_equal(task.mask, expected)
        assert record["masked_fraction"] == pytest.approx(
            boxes_to_mask(
                record["boxes"],
                (-(-image["height"] // 16), -(-image["width"] // 16)),
                (image["height"], image["width"]),
            ).mean()
        )
    assert (out / "plots/scenes/grounding_detection.png").stat().st_size > 0
    assert (out / "plots/scenes/masked_fraction_detection.png").stat().st_size > 0


def test_detector_grounding_keeps_only_the_labelled_categories(tmp_path):
    # A detector (untrained, small) saved with its sidecar and loaded through the config, over a
    # reference shard; its boxes are kept only where the category is one of the task's labels.
    from discover.stages.datasets import prepare_shard

    cfg = tiny_config(shard_size=2)
    prepare_shard(cfg, "scenes", "s0000", tmp_path / "ref")
    model = build_detector("custom-small", num_classes=9, box_score_thresh=0.0)
    checkpoint = tmp_path / "det.pt"
    TorchvisionDetector(
        model,
        ["background", *LABELS],
        architecture="custom-small",
        num_classes=9,
        kwargs={"box_score_thresh": 0.0},
    ).save(checkpoint)
    labels = tmp_path / "labels.json"
    from discover.labels import generate_labels, write_labels

    write_labels(
        labels,
        generate_labels(
            "detection",
            {},
            {"backend": "static", "min_labels": 1, "static": {"path": _list(tmp_path)}},
        ),
    )
    config = {
        "semantics": {
            "grounding": {
                "backend": "detector",
                "detector": {"checkpoint": str(checkpoint), "score_threshold": 0.0},
            }
        }
    }
    records = run_grounding(config, tmp_path / "ref", labels, tmp_path / "g.json")
    assert len(records) == 2
    detector = TorchvisionDetector.from_checkpoint(checkpoint)
    raw_labels = set()
    for record in records:
        raw = detector.detect(np.asarray(Image.open(tmp_path / "ref" / f"{record['image']}.png")))
        raw_labels |= set(raw.labels)
        kept = [
            (b, lab)
            for b, lab in zip(raw.boxes, raw.labels, strict=True)
            if lab in {"circle", "star"}
        ]
        assert [(b, lab) for b, lab in zip(record["boxes"], record["labels"], strict=True)] == kept
    assert raw_labels - {"circle", "star"}  # the untrained detector also boxes other categories


def _list(tmp_path: Path) -> str:
    path = tmp_path / "two.txt"
    path.write_text("circle\nstar\n")
    return str(path)


def test_outputs_equal_those_recorded_before_the_code_moved(semantics_run):
    """Streams, reconstructions, metrics and tables byte for byte as the commit before the
    re-homing of the package wrote them (tests/data/recorded_digests.json)."""
    check_recorded_digest(semantics_run[0], "semantics_run")
