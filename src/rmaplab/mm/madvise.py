"""madvise (mm/madvise.c, 2.6.11): NORMAL, RANDOM, SEQUENTIAL only set
read-ahead flags (splitting, even when nothing changes, and never
merging); WILLNEED reads file pages ahead (EBADF on anonymous memory);
DONTNEED zaps the ptes (EINVAL on a locked VMA). A hole gives ENOMEM
after the rest of the range was advised.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rmaplab.asm.page import PAGE_MASK, PAGE_SIZE, ULONG_MASK
from rmaplab.errors import SyscallError
from rmaplab.mm.memory import find_or_read_pages, zap_page_range
from rmaplab.mm.mlock import split_range
from rmaplab.mm.mm_types import VM_LOCKED, VM_RAND_READ, VM_SEQ_READ, MmStruct, VmAreaStruct

MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED = 0, 1, 2, 3, 4
ADVICE = {"normal": MADV_NORMAL, "random": MADV_RANDOM, "sequential": MADV_SEQUENTIAL,
          "willneed": MADV_WILLNEED, "dontneed": MADV_DONTNEED}


def madvise_vma(ctx: Any, vma: VmAreaStruct, start: int, end: int, behavior: int) -> None:
    if behavior in (MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL):
        vma = split_range(ctx, vma, start, end)
        flags = vma.vm_flags & ~(VM_SEQ_READ | VM_RAND_READ)
        if behavior == MADV_SEQUENTIAL:
            flags |= VM_SEQ_READ
        elif behavior == MADV_RANDOM:
            flags |= VM_RAND_READ
        vma.vm_flags = flags
    elif behavior == MADV_WILLNEED:
        if vma.vm_file is None:
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
    else:
        raise SyscallError("EINVAL", "unknown advice")


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
