"""Images/s of batched codec jobs against the bare batched forward passes of the same models.

For each job (DISCOVER encode, DISCOVER decode without composition, the CompressAI codec shard
job of hyperprior-mini) and batch size, on one device, in one process:

* **job**: the pipeline's own stage function on a reference shard (``run_discover_encode``,
  ``run_discover_decode``, ``run_codec_shard``): image reading, forward passes, entropy coding,
  stream and PNG writing, PSNR, with its read-ahead and worker threads;
* **bare**: the network evaluations that job makes, and nothing else, at the same batch size:
  the batched transforms (g_a, h_a; g_s and the VAE decoder) on the same tensors, and per image
  what must be computed per image for a stream not to depend on its batch (ẑ's
  hyper-synthesis and the context models' passes over ŷ, group by group, phase by phase).

ratio = job images/s / bare images/s; target ≥ 0.9 on CPU, ≥ 0.8 on a GPU. The job and the
bare passes run in turn, ``--repeat`` pairs after a warm-up; images/s are medians, the ratio is
the median of the pairs' ratios. Also prints how the shard's sizes bucket, and with
``--coco-annotations`` / ``--image-folder`` / ``--shapes`` how a real dataset's mixed sizes
would (headers only, no pixels decoded), over the whole dataset and, since a job batches within
its shard, over shards of ``--shard-size`` images in the dataset's order.

    python benchmarks/batching.py [--images 16] [--size 512] [--batch-sizes 1 4]
        [--device cpu] [--threads 1] [--repeat 3]
    python benchmarks/batching.py --coco-annotations instances_val2017.json [--shard-size 250]
    python benchmarks/batching.py --shapes sizes.txt    # 'width height' per line
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from discover.batching import bucket_counts, size_batches, size_order  # noqa: E402
from discover.codecs import get_codec  # noqa: E402
from discover.datasets.synthetic_scenes import SceneGenerator  # noqa: E402
from discover.discover_codec.bitstream import Container  # noqa: E402
from discover.discover_codec.net import anchor_mask  # noqa: E402
from discover.discover_codec.vae import decode_latent  # noqa: E402
from discover.images import image_to_tensor  # noqa: E402
from discover.stages.codecs import run_codec_shard  # noqa: E402
from discover.stages.discover import run_discover_decode, run_discover_encode  # noqa: E402

MULTIPLE = 64


def make_shard(folder: Path, n: int, size: int, mixed: bool) -> list[tuple[int, int]]:
    """A reference shard of ``n`` synthetic scenes (``mixed``: a quarter of them in each of
    four sizes, two padded sizes, interleaved)."""
    folder.mkdir(parents=True)
    gen = SceneGenerator(0, "val", size, size + 64, 3, 6)
    sizes = []
    # padded to 64: size x size for the first two, (size - 64) x size for the other two
    shapes = [(size, size), (size - 16, size), (size - 80, size), (size - 100, size - 8)]
    rows = []
    for i in range(n):
        h, w = shapes[i % 4] if mixed else (size, size)
        image = np.ascontiguousarray(gen.render(i)[0][:h, :w])
        Image.fromarray(image).save(folder / f"im{i:04d}.png", compress_level=1)
        rows.append({"id": f"im{i:04d}", "width": w, "height": h, "label": 0, "source": "bench"})
        sizes.append((h, w))
    pd.DataFrame(rows).to_csv(folder / "index.csv", index=False)
    return sizes


def paired(job, bare, repeat: int, sync, load_s: float) -> tuple[float, float, float]:
    """Median job and bare seconds and the median of the per-pair ratios, the two run in turn
    (job, bare, job, bare, ...) after a warm-up of each, so that a drift of the machine's speed
    over the run (seen here: the same loop 30 % faster or slower minutes apart) moves both
    sides of a pair alike. The job's one-off model loading ``load_s`` is taken off its time."""
    job()
    bare()
    jobs, bares = [], []
    for _ in range(repeat):
        for fn, out in ((job, jobs), (bare, bares)):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            out.append(time.perf_counter() - t0)
    runs = [max(j - load_s, 1e-9) for j in jobs]
    ratio = statistics.median(b / j for b, j in zip(bares, runs, strict=True))
    return statistics.median(runs), statistics.median(bares), ratio


