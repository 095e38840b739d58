"""COCO records: AP of any multiset of the evaluated images, recomputed from one evaluation,
equals pycocotools run on the explicitly duplicated dataset; the object counts equal a count
from the annotations; the records file round-trips and a wrong file is named."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from discover.errors import TaskError
from discover.tasks.coco_records import CocoRecords, coco_records
from discover.tasks.evaluation import coco_evaluate

CATEGORY_IDS = (1, 2, 5)
# pycocotools' Params: an object counts in a range when lo <= area <= hi (both ends)
AREA_RANGES = {"all": (0, 1e10), "small": (0, 32**2), "medium": (32**2, 96**2)}
AREA_RANGES["large"] = (96**2, 1e10)
KEYS = {"AP": "all", "AP50": "all", "AP75": "all", "APs": "small", "APm": "medium"}
KEYS["APl"] = "large"


def polygon(x: float, y: float, w: float, h: float) -> list[float]:
    """A box with its top-right corner cut off (a mask that is not its box)."""
    c = min(w, h) / 3
    return [x, y, x + w - c, y, x + w, y + c, x + w, y + h, x, y + h]


def rle_of_box(box: list[float], height: int, width: int) -> dict:
    from pycocotools import mask as mask_utils

    x, y, w, h = (int(round(v)) for v in box)
    mask = np.zeros((height, width), np.uint8)
    mask[max(y, 0) : max(y + h, 0), max(x, 0) : max(x + w, 0)] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def make_case(seed: int, n_images: int = 24, iou_type: str = "bbox") -> tuple[dict, list]:
    """A small COCO dataset (3 categories, objects of every size, crowds, an object of area
    exactly 32², images without objects, images without detections, one image with more than
    100 detections of a category) and noisy detections with random float scores."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    images, annotations, predictions = [], [], []
    sides = {"small": (5, 30), "medium": (34, 90), "large": (100, 150)}
    for i in range(n_images):
        iid = 3 * i + 7  # ids neither contiguous nor from 0
        height, width = (int(v) for v in rng.integers(170, 260, 2))
        images.append({"id": iid, "height": height, "width": width, "file_name": f"{iid}.png"})
        n_objects = 0 if i % 6 == 4 else int(rng.integers(1, 7))
        boxes = []
        for j in range(n_objects):
            size = ("small", "medium", "large")[int(rng.integers(0, 3))]
            w, h = (float(rng.uniform(*sides[size])) for _ in range(2))
            if i == 2 and j == 0:
                w = h = 32.0  # area 1024: small and medium both (pycocotools' ranges)
            x, y = float(rng.uniform(0, width - w)), float(rng.uniform(0, height - h))
            crowd = int(rng.random() < 0.08 and (i, j) != (2, 0))
            category = int(rng.choice(CATEGORY_IDS))
            ann = {
                "id": len(annotations) + 1,
                "image_id": iid,
                "category_id": category,
                "bbox": [x, y, w, h],
                "iscrowd": crowd,
                "area": w * h,
            }
            if iou_type == "segm":
                poly = polygon(x, y, w, h)
                rles = mask_utils.frPyObjects([poly], height, width)
                ann["segmentation"] = [poly]
                ann["area"] = float(mask_utils.area(mask_utils.merge(rles)))
                if i == 2 and j == 0:
                    ann["area"] = 1024.0
            annotations.append(ann)
            boxes.append((category, [x, y, w, h]))
        if i % 5 == 1:
            continue  # an image fed to the model without any detection
        detections = []
        for category, (x, y, w, h) in boxes:
            for _ in range(int(rng.choice([0, 1, 1, 2]))):  # a hit, a duplicate, or nothing
                jitter = rng.normal(0, 0.06, 4) * [w, h, w, h]
                moved = [x + jitter[0], y + jitter[1], max(2.0, w + jitter[2])]
                moved.append(max(2.0, h + jitter[3]))
                wrong = rng.random() < 0.1
                label = int(rng.choice(CATEGORY_IDS)) if wrong else category
                detections.append((label, moved, float(rng.uniform(0.2, 1.0))))
        many = 110 if i == 0 else int(rng.integers(0, 5))
        for _ in range(many):  # false positives (image 0: over 100 of one category)
            w, h = float(rng.uniform(4, 120)), float(rng.uniform(4, 120))
            box = [float(rng.uniform(0, width - w)), float(rng.uniform(0, height - h)), w, h]
            label = CATEGORY_IDS[0] if i == 0 else int(rng.choice(CATEGORY_IDS))
            detections.append((label, box, float(rng.uniform(0.0, 0.7))))
        for category, box, score in detections:
            record = {"image_id": iid, "category_id": category, "bbox": box, "score": score}
            if iou_type == "segm":
                record["segmentation"] = rle_of_box(box, height, width)
            predictions.append(record)
    categories = [{"id": c, "name": f"c{c}"} for c in CATEGORY_IDS]
    gt = {"images": images, "annotations": annotations, "categories": categories}
    return gt, predictions


