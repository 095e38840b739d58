"""Machine-vision tasks: AP equals pycocotools, faster-coco-eval equals it, checkpoints and
torchvision weights names load to the same model, mismatches fail naming what is wrong."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from discover.datasets.synthetic_scenes import CATEGORIES
from discover.errors import ConfigError, TaskError, WeightsMissingError
from discover.tasks import (
    InputProtocol,
    build_task_model,
    category_ids,
    classification_accuracy,
    coco_evaluate,
    get_task,
    load_predictions,
    save_predictions,
    weight_spec,
)
from discover.tasks.instance_segmentation import masks_to_original
from discover.tasks.models import architecture_of, torchvision_weights
from discover.training.task_models import train_task_model, val_split
from discover.weights import sha256

TINY_SCENES = {"min_size": 96, "max_size": 136, "min_objects": 1, "max_objects": 3}
DETECTOR_OPTIONS = {"min_size": 96, "max_size": 144, "box_score_thresh": 0.0, "width": 8}


@pytest.fixture(scope="module")
def scenes() -> tuple[list[tuple[int, np.ndarray]], dict]:
    """Six small synthetic scenes and their COCO annotations, as the dataset writes them."""
    return val_split(0, 6, TINY_SCENES)


@pytest.fixture(scope="module")
def fixture_predictions(scenes) -> list[dict]:
    """Per object a near hit (shifted box and mask) and a worse duplicate, plus false
    positives of every kind: wrong category, stray box, an image with nothing of its own."""
    from pycocotools import mask as mask_utils

    _, gt = scenes
    rng = np.random.default_rng(7)
    sizes = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    preds = []
    for ann in gt["annotations"]:
        mask = mask_utils.decode({**ann["segmentation"], "counts": ann["segmentation"]["counts"]})
        for shift, score_range in ((1, (0.5, 1.0)), (6, (0.0, 0.6))):
            dy, dx = rng.integers(-shift, shift + 1, 2)
            moved = np.roll(mask, (int(dy), int(dx)), axis=(0, 1))
            rle = mask_utils.encode(np.asfortranarray(moved))
            x, y, w, h = ann["bbox"]
            jitter = rng.normal(0, shift / 2, 4)
            preds.append(
                {
                    "image_id": ann["image_id"],
                    "category_id": ann["category_id"],
                    "bbox": [float(x + jitter[0]), float(y + jitter[1]), w + jitter[2], h],
                    "score": float(rng.uniform(*score_range)),
                    "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                }
            )
    for iid, (h, w) in sizes.items():
        box_mask = np.zeros((h, w), np.uint8)
        box_mask[5:40, 10:50] = 1
        rle = mask_utils.encode(np.asfortranarray(box_mask))
        preds.append(
            {
                "image_id": iid,
                "category_id": int(rng.integers(1, len(CATEGORIES) + 1)),
                "bbox": [10.0, 5.0, 40.0, 35.0],
                "score": float(rng.uniform(0, 1)),
                "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
            }
        )
    return preds


def reference_ap(gt: dict, preds: list[dict], iou_type: str) -> np.ndarray:
    """What one writes with pycocotools by hand (Detectron2's recipe for masks: no bbox)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco_gt = COCO()
    coco_gt.dataset = copy.deepcopy(gt)
    coco_gt.createIndex()
    results = copy.deepcopy(preds)
    if iou_type == "segm":
        for r in results:
            r.pop("bbox")
    coco_eval = COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    return coco_eval.stats[:6]


def small_task(kind: str, architecture: str | None = None, **cfg):
    torch.manual_seed(0)
    if kind == "classification":
        model = build_task_model(kind, architecture or "mini-resnet", CATEGORIES, widths=[8, 16])
    else:
        arch = architecture or ("custom-small-mask" if "segm" in kind else "custom-small")
        model = build_task_model(kind, arch, ["__background__", *CATEGORIES], **DETECTOR_OPTIONS)
    return get_task(kind, {"tasks": {kind: cfg}}, model=model)


# -- evaluation -----------------------------------------------------------------------------


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_ap_equals_pycocotools_on_a_fixture(scenes, fixture_predictions, iou_type):
    _, gt = scenes
    expected = reference_ap(gt, fixture_predictions, iou_type)
    got = coco_evaluate(fixture_predictions, gt, iou_type)
    values = [np.nan if v is None else v for v in got.values()]
    np.testing.assert_array_equal(values, np.where(expected > -1, expected, np.nan))
    assert 0.2 < got[f"{iou_type}_AP"] < 0.95  # the fixture is neither trivial nor empty
    task = small_task("instance_segmentation" if iou_type == "segm" else "detection")
    assert {k: v for k, v in task.evaluate(fixture_predictions, gt).items() if k in got} == got


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_faster_coco_eval_equals_pycocotools(scenes, fixture_predictions, iou_type):
    _, gt = scenes
    reference = coco_evaluate(fixture_predictions, gt, iou_type)
    faster = coco_evaluate(fixture_predictions, gt, iou_type, evaluator="faster-coco-eval")
    assert reference.keys() == faster.keys()
    for key, value in reference.items():
        assert (value is None) == (faster[key] is None), key
        if value is not None:
            assert abs(value - faster[key]) <= 1e-9, key
    # a subset of the images, and no prediction at all: still the same numbers
    subset = [img["id"] for img in gt["images"][:3]]
    kept = [p for p in fixture_predictions if p["image_id"] in subset]
    for preds in (kept, []):
        a = coco_evaluate(preds, gt, iou_type, image_ids=subset)
        b = coco_evaluate(preds, gt, iou_type, image_ids=subset, evaluator="faster-coco-eval")
        assert a == pytest.approx(b, abs=1e-9)
    assert coco_evaluate([], gt, iou_type)[f"{iou_type}_AP"] == 0.0


def test_faster_mask_results_are_what_load_res_makes(scenes, fixture_predictions):
    """The batched preparation of mask results for faster-coco-eval gives the records its
    ``loadRes`` gives, and its mask-IoU threads do not change a number."""
    from faster_coco_eval import COCO

    from discover.tasks.evaluation import _mask_results_faster, _results_for

    _, gt = scenes
    coco = COCO()
    coco.dataset = copy.deepcopy(gt)
    coco.createIndex()
    with contextlib.redirect_stdout(io.StringIO()):
        expected = coco.loadRes(_results_for(fixture_predictions, "segm"))
    got = _mask_results_faster(coco, _results_for(fixture_predictions, "segm"))
    assert len(got.dataset["annotations"]) == len(fixture_predictions) > 0
    for a, b in zip(got.dataset["annotations"], expected.dataset["annotations"], strict=True):
        assert a.keys() == b.keys()
        np.testing.assert_array_equal(a.pop("bbox"), b.pop("bbox"))
        assert a == b
    assert got.dataset["images"] == expected.dataset["images"]
    assert got.dataset["categories"] == expected.dataset["categories"]
    one, many = (
        coco_evaluate(fixture_predictions, gt, "segm", evaluator="faster-coco-eval", rle_workers=n)
        for n in (1, 4)
    )
    assert one == many


def test_annotations_of_other_images_name_the_first_image_id(scenes, fixture_predictions):
    _, gt = scenes
    stray = [{**fixture_predictions[0], "image_id": 4242}, *fixture_predictions]
    with pytest.raises(TaskError, match="image 4242"):
        coco_evaluate(stray, gt)
    with pytest.raises(TaskError, match="image 977 is not in the annotations"):
        coco_evaluate(fixture_predictions, gt, image_ids=[0, 977, 978])
    with pytest.raises(TaskError, match="image 4242, which has no label"):
        classification_accuracy([{"image_id": 4242, "topk": [0], "scores": [1.0]}], gt)


def test_classification_accuracy_from_saved_predictions(tmp_path):
    labels = {1: 3, 2: 0, 3: 7, 4: 5}
    predictions = [
        {"image_id": 1, "topk": [3, 1, 2, 0, 4], "scores": [0.6, 0.1, 0.1, 0.1, 0.1]},  # top-1
        {"image_id": 2, "topk": [1, 2, 3, 4, 0], "scores": [0.5, 0.2, 0.1, 0.1, 0.1]},  # top-5
        {"image_id": 3, "topk": [0, 1, 2, 3, 4], "scores": [0.5, 0.2, 0.1, 0.1, 0.1]},  # miss
        {"image_id": 4, "topk": [4, 5, 0, 1, 2], "scores": [0.5, 0.3, 0.1, 0.05, 0.05]},  # top-5
    ]
    save_predictions(tmp_path / "cls.json", predictions)
    loaded = load_predictions(tmp_path / "cls.json")
    assert loaded == predictions
    assert classification_accuracy(loaded, labels) == {"top1": 0.25, "top5": 0.75}
    gt = {"images": [{"id": k, "label": v} for k, v in labels.items()], "annotations": []}
    gt["categories"] = []
    assert small_task("classification").evaluate(loaded, gt) == {"top1": 0.25, "top5": 0.75}
    with pytest.raises(TaskError, match="image 4 has no prediction"):
        classification_accuracy(loaded[:3], labels)


# -- models, checkpoints, weights -------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, architecture",
    [
        ("detection", "fasterrcnn_mobilenet_v3_large_320_fpn"),
        ("instance_segmentation", "custom-small-mask"),
        ("classification", "resnet18"),
    ],
)
def test_a_saved_checkpoint_loads_to_identical_predictions(scenes, tmp_path, kind, architecture):
    images, gt = scenes
    torch.manual_seed(0)
    if kind == "classification":
        model = build_task_model(kind, architecture, CATEGORIES, protocol="imagenet-val")
    else:
        options = {"min_size": 96, "max_size": 144, "box_score_thresh": 0.0}
        model = build_task_model(kind, architecture, ["__background__", *CATEGORIES], **options)
    task = get_task(kind, {"tasks": {kind: {}}}, model=model)
    before = task.predict(images[:2], categories=gt["categories"])
    assert before, "a random model with no score cut still predicts something"
    model.save(tmp_path / "model.pt")
    config = {"tasks": {"mine": {"type": kind, "weights": str(tmp_path / "model.pt")}}}
    reloaded = get_task("mine", config)
    assert reloaded.predict(images[:2], categories=gt["categories"]) == before
    save_predictions(tmp_path / "preds.json", before)
    assert load_predictions(tmp_path / "preds.json") == before
    if kind == "instance_segmentation":
        assert all(p["segmentation"]["size"] == list(images[0][1].shape[:2]) for p in before[:1])