def timed(fn, repeat: int, sync) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def context_passes(net, hyper: torch.Tensor, y_hat: torch.Tensor) -> None:
    """The context models' forward passes of one image's full stream (the human consumer's
    rest stream), in the order the entropy coder runs them, without coding a symbol."""
    visible = torch.zeros_like(y_hat)
    anchors = anchor_mask(y_hat.shape[-2:], y_hat.device)
    for k in range(len(net.groups)):
        lo, hi = sum(net.groups[:k]), sum(net.groups[: k + 1])
        for phase, where in ((True, anchors), (False, ~anchors)):
            scales, means = net.group_params(k, phase, visible, hyper)
            net.gaussian(0).build_indexes(scales)
            visible[:, lo:hi] = torch.where(where, y_hat[:, lo:hi], visible[:, lo:hi])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (a job's threads:)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mixed", action="store_true", help="four sizes (two padded sizes)")
    ap.add_argument("--jobs", nargs="+", default=["encode", "decode", "compressai"])
    ap.add_argument("--coco-annotations", help="print how this COCO file's sizes bucket")
    ap.add_argument("--image-folder", help="print how this folder's image sizes bucket")
    ap.add_argument("--shapes", help="print how these sizes bucket ('width height' per line)")
    ap.add_argument(
        "--shard-size", type=int, default=250, help="images per shard job (the dataset's)"
    )
    args = ap.parse_args()

    if args.coco_annotations or args.image_folder or args.shapes:
        if args.coco_annotations:
            doc = json.loads(Path(args.coco_annotations).read_text())
            sizes = [(im["height"], im["width"]) for im in doc["images"]]
        elif args.shapes:
            sizes = []
            for n, line in enumerate(Path(args.shapes).read_text().splitlines(), 1):
                try:
                    w, h = (int(v) for v in line.split())
                except ValueError:
                    sys.exit(f"{args.shapes}:{n}: expected 'width height', got {line!r}")
                sizes.append((h, w))
        else:
            sizes = []
            for p in sorted(Path(args.image_folder).rglob("*")):
                if p.suffix.lower() in (".png", ".jpg", ".jpeg"):
                    with Image.open(p) as im:
                        sizes.append((im.height, im.width))
        print_buckets(sizes, args.shard_size)
        return

    torch.set_num_threads(args.threads)
    device = args.device
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    print(
        f"device {device}, torch threads {args.threads}, {args.images} images "
        f"{args.size}x{args.size}{' (mixed sizes)' if args.mixed else ''}, "
        f"median of {args.repeat}"
    )
    work = Path(tempfile.mkdtemp(prefix="batching-"))
    ref = work / "ref"
    sizes = make_shard(ref, args.images, args.size, args.mixed)
    print_buckets(sizes)
    images = [np.asarray(Image.open(ref / f"im{i:04d}.png")) for i in range(args.images)]
    print(
        "\n| job | batch | job images/s (its model loading) | bare images/s | ratio |"
        "\n|---|---|---|---|---|"
    )
    for bs in args.batch_sizes:
        measure(bs, args, device, sync, work, ref, sizes, images)


def measure(bs, args, device, sync, work, ref, sizes, images) -> None:
    """The three jobs at one batch size."""
    batches = size_batches(sizes, bs, MULTIPLE)

    def discover_cfg():
        entry = {"type": "discover", "trained": "discover-mini", "rates": [1]}
        entry.update(batch_size=bs, device=device)
        return {"codecs": {"d": entry}, "metrics": ["psnr"]}

    # what every job spends once, before its first image: loading the codec (and VAE)
    load_s = timed(lambda: get_codec("d", discover_cfg()).model(1), args.repeat, sync)
    c = get_codec("d", discover_cfg())
    model = c.model(1)
    net = model.net
    streams = work / f"dsc{bs}"
    if "encode" in args.jobs or "decode" in args.jobs:
        run_discover_encode(discover_cfg(), "d", "1", ref, streams, ["human"])

    if "encode" in args.jobs:

        def job_encode():
            out = work / "enc"
            run_discover_encode(discover_cfg(), "d", "1", ref, out, ["human"])

        @torch.inference_mode()
        def bare_encode():
            for batch in batches:
                x = c.filled([image_to_tensor(images[i]) for i in batch])
                x = torch.cat([_pad(t) for t in x]).to(device)
                y = net.g_a(x)
                z = net.hyper.h_a(y)
                for k in range(len(batch)):
                    z_hat = net.entropy_bottleneck.quantize(
                        z[k : k + 1], "dequantize", net.entropy_bottleneck._get_medians()
                    )
                    context_passes(net, net.hyper.h_s(z_hat), torch.round(y[k : k + 1]))

        row("DISCOVER encode", bs, args.images,
            paired(job_encode, bare_encode, args.repeat, sync, load_s), load_s)  # fmt: skip

    if "decode" in args.jobs:
        containers = [
            Container.from_bytes((streams / f"im{i:04d}.dsc").read_bytes(), "bench")
            for i in range(args.images)
        ]
        decoded = [model.decode_y(cont, "human") for cont in containers]

        def job_decode():
            run_discover_decode(
                discover_cfg(), "d", "1", "human", ref, streams, work / "dec", work / "m.csv"
            )

        @torch.inference_mode()
        def bare_decode():
            for batch in batches:
                for i in batch:
                    y_hat, z_hat = decoded[i]
                    context_passes(net, net.hyper.h_s(z_hat), y_hat)
                parts = c.filled([decoded[i] for i in batch])
                y = torch.cat([p[0] for p in parts])
                z = torch.cat([p[1] for p in parts])
                decode_latent(model.vae, net.synthesize(y, z))

        times = paired(job_decode, bare_decode, args.repeat, sync, load_s)
        row("DISCOVER decode (w/o composition)", bs, args.images, times, load_s)

    if "compressai" in args.jobs:
        entry = {
            "type": "compressai",
            "architecture": "bmshj2018-hyperprior",
            "weights": {3: str(ROOT / "weights" / "hyperprior-mini" / "q3.pth.tar")},
            "rates": [3],
            "batch_size": bs,
            "device": device,
        }
        cfg = {"codecs": {"h": entry}, "metrics": ["psnr"]}
        h = get_codec("h", cfg)
        hm = h.model(3)

        def job_cai():
            run_codec_shard(cfg, "h", "3", ref, work / "cai", work / "mc.csv")

        @torch.no_grad()
        def bare_cai():
            for batch in batches:
                x = c.filled([image_to_tensor(images[i]) for i in batch])
                x = torch.cat([_pad(t) for t in x]).to(device)
                y = hm.g_a(x)
                for k in range(len(batch)):
                    z = hm.h_a(torch.abs(y[k : k + 1]))
                    z_hat = hm.entropy_bottleneck.quantize(
                        z, "dequantize", hm.entropy_bottleneck._get_medians()
                    )
                    hm.gaussian_conditional.build_indexes(hm.h_s(z_hat))
                    hm.h_s(z_hat)  # the decoder's own hyper-synthesis
                hm.g_s(torch.round(y)).clamp_(0, 1)

        load_h = timed(lambda: get_codec("h", cfg).model(3), args.repeat, sync)
        times = paired(job_cai, bare_cai, args.repeat, sync, load_h)
        row("hyperprior-mini shard (encode + decode)", bs, args.images, times, load_h)


def _pad(x: torch.Tensor) -> torch.Tensor:
    from discover.discover_codec.net import pad_image

    return pad_image(x, MULTIPLE)


def row(name: str, bs: int, n: int, times: tuple[float, float, float], load_s: float) -> None:
    """Job images/s counted without the job's one-off model loading (printed apart: a shard
    of the paper's 250 images pays it once); the ratio is the median of the paired runs'."""
    run_s, bare_s, ratio = times
    print(
        f"| {name} | {bs} | {n / run_s:.2f} (+ {load_s:.2f} s loading) | {n / bare_s:.2f} "
        f"| {ratio:.2f} |"
    )


def print_buckets(sizes: list[tuple[int, int]], shard_size: int | None = None) -> None:
    """Padded sizes of ``sizes`` and what batching them costs: forward passes and the slots
    filled with copies (a bucket's last batch), over all images at once and, as jobs batch,
    within shards of ``shard_size`` images in order."""
    counts = bucket_counts(sizes, MULTIPLE)
    top = ", ".join(f"{w}x{h}: {n}" for (h, w), n in list(counts.items())[:8])
    print(
        f"{len(sizes)} images in {len(counts)} padded sizes (multiples of {MULTIPLE}; "
        f"width x height: images): {top}{' ...' if len(counts) > 8 else ''}"
    )
    orders = [("index", sizes)]
    if shard_size and shard_size < len(sizes):
        by_size = [sizes[i] for i in size_order(sizes, MULTIPLE)]
        orders = [("index", sizes), ("size", by_size)]
    for order, listed in orders:
        shards = [listed]
        if len(orders) > 1:
            shards = [listed[k : k + shard_size] for k in range(0, len(listed), shard_size)]
            per_shard = [len(bucket_counts(s, MULTIPLE)) for s in shards]
            print(
                f"  shard_order {order}: {len(shards)} shards of {shard_size}, "
                f"{min(per_shard)}-{max(per_shard)} padded sizes per shard "
                f"(median {statistics.median(per_shard):g})"
            )
        for bs in (4, 8, 16):
            passes = sum(len(size_batches(s, bs, MULTIPLE)) for s in shards)
            filled = passes * bs - len(sizes)
            print(
                f"    batch {bs}: {passes} forward passes ({len(sizes) / passes:.2f} images "
                f"each), {filled} filled slots ({filled / (passes * bs):.1%} of the computed "
                f"images are copies)"
            )


if __name__ == "__main__":
    main()
