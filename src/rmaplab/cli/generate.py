"""``rmaplab generate``: write the trace of a built-in workload.

Exit status: 0 written; 2 bad input (unknown workload or parameter, a bad
value, an output file that cannot be written), in one line.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from typing import Any

from rmaplab.cli.main import UsageError
from rmaplab.workloads.generators import WORKLOADS, trace_lines

EPILOG = """\
examples:
  rmaplab generate --list
      the workloads, their parameters and defaults
  rmaplab generate aim7 -o aim7.jsonl
      100 children COW-ing 51 pages each, then a reclaim of half their pages
      (the defaults: M and reclaim are sized to N, see --list)
  rmaplab generate aim7 -p N=1000 -p M=1000 -p reclaim=100000 -o big.jsonl.gz
      the 1000x1000 case of the 2010 anon_vma_chain posting, with a reclaim
      pass after the COW phase (.gz: written compressed)
  rmaplab generate kbuild -p jobs=16 -p compiles=500 --seed 7 -o kb.jsonl
  rmaplab generate shared_server -p size=256M -p workers=8 -o srv.jsonl
      sizes in pages, or with a unit (K, M, G)
  rmaplab generate realloc -p fork=false -o - | rmaplab replay -
  rmaplab generate fork_chain -o fc.jsonl && rmaplab replay fc.jsonl --scheme anonmm --stats

The same workload, parameters and seed always give the same trace. Every
mapping is MAP_FIXED at an address the generator chose, so the trace's
expect values (addresses, 0, "ok") hold on any scheme given enough memory
or swap; replay with --mem small enough to call the OOM killer reports
the differences.
exit status: 0 written, 2 bad workload, parameter, value or output file."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "generate", help="write the trace of a built-in workload (aim7, kbuild, ...)",
        description="Write the trace (docs/trace-format.md) of a built-in workload: "
                    + ", ".join(WORKLOADS) + ".",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workload", metavar="WORKLOAD", nargs="?",
                   help="the workload (see --list)")
    p.add_argument("-p", "--param", metavar="KEY=VALUE", action="append", default=[],
                   help="set a parameter (repeatable)")
    p.add_argument("--seed", metavar="N", default="0",
                   help="seed of the workload's random choices (default 0)")
    p.add_argument("-o", "--output", metavar="TRACE",
                   help="the trace file to write ('-' for stdout; a name ending in .gz "
                        "is written compressed)")
    p.add_argument("--list", action="store_true",
                   help="list the workloads with their parameters and defaults")
    p.set_defaults(func=run)


def list_text() -> str:
    out = []
    for w in WORKLOADS.values():
        out.append(f"{w.name}: {w.description}")
        width = max(len(f"{p.name}={_show(p.default)}") for p in w.params)
        for p in w.params:
            out.append(f"    {f'{p.name}={_show(p.default)}':<{width}}  {p.doc}")
        out.append("")
    out.append("Set parameters with -p KEY=VALUE; every workload also takes --seed N.")
    return "\n".join(out) + "\n"


def _show(v: Any) -> str:
    if v is None:
        return "auto"               # the generator works it out from the others
    return str(v).lower() if isinstance(v, bool) else str(v)


def run(args: argparse.Namespace) -> int:
    if args.list:
        sys.stdout.write(list_text())
        return 0
    if args.workload is None:
        raise UsageError("generate: name a workload (rmaplab generate --list shows them)")
    w = WORKLOADS.get(args.workload)
    if w is None:
        raise UsageError(f"generate: unknown workload {args.workload!r}; known: "
                         f"{', '.join(WORKLOADS)}")
    if args.output is None:
        raise UsageError("generate: give the trace file with -o TRACE ('-' for stdout)")
    try:
        seed = int(args.seed, 0)
    except ValueError:
        raise UsageError(f"generate: --seed must be an integer, not {args.seed!r}") from None
    try:
        params = w.parse_params(args.param)
        events = w.generate(seed=seed, **params)
    except ValueError as e:
        raise UsageError(f"generate: {e}") from None
    shown = " ".join(f"-p {k}={_show(v)}" for k, v in {**w.defaults, **params}.items())
    source = f"rmaplab generate {w.name} {shown} --seed {seed}"
    size = _write(args.output, trace_lines(events, source))
    where = "stdout" if args.output == "-" else args.output
    print(f"{w.name}: {len(events)} events, {size} bytes to {where} (seed {seed})",
          file=sys.stderr)
    return 0


def _write(path: str, lines: Any) -> int:
    """Write the lines; returns the uncompressed size."""
    size = 0
    if path == "-":
        out = sys.stdout.buffer
        for ln in lines:
            out.write(ln)
            size += len(ln)
        out.flush()
        return size
    try:
        raw = open(path, "wb")
    except OSError as e:
        raise UsageError(f"{path}: cannot write: {e.strerror or e}") from None
    try:
        with raw:
            # no name and mtime 0 in the gzip header: the same trace gives
            # the same bytes
            fh: Any = (gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
                       if path.endswith(".gz") else raw)
            with fh:
                for ln in lines:
                    fh.write(ln)
                    size += len(ln)
    except OSError as e:
        raise UsageError(f"{path}: cannot write: {e.strerror or e}") from None
    return size
