"""``rmaplab smp``: the rmap schemes on many CPUs, by discrete-event
simulation.

A trace is replayed once per scheme on the model (``probe``), which says
what each event did: its counters, the VMAs, files, anon_vmas and page
tables it worked on, the rmap walks reclaim made inside it. Each event
becomes steps (``ops``): stretches of work costed from the calibrated table
(``costs``), and locks held around them as the kernel of the chosen era
holds them (``eras``). The trace's processes then run as tasks on N
simulated CPUs (``sim``, SimPy), contending for those locks.

Output per scheme, era and CPU count: the simulated time, throughput
(events per simulated second), time per operation, and per lock class the
acquisitions, contended acquisitions, wait and hold time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rmaplab.report.smp.costs import CostTable, load_costs
from rmaplab.report.smp.eras import ERAS, Era, Variant, parse_variants
from rmaplab.report.smp.ops import Builder, total_work
from rmaplab.report.smp.probe import Record, probe
from rmaplab.report.smp.sim import Op, SimError, Simulation

__all__ = ["CostTable", "ERAS", "Era", "SimError", "SmpResult", "Variant", "build_tasks",
           "load_costs", "parse_variants", "probe", "run_smp", "simulate"]

#: lock classes in the order tables list them
LOCK_CLASSES = ("mmap_sem", "page", "i_mmap", "anon_vma", "anonmm", "ptl", "pte_chain")


@dataclass
class SmpResult:
    """One simulation: a variant on ``cpus`` CPUs."""

    variant: str
    scheme: str
    era: str
    cpus: int
    events: int
    time_ns: float
    work_ns: float
    busy_ns: float
    locks: dict[str, dict[str, float]] = field(default_factory=dict)
    ops: dict[str, dict[str, float]] = field(default_factory=dict)
    #: op kind -> lock class -> {"wait_ns", "hold_ns"}
    by_op: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        """Events per simulated second."""
        return self.events / (self.time_ns * 1e-9) if self.time_ns else 0.0

    def lock_wait_ns(self, cls: str | None = None) -> float:
        if cls is not None:
            return float(self.locks.get(cls, {}).get("wait_ns", 0.0))
        return sum(float(v.get("wait_ns", 0.0)) for v in self.locks.values())

    def as_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "scheme": self.scheme, "era": self.era, "cpus": self.cpus,
                "events": self.events, "time_ns": round(self.time_ns, 1),
                "throughput_per_s": round(self.throughput, 1), "work_ns": round(self.work_ns, 1),
                "cpu_utilisation": round(self.busy_ns / (self.cpus * self.time_ns), 4)
                if self.time_ns else 0.0,
                "lock_wait_ns": round(self.lock_wait_ns(), 1), "locks": self.locks, "ops": self.ops,
                "locks_by_op": self.by_op}


def build_tasks(records: Sequence[Record], builder: Builder) -> dict[str, list[Op]]:
    """The tasks (one per pid, and kswapd) with their ops in trace order and
    the dependencies the trace implies: a child's first event waits for its
    fork; a parent's first event after a child's exit waits for that exit
    (it was reaped: wait4); a ``reclaim`` event waits for every event before
    it; kswapd's work for the event that woke it."""
    tasks: dict[str, list[Op]] = {}
    last: dict[str, int] = {}
    pending: dict[int, int] = {}
    parent: dict[int, int] = {}
    reaped: dict[int, list[int]] = {}
    n = 0
    for rec in records:
        if rec.op in ("file", "checkpoint"):
            continue
        own, background = builder.build(rec)
        if rec.pid is None:
            name, deps = "kswapd", list(last.values())
        else:
            name = f"pid {rec.pid}"
            deps = [pending.pop(rec.pid)] if rec.pid in pending else []
            deps += reaped.pop(rec.pid, [])
        op = Op(n, rec.op, own, deps)
        tasks.setdefault(name, []).append(op)
        last[name] = n
        n += 1
        if rec.op == "fork" and rec.child is not None:
            pending[rec.child] = op.id
            parent[rec.child] = rec.pid  # type: ignore[assignment]
        elif rec.op == "exit" and rec.pid in parent:
            reaped.setdefault(parent.pop(rec.pid), []).append(op.id)
        for _, steps in background:
            tasks.setdefault("kswapd", []).append(Op(n, "kswapd", steps, [op.id]))
            last["kswapd"] = n
            n += 1
    return tasks


def simulate(tasks: dict[str, list[Op]], variant: Variant, cpus: int,
             costs: CostTable) -> SmpResult:
    """Run the tasks on ``cpus`` CPUs under the variant's lock rules."""
    sim = Simulation(cpus, variant.era, costs)
    t = sim.run(tasks)
    ops = [op for v in tasks.values() for op in v]
    by_op: dict[str, dict[str, dict[str, float]]] = {}
    for (kind, cls), (w, h) in sorted(sim.by_op.items()):
        by_op.setdefault(kind, {})[cls] = {"wait_ns": round(w, 1), "hold_ns": round(h, 1)}
    return SmpResult(variant.name, variant.scheme, variant.era.name, cpus,
                     sum(1 for op in ops if op.kind != "kswapd"), t,
                     sum(total_work(op.steps) for op in ops), sim.busy_ns,
                     {k: v.as_dict() for k, v in sorted(sim.lock_stats.items(),
                                                        key=lambda kv: _order(kv[0]))},
                     {k: v.as_dict() for k, v in sorted(sim.op_stats.items())}, by_op)


def _order(cls: str) -> int:
    return LOCK_CLASSES.index(cls) if cls in LOCK_CLASSES else len(LOCK_CLASSES)


def run_smp(events: Sequence[Any], variants: Sequence[Variant], cpus: Sequence[int],
            costs: CostTable | None = None, mem_pages: int | None = None,
            swap_pages: int | None = None, profile: str = "2.6.7",
            progress: Callable[[str], None] | None = None) -> list[SmpResult]:
    """Probe ``events`` once per scheme, then simulate every variant at
    every CPU count."""
    costs = costs or CostTable()
    probes: dict[str, list[Record]] = {}
    out = []
    for v in variants:
        if v.scheme not in probes:
            if progress:
                progress(f"replaying under {v.scheme}")
            probes[v.scheme] = probe(events, v.scheme, mem_pages, swap_pages, profile)
        tasks = build_tasks(probes[v.scheme], Builder(v.scheme, v.era, costs))
        for n in cpus:
            if progress:
                progress(f"{v.name} on {n} CPUs")
            out.append(simulate(tasks, v, n, costs))
    return out
