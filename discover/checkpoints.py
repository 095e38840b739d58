"""State dicts read from checkpoint files, checked against the model they are meant for."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from discover.errors import DiscoverError

#: Keys under which training checkpoints wrap the weights.
WRAPPER_KEYS = ("model", "state_dict")


def listing(keys: Sequence[str], limit: int = 10) -> str:
    """The first ``limit`` keys, and how many there are in all when there are more."""
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def fitting_state_dict(
    model: Any,
    state: Any,
    path: str | os.PathLike,
    *,
    what: str = "checkpoint",
    error: type[DiscoverError] = DiscoverError,
    new_prefixes: tuple[str, ...] = (),
) -> OrderedDict:
    """``state`` (or the state dict a training checkpoint wraps) as a state dict of ``model``;
    otherwise ``error`` naming ``what`` ``path`` and the missing, unexpected and mis-shaped
    keys. Keys of ``model`` under ``new_prefixes`` may be missing (parts that a partial
    initialisation leaves to training: load the result with ``strict=False``)."""
    import torch

    if isinstance(state, Mapping) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        for key in WRAPPER_KEYS:
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping):
        raise error(f"{what} {path} does not hold a state dict")
    expected = model.state_dict()
    missing = sorted(k for k in set(expected) - set(state) if not k.startswith(new_prefixes))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and getattr(state[k], "shape", None) != v.shape
    )
    if missing or unexpected or mismatched:
        problems = [
            f"missing keys: {listing(missing)}" if missing else "",
            f"unexpected keys: {listing(unexpected)}" if unexpected else "",
            f"shape mismatches: {listing(mismatched)}" if mismatched else "",
        ]
        raise error(
            f"{what} {path} does not fit its sidecar's architecture; "
            + "; ".join(p for p in problems if p)
        )
    return OrderedDict(state)