def duplicated(gt: dict, predictions: list, counts: np.ndarray) -> tuple[dict, list]:
    """The dataset in which image i (in id order) appears counts[i] times: each copy a new
    image id next to the original's, its annotations copied under new ids, its predictions
    copied."""
    anns, preds = defaultdict(list), defaultdict(list)
    for ann in gt["annotations"]:
        anns[ann["image_id"]].append(ann)
    for record in predictions:
        preds[record["image_id"]].append(record)
    images, new_anns, new_preds = [], [], []
    ordered = sorted(gt["images"], key=lambda img: img["id"])
    for img, count in zip(ordered, counts, strict=True):
        for copy in range(int(count)):
            new_id = img["id"] * 10 + copy  # counts < 10: copies stay next to each other
            images.append({**img, "id": new_id})
            for ann in anns[img["id"]]:
                new_anns.append({**ann, "id": len(new_anns) + 1, "image_id": new_id})
            new_preds.extend({**record, "image_id": new_id} for record in preds[img["id"]])
    return {**gt, "images": images, "annotations": new_anns}, new_preds


def assert_same(got: dict, expected: dict, tol: float = 1e-12) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert (got[key] is None) == (value is None), key
        if value is not None:
            assert abs(got[key] - value) <= tol, (key, got[key], value)


@pytest.fixture(scope="module")
def bbox_case():
    gt, preds = make_case(0, n_images=26)
    return gt, preds, coco_records(preds, gt, "bbox")


@pytest.fixture(scope="module")
def segm_case():
    gt, preds = make_case(1, n_images=16, iou_type="segm")
    return gt, preds, coco_records(preds, gt, "segm")


# -- one evaluation, every image once ---------------------------------------------------------


@pytest.mark.parametrize("case", ["bbox_case", "segm_case"])
def test_every_image_once_equals_coco_evaluate(case, request):
    gt, preds, records = request.getfixturevalue(case)
    iou_type = records.iou_type
    expected = coco_evaluate(preds, gt, iou_type, evaluator="pycocotools")
    assert_same(records.ap(), expected)
    assert 0.1 < expected[f"{iou_type}_AP"] < 0.9  # neither trivial nor empty
    assert all(v is not None for v in expected.values())  # every size is present
    np.testing.assert_allclose(
        [records.ap_many(np.ones((1, records.n_images), int))[k][0] for k in expected],
        list(expected.values()),
        rtol=0,
        atol=1e-12,
    )


def test_a_subset_of_the_images_equals_coco_evaluate(bbox_case):
    gt, preds, _ = bbox_case
    subset = [img["id"] for img in gt["images"][3:15]]
    kept = [p for p in preds if p["image_id"] in subset]
    records = coco_records(kept, gt, image_ids=[str(i) for i in subset])
    assert records.image_ids.tolist() == sorted(subset)
    assert_same(records.ap(), coco_evaluate(kept, gt, image_ids=subset))


def test_no_detection_at_all_is_ap_zero(bbox_case):
    gt, _, _ = bbox_case
    records = coco_records([], gt)
    assert_same(records.ap(), coco_evaluate([], gt))
    assert records.ap()["bbox_AP"] == 0.0


# -- multisets ------------------------------------------------------------------------------


