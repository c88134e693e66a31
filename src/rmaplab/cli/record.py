"""``rmaplab record``: run a command under strace and import its log.

Exit status: 0 when the trace was written (whatever the command's own exit
status, which the summary and the trace header report); 2 for bad input
(no command, no strace, a bad option); 1 when strace recorded nothing;
130 after Ctrl-C (the trace is still written from what was recorded).
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

EPILOG = f"""\
examples:
  rmaplab record -o true.jsonl -- /bin/true
  rmaplab record -o build.jsonl --keep-log build.log -- make -j4
  rmaplab record -o py.jsonl --touch read-all -- python3 -c 'print(1)'

The command runs under
  strace -f -q -y -o LOG -e trace={STRACE_FILTER} -- CMD ...
and the log is imported as 'rmaplab import-strace' does (see its --help for
the touch policies and address modes)."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "record", help="run a command under strace and make a trace of it",
        description="Run CMD under the real strace and import the log as a trace.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", metavar="TRACE", required=True,
                   help="the trace to write (.gz: compressed; '-': stdout)")
    p.add_argument("--keep-log", metavar="LOG",
                   help="keep strace's log in LOG (default: a temporary file, removed)")
    p.add_argument("--strace", metavar="PATH", default=None,
                   help="the strace to run (default: strace on PATH)")
    add_import_options(p)
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...",
                   help="the command to run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cmd = list(args.command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise UsageError("record: no command given (rmaplab record -o TRACE -- CMD ARGS...)")
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
    if rec.interrupted:
        print("rmaplab: interrupted; the trace holds what was recorded", file=sys.stderr)
        return 130
    return 0
