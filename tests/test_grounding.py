"""Open-set grounding: label chunking, box merging, latent masks, records and every backend.

Grounding DINO runs as a tiny randomly initialised model saved to a local directory: the
tests check the plumbing (chunking, thresholds, phrase mapping, determinism), not accuracy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from discover.discover_codec.masks import boxes_to_mask
from discover.errors import ConfigError, DiscoverError, GroundingError
from discover.grounding import (
    Detections,
    TorchvisionDetector,
    boxes_to_latent_mask,
    build_detector,
    decode_mask_record,
    get_grounder,
    ground_images,
    grounding_record,
    masked_fraction,
    merge_detections,
    read_grounding,
    record_detections,
    write_grounding,
)
from discover.grounding.detector import DetectorGrounder
from discover.grounding.grounding_dino import (
    label_prompt,
    match_phrase,
    phrase_pieces,
    save_tiny_model,
)
from discover.latent_masks import mask_to_runs, runs_to_mask

WORDS = ["cat", "dog", "person", "car", "traffic", "light", "bicycle", "thing"]
# 120 labels (the paper's lists hold 100+), one with capitals to check the original spelling
LABELS = ["cat", "dog", "person", "Traffic Light", "bicycle"] + [f"thing {i}" for i in range(115)]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Two cores shared with other jobs: several torch threads spin against each other and make
    # tiny models 100x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_dino(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-grounding-dino"), WORDS)


def dino(directory, **options):
    cfg = {"model": str(directory), "max_text_tokens": 64, **options}
    return get_grounder({"backend": "grounding-dino", "grounding-dino": cfg})


def random_image(seed: int = 0, size: tuple[int, int] = (100, 140)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


# -- Grounding DINO ----------------------------------------------------------------------------


def test_labels_are_chunked_under_the_token_limit_each_exactly_once(tiny_dino):
    grounder = dino(tiny_dino)
    prompt_labels = [label.lower() for label in LABELS]
    chunks = grounder.chunks(prompt_labels)
    assert len(chunks) > 2
    for chunk in chunks:
        assert chunk.prompt == label_prompt(chunk.labels)
        # what the model receives, special tokens included
        assert len(grounder.tokenizer(chunk.prompt)["input_ids"]) <= 64
        assert all(span for span in chunk.spans)
    assert [label for chunk in chunks for label in chunk.labels] == prompt_labels


def test_zero_thresholds_give_boxes_of_the_given_labels(tiny_dino):
    grounder = dino(tiny_dino, box_threshold=0.0, text_threshold=0.0, nms_iou=1.0)
    image = random_image()
    found = grounder.ground(image, LABELS)
    assert len(found) > 0
    assert set(found.labels) <= set(LABELS)
    boxes = np.asarray(found.boxes)
    assert (boxes[:, 2:] > 0).all()
    assert (boxes[:, 0] + boxes[:, 2] <= 140 + 1e-6).all()
    assert (boxes[:, 1] + boxes[:, 3] <= 100 + 1e-6).all()
    assert found.scores == sorted(found.scores, reverse=True)


def test_thresholds_of_one_give_nothing(tiny_dino):
    image = random_image()
    assert len(dino(tiny_dino, box_threshold=1.0, text_threshold=0.0).ground(image, LABELS)) == 0
    assert len(dino(tiny_dino, box_threshold=0.0, text_threshold=1.0).ground(image, LABELS)) == 0
    assert len(dino(tiny_dino, box_threshold=0.0, text_threshold=0.0).ground(image, [])) == 0


def test_grounding_is_deterministic_and_chunk_batching_agrees(tiny_dino):
    image = random_image(1)
    first = dino(tiny_dino, box_threshold=0.0, text_threshold=0.0).ground(image, LABELS)
    again = dino(tiny_dino, box_threshold=0.0, text_threshold=0.0).ground(image, LABELS)
    assert first == again
    batched = dino(tiny_dino, box_threshold=0.0, text_threshold=0.0, chunk_batch=4)
    assert batched.ground(image, LABELS).labels == first.labels


def test_max_text_tokens_beyond_the_model_is_rejected(tiny_dino):
    with pytest.raises(ConfigError, match="max_text_tokens"):
        dino(tiny_dino, max_text_tokens=1000)


def test_numeric_options_out_of_range_or_bool_are_rejected(tiny_dino):
    for key, bad in (("box_threshold", -0.1), ("nms_iou", False), ("chunk_batch", 0)):
        with pytest.raises(ConfigError, match=rf"grounding-dino\.{key} must be a number in"):
            dino(tiny_dino, **{key: bad})


def test_a_hub_id_missing_from_the_weights_cache_is_reported(tmp_path):
    cfg = {"backend": "grounding-dino", "grounding-dino": {"model": "IDEA-Research/nope"}}
    with pytest.raises(DiscoverError, match="fetch_weights"):
        get_grounder(cfg, weights_cache=tmp_path)


def test_phrases_map_to_labels_exact_match_first():
    decoded = ["cat", "traffic light", "light", "dog"]
    assert match_phrase(phrase_pieces("light [SEP]", ["[SEP]"]), decoded) == 2
    assert match_phrase(["traffic"], decoded) == 1  # contained in a label
    assert match_phrase(["big dog"], decoded) == 3  # contains a label
    assert match_phrase(["zebra"], decoded) is None
    assert match_phrase(phrase_pieces(". ."), decoded) is None
    # a phrase spanning labels: the label whose tokens scored highest for the box
    assert match_phrase(phrase_pieces("cat. dog."), decoded, [0.1, 0, 0, 0.7]) == 3
    assert match_phrase(phrase_pieces("cat. dog."), decoded) == 0


def test_per_label_nms_removes_duplicates_across_chunks():
    chunk_a = Detections([[0, 0, 10, 10], [50, 50, 10, 10]], ["cat", "cat"], [0.9, 0.6])
    chunk_b = Detections([[1, 1, 10, 10], [0, 0, 10, 9]], ["cat", "dog"], [0.8, 0.7])
    merged = merge_detections([chunk_a, chunk_b], iou=0.5)
    assert merged.labels == ["cat", "dog", "cat"]
    assert merged.boxes == [[0, 0, 10, 10], [0, 0, 10, 9], [50, 50, 10, 10]]
    agnostic = merge_detections([chunk_a, chunk_b], iou=0.5, agnostic=True)
    assert agnostic.labels == ["cat", "cat"] and agnostic.scores == [0.9, 0.6]
    assert len(merge_detections([Detections(), Detections()])) == 0


# -- latent masks ------------------------------------------------------------------------------


def test_masks_from_hand_made_boxes():
    # 40x50 image at stride 16: a 3x4 grid, the last row/column only partly inside the image
    assert boxes_to_latent_mask([[16, 16, 16, 16]], (40, 50)).tolist() == [
        [False, False, False, False],
        [False, True, False, False],
        [False, False, False, False],
    ]
    # a pixel over a boundary selects the next position; outside parts are clipped
    mask = boxes_to_latent_mask([[15, -20, 2, 37], [45, 35, 100, 100]], (40, 50))
    assert mask.tolist() == [
        [True, True, False, False],
        [True, True, False, False],
        [False, False, True, True],
    ]
    ignored = [[60, 0, 10, 10], [0, 0, 0, 10], [5, 5, 10, -1], [-30, -30, 20, 20]]
    assert not boxes_to_latent_mask(ignored, (40, 50)).any()
    assert boxes_to_latent_mask([], (40, 50)).shape == (3, 4)
    assert boxes_to_latent_mask([[0, 0, 50, 40]], (40, 50)).all()
    assert boxes_to_latent_mask([[0, 0, 8, 8]], (40, 50), stride=8).sum() == 1
    padded = boxes_to_latent_mask([[0, 0, 50, 40]], (40, 50), grid=(4, 4))
    assert padded[:3].all() and not padded[3].any()
    assert masked_fraction(boxes_to_latent_mask([[0, 0, 16, 16]], (40, 50))) == 1 / 12
    assert masked_fraction(np.zeros((0, 0), bool)) == 0.0


def test_masks_equal_the_codecs_at_stride_16():
    rng = np.random.default_rng(0)
    for _ in range(200):
        height, width = (int(v) for v in rng.integers(1, 200, 2))
        boxes = rng.uniform(-40, 220, (int(rng.integers(0, 5)), 4))
        boxes[:, 2:] -= 40  # some negative sizes
        grid = (-(-height // 16), -(-width // 16))
        expected = boxes_to_mask(boxes, grid, (height, width))
        np.testing.assert_array_equal(boxes_to_latent_mask(boxes, (height, width)), expected)
        padded = (grid[0] + 2, grid[1] + 1)
        np.testing.assert_array_equal(
            boxes_to_latent_mask(boxes, (height, width), grid=padded),
            boxes_to_mask(boxes, padded, (height, width)),
        )


def test_mask_records_round_trip():
    rng = np.random.default_rng(1)
    masks = [rng.random((7, 9)) < 0.3 for _ in range(20)]
    masks += [np.ones((3, 4), bool), np.zeros((3, 4), bool), np.eye(3, dtype=bool)]
    for mask in masks:
        np.testing.assert_array_equal(runs_to_mask(mask_to_runs(mask), mask.shape), mask)
    assert mask_to_runs(np.eye(2, dtype=bool)) == [0, 1, 2, 1]
    found = Detections([[0, 0, 20, 10]], ["cat"], [0.5])
    mask = boxes_to_latent_mask(found.boxes, (40, 50))
    record = json.loads(json.dumps(grounding_record(np.int64(3), found, mask, 16)))
    assert record["image"] == 3 and record["grid"] == [3, 4] and record["stride"] == 16
    assert record["masked_fraction"] == pytest.approx(2 / 12)
    np.testing.assert_array_equal(decode_mask_record(record), mask)
    assert record_detections(record) == found
    with pytest.raises(GroundingError, match="image 3"):
        decode_mask_record({**record, "mask_rle": [1, 2]})


# -- detector ----------------------------------------------------------------------------------


class FixedDetector:
    def detect(self, image):
        boxes = [[0, 0, 5, 5], [1, 1, 5, 5], [2, 2, 5, 5], [3, 3, 5, 5]]
        return Detections(boxes, ["Cat", "dog", "cat", "bird"], [0.9, 0.8, 0.3, 0.95])


def test_detector_keeps_labelled_categories_above_the_score_threshold():
    grounder = DetectorGrounder({"score_threshold": 0.5}, detector=FixedDetector())
    found = grounder.ground(random_image(), ["cat", "Dog"])
    assert found.labels == ["cat", "Dog"] and found.scores == [0.9, 0.8]
    assert grounder.ground(random_image(), None).labels == ["Cat", "dog", "bird"]


def small_detector(**kwargs) -> TorchvisionDetector:
    torch.manual_seed(0)
    options = {"min_size": 96, "max_size": 128, "box_score_thresh": 0.0, **kwargs}
    model = build_detector("custom-small", 3, **options)
    return TorchvisionDetector(
        model, ["__background__", "cat", "dog"], architecture="custom-small", kwargs=options
    )


def test_detector_checkpoint_reloads_to_identical_predictions(tmp_path):
    detector = small_detector()
    image = random_image(2, (96, 120))
    before = detector.detect(image)
    assert len(before) > 0 and set(before.labels) <= {"cat", "dog"}
    detector.save(tmp_path / "small.pt")
    cfg = {"checkpoint": str(tmp_path / "small.pt"), "score_threshold": 0.0}
    grounder = get_grounder({"backend": "detector", "detector": cfg})
    assert grounder.detector.detect(image) == before
    assert grounder.ground(image, ["dog"]).labels == ["dog"] * before.labels.count("dog")


def test_a_checkpoint_of_another_model_names_the_file_and_the_keys(tmp_path):
    small_detector().save(tmp_path / "small.pt")
    state = torch.load(tmp_path / "small.pt", weights_only=True)
    del state["roi_heads.box_predictor.cls_score.weight"]
    state["backbone.extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "small.pt")
    with pytest.raises(GroundingError) as err:
        TorchvisionDetector.from_checkpoint(tmp_path / "small.pt")
    message = str(err.value)
    assert str(tmp_path / "small.pt") in message
    assert "missing keys: roi_heads.box_predictor.cls_score.weight" in message
    assert "unexpected keys: backbone.extra.weight" in message
    # weights of a wider backbone: same keys, other shapes
    small_detector(width=8).save(tmp_path / "narrow.pt")
    sidecar = json.loads((tmp_path / "small.json").read_text())
    (tmp_path / "narrow.json").write_text(json.dumps(sidecar))
    with pytest.raises(GroundingError, match="shape mismatches: backbone.0.weight"):
        TorchvisionDetector.from_checkpoint(tmp_path / "narrow.pt")
    (tmp_path / "narrow.json").unlink()
    with pytest.raises(GroundingError, match="narrow.json"):
        TorchvisionDetector.from_checkpoint(tmp_path / "narrow.pt")


def test_detector_architectures_build_without_downloads():
    model = build_detector("fasterrcnn_mobilenet_v3_large_320_fpn", 5)
    assert model.roi_heads.box_predictor.cls_score.out_features == 5
    with pytest.raises(GroundingError, match="unknown detector architecture 'yolo'"):
        build_detector("yolo", 5)


# -- gt, none, shards --------------------------------------------------------------------------

CATEGORIES = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]
ANNOTATIONS = [
    {"id": 1, "category_id": 1, "bbox": [0, 0, 10, 20], "iscrowd": 0},
    {"id": 2, "category_id": 3, "bbox": [30, 10, 40, 20], "iscrowd": 0},
    {"id": 3, "category_id": 1, "bbox": [50, 50, 30, 30], "iscrowd": 1},
]


def test_gt_keeps_non_crowd_annotations_of_the_labels():
    gt = get_grounder({"backend": "gt"})
    image = random_image()
    found = gt.ground(image, ["Car"], annotations=ANNOTATIONS, categories=CATEGORIES)
    assert found == Detections([[30, 10, 40, 20]], ["Car"], [1.0])
    everything = gt.ground(image, [], annotations=ANNOTATIONS, categories=CATEGORIES)
    assert everything.labels == ["person", "car"]
    with pytest.raises(GroundingError, match="annotations"):
        gt.ground(image, ["car"])


def test_none_is_one_box_over_the_whole_image():
    found = get_grounder({"backend": "none"}).ground(random_image(), ["cat"])
    assert found == Detections([[0, 0, 140, 100]], ["image"], [1.0])


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="semantics.grounding.detector.score_treshold"):
        get_grounder({"backend": "detector", "detector": {"score_treshold": 0.3}})
    with pytest.raises(ConfigError, match="unknown grounding backend 'sam'"):
        get_grounder({"backend": "sam"})


def test_ground_images_writes_records_and_names_a_corrupt_file(tmp_path):
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(random_image(i, (40, 50))).save(paths[-1])
    gt = get_grounder({"backend": "gt"})
    records = ground_images(
        gt, [(0, paths[0]), (1, paths[1])], ["car"], 16, {0: ANNOTATIONS}, CATEGORIES
    )
    assert [r["labels"] for r in records] == [["car"], []]
    write_grounding(tmp_path / "shard.json", records, gt.provenance())
    provenance, again = read_grounding(tmp_path / "shard.json")
    assert provenance == {"backend": "gt"} and again == records
    expected = boxes_to_latent_mask([[30, 10, 40, 20]], (40, 50))
    np.testing.assert_array_equal(decode_mask_record(again[0]), expected)

    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    images = [(0, paths[0]), (2, tmp_path / "bad.jpg")]
    with pytest.raises(GroundingError, match="bad.jpg"):
        ground_images(get_grounder({"backend": "none"}), images, ["cat"])
