"""``rmaplab sweep``: vary one parameter of a workload (processes, pages,
memory pressure), run every scheme at every value in parallel over the
local cores, print a table and draw a plot.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from rich.console import Console
from rich.table import Table

from rmaplab.report.parallel import pool_map
from rmaplab.config import ConfigError, size_to_pages

#: measures a sweep can plot (keys of Metrics.as_dict)
METRICS = ("walk_work_per_reclaimed", "walk_work", "fork_work", "exit_work", "mremap_work",
           "find_vma_calls", "locks", "peak_vmas", "metadata_bytes_i386",
           "metadata_bytes_x86_64", "pages_copied", "pgsteal", "oom_kills", "seconds")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "sweep", help="vary one workload parameter and plot a measure for every scheme",
        description=__doc__.replace("``", "'"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  rmaplab sweep aim7 --vary N=10,50,100,200 --metric walk_work_per_reclaimed "
               "--mem 16M -o aim7.png\n"
               "  rmaplab sweep aim7 --vary mem=8M,16M,32M --scheme anon_vma,anon_vma_chain\n"
               "  rmaplab sweep jit --vary regions=64,128,256 --metric peak_vmas --json\n"
               "  rmaplab sweep aim7 --vary mem=1M,2M,4M --swap 0 -p N=20 -p M=64 "
               "--metric oom_kills\n"
               "\n"
               "Every point is measured to its end: where the model runs out of memory the\n"
               "OOM killer takes a process (its later events are skipped), and the table's\n"
               "'OOM kills' column (and each JSON point's oom_kills) counts them per scheme.\n"
               "A run that fails is reported in one line naming the point (exit status 2\n"
               "for bad input, 1 for a model failure).\n")
    p.add_argument("workload", help="a workload name (rmaplab generate --list)")
    p.add_argument("--vary", required=True, metavar="NAME=V1,V2,...",
                   help="the parameter to vary and its values; NAME 'mem' varies --mem")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a fixed workload parameter (repeatable)")
    p.add_argument("--scheme", default="all", help="'all' or a comma list of schemes")
    p.add_argument("--metric", default="walk_work", choices=METRICS,
                   help="the measure to plot (default walk_work)")
    p.add_argument("--mem", help="physical memory (default: unlimited)")
    p.add_argument("--swap", help="swap space (default: unlimited)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scheduler", metavar="ADDR", default=None,
                   help="run the points on a Dask cluster (tcp://HOST:PORT), or 'local' for a "
                        "local one; the same points give the same results anywhere")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="worker processes (default: all cores)")
    p.add_argument("-o", "--output", metavar="PNG", help="write the plot here")
    p.add_argument("--json", action="store_true", help="print the points as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def _point(job: tuple) -> tuple[tuple, dict | None, tuple[int, str] | None]:
    """Generate the workload and measure it (runs in a worker process, or
    on a Dask worker): (key, measures, None), or (key, None, (exit status,
    one line)) when the run failed, so that any error crosses back whole."""
    from rmaplab.cli.pool import failure
    from rmaplab.report.measure import measure
    from rmaplab.trace.reader import parse_trace
    from rmaplab.workloads.generators import WORKLOADS
    name, params, scheme, mem, seed, swap = (*job, None)[:6]
    key = (scheme, json.dumps(params, sort_keys=True), mem)
    try:
        events = WORKLOADS[name].generate(seed=seed, **params)
        evs = parse_trace([json.dumps(e) for e in events], filename=name).events
        m = measure(list(evs), scheme, mem_pages=mem, swap_pages=swap)
    except Exception as e:          # never a broken pool: the error as a line
        return key, None, failure(e)
    return key, m.as_dict(), None


def run(args: argparse.Namespace) -> int:
    from rmaplab.cli.compare import _schemes
    from rmaplab.cli.main import UsageError
    from rmaplab.rmap import registry
    from rmaplab.workloads.generators import WORKLOADS
    if args.workload not in WORKLOADS:
        raise UsageError(f"unknown workload {args.workload!r}; known: {', '.join(sorted(WORKLOADS))}")
    if "=" not in args.vary:
        raise UsageError("--vary needs NAME=V1,V2,...")
    vname, vals = args.vary.split("=", 1)
    values = [v.strip() for v in vals.split(",") if v.strip()]
    if not values:
        raise UsageError("--vary needs at least one value")
    w = WORKLOADS[args.workload]
    try:                                # one parser for generate, compare and sweep
        fixed = w.parse_params(args.param)
        varied = ([w.parse_params([f"{vname}={v}"])[vname] for v in values]
                  if vname != "mem" else values)
    except ValueError as e:
        raise UsageError(str(e)) from None
    schemes = _schemes(args.scheme)
    try:
        base_mem = size_to_pages(args.mem)
        swap = size_to_pages(args.swap)
        jobs, xs = [], []
        for v in varied:
            params, mem = dict(fixed), base_mem
            if vname == "mem":
                mem = size_to_pages(v)
                x = mem
            else:
                params[vname] = x = v
            xs.append(x)
            for s in schemes:
                jobs.append((args.workload, params, s, mem, args.seed, swap))
    except ConfigError as e:
        raise UsageError(str(e)) from None
    # Validate the parameters once, here, so that errors are one line.
    for _, params, _, _, _, _ in jobs[:: max(1, len(schemes))]:
        try:
            WORKLOADS[args.workload].generate(seed=args.seed, **params)
        except (TypeError, ValueError) as e:
            raise UsageError(f"workload {args.workload}: {e}") from None
    console = Console(stderr=True) if args.json else Console()
    results: dict[tuple, dict] = {}
    from rmaplab.cli.progress import progress
    with progress(args.quiet) as prog:
        task = prog.add_task(f"{len(jobs)} runs on {args.jobs} cores", total=len(jobs))
        try:
            for key, d, err in pool_map(_point, jobs, max(1, args.jobs), args.scheduler):
                if err is not None:
                    status, line = err
                    scheme, pj, mem = key
                    where = ", ".join(f"{k}={v}" for k, v in json.loads(pj).items()
                                      if k == vname) or (f"mem={mem}" if vname == "mem" else "")
                    print(f"rmaplab: sweep {args.workload} {where} under {scheme}: {line}",
                          file=sys.stderr)
                    return status
                results[key] = d
                prog.advance(task)
        except BrokenProcessPool:
            print(f"rmaplab: sweep {args.workload}: a worker process died (killed, or out of "
                  f"this machine's memory)", file=sys.stderr)
            return 1
    points = []
    for (_, pj, mem), d in results.items():
        params = json.loads(pj)
        x = mem if vname == "mem" else params[vname]
        points.append({"scheme": d["scheme"], vname: x, args.metric: d[args.metric],
                       "oom_kills": d["oom_kills"], "all": d})
    names = [registry.resolve(s) for s in schemes]      # a plugin by its scheme name
    if args.json:
        print(json.dumps([{k: v for k, v in p.items() if k != "all"} for p in points], indent=1))
    else:
        t = Table(title=f"{args.workload}: {args.metric} against {vname}", title_justify="left")
        t.add_column(vname, justify="right")
        for s in names:
            t.add_column(s, justify="right")
        # the OOM killer's work is an outcome of each point: its kills per
        # scheme, in the order of the columns
        t.add_column("OOM kills", justify="right")
        for x in xs:
            row = [str(x)]
            kills = []
            for s in names:
                p = next((p for p in points if p["scheme"] == s and p[vname] == x), None)
                val = None if p is None else p[args.metric]
                row.append("-" if val is None else f"{val:,.1f}" if isinstance(val, float) else f"{val:,}")
                kills.append("-" if p is None else f"{p['oom_kills']:,}")
            row.append("0" if set(kills) == {"0"} else " / ".join(kills))
            t.add_row(*row)
        console.print(t)
    if args.output:
        from rmaplab.report.html import line_chart
        import base64
        series: dict[str, list] = {}
        for p in points:
            if p[args.metric] is not None and isinstance(p[vname], (int, float)):
                series.setdefault(p["scheme"], []).append((p[vname], p[args.metric]))
        uri = line_chart(f"{args.workload}: {args.metric}", vname, args.metric, series)
        with open(args.output, "wb") as f:
            f.write(base64.b64decode(uri.split(",", 1)[1]))
        console.print(f"wrote {args.output}")
    return 0
