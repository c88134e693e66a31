"""``rmaplab compare``: put a workload through every scheme and show what
each one costs.

With no argument it runs the headline study: the claims of the 2004
anon_vma patch and the 2010 anon_vma_chain change, each on a workload built
to test it, with a verdict line per claim. With a workload name (see
``rmaplab generate --list``) or a trace file, it replays that under each
scheme.
"""

from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from rmaplab.cli.progress import progress
from rmaplab.config import SCHEMES, ConfigError, size_to_pages

if TYPE_CHECKING:
    from rmaplab.report.measure import Metrics


def register(sub: Any) -> None:
    from rmaplab.cli.main import add_profile_option
    p = sub.add_parser(
        "compare", help="run a workload under every scheme and compare the costs",
        description=__doc__.replace("``", "'"), formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  rmaplab compare                      the headline study (a few seconds)\n"
               "  rmaplab compare --html report.html   the study with its sweeps and plots, as one HTML\n"
               "                                       file (about 15 s)\n"
               "  rmaplab compare aim7 -p children=200 --mem 32M\n"
               "  rmaplab compare trace.jsonl --scheme anon_vma,anonmm --json\n")
    p.add_argument("target", nargs="?", help="a workload name or a trace file (default: the study)")
    p.add_argument("--scheme", default="all",
                   help=f"'all' or a comma list of {', '.join(SCHEMES)} or FILE.py:CLASS "
                        "(default all)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="workload parameter (repeatable)")
    p.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    p.add_argument("--mem", help="physical memory, e.g. 64M (default: unlimited)")
    p.add_argument("--swap", help="swap space (default: unlimited)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="worker processes for the study (default: 2 or the cores)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar on stderr")
    add_profile_option(p)
    p.set_defaults(func=run)


def _schemes(text: str) -> list[str]:
    """'all' (every registered scheme) or a comma list of names and
    FILE.py:CLASS specs, each checked through the registry."""
    from rmaplab.rmap import registry
    if text == "all":
        return registry.names()
    names = [s.strip() for s in text.split(",") if s.strip()]
    for s in names:
        registry.resolve(s)             # ConfigError (exit 2) for an unknown or broken one
    return names


def run(args: argparse.Namespace) -> int:
    schemes = _schemes(args.scheme)
    # soft_wrap: piped output keeps each claim and legend line whole
    console = Console(stderr=True, soft_wrap=True) if args.json else Console(soft_wrap=True)
    if args.target is None:
        if args.profile != "2.6.7":
            from rmaplab.cli.main import UsageError
            raise UsageError("the headline study runs each claim in its own era; "
                             "--profile applies to a trace or a workload")
        return _study(args, schemes, console)
    return _one(args, schemes, console)


def _load(args: argparse.Namespace) -> tuple[str, list]:
    from rmaplab.cli.main import UsageError
    from rmaplab.trace.reader import TraceError, parse_trace, read_trace
    target = args.target
    if os.path.exists(target):
        try:
            return target, list(read_trace(target).events)
        except TraceError as e:
            raise UsageError(str(e)) from None
    try:
        from rmaplab.workloads.generators import WORKLOADS
    except ImportError:
        WORKLOADS = {}
    if target not in WORKLOADS:
        known = ", ".join(sorted(WORKLOADS)) or "none yet"
        raise UsageError(f"{target!r} is neither a trace file nor a workload ({known})")
    try:                                # one parser for generate, compare and sweep
        params = WORKLOADS[target].parse_params(args.param)
        events = WORKLOADS[target].generate(seed=args.seed, **params)
    except (TypeError, ValueError) as e:
        raise UsageError(f"workload {target}: {e}") from None
    return target, list(parse_trace([json.dumps(e) for e in events], filename=target).events)


def _one(args: argparse.Namespace, schemes: list[str], console: Console) -> int:
    from rmaplab.cli.main import UsageError
    from rmaplab.report.measure import measure
    from rmaplab.report.table import legend, render
    name, events = _load(args)
    try:
        mem, swap = size_to_pages(args.mem), size_to_pages(args.swap)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    results: list[Metrics] = []
    with progress(args.quiet) as prog:
        for s in schemes:
            task = prog.add_task(f"{s:>15}", total=len(events))

            def advance(i: int, t: Any = task) -> None:
                prog.update(t, completed=i)

            results.append(measure(events, s, mem, swap, progress=advance, profile=args.profile))
    if args.json:
        print(json.dumps([m.as_dict() for m in results], indent=1, default=str))
    else:
        render(f"{name}: {len(events)} events" + (f", mem {args.mem}" if args.mem else ""),
               results, console)
        legend(console)
    if args.html:
        from rmaplab.report.html import bar_chart, page, table_html
        secs = [table_html(name, results),
                f"<img src='{bar_chart('rmap walk work', 'candidates + ptes', {m.scheme: m.walk_work() for m in results})}'>",  # noqa: E501
                f"<img src='{bar_chart('peak rmap metadata, i386', 'bytes', {m.scheme: m.peak_bytes['i386'] for m in results})}'>"]  # noqa: E501
        _write(args.html, page(f"rmaplab compare {name}", secs), console)
    return 0


def _write(path: str, text: str, console: Console) -> None:
    with open(path, "w") as f:
        f.write(text)
    console.print(f"wrote {path}")


def _study(args: argparse.Namespace, schemes: list[str], console: Console) -> int:
    from rmaplab.report.study import (CASES, headline_jobs, run_job, sweep_jobs, to_json,
                                      verdicts)
    jobs = headline_jobs(schemes)
    sweeps = sweep_jobs(schemes) if args.html else []
    everything = jobs + [j for _, _, j in sweeps]
    done: dict[Any, Metrics] = {}
    with progress(args.quiet) as prog:
        task = prog.add_task("study", total=len(everything))
        if args.jobs > 1:
            with ProcessPoolExecutor(max_workers=args.jobs) as ex:
                for job, m in ex.map(run_job, everything):
                    done[job] = m
                    prog.advance(task)
        else:
            for job in everything:
                done[job] = run_job(job)[1]
                prog.advance(task)
    from rmaplab.report.table import legend, render
    res = {(j.case, j.scheme): done[j] for j in jobs}
    vs = verdicts(res)
    if args.json:
        print(to_json(res, vs))
    else:
        for c in CASES:
            ms = [res[(c.name, s)] for s in c.schemes if (c.name, s) in res]
            if ms:
                render(f"{c.name}: {c.title}", ms, console)
        legend(console)
        console.print()
        console.print("[bold]Claims[/bold]")
        for v in vs:
            style = "green" if v.supported else "red" if v.supported is False else "yellow"
            console.print(f"[{style}]{escape(v.line())}[/{style}]")
    if args.html:
        _study_html(args.html, res, vs, sweeps, done, console)
    return 0


def _study_html(path: str, res: dict, vs: list, sweeps: list, done: dict,
                console: Console) -> None:
    from rmaplab.report.html import study_page
    from rmaplab.report.study import CASES, SWEEP_X, SWEEPS
    series: dict[str, tuple[str, str, dict[str, list[tuple[float, float]]]]] = {}
    for title, _, _, _, metric in SWEEPS:
        pts: dict[str, list[tuple[float, float]]] = {}
        for t, x, job in sweeps:
            if t != title:
                continue
            val = done[job].as_dict()[metric]
            if val is not None:
                pts.setdefault(job.scheme, []).append((x, val))
        label = {"walk_work_per_reclaimed": "rmap work per reclaimed page",
                 "metadata_bytes_i386": "peak rmap metadata, i386 bytes"}.get(metric, metric)
        series[title] = (SWEEP_X[title], label, pts)
    cases = [(c.name, c.title, [res[(c.name, s)] for s in c.schemes if (c.name, s) in res])
             for c in CASES]
    _write(path, study_page("rmaplab: the anon_vma claims, measured", vs, cases, series), console)
