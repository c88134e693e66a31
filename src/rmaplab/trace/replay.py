"""Replaying a trace on the model (``spec/trace-v1.md``).

``replay(kernel, events)`` applies each event to a ``Kernel`` and works out
its result as the spec's table says: an address or number as an integer, an
errno name, ``"ok"``/``"SIGSEGV"``/``"SIGBUS"`` for a touch (with ``"read"``
for a successful read touch), null for events that return nothing. Where the
event carries ``expect`` and it differs, the result gets ``"expect"`` and
``"match": false`` and counts as a mismatch; replay goes on.

Processes the model's OOM killer takes (``--mem``/``--swap`` too small for
the trace) are part of the replay, not trouble: the event the victim was in
gets ``"SIGKILL"``, and every later event naming that pid (or a child that
a killed parent would have forked) is skipped: it does not run, its result
is ``"SIGKILL"`` with ``"skipped": true``, it is not compared with its
``expect``, and ``ReplayReport.skipped`` counts it. A later ``spawn`` (or a
fork by a live parent) of that pid runs as usual.

Three kinds of trouble stop a replay:

- ``TraceError`` (``FILE:LINE: reason``): the trace's fault, found while
  running (a pid that a failed fork never created, for example; most such
  problems the reader already refused).
- ``InvariantBroken`` (``FILE:LINE: invariant broken after <op>: ...``): with
  ``check``, the validators found the model's state wrong after an event, or
  the core itself detected a broken invariant. A model bug.
- ``ModelFailure``: the core raised something unexpected. A model bug.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from rmaplab.errors import InvariantError, OOMKilled, SyscallError
from rmaplab.kernel import NoSuchProcess, TouchResult
from rmaplab.kernel.abi import AbiError
from rmaplab.trace.dump import state_dump
from rmaplab.trace.reader import NO_EXPECT, Event, Trace, TraceError

#: how many mismatches a ReplayReport keeps in full
KEEP_MISMATCHES = 20


class InvariantBroken(Exception):
    """The model's state broke an invariant: a model bug, not bad input."""

    def __init__(self, filename: str, line: int, op: str, message: str,
                 when: str = "after") -> None:
        super().__init__(f"{filename}:{line}: invariant broken {when} {op}: {message}")
        self.filename, self.line, self.op = filename, line, op
        self._args = (filename, line, op, message, when)

    def __reduce__(self) -> tuple:
        return (type(self), self._args)


class ModelFailure(Exception):
    """The core raised an unexpected exception while running an event."""

    def __init__(self, filename: str, line: int, op: str, exc: BaseException) -> None:
        super().__init__(f"{filename}:{line}: model failure in {op}: "
                         f"{type(exc).__name__}: {exc}")
        self.filename, self.line, self.op = filename, line, op

    def __reduce__(self) -> tuple:
        # the cause may not pickle: a copy in another process keeps its text
        return (_model_failure, (self.filename, self.line, self.op, str(self)))


def _model_failure(filename: str, line: int, op: str, text: str) -> ModelFailure:
    e = ModelFailure.__new__(ModelFailure)
    Exception.__init__(e, text)
    e.filename, e.line, e.op = filename, line, op
    return e


@dataclass
class ReplayReport:
    events: int = 0
    mismatches: int = 0
    #: the first KEEP_MISMATCHES mismatching result objects
    first_mismatches: list[dict] = field(default_factory=list)
    dumps: int = 0
    elapsed: float = 0.0
    #: events skipped because their process was OOM-killed earlier
    skipped: int = 0
    #: whole-state checks run by an incremental check
    full_checks: int = 0


def _checked(fn: Callable[..., None], filename: str, line: int, op: str, when: str,
             *args: Any, since: int | None = None) -> None:
    """Run a check of ``check.incremental``; a broken invariant names the
    event (and, found by a full check, the line of the previous one)."""
    try:
        fn(*args)
    except InvariantError as e:
        msg = str(e)
        if getattr(fn.__self__, "last_full", False):       # type: ignore[attr-defined]
            msg = (f"the full check found: {msg} (it broke after "
                   + (f"line {since}" if since is not None else "the start")
                   + ", where the previous full check passed)")
        raise InvariantBroken(filename, line, op, msg, when=when) from e
    except Exception as e:  # a bug in a validator
        raise ModelFailure(filename, line, f"the checks {when} {op}", e) from e


