"""One rank of a distributed train job: ``python -m discover.training.worker <job.json>``.

Started by :func:`discover.training.launch.launch` (``torch.distributed.run`` sets the rank
variables; under ``srun`` they come from SLURM's). The job file names the trainer and its
keyword arguments; ``data`` is ``{"manifest": <path>, "spec": <training_data entry>}``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys

from discover.training.launch import TRAINERS


def rank_environment() -> None:
    """``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` from SLURM's task variables when the
    launcher (srun) did not set them."""
    if "RANK" in os.environ or "SLURM_PROCID" not in os.environ:
        return
    os.environ["RANK"] = os.environ["SLURM_PROCID"]
    os.environ["WORLD_SIZE"] = os.environ["SLURM_NTASKS"]
    os.environ["LOCAL_RANK"] = os.environ.get("SLURM_LOCALID", "0")
    os.environ["LOCAL_WORLD_SIZE"] = os.environ.get(
        "SLURM_NTASKS_PER_NODE", os.environ["SLURM_NTASKS"]
    ).split("(")[0]


def main(argv: list[str]) -> int:
    rank_environment()
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s rank {rank} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    with open(argv[0]) as fh:
        job = json.load(fh)
    import torch

    torch.set_num_threads(int(job.get("threads", 1)))
    module, name = TRAINERS[job["trainer"]].split(":")
    trainer = getattr(importlib.import_module(module), name)
    kwargs = dict(job["kwargs"])
    if kwargs.get("data"):
        # only a job that names a manifest needs it
        from discover.training.data import TrainingData

        data = kwargs["data"]
        kwargs["data"] = TrainingData.from_manifest(data["manifest"], data["spec"])
    trainer(**kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
