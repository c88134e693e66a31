"""mremap (mm/mremap.c, 2.6.11): shrink, grow in place, move.

A move copies the VMA (``copy_vma``: same anon_vma, same pgoff for a
faulted anonymous VMA) and moves the ptes (``move_page_tables``). Under
anon_vma nothing about the pages changes: their index stays valid because
the new VMA carries the old pgoff and is on the same list ("Magic" in the
rmap 39 text). A scheme that needs it (anonmm) may demand copies first.
"""

from __future__ import annotations

from typing import Any


from rmaplab.asm.page import PAGE_ALIGN, PAGE_MASK, PAGE_SHIFT, TASK_SIZE
from rmaplab.asm.pgtable import _PAGE_PRESENT, PTE_PFN_SHIFT
from rmaplab.errors import SyscallError
from rmaplab.mm.memory import fault_range
from rmaplab.mm.mm_types import (VM_ACCOUNT, VM_DONTEXPAND, VM_LOCKED, VM_MAYSHARE, MmStruct,
                                 VmAreaStruct)
from rmaplab.mm.mmap import (MAP_SHARED, copy_vma, do_munmap, get_unmapped_area,
                             make_pages_present, vma_adjust)
from rmaplab.mm.page import ZERO_PFN

MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4


def move_page_tables(ctx: Any, vma: VmAreaStruct, old_addr: int, new_vma: VmAreaStruct,
                     new_addr: int, length: int) -> None:
    """``move_page_tables``: each pte moves from the old address to the new
    one. The scheme may first demand private copies of some anonymous
    pages (anonmm's forced COW); anon_vma demands none."""
    mm = vma.vm_mm
    s, n = old_addr >> PAGE_SHIFT, length >> PAGE_SHIFT
    d = new_addr >> PAGE_SHIFT
    vpns, ptes = mm.pgd.populated(s, s + n)
    if not len(vpns):
        return
    present = (ptes & _PAGE_PRESENT) != 0
    real = present & ((ptes >> PTE_PFN_SHIFT) != ZERO_PFN)
    pv, pp = vpns[real], ptes[real] >> PTE_PFN_SHIFT
    must_copy = ctx.scheme.mremap_check(vma, pp, pv)
    if must_copy.any():
        # anonmm's make_page_exclusive: a write fault breaks COW first.
        for v in pv[must_copy].tolist():
            fault_range(ctx, vma, v, v + 1, True, None)
            ctx.stat.mremap_cows += 1
        vpns, ptes = mm.pgd.populated(s, s + n)
        real = ((ptes & _PAGE_PRESENT) != 0) & ((ptes >> PTE_PFN_SHIFT) != ZERO_PFN)
        pv, pp = vpns[real], ptes[real] >> PTE_PFN_SHIFT
    for t, lo, hi, _ in mm.pgd.runs(s, s + n):
        t[lo:hi] = 0
    mm.pgd.free_pgtables(s, s + n)
    mm.pgd.scatter_points(vpns - s + d, ptes)
    ctx.scheme.mremap_moved(vma, new_vma, pp, pv, pv - s + d)
    ctx.stat.mremap_ptes_moved += len(vpns)


def move_vma(ctx: Any, vma: VmAreaStruct, old_addr: int, old_len: int, new_len: int,
             new_addr: int) -> int:
    """``move_vma``: copy_vma at the destination, move the ptes, unmap the
    old range with VM_ACCOUNT concealed so its charge is kept."""
    mm = vma.vm_mm
    if mm.map_count >= mm.max_map_count - 3:
        raise SyscallError("ENOMEM", "map_count near max_map_count")
    new_pgoff = vma.vm_pgoff + ((old_addr - vma.vm_start) >> PAGE_SHIFT)
    new_vma, vma = copy_vma(ctx, vma, new_addr, new_len, new_pgoff)
    move_page_tables(ctx, vma, old_addr, new_vma, new_addr, old_len)
    ctx.scheme.vma_moved(new_vma, vma)
    ctx.stat.mremap_moves += 1
    vm_flags = vma.vm_flags
    excess = 0
    split = False
    if vm_flags & VM_ACCOUNT:
        vma.vm_flags &= ~VM_ACCOUNT
        excess = vma.vm_end - vma.vm_start - old_len
        split = old_addr > vma.vm_start and old_addr + old_len < vma.vm_end
    try:
        do_munmap(ctx, mm, old_addr, old_len)
    except SyscallError:
        excess = 0          # "OOM: unable to split vma, just get accounts right"
    if excess:
        vma.vm_flags |= VM_ACCOUNT
        if split:
            nxt = mm.vm_next(vma)
            assert nxt is not None
            nxt.vm_flags |= VM_ACCOUNT
    mm.total_vm += new_len >> PAGE_SHIFT
    if vm_flags & VM_LOCKED:
        mm.locked_vm += new_len >> PAGE_SHIFT
        if new_len > old_len:
            make_pages_present(ctx, mm, new_addr + old_len, new_addr + new_len)
    return new_addr


