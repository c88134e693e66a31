"""``rmaplab record``: run a command and make a trace of it.

Two recorders: ``--via ptrace`` (the default) traces the command itself,
observes the pages it touches and reads the address space each execve built
(``rmaplab.trace.ptrace_record``); ``--via strace`` runs the real strace and
imports its log (``rmaplab.trace.record``, ``rmaplab.trace.strace``), with
touches made up by a policy. A made-up ``--touch`` policy or ``--keep-log``
selects strace.

After recording, the trace is replayed on the model (``--profile``, modern
by default) and the summary says how many recorded results it reproduced.

Exit status: 0 when the trace was written (whatever the command's own exit
status, which the summary and the trace header report); 2 for bad input
(no command, a command that does not exist, no strace, a bad option); 1
when nothing could be recorded (ptrace not permitted, strace recorded
nothing); 130 after Ctrl-C (the trace is still written from what was
recorded).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from typing import Any

from rmaplab.cli.import_strace import add_import_options, do_import, print_summary
from rmaplab.cli.main import UsageError
from rmaplab.trace.record import STRACE_FILTER, RecordFailed, StraceMissing, run_strace

MADE_UP = ("write-new-private", "read-all")

EPILOG = f"""\
examples:
  rmaplab record -o true.jsonl -- /bin/true
  rmaplab record -o py.jsonl -- python3 -c 'import json; print(json.dumps([1]))'
  rmaplab record -o build.jsonl --no-replay -- make -j4
  rmaplab record -o ls.jsonl --via strace --keep-log ls.log -- ls /

--via ptrace (default): the command runs traced by rmaplab itself. Each
memory system call (mmap, munmap, mprotect, mremap, brk, madvise, mlock*)
becomes an event with its result as expect; fork, vfork, clone and exec are
followed (threads share their process's pid); at each exec the address space
execve built is read from /proc/PID/maps (program, interpreter, stack, vdso,
and the program break); and between stops the pages that became present or
changed frame (pagemap) are emitted as touches: 'w' where the page is
anonymous and not the zero page (or soft-dirty, on kernels with
CONFIG_MEM_SOFT_DIRTY), 'r' otherwise. --touch none records no touches.

--via strace: the command runs under
  strace -f -q -y -o LOG -e trace={STRACE_FILTER} -- CMD ...
and the log is imported as 'rmaplab import-strace' does, with touches made
up by --touch (write-new-private by default, or read-all, none).

The summary ends with a replay of the trace on the model (--profile, modern
by default; --no-replay skips it): how many of the recorded results it
reproduces."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "record", help="run a command and make a trace of it (ptrace, or strace)",
        description="Run CMD traced and write a trace of its memory system calls, processes "
                    "and page touches.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", metavar="TRACE", required=True,
                   help="the trace to write (.gz: compressed; '-': stdout)")
    p.add_argument("--via", choices=("ptrace", "strace"), default=None,
                   help="ptrace: rmaplab traces the command and observes its touches "
                        "(default); strace: run strace and import its log")
    p.add_argument("--keep-log", metavar="LOG",
                   help="(strace) keep strace's log in LOG (default: a temporary file, removed)")
    p.add_argument("--strace", metavar="PATH", default=None,
                   help="(strace) the strace to run (default: strace on PATH)")
    p.add_argument("--no-seccomp", action="store_true",
                   help="(ptrace) stop at every system call instead of filtering with seccomp "
                        "(slower; the same trace)")
    p.add_argument("--keep-thp", action="store_true",
                   help="(ptrace) leave transparent huge pages on in the command (by default "
                        "they are disabled: the model has none)")
    p.add_argument("--profile", choices=("2.6.7", "modern"), default="modern",
                   help="the model's era for the replay check (default modern)")
    p.add_argument("--no-replay", action="store_true",
                   help="do not replay the trace to count the results the model reproduces")
    add_import_options(p, touch_choices=("observed",) + ("none",) + MADE_UP, touch_default=None)
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...",
                   help="the command to run")
    p.set_defaults(func=run)


