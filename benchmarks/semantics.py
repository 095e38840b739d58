"""The semantics stage: grounding throughput per backend, and the label cache.

* grounding images/s on synthetic scenes (256-384 px) with the task's 120 labels, per backend:
  ``gt`` (annotations), ``detector`` (an untrained ``custom-small`` detector: the
  compute of the embedded default's detector) and ``grounding-dino`` (a tiny randomly
  initialised model: the chunked code path, not the Swin-T's compute); on CPU, and CUDA when
  present; ratio = images/s / that of ``detector`` (the embedded default's backend);
* the label cache: the `task_labels` rule run twice through Snakemake with the ``openai``
  backend against a local chat-completions server; the second run must make zero calls.

    python benchmarks/semantics.py [--images 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def scenes(n: int) -> tuple[list[np.ndarray], list[list[dict]], list[dict]]:
    from discover.datasets.synthetic_scenes import CATEGORIES, SceneGenerator

    gen = SceneGenerator(0, "val", 256, 384, 2, 6)
    images, annotations = [], []
    for i in range(n):
        image, instances = gen.render(i)
        images.append(image)
        boxes = []
        for k, inst in enumerate(instances):
            ys, xs = np.nonzero(inst["mask"])
            box = [float(xs.min()), float(ys.min()), float(np.ptp(xs) + 1), float(np.ptp(ys) + 1)]
            boxes.append({"id": k, "category_id": inst["category"] + 1, "bbox": box})
        annotations.append(boxes)
    categories = [{"id": k + 1, "name": n} for k, n in enumerate(CATEGORIES)]
    return images, annotations, categories


def grounders(tmp: Path, device: str) -> dict:
    from discover.datasets.synthetic_scenes import CATEGORIES
    from discover.grounding import TorchvisionDetector, build_detector, get_grounder
    from discover.grounding.grounding_dino import save_tiny_model

    detector = tmp / "detector.pt"
    TorchvisionDetector(
        build_detector("custom-small", num_classes=9),
        ["background", *CATEGORIES],
        architecture="custom-small",
        num_classes=9,
    ).save(detector)
    dino = save_tiny_model(tmp / "dino", [*CATEGORIES, "shape", "part"])
    return {
        "detector": get_grounder(
            {"backend": "detector", "detector": {"checkpoint": str(detector), "device": device}}
        ),
        "gt": get_grounder({"backend": "gt"}),
        "grounding-dino": get_grounder(
            {
                "backend": "grounding-dino",
                "grounding-dino": {"model": str(dino), "max_text_tokens": 200, "device": device},
            }
        ),
    }


def grounding_throughput(n_images: int) -> None:
    from discover.labels import load_label_file
    from discover.labels.static import resolve_list_path

    labels = load_label_file(resolve_list_path("synthetic-scenes-detection.txt"))
    images, annotations, categories = scenes(n_images)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"grounding: {n_images} scenes, {len(labels)} labels")
    print(f"{'backend':16s} {'device':6s} {'images/s':>9s} {'ratio':>7s} {'boxes/img':>9s}")
    with tempfile.TemporaryDirectory() as tmp:
        for device in devices:
            base = None
            for name, grounder in grounders(Path(tmp), device).items():
                grounder.ground(
                    images[0], labels, annotations=annotations[0], categories=categories
                )
                t0 = time.perf_counter()
                boxes = 0
                for image, anns in zip(images, annotations, strict=True):
                    det = grounder.ground(image, labels, annotations=anns, categories=categories)
                    boxes += len(det.boxes)
                rate = n_images / (time.perf_counter() - t0)
                base = base or rate
                print(
                    f"{name:16s} {device:6s} {rate:9.1f} {rate / base:7.3f} {boxes / n_images:9.1f}"
                )


def label_cache() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import ChatServer, tiny_config  # the tests' chat server and tiny config

    from discover.plan import snakemake_command

    reply = json.dumps([f"shape {i}" for i in range(120)])
    with tempfile.TemporaryDirectory() as tmp, ChatServer([reply]) as server:
        cfg = tiny_config()
        cfg["codecs"] = {
            "discover-mini": {
                "type": "discover",
                "trained": "discover-mini",
                "rates": [1],
                "tasks": {"detection": {"mask": "grounding"}},
            }
        }
        cfg["anchor"] = "discover-mini"
        cfg["discover_training"] = yaml.safe_load((ROOT / "config.yaml").read_text())[
            "discover_training"
        ]
        cfg["tasks"] = {"detection": {"description": "detect the shapes"}}
        openai = {"base_url": server.base_url, "model": "m", "api_key_env": "BENCH_KEY"}
        cfg["semantics"] = {"labels": {"backend": "openai", "openai": openai}}
        config = Path(tmp) / "config.yaml"
        config.write_text(yaml.safe_dump(cfg))
        target = "results/semantics/labels/detection.json"
        cmd = snakemake_command(config, target, workdir=tmp, cores=1)
        calls, seconds = [], []
        for _ in range(2):
            t0 = time.perf_counter()
            subprocess.run(
                cmd, check=True, capture_output=True, env={**os.environ, "BENCH_KEY": "k"}
            )
            seconds.append(time.perf_counter() - t0)
            calls.append(len(server.requests))
    print(
        f"\nlabel cache: model calls after run 1: {calls[0]}, after run 2: {calls[1]} "
        f"(second run made {calls[1] - calls[0]} calls); "
        f"wall {seconds[0]:.1f} s then {seconds[1]:.1f} s"
    )


def main() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=16)
    args = parser.parse_args()
    grounding_throughput(args.images)
    label_cache()


if __name__ == "__main__":
    main()
