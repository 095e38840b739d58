"""What overlapping task masks cost in DISCOVER's bitstream, on the embedded default.

A ``.dsc`` container has one part (a ỹ stream) per distinct task mask, plus ẑ and the rest of ŷ.
Tasks with identical masks share a part; where two different masks overlap, the overlap is coded
once in each part (each part decodes alone), so the human consumer pays it twice. The dataset,
its shard, the task labels and the grounding come from the pipeline's own stage functions
(``prepare_shard``, ``run_task_labels``, ``run_grounding`` with the plan's job configs); the
boxes per task from the codec adapter's mask sources; the streams from the committed model.

* (a) the embedded default (both tasks' masks from the detector grounding): images whose two
  masks are identical (one shared part), the human bytes, and those of the same container with
  the part stored twice. "Separate" is built from each task encoded alone (its part's stream
  depends only on its mask, ŷ and ẑ, which the script checks), its two parts put into the
  container beside the same ẑ and rest; an image whose masks differ is coded separately anyway.
* (b) a partial overlap (detection: grounding, instance_segmentation: ``mask: gt``): the human
  bytes as the pipeline codes them, against the same with instance_segmentation's mask minus
  detection's (the overlap coded once; that part no longer decodes alone); the difference is
  what the overlap still costs. Its contexts still see no detection element, so a stream
  allowed to depend on detection's part could cost a little less again.

bpp = 8 x bytes / pixels over all images of a rate point.

    python benchmarks/stream_overlap.py [--codec discover-mini] [--dataset scenes] [--rates 1 2 4 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TASKS = ("detection", "instance_segmentation")


def ground(config: dict, plan, dataset: str, tmp: Path) -> tuple[list, dict, dict, list]:
    """The shard images, and per image: the boxes of each task from its grounding, the COCO
    annotations; as the pipeline's stages produce them; and the reference shards (in ``tmp``)."""
    from discover.shards import annotations_by_image, image_ids, read_image
    from discover.stages.datasets import prepare_shard
    from discover.stages.semantics import run_grounding, run_task_labels

    images, grounded, annotations, refs = [], {}, {}, []
    for task in TASKS:
        run_task_labels(config, task, tmp / "labels" / f"{task}.json")
    for shard in plan.shards(dataset):
        ref = tmp / dataset / shard
        refs.append(ref)
        prepare_shard(plan.dataset_job_config(dataset), dataset, shard, ref)
        anns = annotations_by_image(ref)
        for task in TASKS:
            out = tmp / "grounding" / task / f"{shard}.json"
            records = run_grounding(
                plan.grounding_job_config(), ref, tmp / "labels" / f"{task}.json", out
            )
            for record in records:
                grounded.setdefault(str(record["image"]), {})[task] = record["boxes"]
        for image_id in image_ids(ref):
            images.append((image_id, read_image(ref, image_id)))
            annotations[image_id] = None if anns is None else anns.get(image_id, [])
    return images, grounded, annotations, refs


def codec_run(args):
    """What both scripts start from: torch threads, the config, its plan, the codec's entry and
    the λ_R values to run (``--rates`` or the codec's)."""
    import torch

    from discover.config import load_config
    from discover.plan import Plan

    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    plan = Plan(config, basedir=ROOT)
    entry = config["codecs"][args.codec]
    return config, plan, entry, args.rates or [str(r) for r in entry["rates"]]


def codec_with(config: dict, codec: str, sources: dict[str, str]):
    """The codec entry of the config with the tasks' mask sources replaced."""
    from discover.codecs import get_codec

    entry = dict(config["codecs"][codec])
    entry["tasks"] = {t: {"mask": s} for t, s in sources.items()}
    return get_codec(codec, {"codecs": {codec: entry}})


def human_bytes(container) -> int:
    from discover.discover_codec.consumers import HUMAN

    return len(container.for_consumer(HUMAN).to_bytes())


