"""The ``discover`` command line.

Each command imports what it needs when it runs: reading a stream's header or listing models
loads neither PyTorch nor pandas.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from discover.discover_codec.consumers import HUMAN, MACHINE, VIEWERS
from discover.discover_codec.model_index import find_model_dir, repo_models
from discover.errors import DiscoverError
from discover.io import atomic_path, write_bytes_atomic

#: The repository this package was installed from (its Snakefile, config.yaml and weights/).
REPO = Path(__file__).resolve().parents[1]


def _read_curve(path: str, metric: str):
    import pandas as pd  # only `discover bd` reads CSVs

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
    from discover.config import fill_defaults, load_schema  # jsonschema and the registries

    section: dict = {}
    fill_defaults(section, load_schema()["properties"]["bd"])
    return section


def cmd_bd(args: argparse.Namespace) -> int:
    from discover.bd import bd  # bjontegaard, pandas: only for this command

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
    import pandas as pd  # only `discover bd` reads CSVs

    # bjontegaard and pandas: only for this command
    from discover.bd import bd_bootstrap
    from discover.resampling import resample_counts
    from discover.stages.bootstrap import Resampler, read_row_samples

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


def _config(path: str | None) -> tuple[dict, Path]:
    """The config a command reads: ``--config``, else ./config.yaml, else the repository's
    (whose relative paths, weights/ among them, are the repository's: the command runs there,
    as ``snakemake`` does in its working directory)."""
    if path is None:
        if Path("config.yaml").is_file():
            path = "config.yaml"
        elif (REPO / "Snakefile").is_file() and (REPO / "config.yaml").is_file():
            path = str(REPO / "config.yaml")
            print(f"config: {path} (the repository's; there is no ./config.yaml)")
            os.chdir(REPO)
        else:
            raise DiscoverError("no ./config.yaml here; name one with --config")
    from discover.config import load_config  # jsonschema and the registries

    return load_config(path), Path(path)


def _plan(config: dict):
    from discover.plan import Plan  # the plan reads no torch, but pandas-free commands skip it

    return Plan(config, basedir=REPO if (REPO / "Snakefile").is_file() else ".")


def cmd_info(args: argparse.Namespace) -> int:
    config, path = _config(args.config)
    plan = _plan(config)
    print(f"config: {path}")
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


def check_codec(plan, name: str) -> list[str]:
    """What one codec's jobs load, checked as its DAG jobs will load it: each rate point's codec
    built from the job config the DAG gives it (trained weights at their paths under weights/,
    official ones from the weights cache). A trained weight that is not there yet is fine:
    the DAG trains it before the codec's jobs run."""
    from discover.codecs import get_codec  # the codec modules load on use

    config = plan.config
    if name not in config["codecs"]:
        have = ", ".join(config["codecs"])
        raise DiscoverError(f"codec {name!r} is not in the config (it has: {have})")
    rates = [str(r) for r in config["codecs"][name]["rates"]]
    lines: list[str] = []
    trained_here = Path(plan.weights_dir).resolve()
    untrained = sorted(
        {
            f
            for rate in rates
            for f in plan.codec_weight_files(name, rate)
            if not Path(f).exists() and trained_here in Path(f).resolve().parents
        }
    )
    if untrained:
        lines.append(
            f"not trained yet ({', '.join(untrained)}): the DAG trains it first, or "
            f"`snakemake --cores 2 {' '.join(untrained)}` now"
        )
        return lines
    # one job config holding every rate point's weights, checked once
    job = plan.codec_job_config(name, rates[0])
    entry = job["codecs"][name]
    for rate in rates[1:]:
        weights = plan.codec_job_config(name, rate)["codecs"][name].get("weights")
        if weights:
            entry["weights"] = {**entry.get("weights", {}), **weights}
    entry["rates"] = list(config["codecs"][name]["rates"])
    return get_codec(name, job).check().split("; ")


