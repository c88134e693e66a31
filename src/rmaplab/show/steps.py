"""Stepping through a trace: the state after every event, kept compactly.

``record(events, config)`` replays the events one at a time (with
``trace.replay.run_event``) and keeps, per event:

- the result;
- what changed in the drawn address spaces (``show.state`` rows): for each
  process whose rows changed, its new rows, where a row that did not change
  is given by its VMA serial alone; ``None`` for a process that went away;
- a few machine-wide figures;
- which rmap graph describes the state (``show.graph`` DOT source, distinct
  ones kept once).

Which processes to look at after an event: the event's own (and a fork's
child); every process when the event reclaimed (``try_to_unmap`` changes
other processes' ptes) or the OOM killer ran. A test checks this against
looking at every process after every event.

Graphs cost a ``describe()`` and a graphviz run each, so they are made at
most about every ``len(events) / graph_budget`` events, when the scheme's
structures (or the pages pointing at them) changed since the last one,
and always at checkpoints and after the last event; an event without its
own graph shows the one before it, which names its event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rmaplab.asm.page import PAGE_SIZE
from rmaplab.config import Config
from rmaplab.errors import SyscallError
from rmaplab.show.state import Row, process_rows

#: counters that change when the scheme's objects or the VMAs change
STRUCT_COUNTERS = ("vma_alloc", "vma_free", "vma_merges", "vma_splits", "anon_vma_alloc",
                   "anon_vma_free", "avc_alloc", "avc_free", "anonmm_alloc", "anonmm_free",
                   "pte_chain_alloc", "pte_chain_free", "mremap_moves", "oom_kills",
                   "page_move_anon_rmap", "anonmm_migrations")
#: counters that change when pages start or stop pointing at those objects
PAGE_COUNTERS = ("fault_anon", "fault_wp_copy", "fault_swap", "fault_file", "fault_around",
                 "exit_ptes", "pswpout", "pgsteal", "mremap_cows", "fork_ptes")
#: counters that show ptes of other processes may have changed
OTHERS_COUNTERS = ("try_to_unmap_calls", "oom_kills")


@dataclass
class Recording:
    """One scheme's run through the trace, per event."""

    scheme: str
    results: list[Any] = field(default_factory=list)
    #: per event: [[pid, rows-or-None], ...]; a row is ``Row.as_list()`` or
    #: the serial of an unchanged row
    deltas: list[list[list[Any]]] = field(default_factory=list)
    #: per event: [processes, vmas, frames used, swap used, metadata i386, metadata x86_64]
    stats: list[list[int]] = field(default_factory=list)
    #: per event: index into ``dots`` of the graph shown, and the event it was made at
    graph: list[int] = field(default_factory=list)
    graph_event: list[int] = field(default_factory=list)
    #: per event: nothing the graph shows has changed since it was made (as
    #: far as the model's counters, frames and swap in use tell)
    graph_same: list[bool] = field(default_factory=list)
    dots: list[str] = field(default_factory=list)
    #: the replay stopped here (bad trace line, model failure): the message
    error: str | None = None
    #: the stop was the trace's fault (a TraceError), not the model's
    bad_trace: bool = False


def _counters(st: Any, names: Sequence[str]) -> tuple[int, ...]:
    return tuple(getattr(st, n) for n in names)


def _json_result(res: Any) -> Any:
    return res if res is None or isinstance(res, (int, str)) else str(res)


def encode_delta(old: tuple[Row, ...] | None, new: tuple[Row, ...]) -> list[Any]:
    """The rows of ``new``, each unchanged one (same serial, equal to the
    old row) given as its serial."""
    before = {r.vma: r for r in old} if old else {}
    return [r.vma if before.get(r.vma) == r else r.as_list() for r in new]


