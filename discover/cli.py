"""The ``discover`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from discover.errors import DiscoverError


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


def cmd_bd(args: argparse.Namespace) -> int:
    from discover.bd import bd

    ar, am = _read_curve(args.anchor, args.metric)
    tr, tm = _read_curve(args.test, args.metric)
    r = bd(
        ar,
        am,
        tr,
        tm,
        method=args.method,
        anchor_name=args.anchor,
        test_name=args.test,
        higher_is_better=not args.lower_is_better,
    )
    print(f"method: {r.method}")
    print(f"BD-rate: {r.bd_rate:.4f} %")
    print(f"BD-{args.metric}: {r.bd_metric:.6f}")
    if r.note:
        print(f"note: {r.note}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from discover.config import load_config
    from discover.workflow import Plan

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
    from discover.codecs import get_codec
    from discover.config import load_config

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="discover", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("bd", help="BD-rate and BD-metric between two RD CSV files")
    p.add_argument("--anchor", required=True, help="RD CSV of the anchor (columns bpp, METRIC)")
    p.add_argument("--test", required=True, help="RD CSV of the tested codec")
    p.add_argument("--metric", default="psnr", help="quality column (default psnr)")
    p.add_argument("--method", default="pchip", choices=["pchip", "cubic", "akima"])
    p.add_argument(
        "--lower-is-better",
        action="store_true",
        help="the metric improves downwards (LPIPS, DISTS, FID)",
    )
    p.set_defaults(func=cmd_bd)

    p = sub.add_parser("info", help="summarise a config: datasets, codecs, job counts")
    p.add_argument("--config", default="config.yaml")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("check-codec", help="verify that a codec's binaries are present")
    p.add_argument("name", nargs="?", help="codec name in the config (default: all)")
    p.add_argument("--config", default="config.yaml")
    p.set_defaults(func=cmd_check_codec)
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