def cmd_check_codec(args: argparse.Namespace) -> int:
    config, _ = _config(args.config)
    plan = _plan(config)
    names = [args.name] if args.name else list(config["codecs"])
    failed = 0
    for name in names:
        try:
            lines = check_codec(plan, name)
        except DiscoverError as exc:
            failed += 1
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            continue
        print(f"{name}: ok")
        for line in lines:
            print(f"  {line}")
    return 1 if failed else 0


def cmd_models(args: argparse.Namespace) -> int:
    models = repo_models()
    if not models:
        print(f"no DISCOVER models under {REPO / 'weights'}")
        return 0
    where = REPO / "weights"
    print(f"DISCOVER models under {where} (--model NAME; --rate is λ_R: larger, fewer bits)")
    for m in models:
        comp = m.composition
        how = f"composition ({comp.get('prior')})" if comp else "w/o composition (VAE decoder)"
        print(f"  {m.model_id:<16} rates {' '.join(m.rates):<12} {how}")
        print(f"  {'':<16} VAE {m.vae}")
    return 0


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
    if HUMAN in data:
        raise DiscoverError(
            f"{path}: a task cannot be named {HUMAN!r}, the consumer of the whole stream; rename it"
        )
    return data


def _config_codecs() -> dict:
    """The codecs of ./config.yaml or the repository's, for ``--model <codec name>``."""
    from discover.config import load_config  # jsonschema and the registries

    for path in (Path("config.yaml"), REPO / "config.yaml"):
        if path.is_file():
            try:
                return load_config(path).get("codecs") or {}
            except DiscoverError:
                return {}
    return {}


def _model(args: argparse.Namespace, model_id: str | None = None):
    return find_model_dir(args.model or model_id, _config_codecs())


