"""PSNR and MS-SSIM agree with their definitions / reference library."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pytorch_msssim import ms_ssim

from discover.metrics.fidelity import ms_ssim_levels, msssim, msssim_scales, psnr


def _pair(h, w, noise=12, seed=0):
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    ref = np.asarray(ref, np.float64)
    ref = (ref + np.roll(ref, 1, 0) + np.roll(ref, 1, 1)) / 3  # some spatial correlation
    rec = np.clip(ref + rng.normal(0, noise, ref.shape), 0, 255)
    return ref.astype(np.uint8), rec.astype(np.uint8)


def test_psnr_matches_definition():
    ref, rec = _pair(32, 48)
    mse = np.mean((ref.astype(float) - rec.astype(float)) ** 2)
    assert psnr(ref, rec) == pytest.approx(10 * math.log10(255**2 / mse))
    assert psnr(ref, ref) == math.inf


def test_msssim_equals_pytorch_msssim_on_large_images():
    ref, rec = _pair(200, 230)
    x = torch.from_numpy(ref).permute(2, 0, 1)[None].float()
    y = torch.from_numpy(rec).permute(2, 0, 1)[None].float()
    expected = float(ms_ssim(x, y, data_range=255.0))
    assert msssim(ref, rec) == expected
    # float32 (the metric's precision) is within 1e-6 of the library in float64
    assert expected == pytest.approx(float(ms_ssim(x.double(), y.double(), 255.0)), abs=1e-6)
    # the few-scale loop with all five scales is the library's computation
    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    assert float(ms_ssim_levels(x, y, weights)) == pytest.approx(expected, rel=1e-6)


def test_msssim_small_images_use_fewer_scales():
    assert msssim_scales(161, 500) == 5
    assert msssim_scales(160, 500) == 4
    assert msssim_scales(96, 96) == 4
    assert msssim_scales(30, 30) == 2
    ref, rec = _pair(96, 120)
    value = msssim(ref, rec)
    assert 0.0 < value < 1.0
    assert msssim(ref, ref) == pytest.approx(1.0)
