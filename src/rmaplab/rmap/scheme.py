"""The interface between the core (mm) and a reverse-mapping scheme.

The core tells a scheme about VMA events (created, split, merged, moved,
copied at fork, unlinked) and page events (added, duplicated, removed), asks
it for decisions (may two anon_vmas merge), and asks it to walk a page's
mappings (``page_referenced``, ``try_to_unmap``). A scheme never edits VMAs
or page tables except through the pte it is asked to unmap.

The base class holds what every object-based scheme shares: mapcount
bookkeeping (``page_add_*_rmap`` / ``page_remove_rmap`` in mm/rmap.c), the
file walks through ``i_mmap`` and the per-candidate steps
``page_referenced_one`` / ``try_to_unmap_one`` (2.6.11 order).

The scheme receives a context ``ctx`` with ``mem`` (the frame table),
``stat`` (counters), ``config`` and ``swap`` (swap_duplicate); it never
imports the mm layer. ``rmaplab.rmap.protocols`` types what it receives
(``RmapContext``, ``Vma``, ``Mm``, ``FrameTable``) as structural protocols.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from rmaplab.asm.page import PAGE_SHIFT
from rmaplab.asm.pgtable import (_PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT,
                                 PTE_PFN_SHIFT, swp_entry_to_pte)
from rmaplab.errors import InvariantError
from rmaplab.include.mm import (PG_dirty, PG_referenced, PG_swapcache, VM_LOCKED, VM_MAYSHARE,
                                VM_RESERVED)
from rmaplab.rmap.protocols import Mm, RmapContext, Vma

SWAP_SUCCESS, SWAP_AGAIN, SWAP_FAIL = 0, 1, 2


def vma_ref(vma: Vma) -> dict[str, int]:
    """A VMA named as plain data, for drawings: its process, serial and range."""
    return {"pid": int(vma.vm_mm.owner), "vma": int(vma.serial), "start": int(vma.vm_start),
            "end": int(vma.vm_end)}


def vma_address(index: int, vma: Vma) -> int | None:
    """``vma_address``: where page ``index`` would sit in ``vma``, or None
    (-EFAULT) when that falls outside it."""
    addr = vma.vm_start + ((index - vma.vm_pgoff) << PAGE_SHIFT)
    if addr < vma.vm_start or addr >= vma.vm_end:
        return None
    return addr


class RmapScheme:
    """Base class of the schemes, and the contract every scheme keeps.

    **Identity.** ``name``: a class attribute of its own, unique in the
    registry. ``has_anon_vma``: the scheme sets ``vma.anon_vma`` (dumps show
    it, fork's ``vma_needs_copy`` trusts it); ``file_vmas_get_anon_vma``: so
    do private file VMAs; ``candidates_checked``: ``candidates`` reads and
    counts the ptes itself.

    **Must implement.**

    - ``_set_anon(pfns, vma, vpns, new)``: ``page_add_anon_rmap`` calls it
      for the pages mapped for the first time (mapcount already 1). Set
      ``mem.mapping`` to an odd value (PAGE_MAPPING_ANON) naming what the
      walk starts from, and ``mem.index`` to ``expected_index(vma, vpns)``;
      touch nothing else.
    - ``anon_candidates(pfn)``: yield ``(vma, address)`` for every VMA
      whose pte may map the anonymous page. Missing one that does is a bug
      (the completeness check scans every page table); an extra one only
      costs. A scheme that also finds file pages its own way overrides
      ``candidates(pfn)`` instead (pte_chain, none).

    **May override** (the defaults do nothing, or give 2.6.7's answer):
    the VMA events ``anon_vma_prepare`` (must leave ``vma`` ready for
    ``_set_anon``), ``vma_link``, ``vma_unlink``, ``vma_clone``,
    ``vma_import``, ``vma_absorb``, ``vma_fork``, ``vma_moved``,
    ``vma_unlink_anon``, ``mm_fork``, ``mm_exec``, ``mm_exit``; the merge
    decisions ``is_mergeable_anon_vma``, ``anon_vmas_compatible`` (vma_merge's
    three-way case) and ``anon_pgoff_matters``; the
    mremap hooks ``mremap_check`` (pages to copy before the move) and
    ``mremap_moved``; ``page_reuse``, ``swapin_must_copy``,
    ``expected_index``; the page events (call ``super()``: ``mapcount``
    stays the number of ptes); the walks ``page_referenced`` and
    ``try_to_unmap``; ``check`` (own structures), ``check_vma`` and
    ``check_mapped`` (list closure; the default walks ``anon_candidates``
    of every page); ``metadata_bytes``; ``describe``, ``describe_page``
    and ``walk_visits`` (read-only, for ``show``: ``describe()["kind"]``
    picks the drawing). A scheme writes only ``vma.anon_vma``,
    ``vma.rmap``, ``mm.rmap``, the frame fields above and its own objects,
    never a VMA's range or a pte outside ``try_to_unmap_one``.

    **Counters** (``ctx.stat``; only names in ``stat.COUNTERS`` are
    reported). The base walks count ``rmap_walks`` and their calls, a page
    table lock per candidate VMA with rss, and, unless
    ``candidates_checked``, ``rmap_pgtable_walks``, ``rmap_ptes_compared``
    and ``rmap_ptes_found``. The scheme's own walk must count one
    ``rmap_vmas_visited`` per VMA it looks at (``rmap_vmas_skipped`` when
    the page falls outside it; ``walk_vmas`` does both), ``rmap_mms_visited``
    per mm, ``find_vma_calls`` per lookup, one ``lock_*`` per lock taken,
    and its objects' ``*_alloc``/``*_free``. ``compare``'s walk work is
    ``rmap_vmas_visited + rmap_mms_visited + rmap_ptes_compared +
    find_vma_calls`` (+ ``pte_chain_slots_searched``); its locks are the
    ``lock_*`` counters.

    **Memory model.** ``metadata_bytes()`` returns ``{"i386": B,
    "x86_64": B}``: the rmap metadata alive now, from real structure sizes
    (2004 i386, today's x86_64): the scheme's objects, plus every field it
    adds to ``vm_area_struct`` times ``nr_vmas()`` and to ``struct page``
    times ``mem.nr_used``. ``compare`` samples it and reports the peak.

    **Context.** ``ctx`` gives ``mem`` (the frame arrays), ``stat``,
    ``config``, ``swap``, ``scatter_add``, ``file_of(mapping)`` and
    ``find_mergeable_anon_vma(vma)``; a scheme never imports ``mm``.
    """

    name = "base"
    #: the scheme gives VMAs an ``anon_vma`` object that state dumps show
    has_anon_vma = False
    #: ... private file VMAs included (they acquire COW pages); False for
    #: pure_anon_vma, whose file VMAs never get one
    file_vmas_get_anon_vma = True
    #: ``candidates`` already compared the pte (pte_chain, anonmm, none), so
    #: the per-candidate check does not count it a second time
    candidates_checked = False

    def __init__(self, ctx: RmapContext) -> None:
        self._scatter_add = ctx.scatter_add
        self.ctx = ctx
        self.mem = ctx.mem
        self.st = ctx.stat
        self.config = ctx.config

    # -- VMA events ----------------------------------------------------------

    def anon_vma_prepare(self, vma: Vma) -> None:
        """Before the first anonymous page goes into ``vma``."""

    def vma_link(self, vma: Vma) -> None:
        """A VMA was inserted (new mapping, split piece, mremap copy)."""

    def vma_unlink(self, vma: Vma) -> None:
        """A VMA is going away (``remove_vm_struct``)."""

    def vma_absorb(self, vma: Vma, gone: Vma) -> None:
        """``gone`` was merged into ``vma`` (``__anon_vma_merge``)."""

    def vma_clone(self, new: Vma, src: Vma) -> None:
        """``new`` was just made as a copy of ``src`` (split_vma, copy_vma
        for mremap), before it is linked (anon_vma_clone's moment)."""

    def vma_import(self, importer: Vma, anon_vma: Any, exporter: Vma | None = None) -> None:
        """``vma_adjust`` hands pages of ``exporter`` to ``importer``, which
        must be able to find them: give it ``anon_vma`` if it has none
        (dup_anon_vma)."""

    def vma_unlink_anon(self, vma: Vma) -> None:
        """``vma`` stays mapped but every anonymous page left it
        (MREMAP_DONTUNMAP moved them all): ``unlink_anon_vmas``, and the VMA
        has no anon_vma until its next fault."""
        self.vma_unlink(vma)
        vma.anon_vma = None

    def vma_fork(self, child: Vma, parent: Vma) -> None:
        """``child`` is the fork copy of ``parent`` (dup_mmap)."""

    def vma_moved(self, new: Vma, old: Vma) -> None:
        """mremap made ``new`` the copy of (part of) ``old`` (copy_vma)."""

    def mm_fork(self, child_mm: Mm, parent_mm: Mm) -> None:
        """A new mm was forked from ``parent_mm``."""

    def mm_exec(self, mm: Mm) -> None:
        """A new mm was created by exec or spawn."""

    def mm_exit(self, mm: Mm) -> None:
        """``mm`` is going away (after its VMAs were unlinked)."""

    def is_mergeable_anon_vma(self, av_src: Any, av_dst: Any, dst: Vma | None = None,
                              src: Vma | None = None) -> bool:
        """May a range whose pages belong to ``av_src`` (from VMA ``src``, or
        None for a new mapping) join VMA ``dst`` whose anon_vma is
        ``av_dst``?"""
        return True

    def anon_vmas_compatible(self, prev: Vma, nxt: Vma) -> bool:
        """The three-way test of ``vma_merge`` (case 1): may ``prev`` and
        ``nxt``, which the range between them joins, become one VMA? The
        kernel asks ``is_mergeable_anon_vma(prev->anon_vma, next->anon_vma,
        NULL)``: NULL on one side, or the same anon_vma."""
        a, b = prev.anon_vma, nxt.anon_vma
        return a is None or b is None or a is b

    def anon_pgoff_matters(self) -> bool:
        """Must anonymous VMAs have contiguous pgoff to merge (rmap 39)?"""
        return True

    def mremap_check(self, vma: Vma, pfns: np.ndarray, vpns: np.ndarray) -> np.ndarray:
        """Before mremap moves these present pages (anonymous and file) of
        ``vma``: a mask of those that must be copied first (anonmm's
        forced COW). Default: none."""
        return np.zeros(len(pfns), dtype=bool)

    def mremap_moved(self, old: Vma, new: Vma, pfns: np.ndarray, old_vpns: np.ndarray,
                     new_vpns: np.ndarray) -> None:
        """After ``move_page_tables`` moved these present pages from ``old``
        to ``new`` (pte_chain rewrites each chain entry; anonmm rewrites
        ``index``). Default: nothing, the "Magic"."""

    def expected_index(self, vma: Vma, vpns: np.ndarray) -> np.ndarray:
        """``page->index`` an anonymous page mapped at ``vpns`` of ``vma``
        must have: the linear index (anonmm: the virtual page number)."""
        return vma.vm_pgoff + (vpns - (vma.vm_start >> PAGE_SHIFT))

    def page_reuse(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray) -> None:
        """do_wp_page reused these exclusive pages in place (anon_vma_chain:
        ``page_move_anon_rmap``)."""

    def swapin_must_copy(self, pfn: int, vma: Vma, vpn: int) -> bool:
        """do_swap_page found ``pfn`` in the swap cache: must this mm get a
        private copy instead (anonmm after an mremap of shared pages)?"""
        return False

    def anon_vma_id(self, vma: Vma) -> int | None:
        return None

    # -- page events (vectorised) --------------------------------------------

    def page_add_anon_rmap(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray,
                           new: bool = True) -> None:
        """``page_add_anon_rmap``: map anonymous pages at ``vpns`` of ``vma``.
        A page mapped for the first time gets its mapping and index.
        ``new``: freshly allocated pages (exclusive to this VMA), as opposed
        to a page coming back from the swap cache."""
        mc = self.mem.mapcount
        mc[pfns] += 1
        first = mc[pfns] == 1
        if first.all():
            self._set_anon(pfns, vma, vpns, new)
        elif first.any():
            self._set_anon(pfns[first], vma, vpns[first], new)

    def _set_anon(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray, new: bool) -> None:
        raise NotImplementedError

    def page_add_file_rmap(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray) -> None:
        """``page_add_file_rmap``: only the mapcount; i_mmap finds the rest."""
        self._scatter_add(self.mem.mapcount, pfns, 1)

    def page_dup_rmap(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray) -> None:
        """``page_dup_rmap`` (fork): the child maps the same pages."""
        self._scatter_add(self.mem.mapcount, pfns, 1)

    def page_remove_rmap(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray) -> None:
        """``page_remove_rmap``. On the last unmap of an anonymous page 2.6.7
        clears ``page->mapping`` (2.6.9+ keeps it: ``keep_anon_mapping``)."""
        mem = self.mem
        self._scatter_add(mem.mapcount, pfns, -1)
        if not self.config.keep_anon_mapping:
            gone = pfns[(mem.mapcount[pfns] == 0) & ((mem.mapping[pfns] & 1) == 1)]
            if len(gone):
                mem.mapping[gone] = 0

    def page_remove_rmap_one(self, pfn: int, vma: Vma, vpn: int) -> None:
        """``page_remove_rmap`` of one page (the reclaim path)."""
        mem = self.mem
        mem.mapcount[pfn] -= 1
        if not mem.mapcount[pfn] and mem.mapping[pfn] & 1 and not self.config.keep_anon_mapping:
            mem.mapping[pfn] = 0

    # -- walks -----------------------------------------------------------------

    def anon_candidates(self, pfn: int) -> Iterator[tuple[Vma, int]]:
        """(vma, address) pairs where an anonymous page may be mapped; the
        scheme counts its own visiting cost."""
        raise NotImplementedError

    def walk_vmas(self, vmas: Iterable[Vma], index: int) -> Iterator[tuple[Vma, int]]:
        """Visit ``vmas`` in order; yield (vma, address) where ``vma_address``
        puts page ``index`` inside the VMA, counting visited and skipped."""
        st = self.st
        for vma in vmas:
            st.rmap_vmas_visited += 1
            addr = vma_address(index, vma)
            if addr is None:
                st.rmap_vmas_skipped += 1
                continue
            yield vma, addr

    def file_candidates(self, pfn: int) -> Iterator[tuple[Vma, int]]:
        """Every VMA of the file covering the page (``page_referenced_file``)."""
        mem, st = self.mem, self.st
        f = self.ctx.file_of(int(mem.mapping[pfn]))
        index = int(mem.index[pfn])
        st.lock_i_mmap += 1
        for vma in f.i_mmap.query(index):
            st.rmap_vmas_visited += 1
            yield vma, vma.vm_start + ((index - vma.vm_pgoff) << PAGE_SHIFT)

    def candidates(self, pfn: int) -> Iterator[tuple[Vma, int]]:
        m = int(self.mem.mapping[pfn])
        if not m:
            return iter(())
        if m & 1:
            return self.anon_candidates(pfn)
        return self.file_candidates(pfn)

    def _pte(self, vma: Vma, addr: int, pfn: int) -> int:
        """Walk ``vma``'s page tables to ``addr``; the pte if it maps ``pfn``."""
        pte = vma.vm_mm.pgd.get(addr >> PAGE_SHIFT)
        hit = pte & _PAGE_PRESENT and pte >> PTE_PFN_SHIFT == pfn
        if not self.candidates_checked:
            st = self.st
            st.rmap_pgtable_walks += 1
            st.rmap_ptes_compared += 1
            if hit:
                st.rmap_ptes_found += 1
        return pte if hit else 0

    def rmap_walk(self, pfn: int) -> list[tuple[Mm, int]]:
        """Every (mm, address) whose pte maps ``pfn``, found through the
        scheme (used by the completeness check; counted like any walk)."""
        self.st.rmap_walks += 1
        out = []
        for vma, addr in self.candidates(pfn):
            if self._pte(vma, addr, pfn):
                out.append((vma.vm_mm, addr))
        return out

    def page_referenced(self, pfn: int) -> int:
        """``page_referenced`` (2.6.11 without the swap token): count and
        clear PG_referenced and the young bits of the ptes mapping ``pfn``."""
        mem, st = self.mem, self.st
        st.page_referenced_calls += 1
        st.rmap_walks += 1
        referenced = 0
        if mem.flags[pfn] & PG_referenced:
            mem.flags[pfn] &= ~np.uint32(PG_referenced)
            referenced += 1
        left = int(mem.mapcount[pfn])
        if not left or not mem.mapping[pfn]:
            return referenced
        anon = bool(mem.mapping[pfn] & 1)
        for vma, addr in self.candidates(pfn):
            if not anon and (vma.vm_flags & (VM_LOCKED | VM_MAYSHARE)) == (VM_LOCKED | VM_MAYSHARE):
                referenced += 1
                break
            if not vma.vm_mm.rss:
                continue
            self._lock_page_table()
            pte = self._pte(vma, addr, pfn)
            if not pte:
                continue
            if pte & _PAGE_ACCESSED:
                vma.vm_mm.pgd.set(addr >> PAGE_SHIFT, pte & ~_PAGE_ACCESSED)
                referenced += 1
            left -= 1
            if not left:
                break
        return referenced

    def _lock_page_table(self) -> None:
        if self.config.trylock_walks:
            self.st.trylock_page_table += 1
        else:
            self.st.lock_page_table += 1

    def try_to_unmap(self, pfn: int) -> int:
        """``try_to_unmap``: unmap ``pfn`` from every pte; an anonymous page
        must already be in the swap cache. SWAP_SUCCESS when it ends
        unmapped, SWAP_FAIL on a locked VMA or a young pte."""
        mem, st = self.mem, self.st
        st.try_to_unmap_calls += 1
        st.rmap_walks += 1
        ret = SWAP_AGAIN
        for vma, addr in self.candidates(pfn):
            ret = self.try_to_unmap_one(pfn, vma, addr)
            if ret == SWAP_FAIL or not mem.mapcount[pfn]:
                break
        if not mem.mapcount[pfn]:
            return SWAP_SUCCESS
        if ret == SWAP_FAIL:
            st.try_to_unmap_fail += 1
        else:
            st.try_to_unmap_again += 1
        return ret

    def try_to_unmap_one(self, pfn: int, vma: Vma, addr: int) -> int:
        mem = self.mem
        mm = vma.vm_mm
        if not mm.rss:
            return SWAP_AGAIN
        self._lock_page_table()
        pte = self._pte(vma, addr, pfn)
        if not pte:
            return SWAP_AGAIN
        vpn = addr >> PAGE_SHIFT
        if vma.vm_flags & (VM_LOCKED | VM_RESERVED):
            return SWAP_FAIL
        if pte & _PAGE_ACCESSED:
            mm.pgd.set(vpn, pte & ~_PAGE_ACCESSED)
            return SWAP_FAIL
        anon = bool(mem.mapping[pfn] & 1)
        if pte & _PAGE_DIRTY:
            mem.flags[pfn] |= np.uint32(PG_dirty)
        if anon:
            if not mem.flags[pfn] & PG_swapcache:
                raise InvariantError(f"try_to_unmap of anonymous pfn {pfn} not in swap cache")
            entry = int(mem.private[pfn])
            self.ctx.swap.swap_duplicate(entry)
            mm.pgd.set(vpn, swp_entry_to_pte(entry))
            mm.anon_rss -= 1
        else:
            mm.pgd.set(vpn, 0)
        mm.rss -= 1
        self.page_remove_rmap_one(pfn, vma, vpn)
        mem.count[pfn] -= 1
        return SWAP_SUCCESS

    # -- description (read-only, for drawings) ----------------------------------

    def describe(self, limit: int = 64) -> dict[str, Any]:
        """The scheme's structures as plain data (ids, counts, ``vma_ref``
        dicts), for drawing. Lists are cut to ``limit`` entries; the
        ``nr_*`` fields give the full counts. Changes nothing."""
        return {"scheme": self.name, "metadata": self.metadata_bytes()}

    def _objects_pages(self) -> dict[int, int]:
        """Frames per anonymous ``page->mapping`` object id (anon_vma or
        anonmm): how many pages point at each."""
        m = self.mem.mapping
        ids, n = np.unique(m[(m & 1) == 1] >> 1, return_counts=True)
        return dict(zip(ids.tolist(), n.tolist()))

    def describe_page(self, pfn: int) -> dict[str, Any]:
        """What ``struct page`` ``pfn`` holds for the reverse map:
        ``mapping``, ``index``, ``mapcount`` and the object they name
        (schemes add their own fields). Changes nothing."""
        mem = self.mem
        m = int(mem.mapping[pfn])
        out: dict[str, Any] = {"pfn": int(pfn), "mapping": m, "index": int(mem.index[pfn]),
                               "mapcount": int(mem.mapcount[pfn]),
                               "kind": "anon" if m & 1 else "file" if m else "none"}
        if m and not m & 1:
            f = self.ctx.file_of(m)
            out["file"] = f.name
            out["i_mmap"] = sum(1 for _ in f.i_mmap.query(int(mem.index[pfn])))
        return out

    def walk_visits(self, pfn: int, limit: int = 64) -> list[dict[str, Any]]:
        """The places an rmap walk from ``pfn`` looks, in walk order: each a
        dict with ``vma`` (a ``vma_ref``, or None), ``pid``, ``addr`` (None
        when the VMA cannot hold the page) and ``found`` (its pte maps the
        page). Cut to ``limit`` entries. Counts nothing, changes nothing.
        The default follows ``candidates``; schemes whose walk also looks at
        places that yield nothing override it."""
        out: list[dict[str, Any]] = []
        with self.uncounted():
            for vma, addr in self.candidates(pfn):
                out.append(self._visit(vma, addr, pfn))
                if len(out) >= limit:
                    break
        return out

    def _visit(self, vma: Vma, addr: int | None, pfn: int, note: str = "") -> dict[str, Any]:
        found = False
        if addr is not None:
            pte = vma.vm_mm.pgd.get(addr >> PAGE_SHIFT)
            found = bool(pte & _PAGE_PRESENT and pte >> PTE_PFN_SHIFT == pfn)
        d: dict[str, Any] = {"vma": vma_ref(vma), "pid": int(vma.vm_mm.owner), "addr": addr,
                             "found": found}
        if note:
            d["note"] = note
        return d

    def walk_cost(self, pfn: int) -> tuple[list[tuple[int, int]], dict[str, int]]:
        """Run ``rmap_walk`` on ``pfn`` without touching the model's
        counters: the (pid, address) pairs found and the counters the walk
        would have added (only those it changed)."""
        with self.uncounted():
            found = self.rmap_walk(pfn)
            cost = {k: v for k, v in self.st.as_dict().items() if v}
        return [(int(mm.owner), int(a)) for mm, a in found], cost

    # -- checking --------------------------------------------------------------

    @contextmanager
    def uncounted(self) -> Iterator[None]:
        """Walk without adding to the counters (for the checkers)."""
        saved = self.st
        self.st = type(saved)()
        try:
            yield
        finally:
            self.st = saved

    def check(self) -> None:
        """Raise InvariantError if the scheme's own structures are broken."""

    def check_mapped(self, vma: Vma, pfns: np.ndarray, vpns: np.ndarray) -> None:
        """List closure for anonymous ``pfns`` mapped at ``vpns`` in ``vma``:
        a walk from each page can reach ``vma``."""
        for pfn in pfns.tolist():
            if not any(v is vma for v, _ in self.anon_candidates(pfn)):
                raise InvariantError(f"pfn {pfn} is mapped in {vma!r} but its rmap cannot reach it")

    def metadata_bytes(self) -> dict[str, int]:
        """Bytes of rmap metadata now (i386 2004 and x86_64)."""
        return {"i386": 0, "x86_64": 0}

    def nr_vmas(self) -> int:
        """VMAs alive in the whole system (the fields a scheme adds to
        vm_area_struct cost their bytes in every one of them)."""
        st = self.ctx.stat
        return st.vma_alloc - st.vma_free


class PteLevelScheme(RmapScheme):
    """A scheme from before rmap 39 that finds anonymous pages by their ptes
    (pte_chain) or by scanning (none): ``page->mapping`` holds only the
    PAGE_MAPPING_ANON bit, ``page->index`` is unused (always 0), and
    anonymous VMAs merge on flags alone."""

    #: ``page->mapping`` of an anonymous page: the PAGE_MAPPING_ANON bit alone
    ANON_MAPPING = 1

    def _set_anon(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray, new: bool) -> None:
        self.mem.mapping[pfns] = self.ANON_MAPPING
        self.mem.index[pfns] = 0

    def expected_index(self, vma: Vma, vpns: np.ndarray) -> np.ndarray:
        """``page->index`` of an anonymous page is unused: always 0."""
        return np.zeros(len(vpns), dtype=np.int64)

    def anon_pgoff_matters(self) -> bool:
        return False
