"""The discrete-event simulation (SimPy): the trace's processes as tasks on
N CPUs, contending for the locks their steps hold.

Modelled: each process of the trace is a task running its events in trace
order; a forked child starts after the fork, a trace's ``reclaim`` event
after every event before it; kswapd is a task of its own, running the
reclaim an event woke it for once that event is done. A task takes a CPU
for a whole event (FIFO run queue; the kernel is not preempted) and gives
it up between events. A waiter for a spinlock keeps its CPU; a waiter for a
sleeping lock gives it up (``context_switch`` when it runs again) and,
once the lock is its, waits for a CPU like anyone else, holding the lock;
an adaptive lock (mutex, rwsem from 3.16) is spun on while its owner runs,
for ``spin_cap`` at most. A FIFO lock (ticket spinlock, rwsem before 3.10)
is handed to its first waiter at release; a stealing lock is released,
its first waiter woken to try again, and a running task may take it first.
Readers of an rwsem share it; a reader queues behind any waiter. A lock
that passes from its holder to a waiter costs the waiter ``lock_handoff``
(its cache line moves to the waiter's CPU).

Left out: interrupts, preemption and time slices, NUMA distances, cache
effects of migration, the lru_lock and zone locks, memory bandwidth, I/O
waits (swap writes cost their CPU part only); every event's work is what
the sequential replay measured, whatever order the CPUs run it in.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from rmaplab.report.smp.costs import CostTable
from rmaplab.report.smp.eras import MUTEX, PAGE_LOCK, SPIN, Era, LockKind


class SimError(Exception):
    """The steps broke the simulation's rules (a model bug)."""


@dataclass
class Op:
    """One unit of work of a task: a trace event (or kswapd's reclaim)."""

    id: int
    kind: str
    steps: list
    deps: list[int] = field(default_factory=list)


@dataclass
class LockStat:
    acquired: int = 0
    contended: int = 0
    wait_ns: float = 0.0
    spin_ns: float = 0.0
    hold_ns: float = 0.0
    trylock_failed: int = 0

    def as_dict(self) -> dict[str, float]:
        return {"acquired": self.acquired, "contended": self.contended,
                "wait_ns": round(self.wait_ns, 1), "spin_ns": round(self.spin_ns, 1),
                "hold_ns": round(self.hold_ns, 1), "trylock_failed": self.trylock_failed}


@dataclass
class OpStat:
    count: int = 0
    time_ns: float = 0.0          # from getting a CPU to done
    wait_ns: float = 0.0          # of which waiting for locks
    queue_ns: float = 0.0         # waiting for a CPU before it started

    def as_dict(self) -> dict[str, float]:
        n = max(1, self.count)
        return {"count": self.count, "mean_ns": round(self.time_ns / n, 1),
                "mean_lock_wait_ns": round(self.wait_ns / n, 1),
                "mean_queue_ns": round(self.queue_ns / n, 1)}


class Task:
    __slots__ = ("name", "req", "spinlocks", "held")

    def __init__(self, name: str) -> None:
        self.name = name
        self.req: Any = None          # the CPU request it holds, or None
        self.spinlocks = 0            # spinlocks held (must not sleep)
        self.held = 0


class Lock:
    """One lock instance."""

    __slots__ = ("kind", "cls", "writer", "readers", "waiters", "woken")

    def __init__(self, kind: LockKind, cls: str) -> None:
        self.kind, self.cls = kind, cls
        self.writer: Task | None = None
        self.readers = 0
        self.waiters: deque[tuple[Task, str, simpy.Event]] = deque()
        self.woken = False            # a stealing lock's woken waiter is on its way

    def excl(self, mode: str) -> bool:
        return mode == "w" or not self.kind.rw

    def free_for(self, mode: str) -> bool:
        if self.writer is not None:
            return False
        return self.readers == 0 if self.excl(mode) else True

    def grant(self, task: Task, mode: str) -> None:
        if self.excl(mode):
            self.writer = task
        else:
            self.readers += 1


