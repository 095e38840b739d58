"""The semantics stage of DISCOVER as plain functions (paper §3.2, Algorithm 1).

Once per task, ``run_task_labels`` asks the configured label generator for the task's labels
(``discover.labels``); once per shard of images, ``run_grounding`` keeps the labels present in
each image and boxes them (``discover.grounding``). DISCOVER's encoder then rasterises a task's
boxes into its latent mask. Grounding depends on the dataset, the task and its labels only, so a
new codec or rate point never reruns it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from discover.errors import ConfigError

log = logging.getLogger("discover")


def task_config(config: Mapping[str, Any], task: str) -> dict:
    tasks = config.get("tasks") or {}
    if task not in tasks:
        raise ConfigError(
            f"config key tasks.{task}: not defined (a DISCOVER codec takes its mask from the "
            "semantics stage for this task)"
        )
    return dict(tasks[task] or {})


def label_config(config: Mapping[str, Any], task: str) -> dict:
    """``semantics.labels`` merged with the task's override (what the generator gets)."""
    from discover.labels import label_backend_config

    return label_backend_config(
        config.get("semantics") or {}, task, task_config(config, task), config.get("weights_cache")
    )


def label_cache_key(config: Mapping[str, Any], task: str) -> str:
    """What a task's labels depend on (task, description, template hash, backend, model): the
    label rule's only param, so nothing else (timeouts, retries) calls the model again."""
    from discover.labels import task_cache_key

    return task_cache_key(task, task_config(config, task), label_config(config, task))


def run_task_labels(config: Mapping[str, Any], task: str, out_json: str | Path) -> dict:
    """Generate a task's labels and write them with their provenance."""
    from discover.labels import generate_labels, write_labels

    doc = generate_labels(task, task_config(config, task), label_config(config, task))
    write_labels(out_json, doc)
    log.info("task %s: %d labels (%s)", task, doc["count"], doc["provenance"]["backend"])
    return doc


def grounding_config(config: Mapping[str, Any]) -> dict:
    cfg = {"backend": "grounding-dino", "stride": 16}
    cfg.update((config.get("semantics") or {}).get("grounding") or {})
    return cfg


def needs_annotations(config: Mapping[str, Any]) -> bool:
    """The oracle backend reads the dataset's annotations (datasets without them get none)."""
    return grounding_config(config)["backend"] == "gt"


def run_grounding(
    config: Mapping[str, Any],
    reference_dir: str | Path,
    labels_json: str | Path,
    out_json: str | Path,
) -> list[dict]:
    """Ground every image of a reference shard on the task's labels; one record per image
    (boxes, labels, scores, latent mask, masked fraction)."""
    from discover.grounding import get_grounder, ground_images, write_grounding
    from discover.labels import read_labels
    from discover.stages import read_index

    cfg = grounding_config(config)
    grounder = get_grounder(cfg, config.get("weights_cache"))
    labels_doc = read_labels(labels_json)
    index = read_index(reference_dir)
    images = [(image_id, Path(reference_dir) / f"{image_id}.png") for image_id in index["id"]]
    annotations, categories = _shard_annotations(reference_dir)
    records = ground_images(
        grounder,
        images,
        labels_doc["labels"],
        stride=int(cfg["stride"]),
        annotations_by_image=annotations,
        categories=categories,
    )
    provenance = {
        **grounder.provenance(),
        "stride": int(cfg["stride"]),
        "task": labels_doc["task"],
        "labels_cache_key": labels_doc["cache_key"],
        "labels": len(labels_doc["labels"]),
    }
    write_grounding(out_json, records, provenance)
    return records


def _shard_annotations(reference_dir: str | Path):
    """(image id -> COCO annotations, categories) of a reference shard, or (None, None)."""
    path = Path(reference_dir) / "annotations.json"
    if not path.is_file():
        return None, None
    coco = json.loads(path.read_text())
    by_id: dict[int, list] = {}
    for ann in coco["annotations"]:
        by_id.setdefault(ann["image_id"], []).append(ann)
    by_image = {Path(img["file_name"]).stem: by_id.get(img["id"], []) for img in coco["images"]}
    return by_image, coco["categories"]


def grounded_boxes(paths: Sequence[str | Path]) -> dict[str, list]:
    """Image id -> its grounded boxes ([x, y, w, h]), from grounding files."""
    from discover.grounding import read_grounding

    boxes = {}
    for path in paths:
        _, records = read_grounding(path)
        for record in records:
            boxes[str(record["image"])] = [list(b) for b in record["boxes"]]
    return boxes


# -- report ---------------------------------------------------------------------------------------
def grounding_report(
    task: str,
    reference_dirs: Sequence[str | Path],
    grounding_files: Sequence[str | Path],
    examples_png: str | Path,
    histogram_png: str | Path,
    n_examples: int = 6,
) -> None:
    """A few images with their grounded boxes drawn, and the histogram of masked fractions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from PIL import Image

    from discover.grounding import read_grounding
    from discover.io import atomic_path

    records = []
    for ref_dir, path in zip(reference_dirs, grounding_files, strict=True):
        records += [(Path(ref_dir), r) for r in read_grounding(path)[1]]
    shown = records[:n_examples]
    cols = min(3, max(1, len(shown)))
    rows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (ref_dir, record) in zip(axes.flat, shown, strict=False):
        ax.imshow(np.asarray(Image.open(ref_dir / f"{record['image']}.png").convert("RGB")))
        for (x, y, w, h), label in zip(record["boxes"], record["labels"], strict=True):
            ax.add_patch(Rectangle((x, y), w, h, fill=False, color="yellow", linewidth=1.5))
            ax.text(x, y, label, color="black", fontsize=7, backgroundcolor="yellow")
        ax.set_title(f"{record['image']}: {record['masked_fraction']:.0%} of ŷ", fontsize=9)
    fig.suptitle(f"Grounded boxes for task {task}")
    fig.tight_layout()
    with atomic_path(examples_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    fractions = [r["masked_fraction"] for _, r in records]
    ax.hist(fractions, bins=np.linspace(0, 1, 21), color="tab:blue", edgecolor="white")
    ax.set_xlabel("fraction of latent positions in the task mask")
    ax.set_ylabel("images")
    ax.set_title(f"Task {task}: masked fraction (mean {np.mean(fractions):.2f})")
    fig.tight_layout()
    with atomic_path(histogram_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
