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
from rmaplab.mm.mm_types import (VM_ACCOUNT, VM_DONTEXPAND, VM_LOCKED, VM_MAYSHARE, VM_SHARED,
                                 MmStruct, VmAreaStruct)
from rmaplab.mm.mmap import (MAP_FIXED, MAP_SHARED, copy_vma, do_munmap, get_unmapped_area,
                             make_pages_present, mm_populate, vma_adjust, vma_merge)
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
             new_addr: int, dontunmap: bool = False) -> int:
    """``move_vma``: copy_vma at the destination, move the ptes, unmap the
    old range with VM_ACCOUNT concealed so its charge is kept. With
    MREMAP_DONTUNMAP (``dontunmap_complete``) the source stays mapped and
    empty, loses VM_LOCKED and, if it was moved whole, its anon_vma; it
    keeps VM_ACCOUNT (6.18, as observed: an October 2025 fix stopped
    clearing it)."""
    mm = vma.vm_mm
    if mm.map_count >= mm.max_map_count - 3:
        raise SyscallError("ENOMEM", "map_count near max_map_count")
    new_pgoff = vma.vm_pgoff + ((old_addr - vma.vm_start) >> PAGE_SHIFT)
    new_vma, vma = copy_vma(ctx, vma, new_addr, new_len, new_pgoff)
    move_page_tables(ctx, vma, old_addr, new_vma, new_addr, old_len)
    ctx.scheme.vma_moved(new_vma, vma)
    ctx.stat.mremap_moves += 1
    if dontunmap:
        mm.total_vm += new_len >> PAGE_SHIFT
        if vma.vm_flags & VM_LOCKED:
            mm.locked_vm += new_len >> PAGE_SHIFT
        vma.vm_flags &= ~VM_LOCKED      # VM_ACCOUNT stays (a 6.18 fix; observed)
        if new_vma is not vma and vma.vm_start == old_addr and vma.vm_end == old_addr + old_len:
            ctx.scheme.vma_unlink_anon(vma)
        return new_addr
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
            _populate(ctx, mm, new_addr + old_len, new_addr + new_len)
    return new_addr


def _populate(ctx: Any, mm: MmStruct, start: int, end: int) -> None:
    """The grown part of a locked VMA is faulted in: ``make_pages_present``
    (2.6) or ``mm_populate`` (modern)."""
    if ctx.config.mm_populate:
        mm_populate(ctx, mm, start, end, True)
    else:
        make_pages_present(ctx, mm, start, end)


def _expand_in_place(ctx: Any, vma: VmAreaStruct, addr: int, old_len: int, new_len: int) -> None:
    """Grow ``vma`` (which ends at ``addr + old_len``) to end at ``addr +
    new_len``: ``vma_adjust`` in 2.6; under ``mremap_expand_merge``
    (``vma_merge_extend``) the growth is merged like a new range after
    ``vma``, so a compatible next VMA it reaches joins it."""
    mm = vma.vm_mm
    end = addr + new_len
    merged = None
    if ctx.config.mremap_expand_merge:
        merged = vma_merge(ctx, mm, vma, vma.vm_end, end, vma.vm_flags, vma.anon_vma, vma.vm_file,
                           vma.vm_pgoff + vma.npages)
    if merged is None:
        vma_adjust(ctx, vma, vma.vm_start, end, vma.vm_pgoff)
    pages = (new_len - old_len) >> PAGE_SHIFT
    mm.total_vm += pages
    if vma.vm_flags & VM_LOCKED:
        mm.locked_vm += pages
        _populate(ctx, mm, addr + old_len, end)


def do_mremap(ctx: Any, mm: MmStruct, addr: int, old_len: int, new_len: int, flags: int,
              new_addr: int) -> int:
    """``do_mremap``, checks in the kernel's order: 2.6.11's, or 6.18's
    under ``mremap_lookup_first`` (``do_mremap_618``)."""
    if ctx.config.mremap_lookup_first:
        return do_mremap_618(ctx, mm, addr, old_len, new_len, flags, new_addr)
    if flags & ~(MREMAP_FIXED | MREMAP_MAYMOVE):
        raise SyscallError("EINVAL", "unknown flags")
    if not old_len and ctx.config.mremap_dup_private_einval:
        vma = mm.find_vma(addr)
        if vma is not None and vma.vm_start <= addr and not vma.vm_flags & (VM_SHARED | VM_MAYSHARE):
            raise SyscallError("EINVAL", "old_len 0 duplicates only shared mappings")
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
            _expand_in_place(ctx, vma, addr, old_len, new_len)
            return addr
    if not flags & MREMAP_MAYMOVE:
        raise SyscallError("ENOMEM", "cannot grow in place and MREMAP_MAYMOVE not given")
    if not flags & MREMAP_FIXED:
        new_addr = get_unmapped_area(mm, 0, new_len, MAP_SHARED if vma.vm_flags & VM_MAYSHARE else 0)
    return move_vma(ctx, vma, addr, old_len, new_len, new_addr)


