"""What each trace event did, with the identity of what it locked.

``probe(events, scheme)`` replays the trace once, sequentially, on the model
(``trace.replay.run_event``), and keeps per event:

- the stat counters' growth (``report.measure`` does the same per op kind);
- the VMAs it worked on, read before (and, for calls that make VMAs, after)
  the event: each one's rmap lock (its anon_vma, or the root of its family,
  or its mm's anonmm bundle head), its file (whose i_mmap lock it takes),
  the ptes present in it per 2 MiB (per page-table page) and, for
  pte_chain, the frames it maps (whose chain locks it takes);
- every rmap walk reclaim made (``page_referenced``, ``try_to_unmap``): the
  page, the lock the walk takes, the page tables it looked into, its
  counters; and whether kswapd, direct reclaim or a ``reclaim`` event ran it.

The walks are observed by wrapping, on the kernel's own objects, the
scheme's ``page_referenced``, ``try_to_unmap`` and ``candidates`` and the
context's ``kswapd`` and ``reserve``; nothing in the model changes. Which
lock names a page or a VMA reads the scheme's own objects by their kernel
names (``anon_vma.root``, ``anonmm.head``); a scheme rmaplab does not know
locks per ``page->mapping`` value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rmaplab.config import Config
from rmaplab.kernel import Kernel
from rmaplab.trace.reader import Event
from rmaplab.trace.replay import run_event

PAGE_SHIFT = 12
#: page-table pages cover 512 ptes (2 MiB): the unit of a split ptlock
PT_SHIFT = 9
#: pte_chain's per-page bit locks are simulated per stripe of 2**k frames
STRIPE_SHIFT = 3
_PRESENT = 1

Key = tuple


@dataclass
class Walk:
    """One rmap walk: ``page_referenced`` ("ref") or ``try_to_unmap`` ("unmap")."""

    kind: str
    pfn: int
    lock: Key | None
    #: (mm serial, 2 MiB region) of each candidate the walk looked into
    cands: list[tuple[int, int]]
    deltas: dict[str, int]


@dataclass
class Reclaim:
    """Reclaim run inside an event: its walks and the rest of its counters."""

    who: str                 # "kswapd", "direct" or "event" (a trace's reclaim event)
    walks: list[Walk] = field(default_factory=list)
    rest: dict[str, int] = field(default_factory=dict)


@dataclass
class VmaInfo:
    """A VMA an event worked on, as it was."""

    start: int
    end: int
    rmap: Key | None
    file: Key | None
    #: present ptes per 2 MiB region (vpn >> 9)
    regions: dict[int, int]
    #: pte_chain only: the frames mapped, as chain-lock stripes with counts
    stripes: dict[int, int] = field(default_factory=dict)

    @property
    def ptes(self) -> int:
        return sum(self.regions.values())


@dataclass
class Record:
    """One event of the trace, as the simulation needs it."""

    index: int
    op: str
    pid: int | None
    mm: int | None                     # the serial of the pid's mm (before)
    child: int | None = None           # fork: the child's pid
    child_mm: int | None = None
    deltas: dict[str, int] = field(default_factory=dict)
    vmas: list[VmaInfo] = field(default_factory=list)
    #: mmap-like calls: the VMAs of the range afterwards
    after: list[VmaInfo] = field(default_factory=list)
    pages: int = 0                     # touch: pages accessed
    write: bool = False
    zapped: int = 0                    # ptes removed by munmap/madvise/brk/mremap
    freed: int = 0                     # frames freed by the event (not by reclaim)
    #: touch under pte_chain: chain stripes of the shared pages it COWed
    cow_stripes: dict[int, int] = field(default_factory=dict)
    reclaims: list[Reclaim] = field(default_factory=list)
    #: the anon lock an exiting mm's bundle holds (anonmm) or a new one
    mm_rmap: Key | None = None


def _sub(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: v - b[k] for k, v in a.items() if v != b[k]}


class LockNames:
    """Which lock a VMA's or a page's rmap work takes, per scheme."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.scheme = k.scheme
        self.name = k.scheme.name
        self.mem = k.mem

    def vma(self, vma: Any) -> Key | None:
        name, av = self.name, vma.anon_vma
        if name == "anonmm":
            am = vma.vm_mm.rmap
            return None if am is None else ("anonmm", am.head.id)
        if name in ("pte_chain", "none") or av is None:
            return None
        root = getattr(av, "root", None)
        if root is not None:
            return ("anon_vma", root.id)
        return ("anon_vma", getattr(av, "id", id(av)))

    def mm(self, mm: Any) -> Key | None:
        if self.name == "anonmm" and mm.rmap is not None:
            return ("anonmm", mm.rmap.head.id)
        return None

    def page(self, pfn: int) -> Key | None:
        m = int(self.mem.mapping[pfn])
        name = self.name
        if not m or name == "none":
            return None
        if name == "pte_chain":
            return ("pte_chain", pfn >> STRIPE_SHIFT)
        if not m & 1:
            return ("i_mmap", m >> 1)
        if name == "pure_anon_vma" and m & (1 << 62):
            return ("i_mmap", (m & ~(1 << 62)) >> 1)
        if name == "anonmm":
            am = self.scheme.anonmms.get(m >> 1)
            return None if am is None else ("anonmm", am.head.id)
        avs = getattr(self.scheme, "anon_vmas", None)
        av = avs.get(m >> 1) if isinstance(avs, dict) else None
        if av is not None and getattr(av, "root", None) is not None:
            return ("anon_vma", av.root.id)
        return ("anon_vma", m >> 1)


