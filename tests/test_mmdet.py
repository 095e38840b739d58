"""The mmdet backend: a tiny Faster / Mask R-CNN (the standard R50-FPN 1x configs, shrunk),
loaded through a task's config, predicts exactly what mmdet's own ``inference_detector``
gives, in the COCO results format the evaluator scores; without mmdet the task fails naming
the key and the install command, and the core package never imports mmdet."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from discover.datasets.synthetic_scenes import CATEGORIES, SyntheticScenes
from discover.errors import ConfigError, TaskError
from discover.tasks import get_task

from .conftest import REQUIRE_OPTIONAL, optional_missing

TINY_SCENES = {"min_size": 96, "max_size": 136, "min_objects": 1, "max_objects": 3}

# The standard configs mmdet ships, with ResNet-18 at 1/8 width, a 16-channel FPN, few
# proposals, small test images and a low score threshold (random weights score ~1/9). The base
# is a path: mmengine's own "mmdet::" scope needs pkg_resources, which setuptools>=81 lacks.
TINY_MODEL = """
_base_ = "{base}"
model = dict(
    backbone=dict(depth=18, base_channels=8, frozen_stages=-1, init_cfg=None),
    neck=dict(in_channels=[8, 16, 32, 64], out_channels=16),
    rpn_head=dict(in_channels=16, feat_channels=16),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=16),
        bbox_head=dict(in_channels=16, fc_out_channels=32, num_classes={num_classes}),
{mask_head}    ),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=50), rcnn=dict(score_thr=0.01, max_per_img=20)),
)
test_dataloader = dict(
    dataset=dict(
        pipeline=[
            dict(type="LoadImageFromFile"),
            dict(type="Resize", scale=(192, 160), keep_ratio=True),
            dict(
                type="PackDetInputs",
                meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor"),
            ),
        ]
    )
)
"""
MASK_HEAD = """        mask_roi_extractor=dict(out_channels=16),
        mask_head=dict(num_convs=1, in_channels=16, conv_out_channels=16, num_classes={n}),
"""
BASES = {
    "detection": "faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py",
    "instance_segmentation": "mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py",
}


def import_mmdet_apis():
    """mmdet's API, or a skip saying why it is not importable (pytest -ra prints it); a
    failure instead with DISCOVER_REQUIRE_OPTIONAL=1, as in CI."""
    try:
        from mmcv.ops import RoIAlign, nms  # noqa: F401  (the compiled ops mmdet needs)
        from mmdet import apis
    except (ImportError, AssertionError) as exc:  # mmdet asserts a compatible mmcv
        optional_missing(
            f"mmdet backend not installed ({type(exc).__name__}: {exc})",
            "`make mmdet` (scripts/mmdet/install.sh)",
        )
    return apis


@pytest.fixture(scope="module")
def mmdet_apis():
    return import_mmdet_apis()


def test_missing_mmdet_skips_the_tests_or_fails_them_where_required(monkeypatch):
    monkeypatch.setitem(sys.modules, "mmdet", None)  # as if mmdet were not installed
    monkeypatch.delenv(REQUIRE_OPTIONAL, raising=False)
    with pytest.raises(pytest.skip.Exception, match="mmdet backend not installed.*make mmdet"):
        import_mmdet_apis()
    monkeypatch.setenv(REQUIRE_OPTIONAL, "1")
    with pytest.raises(pytest.fail.Exception, match=r"install it with `make mmdet`.*required"):
        import_mmdet_apis()


@pytest.fixture(scope="module")
def scenes() -> tuple[list[tuple[int, np.ndarray]], dict]:
    dataset = SyntheticScenes("scenes", {"split": "val", "num_images": 3, **TINY_SCENES}, seed=0)
    items = dataset.list_items()
    gt = dataset.annotations(items, {})
    images = [(img["id"], dataset.load(i)) for img, i in zip(gt["images"], items, strict=True)]
    return images, gt


def write_tiny_model(directory, kind: str) -> tuple[str, str]:
    """A tiny config .py and a randomly initialised checkpoint saved as mmdet saves them."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    from discover.tasks.mmdet_backend import resolve_file

    n = len(CATEGORIES)
    mask_head = MASK_HEAD.format(n=n) if kind == "instance_segmentation" else ""
    base = resolve_file(f"mmdet::{BASES[kind]}", None, "test")
    config = directory / f"tiny-{kind}.py"
    config.write_text(TINY_MODEL.format(base=base, num_classes=n, mask_head=mask_head))
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(config)).model)
    model.init_weights()
    checkpoint = directory / f"tiny-{kind}.pth"
    meta = {"dataset_meta": {"classes": CATEGORIES}}
    torch.save({"state_dict": model.state_dict(), "meta": meta}, checkpoint)
    return str(config), str(checkpoint)


