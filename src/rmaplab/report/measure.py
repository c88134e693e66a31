"""Run one trace under one scheme and measure what the 2004 debate counted.

Events are replayed one at a time so that each counter's growth can be
charged to the kind of event that caused it (fork, exit, mremap, touch, ...);
rmap metadata bytes are sampled as the run goes and the peak is kept.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rmaplab.config import Config
from rmaplab.kernel import Kernel
from rmaplab.trace.replay import replay

#: counters that measure rmap work (visiting candidates and comparing ptes)
WALK = ("rmap_vmas_visited", "rmap_mms_visited", "rmap_ptes_compared", "find_vma_calls")
LOCKS = ("lock_anon_vma", "lock_anonmm", "lock_page_table", "trylock_page_table", "lock_i_mmap")


@dataclass
class Metrics:
    scheme: str
    events: int = 0
    seconds: float = 0.0
    stat: dict[str, int] = field(default_factory=dict)
    #: counter growth charged to each event kind (op)
    by_op: dict[str, dict[str, int]] = field(default_factory=dict)
    peak_bytes: dict[str, int] = field(default_factory=lambda: {"i386": 0, "x86_64": 0})
    peak_vmas: int = 0
    peak_frames: int = 0
    mismatches: int = 0
    #: pids the OOM killer took, in order (``out_of_memory``)
    oom_killed: list[int] = field(default_factory=list)
    #: events not run because their process had been OOM-killed
    skipped: int = 0

    @property
    def oom_kills(self) -> int:
        return len(self.oom_killed)

    def walk_work(self, op: str | None = None) -> int:
        src = self.stat if op is None else self.by_op.get(op, {})
        return sum(src.get(n, 0) for n in WALK) + src.get("pte_chain_slots_searched", 0)

    def per_reclaimed(self) -> float | None:
        steal = self.stat.get("pgsteal", 0)
        return self.walk_work() / steal if steal else None

    def as_dict(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "events": self.events, "seconds": round(self.seconds, 4),
                "walk_work": self.walk_work(), "walk_work_per_reclaimed": self.per_reclaimed(),
                "fork_work": self.walk_work("fork") + self.by_op.get("fork", {}).get(
                    "pte_chain_alloc", 0),
                "exit_work": self.walk_work("exit"), "mremap_work": self.walk_work("mremap"),
                "find_vma_calls": self.stat.get("find_vma_calls", 0),
                "locks": sum(self.stat.get(n, 0) for n in LOCKS),
                "vma_merges": self.stat.get("vma_merges", 0), "peak_vmas": self.peak_vmas,
                "metadata_bytes_i386": self.peak_bytes["i386"],
                "metadata_bytes_x86_64": self.peak_bytes["x86_64"],
                "pages_copied": self.stat.get("pages_copied", 0),
                "mremap_cows": self.stat.get("mremap_cows", 0),
                "pgsteal": self.stat.get("pgsteal", 0), "pswpout": self.stat.get("pswpout", 0),
                "mismatches": self.mismatches, "oom_kills": self.oom_kills,
                "oom_killed": self.oom_killed, "skipped": self.skipped,
                "stat": self.stat, "by_op": self.by_op}


def measure(events: Sequence[Any], scheme: str, mem_pages: int | None = None,
            swap_pages: int | None = None, progress: Callable[[int], None] | None = None,
            samples: int = 200, extra: dict | None = None, profile: str = "2.6.7") -> Metrics:
    """Replay parsed ``events`` (from the trace reader) under ``scheme``,
    with the other rules of ``profile``. Running out of memory is an
    outcome: the OOM killer's victims are in ``oom_killed`` and their later
    events in ``skipped``."""
    import time
    k = Kernel(Config(profile=profile, scheme=scheme, mem_pages=mem_pages, swap_pages=swap_pages,
                      extra=dict(extra or {})))
    m = Metrics(k.config.scheme)        # a plugin spec shows as its scheme's name
    by_op: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    every = max(1, len(events) // samples)
    before = k.stat.as_dict()
    t = time.perf_counter()
    for i, ev in enumerate(events):
        rep = replay(k, [ev])
        m.mismatches += rep.mismatches
        m.skipped += rep.skipped
        after = k.stat.as_dict()
        d = by_op[ev.op]
        for n, v in after.items():
            if v != before[n]:
                d[n] += v - before[n]
        before = after
        if i % every == 0 or i == len(events) - 1:
            _sample(k, m)
            if progress is not None:
                progress(i + 1)
    m.seconds = time.perf_counter() - t
    m.events = len(events)
    m.stat = k.stat.as_dict()
    m.by_op = {op: dict(v) for op, v in by_op.items()}
    m.oom_killed = list(k.oom_killed)
    return m


def _sample(k: Kernel, m: Metrics) -> None:
    b = k.scheme.metadata_bytes()
    for arch in ("i386", "x86_64"):
        m.peak_bytes[arch] = max(m.peak_bytes[arch], b.get(arch, 0))
    m.peak_vmas = max(m.peak_vmas, sum(k.mm(p).map_count for p in k.pids()))
    m.peak_frames = max(m.peak_frames, k.mem.nr_used)
