"""Stages of rules/semantics.smk: DISCOVER's semantics stage (paper §3.1, Algorithm 1).

Once per task, ``run_task_labels`` asks the configured label generator for the task's labels
(``discover.labels``); once per shard of images, ``run_grounding`` keeps the labels present in
each image and boxes them (``discover.grounding``). DISCOVER's encoder then rasterises a task's
boxes into its latent mask. Grounding depends on the dataset, the task and its labels only, so a
new codec or rate point never reruns it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from discover.config import grounding_config
from discover.grounding import get_grounder, ground_images, read_grounding, write_grounding
from discover.io import atomic_path
from discover.labels import generate_labels, read_labels, write_labels
from discover.labels.config import label_config, task_config
from discover.shards import (
    annotations_by_image,
    image_ids,
    image_path,
    read_annotations,
    read_image,
)

log = logging.getLogger("discover")


def run_task_labels(config: Mapping[str, Any], task: str, out_json: str | Path) -> dict:
    """Generate a task's labels and write them with their provenance."""
    doc = generate_labels(task, task_config(config, task), label_config(config, task))
    write_labels(out_json, doc)
    log.info("task %s: %d labels (%s)", task, doc["count"], doc["provenance"]["backend"])
    return doc


def run_grounding(
    config: Mapping[str, Any],
    reference_dir: str | Path,
    labels_json: str | Path,
    out_json: str | Path,
) -> list[dict]:
    """Ground every image of a reference shard on the task's labels; one record per image
    (boxes, labels, scores, latent mask, masked fraction)."""
    cfg = grounding_config(config)
    grounder = get_grounder(cfg, config.get("weights_cache"))
    labels_doc = read_labels(labels_json)
    images = [(i, image_path(reference_dir, i)) for i in image_ids(reference_dir)]
    coco = read_annotations(reference_dir)
    annotations = annotations_by_image(reference_dir)
    categories = None if coco is None else coco["categories"]
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
        ax.imshow(read_image(ref_dir, record["image"]))
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
