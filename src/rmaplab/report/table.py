"""Comparison tables (rich) from measured metrics."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from rmaplab.report.measure import Metrics

COLUMNS = (
    ("walk/page", "rmap walk work per reclaimed page (candidates visited + ptes compared"
                  " + find_vma + chain slots)"),
    ("reclaimed", "pages reclaimed (pgsteal)"),
    ("fork work", "rmap work charged to fork events"),
    ("exit work", "rmap work charged to exit events"),
    ("mremap work", "rmap work charged to mremap events"),
    ("find_vma", "find_vma calls made by rmap walks"),
    ("locks", "lock acquisitions: anon_vma, page_table_lock (and trylocks), i_mmap"),
    ("VMAs", "peak number of VMAs over all processes"),
    ("merges", "vma_merge successes"),
    ("meta i386", "peak rmap metadata bytes, i386 2004 sizes"),
    ("meta x86_64", "peak rmap metadata bytes, x86_64 sizes"),
    ("copied", "pages copied (COW, early COW, anonmm mremap copies)"),
    ("OOM kills", "processes the OOM killer took (out_of_memory); their later events are skipped"),
    ("time", "model wall time, seconds"),
)


def row(m: Metrics) -> list[str]:
    d = m.as_dict()
    wp = d["walk_work_per_reclaimed"]
    return [m.scheme, "-" if wp is None else f"{wp:,.1f}", f"{d['pgsteal']:,}",
            f"{d['fork_work']:,}", f"{d['exit_work']:,}", f"{d['mremap_work']:,}",
            f"{d['find_vma_calls']:,}", f"{d['locks']:,}", f"{d['peak_vmas']:,}",
            f"{d['vma_merges']:,}", f"{d['metadata_bytes_i386']:,}",
            f"{d['metadata_bytes_x86_64']:,}", f"{d['pages_copied']:,}", f"{d['oom_kills']:,}",
            f"{d['seconds']:.2f}"]


def render(title: str, metrics: Sequence[Metrics], console: Console | None = None) -> None:
    """One column per scheme, one row per measure (narrow enough for 80
    columns with five schemes)."""
    console = console or Console()
    t = Table(title=title, title_justify="left")
    t.add_column("")
    rows = [row(m) for m in metrics]
    for r in rows:
        t.add_column(r[0], justify="right")
    for i, (name, _) in enumerate(COLUMNS, 1):
        t.add_row(name, *[r[i] for r in rows])
    console.print(t)


def legend(console: Console | None = None) -> None:
    console = console or Console()
    for name, what in COLUMNS:
        console.print(f"  [bold]{name}[/bold]: {what}")
