"""Image-quality metrics. Fidelity metrics (PSNR, MS-SSIM) and perceptual ones (LPIPS, DISTS)
are computed per image in the codec jobs; FID/KID per (dataset, row) over all its images;
``catalog`` says which columns exist, their direction and the weights each needs."""

from discover.metrics.catalog import METRICS, metric_columns, metric_status
from discover.metrics.fidelity import FIDELITY_METRICS, msssim, psnr

__all__ = ["FIDELITY_METRICS", "METRICS", "metric_columns", "metric_status", "msssim", "psnr"]
