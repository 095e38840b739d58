"""Exceptions with messages meant for the person running the benchmark."""

from __future__ import annotations

import math


class DiscoverError(Exception):
    """Base class: the message names the file, key, image or binary at fault."""


class ConfigError(DiscoverError):
    """The configuration is invalid (unknown key, wrong type, bad value)."""


class DatasetError(DiscoverError):
    """A dataset is missing, incomplete, or contains an unreadable image."""


class CodecError(DiscoverError):
    """A codec failed: missing binary, failed encode/decode, bad bitstream."""


class MetricInputError(DiscoverError):
    """Curves or tables handed to a metric are malformed."""


class BitstreamError(CodecError):
    """A DISCOVER ``.dsc`` stream is truncated, corrupt, of another version or another model."""


class CheckpointMismatchError(DiscoverError):
    """A checkpoint was written by a run with other settings; resuming it would mix runs."""


class TaskError(DiscoverError):
    """A task failed: unreadable checkpoint, annotations that do not fit, bad predictions."""


class GroundingError(DiscoverError):
    """Grounding failed: unreadable image or checkpoint, missing annotations, bad model output."""


class LabelGenerationError(DiscoverError):
    """A backend could not produce enough labels (or any answer at all) for a task."""


class WeightsMissingError(DiscoverError):
    """A weight file is not in the cache (and compute nodes must not download)."""


def config_number(value, key: str, low: float = -math.inf, high: float = math.inf) -> float:
    """``value`` as a float when it is a number in [``low``, ``high``] (a bool is not);
    otherwise a :class:`ConfigError` naming the config ``key``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"config key {key} must be a number in [{low}, {high}], got {value!r}")
    return float(value)
