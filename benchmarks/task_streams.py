"""Where DISCOVER's task streams lose accuracy, on the embedded default.

A task stream carries ŷ inside the task's latent mask (from the grounding) and ẑ; the decoder
fills the rest from ẑ alone. When its task metric falls short of the full stream's, three causes
are possible, and this script separates them on one dataset (images, grounding, task models and
codec as the pipeline's stage functions make them; images decoded without composition):

* the grounding misses objects: the share of annotated objects the detection mask covers (at
  least half of the object's latent cells inside it), and the task stream coded with the
  annotated boxes as its mask (``gt boxes``: an oracle grounding);
* the pixels inside the mask are worse than the full stream's: PSNR inside and outside the mask
  (detection's), and the task stream's image with the full stream's pixels pasted inside the
  mask (``full inside, task outside``);
* the rest of the image misleads the task model: the task stream's pixels inside the mask over
  the reference image outside (``task inside, reference outside``), and, for what the seam at
  the mask's edge costs by itself, the full stream's pixels inside over the reference outside.

Printed per λ_R: bits of each stream (bpp over the dataset), bbox AP (detection) and segm AP
(instance segmentation) of the reference images and of each of those images.

    python benchmarks/task_streams.py [--codec discover-mini] [--dataset scenes] [--rates 1 8]
        [--model DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from stream_overlap import TASKS, codec_run, codec_with, ground  # noqa: E402

METRIC = {"detection": "bbox_AP", "instance_segmentation": "segm_AP"}


def prepared(config: dict, plan, dataset: str, tmp: Path):
    """Per image (stem, COCO id, pixels, annotations, task -> grounded boxes), and the merged
    annotations, as the pipeline's stages produce them (:func:`stream_overlap.ground`)."""
    from discover.shards import coco_ids, merged_annotations

    images, grounded, annotations, refs = ground(config, plan, dataset, tmp)
    ids = {stem: coco for ref in refs for stem, coco in coco_ids(ref).items()}
    rows = [
        (stem, ids[stem], image, annotations[stem] or [], grounded.get(stem, {}))
        for stem, image in images
    ]
    return rows, merged_annotations(refs)


