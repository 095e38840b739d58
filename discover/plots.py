"""Rate-distortion plots (matplotlib, PNG and PDF)."""

from __future__ import annotations

from pathlib import Path

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


def rd_plot(
    rd: pd.DataFrame,
    metric: str,
    png: str | Path,
    pdf: str | Path,
    title: str,
    anchor: str | None = None,
    reference: float | None = None,
) -> None:
    """One curve per codec, bpp on x; the anchor thicker, published curves dashed;
    ``reference`` (the uncompressed images' score) a dotted horizontal line."""
    fig, ax = plt.subplots(figsize=(5.5, 4.0), dpi=120)
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
    ax.grid(True, alpha=0.3)
    if reference is None:
        ax.legend(fontsize=8)
    else:  # under the axes: the reference line runs along the top, where a legend would sit
        fig.set_size_inches(5.5, 4.0 + 0.22 * (len(ax.get_lines()) + 1))
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    fig.tight_layout()
    save_figure(fig, png, pdf)


def visual_grid(
    panels: list[tuple[str, np.ndarray, float | None]],
    png: str | Path,
    title: str,
    columns: int = 4,
) -> None:
    """Paper Fig. 7: one panel per (label, HxWx3 image, bpp), the bpp printed under each."""
    n = len(panels)
    cols = max(1, min(columns, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.3 * rows), dpi=120, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (label, image, bpp) in zip(axes.flat, panels, strict=False):
        ax.imshow(image)
        ax.set_title(label, fontsize=8)
        caption = "original" if bpp is None else f"{bpp:.3f} bpp"
        ax.text(0.5, -0.04, caption, transform=ax.transAxes, ha="center", va="top", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


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
