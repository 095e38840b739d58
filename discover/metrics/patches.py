"""The patch protocol of FID/KID on high-resolution images (HiFiC, MS-ILLM, PerCo on CLIC 2020).

FID needs many samples, and Inception looks at 299x299 inputs: a 768x768 image is cut into
256x256 patches rather than downsampled, so the metric sees the codec's artefacts at full
resolution. The images themselves are first brought to 768x768 by the dataset protocol
``clic2020`` (short side 768, centre crop; discover.datasets.base.apply_protocol).
"""

from __future__ import annotations

import numpy as np


def fid_patches(image: np.ndarray, size: int = 256, shifted: bool = False) -> list[np.ndarray]:
    """Non-overlapping ``size`` x ``size`` patches of an (H, W, 3) uint8 image.

    The grid starts at (0, 0), row by row; incomplete patches at the right and bottom borders
    are dropped. With ``shifted``, a second grid offset by ``size // 2`` in both directions
    (again complete patches only) follows the first one, as in HiFiC's evaluation: a 768x768
    image gives 9 patches, or 9 + 4 = 13. Patches are copies, not views of ``image``.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    if size < 1:
        raise ValueError(f"patch size must be positive, got {size}")
    height, width = image.shape[:2]
    offsets = [0, size // 2] if shifted else [0]
    patches = []
    for offset in offsets:
        for top in range(offset, height - size + 1, size):
            for left in range(offset, width - size + 1, size):
                patches.append(image[top : top + size, left : left + size].copy())
    return patches
