"""DISCOVER: a versatile learned image codec and its benchmarking pipeline."""

__version__ = "0.1.0"
