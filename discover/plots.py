"""Rate-distortion plots (matplotlib, PNG and PDF), image grids (the paper's Figs. 4 and 7)
and loss curves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from discover.io import atomic_path  # noqa: E402
from discover.metrics import METRICS

METRIC_LABELS = {m: info.label for m, info in METRICS.items()}


def save_figure(fig, png: str | Path, pdf: str | Path) -> None:
    """Write ``fig`` as PNG and PDF atomically, without the timestamps and software versions
    that would make the same figure differ byte for byte; then close it."""
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    with atomic_path(pdf) as tmp:
        fig.savefig(
            tmp, format="pdf", metadata={"CreationDate": None, "Producer": None, "Creator": None}
        )
    plt.close(fig)


Box = tuple[float, float, float, float]


def _whole_pixels(inches: float, dpi: float) -> float:
    """``inches`` rounded up to a whole number of pixels at ``dpi``."""
    return float(np.ceil(inches * dpi - 1e-6)) / dpi


def _box(bbox) -> Box:
    """A matplotlib Bbox as (x0, y0, x1, y1) in the figure's pixels (origin bottom left)."""
    return (float(bbox.x0), float(bbox.y0), float(bbox.x1), float(bbox.y1))


def rd_plot(
    rd: pd.DataFrame,
    metric: str,
    png: str | Path,
    pdf: str | Path,
    title: str,
    anchor: str | None = None,
    reference: float | None = None,
    warning: str | None = None,
) -> dict[str, Box]:
    """One curve per codec, bpp on x; the anchor thicker, published curves dashed;
    ``reference`` (the uncompressed images' score) a dotted horizontal line; ``warning`` (why
    the values cannot hold) in red under the title.

    The legend sits right of the axes, outside them, and the figure is widened by its width:
    it never covers a curve, however many there are. Returns the pixel boxes of the axes and
    the legend in the saved figure."""
    fig, ax = plt.subplots(figsize=(5.5, 4.0), dpi=120, layout="constrained")
    if reference is not None:
        ax.axhline(reference, color="0.4", linestyle=":", linewidth=1.2, label="uncompressed")
    for codec, df in rd.groupby("codec", sort=False):
        df = df.sort_values("bpp")
        published = bool(df["published"].iloc[0]) if "published" in df else False
        label = str(df["label"].iloc[0]) + (" (anchor)" if codec == anchor else "")
        label += " (published)" if published else ""
        ax.plot(
            df["bpp"],
            df[metric],
            marker="s" if published else "o",
            markersize=3,
            linestyle="--" if published else "-",
            linewidth=2.2 if codec == anchor else 1.3,
            label=label,
        )
    ax.set_xlabel("bpp (all bits / all pixels)")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric.replace("_", " ")))
    ax.set_title(title)
    if warning:
        import textwrap

        ax.set_title(
            title + "\n" + textwrap.fill(f"⚠ {warning}", 70), color="firebrick", fontsize=9
        )
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    legend = fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)
    # the axes keep their width: the figure grows by the legend's
    extent = legend.get_window_extent(fig.canvas.get_renderer())
    fig.set_size_inches(
        _whole_pixels(5.5 + extent.width / fig.dpi + 0.1, fig.dpi),
        _whole_pixels(max(4.0, extent.height / fig.dpi + 0.6), fig.dpi),
    )
    fig.canvas.draw()
    boxes = {
        "axes": _box(ax.get_window_extent()),
        "legend": _box(legend.get_window_extent()),
        "figure": _box(fig.bbox),
    }
    save_figure(fig, png, pdf)
    return boxes


@dataclass(frozen=True)
class Panel:
    """One image of a grid: its title above, its caption below; ``nearest``: drawn without
    interpolation (a latent, a mask)."""

    title: str
    image: np.ndarray
    caption: str = ""
    nearest: bool = False


#: font sizes (pt) of the grid's panel texts and title
PANEL_FONT, TITLE_FONT = 8.0, 9.0