# -- Linux 6.18 (mm/mremap.c after the 6.17 rework) --------------------------------------

def do_mremap_618(ctx: Any, mm: MmStruct, addr: int, old_len: int, new_len: int, flags: int,
                  new_addr: int) -> int:
    """6.18's ``do_mremap``: ``check_mremap_params``; then a pure move
    (MREMAP_FIXED, equal sizes) goes to ``remap_move``, which may span
    several VMAs (``mremap_multi_vma``); anything else looks the VMA up
    first (EFAULT on a hole, even for a shrink), ``check_prep_vma``, and
    ``mremap_to`` (FIXED or DONTUNMAP) or ``mremap_at`` (no-op, shrink,
    grow in place, or move)."""
    cfg = ctx.config
    known = MREMAP_FIXED | MREMAP_MAYMOVE | (MREMAP_DONTUNMAP if cfg.mremap_dontunmap else 0)
    if flags & ~known:
        raise SyscallError("EINVAL", "unknown flags")
    if addr & ~PAGE_MASK:
        raise SyscallError("EINVAL", "old address not page aligned")
    old_len, new_len = PAGE_ALIGN(old_len), PAGE_ALIGN(new_len)
    if not new_len or new_len > TASK_SIZE:
        raise SyscallError("EINVAL", "new length 0 or beyond TASK_SIZE")
    implies_new = bool(flags & (MREMAP_FIXED | MREMAP_DONTUNMAP))
    if implies_new:
        if new_addr > TASK_SIZE - new_len:
            raise SyscallError("EINVAL", "new range beyond TASK_SIZE")
        if new_addr & ~PAGE_MASK:
            raise SyscallError("EINVAL", "new address not page aligned")
        if not flags & MREMAP_MAYMOVE:
            raise SyscallError("EINVAL", "MREMAP_FIXED/DONTUNMAP without MREMAP_MAYMOVE")
        if flags & MREMAP_DONTUNMAP and old_len != new_len:
            raise SyscallError("EINVAL", "MREMAP_DONTUNMAP cannot resize")
        if addr + old_len > new_addr and new_addr + new_len > addr:
            raise SyscallError("EINVAL", "old and new ranges overlap")
    if mm.map_count + 2 >= mm.max_map_count - 3:
        raise SyscallError("ENOMEM", "map_count near max_map_count")
    if flags & MREMAP_FIXED and old_len == new_len and cfg.mremap_multi_vma:
        return _remap_move(ctx, mm, addr, old_len, flags, new_addr)
    vma = mm.find_vma(addr)
    vma = vma if vma is not None and vma.vm_start <= addr else None
    _check_prep_vma(ctx, vma, addr, old_len, new_len, flags)
    assert vma is not None
    if implies_new:
        return _mremap_to(ctx, mm, vma, addr, old_len, new_len, flags, new_addr)
    if old_len == new_len:
        return addr                                         # MREMAP_NO_RESIZE
    if new_len < old_len:                                   # shrink_vma
        do_munmap(ctx, mm, addr + new_len, old_len - new_len)
        return addr
    nxt = mm.vm_next(vma)
    if (vma.vm_end - addr == old_len and addr + new_len <= TASK_SIZE
            and (nxt is None or nxt.vm_start >= addr + new_len)):
        _expand_in_place(ctx, vma, addr, old_len, new_len)
        return addr
    if not flags & MREMAP_MAYMOVE:
        raise SyscallError("ENOMEM", "cannot grow in place and MREMAP_MAYMOVE not given")
    return _move_to(ctx, mm, vma, addr, old_len, new_len, flags, 0)