def cmd_encode(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    # PyTorch loads only for the commands that code or decode a stream
    from discover.discover_codec.model import load_model_dir, masks_from_boxes

    boxes = _read_boxes(args.mask_from) if args.mask_from else {}
    found = _model(args)
    found.weights(args.rate)  # a rate the model lacks fails before anything is read
    try:
        with Image.open(args.image) as img:
            image = np.asarray(img.convert("RGB"))
    except Exception as exc:
        raise DiscoverError(f"{args.image}: not a readable image ({exc})") from exc
    model = load_model_dir(found, args.rate, vae=args.vae, cache=args.weights_cache)
    with _memory_hint(args.image, "encoding", *image.shape[:2]):
        container = model.encode(image, masks_from_boxes(boxes, *image.shape[:2]))
    write_bytes_atomic(args.output, container.to_bytes())
    sizes = container.consumer_bytes()
    pixels = image.shape[0] * image.shape[1]
    print(", ".join(f"{c}: {8 * n / pixels:.4f} bpp" for c, n in sizes.items()))
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from PIL import Image

    # PyTorch loads only for the commands that code or decode a stream
    from discover.discover_codec.model import load_model_dir

    container = _read_container(args.input)
    try:  # a consumer the stream cannot serve fails before any model loads
        container.for_consumer(args.consumer)
    except DiscoverError as exc:
        raise DiscoverError(f"{args.input}: {exc}") from exc
    found = _model(args, container.model_id)
    compose = found.composition is not None and not args.no_composition
    viewer = args.viewer or (HUMAN if args.consumer == HUMAN else MACHINE)
    if not compose and (args.steps is not None or args.viewer is not None):
        why = "--no-composition" if args.no_composition else f"model {found.model_id!r} has none"
        raise DiscoverError(f"--steps and --viewer choose the composition's sampling ({why})")
    model = load_model_dir(
        found, container.rate, vae=args.vae, cache=args.weights_cache, device=args.device
    )
    with _memory_hint(args.input, "decoding", container.height, container.width):
        image, how = _decode(args, found, model, container, viewer, compose)
    with atomic_path(args.output) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    print(f"{args.output}: {args.consumer}'s stream, {how}")
    return 0


def _decode(args, found, model, container, viewer: str, compose: bool):
    if compose:
        # diffusers loads only for a decode with composition
        from discover.composition import CompositionPipeline, CompositionSettings, decode_composed

        spec = dict(found.composition)
        if args.steps is not None:
            spec["steps"] = {**spec.get("steps", {}), viewer: args.steps}
        settings = CompositionSettings.from_dict(spec)
        composer = CompositionPipeline.from_settings(
            settings, container.rate, cache=args.weights_cache, device=args.device
        )
        image = decode_composed(
            model, container, args.consumer, composer, settings, args.input, viewer
        )
        how = f"composed, {settings.steps_for(viewer)} steps for the {viewer} viewer"
    else:
        image = model.decode(container, args.consumer, args.input)
        how = "VAE decoder (w/o composition)"
    return image, how


@contextlib.contextmanager
def _memory_hint(path: str, what: str, height: int, width: int):
    """Running out of memory as a message naming the image and what it needs."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        text = str(exc)
        if not isinstance(exc, MemoryError) and "alloc" not in text and "out of memory" not in text:
            raise
        raise DiscoverError(
            f"{path}: out of memory {what} a {width}x{height} image "
            f"({text.splitlines()[0] if text else type(exc).__name__}). Measured with the "
            "committed mini model on CPU at 4096x4096: encoding peaks at about 3 GB, decoding "
            "at about 1.7 GB (the VAE decodes in tiles above 1 MP; composition needs more). "
            "Free memory or code a smaller image"
        ) from exc


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

    config_help = "config file (default: ./config.yaml, else the repository's)"
    p = sub.add_parser("info", help="summarise a config: datasets, codecs, job counts")
    p.add_argument("--config", default=None, help=config_help)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "check-codec",
        help="verify that what a codec's DAG jobs load is there: binaries, weights, VAE, prior",
    )
    p.add_argument("name", nargs="?", help="codec name in the config (default: all)")
    p.add_argument("--config", default=None, help=config_help)
    p.set_defaults(func=cmd_check_codec)

    def model_args(p, required: bool) -> None:
        p.add_argument(
            "--model",
            required=required,
            help="a model directory (r<λ_R>.pth.tar, model_index.json), the name of one under "
            "the repository's weights/, or a discover codec of the config (`discover models` "
            "lists them)" + ("" if required else "; default: the model the stream names"),
        )
        p.add_argument(
            "--vae", help="VAE directory or Hub id (default: the one model_index.json names)"
        )
        p.add_argument("--weights-cache", default=None, help="weights cache for Hub models")

    p = sub.add_parser("encode", help="encode an image into a DISCOVER .dsc stream")
    p.add_argument("image")
    p.add_argument("-o", "--output", required=True)
    p.add_argument(
        "--rate",
        required=True,
        help="rate point: the λ_R the model was trained with; a larger λ_R spends fewer bits "
        "(the committed models: 1 2 4 8, 8 the fewest; `discover models`)",
    )
    p.add_argument(
        "--mask-from",
        help="JSON {task: [[x, y, w, h], ...]} of pixel boxes: a stream per task (not 'human')",
    )
    model_args(p, required=True)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser(
        "decode",
        help="decode a .dsc stream for a consumer (with composition when the model has it)",
    )
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True, help="PNG to write")
    p.add_argument("--consumer", default=HUMAN, help="human (default: all of ŷ) or a task name")
    p.add_argument(
        "--viewer",
        choices=VIEWERS,
        help="who looks at the composed image: its sampling steps (the model's "
        "model_index.json; paper: 8 for machine, 50 for human). Default: human for the human "
        "consumer, machine for a task",
    )
    p.add_argument("--steps", type=int, help="DDIM steps of the composition (overrides --viewer's)")
    p.add_argument(
        "--no-composition",
        action="store_true",
        help="the VAE decoder on ẑ_c (DISCOVER w/o composition), also for a composition model",
    )
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    model_args(p, required=False)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("models", help="the DISCOVER models under weights/, their rates and parts")
    p.set_defaults(func=cmd_models)

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
    except BrokenPipeError:  # `discover info | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
