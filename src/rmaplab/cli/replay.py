"""``rmaplab replay``: run a trace on the model.

Exit status: 0 when the trace ran to the end (differences from the trace's
``expect`` are reported, not fatal, and so is the model running out of
memory: the OOM killer's victim gets ``"SIGKILL"`` as its result, its later
events are skipped and counted); 2 for bad input (a bad trace line, a
bad option), in one line as ``FILE:LINE: reason``; 1 when the model broke
(an invariant found broken, or an unexpected failure in the core).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import traceback
from typing import Any

import orjson

from rmaplab.cli.main import UsageError, add_profile_option
from rmaplab.cli.progress import progress
from rmaplab.config import SCHEMES, Config, size_to_pages
from rmaplab.show.maps import OFFSET_STYLES, maps_text
from rmaplab.trace.reader import TraceError, read_trace
from rmaplab.trace.replay import InvariantBroken, ModelFailure, replay

EPILOG = """\
examples:
  rmaplab replay fork.jsonl
      run the trace and print a summary (events, mismatches with the
      trace's expect, processes alive, frames used, time)
  rmaplab replay fork.jsonl --results res.jsonl --dump state.jsonl
      write one result per event, and a state dump at every checkpoint
      plus one at the end
  rmaplab replay fork.jsonl.gz --check
      check after every event what it changed (its pages' rmap walks, counts,
      indexes; its VMAs), and every invariant and rmap completeness of the
      whole state every 100 events and at the end
  rmaplab replay fork.jsonl --check=full
      every invariant of the whole state after every event (slow on big traces)
  rmaplab replay fork.jsonl --maps --maps-offset modern
      print each live process's /proc/PID/maps at the end
  rmaplab replay fork.jsonl --profile modern --results res.jsonl
      replay as Linux 6.18 would (anon_vma_chain, top-down mmap, fault-around,
      6.17 mremap, ...): see the README's profile table
  rmaplab replay fork.jsonl --stats --mem 64M --swap 128M --quiet
      counters and memory use as JSON, with 64 MiB of RAM and 128 MiB of swap

When the model runs out of memory (--mem, --swap), the OOM killer takes the
process with the largest total_vm: the event it was in gets "SIGKILL", later
events of that pid (and of children it never forked) are skipped with result
"SIGKILL" and "skipped": true, and the summary counts them.

exit status: 0 the trace ran (mismatches and OOM kills included), 2 bad trace
or option, 1 the model broke (invariant or internal failure).
The trace format is described in docs/trace-format.md."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "replay", help="run a trace on the model",
        description="Replay a trace (JSON Lines, optionally .gz) on the model and "
                    "report results, differences from the trace's expect, and state.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trace", metavar="TRACE", help="the trace file ('-' for stdin)")
    p.add_argument("--results", metavar="RES.jsonl",
                   help="write one result object per event ('-' for stdout)")
    p.add_argument("--dump", metavar="OUT.jsonl",
                   help="write a state dump per checkpoint and one at the end ('-' for stdout)")
    p.add_argument("--maps", action="store_true",
                   help="print each live process's /proc/PID/maps at the end")
    p.add_argument("--maps-offset", choices=OFFSET_STYLES, default=None,
                   help="offset column of anonymous VMAs: vm_pgoff<<12 as 2.6 printed it, "
                        "or 0 as modern Linux does (default: the profile's)")
    p.add_argument("--check", nargs="?", const="incremental", default=None,
                   choices=("incremental", "full"),
                   help="check invariants and rmap completeness: after each event what it "
                        "could change, and the whole state every --check-every events and at "
                        "the end (incremental, the default); or the whole state after every "
                        "event (--check=full; slow on big traces)")
    p.add_argument("--check-every", type=int, default=100, metavar="K",
                   help="with --check: the whole state every K events (default 100)")
    p.add_argument("--stats", action="store_true",
                   help="print the counters and memory/swap use as JSON on stdout")
    p.add_argument("--scheme", metavar="NAME", default=None,
                   help=f"reverse-mapping scheme: {', '.join(SCHEMES)}, or FILE.py:CLASS (default: the "
                        "profile's: anon_vma, or anon_vma_chain for modern)")
    p.add_argument("--mem", metavar="SIZE", default=None,
                   help="physical memory, e.g. 64M (default: unlimited)")
    p.add_argument("--swap", metavar="SIZE", default=None,
                   help="swap space, e.g. 128M (default: unlimited)")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="print no summary and no progress bar (errors are still printed)")
    add_profile_option(p)
    p.set_defaults(func=run)


