"""Model runs in worker processes, for ``compare`` and ``sweep``.

``run_jobs(fn, jobs, workers, ...)`` calls ``fn(job)`` for every job, in a
pool of worker processes (or in this process when ``workers`` is 1), and
hands each result to ``done(job, result)`` as it arrives. Whatever goes
wrong inside a worker comes back as one line (``JobFailed``: the job, the
error, and the exit status it calls for), never as a broken pool or a
traceback from another process. ``fn`` may report progress through
``report(key, n)``, which reaches ``on_progress(key, n)`` in this process.
"""

from __future__ import annotations

import multiprocessing
import queue as _queue
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

#: in a worker: where report() sends progress (None in this process)
_QUEUE: Any = None
#: in a worker, or here when run in process: data every job shares
_SHARED: Any = None
_LOCAL_PROGRESS: Callable[[Any, int], None] | None = None


class JobFailed(Exception):
    """A job failed: ``status`` is the exit status (2 bad input, 1 a model
    failure); the message is one line naming the job."""

    def __init__(self, what: str, error: str, status: int) -> None:
        super().__init__(f"{what}: {error}")
        self.status = status


def failure(e: BaseException) -> tuple[int, str]:
    """(exit status, one line) for an exception raised by a model run."""
    from rmaplab.errors import ConfigError
    from rmaplab.trace.reader import TraceError
    from rmaplab.trace.replay import InvariantBroken, ModelFailure
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, (TraceError, ConfigError, ValueError, TypeError)) \
            and not isinstance(e, (InvariantBroken, ModelFailure)):
        return 2, text
    if isinstance(e, (InvariantBroken, ModelFailure)):
        return 1, text
    if isinstance(e, MemoryError):
        return 1, "the model ran out of this machine's memory (MemoryError)"
    return 1, f"model failure: {type(e).__name__}: {text}"


def shared() -> Any:
    """The ``shared`` data given to ``run_jobs`` (in a worker or here)."""
    return _SHARED


def report(key: Any, n: int) -> None:
    """Progress of a job, from inside ``fn``."""
    if _QUEUE is not None:
        _QUEUE.put((key, n))
    elif _LOCAL_PROGRESS is not None:
        _LOCAL_PROGRESS(key, n)


def _init(q: Any, data: Any) -> None:
    global _QUEUE, _SHARED
    _QUEUE, _SHARED = q, data


def _guarded(fn: Callable[[Any], Any], job: Any) -> tuple[bool, Any]:
    try:
        return True, fn(job)
    except Exception as e:          # every failure crosses back as one line
        return False, failure(e)


def run_jobs(fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int,
             done: Callable[[Any, Any], None], what: Callable[[Any], str] = str,
             on_progress: Callable[[Any, int], None] | None = None,
             shared_data: Any = None, started: Callable[[], None] | None = None) -> None:
    """Run ``fn`` over ``jobs`` (see the module docstring). Raises
    JobFailed for the first job that fails (the others are cancelled).
    ``started()`` is called once the workers exist (after the fork: the
    place to start a thread of this process's own)."""
    global _SHARED, _LOCAL_PROGRESS
    if workers <= 1 or len(jobs) <= 1:
        saved = _SHARED, _LOCAL_PROGRESS
        _SHARED, _LOCAL_PROGRESS = shared_data, on_progress
        try:
            if started is not None:
                started()
            for job in jobs:
                ok, res = _guarded(fn, job)
                if not ok:
                    raise JobFailed(what(job), res[1], res[0])
                done(job, res)
        finally:
            _SHARED, _LOCAL_PROGRESS = saved
        return
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue() if on_progress is not None else None
    ex = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx,
                             initializer=_init, initargs=(q, shared_data))
    ok_exit = False
    try:
        futures = {ex.submit(_guarded, fn, job): job for job in jobs}
        if started is not None:
            started()
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(q, on_progress)
            for f in finished:
                job = futures[f]
                try:
                    ok, res = f.result()
                except BrokenProcessPool:
                    raise JobFailed(what(job), "a worker process died (killed, or out of "
                                               "this machine's memory)", 1) from None
                if not ok:
                    raise JobFailed(what(job), res[1], res[0])
                done(job, res)
        _drain(q, on_progress)
        ok_exit = True
    finally:
        if not ok_exit:
            # a failure or Ctrl-C: the other jobs' results are not wanted;
            # stop this pool's own workers rather than wait for them
            for proc in list(getattr(ex, "_processes", {}).values()):
                proc.terminate()
        ex.shutdown(wait=ok_exit, cancel_futures=True)


def _drain(q: Any, on_progress: Callable[[Any, int], None] | None) -> None:
    if q is None or on_progress is None:
        return
    while True:
        try:
            key, n = q.get_nowait()
        except (_queue.Empty, OSError, ValueError):
            return
        on_progress(key, n)
