"""``rmaplab bench``: how fast the model does the live kernel's work.

Each case is a trace replayed through the same path as ``rmaplab replay``
(reader, then replay); the setup part of the trace runs first, untimed,
then the measured part is timed, plus the time to read its lines. Memory is measured with tracemalloc
(numpy's arrays are traced) per resident page after the 1 GiB touch.
The reclaim cases run with --mem (default 64M) and report pages reclaimed
per second.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc
from typing import Any

from rmaplab.config import SCHEMES, Config, size_to_pages

# The model is imported when a benchmark runs, so that '--help' is quick.
GIB = 1 << 30


def register(sub: Any) -> None:
    p = sub.add_parser(
        "bench", help="time the model on the live kernel's work (faults, fork, munmap, ...)",
        description=__doc__.replace("``", "'"), formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  rmaplab bench\n  rmaplab bench --scheme all --size 256M\n"
               "  rmaplab bench --only reclaim --mem 64M --json\n")
    p.add_argument("--scheme", default="anon_vma",
                   help=f"scheme, or 'all' ({', '.join(SCHEMES)}); default anon_vma")
    p.add_argument("--size", default="1G", help="size of the big region (default 1G)")
    p.add_argument("--mprotects", type=int, default=40_000, help="mprotect calls (default 40000)")
    p.add_argument("--mem", default="64M", help="memory for the reclaim cases (default 64M)")
    p.add_argument("--only", choices=("core", "reclaim", "memory"), action="append",
                   help="run only these groups (repeatable)")
    p.add_argument("--repeat", type=int, default=3, help="runs per case; the best is kept")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def _events(evs: list[dict], name: str) -> Any:
    from rmaplab.trace.reader import parse_trace
    lines = [json.dumps(e) for e in evs]
    return parse_trace(lines, filename=name)


def time_case(scheme: str, setup: list[dict], measured: list[dict], name: str,
              mem: int | None = None, repeat: int = 3) -> tuple[float, Any]:
    from rmaplab.kernel import Kernel
    from rmaplab.trace.replay import replay
    best, k = float("inf"), None
    for _ in range(repeat):
        k = Kernel(Config(scheme=scheme, mem_pages=mem))
        # Reading the measured lines counts too: parse with and without them.
        t = time.perf_counter()
        evs = list(_events(setup + measured, name).events)
        t_all = time.perf_counter() - t
        t = time.perf_counter()
        _events(setup, name)
        t_parse = max(0.0, t_all - (time.perf_counter() - t))
        pre, meas = evs[:len(setup)], evs[len(setup):]
        replay(k, pre)
        gc.collect()
        t = time.perf_counter()
        replay(k, meas)
        best = min(best, time.perf_counter() - t + t_parse)
    assert k is not None
    return best, k


def bytes_per_page(scheme: str, size: int) -> float:
    from rmaplab.kernel import Kernel
    from rmaplab.trace.replay import replay
    from rmaplab.workloads.micro import micro_workloads
    setup = micro_workloads(size)[0]
    gc.collect()
    tracemalloc.start()
    k = Kernel(Config(scheme=scheme))
    replay(k, _events(setup.setup + setup.measured, "memory"))
    cur, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return cur / max(1, k.mem.nr_used)


def run(args: argparse.Namespace) -> int:
    from rmaplab.cli.main import UsageError
    from rmaplab.workloads.micro import micro_workloads, reclaim_workload
    from rmaplab.config import parse_size
    size = parse_size(args.size)
    if size < 1 << 20:
        raise UsageError("--size must be at least 1M")
    from rmaplab.cli.compare import _schemes
    from rmaplab.rmap import registry
    schemes = _schemes(args.scheme)
    groups = set(args.only or ("core", "reclaim", "memory"))
    mem = size_to_pages(args.mem)
    rows: list[dict] = []

    def out(row: dict) -> None:
        rows.append(row)
        if not args.json:
            extra = ""
            if row.get("kernel_s") is not None:
                extra = f"  (live kernel {row['kernel_s']:.3f} s, target {row['target_s']:.3f} s)"
            print(f"{row['scheme']:>15}  {row['case']:<16} {row['seconds']:8.3f} s"
                  f"  {row['rate']:>12,.0f} {row['unit']}/s{extra}", flush=True)

    from rmaplab.cli.progress import progress
    micro = micro_workloads(size, args.mprotects) if "core" in groups else []
    cases = len(micro) + (2 if "reclaim" in groups else 0) + (1 if "memory" in groups else 0)
    with progress(args.quiet) as prog:
        task = prog.add_task("bench", total=cases * len(schemes))
        for scheme in schemes:
            name = registry.resolve(scheme)         # a plugin by its scheme name
            for m in micro:
                secs, _ = time_case(scheme, m.setup, m.measured, m.name, repeat=args.repeat)
                out({"scheme": name, "case": m.name, "what": m.what, "seconds": secs,
                     "rate": m.units / secs, "unit": m.unit, "kernel_s": m.kernel_s,
                     "target_s": m.target_s})
                prog.advance(task)
            if "reclaim" in groups:
                for sharers in (0, 3):
                    evs = reclaim_workload(size, sharers)
                    secs, k = time_case(scheme, evs[:1], evs[1:], f"reclaim-{sharers}", mem=mem,
                                        repeat=1)
                    st = k.stat
                    out({"scheme": name, "case": f"reclaim x{sharers + 1}",
                         "what": f"{size >> 20} MiB demand in {args.mem}, {sharers} forked sharers",
                         "seconds": secs, "rate": st.pgsteal / secs, "unit": "reclaimed",
                         "pgsteal": st.pgsteal, "pswpout": st.pswpout, "pswpin": st.pswpin,
                         "rmap_vmas_visited": st.rmap_vmas_visited, "kernel_s": None,
                         "target_s": None})
                    prog.advance(task)
            if "memory" in groups:
                b = bytes_per_page(scheme, min(size, GIB))
                rows.append({"scheme": name, "case": "memory", "bytes_per_page": b,
                             "kernel_bytes": 64, "target_bytes": 200})
                if not args.json:
                    print(f"{name:>15}  memory           {b:8.1f} bytes per resident page"
                          f"  (struct page 64 B, target 200 B)", flush=True)
                prog.advance(task)
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0