def vma_info(names: LockNames, vma: Any, start: int | None = None, end: int | None = None,
             stripes: bool = False) -> VmaInfo:
    s = vma.vm_start if start is None else max(start, vma.vm_start)
    e = vma.vm_end if end is None else min(end, vma.vm_end)
    vpns, ptes = vma.vm_mm.pgd.populated(s >> PAGE_SHIFT, e >> PAGE_SHIFT)
    regions: dict[int, int] = {}
    if len(vpns):
        r, c = np.unique(vpns >> PT_SHIFT, return_counts=True)
        regions = dict(zip(r.tolist(), c.tolist()))
    st: dict[int, int] = {}
    if stripes and len(ptes):
        present = ptes[(ptes & _PRESENT) != 0]
        pfns = present >> 12
        if len(pfns):
            r, c = np.unique(pfns >> STRIPE_SHIFT, return_counts=True)
            st = dict(zip(r.tolist(), c.tolist()))
    f = vma.vm_file
    return VmaInfo(s, e, names.vma(vma), None if f is None else ("i_mmap", f.id), regions, st)


class _Observer:
    """Wraps the kernel's walks and reclaim entry points for one replay."""

    def __init__(self, k: Kernel, names: LockNames) -> None:
        self.k, self.names = k, names
        self.current: Reclaim | None = None
        self.done: list[Reclaim] = []
        self._cands: list[tuple[int, int]] | None = None
        scheme, ctx = k.scheme, k.ctx
        self._pr, self._ttu, self._cand = scheme.page_referenced, scheme.try_to_unmap, scheme.candidates
        self._kswapd, self._reserve = ctx.kswapd, ctx.reserve
        scheme.page_referenced = self._wrap_walk("ref", self._pr)
        scheme.try_to_unmap = self._wrap_walk("unmap", self._ttu)
        scheme.candidates = self._candidates
        # the context's reclaim entry points, wrapped for this replay only
        ctx.kswapd = self._wrap_reclaim("kswapd", self._kswapd)  # type: ignore[method-assign]
        ctx.reserve = self._wrap_reclaim("direct", self._reserve)  # type: ignore[method-assign]

    def _candidates(self, pfn: int) -> Iterator[tuple[Any, int]]:
        for vma, addr in self._cand(pfn):
            if self._cands is not None:
                self._cands.append((vma.vm_mm.serial, addr >> (PAGE_SHIFT + PT_SHIFT)))
            yield vma, addr

    def _pte_addresses(self, pfn: int) -> list[tuple[int, int]]:
        """pte_chain's walks go through the page's pte addresses, not
        ``candidates``: (mm serial, 2 MiB region) of each, read before."""
        keys = getattr(self.k.scheme, "_keys", None)
        decode = getattr(self.k.scheme, "_decode", None)
        if keys is None or decode is None:
            return []
        out = []
        for key in list(keys(pfn)):
            mm, vpn = decode(key)
            out.append((mm.serial, vpn >> PT_SHIFT))
        return out

    def _wrap_walk(self, kind: str, fn: Callable[[int], int]) -> Callable[[int], int]:
        stat = self.k.stat

        def walk(pfn: int) -> int:
            if self.current is None or self._cands is not None:
                return fn(pfn)
            lock = self.names.page(pfn)
            direct = self._pte_addresses(pfn)
            before = stat.as_dict()
            self._cands = []
            try:
                return fn(pfn)
            finally:
                cands, self._cands = self._cands, None
                if not cands and direct:
                    cands = direct
                self.current.walks.append(Walk(kind, int(pfn), lock, cands,
                                               _sub(stat.as_dict(), before)))
        return walk

    def _wrap_reclaim(self, who: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        stat = self.k.stat

        def reclaim(*a: Any, **kw: Any) -> Any:
            if self.current is not None:
                return fn(*a, **kw)
            before = stat.as_dict()
            self.current = Reclaim(who)
            try:
                return fn(*a, **kw)
            finally:
                rec, self.current = self.current, None
                if rec.walks or _sub(stat.as_dict(), before):
                    rec.rest = _sub(stat.as_dict(), before)
                    self.done.append(rec)
        return reclaim

    def event_reclaim(self) -> Reclaim:
        self.current = Reclaim("event")
        return self.current

    def take(self) -> list[Reclaim]:
        out, self.done = self.done, []
        if self.current is not None and self.current.who == "event":
            out.append(self.current)
            self.current = None
        return out


#: ops whose VMAs afterwards matter (new VMAs link into rmap objects and files)
_MAKES_VMAS = ("mmap", "mremap", "brk", "mprotect", "mlock", "munlock", "madvise", "touch")


def _range(ev: Event, k: Kernel) -> tuple[int, int] | None:
    op, pid, a = ev.op, ev.pid, ev.args
    if op in ("munmap", "mlock", "munlock", "mprotect", "madvise"):
        return a[0], a[0] + a[1]
    if op == "touch":
        return a[0], a[0] + a[1]
    if op == "mremap":
        return a[0], a[0] + max(a[1], a[2])
    if op == "brk":
        if pid is None:
            return None
        try:
            mm = k.mm(pid)
        except Exception:
            return None
        lo, hi = sorted((mm.brk, a[0]))
        return lo, hi + 4096
    return None


def probe(events: Sequence[Event], scheme: str, mem_pages: int | None = None,
          swap_pages: int | None = None, profile: str = "2.6.7",
          trylock_walks: bool | None = None) -> list[Record]:
    """Replay ``events`` under ``scheme`` and record each one (see the
    module docstring). ``trylock_walks`` sets the Config rule of that name
    (it changes only which lock counter a walk bumps)."""
    cfg = Config(profile=profile, scheme=scheme, mem_pages=mem_pages, swap_pages=swap_pages)
    if trylock_walks is not None:
        cfg.trylock_walks = trylock_walks
    k = Kernel(cfg)
    names = LockNames(k)
    obs = _Observer(k, names)
    chains = k.scheme.name == "pte_chain"
    out: list[Record] = []
    stat = k.stat
    for ev in events:
        op, pid = ev.op, ev.pid
        mm = None
        if pid is not None and pid in k.tasks:
            mm = k.mm(pid)
        rec = Record(ev.index, op, pid, None if mm is None else mm.serial)
        rng = _range(ev, k) if mm is not None else None
        if mm is not None:
            if op in ("fork", "exit", "exec"):
                rec.vmas = [vma_info(names, v, stripes=chains) for v in mm.mmap]
                rec.mm_rmap = names.mm(mm)
            elif rng is not None:
                rec.vmas = [vma_info(names, v, rng[0], rng[1], stripes=chains)
                            for v in mm.vma_range(*rng)]
            if op == "touch":
                rec.pages = max(0, (ev.args[0] + ev.args[1] + 4095) // 4096 - ev.args[0] // 4096)
                rec.write = ev.args[2] == "w"
            rss0 = mm.rss
        used0 = k.mem.nr_used
        if op == "reclaim":
            obs.event_reclaim()
        before = stat.as_dict()
        run_event(k, ev)
        total = _sub(stat.as_dict(), before)
        rec.reclaims = obs.take()
        own = dict(total)
        for r in rec.reclaims:
            for n, v in r.rest.items():
                own[n] = own.get(n, 0) - v
                if not own[n]:
                    del own[n]
        if op == "reclaim":
            for r in rec.reclaims:
                if r.who == "event":
                    r.rest = total
            own = {}
        rec.deltas = own
        if op == "fork" and ev.args[0] in k.tasks:
            rec.child = ev.args[0]
            rec.child_mm = k.mm(ev.args[0]).serial
            rec.mm_rmap = names.mm(k.mm(ev.args[0]))
        if mm is not None and pid in k.tasks and k.mm(pid) is mm:
            if rng is not None and op in _MAKES_VMAS:
                rec.after = [vma_info(names, v, rng[0], rng[1]) for v in mm.vma_range(*rng)]
            if op in ("munmap", "madvise", "brk", "mremap"):
                rec.zapped = max(0, rss0 - mm.rss)
            if op == "touch" and chains and own.get("fault_wp_copy"):
                rec.cow_stripes = _stripe_sum(rec.vmas)
        if op not in ("reclaim",):
            reclaimed = sum(r.rest.get("pgsteal", 0) for r in rec.reclaims)
            rec.freed = max(0, used0 - k.mem.nr_used - reclaimed)
        out.append(rec)
    return out


def _stripe_sum(vmas: list[VmaInfo]) -> dict[int, int]:
    out: dict[int, int] = {}
    for v in vmas:
        for s, c in v.stripes.items():
            out[s] = out.get(s, 0) + c
    return out