def do_mremap(ctx: Any, mm: MmStruct, addr: int, old_len: int, new_len: int, flags: int,
              new_addr: int) -> int:
    """``do_mremap``, checks in the kernel's order."""
    if flags & ~(MREMAP_FIXED | MREMAP_MAYMOVE):
        raise SyscallError("EINVAL", "unknown flags")
    if addr & ~PAGE_MASK:
        raise SyscallError("EINVAL", "old address not page aligned")
    old_len = PAGE_ALIGN(old_len)
    new_len = PAGE_ALIGN(new_len)
    if not new_len:
        raise SyscallError("EINVAL", "new length 0")
    if flags & MREMAP_FIXED:
        if new_addr & ~PAGE_MASK:
            raise SyscallError("EINVAL", "new address not page aligned")
        if not flags & MREMAP_MAYMOVE:
            raise SyscallError("EINVAL", "MREMAP_FIXED without MREMAP_MAYMOVE")
        if new_len > TASK_SIZE or new_addr > TASK_SIZE - new_len:
            raise SyscallError("EINVAL", "new range beyond TASK_SIZE")
        if new_addr <= addr < new_addr + new_len or addr <= new_addr < addr + old_len:
            raise SyscallError("EINVAL", "old and new ranges overlap")
        do_munmap(ctx, mm, new_addr, new_len)
    if old_len >= new_len:
        try:
            do_munmap(ctx, mm, addr + new_len, old_len - new_len)
        except SyscallError:
            if old_len != new_len:
                raise
        if not flags & MREMAP_FIXED or new_addr == addr:
            return addr
        old_len = new_len
    vma = mm.find_vma(addr)
    if vma is None or vma.vm_start > addr:
        raise SyscallError("EFAULT", "old address not mapped")
    if old_len > vma.vm_end - addr:
        raise SyscallError("EFAULT", "old range crosses a VMA boundary")
    if vma.vm_flags & VM_DONTEXPAND and new_len > old_len:
        raise SyscallError("EFAULT", "VM_DONTEXPAND")
    if (old_len == vma.vm_end - addr
            and not (flags & MREMAP_FIXED and addr != new_addr)
            and (old_len != new_len or not flags & MREMAP_MAYMOVE)):
        nxt = mm.vm_next(vma)
        max_addr = nxt.vm_start if nxt is not None else TASK_SIZE
        if max_addr - addr >= new_len:
            pages = (new_len - old_len) >> PAGE_SHIFT
            vma_adjust(ctx, vma, vma.vm_start, addr + new_len, vma.vm_pgoff)
            mm.total_vm += pages
            if vma.vm_flags & VM_LOCKED:
                mm.locked_vm += pages
                make_pages_present(ctx, mm, addr + old_len, addr + new_len)
            return addr
    if not flags & MREMAP_MAYMOVE:
        raise SyscallError("ENOMEM", "cannot grow in place and MREMAP_MAYMOVE not given")
    if not flags & MREMAP_FIXED:
        new_addr = get_unmapped_area(mm, 0, new_len, MAP_SHARED if vma.vm_flags & VM_MAYSHARE else 0)
    return move_vma(ctx, vma, addr, old_len, new_len, new_addr)
