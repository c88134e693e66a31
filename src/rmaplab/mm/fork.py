"""fork's address-space copy: ``dup_mmap`` (kernel/fork.c, 2.6.11).

Each VMA is copied whole (so the copy has the parent's anon_vma and
vm_pgoff), loses VM_LOCKED, joins the parent's anon_vma list
(``anon_vma_link``) and the file's i_mmap; then ``copy_page_range``.
VM_DONTCOPY VMAs are skipped (their pages still count in the child's
total_vm, a 2.6.11 quirk kept here).
"""

from __future__ import annotations

from typing import Any

from rmaplab.mm.memory import copy_page_range
from rmaplab.mm.mm_types import VM_DONTCOPY, VM_LOCKED, VM_SHARED, MmStruct


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
        copy_page_range(ctx, tmp, mpnt)