def _sink(target: Any) -> Callable[[dict], None] | None:
    """A list (append), a callable, or a binary/text file (JSON Lines)."""
    if target is None:
        return None
    if isinstance(target, list):
        return target.append
    write = getattr(target, "write", None)
    if write is None:
        if callable(target):
            return target
        raise TypeError(f"cannot write results to {target!r}")
    dumps = orjson.dumps
    binary = "b" in getattr(target, "mode", "b") and not hasattr(target, "encoding")
    if binary:
        return lambda obj: write(dumps(obj) + b"\n")
    return lambda obj: write(dumps(obj).decode() + "\n")


def _as_int(v: Any) -> Any:
    return v if v is None or v.__class__ is int or v.__class__ is str else int(v)


def _reclaim(k: Any, pid: Any, a: tuple) -> int:
    fn = getattr(k, "reclaim", None)      # a Kernel without reclaim frees nothing
    return int(fn(a[0])) if fn is not None else 0


#: op -> handler(kernel, pid, args) giving the result (a TouchResult for touch)
_HANDLERS: dict[str, Callable[[Any, Any, tuple], Any]] = {
    "spawn": lambda k, pid, a: k.spawn(pid),
    "exec": lambda k, pid, a: k.exec(pid),
    "exit": lambda k, pid, a: k.exit(pid),
    "fork": lambda k, pid, a: k.fork(pid, a[0]),
    "file": lambda k, pid, a: _declare(k, *a),
    "mmap": lambda k, pid, a: k.mmap(pid, a[0], a[1], a[2], a[3], file=a[4], offset=a[5],
                                     open=a[6]),
    "munmap": lambda k, pid, a: k.munmap(pid, a[0], a[1]),
    "mprotect": lambda k, pid, a: k.mprotect(pid, a[0], a[1], a[2]),
    "mremap": lambda k, pid, a: k.mremap(pid, a[0], a[1], a[2], a[3], a[4]),
    "brk": lambda k, pid, a: k.brk(pid, a[0]),
    "madvise": lambda k, pid, a: k.madvise(pid, a[0], a[1], a[2]),
    "mlock": lambda k, pid, a: k.mlock(pid, a[0], a[1]),
    "munlock": lambda k, pid, a: k.munlock(pid, a[0], a[1]),
    "touch": lambda k, pid, a: k.touch(pid, a[0], a[1], a[2], a[3]),
    "reclaim": _reclaim,
    "checkpoint": lambda k, pid, a: None,
}


class _Redeclared(Exception):
    pass


def _declare(k: Any, name: str, size: int) -> None:
    if name in k.ctx.files:
        raise _Redeclared(f"file {name!r} is already declared")
    k.declare_file(name, size)


#: kernel -> pids that never came to exist because the parent that would
#: have forked them was OOM-killed (their events are skipped like the victim's)
_UNBORN: weakref.WeakKeyDictionary[Any, set[int]] = weakref.WeakKeyDictionary()

#: the result of an event whose process the OOM killer took
KILLED = "SIGKILL"


def oom_skipped(kernel: Any, ev: Event) -> bool:
    """Does ``ev`` name a process the OOM killer took (``kernel.oom_killed``,
    or the child a killed parent never forked) and that no later event
    re-created? Such an event does not run (see the module docstring); a
    skipped fork makes its child unborn too."""
    pid = ev[3]
    if pid is None or pid in getattr(kernel, "tasks", ()):
        return False
    unborn = _UNBORN.get(kernel)
    if not (unborn and pid in unborn) and pid not in getattr(kernel, "oom_killed", ()):
        return False
    if ev[2] == "fork":
        _UNBORN.setdefault(kernel, set()).add(ev[4][0])
    return True


def run_event(kernel: Any, ev: Event, filename: str = "<trace>",
              handlers: dict[str, Callable[[Any, Any, tuple], Any]] = _HANDLERS) -> tuple[Any, Any]:
    """Apply one event; returns (result, tokens read or None) in the form
    of the results file (``"SIGKILL"`` for an event of an OOM-killed
    process, which does not run). Raises TraceError, InvariantBroken or
    ModelFailure as ``replay`` says."""
    if oom_skipped(kernel, ev):
        return KILLED, None
    return _run(kernel, ev, filename, handlers)


def _run(kernel: Any, ev: Event, filename: str,
         handlers: dict[str, Callable[[Any, Any, tuple], Any]]) -> tuple[Any, Any]:
    _, line, op, pid, args, _ = ev
    read = None
    try:
        res = handlers[op](kernel, pid, args)
        if res.__class__ is TouchResult:
            read = res.read if res.result == "ok" and args[2] == "r" else None
            res = res.result
        elif res.__class__ is not int and res is not None:
            res = _as_int(res)
    except SyscallError as e:
        res = e.errno
    except OOMKilled:
        # the OOM killer took the caller inside a path that does not
        # catch it itself (out_of_memory's SIGKILL: the call never returns)
        res = KILLED
    except (NoSuchProcess, AbiError, _Redeclared) as e:
        raise TraceError(filename, line, f"{op}: {e}") from None
    except InvariantError as e:
        raise InvariantBroken(filename, line, op, str(e), when="in") from e
    except Exception as e:  # a bug in the model, reported with the event
        raise ModelFailure(filename, line, op, e) from e
    return res, read