def _config(args: argparse.Namespace) -> Config:
    kw: dict[str, Any] = {"profile": args.profile}
    if args.scheme is not None:
        kw["scheme"] = args.scheme
    if args.mem is not None:
        kw["mem_pages"] = size_to_pages(args.mem)
    if args.swap is not None:
        kw["swap_pages"] = size_to_pages(args.swap)
    return Config(**kw)   # raises ConfigError for bad values (exit 2)


@contextlib.contextmanager
def _output(path: str | None):
    if path is None:
        yield None
    elif path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
    else:
        try:
            fh = open(path, "wb")
        except OSError as e:
            raise UsageError(f"{path}: cannot write: {e.strerror or e}") from None
        with fh:
            yield fh


def run(args: argparse.Namespace) -> int:
    if args.check_every < 1:
        raise UsageError("--check-every must be at least 1")
    config = _config(args)
    from rmaplab.kernel import Kernel
    t0 = time.perf_counter()
    try:
        trace = read_trace(args.trace)
        t_read = time.perf_counter() - t0
        kernel = Kernel(config)
        with _output(args.results) as res, _output(args.dump) as dump, \
                progress(args.quiet) as prog:
            task = prog.add_task("replaying", total=len(trace.events))
            report = replay(kernel, trace, results=res, dump=dump, check=args.check or False,
                            progress=lambda n: prog.update(task, completed=n),
                            check_every=args.check_every)
    except TraceError as e:
        print(f"rmaplab: {e}", file=sys.stderr)
        return 2
    except InvariantBroken as e:
        print(f"rmaplab: {e}", file=sys.stderr)
        return 1
    except ModelFailure as e:
        traceback.print_exception(e.__cause__, file=sys.stderr)
        print(f"rmaplab: {e}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - t0

    if args.maps:
        out = []
        for pid in kernel.pids():
            out.append(f"== pid {pid} ==\n")
            out.append(maps_text(kernel.mm(pid), args.maps_offset or config.maps_offset))
        sys.stdout.write("".join(out))
    if args.stats:
        sys.stdout.buffer.write(orjson.dumps(_stats(kernel), option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.flush()
    if not args.quiet:
        # keep stdout machine-readable when it carries JSON
        to_stdout = not (args.stats or args.results == "-" or args.dump == "-")
        _summary(trace, kernel, report, t_read, elapsed, sys.stdout if to_stdout else sys.stderr)
    return 0


def _stats(kernel: Any) -> dict:
    mem, swap = kernel.mem, kernel.ctx.swap
    return {"counters": kernel.stat.as_dict(),
            "mem": {"pages_used": int(mem.nr_used), "pages_total": mem.totalram},
            "swap": {"pages_used": int(swap.inuse_pages), "pages_total": swap.limit},
            "processes": len(kernel.pids())}


def _summary(trace: Any, kernel: Any, report: Any, t_read: float, elapsed: float,
             out: Any) -> None:
    mem = kernel.mem
    total = "unlimited" if mem.totalram is None else str(mem.totalram)
    lines = [f"{trace.filename}: {report.events} events, {report.mismatches} "
             f"mismatch{'es' if report.mismatches != 1 else ''} with expect",
             f"processes alive: {len(kernel.pids())}; frames used: {mem.nr_used} "
             f"(of {total}); swap used: {kernel.ctx.swap.inuse_pages}",
             f"time: {elapsed:.3f}s ({t_read:.3f}s reading, {report.elapsed:.3f}s replaying)"]
    killed = list(getattr(kernel, "oom_killed", ()))
    if killed:
        pids = ", ".join(map(str, killed[:10])) + (", ..." if len(killed) > 10 else "")
        lines.insert(2, f"OOM killer: {len(killed)} process{'es' if len(killed) != 1 else ''} "
                        f"killed (pid {pids}); {report.skipped} later event"
                        f"{'s' if report.skipped != 1 else ''} of theirs skipped")
    for m in report.first_mismatches[:5]:
        lines.append(f"  {trace.filename}:{m['line']}: event {m['event']} {m['op']}: "
                     f"got {_j(m['result'])}, expected {_j(m['expect'])}")
    if report.mismatches > 5:
        lines.append(f"  ... and {report.mismatches - 5} more (see --results)")
    out.write("\n".join(lines) + "\n")


def _j(v: Any) -> str:
    return orjson.dumps(v).decode()
