"""madvise (mm/madvise.c, 2.6.11): NORMAL, RANDOM, SEQUENTIAL only set
read-ahead flags (splitting, even when nothing changes, and never
merging; under ``vma_modify_merges`` they merge and leave an unchanged VMA
whole); WILLNEED reads file pages ahead (EBADF on anonymous memory, or
success under ``madvise_willneed_anon``); DONTNEED zaps the ptes (EINVAL on
a locked VMA). A hole gives ENOMEM after the rest of the range was advised.

With ``madvise_cold_pageout`` (Linux 5.4, ``madvise_cold_or_pageout_pte_range``)
COLD deactivates and PAGEOUT reclaims at once the pages of the range that
this mapping alone maps (map count 1); both refuse a locked VMA with EINVAL.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rmaplab.asm.page import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, ULONG_MASK
from rmaplab.asm.pgtable import _PAGE_ACCESSED, _PAGE_PRESENT, PTE_PFN_SHIFT
from rmaplab.errors import SyscallError
from rmaplab.mm.memory import find_or_read_pages, zap_page_range
from rmaplab.mm.mlock import modify_range
from rmaplab.mm.mm_types import VM_LOCKED, VM_RAND_READ, VM_SEQ_READ, MmStruct, VmAreaStruct
from rmaplab.mm.page import PG_active, PG_lru, PG_referenced, ZERO_PFN
from rmaplab.mm.vmscan import shrink_list

MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED = 0, 1, 2, 3, 4
MADV_COLD, MADV_PAGEOUT = 20, 21
ADVICE = {"normal": MADV_NORMAL, "random": MADV_RANDOM, "sequential": MADV_SEQUENTIAL,
          "willneed": MADV_WILLNEED, "dontneed": MADV_DONTNEED, "cold": MADV_COLD,
          "pageout": MADV_PAGEOUT}


def madvise_vma(ctx: Any, vma: VmAreaStruct, start: int, end: int, behavior: int) -> None:
    if behavior in (MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL):
        flags = vma.vm_flags & ~(VM_SEQ_READ | VM_RAND_READ)
        if behavior == MADV_SEQUENTIAL:
            flags |= VM_SEQ_READ
        elif behavior == MADV_RANDOM:
            flags |= VM_RAND_READ
        modify_range(ctx, vma, start, end, flags)
    elif behavior == MADV_WILLNEED:
        if vma.vm_file is None:
            if ctx.config.madvise_willneed_anon:
                return      # swap readahead: the model reads nothing ahead
            raise SyscallError("EBADF", "MADV_WILLNEED on anonymous memory")
        # force_page_cache_readahead: fills the page cache, maps nothing.
        f = vma.vm_file
        first = vma.vm_pgoff + ((start - vma.vm_start) >> 12)
        last = min(first + ((end - start) >> 12), f.size_pages if not f.shmem else first)
        if last > first:
            find_or_read_pages(ctx, f, np.arange(first, last, dtype=np.int64))
    elif behavior == MADV_DONTNEED:
        if vma.vm_flags & VM_LOCKED:
            raise SyscallError("EINVAL", "MADV_DONTNEED on a locked VMA")
        zap_page_range(ctx, vma, start, end)
    elif behavior in (MADV_COLD, MADV_PAGEOUT) and ctx.config.madvise_cold_pageout:
        if vma.vm_flags & VM_LOCKED:
            raise SyscallError("EINVAL", "MADV_COLD/MADV_PAGEOUT on a locked VMA")
        madvise_cold_or_pageout(ctx, vma, start, end, behavior == MADV_PAGEOUT)
    else:
        raise SyscallError("EINVAL", "unknown advice")


def madvise_cold_or_pageout(ctx: Any, vma: VmAreaStruct, start: int, end: int,
                            pageout: bool) -> int:
    """``madvise_cold_or_pageout_pte_range``: for each page of the range
    mapped here and nowhere else (and on the LRU), clear the pte's young bit
    and PG_referenced; COLD moves it to the inactive list, PAGEOUT hands it
    to ``shrink_list`` at once (``reclaim_pages``). Anonymous pages need a
    free swap slot to go; shmem pages stay (the model never swaps shmem).
    Returns the pages reclaimed."""
    mem, pgd = ctx.mem, vma.vm_mm.pgd
    vpns, ptes = pgd.populated(start >> PAGE_SHIFT, end >> PAGE_SHIFT)
    present = (ptes & _PAGE_PRESENT) != 0
    vpns, ptes = vpns[present], ptes[present]
    pfns = ptes >> PTE_PFN_SHIFT
    ok = (pfns != ZERO_PFN) & (mem.mapcount[pfns] == 1) & ((mem.flags[pfns] & PG_lru) != 0)
    vpns, ptes, pfns = vpns[ok], ptes[ok], pfns[ok]
    if not len(pfns):
        return 0
    pgd.scatter_points(vpns, ptes & ~np.int64(_PAGE_ACCESSED))
    mem.flags[pfns] &= ~np.uint32(PG_referenced)
    if not pageout:
        mem.flags[pfns] &= ~np.uint32(PG_active)
        for pfn in pfns.tolist():
            mem.lru_touch(pfn)
        ctx.stat.pgdeactivate += len(pfns)
        return 0
    return shrink_list(ctx, pfns.tolist())


def sys_madvise(ctx: Any, mm: MmStruct, start: int, length: int, behavior: int) -> int:
    if start & ~PAGE_MASK:
        raise SyscallError("EINVAL", "start not page aligned")
    rlen = (length + PAGE_SIZE - 1) & PAGE_MASK & ULONG_MASK
    if length and not rlen:
        raise SyscallError("EINVAL", "length overflows")
    end = (start + rlen) & ULONG_MASK
    if end < start:
        raise SyscallError("EINVAL", "range wraps")
    if end == start:
        return 0
    hole = False
    vma = mm.find_vma(start)
    while True:
        if vma is None:
            raise SyscallError("ENOMEM", "range not mapped")
        if start < vma.vm_start:
            hole = True
            start = vma.vm_start
            if start >= end:
                break
        tmp = min(vma.vm_end, end)
        madvise_vma(ctx, vma, start, tmp, behavior)
        if tmp >= end:
            break
        start = tmp
        vma = mm.find_vma(start)
    if hole:
        raise SyscallError("ENOMEM", "range has a hole")
    return 0
