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
