"""Faults, zapping and fork's pte copy (mm/memory.c, 2.6.11).

Everything here works on runs of ptes as arrays; each pte, mapcount,
count and rmap field ends exactly as the per-page kernel code leaves it.

Page references (``page->_count``) in the model's steady state: one per pte
that maps the page, one for the page cache, one for the swap cache.
ZERO_PAGE is PG_reserved and never counted.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

import numpy as np

from rmaplab.asm.page import PAGE_SHIFT, PTRS_PER_PTE
from rmaplab.asm.pgtable import (_PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW,
                                 PTE_PFN_SHIFT)
from rmaplab.errors import InvariantError
from rmaplab.mm.filemap import File
from rmaplab.mm.mm_types import VM_SHARED, VM_WRITE, VmAreaStruct, is_cow_mapping
from rmaplab.mm.page import (PG_active, PG_dirty, PG_lru, PG_referenced, PG_reserved,
                             PG_swapcache, ZERO_PFN, scatter_add, unique_pfns)
from rmaplab.mm.swap_state import delete_from_swap_cache, free_swap_and_cache

_PRESENT = np.int64(_PAGE_PRESENT)
_RW = np.int64(_PAGE_RW)
_YOUNG = np.int64(_PAGE_ACCESSED)
_DIRTY = np.int64(_PAGE_DIRTY)
_ZERO_PTE = np.int64((ZERO_PFN << PTE_PFN_SHIFT) | _PAGE_PRESENT | _PAGE_ACCESSED)
_NEW_ANON = np.uint32(PG_lru | PG_active | PG_referenced)


def _pte_pfn(ptes: np.ndarray) -> np.ndarray:
    return ptes >> PTE_PFN_SHIFT


def _mk_ptes(pfns: np.ndarray, bits: int) -> np.ndarray:
    return (pfns << PTE_PFN_SHIFT) | np.int64(bits)


# -- references --------------------------------------------------------------

def put_pages(ctx: Any, pfns: np.ndarray) -> None:
    """``page_cache_release`` of each pfn (repeats allowed); frames whose
    count reaches zero are freed."""
    if not len(pfns):
        return
    mem = ctx.mem
    scatter_add(mem.count, pfns, -1)
    dead = pfns[mem.count[pfns] == 0]
    if len(dead):
        mem.free_pages(unique_pfns(dead, mem.capacity))


# -- the page cache (mm/filemap.c) ---------------------------------------------

def find_or_read_pages(ctx: Any, f: File, indices: np.ndarray) -> np.ndarray:
    """``find_get_page`` or ``page_cache_read`` for each index: the cached
    pfns, reading missing pages in with their on-disk content (the page
    cache keeps one reference)."""
    pc = f.page_cache
    pfns = np.array([pc.get(int(i)) for i in indices], dtype=np.int64)
    missing = np.flatnonzero(pfns == 0)
    if len(missing):
        mem = ctx.mem
        new = ctx.alloc_pages(len(missing))
        idx = indices[missing]
        mem.flags[new] = PG_lru
        mem.lru_add(new)
        mem.count[new] = 1
        mem.mapping[new] = f.mapping_tag
        mem.index[new] = idx
        mem.token[new] = [f.disk_token(int(i)) for i in idx]
        for i, p in zip(idx.tolist(), new.tolist()):
            pc.set(i, p)
        f.nrpages += len(new)
        pfns[missing] = new
        ctx.stat.fault_file += len(new)
    return pfns


def remove_from_page_cache(ctx: Any, pfn: int) -> None:
    """Drop a clean or written-back page from its file's cache."""
    mem = ctx.mem
    f = ctx.file_of(int(mem.mapping[pfn]))
    f.page_cache.set(int(mem.index[pfn]), 0)
    f.nrpages -= 1


# -- zap (unmap_vmas / zap_pte_range) ------------------------------------------

