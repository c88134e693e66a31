"""``rmaplab import-strace``: turn strace logs into a trace.

Exit status: 0 when the trace was written (unusable lines are counted and
reported, never fatal); 2 for bad input (a missing log, an unwritable
output, a bad option).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rmaplab.cli.main import UsageError
from rmaplab.config import size_to_pages
from rmaplab.trace.strace import (ADDRESS_MODES, DEFAULT_TOUCH_LIMIT, TOUCH_POLICIES,
                                  ImportResult, import_strace)

EPILOG = """\
examples:
  strace -f -o ls.log ls / && rmaplab import-strace ls.log -o ls.jsonl
      a log of several processes (each line starts with a pid)
  strace -ff -tt -o run ./prog && rmaplab import-strace run -o run.jsonl
      per-pid files run.PID, given by their prefix (or list them), merged
      by their timestamps
  rmaplab import-strace ls.log -o ls.jsonl --touch read-all --pid-map
      read every new page instead of writing new private ones; number the
      processes 1, 2, 3, ...

touch policies (strace shows no memory accesses, so touches are made up):
  none               no touch events
  write-new-private  write each new page of a private writable mapping, mmap,
                     mremap growth or brk growth, once (token "p<pid>:<addr>");
                     read the pages of other readable file mappings (default)
  read-all           read each new page of every readable mapping
File pages past the end of the file are never touched; one touch covers at
most --touch-limit bytes.

addresses:
  hint       an mmap the system placed (and an mremap that moved) is written
             with the address it got, so the model lays memory out as the
             machine did (default)
  as-called  written as called: the model (Linux 2.6.7) chooses addresses

processes: the root's first execve is a spawn; fork/clone/clone3 of a process
with its own mm a fork; a CLONE_VM thread keeps its process's pid (no fork);
a vfork (CLONE_VM|CLONE_VFORK) child is its parent until its execve, which
becomes a fork immediately followed by an exec; exit_group, the last exit,
"+++ exited" and "+++ killed by" end a process once.

Unusable lines (calls the trace format cannot express, lines cut off) are
counted by reason in the summary and in the trace header; the import goes on.
The details are in the docstring of rmaplab.trace.strace."""


def add_import_options(p: argparse.ArgumentParser, touch_choices: tuple = TOUCH_POLICIES,
                       touch_default: str | None = "write-new-private") -> None:
    """Options shared with ``rmaplab record`` (which adds ``observed`` to the
    touch policies and chooses the default by recorder)."""
    if touch_default is None:
        what = ("observed (the ptrace recorder's default: the pages the command touched), "
                "or made up from strace's log: write-new-private (the default with --via "
                "strace), read-all, none")
    else:
        what = f"how to make up page accesses: {', '.join(touch_choices)} (default {touch_default})"
    p.add_argument("--touch", choices=touch_choices, default=touch_default, metavar="POLICY",
                   help=what)
    p.add_argument("--touch-limit", metavar="SIZE", default=None,
                   help=f"largest single touch, e.g. 16M (default {DEFAULT_TOUCH_LIMIT >> 20}M)")
    p.add_argument("--pid-map", action="store_true",
                   help="number the trace's processes 1, 2, 3, ... in order of creation "
                        "instead of keeping the real pids, and print the map (the trace "
                        "always lists it in '#' comments)")
    p.add_argument("--addresses", choices=ADDRESS_MODES, default="hint",
                   help="hint (default): system-placed mmaps carry the address they got; "
                        "as-called: as called")
    p.add_argument("--quiet", "-q", action="store_true", help="print no summary")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "import-strace", help="turn strace -f / -ff logs into a trace",
        description="Import the output of 'strace -f -o LOG' or 'strace -ff -o PREFIX' "
                    "(with or without -t/-tt/-ttt/-T/-y) as a trace: processes, memory "
                    "system calls with their results as expect, mapped files, and "
                    "made-up page touches.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("logs", metavar="LOG", nargs="+",
                   help="a log file, several, or the PREFIX of strace -ff files (PREFIX.PID)")
    p.add_argument("-o", "--output", metavar="TRACE", required=True,
                   help="the trace to write (.gz: compressed; '-': stdout)")
    add_import_options(p)
    p.set_defaults(func=run)


def touch_limit(args: argparse.Namespace) -> int:
    if args.touch_limit is None:
        return DEFAULT_TOUCH_LIMIT
    pages = size_to_pages(args.touch_limit)    # ConfigError (exit 2) if bad
    if pages is None:                           # "unlimited"
        return 1 << 64
    if pages <= 0:
        raise UsageError(f"--touch-limit {args.touch_limit!r} must be at least one page")
    return pages * 4096


def do_import(logs: list[str], args: argparse.Namespace, name: str | None = None,
              note: str | None = None) -> ImportResult:
    """Import ``logs`` with the options of ``args`` and write args.output."""
    try:
        result = import_strace(logs, touch=args.touch, pid_map=args.pid_map,
                               addresses=args.addresses, touch_limit=touch_limit(args),
                               name=name)
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"{e.filename}: cannot read: {e.strerror or e}") from None
    if note:
        result.header["source"] += f"; {note}"
    try:
        result.write(args.output)
    except OSError as e:
        raise UsageError(f"{args.output}: cannot write: {e.strerror or e}") from None
    return result


def print_summary(result: ImportResult, args: argparse.Namespace) -> None:
    if args.quiet:
        return
    out = [result.report.summary(), f"  wrote {args.output}"]
    if args.pid_map:
        out.append("  pid map (strace pid -> trace pid):")
        out.extend(f"    {c}" for c in result.comments)
    print("\n".join(out), file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    result = do_import(args.logs, args)
    print_summary(result, args)
    return 0
