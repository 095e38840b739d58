"""PSNR and MS-SSIM on 8-bit RGB images."""

from __future__ import annotations

import math

import numpy as np
import torch
from pytorch_msssim import ms_ssim

# pytorch-msssim's default five-scale weights (Wang et al. 2003).
_MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_WIN = 11


def psnr(ref: np.ndarray, rec: np.ndarray) -> float:
    """PSNR in dB over all RGB samples (inf for identical images)."""
    if ref.shape != rec.shape:
        raise ValueError(f"shape mismatch {ref.shape} vs {rec.shape}")
    mse = float(np.mean((ref.astype(np.float64) - rec.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def msssim_scales(height: int, width: int) -> int:
    """Scales that fit: the coarsest scale must still be larger than the 11-px window."""
    levels = 5
    while levels > 1 and min(height, width) <= (_WIN - 1) * 2 ** (levels - 1):
        levels -= 1
    return levels


def msssim(ref: np.ndarray, rec: np.ndarray) -> float:
    """MS-SSIM (pytorch-msssim, data range 255, RGB averaged).

    Images too small for five scales use fewer, with the default weights renormalised; 5 scales
    need a short side > 160 px.
    """
    if ref.shape != rec.shape:
        raise ValueError(f"shape mismatch {ref.shape} vs {rec.shape}")
    h, w = ref.shape[:2]
    levels = msssim_scales(h, w)
    weights = np.array(_MSSSIM_WEIGHTS[:levels])
    weights = (weights / weights.sum()).tolist()
    x = torch.from_numpy(ref).permute(2, 0, 1)[None].double()
    y = torch.from_numpy(rec).permute(2, 0, 1)[None].double()
    with torch.no_grad():
        return float(ms_ssim(x, y, data_range=255.0, size_average=True, weights=weights))


FIDELITY_METRICS = {"psnr": psnr, "msssim": msssim}
