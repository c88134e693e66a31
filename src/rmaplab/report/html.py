"""A self-contained HTML report: tables, verdicts and matplotlib plots
(embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rmaplab.report.measure import Metrics  # noqa: E402
from rmaplab.report.table import COLUMNS, row  # noqa: E402


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def bar_chart(title: str, ylabel: str, values: dict[str, float]) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = list(values)
    ax.bar(names, [values[n] for n in names], color="#4c72b0")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", rotation=20)
    return _png(fig)


def line_chart(title: str, xlabel: str, ylabel: str, series: dict[str, list[tuple[float, float]]],
               logy: bool = False) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, pts in series.items():
        pts = sorted(pts)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    return _png(fig)


def table_html(title: str, metrics: Sequence[Metrics]) -> str:
    head = "".join(f"<th title='{html.escape(w)}'>{html.escape(n)}</th>" for n, w in COLUMNS)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row(m)) + "</tr>"
                   for m in metrics)
    return (f"<h3>{html.escape(title)}</h3><table><tr><th>scheme</th>{head}</tr>{rows}</table>")


def page(title: str, sections: list[str]) -> str:
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
             "th{background:#f3f3f3}td:first-child{text-align:left}"
             ".ok{color:#16702e}.no{color:#b00020}img{margin:.5em 1em .5em 0}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
            + "\n".join(sections) + "</body></html>")