def record(events: Sequence[Any], config: Config, graph_budget: int = 300,
           graph_limit: int = 8, progress: Callable[[int], None] | None = None,
           every_process: bool = False, filename: str = "<trace>") -> Recording:
    """Replay ``events`` (from the trace reader) under ``config``, keeping
    what ``show --html`` steps through. ``every_process`` recomputes every
    process after every event (slow; the tests compare it with the usual
    choice)."""
    from rmaplab.kernel import Kernel
    from rmaplab.show.graph import dot_source
    from rmaplab.trace.reader import TraceError
    from rmaplab.trace.replay import InvariantBroken, ModelFailure, run_event
    k = Kernel(config)
    rec = Recording(config.scheme)
    rows: dict[int, tuple[Row, ...]] = {}
    dot_ids: dict[str, int] = {}
    n = len(events)
    gap = max(1, n // max(1, graph_budget))
    last_graph, cur_graph, cur_graph_event = -gap, -1, -1
    st = k.stat
    struct_sig = page_sig = None
    drawn_sig: tuple | None = None
    others = _counters(st, OTHERS_COUNTERS)
    vmas = 0
    for i, ev in enumerate(events):
        try:
            res, _ = run_event(k, ev, filename)
        except (TraceError, InvariantBroken, ModelFailure) as e:
            rec.error, rec.bad_trace = str(e), isinstance(e, TraceError)
            break
        except SyscallError as e:     # run_event turns these into results; be safe
            res = e.errno
        rec.results.append(_json_result(res))
        now = _counters(st, OTHERS_COUNTERS)
        pids = k.pids()
        if every_process or now != others or ev.op == "reclaim":
            look = pids
        else:
            look = [p for p in (ev.pid, ev.args[0] if ev.op == "fork" else None) if p is not None]
        others = now
        delta: list[list[Any]] = []
        alive = set(pids)
        for pid in [p for p in rows if p not in alive]:
            vmas -= len(rows.pop(pid))
            delta.append([pid, None])
        dirty = None if look is pids else _dirty(ev, res)
        for pid in look:
            if pid not in alive:
                continue
            new = process_rows(k, pid, rows.get(pid), dirty if pid == ev.pid else None)
            old = rows.get(pid)
            if new != old:
                delta.append([pid, encode_delta(old, new)])
                vmas += len(new) - (len(old) if old else 0)
                rows[pid] = new
        delta.sort(key=lambda d: d[0])
        rec.deltas.append(delta)
        meta = k.scheme.metadata_bytes()
        rec.stats.append([len(pids), vmas, int(k.mem.nr_used), int(k.ctx.swap.inuse_pages),
                          int(meta.get("i386", 0)), int(meta.get("x86_64", 0))])
        struct_sig = (_counters(st, STRUCT_COUNTERS), len(pids))
        page_sig = (_counters(st, PAGE_COUNTERS), int(k.mem.nr_used), int(k.ctx.swap.inuse_pages))
        must = ev.op == "checkpoint" or i == n - 1 or i == 0
        if must or (i - last_graph >= gap and (struct_sig, page_sig) != drawn_sig):
            dot = dot_source(k.scheme.describe(graph_limit))
            gid = dot_ids.get(dot)
            if gid is None:
                gid = dot_ids[dot] = len(rec.dots)
                rec.dots.append(dot)
            cur_graph, cur_graph_event, last_graph = gid, i, i
            drawn_sig = (struct_sig, page_sig)
        rec.graph.append(cur_graph)
        rec.graph_event.append(cur_graph_event)
        rec.graph_same.append((struct_sig, page_sig) == drawn_sig)
        if progress is not None:
            progress(i + 1)
    return rec


#: ops whose ptes and VMAs change only inside their address range
_RANGED = {"touch", "munmap", "mprotect", "madvise", "mlock", "munlock"}


def _dirty(ev: Any, res: Any) -> list[tuple[int, int]] | None:
    """The address ranges of its own process an event can change (None:
    anywhere). Merges, splits and faults stay inside the range, or touch a
    VMA that overlaps it."""
    a = ev.args
    if ev.op in _RANGED:
        return [(int(a[0]), int(a[0]) + max(0, int(a[1])))]
    if ev.op == "mmap" and isinstance(res, int):
        return [(res, res + max(0, int(a[1])))]
    if ev.op == "mremap" and isinstance(res, int):
        return [(int(a[0]), int(a[0]) + max(0, int(a[1]))), (res, res + max(0, int(a[2])))]
    return None


def rebuild(rec: Recording, upto: int) -> dict[int, list[list[Any]]]:
    """The rows of every process after event ``upto``, from the deltas
    (what the page's script does; used by the tests)."""
    state: dict[int, list[list[Any]]] = {}
    for delta in rec.deltas[:upto + 1]:
        for pid, rows in delta:
            if rows is None:
                state.pop(pid, None)
                continue
            before = {r[0]: r for r in state.get(pid, [])}
            state[pid] = [before[r] if isinstance(r, int) else r for r in rows]
    return state


def _pages(n: int) -> str:
    p = -(-int(n) // PAGE_SIZE)
    return f"{p} page{'s' if p != 1 else ''}"


def _prot(prot: Any) -> str:
    if isinstance(prot, str):
        return prot
    return (("r" if prot & 1 else "-") + ("w" if prot & 2 else "-") + ("x" if prot & 4 else "-"))


def _flags(flags: Any, table: dict[str, int]) -> str:
    if not isinstance(flags, int):
        return "|".join(flags)
    return "|".join(n for n, v in table.items() if v and flags & v == v) or "0"


def _addr(a: Any) -> str:
    return "any address" if a is None else f"{int(a):#x}"


def event_text(ev: Any) -> str:
    """One line saying what an event (from the trace reader) does."""
    from rmaplab.kernel.abi import MMAP_FLAGS, MREMAP_FLAGS
    op, pid, a = ev.op, ev.pid, ev.args
    who = f"pid {pid}"
    if op in ("spawn", "exec", "exit"):
        return f"{op} {who}"
    if op == "fork":
        return f"fork {who} -> pid {a[0]}"
    if op == "file":
        return f"file {a[0]} ({a[1]:,} bytes)"
    if op == "mmap":
        f = f" file {a[4]} at {int(a[5]):#x}" if a[4] is not None else ""
        return (f"mmap {who} {_addr(a[0])} {_pages(a[1])} {_prot(a[2])} "
                f"{_flags(a[3], MMAP_FLAGS)}{f}")
    if op in ("munmap", "mlock", "munlock"):
        return f"{op} {who} {_addr(a[0])} {_pages(a[1])}"
    if op == "mprotect":
        return f"mprotect {who} {_addr(a[0])} {_pages(a[1])} {_prot(a[2])}"
    if op == "mremap":
        to = f" to {_addr(a[4])}" if a[4] is not None else ""
        return (f"mremap {who} {_addr(a[0])} {_pages(a[1])} -> {_pages(a[2])} "
                f"{_flags(a[3], MREMAP_FLAGS)}{to}")
    if op == "brk":
        return f"brk {who} {_addr(a[0])}"
    if op == "madvise":
        return f"madvise {who} {_addr(a[0])} {_pages(a[1])} {a[2]}"
    if op == "touch":
        what = "write" if a[2] == "w" else "read"
        tok = f" {a[3]!r}" if a[2] == "w" and a[3] is not None else ""
        return f"touch {who} {what} {_addr(a[0])} {_pages(a[1])}{tok}"
    if op == "reclaim":
        return f"reclaim {a[0]} pages"
    if op == "checkpoint":
        return f"checkpoint {a[0]!r}"
    return op
