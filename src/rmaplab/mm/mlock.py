"""mlock and munlock (mm/mlock.c, 2.6.11): split at the range ends, set or
clear VM_LOCKED, fault the pages in. Never merges (the rmap 40 comment:
neither mlock nor madvise remerges), unless ``vma_modify_merges`` (modern:
the changed range merges with compatible neighbours). A split refused at
max_map_count gives EAGAIN.
"""

from __future__ import annotations

from typing import Any

from rmaplab.asm.page import PAGE_ALIGN, PAGE_MASK, ULONG_MASK
from rmaplab.errors import SyscallError
from rmaplab.mm.mm_types import VM_LOCKED, MmStruct, VmAreaStruct
from rmaplab.mm.mmap import make_pages_present, mm_populate, split_vma, vma_modify_flags


def split_range(ctx: Any, vma: VmAreaStruct, start: int, end: int) -> VmAreaStruct:
    """Split ``vma`` so that one VMA covers exactly ``[start, end)``; a
    refused split is EAGAIN (the first split stays if the second fails)."""
    mm = vma.vm_mm
    try:
        if start != vma.vm_start:
            split_vma(ctx, mm, vma, start, True)
        if end != vma.vm_end:
            split_vma(ctx, mm, vma, end, False)
    except SyscallError as e:
        raise SyscallError("EAGAIN", e.why) from None
    return vma


def modify_range(ctx: Any, vma: VmAreaStruct, start: int, end: int, newflags: int) -> VmAreaStruct:
    """Give ``[start, end)`` of ``vma`` the flags ``newflags`` (mlock, and
    madvise's read-ahead advice). 2.6: split at the range's ends (EAGAIN if
    refused) and never merge. Under ``vma_modify_merges`` (modern
    ``vma_modify_flags``) a VMA whose flags do not change stays whole, and
    the range merges with a compatible neighbour or is split out."""
    if not ctx.config.vma_modify_merges:
        vma = split_range(ctx, vma, start, end)
        vma.vm_flags = newflags
        return vma
    if newflags == vma.vm_flags:
        return vma
    prev = vma if start > vma.vm_start else vma.vm_prev
    return vma_modify_flags(ctx, vma, prev, start, end, newflags)


def mlock_fixup(ctx: Any, vma: VmAreaStruct, start: int, end: int, newflags: int) -> None:
    """``mlock_fixup``: the range gets or loses VM_LOCKED; 2.6 faults a
    newly locked range in here (modern ``do_mlock`` does it afterwards for
    the whole range, ``mm_populate``)."""
    if newflags == vma.vm_flags:
        return
    vma = modify_range(ctx, vma, start, end, newflags)
    pages = (end - start) >> 12
    if newflags & VM_LOCKED:
        vma.vm_mm.locked_vm += pages
        if ctx.config.mm_populate:
            return
        # The VMA stays locked even when the prefault fails.
        err = make_pages_present(ctx, vma.vm_mm, start, end)
        if err:
            raise SyscallError(err, "make_pages_present could not fault in the range")
    else:
        vma.vm_mm.locked_vm -= pages


def do_mlock(ctx: Any, mm: MmStruct, start: int, length: int, on: bool) -> int:
    """``sys_mlock``/``sys_munlock`` → ``do_mlock``: the start is rounded
    down, never an alignment error; a hole gives ENOMEM after the VMAs
    before it were changed. The process holds CAP_IPC_LOCK and
    RLIMIT_MEMLOCK is unlimited (the 2.6.7 default), so no limit applies."""
    length = PAGE_ALIGN(length + (start & ~PAGE_MASK))
    start &= PAGE_MASK
    end = (start + length) & ULONG_MASK
    if end < start:
        raise SyscallError("EINVAL", "range wraps")
    if end == start:
        return 0
    vma = mm.find_vma(start)
    if vma is None or vma.vm_start > start:
        raise SyscallError("ENOMEM", "start is not mapped")
    nstart = start
    while True:
        newflags = (vma.vm_flags | VM_LOCKED) if on else (vma.vm_flags & ~VM_LOCKED)
        tmp = min(vma.vm_end, end)
        mlock_fixup(ctx, vma, nstart, tmp, newflags)
        nstart = tmp
        if nstart >= end:
            break
        vma = mm.find_vma(nstart)
        # a VMA starting before nstart is the one the last fixup merged into
        if vma is None or vma.vm_start > nstart:
            raise SyscallError("ENOMEM", "range has a hole")
    if on and ctx.config.mm_populate:
        # __mlock_posix_error_return: a fault that failed is ENOMEM
        if mm_populate(ctx, mm, start, end, False):
            raise SyscallError("ENOMEM", "mm_populate could not fault the range in")
    return 0
