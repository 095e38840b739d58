"""What a run costs before it is submitted: projected device-hours per codec and task.

Per-image work (the shard jobs: prepare, codec, DISCOVER encode and decodes, grounding, task
predictions) is measured in seconds per megapixel: Snakemake's benchmark file of each job
(``results/benchmarks/<rule>/...tsv``, column ``s``) over the pixels of the job's reference shard
(``results/<dataset>/reference/<shard>/index.csv``). The target config's plan then gives the
work of a full run: its datasets' images x rates x consumers, each shard's pixels.

    python benchmarks/cost.py --measured results                  # after `make demo`
    python benchmarks/cost.py --measured pilot/results --measured-config pilot.yaml \\
        --target configs/paper.yaml --pixels coco=0.27 imagenet=0.17 kodak=0.39 clic2020=0.59
    python benchmarks/cost.py --measured results --times benchmarks/data/h100_times.yaml \
        --file-lists --pixels coco=0.27 imagenet=0.18 kodak=0.39 clic2020=0.59

``--measured`` reads a finished run (the demo, or a pilot of the target config on a few images
per dataset, e.g. ``max_images: 8``); ``--times`` a table of seconds per megapixel measured
elsewhere (a GPU). Where the target has its data, its pixels are read from the datasets;
``--pixels`` gives a dataset's mean megapixels per image instead (for a config whose data is
not on this machine). Rows without a measurement print "not measured" and are left out of the
totals, which say so. With the target equal to the measured run, the projection is checked
against the sum of its measured job seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from discover.config import load_config  # noqa: E402
from discover.plan import Plan  # noqa: E402

#: shard rules -> how a benchmark file's path under results/benchmarks/<rule>/ reads
SHARD_RULES = {
    "prepare_shard": ("dataset", "shard"),
    "codec_shard": ("dataset", "key", "rate", "shard"),
    "discover_encode": ("dataset", "key", "rate", "shard"),
    "discover_decode": ("dataset", "key", "rate", "shard"),
    "ground_shard": ("dataset", "key", "shard"),
    "task_predict": ("dataset", "key", "row", "shard"),
}


def shard_megapixels(results: Path, dataset: str, shard: str) -> float:
    index = pd.read_csv(results / dataset / "reference" / shard / "index.csv")
    return float((index["width"] * index["height"]).sum()) / 1e6


def measured_rates(results: Path, plan: Plan) -> tuple[dict, float]:
    """(rule, key) -> seconds per megapixel of one pass (a task job covers all rates of its
    row: its seconds are split over them, ``plan`` says how many), and the measured seconds
    of all shard jobs."""
    seconds: dict = defaultdict(float)
    pixels: dict = defaultdict(float)
    total = 0.0
    for rule, parts in SHARD_RULES.items():
        for tsv in sorted((results / "benchmarks" / rule).rglob("*.tsv")):
            rel = tsv.relative_to(results / "benchmarks" / rule).with_suffix("").parts
            if rule == "discover_decode" and rel[-2] == "machine":  # the machine view
                rel, rule_key = rel[:-2] + rel[-1:], "discover_decode_machine"
            else:
                rule_key = rule
            fields = dict(zip(parts, rel, strict=True))
            s = float(pd.read_csv(tsv, sep="\t")["s"].iloc[0])
            total += s
            mp = shard_megapixels(results, fields["dataset"], fields["shard"])
            key = fields.get("key", "")
            if rule == "task_predict":
                row = fields["row"]
                mp *= 1 if row == "reference" else len(plan.rates(row))
                key = f"{key}: {row}"
            seconds[rule_key, key] += s
            pixels[rule_key, key] += mp
    return {k: seconds[k] / pixels[k] for k in seconds if pixels[k] > 0}, total


def planned_work(plan: Plan, pixels: dict[str, float]) -> list[dict]:
    """Every pass over a dataset in a full run of ``plan``: rule, key, device, megapixels and
    images (a codec's rate point, a DISCOVER consumer's decode, a task row's rate point)."""
    device = {c: "GPU" if plan.codec_gpus(c) else "CPU" for c in plan.codecs}
    work = []

    def add(rule: str, key: str, dev: str, d: str, times: int = 1) -> None:
        n = plan.num_images(d)
        work.extend(
            [{"rule": rule, "key": key, "device": dev, "mp": pixels[d] * n, "images": n}] * times
        )

    for d in plan.datasets:
        add("prepare_shard", "", "CPU", d)
        for c in plan.pipeline_codecs:
            if plan.runs_on(c, d):
                add("codec_shard", c, device[c], d, len(plan.rates(c)))
        for c in plan.discover_codecs:
            if plan.runs_on(c, d):
                add("discover_encode", c, device[c], d, len(plan.rates(c)))
                for k in plan.consumers(c, d):
                    add("discover_decode", f"{c}@{k}", device[c], d, len(plan.rates(c)))
        for row in plan.machine_view_rows(d):
            add("discover_decode_machine", row, device[row.split("@")[0]], d, len(plan.rates(row)))
        for t in sorted({t for c in plan.discover_codecs for t in plan.grounded_tasks(c, d)}):
            add("ground_shard", t, "GPU" if plan.grounding_gpus else "CPU", d)
    for t in plan.evaluated_tasks:
        dev = "GPU" if plan.task_gpus(t) else "CPU"
        for d in plan.task_datasets(t):
            add("task_predict", f"{t}: reference", dev, d)
            for row in plan.task_rows(d, t):
                add("task_predict", f"{t}: {row}", dev, d, len(plan.rates(row)))
    return work


def lookup(times: dict, rule: str, key: str, device: str) -> dict | None:
    """A key's time on ``device``: its own, else its task's (``"<task>: *"``), else the rule's
    (``"*"``). A time measured on another kind of device is not used."""
    for k in (key, f"{key.split(':')[0]}: *", "*"):
        if (rule, k, device) in times:
            return times[rule, k, device]
    return None


def target_pixels(plan: Plan, given: dict[str, float]) -> dict[str, float]:
    """Mean megapixels per image of each dataset: given, else read from the dataset."""
    from discover.datasets import get_dataset

    out = {}
    for d in plan.datasets:
        if d in given:
            out[d] = given[d]
            continue
        ds = get_dataset(d, plan.config)
        items = ds.list_items()
        sizes = [ds.load(item).shape[:2] for item in items]
        out[d] = sum(h * w for h, w in sizes) / len(sizes) / 1e6
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--measured", type=Path, help="results/ of a finished run")
    ap.add_argument("--measured-config", type=Path, default=ROOT / "config.yaml")
    ap.add_argument("--times", type=Path, help="YAML: rule -> key -> seconds per megapixel")
    ap.add_argument(
        "--target", type=Path, default=None, help="config to project (default: the measured one)"
    )
    ap.add_argument("--pixels", nargs="*", default=[], help="dataset=megapixels per image")
    ap.add_argument(
        "--file-lists",
        action="store_true",
        help="plan configs/paper.yaml on file lists of its datasets' sizes (no data needed; "
        "give --pixels)",
    )
    args = ap.parse_args()
    if args.measured is None and args.times is None:
        ap.error("give --measured (a finished run's results/) or --times")
    times: dict = {}
    measured_total = None
    if args.measured is not None:
        measured_plan = Plan(load_config(args.measured_config), basedir=ROOT)
        rates, measured_total = measured_rates(args.measured, measured_plan)
        for (rule, key), rate in rates.items():
            codec = key.split(": ")[-1].split("@")[0]
            task = key.split(": ")[0]
            if rule == "task_predict":
                gpu = measured_plan.task_gpus(task)
            elif rule == "ground_shard":
                gpu = measured_plan.grounding_gpus
            else:
                gpu = rule != "prepare_shard" and measured_plan.codec_gpus(codec)
            times[rule, key, "GPU" if gpu else "CPU"] = {"s_per_mp": rate}
    if args.times is not None:
        table = yaml.safe_load(args.times.read_text())
        device = str(table.pop("device", "GPU"))
        for rule, keys in table.items():
            times.update({(rule, str(k), device): dict(v) for k, v in keys.items()})
    target = args.target or args.measured_config
    with tempfile.TemporaryDirectory() as tmp:
        if args.file_lists:  # the paper's datasets as file lists, as benchmarks/dag_scale.py
            from dag_scale import write_config

            target = write_config(Path(tmp), 1.0, "paper")
        plan = Plan(load_config(target), basedir=ROOT)
        return report(args, plan, target, times, measured_total)


def report(args, plan: Plan, target: Path, times: dict, measured_total: float | None) -> int:
    given = {k: float(v) for k, v in (p.split("=", 1) for p in args.pixels)}
    work = planned_work(plan, target_pixels(plan, given))

    rows: dict = defaultdict(lambda: {"mp": 0.0, "images": 0})
    for w in work:
        row = rows[w["rule"], w["key"], w["device"]]
        row["mp"] += w["mp"]
        row["images"] += w["images"]
    print(f"target: {target}   measured: {args.measured or '-'}   times: {args.times or '-'}")
    print(
        f"{'rule':<24} {'codec / row / task':<48} {'dev':<4} {'images':>10} {'MP':>10} "
        f"{'time':>14} {'hours':>9}"
    )
    hours: dict = defaultdict(float)
    missing: dict = defaultdict(int)
    projected_s = 0.0
    for (rule, key, dev), row in sorted(rows.items()):
        t = lookup(times, rule, key, dev)
        head = f"{rule:<24} {key:<48} {dev:<4} {row['images']:>10,} {row['mp']:>10.1f}"
        if t is None:
            missing[dev] += 1
            print(f"{head} {'not measured':>14}")
            continue
        if "s_per_image" in t:
            s, shown = t["s_per_image"] * row["images"], f"{t['s_per_image']:.4f} s/img"
        else:
            s, shown = t["s_per_mp"] * row["mp"], f"{t['s_per_mp']:.3f} s/MP"
        hours[dev] += s / 3600
        projected_s += s
        print(f"{head} {shown:>14} {s / 3600:>9.3f}")
    for dev in sorted(set(hours) | set(missing)):
        note = f" (+ {missing[dev]} rows not measured)" if missing[dev] else ""
        print(f"projected {dev}-hours of per-image work: {hours[dev]:.2f}{note}")
    if measured_total is not None and target == args.measured_config:
        print(
            f"check against the measured run: projected {projected_s:.0f} s, measured "
            f"{measured_total:.0f} s of shard jobs (ratio {projected_s / measured_total:.3f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
