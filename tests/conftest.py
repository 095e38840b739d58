from __future__ import annotations

import contextlib
import hashlib
import http.server
import importlib
import json
import math
import os
import platform
import shutil
import subprocess
import threading
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import bjontegaard
import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
import yaml
from PIL import Image
from threadpoolctl import threadpool_limits

from discover.plan import snakemake_command
from discover.weights import HubSpec

ROOT = Path(__file__).resolve().parent.parent


def tiny_config(out: str = "results", **overrides) -> dict:
    """A config small enough to run the whole DAG in seconds: 4 images, 2 codecs x 3 rates.

    ``out`` is relative to the Snakemake working directory, so a copied run stays valid.
    """
    cfg = {
        "output_dir": str(out),
        "seed": 0,
        "shard_size": 2,
        "datasets": {
            "scenes": {
                "type": "synthetic-scenes",
                "split": "val",
                "num_images": 4,
                "min_size": 96,
                "max_size": 136,
                "max_objects": 3,
            },
        },
        "codecs": {
            "jpeg": {"type": "jpeg", "rates": [15, 50, 90]},
            "hevc": {"type": "hevc", "rates": [40, 32, 24]},
        },
        "anchor": "hevc",
        "metrics": ["psnr", "msssim"],
        # 50 resamples: the tests check the intervals are there and right, not their precision
        "bd": {"method": "pchip", "min_points": 4, "bootstrap": {"resamples": 50}},
    }
    cfg.update(overrides)
    return cfg


