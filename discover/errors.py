"""Exceptions with messages meant for the person running the benchmark."""


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
