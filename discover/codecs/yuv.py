"""RGB <-> Y'CbCr conversion and Y4M/raw YUV I/O shared by the video-codec harnesses.

BT.709 full-range coefficients (as CompressAI's VTM/HM scripts use), 8-bit samples. Chroma
4:2:0 averages 2x2 blocks and upsamples by nearest neighbour; images with odd sizes are padded
by edge replication to even sizes first and cropped back after decoding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

KR, KB = 0.2126, 0.0722
KG = 1.0 - KR - KB


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W, 3) float Y'CbCr with all channels in [0, 255]."""
    x = rgb.astype(np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = KR * r + KG * g + KB * b
    cb = (b - y) / (2 * (1 - KB)) + 128.0
    cr = (r - y) / (2 * (1 - KR)) + 128.0
    return np.stack([y, cb, cr], axis=-1)


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """Inverse of rgb_to_ycbcr, rounded and clipped to uint8."""
    y = ycc[..., 0].astype(np.float64)
    cb = ycc[..., 1].astype(np.float64) - 128.0
    cr = ycc[..., 2].astype(np.float64) - 128.0
    r = y + 2 * (1 - KR) * cr
    b = y + 2 * (1 - KB) * cb
    g = (y - KR * r - KB * b) / KG
    return np.clip(np.rint(np.stack([r, g, b], axis=-1)), 0, 255).astype(np.uint8)


def pad_even(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def to_planes(rgb: np.ndarray, chroma: str) -> list[np.ndarray]:
    """uint8 planes [Y, Cb, Cr] for 4:4:4 or 4:2:0 (input already even-sized for 4:2:0)."""
    ycc = rgb_to_ycbcr(rgb)
    planes = [ycc[..., 0], ycc[..., 1], ycc[..., 2]]
    if chroma == "420":
        planes[1:] = [
            p.reshape(p.shape[0] // 2, 2, p.shape[1] // 2, 2).mean(axis=(1, 3)) for p in planes[1:]
        ]
    elif chroma != "444":
        raise ValueError(f"unsupported chroma format {chroma!r}")
    return [np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in planes]


def from_planes(planes: list[np.ndarray], chroma: str) -> np.ndarray:
    y, cb, cr = planes
    if chroma == "420":
        cb = cb.repeat(2, axis=0).repeat(2, axis=1)
        cr = cr.repeat(2, axis=0).repeat(2, axis=1)
    return ycbcr_to_rgb(np.stack([y, cb, cr], axis=-1))


def write_y4m(path: Path, planes: list[np.ndarray], chroma: str) -> None:
    h, w = planes[0].shape
    tag = {"444": "C444", "420": "C420jpeg"}[chroma]
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 {tag} XCOLORRANGE=FULL\n".encode())
        fh.write(b"FRAME\n")
        for p in planes:
            fh.write(np.ascontiguousarray(p).tobytes())


def read_raw_yuv(path: Path, width: int, height: int, chroma: str) -> list[np.ndarray]:
    data = np.fromfile(path, dtype=np.uint8)
    cw, ch = (width, height) if chroma == "444" else (width // 2, height // 2)
    expected = width * height + 2 * cw * ch
    if data.size != expected:
        raise ValueError(f"{path}: {data.size} bytes of YUV, expected {expected}")
    y = data[: width * height].reshape(height, width)
    cb = data[width * height : width * height + cw * ch].reshape(ch, cw)
    cr = data[width * height + cw * ch :].reshape(ch, cw)
    return [y, cb, cr]


def write_raw_yuv(path: Path, planes: list[np.ndarray]) -> None:
    """Planar 8-bit YUV, one frame, no header (the reference software's input format)."""
    with open(path, "wb") as fh:
        for p in planes:
            fh.write(np.ascontiguousarray(p, dtype=np.uint8).tobytes())
