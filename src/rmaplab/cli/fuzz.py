"""``rmaplab fuzz``: random programs against the full checks (every
invariant and rmap completeness after every event, no leaks at the end)
under every scheme and profile, plain and tiny memory; deterministic by
seed. The first failure is shrunk and written as a trace that replays it.
Local processes by default, or a Dask cluster (--scheduler)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rmaplab.cli.main import UsageError

EPILOG = """\
examples:
  rmaplab fuzz --steps 100000
  rmaplab fuzz --scheme pure_anon_vma,anon_vma --profile modern --time 60
  rmaplab fuzz --scheme my_scheme.py:MyScheme --steps 1000000 --jobs 8
  rmaplab fuzz --steps 10000000 --scheduler tcp://10.0.0.5:8786
      a Dask cluster: start one with 'dask scheduler' and 'dask worker
      tcp://HOST:8786' on each machine (pip install "dask[distributed]");
      '--scheduler local' starts a local one

exit status: 0 no failure, 1 a failure (its shrunk program is written), 2 bad
input."""


def register(sub: Any) -> None:
    from rmaplab.report.fuzz import default_jobs
    p = sub.add_parser("fuzz", help="random programs against every check, fast, by seed",
                       description=__doc__, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=100_000, help="events to run (default 100000)")
    p.add_argument("--time", type=float, default=None, metavar="SECONDS",
                   help="stop after this long (whichever comes first)")
    p.add_argument("--scheme", default="all", help="'all' or a comma list of schemes or FILE.py:CLASS")
    p.add_argument("--profile", default="all", choices=("all", "2.6.7", "modern"))
    p.add_argument("--jobs", type=int, default=default_jobs(),
                   help="worker processes (default: the cores)")
    p.add_argument("--seed", type=int, default=0, help="first program seed (default 0)")
    p.add_argument("--scheduler", metavar="ADDR", default=None,
                   help="a Dask scheduler (tcp://HOST:PORT), or 'local' for a local Dask cluster")
    p.add_argument("--out", metavar="TRACE", default="fuzz-failure.jsonl",
                   help="where a failing program goes (default fuzz-failure.jsonl)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rmaplab.cli.compare import _schemes
    from rmaplab.cli.progress import progress
    from rmaplab.report import fuzz
    if args.steps < 1 or args.jobs < 1:
        raise UsageError("--steps and --jobs must be at least 1")
    schemes = _schemes(args.scheme)
    profiles = ["2.6.7", "modern"] if args.profile == "all" else [args.profile]
    with progress(args.quiet) as prog:
        task = prog.add_task("fuzz", total=args.steps)
        rep = fuzz.run(args.steps, schemes, profiles, args.jobs, args.seed, args.time,
                       args.scheduler, progress=lambda n: prog.update(task, completed=n))
    out: dict[str, Any] = {"programs": rep.programs, "steps": rep.steps,
                           "seconds": round(rep.seconds, 2),
                           "steps_per_second": round(rep.steps_per_second),
                           "steps_by_scheme": rep.by_scheme, "failure": None}
    if rep.finding is not None:
        f = rep.finding
        with open(args.out, "w") as fh:
            fh.write(f.trace())
        out["failure"] = {"seed": f.program.seed, "scheme": f.program.scheme,
                          "profile": f.program.profile, "tiny": f.program.tiny,
                          "error": f.error, "events": len(f.events), "trace": args.out,
                          "replay": f"rmaplab replay {args.out} {f.program.replay_options()}"}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{rep.programs} programs, {rep.steps:,} steps in {rep.seconds:.1f}s "
              f"({rep.steps_per_second:,.0f} steps/s on {args.jobs} "
              f"{'Dask workers' if args.scheduler else 'processes'}); by scheme: "
              + ", ".join(f"{s} {n:,}" for s, n in sorted(rep.by_scheme.items())))
        if rep.finding is not None:
            fail = out["failure"]
            print(f"FAILED at seed {fail['seed']} ({fail['scheme']}, {fail['profile']}"
                  f"{', tiny memory' if fail['tiny'] else ''}): {fail['error']}", file=sys.stderr)
            print(f"shrunk to {fail['events']} events in {args.out}; {fail['replay']}",
                  file=sys.stderr)
    return 1 if rep.finding is not None else 0