def _free_exclusive_swap_pages(ctx: Any, pfns: np.ndarray) -> None:
    """``free_page_and_swap_cache`` → ``remove_exclusive_swap_page``: a
    swap-cache page losing its last user (count 2: the cache and this pte)
    whose slot nobody else holds leaves the swap cache with it."""
    mem = ctx.mem
    for pfn in pfns.tolist():
        if mem.count[pfn] == 2 and ctx.swap.swap_map[mem.private[pfn]] == 1:
            delete_from_swap_cache(ctx, pfn)


def zap_page_range(ctx: Any, vma: VmAreaStruct, start: int, end: int) -> int:
    """Unmap ``[start, end)`` (addresses) of ``vma``: drop rmap and page
    references, free swap entries, clear the ptes. Returns ptes zapped."""
    mm = vma.vm_mm
    s, e = start >> PAGE_SHIFT, end >> PAGE_SHIFT
    vpns, ptes = mm.pgd.populated(s, e)
    if not len(vpns):
        return 0
    mem, scheme = ctx.mem, ctx.scheme
    present = (ptes & _PRESENT) != 0
    pp = ptes[present]
    pfns = _pte_pfn(pp)
    real = pfns != ZERO_PFN
    if not real.all():
        pfns, pp, pvpns = pfns[real], pp[real], vpns[present][real]
    else:
        pvpns = vpns[present]
    if len(pfns):
        dirty = pfns[(pp & _DIRTY) != 0]
        if len(dirty):
            mem.flags[dirty] |= np.uint32(PG_dirty)
        anon = (mem.mapping[pfns] & 1) == 1
        n_anon = int(anon.sum())
        scheme.page_remove_rmap(pfns, vma, pvpns)
        sc = pfns[(mem.flags[pfns] & PG_swapcache) != 0]
        if len(sc):
            _free_exclusive_swap_pages(ctx, sc)
        put_pages(ctx, pfns)
        mm.rss -= len(pfns)
        mm.anon_rss -= n_anon
    swaps = ptes[~present]
    if len(swaps):
        for entry in (swaps >> PTE_PFN_SHIFT).tolist():
            free_swap_and_cache(ctx, entry)
    for t, lo, hi, _ in mm.pgd.runs(s, e):
        t[lo:hi] = 0
    return len(vpns)


# -- fork (copy_page_range / copy_one_pte) ---------------------------------------

def copy_page_range(ctx: Any, dst: VmAreaStruct, src: VmAreaStruct) -> int:
    """Copy ``src``'s ptes into the child ``dst``: COW mappings are
    write-protected in both, the child's ptes are old (and clean if
    shared), each page gains a reference and ``page_dup_rmap``, each swap
    entry a ``swap_duplicate``."""
    s, e = src.vm_start >> PAGE_SHIFT, src.vm_end >> PAGE_SHIFT
    vpns, ptes = src.vm_mm.pgd.populated(s, e)
    if not len(vpns):
        return 0
    mem = ctx.mem
    cow = is_cow_mapping(src.vm_flags)
    present = (ptes & _PRESENT) != 0
    if cow:
        wp = present & ((ptes & _RW) != 0)
        if wp.any():
            ptes = np.where(wp, ptes & ~_RW, ptes)
            src.vm_mm.pgd.scatter_points(vpns[wp], ptes[wp])
    child = np.where(present, ptes & ~_YOUNG, ptes)
    if src.vm_flags & VM_SHARED:
        child = np.where(present, child & ~_DIRTY, child)
    pfns = _pte_pfn(ptes[present])
    real = pfns != ZERO_PFN
    rp = pfns[real]
    if len(rp):
        scatter_add(mem.count, rp, 1)
        ctx.scheme.page_dup_rmap(rp, dst, vpns[present][real])
        dst.vm_mm.rss += len(rp)
        dst.vm_mm.anon_rss += int(((mem.mapping[rp] & 1) == 1).sum())
    if not present.all():
        ctx.swap.swap_duplicate_many(ptes[~present] >> PTE_PFN_SHIFT)
    dst.vm_mm.pgd.scatter_points(vpns, child)
    ctx.stat.fork_ptes += len(vpns)
    return len(vpns)