def by_hand(apis, config: str, checkpoint: str, images, gt, masks: bool) -> list[dict]:
    """mmdet's own inference, converted to COCO results here: BGR input, boxes clipped to the
    image and made [x, y, w, h], class names matched to the dataset's ids, masks as RLE."""
    from pycocotools import mask as mask_utils

    model = apis.init_detector(config, checkpoint, device="cpu")
    ids = {c["name"]: c["id"] for c in gt["categories"]}
    results = []
    for iid, rgb in images:
        height, width = rgb.shape[:2]
        pred = apis.inference_detector(model, [np.ascontiguousarray(rgb[..., ::-1])])[0]
        pred = pred.pred_instances
        boxes = pred.bboxes.double().numpy()
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        for k in range(len(boxes)):
            x0, y0, x1, y1 = boxes[k]
            if x1 <= x0 or y1 <= y0:
                continue
            record = {
                "image_id": iid,
                "category_id": ids[model.dataset_meta["classes"][int(pred.labels[k])]],
                "bbox": [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
                "score": round(float(pred.scores[k]), 5),
            }
            if masks:
                mask = pred.masks[k].numpy().astype(np.uint8)
                rle = mask_utils.encode(np.asfortranarray(mask))
                record["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
            results.append(record)
    return results


@pytest.mark.parametrize("kind", ["detection", "instance_segmentation"])
def test_task_predictions_equal_mmdet_inference(mmdet_apis, scenes, tmp_path, kind):
    images, gt = scenes
    config, checkpoint = write_tiny_model(tmp_path, kind)
    cfg = {"type": kind, "backend": "mmdet", "config": config, "weights": checkpoint}
    task = get_task("tiny", {"tasks": {"tiny": cfg}})
    assert task.model.architecture == f"mmdet:tiny-{kind}"
    assert task.provenance()["backend"] == "mmdet"

    predictions = task.predict(images, categories=gt["categories"])
    expected = by_hand(mmdet_apis, config, checkpoint, images, gt, kind != "detection")
    assert len(predictions) > 0  # random weights still propose boxes above score_thr 0.01
    assert predictions == expected

    metrics = task.evaluate(predictions, gt)
    assert set(metrics) == set(task.metrics)
    assert all(v is None or 0.0 <= v <= 1.0 for v in metrics.values())


def test_files_from_the_weights_cache_and_named_errors(mmdet_apis, scenes, tmp_path):
    images, gt = scenes
    cache = tmp_path / "cache"
    cache.mkdir()
    write_tiny_model(cache, "detection")
    cfg = {"backend": "mmdet", "config": "tiny-detection.py", "weights": "tiny-detection.pth"}
    task = get_task("detection", {"tasks": {"detection": cfg}, "weights_cache": str(cache)})
    found = task.model.detect(images[0][1])
    assert len(found) > 0 and set(found.labels) <= set(CATEGORIES)

    missing = {**cfg, "weights": "absent.pth"}
    with pytest.raises(ConfigError, match=r"tasks\.detection\.weights: 'absent.pth' is neither"):
        get_task("detection", {"tasks": {"detection": missing}, "weights_cache": str(cache)})
    segm = {**cfg, "type": "instance_segmentation"}
    with pytest.raises(TaskError, match=r"tasks\.segm\.config: .* has no mask head"):
        get_task("segm", {"tasks": {"segm": segm}, "weights_cache": str(cache)})


def test_missing_mmdet_names_the_key_and_the_install_command(monkeypatch, tmp_path):
    # as if mmdet were not installed, whether or not it is
    monkeypatch.setitem(sys.modules, "mmdet", None)
    monkeypatch.setitem(sys.modules, "mmdet.apis", None)
    cfg = {"backend": "mmdet", "config": str(tmp_path / "x.py"), "weights": "x.pth"}
    with pytest.raises(TaskError, match=r"config key tasks\.det\.backend: .*`make mmdet"):
        get_task("det", {"tasks": {"det": {"type": "detection", **cfg}}})


def test_backend_keys_are_checked():
    base = {"type": "detection", "weights": "x.pth"}
    with pytest.raises(ConfigError, match=r"tasks\.det\.backend: unknown backend 'mmdetection'"):
        get_task("det", {"tasks": {"det": {**base, "backend": "mmdetection"}}})
    with pytest.raises(ConfigError, match=r"tasks\.det\.config: backend mmdet needs"):
        get_task("det", {"tasks": {"det": {**base, "backend": "mmdet"}}})
    with pytest.raises(ConfigError, match=r"tasks\.det\.config: only backend mmdet"):
        get_task("det", {"tasks": {"det": {**base, "config": "x.py"}}})
    with pytest.raises(ConfigError, match=r"unknown config key tasks\.cls\.backend"):
        get_task("cls", {"tasks": {"cls": {**base, "type": "classification", "backend": "mmdet"}}})


def test_required_files_for_a_workflow(tmp_path):
    from discover.tasks.mmdet_backend import required_files

    config = tmp_path / "model.py"
    config.write_text("")
    cfg = {"backend": "mmdet", "config": str(config), "weights": "model.pth"}
    assert required_files(cfg, tmp_path / "cache") == [
        str(config),
        str(tmp_path / "cache/model.pth"),
    ]
    packaged = {**cfg, "config": "mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py"}
    assert required_files(packaged, tmp_path / "cache") == [str(tmp_path / "cache/model.pth")]


def test_core_package_does_not_import_mmdet():
    code = (
        "import sys, discover.tasks, discover.stages.tasks; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mmdet', 'mmcv', 'mmengine')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