def random_counts(rng: np.random.Generator, n: int) -> np.ndarray:
    counts = rng.choice([0, 1, 1, 2, 3], size=n)
    counts[rng.integers(0, n)] = 0  # some image is always left out
    counts[rng.integers(0, n)] = 3
    return counts


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_multiset_equals_pycocotools_on_the_duplicated_dataset(bbox_case, seed):
    gt, preds, records = bbox_case
    counts = random_counts(np.random.default_rng(seed), records.n_images)
    big_gt, big_preds = duplicated(gt, preds, counts)
    expected = coco_evaluate(big_preds, big_gt, "bbox", evaluator="pycocotools")
    assert expected != coco_evaluate(preds, gt, "bbox")  # the multiset changes the numbers
    assert_same(records.ap(counts), expected)
    many = records.ap_many(counts[None, :])
    assert_same({k: None if np.isnan(v[0]) else float(v[0]) for k, v in many.items()}, expected)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_segm_multiset_equals_pycocotools_on_the_duplicated_dataset(segm_case, seed):
    gt, preds, records = segm_case
    counts = random_counts(np.random.default_rng(10 + seed), records.n_images)
    big_gt, big_preds = duplicated(gt, preds, counts)
    expected = coco_evaluate(big_preds, big_gt, "segm", evaluator="pycocotools")
    assert_same(records.ap(counts), expected)
    many = records.ap_many(counts[None, :])
    assert_same({k: None if np.isnan(v[0]) else float(v[0]) for k, v in many.items()}, expected)


def test_scores_tied_across_images_rank_as_pycocotools_ranks_them():
    """Scores on a coarse grid: many detections of different images tie (none of one image
    and category), and the copies of an image still rank where pycocotools puts them."""
    gt, preds = make_case(4, n_images=20)
    rng = np.random.default_rng(4)
    groups = defaultdict(list)
    for record in preds:
        groups[record["image_id"], record["category_id"]].append(record)
    for group in groups.values():
        steps = rng.choice(max(24, len(group)), len(group), replace=False)  # distinct in a group
        for record, step in zip(group, steps, strict=True):
            record["score"] = (step + 1) / 120
    images_of = defaultdict(set)
    for record in preds:
        images_of[record["category_id"], record["score"]].add(record["image_id"])
    tied = [p for p in preds if len(images_of[p["category_id"], p["score"]]) > 1]
    assert len(tied) > len(preds) / 4  # ties across images of one category are common here
    records = coco_records(preds, gt)
    assert_same(records.ap(), coco_evaluate(preds, gt))
    for seed in (0, 1):
        counts = random_counts(np.random.default_rng(20 + seed), records.n_images)
        big_gt, big_preds = duplicated(gt, preds, counts)
        expected = coco_evaluate(big_preds, big_gt, "bbox", evaluator="pycocotools")
        assert_same(records.ap(counts), expected)
        many = records.ap_many(counts[None, :])
        assert_same({k: None if np.isnan(v[0]) else float(v[0]) for k, v in many.items()}, expected)


def test_ties_within_an_image_are_reported(bbox_case):
    """Detections of one image and category with the same score and a different outcome are
    where a multiset can rank otherwise than pycocotools; ``ties()`` finds them."""
    gt, preds, records = bbox_case
    assert records.ties() == 0  # random float scores
    rng = np.random.default_rng(6)
    coarse = [{**p, "score": float(rng.integers(1, 6)) / 6} for p in preds]
    tied = coco_records(coarse, gt)
    assert tied.ties() > 0
    assert_same(tied.ap(), coco_evaluate(coarse, gt))  # every image once: still exact
    counts = random_counts(np.random.default_rng(0), tied.n_images)
    big_gt, big_preds = duplicated(gt, coarse, counts)
    expected = coco_evaluate(big_preds, big_gt, evaluator="pycocotools")
    got = tied.ap(counts)  # the deviation that ties() warns of is real
    assert max(abs(got[k] - v) for k, v in expected.items() if v is not None) > 1e-6


