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
import sys
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
               "  rmaplab compare aim7 -p N=200 --mem 32M\n"
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
                   help="worker processes: the study's runs, or one per scheme "
                        "(default: 2 or the cores)")
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
    if args.jobs < 1:
        from rmaplab.cli.main import UsageError
        raise UsageError("--jobs must be at least 1")
    # soft_wrap: piped output keeps each claim and legend line whole
    console = Console(stderr=True, soft_wrap=True) if args.json else Console(soft_wrap=True)
    if args.target is None:
        if args.profile != "2.6.7":
            from rmaplab.cli.main import UsageError
            raise UsageError("the headline study runs each claim in its own era; "
                             "--profile applies to a trace or a workload")
        return _run(_study, args, schemes, console)
    return _run(_one, args, schemes, console)


def _run(fn: Any, args: argparse.Namespace, schemes: list[str], console: Console) -> int:
    """``fn``, with a failed run (in a worker or here) as one line."""
    from rmaplab.cli.pool import JobFailed
    try:
        return int(fn(args, schemes, console))
    except JobFailed as e:
        print(f"rmaplab: compare: {e}", file=sys.stderr)
        return e.status


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


def _measure_scheme(job: tuple[int, str]) -> Metrics:
    """One scheme over the shared events (in a worker process, or here)."""
    from rmaplab.cli.pool import report, shared
    from rmaplab.report.measure import measure
    i, scheme = job
    events, mem, swap, profile = shared()
    return measure(events, scheme, mem, swap, progress=lambda n: report(i, n), profile=profile)


def _one(args: argparse.Namespace, schemes: list[str], console: Console) -> int:
    from rmaplab.cli.main import UsageError
    from rmaplab.cli.pool import run_jobs
    from rmaplab.report.table import legend, render
    name, events = _load(args)
    try:
        mem, swap = size_to_pages(args.mem), size_to_pages(args.swap)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    got: dict[int, Metrics] = {}
    with progress(args.quiet) as prog:
        tasks = [prog.add_task(f"{s:>15}", total=len(events)) for s in schemes]
        # every scheme in parallel (--jobs), each reporting its events done
        run_jobs(_measure_scheme, list(enumerate(schemes)), args.jobs,
                 done=lambda job, m: got.__setitem__(job[0], m),
                 what=lambda job: f"{name} under {job[1]}",
                 on_progress=lambda i, n: prog.update(tasks[i], completed=n),
                 shared_data=(events, mem, swap, args.profile))
    results = [got[i] for i in range(len(schemes))]
    if args.json:
        print(json.dumps([m.as_dict() for m in results], indent=1, default=str))
    else:
        render(f"{name}: {len(events)} events" + (f", mem {args.mem}" if args.mem else "")
               + (f", swap {args.swap}" if args.swap else ""), results, console)
        legend(console)
        _oom_note(results, console)
    if args.html:
        from rmaplab.report.html import bar_chart, page, table_html
        secs = [table_html(name, results),
                f"<img src='{bar_chart('rmap walk work', 'candidates + ptes', {m.scheme: m.walk_work() for m in results})}'>",  # noqa: E501
                f"<img src='{bar_chart('peak rmap metadata, i386', 'bytes', {m.scheme: m.peak_bytes['i386'] for m in results})}'>"]  # noqa: E501
        _write(args.html, page(f"rmaplab compare {name}", secs), console)
    return 0


def _oom_note(results: list[Metrics], console: Console) -> None:
    """A line saying the OOM killer ran, and what that did to the figures."""
    hit = [m for m in results if m.oom_killed]
    if hit:
        console.print("  OOM killer: " + ", ".join(
            f"{m.scheme} {len(m.oom_killed)} (pid {', '.join(map(str, m.oom_killed[:3]))}"
            f"{', ...' if len(m.oom_killed) > 3 else ''}; {m.skipped:,} events skipped)"
            for m in hit) + "; a killed process's later events do not run")


def _write(path: str, text: str, console: Console) -> None:
    with open(path, "w") as f:
        f.write(text)
    console.print(f"wrote {path}")


#: the study's job that simulates the lock claims on many CPUs (independent
#: of the runs, so it runs beside them)
SMP = "smp-claims"


def _study_job(job: Any) -> Any:
    from rmaplab.cli.pool import report
    from rmaplab.report.study import run_job, smp_verdicts
    m = smp_verdicts() if job == SMP else run_job(job)[1]
    report(job, 1)
    return m


