"""Stages of rules/perception.smk: the perception table (the FID/KID jobs call
:mod:`discover.metrics.distribution`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from discover.io import atomic_path, write_text_atomic
from discover.metrics.catalog import metric_columns, metric_info
from discover.stages.common import (
    Footnotes,
    bd_cell,
    markdown_table,
    row_flags,
    sample_column,
    value_cell,
)

log = logging.getLogger("discover")


def perception_tables(
    config: Mapping[str, Any],
    dataset: str,
    rd_csv: str | Path,
    bd_csv: str | Path,
    table_csv: str | Path,
    table_md: str | Path,
    metric_status: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The perception table of a dataset: BD-LPIPS, BD-DISTS, BD-FID, BD-KID (and their
    BD-rates) of every row against the anchor, and the human-perception metrics at every rate
    point, as CSV and Markdown. The paper compares human perception in curves (its Fig. 6) and
    quotes BD-FID and BD-DISTS against VTM-12.1 in the text (§4.2.1); it has no table.

    A metric that is not computed shows its reason ("not computed: weight X missing, run
    `snakemake fetch_weights`") in its cells, never a blank or a made-up number."""
    status = metric_status or {}
    human = [m for m in metric_columns(config) if metric_info(m).kind != "fidelity"]
    rd = pd.read_csv(rd_csv, dtype={"rate": str})
    bd = pd.read_csv(bd_csv)

    def cell(value: float, metric: str, digits: int) -> str:
        if metric in status:
            return status[metric]
        return "" if pd.isna(value) else f"{value:.{digits}f}"

    rows, md_rows = [], []
    notes = Footnotes()  # one per cause: FID and KID missing Inception share theirs
    for codec, t in bd.groupby("codec", sort=False):
        row = {"row": codec, "label": t["label"].iloc[0]}
        md_row = dict(row)
        for m in human:
            hit = t[t["metric"] == m]
            label = metric_info(m).label
            value = hit["bd_metric"].iloc[0] if len(hit) else float("nan")
            rate = hit["bd_rate_pct"].iloc[0] if len(hit) else float("nan")
            row[f"BD-{label}"] = cell(value, m, 4)
            row[f"BD-rate {label} (%)"] = cell(rate, m, 2)
            for which, key, digits in (
                ("metric", f"BD-{label}", 4),
                ("rate", f"BD-rate {label} (%)", 2),
            ):
                if m in status:
                    md_row[key] = f"not computed [{notes.cite(status[m])}]"
                elif len(hit):
                    md_row[key] = bd_cell(hit.iloc[0].to_dict(), which, digits, notes)
                else:
                    md_row[key] = "—"
                for end in ("lo", "hi"):
                    column = f"bd_{which}_{end}"
                    bound = hit[column].iloc[0] if len(hit) and column in hit else np.nan
                    row[f"{key} {end}"] = "" if pd.isna(bound) else f"{bound:.{digits}f}"
                flag = hit[f"flag_bd_{which}"].iloc[0] if len(hit) else ""
                row[f"flag {key}"] = flag if isinstance(flag, str) else ""
            n = hit["samples"].iloc[0] if len(hit) and "samples" in hit else np.nan
            row[f"n {label}"] = "" if pd.isna(n) else int(n)
        rows.append(row)
        md_rows.append(md_row)
    table = pd.DataFrame(rows)
    with atomic_path(table_csv) as tmp:
        table.to_csv(tmp, index=False)
    anchor = config.get("anchor", "")
    boot = (config.get("bd") or {}).get("bootstrap") or {}
    interval = (
        f"In brackets: the {float(boot.get('level', 0.95)):.0%} bootstrap interval over images "
        f"({int(boot['resamples'])} resamples). "
        if int(boot.get("resamples", 0)) > 0
        else ""
    )
    lines = [
        f"# Human perception on {dataset}",
        "",
        f"BD against the anchor `{anchor}` (BD-metric in the metric's units at equal rate; "
        "lower LPIPS/DISTS/FID/KID is better, so negative = better; BD-rate < 0 = fewer bits). "
        + interval
        + "— : the curve does not allow a BD value (see bd.csv's note); ⚠ marks a value that "
        "cannot hold (the note under the tables says why).",
        "",
        markdown_table(pd.DataFrame(md_rows)),
        "",
        "## Metric vs bpp",
        "",
        "n: the images (LPIPS, DISTS) or samples (FID, KID: images or patches) behind a value.",
        "",
    ]
    per_rate = rd[["label", "rate", "bpp"]].copy()
    per_rate["bpp"] = per_rate["bpp"].map(lambda v: f"{v:.4f}")
    flags = [row_flags(r) for r in rd.to_dict("records")]
    for m in human:
        label = metric_info(m).label
        if m in status:
            per_rate[label] = f"not computed [{notes.cite(status[m])}]"
            continue
        values = rd[m] if m in rd else [float("nan")] * len(rd)
        per_rate[label] = [
            value_cell(v, 4, f.get(m), notes) for v, f in zip(values, flags, strict=True)
        ]
        column = sample_column(m)
        if column in rd:
            per_rate[f"n {label}"] = ["" if pd.isna(n) else str(int(n)) for n in rd[column]]
    lines.append(markdown_table(per_rate))
    if notes.numbers:
        lines += ["", *notes.lines()]
    write_text_atomic(table_md, "\n".join(lines) + "\n")
    return table