def measure(model, images, grounded, annotations, default, partial) -> dict:
    """Byte counts of one rate point over every image (see the module docstring)."""
    from discover.discover_codec.model import masks_from_boxes

    out = dict.fromkeys(("pixels", "shared", "a_human", "a_separate"), 0)
    out.update(dict.fromkeys(("b_human", "b_once", "positions", "overlap", "det", "gt"), 0))
    for image_id, image in images:
        h, w = image.shape[:2]
        out["pixels"] += h * w
        anns = annotations[image_id]
        grounding = grounded.get(image_id, {})

        # (a) the embedded default
        masks = masks_from_boxes(default.task_boxes(anns, TASKS, grounding), h, w)
        full = model.encode(image, masks)
        out["a_human"] += human_bytes(full)
        if len(full.parts) == 1:
            out["shared"] += 1
            alone = [model.encode(image, {t: masks[t]}) for t in TASKS]
            for one in alone:
                if one.parts[0].stream != full.parts[0].stream or one.rest != full.rest:
                    raise SystemExit(f"image {image_id}: a task encoded alone has other streams")
            separate = replace(full, parts=[one.parts[0] for one in alone])
            out["a_separate"] += human_bytes(separate)
        else:
            out["a_separate"] += human_bytes(full)

        # (b) detection grounded, instance_segmentation on gt boxes
        masks = masks_from_boxes(partial.task_boxes(anns, TASKS, grounding), h, w)
        det, seg = masks["detection"], masks["instance_segmentation"]
        pipeline = model.encode(image, masks)
        once = model.encode(image, {"detection": det, "instance_segmentation": seg & ~det})
        if once.rest != pipeline.rest:
            raise SystemExit(f"image {image_id}: the rest differs with the same union of masks")
        out["b_human"] += human_bytes(pipeline)
        out["b_once"] += human_bytes(once)
        out["positions"] += det.size
        out["overlap"] += int((det & seg).sum())
        out["det"] += int(det.sum())
        out["gt"] += int(seg.sum())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument("--codec", default="discover-mini")
    ap.add_argument("--dataset", default="scenes")
    ap.add_argument("--rates", nargs="*", help="λ_R values (default: the codec's rates)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()

    from discover.config import grounding_config
    from discover.discover_codec.model import load_model_dir

    t0 = time.perf_counter()
    config, plan, entry, rates = codec_run(args)
    default = codec_with(config, args.codec, {t: "grounding" for t in TASKS})
    partial = codec_with(
        config, args.codec, {"detection": "grounding", "instance_segmentation": "gt"}
    )
    with tempfile.TemporaryDirectory() as tmp:
        images, grounded, annotations, _ = ground(config, plan, args.dataset, Path(tmp))
    t_ground = time.perf_counter() - t0
    results = {}
    for rate in rates:
        model = load_model_dir(entry.get("trained") or args.codec, rate)
        results[rate] = measure(model, images, grounded, annotations, default, partial)
    wall = time.perf_counter() - t0

    ds = config["datasets"][args.dataset]
    g = grounding_config(config)
    options = ", ".join(f"{k}: {v}" for k, v in (g.get(g["backend"]) or {}).items())
    first = results[rates[0]]
    print(
        f"{args.dataset}: {len(images)} images ({ds['type']} {ds.get('split', '')}), "
        f"{first['pixels']:,} pixels; {args.codec}; grounding: {g['backend']} ({options})"
    )
    print(f"\n(a) embedded default: {' and '.join(TASKS)} masks from the grounding")
    print(
        f"{'λ_R':>4}{'shared':>8}{'human B':>10}{'bpp':>8}{'separate B':>12}{'bpp':>8}"
        f"{'saved B':>9}{'% of separate':>15}"
    )
    for rate, r in results.items():
        saved = r["a_separate"] - r["a_human"]
        print(
            f"{rate:>4}{r['shared']:>5}/{len(images):<2}{r['a_human']:>10}"
            f"{8 * r['a_human'] / r['pixels']:>8.4f}{r['a_separate']:>12}"
            f"{8 * r['a_separate'] / r['pixels']:>8.4f}{saved:>9}"
            f"{100 * saved / r['a_separate']:>15.2f}"
        )
    print(
        "\n(b) partial overlap: detection from the grounding, instance_segmentation on gt boxes;"
        f"\n    latent positions: detection {first['det'] / first['positions']:.1%}, "
        f"gt {first['gt'] / first['positions']:.1%}, "
        f"overlap {first['overlap'] / first['positions']:.1%} "
        f"({first['overlap'] / max(first['gt'], 1):.1%} of the gt mask)"
    )
    print(
        f"{'λ_R':>4}{'human B':>10}{'bpp':>8}{'overlap once B':>16}{'bpp':>8}"
        f"{'overlap cost B':>16}{'% of human':>12}"
    )
    for rate, r in results.items():
        cost = r["b_human"] - r["b_once"]
        print(
            f"{rate:>4}{r['b_human']:>10}{8 * r['b_human'] / r['pixels']:>8.4f}"
            f"{r['b_once']:>16}{8 * r['b_once'] / r['pixels']:>8.4f}{cost:>16}"
            f"{100 * cost / r['b_human']:>12.2f}"
        )
    print(
        f"\nwall {wall:.1f} s (grounding {t_ground:.1f} s), {args.threads} torch thread(s), "
        f"{5 * len(rates) * len(images)} encodes at most"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
