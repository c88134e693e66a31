"""The fuzzer: random programs against the full checks, fast and by seed.

Each program is a random trace (``workloads.random_trace``: every system
call of the trace format, forks, execs, exits, touches, on a window of
pages meeting VMA edges and holes) run on a model under one scheme, one
profile, plain or tiny memory with swap (the ``reclaim`` event and memory
pressure). After every event: ``validate`` (every invariant, the scheme's
``check``) and ``check_rmap_complete`` (each walk finds exactly what a
brute-force scan of all page tables finds); at the end every process
exits and ``check_no_leaks``. Program ``seed`` always runs the same
scheme, profile and memory, so a failure is a seed.

The first failure stops the run; its program is shrunk by delta debugging
(removing events while the same check still fails) and written as a trace
that ``rmaplab replay --check`` reproduces with the printed options.

Programs run in chunks on local processes, or on a Dask cluster
(``scheduler="tcp://HOST:PORT"``, or ``"local"`` for a local Dask cluster);
the same seeds give the same programs and the same verdicts either way.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

#: (memory pages, swap pages) of the tiny-memory programs
TINY = (48, 512)
EVENTS = 60


@dataclass(frozen=True)
class Program:
    seed: int
    scheme: str
    profile: str
    tiny: bool

    def config(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"scheme": self.scheme, "profile": self.profile}
        if self.tiny:
            kw.update(mem_pages=TINY[0], swap_pages=TINY[1])
        return kw

    def replay_options(self) -> str:
        opts = f"--check --scheme {self.scheme} --profile {self.profile}"
        if self.tiny:
            opts += f" --mem {TINY[0] * 4}K --swap {TINY[1] * 4}K"
        return opts


def program(seed: int, schemes: list[str], profiles: list[str]) -> Program:
    """Seed → the program's scheme, profile and memory (round robin)."""
    combos = list(itertools.product(schemes, profiles, (False, True)))
    scheme, profile, tiny = combos[seed % len(combos)]
    return Program(seed, scheme, profile, tiny)


def events_of(p: Program) -> list[dict]:
    from rmaplab.workloads.random_trace import random_trace
    return random_trace(p.seed, events=EVENTS)


def run_events(p: Program, events: list[dict]) -> tuple[int, str | None]:
    """Run ``events`` under ``p``'s configuration with every check after
    every event. Returns (events run, None) or (index of the failing event,
    "ErrorType: first line")."""
    from rmaplab.check import check_no_leaks, check_rmap_complete, validate
    from rmaplab.config import Config
    from rmaplab.kernel import Kernel
    from rmaplab.trace.reader import TraceError, parse_trace
    from rmaplab.trace.replay import run_event
    try:
        evs = parse_trace([json.dumps(e) for e in events], filename=f"fuzz-{p.seed}").events
    except TraceError:
        return 0, None                  # a cut made the program invalid: not this failure
    k = Kernel(Config(**p.config()))
    i = 0
    try:
        for i, ev in enumerate(evs):  # noqa: B007 - i names the failing event below
            run_event(k, ev)
            check_rmap_complete(k, validate(k))
        i = len(evs)
        for pid in k.pids():
            k.exit(pid)
        check_no_leaks(k)
    except TraceError:
        return i, None                  # e.g. a pid the OOM killer took: not a model bug
    except Exception as e:  # noqa: BLE001 - every other exception is a finding
        cause = e.__cause__ or e
        return i, f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
    return len(evs), None


def _signature(error: str) -> str:
    """What must stay the same while shrinking: the kind of failure and the
    check that failed, without addresses and numbers."""
    import re
    return re.sub(r"0x[0-9a-f]+|\d+", "#", error)[:80]


