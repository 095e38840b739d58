"""Image-quality metrics. Fidelity metrics (PSNR, MS-SSIM) are computed per image in the codec
jobs; perceptual and task metrics live in their own modules."""

from discover.metrics.fidelity import FIDELITY_METRICS, msssim, psnr

__all__ = ["FIDELITY_METRICS", "msssim", "psnr"]