def test_ap_many_rows_equal_ap_of_each_row(bbox_case):
    _, _, records = bbox_case
    rng = np.random.default_rng(5)
    n = records.n_images
    rows = [random_counts(rng, n) for _ in range(12)]
    rows += [rng.multinomial(n, [1 / n] * n) for _ in range(12)]  # bootstrap resamples
    rows += [np.zeros(n, int), np.ones(n, int), np.eye(n, dtype=int)[2] * 4]
    matrix = np.stack(rows)
    many = records.ap_many(matrix)
    assert all(v.shape == (len(rows),) for v in many.values())
    for b, row in enumerate(rows):
        one = records.ap(row)
        for key, value in one.items():
            if value is None:
                assert np.isnan(many[key][b]), (b, key)
            else:
                assert abs(many[key][b] - value) <= 1e-12, (b, key, many[key][b], value)
    # the rows differ: a resample is not the original
    assert len({round(float(v), 12) for v in many["bbox_AP"][:-3]}) > 10
    assert all(v is None for v in records.ap(np.zeros(n, int)).values())


def test_bad_counts_are_named(bbox_case):
    _, _, records = bbox_case
    with pytest.raises(TaskError, match="counts must hold one multiplicity per image"):
        records.ap([1, 2])
    with pytest.raises(TaskError, match="counts must not be negative"):
        records.ap(np.full(records.n_images, -1))
    with pytest.raises(TaskError, match="counts must be whole numbers"):
        records.ap(np.full(records.n_images, 0.5))
    with pytest.raises(TaskError, match="counts must be a"):
        records.ap_many(np.ones(records.n_images, int))


# -- objects ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["bbox_case", "segm_case"])
def test_objects_count_what_the_annotations_hold(case, request):
    gt, _, records = request.getfixturevalue(case)
    rng = np.random.default_rng(3)
    counts = random_counts(rng, records.n_images)
    weight = dict(zip(sorted(img["id"] for img in gt["images"]), counts, strict=True))
    expected, weighted = {}, {}
    for key, area in KEYS.items():
        lo, hi = AREA_RANGES[area]
        inside = [
            a
            for a in gt["annotations"]
            if not a["iscrowd"] and lo <= a["area"] <= hi and a["category_id"] in CATEGORY_IDS
        ]
        expected[f"{records.iou_type}_{key}"] = len(inside)
        weighted[f"{records.iou_type}_{key}"] = sum(int(weight[a["image_id"]]) for a in inside)
    assert records.objects() == expected
    assert records.objects(counts) == weighted
    # the case holds crowds and an object on the small/medium border, both counted right
    assert any(a["iscrowd"] for a in gt["annotations"])
    assert any(a["area"] == 1024 and not a["iscrowd"] for a in gt["annotations"])
    total = expected[f"{records.iou_type}_AP"]
    assert total == len([a for a in gt["annotations"] if not a["iscrowd"]])
    assert sum(expected[f"{records.iou_type}_AP{s}"] for s in "sml") == total + 1


# -- files -----------------------------------------------------------------------------------


def test_records_round_trip_through_a_file(segm_case, tmp_path):
    _, _, records = segm_case
    path = tmp_path / "sub" / "records.npz"
    records.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["records.npz"]  # no temp left
    loaded = CocoRecords.load(path)
    assert loaded.iou_type == "segm" and loaded.max_dets == records.max_dets
    for name in ("image_ids", "det_image", "det_score", "det_matched", "det_ignored"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(records, name))
        assert getattr(loaded, name).dtype == getattr(records, name).dtype
    counts = random_counts(np.random.default_rng(0), records.n_images)
    assert loaded.ap(counts) == records.ap(counts)
    assert loaded.objects() == records.objects()


def test_a_file_that_is_not_records_is_named(bbox_case, tmp_path):
    _, _, records = bbox_case
    text = tmp_path / "annotations.json"
    text.write_text('{"images": []}')
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    single = tmp_path / "single.npy"
    np.save(single, np.arange(3))
    good = tmp_path / "good.npz"
    records.save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:200])
    for path in (text, other, single, truncated, tmp_path / "missing.npz"):
        with pytest.raises(TaskError, match=str(path)):
            CocoRecords.load(path)
    CocoRecords.load(good)