def test_a_checkpoint_of_another_model_lists_the_keys_and_names_the_file(tmp_path):
    classifier = build_task_model("classification", "mini-resnet", CATEGORIES, widths=[8, 16])
    classifier.save(tmp_path / "cls.pt")
    state = torch.load(tmp_path / "cls.pt", weights_only=True)
    del state["fc.weight"]
    state["head.extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "cls.pt")
    config = {"tasks": {"classification": {"weights": str(tmp_path / "cls.pt")}}}
    with pytest.raises(TaskError) as err:
        get_task("classification", config)
    message = str(err.value)
    assert str(tmp_path / "cls.pt") in message
    assert "missing keys: fc.weight" in message and "unexpected keys: head.extra" in message
    # a detector's state dict under a sidecar of another architecture
    detector = build_task_model("detection", "custom-small", ["__background__", "a"], width=8)
    detector.save(tmp_path / "det.pt")
    sidecar = json.loads((tmp_path / "det.json").read_text())
    sidecar["architecture"] = "custom-small-mask"
    (tmp_path / "det.json").write_text(json.dumps(sidecar))
    config = {"tasks": {"detection": {"weights": str(tmp_path / "det.pt")}}}
    with pytest.raises(TaskError, match=r"det\.pt.*missing keys: roi_heads\.mask_head"):
        get_task("detection", config)


def test_a_torchvision_weights_name_resolves_through_the_cache(tmp_path, scenes):
    import torchvision

    name = "MobileNet_V3_Small_Weights.IMAGENET1K_V1"
    spec = weight_spec(name)
    assert spec.name == name and spec.url == torchvision_weights(name).url
    assert architecture_of(torchvision_weights(name)) == "mobilenet_v3_small"
    config = {"tasks": {"cls": {"type": "classification", "weights": name}}}
    with pytest.raises(WeightsMissingError) as err:
        get_task("cls", config, weights_cache=tmp_path)
    assert name in str(err.value) and "snakemake fetch_weights" in str(err.value)
    # the cached file is what the model loads (a random stand-in for the official one)
    torch.manual_seed(3)
    source = torchvision.models.mobilenet_v3_small(num_classes=1000).eval()
    torch.save(source.state_dict(), tmp_path / spec.filename)
    task = get_task("cls", config, weights_cache=tmp_path)
    assert task.protocol == InputProtocol.from_config("imagenet-val")
    assert len(task.model.categories) == 1000 and task.model.categories[1] == "goldfish"
    images, _ = scenes
    image = InputProtocol.from_config("imagenet-val").apply(images[0][1])[0]
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    with torch.inference_mode():
        expected = source(torchvision.transforms.functional.normalize(x, *_imagenet_stats()))
    (pred,) = task.predict(images[:1])
    assert pred["topk"] == expected.topk(5).indices[0].tolist()


def _imagenet_stats() -> tuple[list[float], list[float]]:
    return [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def test_coco_model_labels_map_to_dataset_ids_by_name():
    meta = torchvision_weights("FasterRCNN_ResNet50_FPN_Weights.COCO_V1").meta["categories"]
    assert len(meta) == 91 and meta[18] == "dog"
    dataset = [{"id": 7, "name": "Dog"}, {"id": 1, "name": "person"}, {"id": 3, "name": "shape"}]
    assert category_ids(dict(enumerate(meta)), dataset) == {1: 1, 18: 7}
    assert 0 not in category_ids(dict(enumerate(meta)), None)  # background never predicted
    with pytest.raises(TaskError, match="share no name"):
        category_ids({1: "circle"}, [{"id": 1, "name": "person"}])


def test_protocols_map_predictions_back_to_the_original_pixels():
    image = np.zeros((300, 400, 3), np.uint8)
    processed, geometry = InputProtocol.from_config("imagenet-val").apply(image)
    assert processed.shape == (224, 224, 3)
    assert (geometry.resized_height, geometry.resized_width) == (256, 341)
    # a box in the crop is the same region of the original (x scaled by 341/400, y 256/300)
    box = geometry.boxes_to_original(np.array([[0.0, 0.0, 224.0, 224.0]]))[0]
    sx, sy = 400 / 341, 300 / 256
    np.testing.assert_allclose(box, [58 * sx, 16 * sy, 282 * sx, 240 * sy])
    probs = torch.zeros((1, 1, 224, 224))
    probs[0, 0, 50:100, 60:120] = 1.0
    mask = masks_to_original(probs, geometry)[0]
    assert mask.shape == (300, 400)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    assert abs(rows[0] - 66 * sy) <= 1.5 and abs(cols[0] - 118 * sx) <= 1.5
    with pytest.raises(ConfigError, match="tasks.x.protocol: unknown protocol 'imagenet'"):
        InputProtocol.from_config("imagenet", "tasks.x.protocol")


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="tasks.detection.treshold"):
        small_task("detection", treshold=0.3)
    with pytest.raises(ConfigError, match="tasks.detection.evaluator"):
        small_task("detection", evaluator="lvis")
    with pytest.raises(ConfigError, match="tasks.detection.weights"):
        get_task("detection", {"tasks": {"detection": {}}})
    # a number out of range, and a bool where a number belongs
    for bad in (1.5, True, "0.5"):
        with pytest.raises(ConfigError, match=r"tasks\.detection\.score_threshold must be a num"):
            small_task("detection", score_threshold=bad)
    with pytest.raises(ConfigError, match="unknown task type 'segmentation'"):
        get_task("seg", {"tasks": {"seg": {"type": "segmentation"}}})


# -- training ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, spec",
    [
        ("detection", {"kwargs": {"width": 8, "min_size": 96, "max_size": 144}}),
        ("instance_segmentation", {"kwargs": {"width": 8, "min_size": 96, "max_size": 144}}),
        ("classification", {"input_size": 32, "kwargs": {"widths": [8, 16]}}),
    ],
)
def test_training_a_few_steps_writes_a_loadable_checkpoint(tmp_path, kind, spec):
    spec = {"steps": 2, "batch_size": 2, "num_images": 4, "val_images": 2, **spec}
    spec["scenes"] = TINY_SCENES
    out = tmp_path / "model.pt"
    meta = train_task_model(
        kind, out, tmp_path / "model.json", spec, 0, log_csv=tmp_path / "losses.csv", command="x"
    )
    sidecar = json.loads((tmp_path / "model.json").read_text())
    assert sidecar == json.loads(json.dumps(meta))
    assert sidecar["kind"] == kind and sidecar["seed"] == 0 and sidecar["command"] == "x"
    assert (
        sidecar["val_images"] == 2
        and set(sidecar["val_metrics"])
        >= {
            "detection": {"bbox_AP"},
            "instance_segmentation": {"segm_AP", "bbox_AP"},
            "classification": {"top1", "top5"},
        }[kind]
    )
    assert (tmp_path / "losses.csv").read_text().startswith("step,loss")
    task = get_task(kind, {"tasks": {kind: {"weights": str(out)}}})
    assert task.model.architecture == sidecar["architecture"]
    out.write_bytes(out.read_bytes() + b"\0")  # a state dict the sidecar does not describe
    with pytest.raises(TaskError, match="sha256"):
        get_task(kind, {"tasks": {kind: {"weights": str(out)}}})


