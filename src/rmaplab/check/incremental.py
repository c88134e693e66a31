"""Checks that cost what an event costs: ``replay --check``.

``validate`` and ``check_rmap_complete`` look at the whole machine (every
pte of every process, an rmap walk of every mapped frame): after every
event of a long trace that is work x state. ``EventChecker`` instead
checks, after each event, the part of the state the event could change:

- the process's VMAs around the event's range (order, bounds, file
  i_mmap membership, ``map_count``) and no pte outside a VMA in the range;
- every frame mapped in the range before or after the event: the scheme's
  rmap walk (``rmap_walk``, as the completeness check) finds exactly
  ``mapcount`` mappings, each a pte that maps the frame, among them the
  range's own; ``page->index`` is what the VMA says (``expected_index``);
  the scheme's list closure (``check_mapped``); ``count`` is ptes + page
  cache + swap cache (the kernel's ``page_count``); a frame the event freed
  is clean;
- swap ptes in the range hold a used slot; the process's ``rss`` moved by
  what the range's ptes moved (when no reclaim ran during the event).

The range is the event's own (``touch``, ``mmap``, ``munmap``, ``mprotect``,
``madvise``, ``mlock``, ``munlock``; ``brk`` between the old and new break;
``mremap`` both ranges); ``fork``, ``exec`` and ``exit`` take the whole
address space of the processes involved, whose VMAs and ptes are all
checked but only ``SAMPLE`` of whose frames are walked (spread evenly: a
fork copies its ptes in bulk, where a walk per frame would cost a hundred
times the fork). What an event may change outside
its range (reclaim and swap-out under ``--mem``, an OOM kill, a copy on
write leaving the other sharers' frames, the scheme's own structures) is
left to the full check (``validate`` + ``check_rmap_complete``), which runs
every ``every`` events, after a ``reclaim`` event or an OOM kill, and at the
end: a broken invariant is found at the latest there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rmaplab.asm.page import PAGE_SHIFT
from rmaplab.check.validate import check_rmap_complete, validate
from rmaplab.errors import InvariantError
from rmaplab.mm.page import PG_swapcache, ZERO_PFN

#: frames walked outside an event's own range: of the address spaces a
#: fork, exec or exit takes, or of the VMAs a call reshapes (the rest at the
#: next full check)
SAMPLE = 512
#: calls that may split, merge, move or change VMAs
_RESHAPE = frozenset(("mmap", "munmap", "mprotect", "mremap", "madvise", "mlock", "munlock",
                      "brk"))
#: the highest user vpn (TASK_SIZE is 1 << 47)
_TOP = 1 << (47 - PAGE_SHIFT)
_WHOLE = "whole"


def _fail(msg: str) -> None:
    raise InvariantError(msg)


def _clamp(addr: Any, length: Any) -> tuple[int, int] | None:
    """The vpn range of ``[addr, addr+length)`` inside user space."""
    if not isinstance(addr, int) or not isinstance(length, int) or length <= 0:
        return None
    s = max(0, addr) >> PAGE_SHIFT
    e = min(_TOP, (max(0, addr + length) + (1 << PAGE_SHIFT) - 1) >> PAGE_SHIFT)
    return (s, e) if s < e else None


def _union(rs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Ranges merged where they overlap or touch, in order."""
    out: list[tuple[int, int]] = []
    for s, e in sorted(rs):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _spans(mm: Any, ranges: Any) -> list[tuple[int, int]]:
    """The vpn ranges: ``ranges``, or each VMA of ``mm`` for the whole."""
    if isinstance(ranges, str):
        return [(v.vm_start >> PAGE_SHIFT, v.vm_end >> PAGE_SHIFT) for v in mm.mmap]
    return list(ranges)


