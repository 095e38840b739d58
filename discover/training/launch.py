"""Several training processes for one train job (DDP through ``accelerate``).

A train rule whose entry asks for more than one process (``processes``, or ``gpus`` x
``nodes``) calls :func:`launch` instead of the trainer. It writes the trainer's arguments to a
JSON job file and starts one :mod:`discover.training.worker` per rank:

* inside a SLURM allocation (the rule's ``tasks`` / ``nodes`` / ``gpu`` resources, which the
  SLURM profile turns into ``--ntasks`` / ``--nodes`` / ``--gpus``): ``srun`` starts the
  ranks on the job's nodes; rank 0's host is the rendezvous (``MASTER_ADDR``);
* elsewhere (one machine): ``torch.distributed.run --standalone``.

Every rank's output goes to the rule's log. ``accelerate`` reads the rank from the environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``): NCCL on GPUs, gloo on CPUs.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from discover.errors import DiscoverError
from discover.io import write_text_atomic

log = logging.getLogger("discover.training")

#: Trainers a worker can run: name -> "module:function".
TRAINERS = {"composition": "discover.training.composition:train_composition"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def command(job_file: str | os.PathLike, processes: int, nodes: int) -> list[str]:
    """The command line that starts every rank of a job."""
    worker = [sys.executable, "-m", "discover.training.worker", str(job_file)]
    if os.environ.get("SLURM_JOB_ID"):
        # the job's own allocation: one task per rank, spread over its nodes
        return [
            "srun",
            f"--ntasks={processes}",
            f"--nodes={nodes}",
            "--kill-on-bad-exit=1",
            "--export=ALL",
            *worker,
        ]
    if nodes > 1:
        raise DiscoverError(
            f"{nodes} nodes need a SLURM allocation (snakemake --profile profiles/slurm); "
            "on one machine set nodes: 1"
        )
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        "discover.training.worker",
        str(job_file),
    ]


def launch(
    trainer: str,
    kwargs: Mapping[str, Any],
    *,
    processes: int,
    nodes: int = 1,
    threads: int = 1,
    job_file: str | os.PathLike,
    log_file: str | os.PathLike | None = None,
) -> dict:
    """Run ``trainer`` (a :data:`TRAINERS` name) on ``processes`` ranks; returns what rank 0
    wrote into the sidecar (the ``meta_path`` argument), read back from the file."""
    if trainer not in TRAINERS:
        raise DiscoverError(f"no distributed trainer {trainer!r} (known: {sorted(TRAINERS)})")
    job = {
        "trainer": trainer,
        "kwargs": dict(kwargs),
        "threads": max(1, int(threads) // max(1, processes // max(1, nodes))),
    }
    write_text_atomic(job_file, json.dumps(job, indent=2, default=str) + "\n")
    env = {
        **os.environ,
        "MASTER_ADDR": os.environ.get("MASTER_ADDR") or socket.gethostname(),
        "MASTER_PORT": os.environ.get("MASTER_PORT") or str(free_port()),
        "OMP_NUM_THREADS": str(job["threads"]),
    }
    argv = command(job_file, processes, nodes)
    log.info("launching %d training processes on %d node(s): %s", processes, nodes, " ".join(argv))
    out = open(log_file, "a") if log_file else None  # noqa: SIM115 - closed below
    try:
        proc = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    finally:
        if out is not None:
            out.close()
    if proc.returncode != 0:
        tail = ""
        if log_file and Path(log_file).is_file():
            tail = "\n".join(Path(log_file).read_text().splitlines()[-15:])
        raise DiscoverError(
            f"{processes} training processes of {trainer} failed (exit {proc.returncode}); "
            f"log {log_file}:\n{tail}"
        )
    meta = Path(kwargs["meta_path"])
    return json.loads(meta.read_text()) if meta.is_file() else {}


def run_composition(
    kwargs: Mapping[str, Any],
    *,
    command: str,
    manifest: str | os.PathLike,
    data_spec: Mapping[str, Any],
    processes: int,
    nodes: int = 1,
    threads: int = 1,
    job_file: str | os.PathLike,
    log_file: str | os.PathLike | None = None,
) -> dict:
    """One rate point of train_composition: in this process, or on ``processes`` ranks."""
    if processes <= 1:
        # torch and diffusers: the launcher of a multi-process job does not load them
        from discover.training.composition import train_composition
        from discover.training.data import TrainingData

        data = TrainingData.from_manifest(manifest, data_spec)
        return train_composition(**kwargs, command=command, data=data)
    data = {"manifest": str(manifest), "spec": dict(data_spec)}
    return launch(
        "composition",
        {**kwargs, "command": command, "data": data},
        processes=processes,
        nodes=nodes,
        threads=threads,
        job_file=job_file,
        log_file=log_file,
    )