def _scene_targets(instances: list[dict], masks: bool) -> dict[str, torch.Tensor]:
    """A torchvision detector's targets of a scene: COCO boxes of the masks (first pixel to one
    past the last), model labels (index 0 is the background)."""
    boxes = []
    for inst in instances:
        rows, cols = np.flatnonzero(inst["mask"].any(1)), np.flatnonzero(inst["mask"].any(0))
        boxes.append([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
    target = {
        "boxes": torch.tensor(boxes, dtype=torch.float32),
        "labels": torch.tensor([inst["category"] + 1 for inst in instances]),
    }
    if masks:
        target["masks"] = torch.from_numpy(
            np.stack([i["mask"] for i in instances]).astype(np.uint8)
        )
    return target


@pytest.mark.parametrize(
    "kind, spec, steps",
    [
        ("detection", {"kwargs": {"width": 8, "min_size": 96, "max_size": 144}}, 10),
        ("instance_segmentation", {"kwargs": {"width": 8, "min_size": 96, "max_size": 144}}, 10),
        ("classification", {"input_size": 32, "kwargs": {"widths": [8, 16]}}, 20),
    ],
)
def test_training_changes_the_weights_and_lowers_the_loss_on_its_scenes(
    tmp_path, kind, spec, steps
):
    """0 steps save the initialisation (same seed); ``steps`` steps on 4 train scenes change
    every part of the model and lower its loss on those scenes (detectors: the sum of
    torchvision's training losses, sampling seeded; classifier: cross-entropy in eval mode)."""
    from discover.tasks.base import InputProtocol
    from discover.tasks.mini_resnet import normalise
    from discover.training.task_models import largest_category, render_scenes

    spec = {"batch_size": 2, "num_images": 4, "val_images": 1, "scenes": TINY_SCENES, **spec}
    models = {}
    for n in (0, steps):
        out = tmp_path / f"model{n}.pt"
        train_task_model(kind, out, tmp_path / f"model{n}.json", spec, seed=0, steps=n)
        models[n] = get_task(kind, {"tasks": {kind: {"weights": str(out)}}}).model
    before, after = (models[n].model.state_dict() for n in (0, steps))
    params = [name for name, _ in models[0].model.named_parameters()]
    changed = {n.split(".")[0] for n in params if not torch.equal(before[n], after[n])}
    assert changed == {n.split(".")[0] for n in params}  # backbone, heads / stem, stages, fc
    scenes = [(image, inst) for image, inst in render_scenes(0, "train", 4, TINY_SCENES) if inst]

    def loss(model) -> float:
        net = model.model
        if kind == "classification":  # inputs as the trainer makes them: the task's protocol
            protocol = InputProtocol.from_config(model.protocol)
            x = torch.stack([torch.from_numpy(protocol.apply(image)[0]) for image, _ in scenes])
            y = torch.tensor([largest_category(inst) for _, inst in scenes])
            logits = net.eval()(normalise(x.permute(0, 3, 1, 2).float() / 255.0))
            return float(F.cross_entropy(logits, y))
        images = [torch.from_numpy(image).permute(2, 0, 1).float() / 255.0 for image, _ in scenes]
        targets = [_scene_targets(inst, kind == "instance_segmentation") for _, inst in scenes]
        torch.manual_seed(0)  # the heads' proposal sampling
        return float(sum(net.train()(images, targets).values()))

    with torch.no_grad():
        losses = {n: loss(m) for n, m in models.items()}
    assert losses[steps] < 0.95 * losses[0], losses


def test_a_mask_rcnn_starts_from_a_trained_detector(tmp_path):
    kwargs = {"width": 8, "min_size": 96, "max_size": 144}
    tiny = {"batch_size": 2, "num_images": 4, "val_images": 2, "scenes": TINY_SCENES}
    train_task_model(
        "detection",
        tmp_path / "det.pt",
        tmp_path / "det.json",
        {**tiny, "steps": 2, "kwargs": kwargs},
    )
    # lr 0: the step changes no parameter, so what the mask model holds is what it loaded
    spec = {**tiny, "steps": 1, "lr": 0.0, "kwargs": kwargs, "init": "det"}
    meta = train_task_model(
        "instance_segmentation",
        tmp_path / "seg.pt",
        tmp_path / "seg.json",
        spec,
        init_path=tmp_path / "det.pt",
    )
    assert meta["init"] == {"path": str(tmp_path / "det.pt"), "sha256": sha256(tmp_path / "det.pt")}
    det = torch.load(tmp_path / "det.pt", weights_only=True)
    seg = torch.load(tmp_path / "seg.pt", weights_only=True)
    model = build_task_model(
        "instance_segmentation", "custom-small-mask", ["__background__", *CATEGORIES], **kwargs
    ).model
    params = {name for name, _ in model.named_parameters()}
    shared = params & set(det)
    assert shared and all(torch.equal(det[k], seg[k]) for k in shared)
    assert {k for k in params - shared} == {k for k in params if k.startswith("roi_heads.mask_")}
    task = get_task(
        "instance_segmentation",
        {"tasks": {"instance_segmentation": {"weights": str(tmp_path / "seg.pt")}}},
    )
    assert task.model.architecture == "custom-small-mask"
    # a classifier is no detector: the error names the file and the keys
    train_task_model(
        "classification",
        tmp_path / "cls.pt",
        tmp_path / "cls.json",
        {**tiny, "steps": 1, "input_size": 32, "kwargs": {"widths": [8, 16]}},
    )
    with pytest.raises(ConfigError, match=r"cls\.pt does not fit .*missing keys"):
        train_task_model(
            "instance_segmentation",
            tmp_path / "bad.pt",
            tmp_path / "bad.json",
            spec,
            init_path=tmp_path / "cls.pt",
        )
    assert not (tmp_path / "bad.pt").exists()


@pytest.mark.parametrize("evaluator", ["pycocotools", "faster-coco-eval"])
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_coco_evaluate_leaves_its_inputs_as_they_were(evaluator, iou_type):
    """Both libraries write into the records they are given (area, bbox, ignore, RLE): the
    evaluation works on copies, so the caller's annotations and predictions stay unchanged."""
    from discover.datasets.synthetic_scenes import SyntheticScenes
    from discover.tasks.evaluation import coco_evaluate

    ds = SyntheticScenes("val", {"split": "val", "num_images": 3}, seed=0)
    gt = ds.annotations(ds.list_items(), {})
    preds = [
        {**{k: ann[k] for k in ("image_id", "category_id", "bbox", "segmentation")}, "score": 0.9}
        for ann in gt["annotations"]
    ]
    gt_before, preds_before = copy.deepcopy(gt), copy.deepcopy(preds)
    metrics = coco_evaluate(preds, gt, iou_type, evaluator=evaluator)
    assert metrics[f"{iou_type}_AP"] == pytest.approx(1.0)
    assert gt == gt_before and preds == preds_before
