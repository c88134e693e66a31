"""A self-contained HTML report: tables, verdicts and matplotlib plots
(embedded as base64 PNG)."""

from __future__ import annotations

import base64
import functools
import html
import io
from collections.abc import Callable, Sequence
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


#: charts drawn, by their arguments: a caller that knows the charts a page
#: will need may draw them ahead (while other work runs); the page then
#: takes them from here instead of drawing them again
DRAWN: dict[str, str] = {}


def _drawn_once(fn: Callable[..., str]) -> Callable[..., str]:
    @functools.wraps(fn)
    def chart(*args: Any, **kw: Any) -> str:
        key = repr((fn.__name__, args, sorted(kw.items())))
        if key not in DRAWN:
            DRAWN[key] = fn(*args, **kw)
        return DRAWN[key]
    return chart


#: one colour per scheme, the same in every plot
SCHEME_COLOURS = {"anon_vma": "#4c72b0", "anon_vma_chain": "#55a868", "pte_chain": "#c44e52",
                  "anonmm": "#8172b2", "none": "#937860"}


def bar_chart(title: str, ylabel: str, values: dict[str, float]) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = list(values)
    ax.bar(names, [values[n] for n in names],
           color=[SCHEME_COLOURS.get(n, "#4c72b0") for n in names])
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", rotation=20)
    return _png(fig)


@_drawn_once
def line_chart(title: str, xlabel: str, ylabel: str, series: dict[str, list[tuple[float, float]]],
               logy: bool = False) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, pts in series.items():
        pts = sorted(pts)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name,
                color=SCHEME_COLOURS.get(name))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        import math

        from matplotlib.ticker import FuncFormatter, NullFormatter
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,g}"))
        lo, hi = ax.get_ylim()
        if lo > 0 and math.log10(hi / lo) < 1.3:     # within about a decade: label 2s and 5s
            ax.yaxis.set_minor_formatter(FuncFormatter(
                lambda v, _: f"{v:,g}" if f"{v:g}"[0] in "25" else ""))
            ax.tick_params(axis="y", which="minor", labelsize=7)
        else:
            ax.yaxis.set_minor_formatter(NullFormatter())
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


@_drawn_once
def claim_chart(measure: str, values: dict[str, float]) -> str:
    """The figure a verdict rests on, one horizontal bar per scheme, each
    labelled with its value (log scale when they differ a hundredfold)."""
    names = list(values)[::-1]
    vals = [float(values[n]) for n in names]
    fig, ax = plt.subplots(figsize=(4.6, 0.5 + 0.42 * len(names)))
    ax.barh(names, vals, color=[SCHEME_COLOURS.get(n, "#4c72b0") for n in names], height=0.6)
    pos = [v for v in vals if v > 0]
    if pos and max(pos) / min(pos) >= 100:
        ax.set_xscale("log")
    for i, v in enumerate(vals):
        ax.text(v if v > 0 else 0, i, f" {v:,.2f}" if v != int(v) else f" {int(v):,}",
                va="center", fontsize=8.5)
    ax.set_xlabel(measure, fontsize=9)
    ax.tick_params(labelsize=8.5)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.margins(x=0.25)
    return _png(fig)


def study_page(title: str, verdicts: Sequence[Any], cases: Sequence[tuple[str, str, Sequence[Metrics]]],
               sweeps: dict[str, tuple[str, str, dict[str, list[tuple[float, float]]]]]) -> str:
    """The headline study as one page: a card per claim with its verdict,
    the figures it rests on, a chart of that measure per scheme, the sweep
    that shows it over a range (when there is one) and the case's whole
    table; ``cases`` are (name, title, metrics); ``sweeps`` map a sweep
    title to (x label, measure, series)."""
    esc = html.escape
    n_ok = sum(1 for v in verdicts if v.supported)
    cards = []
    toc = []
    titles = {name: t for name, t, _ in cases}
    tables = {name: table_html(f"{name}: {t}", ms) for name, t, ms in cases}
    for i, v in enumerate(verdicts, 1):
        cls, mark = {True: ("ok", "supported"), False: ("no", "not supported")}.get(
            v.supported, ("na", "not measured"))
        toc.append(f"<li><a href='#c{i}'><span class='badge {cls}'>{mark}</span> {esc(v.claim)}</a></li>")
        plots = []
        if v.values:
            plots.append(f"<figure><img alt='{esc(v.measure)}' src='{claim_chart(v.measure, v.values)}'>"
                         f"<figcaption>{esc(v.measure)}, case {esc(v.case)}</figcaption></figure>")
        if v.sweep and v.sweep in sweeps:
            xlabel, measure, series = sweeps[v.sweep]
            if series:
                plots.append(f"<figure><img alt='{esc(v.sweep)}' src='"
                             f"{line_chart(v.sweep, xlabel, measure, series, logy=True)}'>"
                             f"<figcaption>{esc(v.sweep)}</figcaption></figure>")
        table = tables.get(v.case, "")
        cards.append(
            f"<section class='claim' id='c{i}'><div class='head'><span class='badge {cls}'>{mark}</span>"
            f"<h2>{i}. {esc(v.claim)}</h2></div><p class='fig'>{esc(v.figures)}</p>"
            f"<div class='plots'>{''.join(plots)}</div>"
            f"<details><summary>every measure of the case: {esc(v.case)}: "
            f"{esc(titles.get(v.case, ''))}</summary>{table}</details></section>")
    style = ("body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d1d1f;"
             "max-width:1240px;margin:0 auto;padding:14px 20px;background:#fafafa}"
             "h1{font-size:21px;margin:4px 0}p.lead{color:#555;margin:4px 0 10px}"
             "ul.toc{list-style:none;padding:0;margin:0 0 14px;columns:2;column-gap:24px}"
             "ul.toc li{margin:3px 0;break-inside:avoid}ul.toc a{color:inherit;text-decoration:none}"
             "ul.toc a:hover{text-decoration:underline}"
             ".claim{background:#fff;border:1px solid #ddd;border-radius:7px;padding:10px 14px;"
             "margin:0 0 14px}.head{display:flex;gap:10px;align-items:baseline}"
             ".claim h2{font-size:16px;margin:0}.fig{margin:4px 0 6px;color:#333}"
             ".badge{display:inline-block;font-size:11.5px;font-weight:600;padding:1px 7px;"
             "border-radius:10px;white-space:nowrap}.badge.ok{background:#dff3e4;color:#16702e}"
             ".badge.no{background:#fbe0e4;color:#b00020}.badge.na{background:#f3ecd8;color:#7a5a00}"
             ".plots{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:12px;"
             "align-items:start}figure{margin:0}figure img{max-width:100%;height:auto}"
             "@media (max-width:800px){.plots{grid-template-columns:minmax(0,1fr)}ul.toc{columns:1}}"
             "figcaption{font-size:12px;color:#666}details{margin-top:6px}"
             "summary{cursor:pointer;color:#2060a0;font-size:13px}"
             "table{border-collapse:collapse;font-size:12.5px;margin:.4em 0}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
             "th{background:#f3f3f3}td:first-child{text-align:left}h3{font-size:13px;margin:6px 0 2px}")
    lead = (f"{len(verdicts)} claims, {n_ok} supported by the measurements. Each claim below shows its "
            "verdict, the figures it rests on, a chart of that measure for each scheme, and where "
            "there is one, the same measure over a range of the workload (log scale).")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{esc(title)}</title><style>{style}</style></head><body><h1>{esc(title)}</h1>"
            f"<p class='lead'>{esc(lead)}</p><ul class='toc'>{''.join(toc)}</ul>"
            + "".join(cards) + "</body></html>")
