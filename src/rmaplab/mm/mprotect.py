"""mprotect (mm/mprotect.c, 2.6.11): ``sys_mprotect``, ``mprotect_fixup``,
``change_protection``.

A VMA that becomes writable without VM_ACCOUNT gains it and, in 2.6,
keeps it; under ``mprotect_drop_account`` (6.x) an anonymous VMA without an
anon_vma loses it again when write is taken away.
Private writable VMAs get PAGE_COPY ptes, read-only in hardware, so
mprotect never makes a COW-shared page writable. VMAs handled before a
failure keep their new protection, as in Linux.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rmaplab.asm.page import PAGE_ALIGN, PAGE_MASK, PAGE_SHIFT, ULONG_MASK
from rmaplab.asm.pgtable import _PAGE_PRESENT, _PAGE_RW
from rmaplab.errors import SyscallError
from rmaplab.mm.mm_types import (VM_ACCOUNT, VM_GROWSDOWN, VM_GROWSUP, VM_LOCKED, VM_NORESERVE,
                                 VM_PROT_MASK, VM_SHARED, VM_WRITE, MmStruct, VmAreaStruct)
from rmaplab.mm.mmap import populate_vma_page_range, vma_modify_flags


def pte_writable(vm_flags: int) -> bool:
    """``protection_map[vm_flags & 0xf]`` gives a writable pte only for a
    shared writable VMA (PAGE_SHARED); private ones get PAGE_COPY."""
    return (vm_flags & (VM_SHARED | VM_WRITE)) == (VM_SHARED | VM_WRITE)


def change_protection(vma: VmAreaStruct, start: int, end: int, newflags: int) -> None:
    """``change_protection``: rewrite the protection bits of the present
    ptes in ``[start, end)``; pfn, young and dirty stay."""
    rw = pte_writable(newflags)
    pgd = vma.vm_mm.pgd
    s, e = start >> PAGE_SHIFT, end >> PAGE_SHIFT
    if e - s <= 4:
        # Short ranges (the common mprotect) are cheaper pte by pte.
        for vpn in range(s, e):
            pte = pgd.get(vpn)
            if pte & _PAGE_PRESENT:
                pgd.set(vpn, (pte | _PAGE_RW) if rw else (pte & ~_PAGE_RW))
        return
    for t, lo, hi, _ in pgd.runs(s, e):
        seg = t[lo:hi]
        # Bit 1 of a swap pte is the swap marker: only touch present ptes.
        if rw:
            np.bitwise_or(seg, (seg & _PAGE_PRESENT) << 1, out=seg)
        else:
            np.bitwise_and(seg, ~((seg & _PAGE_PRESENT) << 1), out=seg)


def mprotect_fixup(ctx: Any, vma: VmAreaStruct, prev: VmAreaStruct | None, start: int,
                   end: int, newflags: int) -> VmAreaStruct:
    """``mprotect_fixup``: give ``[start, end)`` of ``vma`` the new flags,
    by merging with a neighbour (vma_merge cases 4–8) or by splitting.
    Returns the new ``*pprev``."""
    if newflags == vma.vm_flags:
        return vma
    if newflags & VM_WRITE:
        if not vma.vm_flags & (VM_ACCOUNT | VM_WRITE | VM_SHARED | VM_NORESERVE):
            newflags |= VM_ACCOUNT
    elif (ctx.config.mprotect_drop_account and newflags & VM_ACCOUNT and vma.vm_file is None
          and vma.anon_vma is None):
        # 6.x: an anonymous VMA never written gives its charge back
        newflags &= ~VM_ACCOUNT
    oldflags = vma.vm_flags
    vma = vma_modify_flags(ctx, vma, prev, start, end, newflags)
    change_protection(vma, start, end, newflags)
    if (ctx.config.mm_populate and (oldflags & (VM_WRITE | VM_SHARED | VM_LOCKED)) == VM_LOCKED
            and newflags & VM_WRITE):
        # modern: a locked private VMA becoming writable breaks COW now
        populate_vma_page_range(ctx, vma, start >> PAGE_SHIFT, end >> PAGE_SHIFT)
    return vma


PROT_SEM = 0x8
PROT_GROWSDOWN = 0x01000000
PROT_GROWSUP = 0x02000000


def sys_mprotect(ctx: Any, mm: MmStruct, start: int, length: int, prot: int) -> int:
    """``sys_mprotect``: EINVAL for an unaligned start, ENOMEM for a hole,
    EACCES for a right the VMA may not have (VM_MAY* bits). PROT_SEM is
    accepted and ignored; PROT_GROWSDOWN/UP stretch the range to the VMA's
    start/end."""
    grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP)
    prot &= ~grows
    if grows == PROT_GROWSDOWN | PROT_GROWSUP:
        raise SyscallError("EINVAL", "both PROT_GROWSDOWN and PROT_GROWSUP")
    if start & ~PAGE_MASK:
        raise SyscallError("EINVAL", "start not page aligned")
    length = PAGE_ALIGN(length)
    end = (start + length) & ULONG_MASK
    if end < start:
        raise SyscallError("ENOMEM", "range wraps")
    if prot & ~(VM_PROT_MASK | PROT_SEM):
        raise SyscallError("EINVAL", "unknown prot bits")
    prot &= VM_PROT_MASK
    if end == start:
        return 0
    vma, prev = mm.find_vma_prev(start)
    if vma is None:
        raise SyscallError("ENOMEM", "start is not mapped")
    if grows & PROT_GROWSDOWN:
        if vma.vm_start >= end:
            raise SyscallError("ENOMEM", "no VMA below end")
        start = vma.vm_start
        if not vma.vm_flags & VM_GROWSDOWN:
            raise SyscallError("EINVAL", "PROT_GROWSDOWN on a VMA that does not grow down")
    else:
        if vma.vm_start > start:
            raise SyscallError("ENOMEM", "start is not mapped")
        if grows & PROT_GROWSUP:
            end = vma.vm_end
            if not vma.vm_flags & VM_GROWSUP:
                raise SyscallError("EINVAL", "PROT_GROWSUP on a VMA that does not grow up")
    if start > vma.vm_start:
        prev = vma
    nstart = start
    while True:
        newflags = prot | (vma.vm_flags & ~VM_PROT_MASK)
        if (newflags & ~(newflags >> 4)) & 0xF:
            raise SyscallError("EACCES", "protection not allowed by VM_MAY* bits")
        tmp = min(vma.vm_end, end)
        prev = mprotect_fixup(ctx, vma, prev, nstart, tmp, newflags)
        nstart = tmp
        if nstart < prev.vm_end:
            nstart = prev.vm_end
        if nstart >= end:
            return 0
        vma = mm.vm_next(prev)
        if vma is None or vma.vm_start != nstart:
            raise SyscallError("ENOMEM", "range has a hole")