def _via(args: argparse.Namespace) -> str:
    via = args.via
    if via is None:
        via = "strace" if (args.touch in MADE_UP or args.keep_log or args.strace) else "ptrace"
    if via == "ptrace":
        if args.touch in MADE_UP:
            raise UsageError(f"record: --touch {args.touch} is made up from strace's log: "
                             f"use --via strace (the ptrace recorder observes touches)")
        for opt, val in (("--keep-log", args.keep_log), ("--strace", args.strace)):
            if val:
                raise UsageError(f"record: {opt} is for --via strace")
        if args.touch is None:
            args.touch = "observed"
    else:
        if args.touch == "observed":
            raise UsageError("record: --touch observed needs the ptrace recorder (--via ptrace); "
                             "strace shows no memory accesses")
        if args.touch is None:
            args.touch = "write-new-private"
    return via


def run(args: argparse.Namespace) -> int:
    cmd = list(args.command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise UsageError("record: no command given (rmaplab record -o TRACE -- CMD ARGS...)")
    if _via(args) == "ptrace":
        return run_ptrace(cmd, args)
    return run_strace_path(cmd, args)


# -- ptrace ---------------------------------------------------------------------------------

def _progress(report: Any) -> None:
    print(f"\r  recording: {report.processes} processes, {report.events} events, "
          f"{report.touch_events} touches ", end="", file=sys.stderr, flush=True)


def run_ptrace(cmd: list[str], args: argparse.Namespace) -> int:
    from rmaplab.trace.ptrace_record import CommandNotFound, record
    from rmaplab.trace.ptrace_sys import PtraceUnavailable
    show = not args.quiet and sys.stderr.isatty()
    try:
        rec = record(cmd, touch=args.touch, pid_map=args.pid_map, addresses=args.addresses,
                     seccomp=not args.no_seccomp, thp=args.keep_thp,
                     progress=_progress if show else None)
    except CommandNotFound as e:
        raise UsageError(f"record: {e}") from None
    except PtraceUnavailable as e:
        print(f"rmaplab: {e}", file=sys.stderr)
        return 1
    if show:
        print("\r" + " " * 72 + "\r", end="", file=sys.stderr, flush=True)
    try:
        rec.write(args.output)
    except OSError as e:
        raise UsageError(f"{args.output}: cannot write: {e.strerror or e}") from None
    if not args.quiet:
        out = [rec.report.summary(), f"  wrote {args.output}"]
        if args.pid_map:
            out.append("  pid map (real pid -> trace pid):")
            out.extend(f"    {c}" for c in rec.items if c.__class__ is str and " -> trace pid " in c)
        if not args.no_replay:
            out.append("  " + _reproduction_text(rec.reproduction(args.profile)))
        print("\n".join(out), file=sys.stderr)
    if rec.report.interrupted:
        print("rmaplab: interrupted; the trace holds what was recorded", file=sys.stderr)
        return 130
    return 0


def _reproduction_text(rep: Any) -> str:
    lines = [rep.text()]
    for m in rep.mismatches[:5]:
        lines.append(f"    event {m['event']} (line {m['line']}) {m['op']}: got "
                     f"{m['result']!r}, recorded {m['expect']!r}")
    return "\n".join(lines)


# -- strace ---------------------------------------------------------------------------------

def run_strace_path(cmd: list[str], args: argparse.Namespace) -> int:
    if args.keep_log:
        log, temp = args.keep_log, False
        try:
            open(log, "w").close()
        except OSError as e:
            raise UsageError(f"{log}: cannot write: {e.strerror or e}") from None
    else:
        fd, log = tempfile.mkstemp(prefix="rmaplab-record-", suffix=".log")
        os.close(fd)
        temp = True
    try:
        try:
            rec = run_strace(cmd, log, args.strace)
        except StraceMissing as e:
            raise UsageError(str(e)) from None
        except RecordFailed as e:
            print(f"rmaplab: {e}", file=sys.stderr)
            return 1
        shown = shlex.join(cmd)
        status = rec.status_text()
        if rec.interrupted and "interrupted" not in status:
            status = f"interrupted: {status}"
        name = os.path.basename(log) if not temp else f"the log of {shown}"
        result = do_import([log], args, name=name, note=f"recorded: {shown} {status}")
    finally:
        if temp:
            try:
                os.unlink(log)
            except OSError:
                pass
    print_summary(result, args)
    if not args.quiet:
        print(f"  command {shown}: {status}", file=sys.stderr)
        if not args.no_replay:
            print("  " + _reproduction_text(result.reproduction(args.profile)), file=sys.stderr)
    if rec.interrupted:
        print("rmaplab: interrupted; the trace holds what was recorded", file=sys.stderr)
        return 130
    return 0
