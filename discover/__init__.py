"""DISCOVER: a versatile learned image codec and its benchmarking pipeline."""

import warnings

__version__ = "0.1.0"

# CompressAI 1.2.8 imports torch_geometric, which calls torch.jit.script at import time; with
# torch 2.14 every such call warns. Nothing in this package scripts a module, so the warning
# says nothing a user can act on (it printed on every command and Snakemake run).
warnings.filterwarnings(
    "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning
)