def _check_prep_vma(ctx: Any, vma: VmAreaStruct | None, addr: int, old_len: int, new_len: int,
                    flags: int) -> None:
    """``check_prep_vma``: the VMA must exist; a shrink or no-op needs no
    more; a move or growth may not duplicate a private mapping (old_len
    0), may not run past the VMA's end, nor grow a VM_DONTEXPAND VMA."""
    if vma is None:
        raise SyscallError("EFAULT", "old address not mapped")
    if new_len <= old_len and not flags & (MREMAP_FIXED | MREMAP_DONTUNMAP):
        return
    if (not old_len and not vma.vm_flags & (VM_SHARED | VM_MAYSHARE)
            and ctx.config.mremap_dup_private_einval):
        raise SyscallError("EINVAL", "old_len 0 duplicates only shared mappings")
    if flags & MREMAP_DONTUNMAP and vma.vm_flags & VM_DONTEXPAND:
        raise SyscallError("EINVAL", "MREMAP_DONTUNMAP of a VM_DONTEXPAND VMA")
    span = new_len if new_len < old_len else old_len
    if span > vma.vm_end - addr:
        raise SyscallError("EFAULT", "old range crosses a VMA boundary")
    if new_len != span and vma.vm_flags & VM_DONTEXPAND:
        raise SyscallError("EFAULT", "VM_DONTEXPAND")


def _mremap_to(ctx: Any, mm: MmStruct, vma: VmAreaStruct, addr: int, old_len: int, new_len: int,
               flags: int, new_addr: int) -> int:
    """``mremap_to``: MREMAP_FIXED unmaps the destination first; a shrink
    unmaps the tail; then the (rest of the) range moves."""
    if flags & MREMAP_FIXED:
        do_munmap(ctx, mm, new_addr, new_len)
        vma = _vma_lookup(mm, addr)
    if new_len < old_len:
        do_munmap(ctx, mm, addr + new_len, old_len - new_len)
        vma = _vma_lookup(mm, addr)
        old_len = new_len
    return _move_to(ctx, mm, vma, addr, old_len, new_len, flags, new_addr)


def _vma_lookup(mm: MmStruct, addr: int) -> VmAreaStruct:
    vma = mm.find_vma(addr)
    if vma is None or vma.vm_start > addr:
        raise SyscallError("EFAULT", "old address no longer mapped")
    return vma


def _move_to(ctx: Any, mm: MmStruct, vma: VmAreaStruct, addr: int, old_len: int, new_len: int,
             flags: int, new_addr: int) -> int:
    """``vrm_set_new_addr`` + ``move_vma``: the destination comes from
    get_unmapped_area (MAP_FIXED for MREMAP_FIXED, else new_addr is a hint,
    or 0), shared for a VM_MAYSHARE VMA."""
    map_flags = (MAP_FIXED if flags & MREMAP_FIXED else 0) | (
        MAP_SHARED if vma.vm_flags & VM_MAYSHARE else 0)
    anon = vma.vm_file is None and not vma.vm_flags & VM_MAYSHARE
    dst = get_unmapped_area(mm, new_addr, new_len, map_flags, anon)
    return move_vma(ctx, vma, addr, old_len, new_len, dst, bool(flags & MREMAP_DONTUNMAP))


def _remap_move(ctx: Any, mm: MmStruct, start: int, length: int, flags: int, new_addr: int) -> int:
    """``remap_move`` (6.17): move every VMA in ``[start, start + length)``
    (the first and last cut to the range) to ``new_addr`` onwards, keeping
    the gaps between them; each keeps its identity. A hole at the start is
    EFAULT; one at the end is allowed. Each piece is checked and moved as
    a move of one VMA, so an error stops the walk with the earlier pieces
    moved."""
    end = start + length
    cursor, target, last_end = start, new_addr, 0
    res = None
    while True:
        vma = mm.find_vma(cursor)
        if vma is None or vma.vm_start >= end:
            break
        if res is None and start < vma.vm_start:
            raise SyscallError("EFAULT", "the range starts in a hole")
        a = max(vma.vm_start, start)
        n = min(end, vma.vm_end) - a
        dst = target + (vma.vm_start - last_end if res is not None else 0)
        last_end = cursor = vma.vm_end
        _check_prep_vma(ctx, vma, a, n, n, flags)
        got = _mremap_to(ctx, mm, vma, a, n, n, flags, dst)
        if res is None:
            res = got
        target = got + n
    if res is None:
        raise SyscallError("EFAULT", "old range not mapped")
    return res