class EventChecker:
    """``before(ev)`` and ``after(ev, result)`` around each event (see the
    module docstring); ``full()`` is the whole check. Raises
    InvariantError naming what is wrong."""

    def __init__(self, kernel: Any, every: int = 100) -> None:
        self.k = kernel
        self.every = max(1, every)
        self.n = 0
        self.full_checks = 0
        #: whether the last check was the whole one
        self.last_full = False
        self._pfns: np.ndarray = np.zeros(0, np.int64)
        self._rss: dict[int, tuple[int, int]] = {}
        self._stat: tuple[int, int] = (0, 0)

    # -- the whole check ------------------------------------------------------------

    def full(self) -> None:
        self.full_checks += 1
        self.last_full = True
        check_rmap_complete(self.k, validate(self.k))

    # -- one event --------------------------------------------------------------------

    def _ranges(self, ev: Any, result: Any = None, after: bool = False
                ) -> dict[int, list[tuple[int, int]] | str]:
        """pid -> the vpn ranges ``ev`` can change in it (or the whole mm)."""
        _, _, op, pid, args, _ = ev
        k = self.k
        out: dict[int, list[tuple[int, int]] | str] = {}
        if pid is None:
            return out
        if op in ("fork",):
            out[pid] = _WHOLE
            out[args[0]] = _WHOLE
            return out
        if op in ("spawn", "exec", "exit"):
            out[pid] = _WHOLE
            return out
        rs: list[tuple[int, int] | None] = []
        if op == "touch":
            r = _clamp(args[0], args[1])
            fa = k.config.fault_around_pages
            if r is not None and fa > 1:
                # do_fault_around maps a window of fa pages from the aligned
                # start or the VMA's start, whichever is higher
                r = (r[0] - r[0] % fa, min(_TOP, r[1] - 1 - (r[1] - 1) % fa + 2 * fa))
            rs.append(r)
        elif op in ("munmap", "mprotect", "madvise", "mlock", "munlock"):
            rs.append(_clamp(args[0], args[1]))
        elif op == "mmap":
            rs.append(_clamp(args[0], args[1]))
            if after and isinstance(result, int):
                rs.append(_clamp(result, args[1]))
        elif op == "mremap":
            rs.append(_clamp(args[0], args[1]))
            if args[4] is not None:
                rs.append(_clamp(args[4], args[2]))
            if after and isinstance(result, int):
                rs.append(_clamp(result, args[2]))
        elif op == "brk":
            t = k.tasks.get(pid)
            if t is not None and isinstance(args[0], int):
                # the heap from start_brk to the higher of the break and the asked one
                top = max(t.mm.brk, args[0])
                rs.append(_clamp(t.mm.start_brk, top - t.mm.start_brk + 1))
        out[pid] = _union([r for r in rs if r is not None])
        return out

    def _present(self, pid: int, ranges: list[tuple[int, int]] | str
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(vpns, ptes) of the non-none ptes in ``ranges`` of ``pid``."""
        t = self.k.tasks.get(pid)
        if t is None:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        mm = t.mm
        spans = _spans(mm, ranges)
        vs, ps = [], []
        for s, e in spans:
            v, p = mm.pgd.populated(s, e)
            vs.append(v)
            ps.append(p.astype(np.int64))
        if not vs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(vs), np.concatenate(ps)

    def _frames(self, ranges: dict[int, Any]) -> np.ndarray:
        """The frames mapped in the ranges (a sample of a whole space)."""
        pfns = [np.zeros(0, np.int64)]
        for pid, rs in ranges.items():
            _, ptes = self._present(pid, rs)
            present = (ptes & 1) == 1
            pfns.append(ptes[present] >> 12)
        out = np.unique(np.concatenate(pfns))
        out = out[out != ZERO_PFN]
        if _WHOLE in ranges.values() and len(out) > SAMPLE:
            out = out[np.linspace(0, len(out) - 1, SAMPLE).astype(np.int64)]
        return out

    def _rss_of(self, pid: int, ranges: Any) -> tuple[int, int] | None:
        t = self.k.tasks.get(pid)
        if t is None:
            return None
        _, ptes = self._present(pid, ranges)
        pf = ptes[(ptes & 1) == 1] >> 12
        return t.mm.rss - int((pf != ZERO_PFN).sum()), id(t.mm)

    def before(self, ev: Any) -> None:
        """Note the frames the event's ranges map now (those it may free
        or unmap) and each process's rss outside them."""
        ranges = self._ranges(ev)
        self._pfns = self._frames(ranges)
        self._rss = {pid: r for pid, rs in ranges.items()
                     if rs != _WHOLE and (r := self._rss_of(pid, rs)) is not None}
        st = self.k.stat
        self._stat = (st.pgscan, st.oom_kills)
        self.last_full = False

    def after(self, ev: Any, result: Any) -> None:
        """Check what the event could change; the full check every
        ``every`` events, after reclaim or an OOM kill."""
        self.n += 1
        k = self.k
        st = k.stat
        reclaimed = st.pgscan != self._stat[0]
        killed = st.oom_kills != self._stat[1]
        if ev[2] == "reclaim" or killed or self.n % self.every == 0:
            self.full()
            return
        self.last_full = False
        ranges = self._ranges(ev, result, after=True)
        core: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
        for pid, rs in ranges.items():
            t = k.tasks.get(pid)
            if t is None:
                continue
            self._check_vmas(t.mm, rs)
            if pid in self._rss and not reclaimed:
                old = self._rss[pid]
                cur = self._rss_of(pid, rs)
                if cur is not None and cur[1] == old[1] and cur[0] != old[0]:
                    _fail(f"pid {pid}: rss moved by {cur[0] - old[0]:+d} outside the range"
                          f" the {ev[2]} changed (rss {t.mm.rss})")
            # a call that splits, merges, moves or re-protects VMAs changes
            # what every page of those VMAs needs of its reverse map
            spans = _spans(t.mm, rs)
            if ev[2] in _RESHAPE:
                spans = _union(spans + [(v.vm_start >> PAGE_SHIFT, v.vm_end >> PAGE_SHIFT)
                                        for s_, e_ in spans
                                        for v in t.mm.vma_range(max(0, s_ - 1) << PAGE_SHIFT,
                                                                (e_ + 1) << PAGE_SHIFT)])
            pf, vp = self._check_ptes(t.mm, spans)
            inside = np.zeros(len(vp), bool)
            if not isinstance(rs, str):        # a list of ranges, not _WHOLE
                for s_, e_ in rs:
                    inside |= (vp >= s_) & (vp < e_)
            core.append((id(t.mm), pf, vp, inside))
        # every frame in the ranges, a sample of the others (whole address
        # spaces, the rest of reshaped VMAs)
        mine = [self._pfns] + [pf[ins] for _, pf, _, ins in core]
        rest = np.setdiff1d(np.concatenate([np.zeros(0, np.int64)]
                                           + [pf[~ins] for _, pf, _, ins in core]),
                            np.concatenate(mine))
        if len(rest) > SAMPLE:
            rest = rest[np.linspace(0, len(rest) - 1, SAMPLE).astype(np.int64)]
        pfns = np.union1d(np.concatenate(mine), rest)
        local: dict[int, set[tuple[int, int]]] = {}
        for mmid, pf, vp, _ in core:
            sel = np.isin(pf, pfns)
            for p, v in zip(pf[sel].tolist(), vp[sel].tolist()):
                local.setdefault(p, set()).add((mmid, v << PAGE_SHIFT))
        # what reclaim inside the event (kswapd, direct reclaim) did outside
        # the ranges waits for the next full check
        self._check_frames(pfns, local)

    # -- the parts ---------------------------------------------------------------------

    def _check_vmas(self, mm: Any, ranges: Any) -> None:
        if mm.map_count != len(mm.mmap):
            _fail(f"{mm!r}: map_count {mm.map_count} but {len(mm.mmap)} VMAs")
        if ranges == _WHOLE:
            vmas = list(mm.mmap)
        else:
            vmas = []
            for s, e in ranges:
                vmas += mm.vma_range(max(0, (s - 1)) << PAGE_SHIFT, (e + 1) << PAGE_SHIFT)
        seen: set[int] = set()
        for vma in vmas:
            if id(vma) in seen:
                continue
            seen.add(id(vma))
            if vma.vm_mm is not mm:
                _fail(f"{vma!r} is on {mm!r}'s list but belongs to {vma.vm_mm!r}")
            if vma.vm_start & 0xFFF or vma.vm_end & 0xFFF or vma.vm_start >= vma.vm_end:
                _fail(f"{vma!r}: bad bounds")
            i = mm.index_of(vma)
            if i + 1 < len(mm.mmap) and mm.mmap[i + 1].vm_start < vma.vm_end:
                _fail(f"{vma!r} overlaps or is out of order in {mm!r}")
            if vma.vm_file is not None and vma not in vma.vm_file.i_mmap:
                _fail(f"{vma!r} maps {vma.vm_file!r} but is not in its i_mmap")
            hook = getattr(self.k.ctx.scheme, "check_vma", None)
            if hook is not None:
                hook(vma)

    def _check_ptes(self, mm: Any, spans: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """No pte outside a VMA in the spans; each mapped page's index and
        list closure; swap ptes hold a used slot. Returns the frames mapped
        there (not the zero page) and their vpns."""
        ctx = self.k.ctx
        mem, scheme = ctx.mem, ctx.scheme
        pfs, vps = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for s, e in spans:
            vpns, ptes = mm.pgd.populated(s, e)
            if not len(vpns):
                continue
            ptes = ptes.astype(np.int64)
            for vma in mm.vma_range(s << PAGE_SHIFT, e << PAGE_SHIFT):
                vs, ve = vma.vm_start >> PAGE_SHIFT, vma.vm_end >> PAGE_SHIFT
                sel = (vpns >= vs) & (vpns < ve)
                present = sel & ((ptes & 1) == 1)
                pf, vp = ptes[present] >> 12, vpns[present]
                real = pf != ZERO_PFN
                pf, vp = pf[real], vp[real]
                pfs.append(pf)
                vps.append(vp)
                anon = (mem.mapping[pf] & 1) == 1
                if anon.any():
                    want = scheme.expected_index(vma, vp[anon])
                    bad = np.flatnonzero(mem.index[pf[anon]] != want)
                    if len(bad):
                        j = int(bad[0])
                        _fail(f"page index: pfn {int(pf[anon][j])} at "
                              f"{int(vp[anon][j]) << PAGE_SHIFT:#x} in {vma!r} has index "
                              f"{int(mem.index[pf[anon][j]]):#x}, expected {int(want[j]):#x}")
                    scheme.check_mapped(vma, pf[anon], vp[anon])
                if (~anon).any():
                    f = vma.vm_file
                    if f is None:
                        _fail(f"{vma!r} maps non-anonymous pfn {int(pf[~anon][0])} without a file")
                    idx = vma.vm_pgoff + (vp[~anon] - vs)
                    if (mem.mapping[pf[~anon]] != f.mapping_tag).any() or \
                            (mem.index[pf[~anon]] != idx).any():
                        _fail(f"{vma!r} maps a page that is not its file's page at that offset")
                swp = ptes[sel & ((ptes & 1) == 0)] >> 12
                if len(swp):
                    sm = ctx.swap.swap_map
                    if (swp >= len(sm)).any() or (sm[swp[swp < len(sm)]] == 0).any():
                        _fail(f"{vma!r}: a swap pte points at a free swap slot")
                vpns, ptes = vpns[~sel], ptes[~sel]
            if len(vpns):
                _fail(f"{mm!r}: pte at {int(vpns[0]) << PAGE_SHIFT:#x} outside any vma")
        return np.concatenate(pfs), np.concatenate(vps)

    def _check_frames(self, pfns: np.ndarray, local: dict[int, set[tuple[int, int]]]) -> None:
        """Each frame: the walk finds exactly its mappings (``local``: those
        in the event's ranges, among them); count is ptes + page cache +
        swap cache; a free frame is clean."""
        k = self.k
        ctx = k.ctx
        mem, scheme = ctx.mem, ctx.scheme
        alive = {id(t.mm) for t in k.tasks.values()}
        free = mem.count[pfns] == 0
        for pfn in pfns[free].tolist():
            if mem.mapcount[pfn] or mem.flags[pfn]:
                _fail(f"free pfn {pfn} has state left in it")
        with scheme.uncounted():
            for pfn in pfns[~free].tolist():
                found = scheme.rmap_walk(pfn)
                got = {(id(mm), a) for mm, a in found}
                mc = int(mem.mapcount[pfn])
                if len(got) != mc:
                    _fail(f"rmap walk of pfn {pfn} finds {len(got)} mappings, mapcount {mc}")
                missing = local.get(pfn, set()) - got
                if missing:
                    _fail(f"rmap walk of pfn {pfn}: missing "
                          f"{[hex(a) for _, a in sorted(missing)]}")
                for mm, _ in found:
                    if id(mm) not in alive:
                        _fail(f"rmap walk of pfn {pfn} finds {mm!r}, which has exited")
                refs = mc
                m = int(mem.mapping[pfn])
                if m and not m & 1:
                    f = ctx.file_of(m)
                    if f.page_cache.get(int(mem.index[pfn])) == pfn:
                        refs += 1
                if mem.flags[pfn] & PG_swapcache:
                    if ctx.swapper_space.get(int(mem.private[pfn])) != pfn:
                        _fail(f"pfn {pfn} has PG_swapcache but is not in the swap cache")
                    refs += 1
                if int(mem.count[pfn]) != refs:
                    _fail(f"pfn {pfn}: count {int(mem.count[pfn])} but {refs} references"
                          f" (ptes + page cache + swap cache)")
