"""``rmaplab show``: pictures of a trace's state.

In the terminal: after each checkpoint (or each ``--at`` event), every
process's VMAs drawn a character per page, and the structures of the
reverse-mapping scheme; ``--page ADDR`` adds one page's reverse map and
every place a walk from it looks. With ``--html FILE``: one self-contained
page that steps through every event, for one scheme or several side by
side, with the scheme's graph drawn by graphviz.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import TaskID
from rich.text import Text

from rmaplab.cli.main import UsageError, add_profile_option
from rmaplab.cli.progress import progress
from rmaplab.config import SCHEMES, Config, ConfigError, size_to_pages

EPILOG = """\
examples:
  rmaplab generate aim7 -p N=4 -p M=8 -o aim7.jsonl
  rmaplab show aim7.jsonl
      the state at every checkpoint of the trace, under anon_vma (2.6.7)
  rmaplab show aim7.jsonl --at 6 --page 0x2aaaaaaab000 --pid 1
      the state after event 6, and page 0x2aaaaaaab000 of pid 1: its struct
      page, its reverse map, and every VMA or mm a walk from it looks at
  rmaplab show aim7.jsonl --scheme anon_vma_chain --profile modern
  rmaplab show aim7.jsonl --html aim7.html --scheme anon_vma,anon_vma_chain
      a page that steps through every event, the two schemes side by side
  rmaplab show kbuild -p compiles=8 --html kb.html
      a workload name instead of a trace file (see rmaplab generate --list)

