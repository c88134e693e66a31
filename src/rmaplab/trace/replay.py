"""Replaying a trace on the model (``spec/trace-v1.md``).

``replay(kernel, events)`` applies each event to a ``Kernel`` and works out
its result as the spec's table says: an address or number as an integer, an
errno name, ``"ok"``/``"SIGSEGV"``/``"SIGBUS"`` for a touch (with ``"read"``
for a successful read touch), null for events that return nothing. Where the
event carries ``expect`` and it differs, the result gets ``"expect"`` and
``"match": false`` and counts as a mismatch; replay goes on.

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from rmaplab.errors import InvariantError, SyscallError
from rmaplab.kernel import NoSuchProcess, TouchResult
from rmaplab.kernel.abi import AbiError
from rmaplab.trace.dump import state_dump
from rmaplab.trace.reader import NO_EXPECT, Event, TraceError

#: how many mismatches a ReplayReport keeps in full
KEEP_MISMATCHES = 20


class InvariantBroken(Exception):
    """The model's state broke an invariant: a model bug, not bad input."""

    def __init__(self, filename: str, line: int, op: str, message: str,
                 when: str = "after") -> None:
        super().__init__(f"{filename}:{line}: invariant broken {when} {op}: {message}")
        self.filename, self.line, self.op = filename, line, op


class ModelFailure(Exception):
    """The core raised an unexpected exception while running an event."""

    def __init__(self, filename: str, line: int, op: str, exc: BaseException) -> None:
        super().__init__(f"{filename}:{line}: model failure in {op}: "
                         f"{type(exc).__name__}: {exc}")
        self.filename, self.line, self.op = filename, line, op


@dataclass
class ReplayReport:
    events: int = 0
    mismatches: int = 0
    #: the first KEEP_MISMATCHES mismatching result objects
    first_mismatches: list[dict] = field(default_factory=list)
    dumps: int = 0
    elapsed: float = 0.0


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


def run_event(kernel: Any, ev: Event, filename: str = "<trace>",
              handlers: dict[str, Callable[[Any, Any, tuple], Any]] = _HANDLERS) -> tuple[Any, Any]:
    """Apply one event; returns (result, tokens read or None) in the form
    of the results file. Raises TraceError, InvariantBroken or
    ModelFailure as ``replay`` says."""
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
    except (NoSuchProcess, AbiError, _Redeclared) as e:
        why = str(e)
        if pid is not None and pid in getattr(kernel, "oom_killed", ()):
            why = (f"pid {pid} was killed by the model's OOM killer earlier in the "
                   f"replay (the model ran out of memory where the traced system did "
                   f"not; try a larger --mem or --swap)")
        raise TraceError(filename, line, f"{op}: {why}") from None
    except InvariantError as e:
        raise InvariantBroken(filename, line, op, str(e), when="in") from e
    except Exception as e:  # a bug in the model, reported with the event
        raise ModelFailure(filename, line, op, e) from e
    return res, read


def replay(kernel: Any, events: Iterable[Event], results: Any = None, dump: Any = None,
           check: bool = False, on_checkpoint: Callable[[str, int, Any], None] | None = None,
           filename: str = "<trace>",
           progress: Callable[[int], None] | None = None) -> ReplayReport:
    """Apply ``events`` to ``kernel``.

    ``results``: where to put one result object per event (a list, a
    callable, or a file: JSON Lines). ``dump``: where to put one state dump
    per checkpoint and a final one (same kinds). ``check``: run
    ``validate`` and ``check_rmap_complete`` after every event.
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
    if check:
        from rmaplab.check import check_rmap_complete, validate
    handlers = _HANDLERS
    report = ReplayReport()
    kept = report.first_mismatches
    no_expect = NO_EXPECT
    t0 = time.perf_counter()
    n = index = 0
    for ev in events:
        index, line, op, pid, args, expect = ev
        res, read = run_event(kernel, ev, filename, handlers)
        n += 1
        if progress is not None and not n & 511:
            progress(n)
        mismatch = expect is not no_expect and (expect != res or expect.__class__ is not res.__class__)
        if put is not None or mismatch:
            obj = {"event": index, "line": line, "op": op}
            if pid is not None:
                obj["pid"] = pid
            obj["result"] = res
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
    if put_dump is not None:
        # the final dump is taken where the next event would run
        put_dump(state_dump(kernel, None, index + 1 if n else 0))
        report.dumps += 1
    report.events = n
    report.elapsed = time.perf_counter() - t0
    return report