def _cost(job: Any) -> int:
    """A rough order for the pool: the longest runs first, so that no long
    run starts last."""
    if job == SMP:
        return 1 << 20
    return ({"none": 40, "anon_vma": 8}.get(job.scheme, 4)
            * {"swapout": 5, "fanout": 4, "lowmem": 2}.get(job.case, 1)
            * max([v for _, v in job.params] + [1]) // 8)


#: the thread importing matplotlib (see _import_plots)
_IMPORTER: Any = None


def _import_plots() -> None:
    """Import matplotlib (a third of a second) in a thread while the runs go
    on in the workers."""
    global _IMPORTER
    import importlib
    import threading
    _IMPORTER = threading.Thread(target=importlib.import_module, args=("rmaplab.report.html",),
                                 daemon=True)
    _IMPORTER.start()


def _study(args: argparse.Namespace, schemes: list[str], console: Console) -> int:
    from rmaplab.cli.pool import run_jobs
    from rmaplab.report.study import canonical, headline_jobs, sweep_jobs
    jobs = sorted(dict.fromkeys(canonical(j) for j in headline_jobs(schemes)), key=_cost,
                  reverse=True)
    # a sweep point equal to a headline run is that run: canonical() names both alike
    sweeps = [(t, x, canonical(j)) for t, x, j in sweep_jobs(schemes)] if args.html else []
    extra = sorted({j for _, _, j in sweeps} - set(jobs), key=_cost, reverse=True)
    # the lock claims need the pte_chain and anon_vma_chain runs (verdicts())
    smp: list[Any] = [SMP] if {"pte_chain", "anon_vma_chain"} <= set(schemes) else []
    done: dict[Any, Any] = {}
    left = set(jobs + smp)
    out: dict[str, Any] = {}

    waiting = {t: {j for t2, _, j in sweeps if t2 == t} for t, _, _ in sweeps}

    def finished(job: Any, m: Any) -> None:
        done[job] = m
        left.discard(job)
        if not left and not out:
            # the study is complete: print it while the sweeps still run
            out["res"] = {(j.case, j.scheme): done[j] for j in jobs}
            out["vs"] = _print_study(args, out["res"], done.get(SMP), console)
            if args.html:
                _draw_ahead(out["vs"], {})
        if out and args.html:
            # each sweep's plot as soon as its runs are in (drawn once: the
            # page takes it from report.html.DRAWN)
            for t in [t for t, js in waiting.items() if js <= done.keys()]:
                del waiting[t]
                _draw_ahead(out["vs"], _sweep_series(sweeps, done, t))

    with progress(args.quiet) as prog:
        task = prog.add_task("study" + (" and sweeps" if sweeps else ""),
                             total=len(smp) + len(jobs) + len(extra))
        run_jobs(_study_job, smp + jobs + extra, args.jobs, done=finished,
                 what=lambda j: "the lock claims" if j == SMP
                 else f"the study's {j.case} case under {j.scheme}",
                 on_progress=lambda j, n: prog.advance(task),
                 started=_import_plots if args.html else None)
    if args.html:
        _study_html(args.html, out["res"], out["vs"], sweeps, done, console)
    return 0


def _print_study(args: argparse.Namespace, res: dict, smp: list | None,
                 console: Console) -> list:
    """The study's tables and claims (or its JSON); returns the verdicts."""
    from rmaplab.report.study import CASES, to_json, verdicts
    from rmaplab.report.table import legend, render
    vs = verdicts(res, smp)
    if args.json:
        print(to_json(res, vs), flush=True)
        return vs
    for c in CASES:
        ms = [res[(c.name, s)] for s in c.schemes if (c.name, s) in res]
        if ms:
            render(f"{c.name}: {c.title}", ms, console)
    legend(console)
    _oom_note(list(res.values()), console)
    console.print()
    console.print("[bold]Claims[/bold]")
    for v in vs:
        style = "green" if v.supported else "red" if v.supported is False else "yellow"
        console.print(f"[{style}]{escape(v.line())}[/{style}]")
    return vs


def _sweep_series(sweeps: list, done: dict, only: str | None = None
                  ) -> dict[str, tuple[str, str, dict[str, list[tuple[float, float]]]]]:
    """Each sweep (or ``only`` the one titled so): (x label, measure, points
    per scheme), as the study page plots it."""
    from rmaplab.report.study import SWEEP_X, SWEEPS
    series: dict[str, tuple[str, str, dict[str, list[tuple[float, float]]]]] = {}
    for title, _, _, _, metric in SWEEPS:
        if only is not None and title != only:
            continue
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
    return series


def _draw_ahead(vs: list, series: dict) -> None:
    """Draw the charts the study page will need: each claim's (``series``
    empty) or the sweeps in ``series``; report.html keeps them (DRAWN)."""
    from rmaplab.report.html import claim_chart, line_chart
    # called as the page calls them (report.html.study_page), so the keys match
    calls: list[tuple[Any, tuple, dict]] = []
    for v in vs:
        if not series and v.values:
            calls.append((claim_chart, (v.measure, v.values), {}))
        if v.sweep in series and series[v.sweep][2]:
            xlabel, measure, pts = series[v.sweep]
            calls.append((line_chart, (v.sweep, xlabel, measure, pts), {"logy": True}))
    _draw_split(calls)


def _draw_split(calls: list[tuple[Any, tuple, dict]]) -> None:
    """Draw ``calls`` on two cores: half in a forked copy of this process
    (matplotlib already loaded), half here; the copy sends its charts back
    through a pipe into report.html.DRAWN."""
    import pickle

    from rmaplab.report import html
    if _IMPORTER is not None:
        _IMPORTER.join()                # no fork while a thread imports
    if len(calls) < 2 or not hasattr(os, "fork"):
        for fn, a, kw in calls:
            fn(*a, **kw)
        return
    half = len(calls) // 2
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                        # the copy: draw, send, leave at once
        code = 0
        try:
            os.close(r)
            before = set(html.DRAWN)
            for fn, a, kw in calls[half:]:
                fn(*a, **kw)
            with os.fdopen(w, "wb") as f:
                pickle.dump({k: v for k, v in html.DRAWN.items() if k not in before}, f)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(w)
    for fn, a, kw in calls[:half]:
        fn(*a, **kw)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if status == 0 and data:
        html.DRAWN.update(pickle.loads(data))
    # whatever the copy did not send, the page draws itself


def _study_html(path: str, res: dict, vs: list, sweeps: list, done: dict,
                console: Console) -> None:
    from rmaplab.report.html import study_page
    from rmaplab.report.study import CASES
    cases = [(c.name, c.title, [res[(c.name, s)] for s in c.schemes if (c.name, s) in res])
             for c in CASES]
    _write(path, study_page("rmaplab: the anon_vma claims, measured", vs, cases,
                            _sweep_series(sweeps, done)), console)
