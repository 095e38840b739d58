"""Stages of rules/perception.smk: the perception table (the FID/KID jobs call
:mod:`discover.metrics.distribution`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from discover.io import atomic_path, write_text_atomic
from discover.metrics.catalog import metric_columns, metric_info
from discover.stages.common import markdown_table

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

    rows = []
    for codec, t in bd.groupby("codec", sort=False):
        row = {"row": codec, "label": t["label"].iloc[0]}
        for m in human:
            hit = t[t["metric"] == m]
            label = metric_info(m).label
            value = hit["bd_metric"].iloc[0] if len(hit) else float("nan")
            rate = hit["bd_rate_pct"].iloc[0] if len(hit) else float("nan")
            row[f"BD-{label}"] = cell(value, m, 4)
            row[f"BD-rate {label} (%)"] = cell(rate, m, 2)
        rows.append(row)
    table = pd.DataFrame(rows)
    with atomic_path(table_csv) as tmp:
        table.to_csv(tmp, index=False)
    # Markdown: a short marker per cell and each reason spelled out once under the table.
    notes = {m: f"not computed [{k + 1}]" for k, m in enumerate(sorted(set(status) & set(human)))}
    md_table = table.copy()
    for m in human:
        for column in (f"BD-{metric_info(m).label}", f"BD-rate {metric_info(m).label} (%)"):
            if m in notes and column in md_table:
                md_table[column] = notes[m]
    anchor = config.get("anchor", "")
    lines = [
        f"# Human perception on {dataset}",
        "",
        f"BD against the anchor `{anchor}` (BD-metric in the metric's units at equal rate; "
        "lower LPIPS/DISTS/FID/KID is better, so negative = better; BD-rate < 0 = fewer bits). "
        "An empty cell: the curve does not allow a BD value (see bd.csv's note).",
        "",
        markdown_table(md_table),
        "",
        "## Metric vs bpp",
        "",
    ]
    per_rate = rd[["label", "rate", "bpp"]].copy()
    per_rate["bpp"] = per_rate["bpp"].map(lambda v: f"{v:.4f}")
    for m in human:
        values = rd[m] if m in rd else [float("nan")] * len(rd)
        per_rate[metric_info(m).label] = [notes.get(m) or cell(v, m, 4) for v in values]
    lines.append(markdown_table(per_rate))
    if notes:
        lines += [
            "",
            *(f"[{n.split('[')[1]} {metric_info(m).label} {status[m]}" for m, n in notes.items()),
        ]
    write_text_atomic(table_md, "\n".join(lines) + "\n")
    return table
