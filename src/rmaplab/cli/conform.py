"""``rmaplab conform``: run a trace on the live kernel and in the model, op by
op, and report where they first differ in each category (result, layout,
present pages, frame sharing, map counts, data), with both sides drawn one
character per page.

The kernel side is a worker process per trace process (real fork, real
mmap/mprotect/mremap/madvise/brk, real loads and stores), observed through
/proc/PID/maps, smaps, pagemap, kpagecount and kpageflags after every event
(``rmaplab.trace.live``). The model starts each process with the worker's
own mappings (its image, stack and vDSO) as special mappings and its
program break, so that addresses the kernel picks are the model's too.

A run can be saved (``--save-run``) and compared again later without a
kernel (``--from-run``): that is how tests/conformance/ checks the model in
CI.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from rmaplab.cli.main import UsageError, add_profile_option

EPILOG = """\
examples:
  rmaplab conform tests/conformance/04-fork-child-merges.jsonl
      run the trace on this machine's kernel and in the model (modern
      profile), and print where they first differ in each category
  rmaplab conform trace.jsonl --profile 2.6.7 --scheme anon_vma
      the same against the 2.6.7 model: expect differences
  rmaplab conform trace.jsonl --kernel-results kr.jsonl --kernel-dump kd.jsonl
      also write what the kernel did, in the --results and --dump formats
  rmaplab conform tests/conformance/*.jsonl --json
      several traces; one JSON object per trace on stdout
  rmaplab conform t.jsonl --save-run t.kernel.jsonl
  rmaplab conform t.jsonl --from-run t.kernel.jsonl
      save the kernel's observations, then compare the model with them
      again without running anything on the kernel
  rmaplab conform tests/conformance/*.jsonl --from-run tests/conformance/recorded/
      with a directory: each trace's run is NAME.kernel.jsonl there
  rmaplab conform --random 500 --keep diverged/
      500 random programs (seeds 1-500) on the kernel and in the model; the
      ones that differ go to diverged/, cut after their first difference

exit status: 0 every trace agrees, 1 some category differs, 2 bad trace or
option, 3 the live kernel cannot be used here (the reason is printed).
Needs Linux x86_64, a C compiler (cc) for the worker, and root for frame
numbers and map counts; without root it compares what it can."""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "conform", help="compare the model with the live kernel, op by op",
        description=__doc__.replace("``", "'"), epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("traces", nargs="*", metavar="TRACE", help="trace file(s)")
    p.add_argument("--random", type=int, metavar="N", default=0,
                   help="also run N random traces (rmaplab.workloads.random_trace)")
    p.add_argument("--seed", type=int, default=1, help="first seed of --random (default 1)")
    p.add_argument("--keep", metavar="DIR",
                   help="with --random: write each trace that differs to DIR, cut after the "
                        "event where it first differs")
    add_profile_option(p, default="modern")
    p.add_argument("--scheme", default=None,
                   help="reverse-mapping scheme (default: the profile's)")
    p.add_argument("--kernel-results", metavar="FILE",
                   help="write the kernel's result per event (one trace only)")
    p.add_argument("--kernel-dump", metavar="FILE",
                   help="write the kernel's state at each checkpoint and at the end (one trace only)")
    p.add_argument("--save-run", metavar="FILE|DIR",
                   help="save every kernel observation, to compare again with --from-run "
                        "(a directory: NAME.kernel.jsonl per trace)")
    p.add_argument("--from-run", metavar="FILE|DIR",
                   help="compare with a saved run instead of the live kernel")
    p.add_argument("--swap", choices=("auto", "off"), default="auto",
                   help="auto (default): a trace with reclaim or pageout gets a temporary "
                        "swap file when the machine has none; off: never")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per trace instead of the report")
    p.add_argument("--quiet", "-q", action="store_true", help="print only divergences")
    p.set_defaults(func=run)


# -- the comparison ------------------------------------------------------------------

@dataclass
class ConformReport:
    trace: str
    events: int = 0
    profile: str = ""
    scheme: str = ""
    first: dict[str, Any] = field(default_factory=dict)       # category -> Divergence
    counts: dict[str, int] = field(default_factory=dict)      # category -> events differing
    differing: int = 0                                        # events with any difference
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def agree(self) -> bool:
        return not self.first

    def as_dict(self) -> dict:
        from rmaplab.check.conform import CATEGORIES
        return {"trace": self.trace, "events": self.events, "profile": self.profile,
                "scheme": self.scheme, "agree": self.agree,
                "categories": {c: (self.first[c].as_dict() if c in self.first else None)
                               for c in CATEGORIES},
                "events_differing": {c: self.counts.get(c, 0) for c in CATEGORIES},
                "events_agreeing": self.events - self.differing,
                "notes": self.notes, "seconds": round(self.seconds, 3)}


class SavedRun:
    """A kernel run read back from ``--save-run``: the same answers the
    live session gave, event by event."""

    def __init__(self, path: str) -> None:
        try:
            with open(path, "rb") as f:
                lines = [orjson.loads(x) for x in f if x.strip()]
        except (OSError, orjson.JSONDecodeError) as e:
            raise UsageError(f"{path}: cannot read a saved run: {e}") from None
        if not lines or "saved_run" not in lines[0]:
            raise UsageError(f"{path}: not a saved run (no header line)")
        head = lines[0]
        self.notes: list[str] = head.get("notes", [])
        self.kernel_release = head.get("kernel", "?")
        self._foreign = {int(k): v for k, v in head.get("foreign", {}).items()}
        self._brk = {int(k): v for k, v in head.get("start_brk", {}).items()}
        self._steps: Iterator[dict] = iter(lines[1:])
        self._state: dict | None = None

    def foreign(self, pid: int) -> list[dict]:
        return self._foreign.get(pid, [])

    def start_brk(self, pid: int) -> int:
        return self._brk[pid]

    def step(self, ev: Any) -> dict:
        rec = next(self._steps, None)
        if rec is None or rec["result"]["event"] != ev.index or rec["result"]["op"] != ev.op:
            raise UsageError(f"the saved run does not match the trace at event {ev.index} "
                             f"({ev.op}, line {ev.line})")
        self._state = rec["state"]
        return rec["result"]

    def observe(self, name: str | None, event: int) -> dict:
        assert self._state is not None
        return dict(self._state, name=name, event=event)

    def __enter__(self) -> SavedRun:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def _model_step(kernel: Any, ev: Any, side: Any, filename: str) -> dict:
    """Apply ``ev`` to the model; spawn and exec start from the kernel
    side's worker layout. Returns the result object."""
    from rmaplab.trace.replay import run_event
    if ev.op in ("spawn", "exec"):
        special = [(m["start"], m["end"], m["perms"]) for m in side.foreign(ev.pid)]
        getattr(kernel, ev.op)(ev.pid, start_brk=side.start_brk(ev.pid), special=special)
        res, read = None, None
    else:
        res, read = run_event(kernel, ev, filename)
    obj = {"event": ev.index, "line": ev.line, "op": ev.op}
    if ev.pid is not None:
        obj["pid"] = ev.pid
    obj["result"] = res
    if read is not None:
        obj["read"] = read
    return obj


def conform_trace(trace: Any, config: Any, side: Any,
                  on_event: Callable[[int, dict, dict], None] | None = None,
                  progress: Callable[[int], None] | None = None) -> ConformReport:
    """Run ``trace`` on ``side`` (a LiveSession or a SavedRun) and on a
    model built from ``config``, comparing after every event."""
    from rmaplab.check.conform import Divergence, compare_results, compare_states, picture
    from rmaplab.kernel import Kernel
    from rmaplab.trace.dump import state_dump
    t0 = time.perf_counter()
    kernel = Kernel(config)
    rep = ConformReport(trace.filename, profile=config.profile, scheme=config.scheme)
    notes = side.notes
    have_frames = not any("frame" in n for n in notes)
    have_mapcount = not any("map count" in n for n in notes)

    seen: set[int] = set()

    def first(cat: str, ev: Any, what: str, pid: Any, kernel_v: Any = None, model_v: Any = None,
              pic: list[str] | None = None) -> None:
        rep.counts[cat] = rep.counts.get(cat, 0) + 1
        seen.add(ev.index)
        if cat not in rep.first:
            rep.first[cat] = Divergence(cat, ev.index, ev.line, ev.op, pid, what, kernel_v, model_v,
                                        pic or [])

    for ev in trace.events:
        kres = side.step(ev)
        mres = _model_step(kernel, ev, side, trace.filename)
        res_diff, data_diff = compare_results(kres, mres)
        kstate = side.observe(None, ev.index + 1)
        mstate = state_dump(kernel, None, ev.index + 1, with_vmflags=True)
        if res_diff:
            first("result", ev, res_diff, ev.pid, kres.get("result"), mres.get("result"))
        if data_diff:
            first("data", ev, data_diff, ev.pid, kres.get("read"), mres.get("read"))
        for cat, (what, pid, addr) in compare_states(kstate, mstate, have_frames,
                                                     have_mapcount).items():
            if cat == "data" and data_diff:
                continue
            first(cat, ev, what, pid, pic=picture(kstate, mstate, pid, addr) if cat not in rep.first
                  else None)
        if on_event is not None:
            on_event(ev.index, kres, kstate)
        rep.events += 1
        if progress is not None:
            progress(rep.events)
    rep.differing = len(seen)
    rep.notes = list(notes)
    rep.seconds = time.perf_counter() - t0
    return rep


# -- the command -------------------------------------------------------------------------

def _strip(state: dict, name: str | None) -> dict:
    """A kernel observation in the dump format (no vmflags)."""
    return {"name": name, "event": state["event"],
            "processes": [{"pid": p["pid"],
                           "maps": [{k: v for k, v in m.items() if k != "vmflags"}
                                    for m in p["maps"]],
                           "pages": p["pages"]} for p in state["processes"]]}


def run(args: argparse.Namespace) -> int:
    from rmaplab.config import Config
    if len(args.traces) > 1 and (args.kernel_results or args.kernel_dump):
        raise UsageError("--kernel-results and --kernel-dump take one trace")
    for opt in ("save_run", "from_run"):
        path = getattr(args, opt)
        if path and len(args.traces) > 1 and not os.path.isdir(path):
            raise UsageError(f"--{opt.replace('_', '-')} with several traces must name a directory")
    kw: dict[str, Any] = {"profile": args.profile}
    if args.scheme is not None:
        kw["scheme"] = args.scheme
    Config(**kw)                      # a bad scheme is a usage error before anything runs
    if not args.traces and not args.random:
        raise UsageError("name a trace, or --random N")
    worst = 0
    if args.random:
        worst = _random(args, kw)
    from rmaplab.cli.progress import progress
    with progress(len(args.traces) < 2) as prog:
        task = prog.add_task("traces", total=len(args.traces))
        return _traces(args, kw, worst, prog, task)


def _traces(args: argparse.Namespace, kw: dict, worst: int, prog: Any, task: Any) -> int:
    from rmaplab.config import Config
    from rmaplab.trace.reader import TraceError, read_trace
    for path in args.traces:
        prog.advance(task)
        try:
            trace = read_trace(path)
        except TraceError as e:
            print(f"rmaplab: {e}", file=sys.stderr)
            return 2
        try:
            rep = _run_one(trace, Config(**kw), args, _run_path(args.save_run, path),
                           _run_path(args.from_run, path))
        except _Unavailable as e:
            print(f"rmaplab: the live kernel cannot be used here: {e}", file=sys.stderr)
            return 3
        except _BadTrace as e:
            print(f"rmaplab: {e}", file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps(rep.as_dict()))
        else:
            _print(rep, args.quiet)
        worst = max(worst, 0 if rep.agree else 1)
    return worst


def _random(args: argparse.Namespace, kw: dict) -> int:
    """``--random N``: random traces on the kernel and in the model."""
    from rmaplab.cli.progress import progress
    with progress() as prog:
        task = prog.add_task("random programs", total=args.random)
        return _random_loop(args, kw, prog, task)


def _random_loop(args: argparse.Namespace, kw: dict, prog: Any, task: Any) -> int:
    from rmaplab.config import Config
    from rmaplab.trace.live import LiveError, LiveSession, LiveUnavailable
    from rmaplab.trace.reader import parse_trace
    from rmaplab.workloads.random_trace import random_trace
    agree = events = agreeing = refused = 0
    cats: dict[str, int] = {}
    for seed in range(args.seed, args.seed + args.random):
        prog.advance(task)
        lines = [json.dumps(e) for e in random_trace(seed)]
        trace = parse_trace(lines, filename=f"random-{seed}.jsonl")
        try:
            with LiveSession(trace.filename, swap=args.swap) as side:
                rep = conform_trace(trace, Config(**kw), side)
        except LiveUnavailable as e:
            print(f"rmaplab: the live kernel cannot be used here: {e}", file=sys.stderr)
            return 3
        except LiveError:
            refused += 1            # it reached the worker's own mappings
            continue
        events += rep.events
        agreeing += rep.events - rep.differing
        agree += rep.agree
        for c in rep.first:
            cats[c] = cats.get(c, 0) + 1
        if not rep.agree:
            first = min(d.event for d in rep.first.values())
            if args.keep:
                os.makedirs(args.keep, exist_ok=True)
                with open(os.path.join(args.keep, trace.filename), "w") as f:
                    f.write("\n".join(lines[:first + 1]) + "\n")
            if not args.json:
                _print(rep, quiet=True)
    done = args.random - refused
    summary = {"random": args.random, "ran": done, "agree": agree, "events": events,
               "events_agreeing": agreeing, "first_differences": cats, "refused": refused}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"random traces: {agree} of {done} agree ({refused} refused: they touched the "
              f"worker's own mappings); {agreeing} of {events} events agree in every category; "
              f"first differences by category: {cats or 'none'}")
    return 0 if agree == done else 1


class _Unavailable(Exception):
    pass


class _BadTrace(Exception):
    pass


def _run_path(opt: str | None, trace: str) -> str | None:
    """A saved run's file: the option itself, or NAME.kernel.jsonl in the
    directory it names."""
    if opt is None or not os.path.isdir(opt):
        return opt
    name = os.path.basename(trace)
    for ext in (".gz", ".jsonl", ".json"):
        name = name[:-len(ext)] if name.endswith(ext) else name
    return os.path.join(opt, f"{name}.kernel.jsonl")


def _run_one(trace: Any, config: Any, args: argparse.Namespace, save_run: str | None,
             from_run: str | None) -> ConformReport:
    from rmaplab.trace.live import LiveError, LiveSession, LiveUnavailable
    from rmaplab.trace.reader import TraceError
    from rmaplab.trace.replay import InvariantBroken, ModelFailure, _sink
    files = []
    try:
        res_f = open(args.kernel_results, "wb") if args.kernel_results else None
        dump_f = open(args.kernel_dump, "wb") if args.kernel_dump else None
        save_f = open(save_run, "wb") if save_run else None
    except OSError as e:
        raise UsageError(f"cannot write: {e}") from None
    files = [f for f in (res_f, dump_f, save_f) if f is not None]
    put_res, put_dump = _sink(res_f), _sink(dump_f)
    names = {ev.index: ev.args[0] for ev in trace.events if ev.op == "checkpoint"}
    last: list[dict] = []
    try:
        side: Any = (SavedRun(from_run) if from_run
                     else LiveSession(trace.filename, swap=args.swap))
        with side:
            if save_f is not None:
                head = {"saved_run": 1, "kernel": _release(), "trace": trace.filename,
                        "notes": side.notes,
                        "foreign": {}, "start_brk": {}}
                pending: list[bytes] = []

            def on_event(i: int, kres: dict, kstate: dict) -> None:
                if put_res is not None:
                    put_res(kres)
                if put_dump is not None and i in names:
                    put_dump(_strip(kstate, names[i]) | {"event": i})
                if save_f is not None:
                    ev = trace.events[i]
                    if ev.op in ("spawn", "exec"):
                        head["foreign"][str(ev.pid)] = side.foreign(ev.pid)
                        head["start_brk"][str(ev.pid)] = side.start_brk(ev.pid)
                    pending.append(orjson.dumps({"result": kres, "state": kstate}))
                last[:] = [kstate]

            rep = conform_trace(trace, config, side, on_event=on_event)
            if put_dump is not None:
                final = last[0] if last else {"event": 0, "processes": []}
                put_dump(_strip(final, None) | {"event": len(trace.events)})
            if save_f is not None:
                head["notes"] = side.notes
                save_f.write(orjson.dumps(head) + b"\n")
                for line in pending:
                    save_f.write(line + b"\n")
    except LiveUnavailable as e:
        raise _Unavailable(str(e)) from None
    except (LiveError, TraceError) as e:
        raise _BadTrace(str(e)) from None
    except (InvariantBroken, ModelFailure) as e:
        raise _BadTrace(f"the model broke: {e}") from None
    finally:
        for f in files:
            f.close()
    return rep


def _release() -> str:
    import platform
    return platform.release()


_TITLES = {"result": "results", "layout": "layout", "present": "present pages",
           "sharing": "frame sharing", "mapcount": "map counts", "data": "data"}


def _print(rep: ConformReport, quiet: bool) -> None:
    from rmaplab.check.conform import CATEGORIES
    out = sys.stdout
    verdict = "agree" if rep.agree else "differ"
    out.write(f"{rep.trace}: {rep.events} events, profile {rep.profile} "
              f"(scheme {rep.scheme}): kernel and model {verdict}"
              f"{'' if rep.agree else f' ({rep.events - rep.differing} events agree in every category)'}\n")
    for n in rep.notes:
        out.write(f"  note: {n}\n")
    for cat in CATEGORIES:
        d = rep.first.get(cat)
        if d is None:
            if not quiet:
                out.write(f"  {_TITLES[cat]:<14} agree\n")
            continue
        out.write(f"  {_TITLES[cat]:<14} differ after {rep.trace}:{d.line} (event {d.event}, "
                  f"{d.op}{'' if d.pid is None else f' pid {d.pid}'}); "
                  f"{rep.counts.get(cat, 0)} event(s) differ\n")
        out.write(f"  {'':<14} {d.what}\n")
        for line in d.picture:
            out.write(f"  {'':<14} {line}\n")