def save_random_backbone(arch: str, path: Path, seed: int) -> None:
    """A random torchvision ``arch`` state dict, loadable by ``arch(pretrained=True)``.

    Only ``features`` get real values (He-scaled, so activations keep their size through the
    layers): LPIPS and DISTS use nothing else. The classifier is a stride-0 view of one zero,
    which torch.save stores as one element, so the VGG16 file is 59 MB instead of 553 MB.
    """
    with torch.device("meta"):  # shapes only, no memory, no init
        shapes = {k: v.shape for k, v in getattr(torchvision.models, arch)().state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.startswith("features.") and key.endswith(".weight"):
            state[key] = torch.randn(shape, generator=gen) * math.sqrt(2.0 / math.prod(shape[1:]))
        elif key.startswith("features."):
            state[key] = torch.randn(shape, generator=gen) * 0.01
        else:
            state[key] = torch.zeros(()).expand(shape)
    torch.save(state, path)


# -- an OpenAI-compatible chat-completions server -------------------------------------------
def completion(text: str, model: str = "test-model") -> dict:
    """A ChatCompletion as the API returns it."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


class ChatServer:
    """Answers POST /v1/chat/completions from a script: a list of replies, the last repeated.

    A reply is a str (assistant text, HTTP 200), a (status, body) pair, "drop" (close the
    connection unanswered) or ("sleep", seconds, text).
    """

    def __init__(self, script: list):
        self.script = list(script)
        self.requests: list[dict] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "json": body,
                    }
                )
                step = server.script[min(len(server.requests), len(server.script)) - 1]
                if step == "drop":
                    self.close_connection = True
                    return
                if isinstance(step, tuple) and step[0] == "sleep":
                    time.sleep(step[1])
                    step = step[2]
                status, payload = (200, completion(step)) if isinstance(step, str) else step
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                # A short Retry-After keeps the client's backoff (honoured by it) fast here.
                if status >= 400:
                    self.send_header("retry-after-ms", "10")
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def copy_committed_weights(weights_dir: Path, *models: str, files: tuple[str, ...] = ()) -> None:
    """Copies (never links: a DAG that decided to retrain would delete the committed files) of
    the committed ``weights/<model>`` folders, or of only ``files`` of each, and of the
    training manifests they were trained on, into ``weights_dir``."""
    weights_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        ROOT / "weights" / "training-data", weights_dir / "training-data", dirs_exist_ok=True
    )
    for model in models:
        if not files:
            shutil.copytree(ROOT / "weights" / model, weights_dir / model, dirs_exist_ok=True)
            continue
        (weights_dir / model).mkdir(parents=True, exist_ok=True)
        for name in files:
            src = ROOT / "weights" / model / name
            if src.is_dir():
                shutil.copytree(src, weights_dir / model / name, dirs_exist_ok=True)
            else:
                shutil.copy2(src, weights_dir / model / name)


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake(
    workdir: Path, configfile: Path, *args: str, cores: int = 2, timeout: int = 600, **popen
) -> subprocess.CompletedProcess:
    """Snakemake on this repository's workflow; its jobs inherit the test's environment (no
    pinned PYTHONHASHSEED: outputs must not depend on the order of hashed sets)."""
    cmd = snakemake_command(configfile, "--rerun-incomplete", *args, workdir=workdir, cores=cores)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **popen)


# -- optional dependencies ---------------------------------------------------------------------
#: set by .ci/run: an optional dependency the tests need (mmdet, NeuralCompression) that is
#: missing fails the test instead of skipping it, as DISCOVER_REQUIRE_SLURM does for SLURM
REQUIRE_OPTIONAL = "DISCOVER_REQUIRE_OPTIONAL"


def optional_missing(what: str, install: str) -> NoReturn:
    """Skip (fail when $DISCOVER_REQUIRE_OPTIONAL is 1) because ``what`` is not usable; the
    message says how to install it. Works in a test, a fixture or at module level."""
    message = f"{what}; install it with {install}"
    if os.environ.get(REQUIRE_OPTIONAL) == "1":
        pytest.fail(f"{message} ({REQUIRE_OPTIONAL}=1: optional packages are required)")
    pytest.skip(message, allow_module_level=True)


def import_optional(module: str, install: str) -> ModuleType:
    """``module`` imported, or :func:`optional_missing` naming the import error."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        optional_missing(f"{module} not importable ({type(exc).__name__}: {exc})", install)


# -- BD tables recomputed with the bjontegaard package ------------------------------------
#: rd.csv columns that are not metrics
RD_NOT_METRICS = {
    "dataset",
    "codec",
    "label",
    "rate",
    "images",
    "bits",
    "pixels",
    "bpp",
    "bpp_mean_per_image",
    "published",
    "source",
    "notes",
    "flags",
}


def rd_metric_columns(rd: pd.DataFrame) -> list[str]:
    """The metric columns of an rd.csv (not its bookkeeping, not the ``n_<metric>`` sample
    counts)."""
    return [c for c in rd.columns if c not in RD_NOT_METRICS and not c.startswith("n_")]


def lower_is_better(metric: str) -> bool:
    """LPIPS, DISTS, FID and KID (any feature set: ``fid_demo``) fall as quality rises."""
    return metric in ("lpips", "dists") or metric.split("_")[0] in ("fid", "kid")


def bd_defaults() -> dict:
    """The ``bd`` section's defaults, read from the schema (where every default lives)."""
    schema = yaml.safe_load((ROOT / "schemas" / "config.schema.yaml").read_text())
    return {k: v["default"] for k, v in schema["properties"]["bd"]["properties"].items()}


def _bd_curve(df: pd.DataFrame, metric: str, settings: dict, sign: float):
    """(rate, sign * quality) of one rd.csv curve as BD takes it (sorted by rate, reduced to
    its Pareto front with envelope pareto), or (None, a word of the reason it cannot)."""
    rate, quality = df["bpp"].to_numpy(float), df[metric].to_numpy(float)
    if len(rate) < settings["min_points"]:
        return None, f"at least {settings['min_points']}"
    if not (np.isfinite(rate).all() and np.isfinite(quality).all()):
        return None, "NaN"
    if (rate <= 0).any():
        return None, "positive"
    order = np.argsort(rate)
    rate, quality = rate[order], sign * quality[order]
    if (np.diff(rate) <= 0).any():
        return None, "share the rate"
    if settings["envelope"] == "pareto":
        # sorted by rate, a point stays if its quality is above that of every cheaper point
        keep = [i for i in range(len(rate)) if (quality[i] > quality[:i]).all()]
        if len(keep) < settings["min_front_points"]:
            return None, "Pareto front"
        rate, quality = rate[keep], quality[keep]
    elif not (np.diff(quality) > 0).all():
        return None, "not monotone"
    return rate, quality


def check_bd_table(work: Path, dataset: str) -> int:
    """Every value of a run's ``tables/<dataset>/bd.csv`` recomputed from its ``rd.csv`` with
    the bjontegaard package, as the run's config (``bd``, ``anchor``) says: BD-rate from the
    curves in which quality rises (lower-is-better metrics negated), BD-metric in the metric's
    own units (bjontegaard's average difference of the curves as measured: negative = better
    for LPIPS/DISTS/FID/KID). Every codec x metric pair has its row; a row without a number
    says why, and only a curve BD cannot take lacks one. Returns the number of finite
    BD values of codecs other than the anchor."""
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    settings = {**bd_defaults(), **(cfg.get("bd") or {})}
    resamples = int((settings.get("bootstrap") or {}).get("resamples", 1000))
    tables = work / cfg["output_dir"] / "tables" / dataset
    rd = pd.read_csv(tables / "rd.csv", dtype={"rate": str})
    bd = pd.read_csv(tables / "bd.csv", keep_default_na=False, na_values=[""])
    anchor = cfg["anchor"]
    metrics = rd_metric_columns(rd)
    pairs = list(zip(bd["codec"], bd["metric"], strict=True))
    assert len(pairs) == len(set(pairs)), f"{tables / 'bd.csv'}: a codec/metric pair twice"
    want = {(c, m) for c in rd["codec"].unique() for m in metrics}
    assert set(pairs) == want, f"bd.csv lacks {want - set(pairs)}, has extra {set(pairs) - want}"
    assert (bd["method"] == settings["method"]).all(), f"bd.csv: not all {settings['method']}"
    assert (bd["anchor"] == anchor).all(), f"bd.csv: not all against the anchor {anchor}"
    a = rd[rd["codec"] == anchor]
    finite = 0
    for row in bd.itertuples():
        where = f"{dataset}/{row.codec}/{row.metric}"
        got = (row.bd_rate_pct, row.bd_metric)
        note = row.note if isinstance(row.note, str) else ""
        t = rd[rd["codec"] == row.codec]
        if a[row.metric].isna().all() or t[row.metric].isna().all():
            # nothing to compare (the anchor's own row included): no number, and the reason
            assert np.isnan(got).all(), f"{where}: {got} without values to compare"
            assert note.startswith(("not computed", "not evaluated")), f"{where}: {note!r}"
            continue
        if row.codec == anchor:
            assert got == (0.0, 0.0) and note == "anchor", f"{where}: {got} {note!r}"
            continue
        sign = -1.0 if lower_is_better(row.metric) else 1.0
        (ar, aq), (tr, tq) = (_bd_curve(df, row.metric, settings, sign) for df in (a, t))
        reason = aq if ar is None else tq if tr is None else None
        if reason is None:
            kw = {"method": settings["method"], "require_matching_points": False}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the overlap warning: the row's note says it
                rate = bjontegaard.bd_rate(ar, aq, tr, tq, **kw)
                # the average difference of the curves in the metric's own units and sign
                metric = bjontegaard.bd_psnr(ar, sign * aq, tr, sign * tq, **kw)
            reason = "do not overlap" if np.isnan(rate) else None
        if reason is not None:
            assert np.isnan(got).all(), f"{where}: {got} although BD cannot take it ({reason})"
            assert note.startswith("not computed") and reason in note, f"{where}: {note!r}"
            continue
        # bd.csv holds 6 decimals
        assert got == (pytest.approx(rate, abs=1e-6), pytest.approx(metric, abs=1e-6)), (
            f"{where}: bd.csv {got}, bjontegaard ({rate}, {metric})"
        )
        # its sample count is the fewest of the curves' points, its overlaps bjontegaard's
        n_column = f"n_{row.metric}"
        if n_column in rd:
            fewest = pd.concat([a[n_column], t[n_column]]).min()
            assert row.samples == fewest, f"{where}: samples {row.samples}, rd.csv {fewest}"
        common = min(aq.max(), tq.max()) - max(aq.min(), tq.min())
        union = max(aq.max(), tq.max()) - min(aq.min(), tq.min())
        assert row.overlap_quality == pytest.approx(max(common, 0) / union, abs=1e-9), where
        # a measured row (per-image values kept) has its bootstrap interval
        measured = not bool(t["published"].iloc[0]) and not bool(a["published"].iloc[0])
        if resamples > 0 and measured:
            done = row.resamples + row.resamples_failed
            assert done == resamples, f"{where}: {done} resamples, the config says {resamples}"
            if row.resamples > 0:
                assert row.bd_rate_lo <= row.bd_rate_hi, where
        finite += 1
    return finite


@contextlib.contextmanager
def job_threads(n: int):
    """Run a block with ``n`` PyTorch and BLAS threads, as a rule job with ``threads: n`` does
    (discover.rule_context sets both): float reductions can differ between thread counts, so a
    recomputation of a job's numbers uses the job's count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


def tree_digest(root: Path, pattern: str = "**/*") -> dict[str, str]:
    """sha256 of every file below root matching pattern (relative path -> digest)."""
    out = {}
    for p in sorted(root.glob(pattern)):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """One complete run of the DAG on the tiny config; tests must not modify it."""
    work = tmp_path_factory.mktemp("run_a")
    cfg = write_config(work / "config.yaml", tiny_config())
    proc = snakemake(work, cfg)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work


@pytest.fixture
def copy_of_run(finished_run, tmp_path) -> Path:
    """A private copy (mtimes kept) of the finished run, safe to break."""
    dst = tmp_path / "run"
    shutil.copytree(finished_run, dst, symlinks=True)
    return dst


# -- behaviour guard: outputs of the tiny DAGs as recorded before the code was re-homed ------
RECORDED_DIGESTS = ROOT / "tests" / "data" / "recorded_digests.json"
#: what a run's digest leaves out: logs, timings and job benchmarks (wall-clock), plots and the
#: report with its summary page (rendering; the tables they show are digested), the weights the
#: run trained (checked by the train-rule tests)
_NOT_DIGESTED = ("logs/", "benchmarks/", "plots/", "report", "summary.html", ".snakemake/")


#: provenance fields of a labels file that differ between two runs of the same config: when it
#: was written, the address of the test's chat server (a free port), and the absolute path of a
#: static label list (where the checkout lies)
_RUN_FIELDS = ("created_utc", "base_url", "resolved")


def _without_run_fields(value):
    if isinstance(value, dict):
        return {k: _without_run_fields(v) for k, v in value.items() if k not in _RUN_FIELDS}
    if isinstance(value, list):
        return [_without_run_fields(v) for v in value]
    return value


def behaviour_digest(work: Path) -> dict[str, str]:
    """sha256 of every bitstream, reconstruction, prediction, metric and table of a run (a
    labels file without its run-specific provenance fields)."""
    results = work / "results"
    digest = tree_digest(results)
    for key in digest:
        if key.startswith("semantics/labels/") and key.endswith(".json"):
            doc = _without_run_fields(json.loads((results / key).read_text()))
            digest[key] = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    return {
        k: v
        for k, v in digest.items()
        if not any(part in k for part in _NOT_DIGESTED) and "timings" not in Path(k).name
    }


def cpu_kind() -> str:
    """What decides a CPU run's float results beyond the code: the vector instructions
    PyTorch's kernels pick (AVX-512 or not) and the vendor. Two machines of one kind give
    byte-identical runs; the VAE decoder's pixels and the FID features differ in the last bits
    between kinds (measured: an AMD EPYC with AVX-512 against the machine of the first
    recording), and so, now and then, do DISCOVER's streams (:data:`_PORTABLE_SUFFIXES`)."""
    flags, vendor = set(), platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    isa = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "other"
    return f"{platform.machine()} {vendor} {isa}"


#: what is the same on every kind of CPU: the classic codecs' bitstreams (their encoders work in
#: integers) and the datasets' reference images and annotations. VAE-decoded pixels, and the
#: metrics, predictions and tables computed from them, differ in the last bits between kinds
#: (see :func:`cpu_kind`); so can the learned codecs' streams, whose entropy parameters are
#: rounded from float convolutions: DISCOVER's .dsc of 2 of tasks_run's 6 images (12 of its 36
#: streams) differ between an AMD EPYC with AVX2 and the Intel AVX-512 record (measured
#: 2026-12-04; docs/discover-codec.md, "Devices").
_PORTABLE_SUFFIXES = (".jpg", ".webp", ".avif", ".hevc", ".bin")


def _portable(key: str) -> bool:
    return (
        key.endswith(_PORTABLE_SUFFIXES)
        or key.endswith("annotations.json")
        or ("/reference/" in key and key.endswith(".png"))
    )


def check_recorded_digest(work: Path, name: str) -> None:
    """Compare a run's outputs with those recorded for ``name`` on this kind of CPU
    (:func:`cpu_kind`).

    tests/data/recorded_digests.json: run name -> a list of {"cpu": kind, "files": digest}.
    The first record's kind was not noted ("unnoted"). On a kind with a record the run must
    equal it file for file; on an unrecorded kind every file must equal one record's where
    the file is the same on every kind (:func:`_portable`: classic bitstreams, reference images,
    annotations) and exist where the record has it.

    DISCOVER_RECORD_DIGESTS=1 records this kind's outputs (done once per kind of CPU, on the
    commit before a change meant to keep behaviour); DISCOVER_RECORD_DIGESTS=new also drops
    the other kinds' records, for a change meant to alter the outputs (retrained weights)."""
    digest = behaviour_digest(work)
    recorded = json.loads(RECORDED_DIGESTS.read_text()) if RECORDED_DIGESTS.is_file() else {}
    kind = cpu_kind()
    records = recorded.get(name, [])
    mode = os.environ.get("DISCOVER_RECORD_DIGESTS")
    if mode in ("1", "new"):
        keep = [r for r in records if r["cpu"] != kind] if mode == "1" else []
        recorded[name] = sorted(keep + [{"cpu": kind, "files": digest}], key=lambda r: r["cpu"])
        RECORDED_DIGESTS.parent.mkdir(exist_ok=True)
        RECORDED_DIGESTS.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        return
    assert records, f"no outputs recorded for {name} in {RECORDED_DIGESTS}"
    mine = [r for r in records if r["cpu"] == kind]
    if mine:
        candidates = [(r, set(r["files"]) | set(digest)) for r in mine]
    else:
        candidates = [
            (r, {k for k in set(r["files"]) | set(digest) if _portable(k)}) for r in records
        ]
    report = []
    for r, keys in candidates:
        want = r["files"]
        missing = sorted(k for k in keys if k not in digest)
        extra = sorted(k for k in keys if k not in want)
        changed = sorted(k for k in keys if k in want and k in digest and want[k] != digest[k])
        if not (missing or extra or changed):
            return
        report.append(
            f"recorded on {r['cpu']}: missing {missing[:5]}, new {extra[:5]}, "
            f"changed {changed[:5]} ({len(changed)} in all)"
        )
    raise AssertionError(
        f"outputs of {name} (this CPU: {kind}) differ from those recorded"
        + (
            ""
            if mine
            else " (none on this kind of CPU: classic bitstreams, reference images and "
            "annotations compared)"
        )
        + ": "
        + "; ".join(report)
    )


# -- a tiny diffusion prior and control module (DISCOVER with composition in a test DAG) ------
#: the committed mini codec's VAE: ẑ_c targets its latent, so a prior for it is built on it
MINI_VAE = ROOT / "weights" / "discover-mini" / "vae"
#: Smaller than the mini prior (TINY_UNET_CONFIG) so that the tests stay fast.
TEST_UNET = {
    "sample_size": 8,
    "block_out_channels": [16, 32],
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
    "attention_head_dim": [2, 2],
    "cross_attention_dim": 16,
}
TEST_TEXT = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "max_position_embeddings": 8,
    "projection_dim": 16,
}


