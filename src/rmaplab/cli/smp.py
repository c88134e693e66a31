"""``rmaplab smp``: simulate a workload's processes on N CPUs under each
scheme and lock era, and report throughput, time per operation and the
wait for each lock (docs/smp.md).

Each event costs what the calibrated table says its work costs (``--costs``
overrides entries) and holds the locks the kernel of the era holds; a
variant is SCHEME or SCHEME@ERA (eras: 2.4, 2.6.6, 2.6.6-mm, 2.6.7, 2.6.9,
and for anon_vma_chain spin, mutex, rwsem, rwsem-read, rwsem-steal,
rwsem-spin; SCHEME@all for every era of a scheme).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from rich.console import Console
from rich.table import Table

from rmaplab.config import ConfigError, size_to_pages


def register(sub: Any) -> None:
    from rmaplab.cli.main import add_profile_option
    p = sub.add_parser(
        "smp", help="simulate the schemes' locks on many CPUs (throughput, lock waits)",
        description=__doc__.replace("``", "'"), formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  rmaplab smp aim7 --cpus 1,2,4,8,16\n"
               "  rmaplab smp aim7 --scheme anon_vma_chain@all --cpus 1,16 -o aim7-smp.png\n"
               "  rmaplab smp trace.jsonl --scheme anon_vma,pte_chain --mem 16M --json\n"
               "  rmaplab smp kbuild --costs my-machine.toml\n")
    p.add_argument("target", help="a workload name (rmaplab generate --list) or a trace file")
    p.add_argument("--cpus", default="1,2,4,8,16", help="CPU counts, comma separated (default 1,2,4,8,16)")
    p.add_argument("--scheme", default="all",
                   help="'all', or a comma list of SCHEME, SCHEME@ERA, SCHEME@all (default all)")
    p.add_argument("--costs", metavar="FILE", help="a JSON or TOML file of cost overrides (ns)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="workload parameter (repeatable)")
    p.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    p.add_argument("--mem", help="physical memory, e.g. 16M (default: unlimited)")
    p.add_argument("--swap", help="swap space (default: unlimited)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("-o", "--output", metavar="PNG", help="plot throughput and lock wait against CPUs")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    add_profile_option(p)
    p.set_defaults(func=run)


def _cpus(text: str) -> list[int]:
    from rmaplab.cli.main import UsageError
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or not 1 <= int(part) <= 4096:
            raise UsageError(f"--cpus: {part!r} is not a CPU count from 1 to 4096")
        if int(part) not in out:
            out.append(int(part))
    if not out:
        raise UsageError("--cpus needs at least one CPU count")
    return out


def run(args: argparse.Namespace) -> int:
    from rmaplab.cli.compare import _load
    from rmaplab.cli.main import UsageError
    from rmaplab.report.smp import SimError, load_costs, parse_variants, run_smp
    from rmaplab.rmap import registry
    from rmaplab.trace.replay import InvariantBroken, ModelFailure
    from rmaplab.trace.reader import TraceError
    cpus = _cpus(args.cpus)
    try:
        variants = parse_variants(args.scheme, registry.names())
        costs = load_costs(args.costs)
        mem, swap = size_to_pages(args.mem), size_to_pages(args.swap)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    if args.output and os.path.isdir(args.output):
        raise UsageError(f"-o {args.output}: is a directory")
    name, events = _load(args)
    console = Console(stderr=True) if args.json else Console()
    err = Console(stderr=True)
    say = None if args.quiet else (lambda m: err.print(f"[dim]{m}[/dim]", highlight=False))
    try:
        results = run_smp(events, variants, cpus, costs, mem, swap, args.profile, progress=say)
    except (TraceError, InvariantBroken, ModelFailure, SimError) as e:
        raise UsageError(str(e)) from None
    if args.json:
        print(json.dumps({"target": name, "events": len(events), "cpus": cpus,
                          "costs": costs.origin, "results": [r.as_dict() for r in results]},
                         indent=1))
    else:
        render(name, results, cpus, console)
    if args.output:
        plot(name, results, args.output)
        console.print(f"wrote {args.output}")
    return 0


def render(name: str, results: list, cpus: list[int], console: Console) -> None:
    """Three tables: throughput by CPUs; time per operation and lock wait
    per class at the largest CPU count."""
    from rmaplab.report.smp import LOCK_CLASSES
    variants = list(dict.fromkeys(r.variant for r in results))
    by = {(r.variant, r.cpus): r for r in results}
    t = Table(title=f"{name}: events per simulated ms (speedup over {cpus[0]} CPU"
                    f"{'s' if cpus[0] > 1 else ''})", title_justify="left")
    t.add_column("variant", no_wrap=True)
    for n in cpus:
        t.add_column(f"{n} CPU{'s' if n > 1 else ''}", justify="right")
    t.add_column(f"lock wait/event at {cpus[-1]}", justify="right")
    for v in variants:
        base = by[v, cpus[0]].throughput
        row = [v]
        for n in cpus:
            r = by[v, n]
            row.append(f"{r.throughput / 1000:,.1f}" + (f" ({r.throughput / base:.1f}x)" if n != cpus[0] else ""))
        top = by[v, cpus[-1]]
        row.append(f"{top.lock_wait_ns() / max(1, top.events) / 1000:,.1f} us")
        t.add_row(*row)
    console.print(t)
    top_n = cpus[-1]
    kinds = sorted({k for r in results for k in r.ops})
    t = Table(title=f"mean time per operation on {top_n} CPU{'s' if top_n > 1 else ''}, us "
                    "(of which waiting for locks)", title_justify="left")
    t.add_column("variant", no_wrap=True)
    for k in kinds:
        t.add_column(k, justify="right")
    for v in variants:
        r = by[v, top_n]
        row = [v]
        for k in kinds:
            o = r.ops.get(k)
            row.append("-" if not o else f"{o['mean_ns'] / 1000:,.1f}"
                       + (f" ({o['mean_lock_wait_ns'] / 1000:,.1f})" if o["mean_lock_wait_ns"] else ""))
        t.add_row(*row)
    console.print(t)
    classes = [c for c in LOCK_CLASSES if any(c in r.locks for r in results)]
    t = Table(title=f"lock wait on {top_n} CPU{'s' if top_n > 1 else ''}: total us "
                    "(contended / acquired; failed trylocks)", title_justify="left")
    t.add_column("variant", no_wrap=True)
    for c in classes:
        t.add_column(c, justify="right")
    for v in variants:
        r = by[v, top_n]
        row = [v]
        for c in classes:
            s = r.locks.get(c)
            if not s:
                row.append("-")
                continue
            cell = f"{s['wait_ns'] / 1000:,.1f} ({s['contended']:,}/{s['acquired']:,}"
            cell += f"; {s['trylock_failed']:,})" if s["trylock_failed"] else ")"
            row.append(cell)
        t.add_row(*row)
    console.print(t)
    console.print("[dim]simulated time, costs from the calibrated table (docs/smp.md); lock "
                  "wait/event: time tasks waited for locks (spinning or asleep) per event[/dim]")


def plot(name: str, results: list, path: str) -> None:
    """Throughput and lock wait per event against CPUs, one line per variant."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    variants = list(dict.fromkeys(r.variant for r in results))
    for v in variants:
        rs = sorted((r for r in results if r.variant == v), key=lambda r: r.cpus)
        xs = [r.cpus for r in rs]
        a.plot(xs, [r.throughput / 1000 for r in rs], marker="o", label=v)
        b.plot(xs, [r.lock_wait_ns() / max(1, r.events) / 1000 for r in rs], marker="o", label=v)
    for ax in (a, b):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("CPUs")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.grid(alpha=0.3)
    a.set_ylabel("events per simulated ms")
    a.set_title(f"{name}: throughput")
    b.set_ylabel("lock wait per event, us")
    b.set_title(f"{name}: lock wait")
    a.legend(fontsize=7)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        from rmaplab.cli.main import UsageError
        raise UsageError(f"-o {path}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
