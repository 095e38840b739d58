from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import math
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from threadpoolctl import threadpool_limits

from discover.plan import snakemake_command

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
        "bd": {"method": "pchip", "min_points": 4},
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


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snakemake(
    workdir: Path, configfile: Path, *args: str, cores: int = 2, timeout: int = 600, **popen
) -> subprocess.CompletedProcess:
    cmd = snakemake_command(configfile, "--rerun-incomplete", *args, workdir=workdir, cores=cores)
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        **popen,
    )


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
#: report (rendering), the weights the run trained (checked by the train-rule tests)
_NOT_DIGESTED = ("logs/", "benchmarks/", "plots/", "report", ".snakemake/")


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


def check_recorded_digest(work: Path, name: str) -> None:
    """Compare a run's outputs with those recorded for ``name`` (DISCOVER_RECORD_DIGESTS=1
    records them instead: done once, on the commit before a change meant to keep behaviour)."""
    digest = behaviour_digest(work)
    recorded = json.loads(RECORDED_DIGESTS.read_text()) if RECORDED_DIGESTS.is_file() else {}
    if os.environ.get("DISCOVER_RECORD_DIGESTS") == "1":
        recorded[name] = digest
        RECORDED_DIGESTS.parent.mkdir(exist_ok=True)
        RECORDED_DIGESTS.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        return
    want = recorded[name]
    missing = sorted(set(want) - set(digest))
    extra = sorted(set(digest) - set(want))
    changed = sorted(k for k in set(want) & set(digest) if want[k] != digest[k])
    assert not (missing or extra or changed), (
        f"outputs differ from those recorded for {name}: missing {missing[:5]}, "
        f"new {extra[:5]}, changed {changed[:5]} ({len(changed)} in all)"
    )