def shrink(p: Program, events: list[dict], error: str, budget: int = 400) -> list[dict]:
    """Delta debugging: drop chunks of events (never ``file`` declarations)
    while the program still fails the same way; then single events."""
    want = _signature(error)

    def fails(evs: list[dict]) -> bool:
        _, err = run_events(p, evs)
        return err is not None and _signature(err) == want

    # cut after the failing event first
    n, _ = run_events(p, events)
    events = events[:n + 1]
    chunk = max(1, len(events) // 2)
    tries = 0
    while chunk >= 1 and tries < budget:
        i, progressed = 0, False
        while i < len(events) and tries < budget:
            cut = [e for j, e in enumerate(events) if not (i <= j < i + chunk) or e["op"] == "file"]
            tries += 1
            if len(cut) < len(events) and fails(cut):
                events, progressed = cut, True
            else:
                i += chunk
        if not progressed:
            chunk //= 2
    return events


@dataclass
class Finding:
    program: Program
    error: str
    events: list[dict]

    def trace(self) -> str:
        head = {"format": "rmaplab-trace", "version": 1,
                "source": f"rmaplab fuzz seed {self.program.seed}: {self.error} "
                          f"(replay {self.program.replay_options()})"}
        return "\n".join(json.dumps(e) for e in [head, *self.events]) + "\n"


@dataclass
class FuzzReport:
    programs: int = 0
    steps: int = 0
    seconds: float = 0.0
    by_scheme: dict[str, int] = field(default_factory=dict)
    finding: Finding | None = None

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds else 0.0


def fuzz_chunk(seeds: list[int], schemes: list[str], profiles: list[str]) -> tuple[int, int, list, Any]:
    """Run the programs of ``seeds`` (in a worker); stops at the first
    failure: (programs, steps, [(scheme, steps)...], (seed, error) or None)."""
    steps = programs = 0
    per: list[tuple[str, int]] = []
    for seed in seeds:
        p = program(seed, schemes, profiles)
        n, err = run_events(p, events_of(p))
        steps += n
        programs += 1
        per.append((p.scheme, n))
        if err is not None:
            return programs, steps, per, (seed, err)
    return programs, steps, per, None


def run(steps: int, schemes: list[str], profiles: list[str], jobs: int = 1, seed: int = 0,
        time_limit: float | None = None, scheduler: str | None = None, chunk: int = 20,
        progress: Callable[[int], None] | None = None) -> FuzzReport:
    """Fuzz until ``steps`` steps ran (or ``time_limit`` seconds passed, or
    a failure). ``scheduler``: None (local processes), "local" (a local
    Dask cluster) or a Dask scheduler address."""
    rep = FuzzReport()
    t0 = time.perf_counter()
    starts = itertools.count(seed, chunk)
    done = False

    def take(result: tuple) -> None:
        nonlocal done
        programs, n, per, failure = result
        rep.programs += programs
        rep.steps += n
        for scheme, k in per:
            rep.by_scheme[scheme] = rep.by_scheme.get(scheme, 0) + k
        if failure is not None and rep.finding is None:
            fseed, err = failure
            p = program(fseed, schemes, profiles)
            rep.finding = Finding(p, err, shrink(p, events_of(p), err))
            done = True
        if progress is not None:
            progress(rep.steps)
        if rep.steps >= steps or (time_limit is not None and time.perf_counter() - t0 > time_limit):
            done = True

    for result in _map(starts, chunk, schemes, profiles, jobs, scheduler, lambda: done):
        take(result)
        if done:
            break
    rep.seconds = time.perf_counter() - t0
    return rep


def _map(starts: Iterator[int], chunk: int, schemes: list[str], profiles: list[str], jobs: int,
         scheduler: str | None, stop: Callable[[], bool]) -> Iterator[tuple]:
    """Results of ``fuzz_chunk`` over successive seed chunks, ``jobs`` at a
    time, as they finish, until ``stop()``."""
    def args() -> tuple:
        s = next(starts)
        return list(range(s, s + chunk)), schemes, profiles

    if scheduler is not None:
        yield from _map_dask(args, jobs, scheduler, stop)
        return
    if jobs <= 1:
        while not stop():
            yield fuzz_chunk(*args())
        return
    with ProcessPoolExecutor(max_workers=jobs) as ex:
        pending: set[Future] = {ex.submit(fuzz_chunk, *args()) for _ in range(2 * jobs)}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                yield f.result()
                if not stop():
                    pending.add(ex.submit(fuzz_chunk, *args()))
            if stop():
                for f in pending:
                    f.cancel()
                return


def _map_dask(args: Callable[[], tuple], jobs: int, scheduler: str,
              stop: Callable[[], bool]) -> Iterator[tuple]:
    from distributed import as_completed

    from rmaplab.report.parallel import dask_client
    with dask_client(scheduler, jobs) as client:
        workers = max(1, len(client.scheduler_info().get("workers", {})) or jobs)
        futures = as_completed([client.submit(fuzz_chunk, *args(), pure=False)
                                for _ in range(2 * workers)])
        for f in futures:
            yield f.result()
            if stop():
                break
            futures.add(client.submit(fuzz_chunk, *args(), pure=False))


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
