"""The tiny config through `snakemake --profile profiles/slurm` on a real SLURM cluster.

CI starts a single-node cluster (.ci/slurm/start.sh: slurmctld, slurmd, slurmdbd + MariaDB,
munge, one fake GPU) and sets DISCOVER_REQUIRE_SLURM=1, so a missing cluster fails there instead
of skipping.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pytest
import yaml

from discover.plan import snakemake_command

from .conftest import ROOT, tiny_config, tree_digest, write_config

pytestmark = pytest.mark.slow
RUN_TIMEOUT_S = 900


def _cluster_up() -> str | None:
    if shutil.which("sinfo") is None:
        return "sinfo not found (no SLURM client installed)"
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%P %t"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "sinfo timed out (slurmctld not answering)"
    if out.returncode != 0:
        return f"sinfo failed: {out.stderr.strip()}"
    if not any(
        state.startswith(("idle", "mix", "alloc"))
        for state in (line.split()[-1] for line in out.stdout.splitlines() if line.strip())
    ):
        return f"no usable node: {out.stdout.strip()}"
    return None


@pytest.fixture(scope="module")
def slurm():
    reason = _cluster_up()
    if reason:
        if os.environ.get("DISCOVER_REQUIRE_SLURM") == "1":
            pytest.fail(f"SLURM cluster required but not usable: {reason}")
        pytest.skip(f"no SLURM cluster: {reason} (start one with .ci/slurm/start.sh)")


def _run_bounded(cmd: list[str], cwd) -> subprocess.CompletedProcess:
    """Run in its own process group; on timeout kill the whole group (never hang CI)."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        subprocess.run(["scancel", "--user", os.environ.get("USER", "root")], check=False)
        pytest.fail(f"snakemake on SLURM did not finish in {RUN_TIMEOUT_S} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _run_on_slurm(config, work, *targets: str) -> subprocess.CompletedProcess:
    """The DAG of ``config`` (or only ``targets``) through profiles/slurm, from ``work``."""
    cmd = snakemake_command(
        config,
        "--profile",
        "profiles/slurm",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--seconds-between-status-checks",
        "2",
        *(["--", *targets] if targets else []),
    )
    return _run_bounded(cmd, cwd=work)


def _sacct_jobs(run_uuid_dir) -> list[dict]:
    out = subprocess.run(
        [
            "sacct",
            "-X",
            "-P",
            "-n",
            "-S",
            "now-2hours",
            "--format",
            "JobIDRaw,JobName,Partition,AllocTRES,State,Comment",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = []
    for line in out.splitlines():
        jobid, name, part, tres, state, comment = line.split("|", 5)
        rows.append(
            {
                "id": jobid,
                "name": name,
                "partition": part,
                "tres": tres,
                "state": state,
                "comment": comment,
            }
        )
    return rows


def test_slurm_run_equals_local_run_and_gpu_rules_request_gpus(slurm, finished_run, tmp_path):
    work = tmp_path / "slurm_run"
    work.mkdir()
    (work / "profiles").symlink_to(ROOT / "profiles")
    cfg = tiny_config()
    # A codec that declares a GPU: its jobs must land on the GPU partition with --gpus.
    cfg["codecs"]["gpuwebp"] = {
        "type": "command",
        "gpus": 1,
        "extension": "webp",
        "rates": [20, 50, 80],
        "encode": "cwebp -quiet -q {rate} {input} -o {output}",
        "decode": "dwebp -quiet {input} -o {output}",
    }
    config = write_config(work / "config.yaml", cfg)
    before = {r["id"] for r in _sacct_jobs(work)}
    proc = _run_on_slurm(config, work)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]

    # Tables equal those of the local run (same config without the GPU codec).
    local = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert set(local["codecs"]) == {"jpeg", "hevc"}
    for pattern in (
        "results/scenes/*/*/s*/*.jpg",
        "results/scenes/*/*/s*/*.hevc",
        "results/metrics/scenes/jpeg/**/*.csv",
        "results/metrics/scenes/hevc/**/*.csv",
        "results/tables/scenes/rd/jpeg.csv",
        "results/tables/scenes/rd/hevc.csv",
    ):
        assert tree_digest(work, pattern) == tree_digest(finished_run, pattern), pattern

    jobs = [j for j in _sacct_jobs(work) if j["id"] not in before]
    assert jobs, "no SLURM jobs were recorded by sacct"
    assert all(j["state"] == "COMPLETED" for j in jobs), jobs
    gpu_jobs = [j for j in jobs if "gres/gpu" in j["tres"]]
    cpu_jobs = [j for j in jobs if "gres/gpu" not in j["tres"]]
    assert gpu_jobs and cpu_jobs
    assert all(j["partition"] == "gpu" for j in gpu_jobs), gpu_jobs
    assert all("codec_gpu" in j["comment"] for j in gpu_jobs), gpu_jobs
    assert not any("codec_gpu" in j["comment"] for j in cpu_jobs), cpu_jobs
    # Grouping: fewer SLURM jobs than Snakemake jobs (shards batched per group).
    n_codec_jobs = 3 * 3 * 2  # 3 codecs x 3 rates x 2 shards
    assert len(jobs) < n_codec_jobs + 2


def test_discover_jobs_ask_for_the_gpu_model_of_their_codec(slurm, tmp_path):
    """A DISCOVER shard is encoded and decoded in separate jobs, and its streams decode only on
    the kind of device that encoded them: with ``gpu_model`` every encode and decode job of the
    codec asks SLURM for that model (``--gpus=<model>:N``), which the accounting records."""
    import copy

    work = tmp_path / "discover_gpu_model"
    work.mkdir()
    (work / "profiles").symlink_to(ROOT / "profiles")
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg = tiny_config(shard_size=4)
    cfg["codecs"] = {
        "jpeg": {"type": "jpeg", "rates": [15, 35, 60, 90]},
        "discover-mini": {
            "type": "discover",
            "trained": "discover-mini",
            "rates": [1, 8],
            "gpus": 1,
            "gpu_model": "fake",  # the CI cluster's GPU model (.ci/slurm/start.sh)
        },
    }
    cfg["anchor"] = "jpeg"
    cfg["discover_training"] = copy.deepcopy(default["discover_training"])
    cfg["training_data"] = copy.deepcopy(default["training_data"])  # the pools it names
    config = write_config(work / "config.yaml", cfg)
    before = {r["id"] for r in _sacct_jobs(work)}
    proc = _run_on_slurm(config, work)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    assert len(list((work / "results/scenes/discover-mini@human/8/s0000").glob("*.png"))) == 4
    jobs = [j for j in _sacct_jobs(work) if j["id"] not in before]
    assert jobs and all(j["state"] == "COMPLETED" for j in jobs), jobs
    gpu_jobs = [j for j in jobs if "codec_gpu" in j["comment"]]
    assert gpu_jobs, jobs
    assert all("gres/gpu:fake=1" in j["tres"] for j in gpu_jobs), gpu_jobs
    assert not any("gres/gpu" in j["tres"] for j in jobs if j not in gpu_jobs), jobs


def test_a_training_job_runs_its_ranks_as_tasks_of_one_slurm_job(slurm, training_sources, tmp_path):
    """The train rule of a 2-process entry through the profile: one SLURM job of 2 tasks
    (--ntasks=2), inside which srun starts the two ranks (DDP on CPU, gloo); the replicas end
    identical and the sidecar says 2 processes."""
    import json

    from .test_training_scale import training_config

    work = tmp_path / "train_ddp"
    work.mkdir()
    (work / "profiles").symlink_to(ROOT / "profiles")
    config = training_config(work, training_sources, 2)
    before = {r["id"] for r in _sacct_jobs(work)}
    proc = _run_on_slurm(config, work, "w/gen/r1.pth.tar")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    meta = json.loads((work / "w/gen/r1.json").read_text())
    assert meta["processes"] == 2 and meta["replica_checksums"][0] == meta["replica_checksums"][1]
    jobs = [j for j in _sacct_jobs(work) if j["id"] not in before]
    train = [j for j in jobs if "train_composition" in j["comment"]]
    assert len(train) == 1 and train[0]["state"] == "COMPLETED", jobs
    steps = subprocess.run(
        ["sacct", "-j", train[0]["id"], "-P", "-n", "--format", "JobID,NTasks,State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    # the job's own step (snakemake) and the srun step of the two ranks
    ranks = [s for s in steps if s.split("|")[1] == "2"]
    assert ranks and all(s.split("|")[2] == "COMPLETED" for s in ranks), steps