def _wrap(text: str, width_px: float, measure) -> list[str]:
    """``text`` broken at spaces (a word longer than the width at characters) into lines
    that ``measure`` (str -> pixels) finds at most ``width_px`` wide; its newlines kept."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if measure(candidate) <= width_px:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            for ch in word:  # a word wider than a panel: broken where it must be
                if line and measure(line + ch) > width_px:
                    lines.append(line)
                    line = ""
                line += ch
        lines.append(line)
    return lines


def image_grid(
    panels: list[Panel],
    png: str | Path,
    title: str,
    columns: int = 4,
    panel_width: float = 3.0,
    dpi: int = 120,
) -> dict[str, Any]:
    """Panels in rows of ``columns``, each panel's title in a band above its image and its
    caption under it, every band as high as the most lines in its row need and the row as high
    as its tallest image: titles, captions and images never overlap, whatever the images'
    aspect ratios. Texts are wrapped to the panel width. Returns the layout: the pixel boxes
    (x0, y0, x1, y1, origin bottom left) of the title, of each panel's title, caption and
    image, and the figure's size (whole pixels, the saved PNG's)."""
    n = len(panels)
    cols = max(1, min(columns, n))
    rows = [panels[i : i + cols] for i in range(0, n, cols)]
    gap, margin = 0.15, 0.1  # inches
    fig = plt.figure(figsize=(2 * margin + cols * panel_width + (cols - 1) * gap, 1.0), dpi=dpi)
    renderer = fig.canvas.get_renderer()

    def measure(size: float):
        def width(s: str) -> float:
            t = fig.text(0, 0, s, fontsize=size)
            w = t.get_window_extent(renderer).width
            t.remove()
            return w

        return width

    def line_height(size: float) -> float:  # inches per line of a multi-line text
        t = fig.text(0, 0, "Ag\nAg", fontsize=size)
        h = t.get_window_extent(renderer).height / 2
        t.remove()
        return h / dpi

    limit = (panel_width - 0.05) * dpi
    titles = [_wrap(p.title, limit, measure(PANEL_FONT)) for p in panels]
    captions = [_wrap(p.caption, limit, measure(PANEL_FONT)) if p.caption else [] for p in panels]
    heading = _wrap(title, fig.get_figwidth() * dpi - 2 * margin * dpi, measure(TITLE_FONT))
    line, pad = line_height(PANEL_FONT), 0.06
    top = len(heading) * line_height(TITLE_FONT) + 2 * pad
    bands = []  # per row: (title band, image height, caption band) in inches
    for r, row in enumerate(rows):
        idx = range(r * cols, r * cols + len(row))
        t_lines = max(len(titles[i]) for i in idx)
        c_lines = max(len(captions[i]) for i in idx)
        aspect = max(p.image.shape[0] / p.image.shape[1] for p in row)
        bands.append(
            (
                t_lines * line + 2 * pad,
                panel_width * aspect,
                (c_lines * line + 2 * pad) if c_lines else pad,
            )
        )
    # in whole pixels: the saved image has exactly the size the layout was computed for
    width = _whole_pixels(fig.get_figwidth(), dpi)
    height = _whole_pixels(top + sum(sum(b) for b in bands) + margin, dpi)
    fig.set_size_inches(width, height)
    heading_text = fig.text(
        0.5, 1 - pad / height, "\n".join(heading), ha="center", va="top", fontsize=TITLE_FONT
    )
    placed = []
    y = top  # inches from the top
    for r, row in enumerate(rows):
        title_band, image_h, caption_band = bands[r]
        for c, panel in enumerate(row):
            i = r * cols + c
            x0 = margin + c * (panel_width + gap)
            # as wide as the panel, as high as its aspect ratio makes it, under its title
            own_h = panel_width * panel.image.shape[0] / panel.image.shape[1]
            ax = fig.add_axes(
                (
                    x0 / width,
                    1 - (y + title_band + own_h) / height,
                    panel_width / width,
                    own_h / height,
                )
            )
            ax.set_axis_off()
            ax.imshow(panel.image, interpolation="nearest" if panel.nearest else "antialiased")
            centre = (x0 + panel_width / 2) / width
            t = fig.text(
                centre,
                1 - (y + title_band - pad) / height,
                "\n".join(titles[i]),
                ha="center",
                va="bottom",
                fontsize=PANEL_FONT,
            )
            cap = None
            if captions[i]:
                cap = fig.text(
                    centre,
                    1 - (y + title_band + own_h + pad) / height,
                    "\n".join(captions[i]),
                    ha="center",
                    va="top",
                    fontsize=PANEL_FONT,
                )
            placed.append((panel, ax, t, cap))
        y += title_band + image_h + caption_band
    fig.canvas.draw()
    layout = {
        "size": (float(fig.bbox.width), float(fig.bbox.height)),
        "title": _box(heading_text.get_window_extent()),
        "panels": [
            {
                "title": panel.title,
                "caption": panel.caption,
                "title_box": _box(t.get_window_extent()),
                "caption_box": None if cap is None else _box(cap.get_window_extent()),
                "image_box": _box(ax.get_window_extent()),
            }
            for panel, ax, t, cap in placed
        ],
    }
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
    return layout


def draw_boxes(
    image: np.ndarray,
    boxes: list,
    color: tuple[int, int, int] = (255, 255, 0),
    width: int | None = None,
) -> np.ndarray:
    """A copy of ``image`` (H, W, 3 uint8) with the outline of each box ``[x, y, w, h]``
    (pixels) drawn in: the pixels from floor(x) to ceil(x + w) - 1 (and so in y), clipped to
    the image, outlined ``width`` pixels inwards (default: 1 per 128 pixels of the longer
    side, at least 1)."""
    out = np.array(image, dtype=np.uint8, copy=True)
    h, w = out.shape[:2]
    t = width or max(1, round(max(h, w) / 128))
    for box in boxes:
        bx, by, bw, bh = (float(v) for v in box)
        x0, y0 = max(0, int(np.floor(bx))), max(0, int(np.floor(by)))
        x1, y1 = min(w - 1, int(np.ceil(bx + bw)) - 1), min(h - 1, int(np.ceil(by + bh)) - 1)
        if x1 < x0 or y1 < y0:
            continue
        inner = out[y0 : y1 + 1, x0 : x1 + 1]
        ring = np.ones(inner.shape[:2], dtype=bool)
        ring[t : max(t, inner.shape[0] - t), t : max(t, inner.shape[1] - t)] = False
        inner[ring] = color
    return out


def visual_grid(
    panels: list[Panel], png: str | Path, title: str, columns: int = 4
) -> dict[str, Any]:
    """Paper Fig. 7: the original, each row's reconstruction (its bpp as caption) and the
    grounded boxes, in rows of ``columns`` panels (:func:`image_grid`)."""
    return image_grid(panels, png, title, columns=columns)


def latent_figure(panels: list[Panel], png: str | Path, title: str) -> dict[str, Any]:
    """Paper Fig. 4: the latents of the composition and their decodes, four per row."""
    return image_grid(panels, png, title, columns=4)


def latent_rgb(latents: list[np.ndarray]) -> list[np.ndarray]:
    """(C, h, w) latents as (h, w, 3) uint8 images of their first three channels, each
    channel scaled by the 1st and 99th percentile over all ``latents`` together, so that equal
    values look alike in every image."""
    stack = np.stack([np.asarray(z, dtype=np.float64)[:3] for z in latents])
    lo = np.percentile(stack, 1, axis=(0, 2, 3), keepdims=True)[0]
    hi = np.percentile(stack, 99, axis=(0, 2, 3), keepdims=True)[0]
    span = np.where(hi > lo, hi - lo, 1.0)
    out = []
    for z in stack:
        scaled = np.clip((z - lo) / span, 0, 1)
        out.append(np.round(scaled.transpose(1, 2, 0) * 255).astype(np.uint8))
    return out


def training_loss_plot(
    prior: pd.DataFrame | None,
    rates: dict[str, pd.DataFrame],
    png: str | Path,
    pdf: str | Path,
    title: str,
) -> None:
    """Loss curves of a composition model: the prior's (if trained by the pipeline), then per
    λ_R the loss of Eq. 4 and its diffusion and latent terms against the step, a dotted line
    where stage II begins."""
    panels = [
        ("loss", "Eq. 4 loss"),
        ("diffusion", "diffusion term"),
        ("latent_mse", "‖z_c − ẑ_c‖²"),
    ]
    if prior is not None:
        panels.insert(0, ("prior", "prior loss"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.2), dpi=120)
    for ax, (key, label) in zip(np.atleast_1d(axes), panels, strict=True):
        if key == "prior":
            ax.plot(prior["step"], prior["loss"], linewidth=1.2, color="0.3")
        else:
            for rate, df in rates.items():
                line = ax.plot(df["step"], df[key], linewidth=1.2, label=f"λ_R = {rate}")[0]
                if (df["stage"] == 2).any():  # the last logged step of stage I
                    end = df.loc[df["stage"] == 1, "step"].max()
                    ax.axvline(end, color=line.get_color(), linestyle=":", linewidth=0.8)
            ax.legend(fontsize=7)
        ax.set_xlabel("step")
        ax.set_title(label, fontsize=9)
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, png, pdf)
