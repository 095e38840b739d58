"""The ``discover`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from discover.bd import bd, bd_bootstrap
from discover.codecs import get_codec
from discover.config import fill_defaults, load_config, load_schema
from discover.errors import DiscoverError
from discover.io import atomic_path, write_bytes_atomic
from discover.plan import Plan
from discover.resampling import resample_counts
from discover.stages.bootstrap import Resampler, read_row_samples


def _read_curve(path: str, metric: str) -> tuple[pd.Series, pd.Series]:
    p = Path(path)
    if not p.is_file():
        raise DiscoverError(f"{path}: no such file")
    try:
        df = pd.read_csv(p)
    except Exception as exc:
        raise DiscoverError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in ("bpp", metric) if c not in df.columns]
    if missing:
        raise DiscoverError(
            f"{path}: missing column(s) {', '.join(missing)} "
            f"(has: {', '.join(map(str, df.columns))})"
        )
    try:
        return df["bpp"].astype(float), df[metric].astype(float)
    except ValueError as exc:
        raise DiscoverError(f"{path}: non-numeric values in 'bpp' or {metric!r}: {exc}") from exc


def bd_defaults() -> dict:
    """The config's ``bd`` section as the schema fills it in: the CLI and the pipeline share
    their defaults."""
    section: dict = {}
    fill_defaults(section, load_schema()["properties"]["bd"])
    return section


def cmd_bd(args: argparse.Namespace) -> int:

    defaults = bd_defaults()
    ar, am = _read_curve(args.anchor, args.metric)
    tr, tm = _read_curve(args.test, args.metric)
    kw = {
        "method": args.method or defaults["method"],
        "anchor_name": args.anchor,
        "test_name": args.test,
        "higher_is_better": not args.lower_is_better,
        "envelope": args.envelope or defaults["envelope"],
        "min_points": defaults["min_points"],
        "min_front_points": defaults["min_front_points"],
    }
    r = bd(ar, am, tr, tm, **kw)
    min_overlap = defaults["flags"]["min_overlap"]
    print(f"method: {r.method}   envelope: {kw['envelope']}")
    print(f"BD-rate: {r.bd_rate:.4f} %")
    print(f"BD-{args.metric}: {r.bd_metric:.6f}")
    for what, value in (("quality", r.overlap_quality), ("log-rate", r.overlap_rate)):
        warn = f"  (below {min_overlap:.0%}: the value cannot hold)" if value < min_overlap else ""
        print(f"overlap along {what}: {value:.0%}{warn}")
    if r.note:
        print(f"note: {r.note}")
    if args.anchor_per_image or args.test_per_image:
        if not (args.anchor_per_image and args.test_per_image):
            raise DiscoverError("an interval needs both --anchor-per-image and --test-per-image")
        print(_bd_interval(args, kw, defaults))
    return 0


def _bd_interval(args: argparse.Namespace, kw: dict, defaults: dict) -> str:
    """The bootstrap interval line of ``discover bd`` from two per-image CSVs."""
    boot = defaults["bootstrap"]
    resamples = boot["resamples"] if args.resamples is None else args.resamples
    seed = boot["seed"] if args.seed is None else args.seed
    level = boot["level"] if args.level is None else args.level
    ids = []
    for path in (args.anchor_per_image, args.test_per_image):
        if not Path(path).is_file():
            raise DiscoverError(f"{path}: no such file")
        ids.append(set(pd.read_csv(path, dtype={"id": str}, usecols=["id"])["id"]))
    if ids[0] != ids[1]:
        raise DiscoverError(
            f"{args.anchor_per_image} and {args.test_per_image} hold different images "
            f"(e.g. {sorted(ids[0] ^ ids[1])[0]!r}): a paired bootstrap needs the same ones"
        )
    images = sorted(ids[0])
    rows = [read_row_samples(p, images, p) for p in (args.anchor_per_image, args.test_per_image)]
    resampler = Resampler(resample_counts(len(images), resamples, seed))
    curves = []
    for s in rows:
        curves += [resampler.bpp(s), resampler.curve(s, args.metric)]
    i = bd_bootstrap(*curves, level=level, **kw)
    line = (
        f"{level:.0%} interval ({i.resamples} of {resamples} resamples of {len(images)} images, "
        f"seed {seed}): BD-rate [{i.bd_rate_lo:.4f}, {i.bd_rate_hi:.4f}] %, "
        f"BD-{args.metric} [{i.bd_metric_lo:.6f}, {i.bd_metric_hi:.6f}]"
    )
    return line


def cmd_info(args: argparse.Namespace) -> int:

    config = load_config(args.config)
    plan = Plan(config)
    print(f"config: {args.config}")
    print(f"output_dir: {plan.out}   seed: {config['seed']}   shard_size: {config['shard_size']}")
    print("datasets:")
    for name in plan.datasets:
        entry = config["datasets"][name]
        print(
            f"  {name:<16} {entry['type']:<18} {plan.num_images(name):>7} images "
            f"{len(plan.shards(name)):>5} shards"
        )
    print("codecs:")
    for name in plan.codecs:
        entry = config["codecs"][name]
        mark = "  (BD anchor)" if name == plan.anchor else ""
        print(f"  {name:<16} {entry['type']:<18} rates {entry['rates']}{mark}")
    print(f"metrics: {', '.join(plan.metrics)}   BD method: {config['bd']['method']}")
    print("jobs:")
    for rule, n in plan.job_count().items():
        print(f"  {rule:<18} {n:>8}")
    return 0


def cmd_check_codec(args: argparse.Namespace) -> int:

    config = load_config(args.config)
    names = [args.name] if args.name else list(config["codecs"])
    failed = 0
    for name in names:
        try:
            print(f"{name}: ok ({get_codec(name, config).check()})")
        except DiscoverError as exc:
            failed += 1
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
    return 1 if failed else 0


# -- DISCOVER streams -----------------------------------------------------------------------
def _read_container(path: str):
    # PyTorch loads only for the commands that code or read a stream
    from discover.discover_codec.bitstream import Container

    p = Path(path)
    if not p.is_file():
        raise DiscoverError(f"{path}: no such file")
    return Container.from_bytes(p.read_bytes(), str(p))


def _read_boxes(path: str) -> dict:
    import json

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DiscoverError(f"{path}: not a readable JSON file ({exc})") from exc
    ok = isinstance(data, dict) and all(
        isinstance(v, list)
        and all(
            isinstance(b, list) and len(b) == 4 and all(isinstance(x, int | float) for x in b)
            for b in v
        )
        for v in data.values()
    )
    if not ok:
        raise DiscoverError(
            f"{path}: expected {{task: [[x, y, w, h], ...], ...}} (pixel boxes per task)"
        )
    return data


def cmd_encode(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    # PyTorch loads only for the commands that code or read a stream
    from discover.discover_codec.model import load_model_dir, masks_from_boxes

    try:
        with Image.open(args.image) as img:
            image = np.asarray(img.convert("RGB"))
    except Exception as exc:
        raise DiscoverError(f"{args.image}: not a readable image ({exc})") from exc
    boxes = _read_boxes(args.mask_from) if args.mask_from else {}
    model = load_model_dir(args.model, args.rate, vae=args.vae, cache=args.weights_cache)
    container = model.encode(image, masks_from_boxes(boxes, *image.shape[:2]))
    write_bytes_atomic(args.output, container.to_bytes())
    sizes = container.consumer_bytes()
    pixels = image.shape[0] * image.shape[1]
    print(", ".join(f"{c}: {8 * n / pixels:.4f} bpp" for c, n in sizes.items()))
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from PIL import Image

    # PyTorch loads only for the commands that code or read a stream
    from discover.discover_codec.model import load_model_dir

    container = _read_container(args.input)
    model = load_model_dir(
        args.model or container.model_id, container.rate, vae=args.vae, cache=args.weights_cache
    )
    image = model.decode(container, args.consumer, args.input)
    with atomic_path(args.output) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    c = _read_container(args.input)
    pixels = c.height * c.width
    print(f"file: {args.input}")
    print(f"model: {c.model_id}  weights: {c.weights.hex()}  rate: {c.rate}")
    print(f"encoded on: {c.device}")
    print(f"image: {c.width}x{c.height}  latent grid: {c.grid[1]}x{c.grid[0]}")
    for p in c.parts:
        print(f"part {'+'.join(p.names)}: {int(p.mask.sum())}/{p.mask.size} latent positions")
    print("streams (bytes):")
    for part, n in c.sizes().items():
        print(f"  {part:<20} {n:>9}")
    print("consumers:")
    for consumer, n in c.consumer_bytes().items():
        print(f"  {consumer:<20} {n:>9} bytes  {8 * n / pixels:.5f} bpp")
    return 0


def cmd_extract(args: argparse.Namespace) -> int:

    c = _read_container(args.input)
    write_bytes_atomic(args.output, c.for_consumer(args.consumer).to_bytes())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="discover", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("bd", help="BD-rate and BD-metric between two RD CSV files")
    p.add_argument("--anchor", required=True, help="RD CSV of the anchor (columns bpp, METRIC)")
    p.add_argument("--test", required=True, help="RD CSV of the tested codec")
    p.add_argument("--metric", default="psnr", help="quality column (default psnr)")
    p.add_argument(
        "--method",
        default=None,
        choices=["pchip", "cubic", "akima"],
        help="interpolation (default: the pipeline's, bd.method: pchip)",
    )
    p.add_argument(
        "--lower-is-better",
        action="store_true",
        help="the metric improves downwards (LPIPS, DISTS, FID)",
    )
    p.add_argument(
        "--envelope",
        default=None,
        choices=["none", "pareto"],
        help="pareto (the pipeline's default, bd.envelope): drop points below a cheaper point "
        "of the same curve first; none: a non-monotone curve is an error",
    )
    p.add_argument(
        "--anchor-per-image",
        help="the anchor's per-image CSV (results/metrics/<dataset>/<codec>/per_image.csv): "
        "with --test-per-image, prints the bootstrap interval over images",
    )
    p.add_argument("--test-per-image", help="the tested codec's per-image CSV")
    p.add_argument("--resamples", type=int, help="bootstrap resamples (default bd.bootstrap)")
    p.add_argument("--seed", type=int, help="bootstrap seed (default bd.bootstrap.seed)")
    p.add_argument("--level", type=float, help="interval level (default 0.95)")
    p.set_defaults(func=cmd_bd)

    p = sub.add_parser("info", help="summarise a config: datasets, codecs, job counts")
    p.add_argument("--config", default="config.yaml")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("check-codec", help="verify that a codec's binaries are present")
    p.add_argument("name", nargs="?", help="codec name in the config (default: all)")
    p.add_argument("--config", default="config.yaml")
    p.set_defaults(func=cmd_check_codec)

    def model_args(p, required: bool) -> None:
        p.add_argument(
            "--model",
            required=required,
            help="model directory (r<rate>.pth.tar, vae/) or a name under weights/"
            + ("" if required else " (default: the stream's model id)"),
        )
        p.add_argument("--vae", help="VAE directory or Hub id (default: the model's vae/)")
        p.add_argument("--weights-cache", default=None, help="weights cache for Hub models")

    p = sub.add_parser("encode", help="encode an image into a DISCOVER .dsc stream")
    p.add_argument("image")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--rate", required=True, help="rate point (λ_R of the model)")
    p.add_argument("--mask-from", help="JSON {task: [[x, y, w, h], ...]} of pixel boxes")
    model_args(p, required=True)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="decode a .dsc stream for a consumer (w/o composition)")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True, help="PNG to write")
    p.add_argument("--consumer", default="human", help="human (default) or a task name")
    model_args(p, required=False)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("inspect", help="header, stream sizes and bpp per consumer of a .dsc")
    p.add_argument("input")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("extract", help="cut a consumer's stream out of a .dsc (no re-encoding)")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--consumer", required=True, help="a task name (or human: the whole stream)")
    p.set_defaults(func=cmd_extract)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DiscoverError as exc:
        print(f"discover {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
