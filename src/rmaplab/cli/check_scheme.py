"""``rmaplab check-scheme``: run the scheme test kit (rmaplab.check.kit) on
any scheme: random programs with every invariant, rmap completeness against
a brute-force scan and a data oracle after every step, on small memory with
swap. A failure is shrunk and written as a trace that replays it."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from rmaplab.cli.main import UsageError, add_profile_option

EPILOG = """\
examples:
  rmaplab check-scheme anon_vma
  rmaplab check-scheme my_scheme.py:MyScheme --examples 500
  rmaplab check-scheme my_scheme.py:MyScheme --profile 2.6.7 --out failing.jsonl
      on a failure, the shrunk program is written to failing.jsonl; replay it
      with the command the message prints (rmaplab replay ... --check)

exit status: 0 the scheme passed, 1 it failed (the program is written), 2 bad
input (an unknown scheme, a file that does not load)."""


def register(sub: Any) -> None:
    p = sub.add_parser("check-scheme", help="random programs against a scheme, every check on",
                       description=__doc__, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scheme", metavar="SCHEME", help="a scheme name, FILE.py:CLASS or MODULE:CLASS")
    p.add_argument("--examples", type=int, default=100,
                   help="random programs to run (default 100)")
    p.add_argument("--steps", type=int, default=40, help="steps per program (default 40)")
    p.add_argument("--out", metavar="TRACE", default="check-scheme-failure.jsonl",
                   help="where a failing program goes (default check-scheme-failure.jsonl)")
    p.add_argument("--derandomize", action="store_true",
                   help="the same programs on every run")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    add_profile_option(p, default="modern")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rmaplab.check.kit import KitFailure, check_scheme
    from rmaplab.config import Config
    if args.examples < 1 or args.steps < 1:
        raise UsageError("--examples and --steps must be at least 1")
    Config(profile=args.profile, scheme=args.scheme)      # ConfigError (exit 2) if it cannot load
    from rmaplab.cli.progress import progress
    t0 = time.perf_counter()
    try:
        with progress(args.json) as prog:
            task = prog.add_task("random programs", total=args.examples)
            rep = check_scheme(args.scheme, args.examples, args.steps, args.profile,
                               args.derandomize,
                               progress=lambda n: prog.update(task, completed=min(n, args.examples)))
    except KitFailure as e:
        with open(args.out, "w") as f:
            f.write(e.trace)
        out = {"scheme": args.scheme, "passed": False, "error": str(e.error).splitlines()[0],
               "trace": args.out, "events": len(e.events), "replay": e.replay_hint}
        if args.json:
            print(json.dumps(out))
        else:
            print(f"{args.scheme}: FAILED: {type(e.error).__name__}: {out['error']}", file=sys.stderr)
            print(f"the shrunk program ({len(e.events)} events) is in {args.out}; "
                  f"{e.replay_hint}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"scheme": args.scheme, "passed": True, "examples": rep.examples,
                          "outcomes": rep.outcomes, "seconds": round(seconds, 2)}))
    else:
        print(f"{args.scheme}: passed {rep.examples} random programs of up to {args.steps} steps "
              f"(profile {args.profile}) in {seconds:.1f}s")
    return 0
