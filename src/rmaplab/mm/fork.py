"""fork's address-space copy: ``dup_mmap`` (kernel/fork.c, 2.6.11).

Each VMA is copied whole (so the copy has the parent's anon_vma and
vm_pgoff), loses VM_LOCKED, joins the parent's anon_vma list
(``anon_vma_link``) and the file's i_mmap; then ``copy_page_range``.
VM_DONTCOPY VMAs are skipped (their pages still count in the child's
total_vm, a 2.6.11 quirk kept here). Under ``fork_copy_anon_only`` (modern
``vma_needs_copy``) only VMAs with an anon_vma have their ptes copied; the
child faults the rest in from the page cache.
"""

from __future__ import annotations

from typing import Any

from rmaplab.asm.page import PAGE_SHIFT
from rmaplab.asm.pgtable import _PAGE_PRESENT, PTE_PFN_SHIFT
from rmaplab.mm.memory import copy_page_range
from rmaplab.mm.mm_types import VM_DONTCOPY, VM_LOCKED, VM_SHARED, MmStruct, VmAreaStruct
from rmaplab.mm.page import ZERO_PFN


def dup_mmap(ctx: Any, mm: MmStruct, oldmm: MmStruct) -> None:
    mm.total_vm = oldmm.total_vm
    mm.locked_vm = 0
    mm.start_brk, mm.brk, mm.end_code = oldmm.start_brk, oldmm.brk, oldmm.end_code
    ctx.scheme.mm_fork(mm, oldmm)
    for mpnt in oldmm.mmap:
        if mpnt.vm_flags & VM_DONTCOPY:
            continue
        tmp = mpnt.copy()
        tmp.vm_mm = mm
        tmp.vm_flags &= ~VM_LOCKED
        ctx.scheme.vma_fork(tmp, mpnt)
        f = tmp.vm_file
        if f is not None:
            f.i_mmap.insert(tmp)
            if tmp.vm_flags & VM_SHARED:
                f.i_mmap_writable += 1
        mm.link(tmp)
        ctx.stat.vma_alloc += 1
        ctx.stat.fork_vmas += 1
        if not ctx.config.fork_copy_anon_only or vma_needs_copy(ctx, mpnt):
            copy_page_range(ctx, tmp, mpnt)


def vma_needs_copy(ctx: Any, vma: VmAreaStruct) -> bool:
    """``vma_needs_copy``: a VMA with an anon_vma. Where the scheme gives
    none (pte_chain, anonmm, none; pure_anon_vma's file VMAs) it stands in
    with "maps an anonymous page or a swap entry now", which differs only
    after MADV_DONTNEED emptied it."""
    scheme = ctx.scheme
    if scheme.has_anon_vma and (vma.vm_file is None or scheme.file_vmas_get_anon_vma):
        return vma.anon_vma is not None
    vpns, ptes = vma.vm_mm.pgd.populated(vma.vm_start >> PAGE_SHIFT, vma.vm_end >> PAGE_SHIFT)
    if not len(ptes):
        return False
    present = (ptes & _PAGE_PRESENT) != 0
    if not present.all():
        return True
    pfns = ptes >> PTE_PFN_SHIFT
    return bool(((ctx.mem.mapping[pfns[pfns != ZERO_PFN]] & 1) == 1).any())
