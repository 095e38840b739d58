"""results/summary.html: the run's results to read top to bottom, one self-contained page.

Per dataset: the headline tables (BD-rates of the image metrics, then the machine-task and
perception tables as their Markdown files write them), the headline plots (PSNR and each
task's headline metric against bpp, the visual comparison), then every other figure. The CSV
files stay where they are for programs; the page names them. Snakemake's report holds this
page first, next to the figures.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from discover.io import write_text_atomic
from discover.stages.common import Footnotes, bd_cell, samples_phrase

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; line-height: 1.4; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.5em; text-align: left; }
th { background: #eee; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.4em 0; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 1em; }
.note { color: #555; font-size: 0.9em; }
nav a { margin-right: 1em; }
"""


def markdown_to_html(text: str) -> str:
    """The Markdown the table stages write: headings, paragraphs, pipe tables, ``code`` and
    footnote lines (``[n] reason``)."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            out.append(_pipe_table(block))
            continue
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 2, 6)  # under the page's h2
            out.append(f"<h{level}>{_inline(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            cls = ' class="note"' if line.startswith("[") else ""
            out.append(f"<p{cls}>{_inline(line)}</p>")
        i += 1
    return "\n".join(out)


def _inline(text: str) -> str:
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if k % 2 else p for k, p in enumerate(parts))


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


def _pipe_table(block: Sequence[str]) -> str:
    header, rows = _cells(block[0]), [_cells(r) for r in block[2:]]
    head = "".join(f"<th>{_inline(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def bd_headline(bd_csv: str | os.PathLike, metrics: Sequence[str], anchor: str) -> str:
    """BD-rate (%) per row for the image metrics (the columns), with interval and notes, as
    HTML: the first table of a dataset."""
    bd = pd.read_csv(bd_csv)
    notes = Footnotes()
    shown = [m for m in metrics if m in set(bd["metric"])]
    rows = []
    for codec, g in bd.groupby("codec", sort=False):
        if codec == anchor:
            continue
        row = {"row": codec, "label": g["label"].iloc[0]}
        for m in shown:
            hit = g[g["metric"] == m]
            row[m] = bd_cell(hit.iloc[0].to_dict(), "rate", 2, notes) if len(hit) else "—"
        rows.append(row)
    header = ["row", "label"]
    for m in shown:
        hit = bd[(bd["codec"] == anchor) & (bd["metric"] == m)]
        n = hit["samples"].iloc[0] if len(hit) and "samples" in hit else float("nan")
        counted = samples_phrase(n, m)
        header.append(f"BD-rate {m} (%)" + (f", {counted}" if counted else ""))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in r.values()) + " |" for r in rows]
    text = "\n".join(lines)
    if notes.numbers:
        text += "\n\n" + "\n".join(notes.lines())
    return markdown_to_html(text)


def _figure(path: str | os.PathLike, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption class='note'>{html.escape(caption)} ({html.escape(str(path))})"
        "</figcaption></figure>"
    )


def write_summary(out_html: str | os.PathLike, sections: Sequence[Mapping[str, Any]]) -> None:
    """The page, one section per dataset (``name``, ``anchor``, ``metrics``, ``bd_csv``,
    ``tables``: Markdown files, ``headline``: figures first, ``more``: the other figures,
    ``csvs``: the data files named at the end) and any ``training`` figures."""
    body = ["<h1>discover-bench results</h1>"]
    body.append(
        "<nav>"
        + "".join(
            f'<a href="#{html.escape(s["name"])}">{html.escape(s["name"])}</a>' for s in sections
        )
        + "</nav>"
    )
    body.append(
        "<p>bpp = all bits of a dataset / all its pixels. BD-rates against the anchor "
        "(negative = fewer bits for the same quality); in brackets the bootstrap interval "
        "over images; ⚠ marks a value that cannot hold, the note under its table says why.</p>"
    )
    for s in sections:
        name = s["name"]
        body.append(f'<h2 id="{html.escape(name)}">{html.escape(name)}</h2>')
        body.append(f"<h3>BD-rate (%) against <code>{html.escape(s['anchor'])}</code></h3>")
        body.append(bd_headline(s["bd_csv"], s["metrics"], s["anchor"]))
        for md in s.get("tables", []):
            body.append(markdown_to_html(Path(md).read_text()))
        if s.get("headline"):
            body.append("<h3>Headline figures</h3><div class='figures'>")
            body += [_figure(p, c) for p, c in s["headline"]]
            body.append("</div>")
        if s.get("more"):
            body.append("<h3>More figures</h3><div class='figures'>")
            body += [_figure(p, c) for p, c in s["more"]]
            body.append("</div>")
        if s.get("csvs"):
            files = ", ".join(f"<code>{html.escape(str(p))}</code>" for p in s["csvs"])
            body.append(f"<p class='note'>Every value, per rate point and per image: {files}.</p>")
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>discover-bench results</title>"
        f"<style>{STYLE}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )
    write_text_atomic(out_html, page)