@pytest.fixture(scope="module")
def prior_dir(tmp_path_factory):
    # diffusers loads here, not in every test session
    from discover.composition.prior import build_prior

    return build_prior(
        tmp_path_factory.mktemp("prior") / "tiny-sd",
        MINI_VAE,
        unet_config=TEST_UNET,
        text_config=TEST_TEXT,
    )


@pytest.fixture(scope="module")
def control_dir(prior_dir, tmp_path_factory):
    """A control module with random (non-zero) weights: its condition visibly matters."""
    # diffusers loads here, not in every test session
    from discover.composition.control import control_from_unet
    from discover.composition.pipeline import load_prior

    torch.manual_seed(1)
    control = control_from_unet(load_prior(prior_dir).unet, (8, 16))
    with torch.no_grad():
        for p in control.parameters():
            p.normal_(0, 0.05)
    path = tmp_path_factory.mktemp("control") / "r1"
    control.save_pretrained(path)
    return path


def _training_images(folder, sizes, seed):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, (w, h) in enumerate(sizes):
        # smooth content (a codec can learn it in a few steps), not noise
        yy, xx = np.mgrid[0:h, 0:w]
        base = rng.uniform(0, 255, 3)
        img = (base + 60 * np.sin(xx[..., None] / rng.uniform(5, 20) + yy[..., None] / 9)).clip(
            0, 255
        )
        path = folder / f"img{i}.png"
        Image.fromarray(img.astype(np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def training_sources(prior_dir, tmp_path_factory):
    """Training images as the full-size path reads them: two folders (one corrupt PNG) and a
    list file; the tiny SD-layout prior as a Hub snapshot in a weights cache; a tiny ELIC
    checkpoint (CompressAI's Elic2022Official layout)."""
    from compressai.models import Elic2022Official

    root = tmp_path_factory.mktemp("sources")
    a = _training_images(root / "a", [(96, 80), (128, 96), (70, 64)], 1)
    b = _training_images(root / "b" / "nested", [(100, 100), (64, 128)], 2)
    corrupt = root / "b" / "broken.png"
    corrupt.write_bytes(a[0].read_bytes()[:120])  # a PNG cut inside its first chunk
    listed = _training_images(root / "lists" / "files", [(90, 90), (120, 70)], 3)
    lst = root / "lists" / "train.txt"
    lst.write_text("".join(f"files/{p.name}\n" for p in listed))
    # the tiny SD-layout prior as a Hub snapshot in a weights cache
    cache = root / "cache"
    for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        spec = HubSpec("tiny-org/tiny-sd", name)
        shutil.copytree(prior_dir / name, cache / spec.snapshot / name)
        (cache / spec.filename).write_text("{}")
    torch.manual_seed(0)
    elic = Elic2022Official(N=32, M=64, groups=[8, 8, 16, 32]).state_dict()
    torch.save(elic, root / "elic_q1.pth.tar")
    return {
        "root": root,
        "files": sorted(a) + sorted([corrupt, *b]) + listed,
        "corrupt": corrupt,
        "list": lst,
        "cache": cache,
        "elic": root / "elic_q1.pth.tar",
        "elic_state": elic,
    }