class Simulation:
    """Run ``tasks`` (name -> ops) on ``cpus`` CPUs."""

    def __init__(self, cpus: int, era: Era, costs: CostTable) -> None:
        self.env = simpy.Environment()
        self.cpu = simpy.Resource(self.env, capacity=cpus)
        self.era, self.costs = era, costs
        self.locks: dict[tuple, Lock] = {}
        self.lock_stats: dict[str, LockStat] = defaultdict(LockStat)
        self.op_stats: dict[str, OpStat] = defaultdict(OpStat)
        #: (op kind, lock class) -> [wait ns, hold ns]
        self.by_op: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
        self.done: dict[int, simpy.Event] = {}
        self.busy_ns = 0.0
        self.handoff = costs["lock_handoff"]
        self.switch = costs["context_switch"]
        self.spin_cap = costs["spin_cap"]
        self.kinds = {"mmap_sem": era.mmap_sem, "page": PAGE_LOCK, "i_mmap": era.i_mmap,
                      "anon_vma": era.rmap_lock or SPIN, "anonmm": era.rmap_lock or SPIN,
                      "ptl": SPIN, "pte_chain": SPIN}

    def lock(self, key: tuple) -> Lock:
        lk = self.locks.get(key)
        if lk is None:
            lk = self.locks[key] = Lock(self.kinds.get(key[0], MUTEX), key[0])
        return lk

    # -- running -------------------------------------------------------------------

    def run(self, tasks: dict[str, list[Op]]) -> float:
        for ops in tasks.values():
            for op in ops:
                self.done[op.id] = self.env.event()
        for name, ops in tasks.items():
            self.env.process(self._task(Task(name), ops))
        self.env.run()
        missing = [i for i, e in self.done.items() if not e.triggered]
        if missing:
            raise SimError(f"{len(missing)} operations never ran (a dependency cycle or a deadlock)")
        return self.env.now

    def _task(self, task: Task, ops: list[Op]) -> Generator[Any, Any, None]:
        env = self.env
        for op in ops:
            for d in op.deps:
                ev = self.done.get(d)
                if ev is not None and not ev.triggered:
                    yield ev
            ready = env.now
            task.req = self.cpu.request()
            yield task.req
            t0 = env.now
            st = self.op_stats[op.kind]
            st.queue_ns += t0 - ready
            waited = yield from self._steps(task, op.steps, op.kind)
            self.cpu.release(task.req)
            task.req = None
            st.count += 1
            st.time_ns += env.now - t0
            st.wait_ns += waited
            self.done[op.id].succeed()

    def _steps(self, task: Task, steps: list, kind: str) -> Generator[Any, Any, float]:
        env = self.env
        waited = 0.0
        for s in steps:
            if s[0] == "w":
                if s[1] > 0:
                    self.busy_ns += s[1]
                    yield env.timeout(s[1])
                continue
            _, key, mode, body, trylock = s
            lk = self.lock(key)
            stat = self.lock_stats[lk.cls]
            if lk.kind.sleeps and task.spinlocks:
                raise SimError(f"{task.name}: a sleeping lock ({lk.cls}) taken under a spinlock")
            if lk.writer is task:
                raise SimError(f"{task.name}: {lk.cls} {key[1:]} taken twice")
            if self._can_take(lk, mode):
                lk.grant(task, mode)
            elif trylock:
                stat.trylock_failed += 1
                continue
            else:
                w = yield from self._wait(task, lk, mode, stat)
                waited += w
                self.by_op[kind, lk.cls][0] += w
                # the lock's cache line comes over from its last holder's CPU
                self.busy_ns += self.handoff
                yield env.timeout(self.handoff)
            stat.acquired += 1
            spin = not lk.kind.sleeps
            task.spinlocks += spin
            t0 = env.now
            waited += yield from self._steps(task, body, kind)
            stat.hold_ns += env.now - t0
            self.by_op[kind, lk.cls][1] += env.now - t0
            task.spinlocks -= spin
            self._release(lk, mode)
        return waited

    def _can_take(self, lk: Lock, mode: str) -> bool:
        if not lk.free_for(mode):
            return False
        if lk.waiters or lk.woken:
            # a FIFO lock, and any lock for a reader, queues behind waiters;
            # a stealing lock's writer may take it from under them
            return not lk.kind.handoff and lk.excl(mode)
        return True

    def _wait(self, task: Task, lk: Lock, mode: str, stat: LockStat) -> Generator[Any, Any, float]:
        """Wait until ``lk`` is ``task``'s in ``mode``; the time waited."""
        env = self.env
        t0 = env.now
        stat.contended += 1
        front = False
        while True:
            ev = env.event()
            if front:
                lk.waiters.appendleft((task, mode, ev))
            else:
                lk.waiters.append((task, mode, ev))
            owner = lk.writer
            spin = lk.kind.spins and (not lk.kind.sleeps or (owner is not None and owner.req is not None))
            if spin and not lk.kind.sleeps:
                s0 = env.now
                yield ev
                stat.spin_ns += env.now - s0
                self.busy_ns += env.now - s0
            else:
                slept = True
                if spin:
                    s0 = env.now
                    yield ev | env.timeout(self.spin_cap)
                    stat.spin_ns += env.now - s0
                    self.busy_ns += env.now - s0
                    slept = not ev.triggered
                if slept:
                    self.cpu.release(task.req)
                    task.req = None
                    yield ev
                    task.req = self.cpu.request()
                    yield task.req
                    self.busy_ns += self.switch
                    yield env.timeout(self.switch)
            if ev.value == "granted":
                break
            # woken to try (a stealing lock): take it if still free, else
            # wait again at the front of the queue
            lk.woken = False
            if lk.free_for(mode):
                lk.grant(task, mode)
                self._wake(lk)
                break
            front = True
        w = env.now - t0
        stat.wait_ns += w
        return w

    def _release(self, lk: Lock, mode: str) -> None:
        if lk.excl(mode):
            lk.writer = None
        else:
            lk.readers -= 1
        self._wake(lk)

    def _wake(self, lk: Lock) -> None:
        """Grant (FIFO) or offer (stealing) the lock to the waiters at the
        front that can have it."""
        if lk.kind.handoff:
            while lk.waiters:
                t, m, ev = lk.waiters[0]
                if not lk.free_for(m):
                    break
                lk.waiters.popleft()
                lk.grant(t, m)
                ev.succeed("granted")
                if lk.excl(m):
                    break
            return
        if lk.woken or not lk.waiters:
            return
        t, m, ev = lk.waiters[0]
        if not lk.free_for(m):
            return
        if not lk.excl(m):
            # readers at the front come in together
            while lk.waiters and not lk.excl(lk.waiters[0][1]):
                t, m, ev = lk.waiters.popleft()
                lk.grant(t, m)
                ev.succeed("granted")
            return
        lk.waiters.popleft()
        lk.woken = True
        ev.succeed("retry")
