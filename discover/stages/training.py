"""Stages of rules/training.smk: running a trainer, and the training-loss figure."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TypeVar

import pandas as pd

from discover.errors import DiscoverError
from discover.io import write_text_atomic
from discover.rule_context import rule_context

log = logging.getLogger("discover")

T = TypeVar("T")


def run_trainer(
    trainer: Callable[[str], T],
    *,
    rule: str,
    target: str | os.PathLike,
    threads: int,
    log: Sequence[str],
    basedir: str | os.PathLike,
) -> T:
    """Run the trainer of a train rule: ``trainer(command)`` under the rule's logging and
    thread limits (:func:`discover.rule_context.rule_context`).

    ``command`` is what the trainer records in its sidecar as how to reproduce ``target``
    (the rule's main output): ``snakemake --cores <threads> --forcerun <rule> -- <target>``,
    the target relative to ``basedir`` (the workflow's), so it runs from a checkout.
    """
    relative = os.path.relpath(target, basedir)
    command = f"snakemake --cores {threads} --forcerun {rule} -- {relative}"
    with rule_context(SimpleNamespace(threads=threads, log=log)):
        return trainer(command)


def write_model_index(path: str | os.PathLike, index: Mapping) -> None:
    """weights/<model>/model_index.json (:mod:`discover.discover_codec.model_index`)."""
    write_text_atomic(path, json.dumps(index, indent=2, ensure_ascii=False) + "\n")


def training_loss_plot(
    model: str,
    prior_csv: str | Path | None,
    rate_csvs: Mapping[str, str | Path],
    png: str | Path,
    pdf: str | Path,
) -> None:
    """The loss log of a composition model as a figure for the report (the CSVs the train
    rules write next to the weights)."""
    from discover.plots import training_loss_plot as plot  # matplotlib: the figure job only

    def read(path, columns):
        df = pd.read_csv(path)
        missing = [c for c in columns if c not in df]
        if missing or df.empty:
            raise DiscoverError(f"{path}: not a loss log (no rows or no columns {missing})")
        return df

    prior = read(prior_csv, ["step", "loss"]) if prior_csv else None
    columns = ["step", "stage", "loss", "diffusion", "latent_mse"]
    rates = {str(rate): read(path, columns) for rate, path in rate_csvs.items()}
    plot(prior, rates, png, pdf, title=f"{model}: training losses")
