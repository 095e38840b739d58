"""Datasets: deterministic synthetic scenes with valid COCO annotations; clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from discover.config import validate_config
from discover.datasets import get_dataset, shard_ids, shard_items
from discover.datasets.base import apply_protocol
from discover.datasets.synthetic_scenes import CATEGORIES
from discover.errors import DatasetError
from discover.stages.datasets import merge_annotations, prepare_shard


def _cfg(**datasets):
    return validate_config(
        {"datasets": datasets, "codecs": {"jpeg": {"type": "jpeg", "rates": [50]}}, "shard_size": 3}
    )


def test_synthetic_scenes_are_deterministic_and_split_dependent():
    cfg = _cfg(
        a={"type": "synthetic-scenes", "num_images": 3},
        b={"type": "synthetic-scenes", "split": "train", "num_images": 3},
    )
    a1, a2 = get_dataset("a", cfg), get_dataset("a", cfg)
    b = get_dataset("b", cfg)
    item = a1.list_items()[1]
    assert np.array_equal(a1.load(item), a2.load(item))
    assert not np.array_equal(a1.load(a1.list_items()[0]), b.load(b.list_items()[0]))
    cfg2 = _cfg(a={"type": "synthetic-scenes", "num_images": 3})
    cfg2["seed"] = 1
    assert not np.array_equal(a1.load(item), get_dataset("a", cfg2).load(item))


def test_synthetic_scenes_cover_all_categories_and_sizes():
    cfg = _cfg(s={"type": "synthetic-scenes", "num_images": 24})
    ds = get_dataset("s", cfg)
    items = ds.list_items()
    sizes = {ds.load(it).shape[:2] for it in items[:6]}
    assert all(256 <= h <= 512 and 256 <= w <= 512 for h, w in sizes)
    ann = ds.annotations(items, {})
    cats = {a["category_id"] for a in ann["annotations"]}
    assert len(CATEGORIES) >= 8 and cats == set(range(1, len(CATEGORIES) + 1))
    labels = {ds.label(it) for it in items}
    assert len(labels) >= 4


def test_prepared_annotations_load_in_pycocotools(tmp_path):
    cfg = _cfg(s={"type": "synthetic-scenes", "num_images": 5, "min_size": 96, "max_size": 128})
    ds = get_dataset("s", cfg)
    shards = shard_ids(len(ds.list_items()), cfg["shard_size"])
    assert shards == ["s0000", "s0001"]
    dirs = []
    for shard in shards:
        prepare_shard(cfg, "s", shard, tmp_path / shard)
        dirs.append(tmp_path / shard)
    merge_annotations(dirs, tmp_path / "annotations.json")
    coco = COCO(str(tmp_path / "annotations.json"))
    assert len(coco.getImgIds()) == 5
    for img in coco.loadImgs(coco.getImgIds()):
        png = next(tmp_path.glob(f"s*/{img['file_name']}"))
        w, h = Image.open(png).size
        assert (w, h) == (img["width"], img["height"])
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            mask = coco.annToMask(ann)
            assert mask.sum() == ann["area"]
            x, y, bw, bh = ann["bbox"]
            ys, xs = np.nonzero(mask)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + bw, y + bh)


def test_photos_dataset_is_offline():
    ds = get_dataset("p", _cfg(p={"type": "photos", "names": ["astronaut", "coffee"]}))
    items = ds.list_items()
    assert [it.id for it in items] == ["astronaut", "coffee"]
    assert ds.load(items[1]).shape == (400, 600, 3)


@pytest.mark.parametrize(
    "entry,needle",
    [
        ({"type": "kodak", "path": "/nonexistent/kodak"}, "Kodak"),
        ({"type": "clic2020", "path": "/nonexistent/clic"}, "CLIC 2020"),
        ({"type": "folder", "path": "/nonexistent/imgs"}, "/nonexistent/imgs"),
        (
            {
                "type": "coco",
                "images": "/nonexistent/val2017",
                "annotations": "/nonexistent/i.json",
            },
            "instances_val2017.json",
        ),
        (
            {"type": "imagenet", "images": "/nonexistent/val", "labels": "/nonexistent/l.txt"},
            "ILSVRC2012",
        ),
    ],
)
def test_missing_dataset_says_what_to_download_and_where(entry, needle):
    with pytest.raises(DatasetError) as err:
        get_dataset("d", _cfg(d=entry)).list_items()
    assert needle in str(err.value) and "'d'" in str(err.value)


def test_corrupt_image_is_named(tmp_path):
    Image.new("RGB", (40, 30), (1, 2, 3)).save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    ds = get_dataset("f", _cfg(f={"type": "folder", "path": str(tmp_path)}))
    items = ds.list_items()
    assert [it.id for it in items] == ["broken", "good"]
    with pytest.raises(DatasetError, match="broken.png"):
        ds.load(items[0])


def test_folder_ids_are_relative_paths_and_duplicates_fail(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "x.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    ds = get_dataset("f", _cfg(f={"type": "folder", "path": str(tmp_path)}))
    assert [it.id for it in ds.list_items()] == ["a__x", "x"]
    Image.new("RGB", (8, 8)).save(tmp_path / "x.jpg")
    with pytest.raises(DatasetError, match="share the id 'x'"):
        ds.list_items()


def test_clic_protocol_resizes_short_side_and_center_crops():
    img = Image.new("RGB", (2048, 1365))
    out = apply_protocol(img, resize_short_side=768, center_crop=768)
    assert out.size == (768, 768)
    tall = apply_protocol(Image.new("RGB", (1000, 1500)), resize_short_side=768)
    assert tall.size == (768, 1152)


def test_imagenet_label_file_errors_name_the_line(tmp_path):
    (tmp_path / "val").mkdir()
    (tmp_path / "labels.txt").write_text("a.JPEG 3\nb.JPEG three\n")
    ds = get_dataset(
        "i",
        _cfg(
            i={
                "type": "imagenet",
                "images": str(tmp_path / "val"),
                "labels": str(tmp_path / "labels.txt"),
            }
        ),
    )
    with pytest.raises(DatasetError, match="line 2"):
        ds.list_items()


def test_coco_size_mismatch_names_the_image(tmp_path):
    (tmp_path / "val").mkdir()
    Image.new("RGB", (20, 10)).save(tmp_path / "val" / "000000000001.jpg")
    ann = {
        "images": [{"id": 1, "file_name": "000000000001.jpg", "width": 30, "height": 10}],
        "annotations": [],
        "categories": [{"id": 1, "name": "x"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    cfg = _cfg(
        c={
            "type": "coco",
            "images": str(tmp_path / "val"),
            "annotations": str(tmp_path / "ann.json"),
        }
    )
    with pytest.raises(DatasetError, match="image id 1"):
        prepare_shard(cfg, "c", "s0000", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_shard_items_partition():
    cfg = _cfg(s={"type": "synthetic-scenes", "num_images": 7})
    items = get_dataset("s", cfg).list_items()
    got = [it.id for sh in shard_ids(7, 3) for it in shard_items(items, 3, sh)]
    assert got == [it.id for it in items]


def _coco_fixture(tmp_path, sizes):
    """A COCO dataset of images ``sizes`` ((width, height) per image id 1, 2, ...), one box
    each."""
    (tmp_path / "val").mkdir()
    images, anns = [], []
    for k, (w, h) in enumerate(sizes, 1):
        name = f"{k:012d}.jpg"
        Image.new("RGB", (w, h), (k * 20, 0, 0)).save(tmp_path / "val" / name)
        images.append({"id": k, "file_name": name, "width": w, "height": h})
        anns.append(
            {"id": k, "image_id": k, "category_id": 1, "bbox": [1, 1, 8, 8], "area": 64,
             "iscrowd": 0, "segmentation": [[1, 1, 9, 1, 9, 9, 1, 9]]}
        )  # fmt: skip
    doc = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    files = {"images": str(tmp_path / "val"), "annotations": str(tmp_path / "ann.json")}
    return {"type": "coco", **files}


@pytest.mark.parametrize(
    "order, shards",
    [
        ("index", [[1, 2, 3], [4, 5, 6]]),
        # padded to 64 (height, width): 1 (64,192) 2 (64,64) 3 (128,256) 4 (64,64) 5 (64,192)
        # 6 (64,128); within a padded size the smaller exact height first (4: 50 before 2: 60)
        ("size", [[4, 2, 6], [1, 5, 3]]),
    ],
)
def test_shard_order_size_groups_padded_sizes(tmp_path, order, shards):
    sizes = [(130, 60), (60, 60), (200, 70), (64, 50), (129, 64), (70, 64)]
    entry = _coco_fixture(tmp_path, sizes) | {"shard_order": order}
    cfg = _cfg(c=entry)
    assert len(get_dataset("c", cfg).list_items()) == 6  # what the plan counts
    for shard, want in zip(shard_ids(6, 3), shards, strict=True):
        out = tmp_path / "out" / shard
        prepare_shard(cfg, "c", shard, out)
        doc = json.loads((out / "annotations.json").read_text())
        assert sorted(im["id"] for im in doc["images"]) == sorted(want)
        assert sorted(a["image_id"] for a in doc["annotations"]) == sorted(want)
        index = (out / "index.csv").read_text().splitlines()[1:]
        assert [int(line.split(",")[0]) for line in index] == want
        for k in want:  # the pixels are the image's own
            w, h = sizes[k - 1]
            assert np.asarray(Image.open(out / f"{k:012d}.png")).shape == (h, w, 3)


def test_shard_order_size_reads_headers_after_the_protocol(tmp_path):
    """An ImageNet folder: sizes come from the JPEG headers, after the protocol's resize."""
    (tmp_path / "val").mkdir()
    lines, sizes = [], {"a": (500, 375), "b": (375, 500), "c": (500, 333), "d": (640, 480)}
    for name, (w, h) in sizes.items():
        Image.new("RGB", (w, h)).save(tmp_path / "val" / f"{name}.JPEG")
        lines.append(f"{name}.JPEG 0")
    (tmp_path / "labels.txt").write_text("\n".join(lines) + "\n")
    entry = {"type": "imagenet", "images": str(tmp_path / "val"),
             "labels": str(tmp_path / "labels.txt"), "shard_order": "size"}  # fmt: skip
    ds = get_dataset("i", _cfg(i=entry))
    # padded (height, width): a (384,512) b (512,384) c (384,512) d (512,640)
    assert [it.id for it in ds.sharded_items()] == ["c", "a", "b", "d"]
    ds.protocol = {"resize_short_side": 128, "center_crop": None}
    # 128 short side: a 171x128 (128,192), b 128x171 (192,128), c 192x128 (128,192), d 171x128
    assert [it.id for it in ds.sharded_items()] == ["a", "d", "c", "b"]
    (tmp_path / "val" / "b.JPEG").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"b\.JPEG"):
        ds.sharded_items()