pages: - no pte, A anonymous, F page cache, 2-9 a frame mapped that many
times (* 10 or more), z zero page, s swapped out. A VMA wider than --width
puts several pages in a character (the commonest of them), and says so.
exit status: 0 shown, 2 bad trace or option, 1 the model broke."""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "show", help="draw a trace's address spaces and rmap structures (terminal or HTML)",
        description=__doc__.replace("``", "'"), epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trace", metavar="TRACE", help="a trace file ('-' for stdin), or a workload name")
    p.add_argument("--at", metavar="EVENT", action="append", default=[],
                   help="show the state after this event (index from 0, as in replay's results; "
                        "'end' for the last; repeatable or comma separated; default: every "
                        "checkpoint and the end, or without checkpoints the moment the most VMAs "
                        "are alive and the end)")
    p.add_argument("--page", metavar="ADDR",
                   help="also show this page's reverse map and what a walk from it visits")
    p.add_argument("--pid", metavar="PID", action="append", default=[],
                   help="draw only these processes (repeatable or comma separated); with --page, "
                        "the process whose page it is")
    p.add_argument("--all", action="store_true",
                   help="draw every process (default: the first 16 kinds of layout)")
    p.add_argument("--width", type=int, default=None,
                   help="characters for a VMA's pages (default: fits the terminal; 64 when piped)")
    p.add_argument("--scheme", default=None,
                   help=f"scheme, or a comma list for side by side: {', '.join(SCHEMES)} "
                        "(default: the profile's)")
    p.add_argument("--html", metavar="FILE", help="write a page that steps through every event")
    p.add_argument("--graphs", type=int, default=300, metavar="N",
                   help="with --html: draw the rmap graph at most about N times across the trace, "
                        "always at checkpoints and the end (default 300)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="workload parameter, when TRACE is a workload name (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="workload seed (default 0, as generate)")
    p.add_argument("--mem", help="physical memory, e.g. 64M (default: unlimited)")
    p.add_argument("--swap", help="swap space (default: unlimited)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no summary")
    add_profile_option(p)
    p.set_defaults(func=run)


def _load(args: argparse.Namespace) -> tuple[str, list[Any]]:
    """The trace file ('-': stdin) or the workload named, as events."""
    if args.trace == "-":
        from rmaplab.trace.reader import TraceError, read_trace
        try:
            return "<stdin>", list(read_trace("-").events)
        except TraceError as e:
            raise UsageError(str(e)) from None
    from rmaplab.cli.compare import _load as load
    return load(argparse.Namespace(target=args.trace, param=args.param, seed=args.seed))


def _configs(args: argparse.Namespace) -> list[Config]:
    names = [s.strip() for s in args.scheme.split(",") if s.strip()] if args.scheme else [None]
    if not names:
        raise UsageError("--scheme: name at least one scheme")
    try:
        mem, swap = size_to_pages(args.mem), size_to_pages(args.swap)
        out = []
        for s in names:
            kw: dict[str, Any] = {"profile": args.profile, "mem_pages": mem, "swap_pages": swap}
            if s is not None:
                kw["scheme"] = s
            out.append(Config(**kw))
    except ConfigError as e:
        raise UsageError(str(e)) from None
    return out


def _ints(values: list[str], what: str) -> list[int]:
    out = []
    for v in values:
        for part in v.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                out.append(int(part, 0))
            except ValueError:
                raise UsageError(f"{what}: {part!r} is not a number") from None
    return out


def _busiest(events: list[Any], config: Config, name: str, quiet: bool) -> int:
    """The first event after which the most VMAs are alive (where a trace
    without checkpoints has the most to draw)."""
    from rmaplab.kernel import Kernel
    from rmaplab.trace.reader import TraceError
    from rmaplab.trace.replay import InvariantBroken, ModelFailure, run_event
    k = Kernel(config)
    st = k.stat
    best, at = -1, 0
    with progress(quiet) as prog:
        task = prog.add_task("finding the busiest moment", total=len(events))
        for i, ev in enumerate(events):
            try:
                run_event(k, ev, name)
            except TraceError as e:
                raise UsageError(str(e)) from None
            except (InvariantBroken, ModelFailure):
                break
            if st.vma_alloc - st.vma_free > best:
                best, at = st.vma_alloc - st.vma_free, i
            if not i & 511:
                prog.update(task, completed=i)
    return at


def _points(args: argparse.Namespace, events: list[Any], busiest: Any = None) -> list[int]:
    n = len(events)
    if not args.at:
        pts = [e.index for e in events if e.op == "checkpoint"]
        if not pts and busiest is not None:
            pts.append(busiest())
        if not pts or pts[-1] != n - 1:
            pts.append(n - 1)
        return pts
    out = []
    for v in args.at:
        for part in v.split(","):
            part = part.strip()
            if not part:
                continue
            if part == "end":
                out.append(n - 1)
                continue
            try:
                i = int(part, 0)
            except ValueError:
                raise UsageError(f"--at: {part!r} is not an event number (or 'end')") from None
            if not 0 <= i < n:
                raise UsageError(f"--at {i}: the trace has {n} events, numbered 0 to {n - 1}")
            out.append(i)
    return sorted(set(out))


def run(args: argparse.Namespace) -> int:
    configs = _configs(args)
    name, events = _load(args)
    if not events:
        raise UsageError(f"{name}: the trace has no events")
    if args.width is not None and args.width < 1:
        raise UsageError("--width must be at least 1")
    if args.graphs < 1:
        raise UsageError("--graphs must be at least 1")
    pids = _ints(args.pid, "--pid")
    page = None
    if args.page is not None:
        try:
            page = int(args.page, 0)
        except ValueError:
            raise UsageError(f"--page: {args.page!r} is not an address (e.g. 0x2aaaaaaab000)") from None
    if args.html:
        return _html(args, name, events, configs)
    points = _points(args, events, lambda: _busiest(events, configs[0], name, args.quiet))
    out = Console(soft_wrap=True, highlight=False)
    width = args.width or (max(16, min(128, out.width - 64)) if out.is_terminal else 64)
    for config in configs:
        code = _terminal(args, name, events, config, points, pids, page, width, out)
        if code:
            return code
    out.print(Text("legend: " + _legend(), style="grey50"))
    return 0


def _legend() -> str:
    from rmaplab.show.term import LEGEND
    return LEGEND


def _terminal(args: argparse.Namespace, name: str, events: list[Any], config: Config,
              points: list[int], pids: list[int], page: int | None, width: int,
              out: Console) -> int:
    from rmaplab.kernel import Kernel
    from rmaplab.show.state import summary
    from rmaplab.show.steps import event_text
    from rmaplab.show.term import process_lines, rmap_lines, summary_line
    from rmaplab.trace.reader import TraceError
    from rmaplab.trace.replay import InvariantBroken, ModelFailure, run_event
    k = Kernel(config)
    todo = set(points)
    last = points[-1]
    with progress(args.quiet) as prog:
        task = prog.add_task(f"replaying ({config.scheme})", total=last + 1)
        for i, ev in enumerate(events[:last + 1]):
            try:
                res, _ = run_event(k, ev, name)
            except TraceError as e:
                raise UsageError(str(e)) from None
            except (InvariantBroken, ModelFailure) as e:
                print(f"rmaplab: {e}", file=sys.stderr)
                return 1
            prog.update(task, completed=i + 1)
            if i not in todo:
                continue
            title = (f"after event {i} (line {ev.line}): {event_text(ev)}"
                     + (f" = {res}" if res is not None else ""))
            out.print(Text(f"── {title} " + "─" * max(3, 76 - len(title)), style="bold"))
            out.print(Text(f"{name}, scheme {config.scheme}, profile {config.profile}",
                           style="grey50"))
            alive = k.pids()
            chosen = [p for p in alive if p in pids] if pids else alive
            if pids and not chosen:
                out.print(Text(f"none of pid {', '.join(map(str, pids))} is alive here"))
            for line in process_lines(k, chosen, width, None if args.all or pids else 16):
                out.print(line)
            for line in rmap_lines(k.scheme.describe(64)):
                out.print(line)
            out.print(summary_line(summary(k)))
            if page is not None:
                _page(k, page, pids, out)
            out.print()
    return 0


def _page(k: Any, addr: int, pids: list[int], out: Console) -> None:
    from rmaplab.show.term import page_lines
    alive = k.pids()
    if len(pids) == 1:
        pid = pids[0]
    elif not pids and len(alive) == 1:
        pid = alive[0]
    else:
        raise UsageError("--page: say whose page it is with one --pid "
                         f"({len(alive)} processes are alive)")
    if pid not in alive:
        out.print(Text(f"page {addr:#x}: pid {pid} is not alive here"))
        return
    try:
        lines = page_lines(k, pid, addr)
    except LookupError as e:
        out.print(Text(f"page {addr:#x}: {e}"))
        return
    for line in lines:
        out.print(line)


def _html(args: argparse.Namespace, name: str, events: list[Any], configs: list[Config]) -> int:
    from rmaplab.show.graph import GraphvizMissing, render_svgs
    from rmaplab.show.html import page
    from rmaplab.show.steps import event_text, record
    start = _points(args, events)[0] if args.at else 0
    t0 = time.perf_counter()
    recs = []
    with progress(args.quiet) as prog:
        for config in configs:
            task = prog.add_task(f"recording {config.scheme}", total=len(events))

            def step(i: int, task: TaskID = task) -> None:
                prog.update(task, completed=i)
            recs.append(record(events, config, graph_budget=args.graphs, filename=name,
                               progress=step))
        svgs: list[list[str]] | None = None
        note = None
        try:
            drawn: list[list[str]] = []
            task = prog.add_task("drawing graphs", total=sum(len(r.dots) for r in recs))
            for r in recs:
                base = sum(len(x) for x in drawn)

                def done(n: int, base: int = base) -> None:
                    prog.update(task, completed=base + n)
                drawn.append(render_svgs(r.dots, jobs=os.cpu_count() or 1, progress=done))
            svgs = drawn
        except GraphvizMissing as e:
            note = f"No rmap graphs: {e}."
            print(f"rmaplab: {e}; the page has no rmap graphs", file=sys.stderr)
    for r in recs:
        if r.error and r.bad_trace:
            raise UsageError(r.error)
        if r.error:
            print(f"rmaplab: {r.scheme}: the model broke; the page ends there: {r.error}",
                  file=sys.stderr)
    checkpoints = [e.index for e in events if e.op == "checkpoint"]
    sub = (f"{name}: {len(events):,} events; scheme {', '.join(c.scheme for c in configs)}; "
           f"profile {configs[0].profile}"
           + (f"; mem {args.mem}" if args.mem else "") + (f"; swap {args.swap}" if args.swap else ""))
    text = page(f"rmaplab show {os.path.basename(name)}", sub,
                [(e.line, event_text(e)) for e in events], checkpoints, recs, svgs, note, start,
                args.graphs)
    try:
        with open(args.html, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise UsageError(f"{args.html}: cannot write: {e.strerror or e}") from None
    if not args.quiet:
        graphs = sum(len(r.dots) for r in recs)
        print(f"wrote {args.html}: {len(text.encode()):,} bytes, {len(events):,} events, "
              f"{graphs} graphs, {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return 1 if any(r.error for r in recs) else 0