# -- faults --------------------------------------------------------------------

def _new_anon_pages(ctx: Any, vma: VmAreaStruct, vpns: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Allocate, fill and rmap new anonymous pages for ``vpns`` (the common
    tail of do_anonymous_page, do_wp_page's copy and do_no_page's early
    COW); returns their writable, dirty, young ptes."""
    ctx.scheme.anon_vma_prepare(vma)
    return new_anon_ptes(ctx, vma, vpns, tokens, ctx.alloc_pages(len(vpns)))


def new_anon_ptes(ctx: Any, vma: VmAreaStruct, vpns: np.ndarray, tokens: np.ndarray,
                  pfns: np.ndarray) -> np.ndarray:
    """Fill allocated frames as new anonymous pages of ``vma`` and rmap them."""
    mem = ctx.mem
    mem.flags[pfns] = _NEW_ANON
    mem.lru_add(pfns)
    mem.count[pfns] = 1
    mem.token[pfns] = tokens
    ctx.scheme.page_add_anon_rmap(pfns, vma, vpns)
    vma.vm_mm.rss += len(pfns)
    vma.vm_mm.anon_rss += len(pfns)
    return _mk_ptes(pfns, _PAGE_PRESENT | _PAGE_ACCESSED | _PAGE_DIRTY | _maybe_mkwrite(vma))


def _maybe_mkwrite(vma: VmAreaStruct) -> int:
    """``maybe_mkwrite``: a write fault makes the pte writable only if the
    VMA allows writing (a forced fault, e.g. anonmm's mremap copy of a
    read-only page, does not)."""
    return _PAGE_RW if vma.vm_flags & VM_WRITE else 0


def _file_indices(vma: VmAreaStruct, vpns: np.ndarray) -> np.ndarray:
    return vma.vm_pgoff + (vpns - (vma.vm_start >> PAGE_SHIFT))


def fault_range(ctx: Any, vma: VmAreaStruct, s: int, e: int, write: bool,
                token: int | None) -> np.ndarray:
    """The CPU accessing pages ``[s, e)`` (vpns) of ``vma``, which allows
    the access: faults where the ptes demand (``handle_mm_fault`` →
    do_anonymous_page / do_no_page / do_wp_page / do_swap_page), then the
    access itself. A write stores ``token`` in each page; ``token=None``
    faults for write without changing contents (get_user_pages).

    Returns the content token of each page after the access. The range
    goes in chunks: each first checks that its page tables and frames fit
    (``guard``) and, with a memory limit, reserves the frames it may need
    (two per page at most: a page-cache read plus a copy), so reclaim and
    the OOM killer run between chunks, never inside one.
    """
    limited = ctx.mem.totalram is not None
    step = max(1, (ctx.mem.totalram - ctx.zone.pages_min) // 8) if limited else 1 << 18
    out = []
    while s < e:
        c = min(e - s, step)
        ctx.guard(c, vma.vm_mm)
        if limited:
            ctx.reserve(2 * c, vma.vm_mm)
        out.append(_fault_chunk(ctx, vma, s, s + c, write, token))
        if limited:
            ctx.kswapd()
        s += c
    return np.concatenate(out) if len(out) != 1 else out[0]


def _fault_chunk(ctx: Any, vma: VmAreaStruct, s: int, e: int, write: bool,
                 token: int | None) -> np.ndarray:
    mm = vma.vm_mm
    pgd = mm.pgd
    ptes = pgd.gather(s, e)
    swap = np.flatnonzero((ptes != 0) & ((ptes & _PRESENT) == 0))
    if len(swap):
        for i in swap.tolist():
            do_swap_page(ctx, vma, s + i, int(ptes[i]), write)
        ptes = pgd.gather(s, e)
    vpns = np.arange(s, e, dtype=np.int64)
    mem, st = ctx.mem, ctx.stat
    present = (ptes & _PRESENT) != 0
    none = ~present
    shared = bool(vma.vm_flags & VM_SHARED)
    f = vma.vm_file
    if not write:
        if none.any():
            nv = vpns[none]
            if f is None:
                ptes[none] = _ZERO_PTE
                st.fault_zero_page += len(nv)
            else:
                wbit = _PAGE_RW if (shared and vma.vm_flags & VM_WRITE) else 0
                ptes[none] = _map_file_pages(ctx, vma, f, nv, wbit)
                if ctx.config.fault_around_pages > 1:
                    do_fault_around(ctx, vma, f, nv, s, e, wbit)
        ptes |= _YOUNG
        pgd.scatter(s, ptes)
        return mem.token[_pte_pfn(ptes)]
    # -- write ----------------------------------------------------------------
    if shared:
        if none.any():
            ptes[none] = _map_file_pages(ctx, vma, f, vpns[none], _PAGE_RW)
        ptes |= _RW | _YOUNG | _DIRTY
        pfns = _pte_pfn(ptes)
        if token is not None:
            mem.token[pfns] = token
        pgd.scatter(s, ptes)
        return mem.token[pfns]
    writable = present & ((ptes & _RW) != 0)
    ro = present & ~writable
    if ro.any():
        ptes[ro] = do_wp_page(ctx, vma, vpns[ro], ptes[ro], token)
    if none.any():
        nv = vpns[none]
        if f is None:
            st.fault_anon += len(nv)
            tokens = np.full(len(nv), 0 if token is None else token, dtype=np.int64)
        else:
            # do_no_page, write to a private file mapping: early COW.
            cache = find_or_read_pages(ctx, f, _file_indices(vma, nv))
            tokens = mem.token[cache] if token is None else np.full(len(nv), token, np.int64)
            st.fault_early_cow += len(nv)
            st.pages_copied += len(nv)
        ptes[none] = _new_anon_pages(ctx, vma, nv, tokens)
    if writable.any():
        ptes[writable] |= _YOUNG | _DIRTY
    pfns = _pte_pfn(ptes)
    if token is not None:
        mem.token[pfns] = token
    pgd.scatter(s, ptes)
    return mem.token[pfns]


def do_fault_around(ctx: Any, vma: VmAreaStruct, f: File, faulted: np.ndarray, s: int, e: int,
                    wbit: int) -> None:
    """``do_fault_around`` → ``filemap_map_pages`` for the read faults at
    ``faulted`` (vpns in ``[s, e)``, which the caller maps). The CPU goes
    page by page: a page still without a pte faults, and its window, from
    the largest of (the page rounded down to ``fault_around_pages``, the
    VMA start, the page table's start) for ``fault_around_pages`` pages,
    clipped to the VMA end, the page table's end and EOF, gets its empty
    ptes filled from the page cache, not young. Pages of windows outside
    ``[s, e)`` are mapped here.

    A window cut to a single page maps nothing (observed on 6.18, where it
    shows when the faulting page lies beyond EOF).

    The model's page cache of a regular file counts as warm (a window page
    not yet cached is read in, as readahead of the first fault would have
    done; on a cold file Linux maps only the faulting page the first time);
    shmem maps only pages its object already holds, besides the faulting
    one."""
    nr = ctx.config.fault_around_pages
    vstart, vend = vma.vm_start >> PAGE_SHIFT, vma.vm_end >> PAGE_SHIFT
    eof = vstart + f.size_pages - vma.vm_pgoff
    pgd = vma.vm_mm.pgd
    pc = f.page_cache
    fv = faulted.tolist()
    extra: dict[int, None] = {}
    j = 0
    while j < len(fv):
        v = fv[j]
        ws = max(v - v % nr, vstart)
        we = min(ws + nr, vend, (v | (PTRS_PER_PTE - 1)) + 1, eof)
        cached = None
        if f.shmem:
            base = vma.vm_pgoff - vstart
            cached = {p for p in range(ws, we) if p == v or pc.get(p + base)}
        # observed on 6.18: a window that EOF cuts to a single page maps
        # nothing (only visible when the faulting page lies beyond EOF)
        if (ws < s or we > e) and we - ws > 1:
            for p in range(ws, we):
                if (p < s or p >= e) and (cached is None or p in cached) and not pgd.get(p):
                    extra[p] = None
        # the next page that faults: the first one this window left empty
        j = bisect_left(fv, we, j + 1) if cached is None else j + 1
        while cached is not None and j < len(fv) and fv[j] in cached:
            j += 1
    if extra:
        cand = np.fromiter(extra, dtype=np.int64, count=len(extra))
        pgd.scatter_points(cand, _map_file_pages(ctx, vma, f, cand, wbit) & ~_YOUNG)
        ctx.stat.fault_around += len(cand)


def fault_sigbus(ctx: Any, vma: VmAreaStruct, vpn: int, write: bool) -> None:
    """What a fault that ends in SIGBUS (a file page beyond EOF) still
    does first. A read runs ``do_fault_around`` before ``filemap_fault``
    says SIGBUS, so the window's pages below EOF get mapped; a write to a
    private mapping (``do_cow_fault``) prepares the anon_vma before it asks
    for the page, under ``cow_fault_anon_vma_first`` (2.6's do_no_page
    asked first). Both seen on 6.18 by ``rmaplab conform --random``."""
    f = vma.vm_file
    if f is None or vma.vm_mm.pgd.get(vpn) or vma.vm_pgoff + vpn - (vma.vm_start >> PAGE_SHIFT) < 0:
        return
    if write:
        if not vma.vm_flags & VM_SHARED and ctx.config.cow_fault_anon_vma_first:
            ctx.scheme.anon_vma_prepare(vma)
        return
    if ctx.config.fault_around_pages > 1:
        wbit = _PAGE_RW if (vma.vm_flags & VM_SHARED and vma.vm_flags & VM_WRITE) else 0
        do_fault_around(ctx, vma, f, np.array([vpn], dtype=np.int64), vpn, vpn + 1, wbit)


def _map_file_pages(ctx: Any, vma: VmAreaStruct, f: File, vpns: np.ndarray, wbit: int) -> np.ndarray:
    """do_no_page for file pages: page cache lookup, a reference per pte,
    ``page_add_file_rmap``."""
    pfns = find_or_read_pages(ctx, f, _file_indices(vma, vpns))
    scatter_add(ctx.mem.count, pfns, 1)
    ctx.scheme.page_add_file_rmap(pfns, vma, vpns)
    vma.vm_mm.rss += len(pfns)
    return _mk_ptes(pfns, _PAGE_PRESENT | _PAGE_ACCESSED | wbit)


def can_share_swap_page(ctx: Any, pfns: np.ndarray) -> np.ndarray:
    """2.6.11 ``can_share_swap_page`` for each pfn: the only user is this
    pte (count 1), or this pte plus the swap cache of a slot nobody else
    holds (``exclusive_swap_page``)."""
    mem = ctx.mem
    cnt = mem.count[pfns]
    flags = mem.flags[pfns]
    anon = (mem.mapping[pfns] & 1) == 1
    not_reserved = (flags & PG_reserved) == 0
    in_sc = (flags & PG_swapcache) != 0
    ok = not_reserved & anon & (cnt == 1) & ~in_sc
    two = not_reserved & anon & (cnt == 2) & in_sc
    if two.any():
        ent = mem.private[pfns[two]]
        ok[two] = ctx.swap.swap_map[ent] == 1
    return ok


def do_swap_page(ctx: Any, vma: Any, vpn: int, pte: int, write: bool) -> None:
    """``do_swap_page``: find the page in the swap cache or read it from
    swap, map it, drop the pte's slot reference; a write fault then breaks
    COW at once (rmap 11's single-fault COW)."""
    mem, st = ctx.mem, ctx.stat
    entry = pte >> PTE_PFN_SHIFT
    pfn = ctx.swapper_space.get(entry)
    if pfn is None:
        pfn = int(ctx.alloc_pages(1)[0])
        mem.flags[pfn] = np.uint32(PG_lru | PG_active | PG_swapcache)
        mem.lru_touch(pfn)
        mem.private[pfn] = entry
        mem.count[pfn] = 1
        mem.token[pfn] = ctx.swap.contents[entry]
        ctx.swapper_space[entry] = pfn
        ctx.swap.swap_duplicate(entry)          # the cache's reference
        st.pswpin += 1
    st.fault_swap += 1
    mm = vma.vm_mm
    scheme = ctx.scheme
    if scheme.swapin_must_copy(pfn, vma, vpn):
        # anonmm: the page sits at another address in a sharing mm, so this
        # mm takes a private copy (the COW that mremap put off).
        new = ctx.alloc_pages(1)
        pte = int(new_anon_ptes(ctx, vma, np.array([vpn], dtype=np.int64),
                                mem.token[[pfn]], new)[0])
        st.mremap_cows += 1
        st.pages_copied += 1
        ctx.swap.swap_free(entry)
        mm.pgd.set(vpn, pte)
        return
    mem.count[pfn] += 1
    ctx.swap.swap_free(entry)
    mm.rss += 1
    mm.anon_rss += 1
    one = np.array([pfn], dtype=np.int64)
    writable = write and bool(can_share_swap_page(ctx, one)[0])
    newpte = (pfn << PTE_PFN_SHIFT) | _PAGE_PRESENT | _PAGE_ACCESSED
    if writable:
        newpte |= _PAGE_RW | _PAGE_DIRTY
    mm.pgd.set(vpn, newpte)
    scheme.page_add_anon_rmap(one, vma, np.array([vpn], dtype=np.int64), new=False)
    # remove_exclusive_swap_page when swap is full is not modelled.


def do_wp_page(ctx: Any, vma: VmAreaStruct, vpns: np.ndarray, ptes: np.ndarray,
               token: int | None) -> np.ndarray:
    """``do_wp_page`` for present, write-protected ptes of a private VMA:
    reuse an exclusive page in place, otherwise copy it into a new page of
    ``vma->anon_vma`` (the old page loses this mapping). Returns new ptes."""
    mem, st = ctx.mem, ctx.stat
    old = _pte_pfn(ptes)
    reuse = can_share_swap_page(ctx, old)
    out = ptes.copy()
    if reuse.any():
        out[reuse] |= np.int64(_maybe_mkwrite(vma)) | _YOUNG | _DIRTY
        st.fault_wp_reuse += int(reuse.sum())
        ctx.scheme.page_reuse(old[reuse], vma, vpns[reuse])
    cp = ~reuse
    if cp.any():
        opfns = old[cp]
        tokens = mem.token[opfns] if token is None else np.full(len(opfns), token, np.int64)
        new_ptes = _new_anon_pages(ctx, vma, vpns[cp], tokens)
        real = opfns != ZERO_PFN
        ro = opfns[real]
        if len(ro):
            n_anon = int(((mem.mapping[ro] & 1) == 1).sum())
            ctx.scheme.page_remove_rmap(ro, vma, vpns[cp][real])
            vma.vm_mm.rss -= len(ro)
            vma.vm_mm.anon_rss -= n_anon
            put_pages(ctx, ro)
        out[cp] = new_ptes
        n = int(cp.sum())
        st.fault_wp_copy += n
        st.pages_copied += int(real.sum())
    return out


def check_no_pte(mm: Any, s: int, e: int) -> None:
    vpns, _ = mm.pgd.populated(s, e)
    if len(vpns):
        raise InvariantError(f"{mm!r}: pte at {int(vpns[0]) << PAGE_SHIFT:#x} outside any vma")
