"""From a probed event to the work a CPU does: steps, each a stretch of
time or a lock held around more steps, in the order the kernel of the era
takes them.

A step is ``("w", ns)`` (work) or ``("l", key, mode, body, try)``: hold the
lock named ``key`` (``(class, ...)``; classes ``mmap_sem``, ``page``,
``i_mmap``, ``anon_vma``, ``anonmm``, ``ptl``, ``pte_chain``) in ``mode``
("r" or "w") while ``body`` runs; ``try`` gives up at once if it is busy
(the walks' trylocks of 2.6.6-2.6.8). Lock order, outermost first:
mmap_sem, page, i_mmap, anon_vma/anonmm, ptl, pte_chain (2.6.11's order).

Every counter an event grew is charged exactly once (``Charge``): to the
lock it is done under, where the kernel does it there, else as plain work,
so the steps of an event add up to the cost of its counters (plus its
``op.*`` cost and the user's accesses). What the kernel does, per op:

- touch: faults in chunks of ``GRAIN`` pages, each under mmap_sem (read);
  the part of a fault that sets the pte (``ptl_fault``) under the
  page-table lock; pte_chain's COW removes the old page from its chain under
  that page's chain lock; the first fault of a VMA makes its anon_vma under
  the anon_vma lock (and page_table_lock in 2.6.7); then the user's access.
- fork: mmap_sem (write) of the parent for the whole copy; per VMA the
  anon_vma link (2.6.7) or anon_vma_fork (root lock, AVC and anon_vma
  allocations), the file's i_mmap lock, then the ptes per page-table page
  under the child's and the parent's page-table locks (pte_chain: each
  page's chain lock); anonmm: the bundle head's lock once.
- exit (and exec's teardown): zap per page-table page under the
  page-table lock (pte_chain: each page's chain lock), then per VMA the
  anon_vma unlink (its lock) and the i_mmap removal.
- mmap, munmap, mprotect, mremap, brk, mlock, madvise: mmap_sem (write;
  madvise read); the VMA changes (splits, merges, links) under the file's
  i_mmap lock, the anon_vma lock and, before rmap 39 (``vma_tree_ptl``),
  the page-table lock; zapping and moving ptes under the page-table lock.
- reclaim (kswapd, direct, a trace's reclaim event): per walk the page lock
  (try_to_unmap), the rmap lock (read-locked walks from 3.8), and per VMA
  looked into the page-table lock (a trylock in 2.6.6-2.6.8).

Departures: a chunk of faults holds mmap_sem and the page-table lock once
for the chunk, where the kernel takes them per fault; work is spread evenly
over a VMA's page-table pages and over the frames' chain-lock stripes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rmaplab.report.smp.costs import CostTable
from rmaplab.report.smp.eras import Era
from rmaplab.report.smp.probe import PT_SHIFT, Record, Reclaim, VmaInfo, Walk

#: pages per simulated chunk of faults
GRAIN = 16

Step = tuple
#: counters charged inside a walk to the page-table lock of each candidate
_PER_CANDIDATE = ("rmap_pgtable_walks", "rmap_ptes_compared", "rmap_ptes_found", "find_vma_calls",
                  "lock_page_table", "trylock_page_table")
_FAULTS = ("fault_anon", "fault_zero_page", "fault_early_cow", "fault_swap")


class Charge:
    """An event's counters, taken as they are placed; ``rest()`` is what
    was not placed."""

    def __init__(self, deltas: dict[str, int], costs: CostTable) -> None:
        self.left = dict(deltas)
        self.costs = costs

    def take(self, name: str, n: int | None = None) -> float:
        have = self.left.get(name, 0)
        if n is None or n > have:
            n = have
        if not n:
            return 0.0
        self.left[name] = have - n
        return n * self.costs[name]

    def take_all(self, names: Iterable[str]) -> float:
        return sum(self.take(n) for n in names)

    def rest(self) -> float:
        c = self.costs
        out = sum(v * c[k] for k, v in self.left.items() if v > 0)
        self.left = {}
        return out


def _w(ns: float) -> list[Step]:
    return [("w", ns)] if ns > 0 else []


def _hold(key: Any, mode: str, body: list[Step], trylock: bool = False) -> list[Step]:
    if key is None:
        return body
    return [("l", key, mode, body, trylock)]


class Builder:
    """Steps for the records of one scheme under one era."""

    def __init__(self, scheme: str, era: Era, costs: CostTable) -> None:
        self.scheme, self.era, self.costs = scheme, era, costs
        self.chains = scheme == "pte_chain"

    # -- lock names --------------------------------------------------------------

    def ptl(self, mm: int | None, region: int) -> tuple | None:
        if mm is None:
            return None
        return ("ptl", mm) if self.era.ptl == "mm" else ("ptl", mm, region)

    def _split(self, total: float, parts: dict[Any, int]) -> list[tuple[Any, float]]:
        n = sum(parts.values())
        if not n:
            return []
        return [(k, total * c / n) for k, c in sorted(parts.items())]

    # -- events ------------------------------------------------------------------

    def build(self, rec: Record) -> tuple[list[Step], list[tuple[Reclaim, list[Step]]]]:
        """(the event's own steps, [(reclaim, steps) that kswapd runs])."""
        own: list[Step] = []
        background = []
        for r in rec.reclaims:
            steps = self.reclaim(r)
            if r.who in ("direct", "event"):
                own += steps
            else:
                background.append((r, steps))
        fn = getattr(self, "op_" + rec.op, None)
        ch = Charge(rec.deltas, self.costs)
        body = fn(rec, ch) if fn is not None else []
        own += _w(self.costs[f"op.{rec.op}"]) + body + _w(ch.rest())
        return own, background

    def op_touch(self, rec: Record, ch: Charge) -> list[Step]:
        c = self.costs
        present = sum(v.ptes for v in rec.vmas)
        nonpresent = max(0, rec.pages - present)
        counted = sum(rec.deltas.get(n, 0) for n in _FAULTS)
        cost = ch.take_all(_FAULTS + ("fault_wp_copy", "fault_wp_reuse", "fault_around"))
        ch.take("fault_file", 0)
        ch.left.pop("fault_file", None)            # page-cache fills: within the fault's cost
        other = max(0, nonpresent - counted)
        cost += other * c["fault_file"]
        faults = counted + other + rec.deltas.get("fault_wp_copy", 0) + rec.deltas.get("fault_wp_reuse", 0)
        user = rec.pages * c["user_write_page" if rec.write else "user_read_page"]
        out: list[Step] = []
        if rec.deltas.get("lock_anon_vma") and rec.after:
            key = next((v.rmap for v in rec.after if v.rmap is not None), None)
            prep = ch.take_all(("lock_anon_vma", "anon_vma_alloc", "avc_alloc", "anon_vma_reused"))
            inner = _w(prep)
            if rec.deltas.get("lock_page_table"):
                inner = _hold(self.ptl(rec.mm, rec.vmas[0].start >> 21 if rec.vmas else 0), "w",
                              _w(prep + ch.take("lock_page_table")))
            out += _hold(("mmap_sem", rec.mm), "r", _hold(key, "w", inner))
        if faults:
            locked = min(cost, faults * c["ptl_fault"])
            chain = ch.take_all(("pte_chain_slots_searched", "pte_chain_alloc", "pte_chain_free"))
            n = -(-faults // GRAIN)
            start = rec.vmas[0].start >> 12 if rec.vmas else 0
            stripes = sorted(rec.cow_stripes) if self.chains else []
            for i in range(n):
                region = (start + i * GRAIN) >> PT_SHIFT
                inner = _w(locked / n)
                if stripes:
                    s = stripes[i * len(stripes) // n]
                    inner += _hold(("pte_chain", s), "w", _w(chain / n))
                else:
                    inner += _w(chain / n)
                out += _hold(("mmap_sem", rec.mm), "r",
                             _w((cost - locked) / n) + _hold(self.ptl(rec.mm, region), "w", inner))
        return out + _w(user)

    def _zap(self, rec: Record, vmas: list[VmaInfo], ch: Charge, per_pte: str, ptes: int) -> list[Step]:
        """Unmap ``ptes`` ptes spread over ``vmas``' page-table pages, with
        their page frees and (pte_chain) chain removals."""
        c = self.costs
        total_ptes = sum(v.ptes for v in vmas)
        if not total_ptes or not ptes:
            return []
        zap = ch.take(per_pte) if per_pte in ch.left else ptes * c[per_pte]
        zap += rec.freed * c["page_free"]
        chain = ch.take_all(("pte_chain_slots_searched", "pte_chain_free"))
        out: list[Step] = []
        for v in vmas:
            share = v.ptes / total_ptes
            if not share:
                continue
            regions = self._split((zap) * share, v.regions)
            stripes = self._split(chain * share, v.stripes) if self.chains else []
            for j, (r, ns) in enumerate(regions):
                inner = _w(ns)
                if stripes:
                    lo = j * len(stripes) // len(regions)
                    hi = (j + 1) * len(stripes) // len(regions)
                    for s, cs in stripes[lo:hi]:
                        inner += _hold(("pte_chain", s), "w", _w(cs))
                out += _hold(self.ptl(rec.mm, r), "w", inner)
        return out

    def op_fork(self, rec: Record, ch: Charge) -> list[Step]:
        c = self.costs
        out: list[Step] = []
        if rec.mm_rmap is not None:
            out += _hold(rec.mm_rmap, "w", _w(ch.take_all(("lock_anonmm", "anonmm_alloc"))))
        vmas = rec.vmas
        linked = [v for v in vmas if v.rmap is not None]
        rmap_cost = ch.take_all(("lock_anon_vma", "anon_vma_alloc", "avc_alloc", "anon_vma_fork_reuse"))
        ptes_all = sum(v.ptes for v in vmas)
        fork_ptes = rec.deltas.get("fork_ptes", 0)
        pte_cost = ch.take("fork_ptes")
        chain = ch.take_all(("pte_chain_alloc",))
        per_vma = ch.take("fork_vmas") / max(1, len(vmas))
        imm = ch.take("lock_i_mmap") / max(1, sum(1 for v in vmas if v.file))
        for v in vmas:
            body = _w(per_vma)
            if v.rmap is not None and linked:
                body += _hold(v.rmap, "w", _w(rmap_cost / len(linked)))
            if v.file is not None:
                body += _hold(v.file, "w", _w(imm or c["lock_i_mmap"]))
            if ptes_all and fork_ptes:
                share = v.ptes / ptes_all
                stripes = self._split(chain * share, v.stripes) if self.chains else []
                regions = self._split(pte_cost * share, v.regions)
                for j, (r, ns) in enumerate(regions):
                    inner = _w(ns)
                    if stripes:
                        lo, hi = j * len(stripes) // len(regions), (j + 1) * len(stripes) // len(regions)
                        for s, cs in stripes[lo:hi]:
                            inner += _hold(("pte_chain", s), "w", _w(cs))
                    body += _hold(self.ptl(rec.child_mm, r), "w",
                                  _hold(self.ptl(rec.mm, r), "w", inner))
            out += body
        return _hold(("mmap_sem", rec.mm), "w", out)

    def op_exit(self, rec: Record, ch: Charge) -> list[Step]:
        out = self._zap(rec, rec.vmas, ch, "exit_ptes", rec.deltas.get("exit_ptes", 0))
        linked = [v for v in rec.vmas if v.rmap is not None]
        unlink = ch.take_all(("lock_anon_vma", "anon_vma_free", "avc_free"))
        imm_n = sum(1 for v in rec.vmas if v.file)
        imm = ch.take("lock_i_mmap") / max(1, imm_n)
        for v in rec.vmas:
            if v.rmap is not None:
                out += _hold(v.rmap, "w", _w(unlink / len(linked)))
            if v.file is not None:
                out += _hold(v.file, "w", _w(imm or self.costs["lock_i_mmap"]))
        if rec.mm_rmap is not None:
            out += _hold(rec.mm_rmap, "w", _w(ch.take_all(("lock_anonmm", "anonmm_free"))))
        return out

    def op_exec(self, rec: Record, ch: Charge) -> list[Step]:
        return self.op_exit(rec, ch)

    def _vma_change(self, rec: Record, ch: Charge, mode: str = "w") -> list[Step]:
        """The VMA work of mmap-like calls, and their zaps and moves."""
        c = self.costs
        vmas = rec.vmas + rec.after
        rkeys = list(dict.fromkeys(v.rmap for v in vmas if v.rmap is not None))
        fkeys = list(dict.fromkeys(v.file for v in vmas if v.file is not None))
        work = ch.take_all(("vma_splits", "vma_merges"))
        work += (rec.deltas.get("vma_alloc", 0) + rec.deltas.get("vma_free", 0)) * c["vma_link"]
        ch.left.pop("vma_alloc", None)
        ch.left.pop("vma_free", None)
        locks = ch.take_all(("lock_anon_vma", "lock_i_mmap", "anon_vma_alloc", "anon_vma_free",
                             "avc_alloc", "avc_free", "anon_vma_reused"))
        body = _w(work + locks)
        if self.era.vma_tree_ptl and (work or rec.op in ("mmap", "munmap", "brk", "mremap")):
            body = _hold(self.ptl(rec.mm, (rec.vmas or rec.after or [VmaInfo(0, 0, None, None, {})])[0]
                                  .start >> 21), "w", body or _w(c["vma_link"]))
        for k in rkeys[:1]:
            body = _hold(k, "w", body)
        for k in fkeys[:1]:
            body = _hold(k, "w", body)
        out = body
        for k in rkeys[1:] + fkeys[1:]:
            out += _hold(k, "w", _w(c["lock_anon_vma"]))
        if rec.zapped:
            out += self._zap(rec, rec.vmas, ch, "zap_pte", rec.zapped)
        if rec.deltas.get("mremap_ptes_moved"):
            mv = ch.take_all(("mremap_ptes_moved", "rmap_mremap_updates", "pages_copied",
                              "pte_chain_slots_searched"))
            src = rec.vmas[0] if rec.vmas else None
            dst = rec.after[-1] if rec.after else src
            r0 = min(src.regions) if src is not None and src.regions else 0
            r1 = min(dst.regions) if dst is not None and dst.regions else r0
            k0, k1 = self.ptl(rec.mm, r0), self.ptl(rec.mm, r1)
            inner = _hold(k1, "w", _w(mv)) if k1 != k0 else _w(mv)
            out += _hold(k0, "w", inner)
        return _hold(("mmap_sem", rec.mm), mode, out)

    def op_mmap(self, rec: Record, ch: Charge) -> list[Step]:
        return self._vma_change(rec, ch)

    op_munmap = op_mprotect = op_mremap = op_brk = op_mlock = op_munlock = op_mmap

    def op_madvise(self, rec: Record, ch: Charge) -> list[Step]:
        return self._vma_change(rec, ch, "r")

    def op_spawn(self, rec: Record, ch: Charge) -> list[Step]:
        return []

    # -- reclaim ------------------------------------------------------------------------

    def walk(self, w: Walk) -> list[Step]:
        c = self.costs
        ch = Charge(w.deltas, c)
        cands = w.cands
        per = ch.take_all(_PER_CANDIDATE) / len(cands) if cands else 0.0
        rest = ch.rest()
        mode = "r" if self.era.walk_read else "w"
        inner = _w(rest)
        nolock = self.chains and w.kind == "ref"     # pte_chain's page_referenced: no mm locks
        for mm, region in cands:
            inner += _w(per) if nolock else _hold(self.ptl(mm, region), "w", _w(per),
                                                  self.era.trylock_walks)
        steps = _hold(w.lock, mode, inner)
        if w.kind == "unmap":
            steps = _hold(("page", w.pfn), "w", steps)
        return steps

    def reclaim(self, r: Reclaim) -> list[Step]:
        left = dict(r.rest)
        out: list[Step] = []
        for w in r.walks:
            out += self.walk(w)
            for k, v in w.deltas.items():
                left[k] = left.get(k, 0) - v
        return out + _w(Charge(left, self.costs).rest())


def total_work(steps: list[Step]) -> float:
    """The nanoseconds of work in ``steps`` (what one CPU would take with
    no waiting)."""
    t = 0.0
    for s in steps:
        t += s[1] if s[0] == "w" else total_work(s[3])
    return t