def upsample(mask: np.ndarray, h: int, w: int) -> np.ndarray:
    """A latent mask (one cell per 16 x 16 pixels) on the image's pixel grid."""
    s = 16
    return np.kron(mask, np.ones((s, s), dtype=bool))[:h, :w]


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    if not where.any():
        return float("nan")
    d = (a.astype(np.float64) - b.astype(np.float64))[where]
    return float(10 * np.log10(255**2 / max(np.mean(d**2), 1e-12)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument("--codec", default="discover-mini")
    ap.add_argument("--dataset", default="scenes")
    ap.add_argument("--rates", nargs="*", help="λ_R values (default: the codec's rates)")
    ap.add_argument("--model", help="a model directory (default: the codec's trained model)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    args = ap.parse_args()

    from discover.config import grounding_config
    from discover.discover_codec.model import load_model_dir, masks_from_boxes
    from discover.tasks import get_task

    t0 = time.perf_counter()
    config, plan, entry, rates = codec_run(args)
    grounded_codec = codec_with(config, args.codec, {t: "grounding" for t in TASKS})
    gt_codec = codec_with(config, args.codec, {t: "gt" for t in TASKS})
    models = {t: get_task(t, plan.task_job_config(t)) for t in TASKS}
    with tempfile.TemporaryDirectory() as tmp:
        images, gt_doc = prepared(config, plan, args.dataset, Path(tmp))
    categories = gt_doc["categories"]
    ids = [coco for _, coco, *_ in images]
    pixels = sum(im.shape[0] * im.shape[1] for _, _, im, _, _ in images)

    def score(task: str, decoded: list[np.ndarray]) -> float:
        preds = models[task].predict(zip(ids, decoded, strict=True), categories=categories)
        return models[task].evaluate(preds, gt_doc, ids)[METRIC[task]]

    # the grounding's coverage of the annotated objects (detection's mask)
    covered = objects = 0
    cells = cell_total = 0
    for _, _, im, anns, grounded in images:
        h, w = im.shape[:2]
        det = masks_from_boxes(grounded_codec.task_boxes(anns, TASKS, grounded), h, w)
        mask = det["detection"]
        cells += int(mask.sum())
        cell_total += mask.size
        for a in anns:
            if a.get("iscrowd", 0):
                continue
            one = masks_from_boxes({"o": [a["bbox"]]}, h, w)["o"]
            objects += 1
            covered += int((one & mask).sum() >= 0.5 * one.sum())
    g = grounding_config(config)
    options = ", ".join(f"{k}: {v}" for k, v in (g.get(g["backend"]) or {}).items())
    print(
        f"{args.dataset}: {len(images)} images, {objects} annotated objects; {args.codec}; "
        f"grounding {g['backend']} ({options}): detection mask {cells / cell_total:.1%} of the "
        f"latent cells, covers {covered}/{objects} objects ({covered / max(objects, 1):.0%})"
    )
    clean = {t: score(t, [im for _, _, im, _, _ in images]) for t in TASKS}
    print(f"reference images: bbox AP {clean['detection']:.3f}, segm AP "
          f"{clean['instance_segmentation']:.3f}\n")  # fmt: skip
    print(
        "| λ_R | stream | bpp | bbox AP | segm AP | PSNR in mask | PSNR outside |\n"
        "|---|---|---|---|---|---|---|"
    )
    for rate in rates:
        model = load_model_dir(args.model or entry.get("trained") or args.codec, rate)
        rows: dict[str, dict] = {}
        names = ("full", "task (grounding)", "task (gt boxes)", "full inside, task outside",
                 "task inside, reference outside", "full inside, reference outside")  # fmt: skip
        for name in names:
            rows[name] = {"bits": 0, "images": {t: [] for t in TASKS}, "in": [], "out": []}
        for _, _, im, anns, grounded in images:
            h, w = im.shape[:2]
            for codec, name in (
                (grounded_codec, "task (grounding)"),
                (gt_codec, "task (gt boxes)"),
            ):
                masks = masks_from_boxes(codec.task_boxes(anns, TASKS, grounded), h, w)
                c = model.encode(im, masks)
                full = model.decode(c, "human")
                for t in TASKS:
                    part = c.for_consumer(t)
                    task_im = model.decode(c, t)
                    inside = upsample(masks[t], h, w)
                    rows[name]["images"][t].append(task_im)
                    if t == "detection":
                        rows[name]["bits"] += 8 * len(part.to_bytes())
                        rows[name]["in"].append(psnr(task_im, im, inside))
                        rows[name]["out"].append(psnr(task_im, im, ~inside))
                    if codec is grounded_codec:
                        mixed = np.where(inside[..., None], full, task_im)
                        rows["full inside, task outside"]["images"][t].append(mixed)
                        kept = np.where(inside[..., None], task_im, im)
                        rows["task inside, reference outside"]["images"][t].append(kept)
                        seam = np.where(inside[..., None], full, im)
                        rows["full inside, reference outside"]["images"][t].append(seam)
                        if t == "detection":
                            rows["full"]["bits"] += 8 * len(c.for_consumer("human").to_bytes())
                            rows["full"]["in"].append(psnr(full, im, inside))
                            rows["full"]["out"].append(psnr(full, im, ~inside))
                            for tt in TASKS:
                                rows["full"]["images"][tt].append(full)
        for name, r in rows.items():
            bpp = f"{r['bits'] / pixels:.4f}" if r["bits"] else ""
            aps = [score(t, r["images"][t]) for t in TASKS]
            p_in = f"{np.nanmean(r['in']):.2f}" if r["in"] else ""
            p_out = f"{np.nanmean(r['out']):.2f}" if r["out"] else ""
            print(f"| {rate} | {name} | {bpp} | {aps[0]:.3f} | {aps[1]:.3f} | {p_in} | {p_out} |")
        sys.stdout.flush()
    print(f"\nwall {time.perf_counter() - t0:.1f} s, {args.threads} torch thread(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
