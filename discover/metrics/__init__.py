"""Image-quality metrics. Fidelity metrics (PSNR, MS-SSIM) and perceptual ones (LPIPS, DISTS)
are computed per image in the codec jobs; FID/KID per (dataset, row) over all its images;
``catalog`` says which columns exist, their direction and the weights each needs. The fidelity
names load on first use (they need PyTorch; tables and plots do not)."""

from typing import Any

from discover.metrics.catalog import METRICS, metric_columns, metric_status

__all__ = ["FIDELITY_METRICS", "METRICS", "metric_columns", "metric_status", "msssim", "psnr"]


def __getattr__(name: str) -> Any:
    if name in ("FIDELITY_METRICS", "msssim", "psnr"):
        from discover.metrics import fidelity  # PyTorch, loaded on first use (see above)

        return getattr(fidelity, name)
    raise AttributeError(f"module 'discover.metrics' has no attribute {name!r}")