def replay(kernel: Any, events: Iterable[Event] | Trace, results: Any = None, dump: Any = None,
           check: bool | str = False,
           on_checkpoint: Callable[[str, int, Any], None] | None = None,
           filename: str = "<trace>",
           progress: Callable[[int], None] | None = None,
           check_every: int = 100) -> ReplayReport:
    """Apply ``events`` to ``kernel``.

    ``results``: where to put one result object per event (a list, a
    callable, or a file: JSON Lines). ``dump``: where to put one state dump
    per checkpoint and a final one (same kinds). ``check``: ``True`` or
    ``"full"`` runs ``validate`` and ``check_rmap_complete`` after every
    event (work x state); ``"incremental"`` checks after each event what
    the event could change (``check.incremental.EventChecker``: work), and
    the whole state every ``check_every`` events, after reclaim or an OOM
    kill, and at the end, so a break is found at the latest by the next
    full check.
    ``on_checkpoint(name, event_index, kernel)`` is called at each
    checkpoint. ``filename`` names the trace in error messages (a ``Trace``
    from the reader may be passed as ``events``; its name is then used).
    ``progress(n)`` is called every 512 events with the number done.
    """
    if hasattr(events, "events") and hasattr(events, "filename"):
        filename = events.filename
        events = events.events
    put = _sink(results)
    put_dump = _sink(dump)
    if check not in (False, True, "full", "incremental"):
        raise ValueError(f"check must be False, True, 'full' or 'incremental', not {check!r}")
    checker = None
    if check == "incremental":
        from rmaplab.check.incremental import EventChecker
        checker = EventChecker(kernel, check_every)
        check = False
    elif check:
        from rmaplab.check import check_rmap_complete, validate
    last_full = None
    # progress every 512 events, or every event when each one is checked
    mask = 0 if check or checker is not None else 511
    handlers = _HANDLERS
    report = ReplayReport()
    kept = report.first_mismatches
    no_expect = NO_EXPECT
    t0 = time.perf_counter()
    n = index = 0
    for ev in events:
        index, line, op, pid, args, expect = ev
        skipped = oom_skipped(kernel, ev)
        if skipped:
            res, read = KILLED, None
            report.skipped += 1
        else:
            if checker is not None:
                _checked(checker.before, filename, line, op, "before", ev)
            res, read = _run(kernel, ev, filename, handlers)
            if checker is not None:
                done = checker.full_checks
                _checked(checker.after, filename, line, op, "after", ev, res,
                         since=last_full)
                if checker.full_checks != done:
                    last_full = line
        n += 1
        if progress is not None and not n & mask:
            progress(n)
        mismatch = (not skipped and expect is not no_expect
                    and (expect != res or expect.__class__ is not res.__class__))
        if put is not None or mismatch:
            obj = {"event": index, "line": line, "op": op}
            if pid is not None:
                obj["pid"] = pid
            obj["result"] = res
            if skipped:
                obj["skipped"] = True
            if read is not None:
                obj["read"] = read
            if mismatch:
                obj["expect"] = expect
                obj["match"] = False
                report.mismatches += 1
                if len(kept) < KEEP_MISMATCHES:
                    kept.append(obj)
            if put is not None:
                put(obj)
        if op == "checkpoint":
            if put_dump is not None:
                put_dump(state_dump(kernel, args[0], index))
                report.dumps += 1
            if on_checkpoint is not None:
                on_checkpoint(args[0], index, kernel)
        if check:
            try:
                check_rmap_complete(kernel, validate(kernel))
            except InvariantError as e:
                raise InvariantBroken(filename, line, op, str(e)) from e
            except Exception as e:  # a bug in a validator
                raise ModelFailure(filename, line, f"the checks after {op}", e) from e
    if checker is not None and n:
        _checked(checker.full, filename, line, op, "after", since=last_full)
        report.full_checks = checker.full_checks
    if put_dump is not None:
        # the final dump is taken where the next event would run
        put_dump(state_dump(kernel, None, index + 1 if n else 0))
        report.dumps += 1
    report.events = n
    report.elapsed = time.perf_counter() - t0
    return report
