"""VMA creation, merging, splitting and removal (mm/mmap.c, 2.6.11).

``vma_merge`` is the sole merging engine (cases 1–8 of its comment);
``vma_adjust`` moves VMA boundaries and removes absorbed VMAs, handing the
anon_vma to the importer (the 2.6.8 "mprotect propagate anon_vma" fix,
selectable); ``split_vma`` inserts a piece that shares the anon_vma.

Locking (mmap_sem for write around all of this) is implied, not counted.
"""

from __future__ import annotations

from bisect import bisect_left
from operator import attrgetter
from typing import Any

from rmaplab.asm.page import (MMAP_MIN_ADDR, PAGE_ALIGN, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PMD_SIZE,
                              STACK_GUARD_GAP, TASK_SIZE, TASK_UNMAPPED_BASE)
from rmaplab.errors import SyscallError
from rmaplab.mm.filemap import FMODE_READ, FMODE_WRITE, File
from rmaplab.mm.memory import check_no_pte, fault_range, fault_sigbus, put_pages, zap_page_range
from rmaplab.mm.mm_types import (VM_ACCOUNT, VM_EXEC, VM_GROWSDOWN, VM_LOCKED, VM_MAYEXEC,
                                 VM_MAYREAD, VM_MAYSHARE, VM_MAYWRITE, VM_PROT_MASK, VM_READ, VM_SHARED,
                                 VM_DONTEXPAND, VM_IO, VM_NORESERVE, VM_SPECIAL, VM_WRITE, MmStruct,
                                 VmAreaStruct)

# mmap prot and flags (include/asm-generic/mman.h, x86_64 values)
PROT_READ, PROT_WRITE, PROT_EXEC = 0x1, 0x2, 0x4
MAP_SHARED, MAP_PRIVATE, MAP_TYPE = 0x01, 0x02, 0x0f
MAP_FIXED, MAP_ANONYMOUS = 0x10, 0x20
MAP_GROWSDOWN, MAP_LOCKED, MAP_NORESERVE, MAP_POPULATE = 0x100, 0x2000, 0x4000, 0x8000
MAP_FIXED_NOREPLACE = 0x100000

_vm_start = attrgetter("vm_start")


def calc_vm_flags(prot: int, flags: int) -> int:
    """``calc_vm_prot_bits | calc_vm_flag_bits`` plus the VM_MAY* bits."""
    vm = prot & VM_PROT_MASK
    if flags & MAP_GROWSDOWN:
        vm |= VM_GROWSDOWN
    if flags & MAP_LOCKED:
        vm |= VM_LOCKED
    return vm | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC


# -- linking ---------------------------------------------------------------------

def vma_link(ctx: Any, mm: MmStruct, vma: VmAreaStruct) -> None:
    """``vma_link``: into the mm's list, the file's i_mmap, the scheme."""
    mm.link(vma)
    f = vma.vm_file
    if f is not None:
        f.i_mmap.insert(vma)
        if vma.vm_flags & VM_SHARED:
            f.i_mmap_writable += 1
    ctx.scheme.vma_link(vma)
    ctx.stat.vma_alloc += 1


def remove_vm_struct(ctx: Any, vma: VmAreaStruct) -> None:
    """``remove_vm_struct``: out of i_mmap, ``anon_vma_unlink``, freed.
    The caller has already taken it off the mm's list."""
    f = vma.vm_file
    if f is not None:
        _unlink_file_vma(ctx, vma, f)
    ctx.scheme.vma_unlink(vma)
    ctx.stat.vma_free += 1


def _unlink_file_vma(ctx: Any, vma: VmAreaStruct, f: File) -> None:
    f.i_mmap.remove(vma)
    if vma.vm_flags & VM_SHARED:
        f.i_mmap_writable -= 1
    if f.shmem and not len(f.i_mmap):
        # The unnamed shmem file dies with its last mapping: free its pages.
        _, pfns = f.page_cache.populated(0, f.size_pages)
        f.page_cache = type(f.page_cache)()
        f.nrpages = 0
        put_pages(ctx, pfns)
        ctx.forget_file(f)


# -- merging (vma_merge / vma_adjust / split_vma) ------------------------------------

def is_mergeable_vma(vma: VmAreaStruct, file: File | None, vm_flags: int) -> bool:
    return vma.vm_flags == vm_flags and vma.vm_file is file


def can_vma_merge_before(ctx: Any, vma: VmAreaStruct, vm_flags: int, anon_vma: Any,
                         file: File | None, vm_pgoff: int, src: VmAreaStruct | None = None) -> bool:
    """``can_vma_merge_before``: the range may be glued onto ``vma``'s start."""
    return (is_mergeable_vma(vma, file, vm_flags)
            and ctx.scheme.is_mergeable_anon_vma(anon_vma, vma.anon_vma, vma, src)
            and (vma.vm_pgoff == vm_pgoff or _pgoff_free(ctx, file)))


def can_vma_merge_after(ctx: Any, vma: VmAreaStruct, vm_flags: int, anon_vma: Any,
                        file: File | None, vm_pgoff: int, src: VmAreaStruct | None = None) -> bool:
    """``can_vma_merge_after``: the range may be glued onto ``vma``'s end."""
    return (is_mergeable_vma(vma, file, vm_flags)
            and ctx.scheme.is_mergeable_anon_vma(anon_vma, vma.anon_vma, vma, src)
            and (vma.vm_pgoff + vma.npages == vm_pgoff or _pgoff_free(ctx, file)))


def _pgoff_free(ctx: Any, file: File | None) -> bool:
    """Before rmap 39 anonymous VMAs merged without looking at pgoff."""
    return file is None and not ctx.scheme.anon_pgoff_matters()


def vma_merge(ctx: Any, mm: MmStruct, prev: VmAreaStruct | None, addr: int, end: int,
              vm_flags: int, anon_vma: Any, file: File | None, pgoff: int,
              src: VmAreaStruct | None = None) -> VmAreaStruct | None:
    """``vma_merge``: glue ``[addr, end)`` (with these flags, anon_vma, file
    and pgoff) onto ``prev`` and/or the VMA after it. Returns the VMA that
    now covers the range, or None. NUMA policies are always equal here.
    ``src`` is the VMA the range's pages come from (mprotect, mremap), for
    schemes whose merge rule looks at it."""
    if vm_flags & VM_SPECIAL:
        return None
    # copy_vma's range lies outside its source VMA; mprotect's inside it
    # (there vma_adjust's importer is the mechanism, selectable on its own).
    moved = src is not None and not src.vm_start <= addr < src.vm_end
    pglen = (end - addr) >> PAGE_SHIFT
    nxt = mm.vm_next(prev) if prev is not None else (mm.mmap[0] if mm.mmap else None)
    area = nxt
    if nxt is not None and nxt.vm_end == end:        # cases 6, 7, 8
        nxt = mm.vm_next(nxt)
    if (prev is not None and prev.vm_end == addr
            and can_vma_merge_after(ctx, prev, vm_flags, anon_vma, file, pgoff, src)):
        if (nxt is not None and end == nxt.vm_start
                and can_vma_merge_before(ctx, nxt, vm_flags, anon_vma, file, pgoff + pglen, src)
                and ctx.scheme.anon_vmas_compatible(prev, nxt)):
            vma_adjust(ctx, prev, prev.vm_start, nxt.vm_end, prev.vm_pgoff)   # cases 1, 6
        else:
            vma_adjust(ctx, prev, prev.vm_start, end, prev.vm_pgoff)          # cases 2, 5, 7
        if moved:
            _import_range(ctx, prev, anon_vma, src)
        ctx.stat.vma_merges += 1
        return prev
    if (nxt is not None and end == nxt.vm_start
            and can_vma_merge_before(ctx, nxt, vm_flags, anon_vma, file, pgoff + pglen, src)):
        assert area is not None                 # nxt is area or the VMA after it
        if prev is not None and addr < prev.vm_end:                         # case 4
            vma_adjust(ctx, prev, prev.vm_start, addr, prev.vm_pgoff)
        else:                                                                # cases 3, 8
            vma_adjust(ctx, area, addr, nxt.vm_end, nxt.vm_pgoff - pglen)
        if moved:
            _import_range(ctx, area, anon_vma, src)
        ctx.stat.vma_merges += 1
        return area
    return None


def _import_range(ctx: Any, vma: VmAreaStruct, anon_vma: Any, src: VmAreaStruct | None) -> None:
    """The VMA that now covers a range moved in by copy_vma, whose pages
    belong to ``anon_vma``, must be able to find them (``copy_vma_import``;
    see Config)."""
    if anon_vma is not None and vma.anon_vma is None and ctx.config.copy_vma_import:
        ctx.scheme.vma_import(vma, anon_vma, src)


def vma_adjust(ctx: Any, vma: VmAreaStruct, start: int, end: int, pgoff: int,
               insert: VmAreaStruct | None = None) -> None:
    """``vma_adjust``: set ``vma`` to ``[start, end)`` at ``pgoff``, sliding
    the next VMA's start or removing the VMAs it now covers; or insert a
    split piece. The VMA that receives pages gets the anon_vma first."""
    mm = vma.vm_mm
    nxt = mm.vm_next(vma)
    importer = None
    remove_next = 0
    adjust_next = 0
    anon_vma = None
    exporter = None
    if nxt is not None and insert is None:
        if end >= nxt.vm_end:
            remove_next = 1 + (end > nxt.vm_end)
            end = nxt.vm_end
            anon_vma, importer, exporter = nxt.anon_vma, vma, nxt
        elif end > nxt.vm_start:
            adjust_next = (end - nxt.vm_start) >> PAGE_SHIFT
            anon_vma, importer, exporter = nxt.anon_vma, vma, nxt
        elif end < vma.vm_end:
            adjust_next = -((vma.vm_end - end) >> PAGE_SHIFT)
            anon_vma, importer, exporter = nxt.anon_vma, nxt, vma
    if vma.anon_vma is not None:
        anon_vma = vma.anon_vma
    if anon_vma is not None and importer is not None and ctx.config.vma_adjust_importer:
        ctx.scheme.vma_import(importer, anon_vma, exporter)
    f = vma.vm_file
    if f is not None:
        f.i_mmap.remove(vma)
        if adjust_next:
            f.i_mmap.remove(nxt)
    vma.vm_start, vma.vm_end, vma.vm_pgoff = start, end, pgoff
    if adjust_next:
        assert nxt is not None
        nxt.vm_start += adjust_next << PAGE_SHIFT
        nxt.vm_pgoff += adjust_next
    if f is not None:
        f.i_mmap.insert(vma)
        if adjust_next:
            f.i_mmap.insert(nxt)
    if insert is not None:
        vma_link(ctx, mm, insert)
    while remove_next:
        assert nxt is not None
        mm.unlink(nxt)
        if f is not None:
            _unlink_file_vma(ctx, nxt, f)
        ctx.scheme.vma_absorb(vma, nxt)
        ctx.stat.vma_free += 1
        if remove_next == 2:
            # mprotect case 6: the VMA after the removed one goes too.
            nxt = mm.vm_next(vma)
            assert nxt is not None
            remove_next = 1 + (end > nxt.vm_end)
            end = nxt.vm_end
            if ctx.config.vma_adjust_importer:
                ctx.scheme.vma_import(vma, nxt.anon_vma, nxt)
            vma.vm_end = end
            if f is not None:
                f.i_mmap.remove(vma)
                f.i_mmap.insert(vma)
        else:
            remove_next = 0


def split_vma(ctx: Any, mm: MmStruct, vma: VmAreaStruct, addr: int, new_below: bool) -> None:
    """``split_vma``: cut ``vma`` at ``addr``; the new piece (below or
    above) shares its flags, file and anon_vma. ENOMEM at max_map_count."""
    if mm.map_count >= mm.max_map_count:
        raise SyscallError("ENOMEM", "split_vma: map_count at max_map_count")
    new = vma.copy()
    ctx.scheme.vma_clone(new, vma)
    if new_below:
        new.vm_end = addr
        vma_adjust(ctx, vma, addr, vma.vm_end, vma.vm_pgoff + ((addr - new.vm_start) >> PAGE_SHIFT), new)
    else:
        new.vm_start = addr
        new.vm_pgoff += (addr - vma.vm_start) >> PAGE_SHIFT
        vma_adjust(ctx, vma, vma.vm_start, addr, vma.vm_pgoff, new)
    ctx.stat.vma_splits += 1


def vma_modify_flags(ctx: Any, vma: VmAreaStruct, prev: VmAreaStruct | None, start: int,
                     end: int, newflags: int) -> VmAreaStruct:
    """Give ``[start, end)`` of ``vma`` the flags ``newflags``: merge it with
    ``prev`` and/or the next VMA (vma_merge cases 4-8), else split it out.
    The merge-or-split of 2.6's ``mprotect_fixup``, which modern kernels
    share as ``vma_modify_flags``. Returns the VMA that covers the range."""
    mm = vma.vm_mm
    pgoff = vma.vm_pgoff + ((start - vma.vm_start) >> PAGE_SHIFT)
    merged = vma_merge(ctx, mm, prev, start, end, newflags, vma.anon_vma, vma.vm_file, pgoff, vma)
    if merged is not None:
        vma = merged
    else:
        if start != vma.vm_start:
            split_vma(ctx, mm, vma, start, True)
        if end != vma.vm_end:
            split_vma(ctx, mm, vma, end, False)
    vma.vm_flags = newflags
    return vma


def find_mergeable_anon_vma(vma: VmAreaStruct, accept: Any = None) -> Any:
    """``find_mergeable_anon_vma`` (rmap 40): the anon_vma of a touching
    neighbour that mprotect could later merge with ``vma`` (same file,
    contiguous pgoff, flags equal apart from READ/WRITE/EXEC). ``accept``
    (a predicate on the neighbour VMA) adds a scheme's own condition, such
    as anon_vma_chain's singular chain."""
    mask = ~VM_PROT_MASK
    # (neighbour, the lower of the two, the upper): the next VMA first
    pairs: list[tuple[VmAreaStruct, VmAreaStruct, VmAreaStruct]] = []
    if vma.vm_next is not None:
        pairs.append((vma.vm_next, vma, vma.vm_next))
    if vma.vm_prev is not None:
        pairs.append((vma.vm_prev, vma.vm_prev, vma))
    for near, lo, hi in pairs:
        if (near.anon_vma is not None and lo.vm_end == hi.vm_start
                and near.vm_file is vma.vm_file
                and (near.vm_flags & mask) == (vma.vm_flags & mask)
                and lo.vm_pgoff + lo.npages == hi.vm_pgoff
                and (accept is None or accept(near))):
            return near.anon_vma
    return None


# -- address space allocation ----------------------------------------------------

def get_unmapped_area(mm: MmStruct, addr: int, length: int, flags: int, anon: bool = False) -> int:
    """``get_unmapped_area``: MAP_FIXED takes ``addr``; a free hint is used
    as is; otherwise the mm's layout searches (``mm.topdown``: the modern
    x86_64 ``arch_get_unmapped_area_topdown``, else 2.6's bottom-up
    ``arch_get_unmapped_area``). ``anon``: a private anonymous mapping,
    which the top-down layout aligns to 2 MiB when its length is a multiple
    of it (``thp_get_unmapped_area``, 6.7+)."""
    if flags & MAP_FIXED:
        if addr > TASK_SIZE - length:
            raise SyscallError("ENOMEM", "MAP_FIXED range beyond TASK_SIZE")
        if addr & ~PAGE_MASK:
            raise SyscallError("EINVAL", "MAP_FIXED address not page aligned")
        return addr
    if length > TASK_SIZE:
        raise SyscallError("ENOMEM", "length beyond TASK_SIZE")
    if mm.topdown:
        return _get_unmapped_area_topdown(mm, addr, length, anon)
    if addr:
        addr = PAGE_ALIGN(addr)
        vma = mm.find_vma(addr)
        if TASK_SIZE - length >= addr and (vma is None or addr + length <= vma.vm_start):
            return addr
    start = addr = max(mm.free_area_cache, TASK_UNMAPPED_BASE)
    while True:
        vma = mm.find_vma(addr)
        while True:
            if TASK_SIZE - length < addr:
                break
            if vma is None or addr + length <= vma.vm_start:
                mm.free_area_cache = addr + length
                return addr
            addr = vma.vm_end
            vma = mm.vm_next(vma)
        if start != TASK_UNMAPPED_BASE:
            start = addr = TASK_UNMAPPED_BASE
            continue
        raise SyscallError("ENOMEM", "no hole large enough")


def vm_start_gap(vma: VmAreaStruct) -> int:
    """``vm_start_gap``: a stack keeps ``stack_guard_gap`` free below it."""
    if vma.vm_flags & VM_GROWSDOWN:
        return max(vma.vm_start - STACK_GUARD_GAP, 0)
    return vma.vm_start


def _get_unmapped_area_topdown(mm: MmStruct, addr: int, length: int, anon: bool) -> int:
    """x86_64 ``arch_get_unmapped_area_topdown`` (6.18): a hint rounded
    down to a page is taken if the range up to the next VMA's start gap is
    free; else ``unmapped_area_topdown`` finds the highest gap below
    ``mm.mmap_base`` that fits; if none does, the bottom-up search from
    TASK_UNMAPPED_BASE. A private anonymous length that is a multiple of
    2 MiB (no hint) is searched with 2 MiB of padding and aligned."""
    if addr:
        addr &= PAGE_MASK
        if TASK_SIZE - length >= addr:
            vma = mm.find_vma(addr)
            if vma is None or addr + length <= vm_start_gap(vma):
                return addr
    elif anon and length % PMD_SIZE == 0:
        padded = length + PMD_SIZE
        found = _unmapped_area_topdown(mm, padded, MMAP_MIN_ADDR, mm.mmap_base)
        if found is not None:
            off = -found & (PMD_SIZE - 1)
            return found + (off or PMD_SIZE)
    found = _unmapped_area_topdown(mm, length, MMAP_MIN_ADDR, mm.mmap_base)
    if found is not None:
        return found
    saved, mm.free_area_cache = mm.free_area_cache, TASK_UNMAPPED_BASE
    mm.topdown = False
    try:
        return get_unmapped_area(mm, 0, length, 0)
    finally:
        mm.topdown, mm.free_area_cache = True, saved


def _unmapped_area_topdown(mm: MmStruct, length: int, low: int, high: int) -> int | None:
    """``unmapped_area_topdown``: the highest ``[gap_end - length,
    gap_end)`` between ``low`` and ``high`` clear of every VMA and of the
    guard gap below each stack."""
    mmap = mm.mmap
    i = bisect_left(mmap, high, key=_vm_start)
    gap_end = high
    while True:
        prev_end = mmap[i - 1].vm_end if i > 0 else 0
        if i < len(mmap):
            gap_end = min(gap_end, vm_start_gap(mmap[i]))
        start = max(prev_end, low)
        if gap_end >= start and gap_end - start >= length:
            return (gap_end - length) & PAGE_MASK
        if i == 0 or prev_end <= low:
            return None
        i -= 1
        gap_end = min(high, vm_start_gap(mmap[i]))


def _unmap_area(mm: MmStruct, vma: VmAreaStruct) -> None:
    """``arch_unmap_area``: let the next search start at a freed hole."""
    if TASK_UNMAPPED_BASE <= vma.vm_start < mm.free_area_cache:
        mm.free_area_cache = vma.vm_start


# -- mmap ------------------------------------------------------------------------------

def do_mmap_pgoff(ctx: Any, mm: MmStruct, file: File | None, addr: int, length: int,
                  prot: int, flags: int, pgoff: int) -> int:
    """``do_mmap_pgoff``: create a mapping; returns its address. The
    checks come in the kernel's order, so the first failing one decides
    the errno."""
    config = ctx.config
    if not length:
        if config.mmap_len0_einval:
            raise SyscallError("EINVAL", "length 0")
        return addr
    length = PAGE_ALIGN(length)
    if not length or length > TASK_SIZE:
        # 6.18 lets get_unmapped_area refuse a huge length (ENOMEM)
        if not (config.mmap_huge_len_enomem and length <= TASK_SIZE):
            raise SyscallError("ENOMEM" if config.mmap_huge_len_enomem else "EINVAL",
                               "length out of range")
    if pgoff + (length >> PAGE_SHIFT) >= 1 << 52:
        raise SyscallError("EINVAL", "offset + length overflows")
    if mm.map_count > mm.max_map_count:
        raise SyscallError("ENOMEM", "map_count above max_map_count")
    noreplace = bool(flags & MAP_FIXED_NOREPLACE) and config.mmap_fixed_noreplace
    if noreplace:
        flags |= MAP_FIXED
    mtype = flags & MAP_TYPE
    addr = get_unmapped_area(mm, addr, length, flags, file is None and mtype == MAP_PRIVATE)
    if noreplace and mm.vma_range(addr, addr + length):
        raise SyscallError("EEXIST", "MAP_FIXED_NOREPLACE over an existing mapping")
    vm_flags = calc_vm_flags(prot, flags)
    if file is not None:
        if mtype == MAP_SHARED:
            if (prot & PROT_WRITE) and not file.f_mode & FMODE_WRITE:
                raise SyscallError("EACCES", "shared writable mapping of a file not open for writing")
            vm_flags |= VM_SHARED | VM_MAYSHARE
            if not file.f_mode & FMODE_WRITE:
                vm_flags &= ~(VM_MAYWRITE | VM_SHARED)
        elif mtype != MAP_PRIVATE:
            raise SyscallError("EINVAL", "neither MAP_SHARED nor MAP_PRIVATE")
        if not file.f_mode & FMODE_READ:
            raise SyscallError("EACCES", "mapping of a file not open for reading")
    else:
        if mtype == MAP_SHARED:
            vm_flags |= VM_SHARED | VM_MAYSHARE
        elif mtype == MAP_PRIVATE:
            pgoff = addr >> PAGE_SHIFT
        else:
            raise SyscallError("EINVAL", "neither MAP_SHARED nor MAP_PRIVATE")
    # munmap_back: clear the way for MAP_FIXED.
    vma, prev = mm.find_vma_prev(addr)
    if vma is not None and vma.vm_start < addr + length:
        try:
            do_munmap(ctx, mm, addr, length)
        except SyscallError:
            raise SyscallError("ENOMEM", "could not unmap the MAP_FIXED range") from None
        vma, prev = mm.find_vma_prev(addr)
    if file is not None and vm_flags & VM_GROWSDOWN:
        raise SyscallError("EINVAL", "MAP_GROWSDOWN of a file")
    if flags & MAP_NORESERVE and config.vm_noreserve:
        vm_flags |= VM_NORESERVE        # (overcommit is not "never")
    if not (flags & MAP_NORESERVE):
        if vm_flags & VM_SHARED:
            vm_flags |= VM_ACCOUNT
        elif vm_flags & VM_WRITE:
            vm_flags |= VM_ACCOUNT
    if file is None and not (vm_flags & VM_SHARED) and vma_merge(
            ctx, mm, prev, addr, addr + length, vm_flags, None, None, pgoff):
        pass
    else:
        if file is None and vm_flags & VM_SHARED:
            # shmem_zero_setup: an unnamed shmem file backs the mapping.
            map_file = ctx.new_file("/dev/zero (deleted)", length, shmem=True)
        else:
            map_file = file
        if (vm_flags & (VM_SHARED | VM_ACCOUNT)) == (VM_SHARED | VM_ACCOUNT):
            vm_flags &= ~VM_ACCOUNT
        if file is None or not vma_merge(ctx, mm, prev, addr, addr + length, vm_flags, None, file, pgoff):
            vma_link(ctx, mm, VmAreaStruct(mm, addr, addr + length, vm_flags, pgoff, map_file))
    mm.total_vm += length >> PAGE_SHIFT
    if vm_flags & VM_LOCKED:
        mm.locked_vm += length >> PAGE_SHIFT
    if config.mm_populate:
        if vm_flags & VM_LOCKED or flags & MAP_POPULATE:
            mm_populate(ctx, mm, addr, addr + length, True)
        return addr
    if vm_flags & VM_LOCKED:
        make_pages_present(ctx, mm, addr, addr + length)
    if flags & MAP_POPULATE:
        populate(ctx, mm, addr, addr + length)
    return addr


def make_pages_present(ctx: Any, mm: MmStruct, start: int, end: int) -> str | None:
    """``make_pages_present`` → ``get_user_pages(write = first VMA's
    VM_WRITE, force = 0)``: each VMA must allow the access (VM_WRITE for a
    write, VM_READ for a read); pages beyond a file's end stop the walk
    (SIGBUS). Returns None when every page was done, else the errno Linux
    returns: EFAULT if none was, EPERM (-1) if only some were.
    A read of anonymous memory where no page table exists returns ZERO_PAGE
    without installing a pte (``untouched_anonymous_page``)."""
    first = mm.find_vma(start)
    write = bool(first is not None and first.vm_flags & VM_WRITE)
    need = VM_WRITE if write else VM_READ
    total = (end - start) >> PAGE_SHIFT
    done = 0
    addr = start
    while addr < end:
        vma = mm.find_vma(addr)
        if vma is None or vma.vm_start > addr or not vma.vm_flags & need:
            break
        s = addr >> PAGE_SHIFT
        e = min(end, vma.vm_end) >> PAGE_SHIFT
        f = vma.vm_file
        stop = e
        if f is not None:
            stop = min(e, max(s, (vma.vm_start >> PAGE_SHIFT) + f.size_pages - vma.vm_pgoff))
        if not write and f is None:
            for _, lo, hi, vpn in list(mm.pgd.runs(s, stop)):
                fault_range(ctx, vma, vpn, vpn + hi - lo, False, None)
        elif s < stop:
            fault_range(ctx, vma, s, stop, write, None)
        done += stop - s
        if stop < e:
            break
        addr = e << PAGE_SHIFT
    if done == total:
        return None
    return "EPERM" if done else "EFAULT"


def mm_populate(ctx: Any, mm: MmStruct, start: int, end: int, ignore_errors: bool) -> str | None:
    """Modern ``__mm_populate`` (MAP_POPULATE, MAP_LOCKED, mlock, locked
    mremap growth): each VMA of the range but special ones, in order, by
    ``populate_vma_page_range``: write faults where the VMA is private and
    writable (COW broken), read faults otherwise (the zero page for
    anonymous memory, page cache and fault-around for files), forced
    through any protection but PROT_NONE. An error (PROT_NONE, a file page
    beyond EOF) stops the walk and is returned as "EFAULT", unless
    ``ignore_errors`` (mmap's populate) goes on with the next VMA."""
    addr = start
    while addr < end:
        vma = mm.find_vma(addr)
        if vma is None or vma.vm_start >= end:
            return None
        s, e = max(addr, vma.vm_start) >> PAGE_SHIFT, min(end, vma.vm_end) >> PAGE_SHIFT
        addr = e << PAGE_SHIFT
        if vma.vm_flags & VM_IO:
            continue
        err = populate_vma_page_range(ctx, vma, s, e)
        if err and not ignore_errors:
            return err
    return None


def populate_vma_page_range(ctx: Any, vma: VmAreaStruct, s: int, e: int) -> str | None:
    """``populate_vma_page_range`` (modern): fault vpns ``[s, e)`` of
    ``vma`` in as ``get_user_pages`` would; "EFAULT" where it stops."""
    flags = vma.vm_flags
    write = (flags & (VM_WRITE | VM_SHARED)) == VM_WRITE
    if not flags & (VM_READ | VM_WRITE | VM_EXEC):
        return "EFAULT"                     # GUP without FOLL_FORCE on PROT_NONE
    stop = e
    f = vma.vm_file
    if f is not None:
        stop = min(e, max(s, (vma.vm_start >> PAGE_SHIFT) + f.size_pages - vma.vm_pgoff))
    if s < stop:
        fault_range(ctx, vma, s, stop, write, None)
    if stop < e:
        fault_sigbus(ctx, vma, stop, write)
        return "EFAULT"
    return None


def populate(ctx: Any, mm: MmStruct, start: int, end: int) -> None:
    """MAP_POPULATE in 2.6.11 goes through ``sys_remap_file_pages``, which
    only populates shared file (and shmem) mappings, by read faults, and
    only ``[start, end)`` (the mapping may have merged into a larger VMA)."""
    vma = mm.find_vma(start)
    if vma is None or not (vma.vm_flags & VM_SHARED) or vma.vm_file is None:
        return
    base = vma.vm_start >> PAGE_SHIFT
    s = start >> PAGE_SHIFT
    e = min(min(end, vma.vm_end) >> PAGE_SHIFT, base + vma.vm_file.size_pages - vma.vm_pgoff)
    if s < e:
        fault_range(ctx, vma, s, e, False, None)


def install_special_mapping(ctx: Any, mm: MmStruct, start: int, end: int, prot: int) -> VmAreaStruct:
    """``_install_special_mapping``: a VMA the process did not map (vDSO,
    a program image): VM_IO|VM_DONTEXPAND, so it never merges, never
    grows and reclaim never looks inside. It holds no pages."""
    if start & ~PAGE_MASK or end & ~PAGE_MASK or not start < end <= TASK_SIZE or mm.vma_range(start, end):
        raise SyscallError("EINVAL", f"special mapping {start:#x}-{end:#x} is not a free range")
    vma = VmAreaStruct(mm, start, end, calc_vm_flags(prot, 0) | VM_IO | VM_DONTEXPAND,
                       start >> PAGE_SHIFT)
    vma_link(ctx, mm, vma)
    mm.total_vm += vma.npages
    return vma


# -- munmap ------------------------------------------------------------------------

def do_munmap(ctx: Any, mm: MmStruct, start: int, length: int) -> int:
    """``do_munmap``: split the end VMAs, detach, zap, free page tables,
    remove the VMAs. An unmapped range is not an error."""
    if start & ~PAGE_MASK or start > TASK_SIZE or length > TASK_SIZE - start:
        raise SyscallError("EINVAL", "bad munmap range")
    length = PAGE_ALIGN(length)
    if not length:
        raise SyscallError("EINVAL", "length 0")
    mpnt, prev = mm.find_vma_prev(start)
    if mpnt is None:
        return 0
    end = start + length
    if mpnt.vm_start >= end:
        return 0
    if start > mpnt.vm_start:
        split_vma(ctx, mm, mpnt, start, False)
    last = mm.find_vma(end)
    if last is not None and end > last.vm_start:
        split_vma(ctx, mm, last, end, True)
    doomed = mm.vma_range(start, end)
    for vma in doomed:                      # detach_vmas_to_be_unmapped
        mm.unlink(vma)
    for vma in doomed:                      # unmap_region
        zap_page_range(ctx, vma, vma.vm_start, vma.vm_end)
    mm.pgd.free_pgtables(start >> PAGE_SHIFT, end >> PAGE_SHIFT)
    for vma in doomed:                      # unmap_vma_list
        pages = vma.npages
        mm.total_vm -= pages
        if vma.vm_flags & VM_LOCKED:
            mm.locked_vm -= pages
        _unmap_area(mm, vma)
        remove_vm_struct(ctx, vma)
    return 0


# -- brk -------------------------------------------------------------------------------

VM_DATA_DEFAULT_FLAGS = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC


def do_brk(ctx: Any, mm: MmStruct, addr: int, length: int) -> int:
    """``do_brk``: extend the heap by an anonymous mapping at ``addr``,
    merging with the previous heap VMA where ``vma_merge`` allows."""
    length = PAGE_ALIGN(length)
    if not length:
        return addr
    if addr + length > TASK_SIZE or addr + length < addr:
        raise SyscallError("EINVAL", "brk beyond TASK_SIZE")
    vma, prev = mm.find_vma_prev(addr)
    if vma is not None and vma.vm_start < addr + length:
        do_munmap(ctx, mm, addr, length)
        vma, prev = mm.find_vma_prev(addr)
    if mm.map_count > mm.max_map_count:
        raise SyscallError("ENOMEM", "map_count above max_map_count")
    flags = VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT
    pgoff = addr >> PAGE_SHIFT
    if not vma_merge(ctx, mm, prev, addr, addr + length, flags, None, None, pgoff):
        vma_link(ctx, mm, VmAreaStruct(mm, addr, addr + length, flags, pgoff))
    mm.total_vm += length >> PAGE_SHIFT
    return addr


def sys_brk(ctx: Any, mm: MmStruct, brk: int) -> int:
    """``sys_brk``: returns the new break, or the old one on failure."""
    if brk < mm.end_code:
        return mm.brk
    newbrk = PAGE_ALIGN(brk)
    oldbrk = PAGE_ALIGN(mm.brk)
    if oldbrk != newbrk:
        if brk <= mm.brk:
            try:
                do_munmap(ctx, mm, newbrk, oldbrk - newbrk)
            except SyscallError:
                return mm.brk
        else:
            if mm.vma_range(oldbrk, newbrk + PAGE_SIZE):
                return mm.brk
            try:
                if do_brk(ctx, mm, oldbrk, newbrk - oldbrk) != oldbrk:
                    return mm.brk
            except SyscallError:
                return mm.brk
    mm.brk = brk
    return brk


# -- exit ------------------------------------------------------------------------------

def exit_mmap(ctx: Any, mm: MmStruct) -> None:
    """``exit_mmap``: zap every VMA, free the page tables, remove the VMAs."""
    for vma in mm.mmap:
        ctx.stat.exit_ptes += zap_page_range(ctx, vma, vma.vm_start, vma.vm_end)
    mm.pgd.clear()
    vmas, mm.mmap = mm.mmap, []
    mm.map_count = 0
    for vma in vmas:
        remove_vm_struct(ctx, vma)
    mm.total_vm = mm.locked_vm = 0
    ctx.scheme.mm_exit(mm)


def copy_vma(ctx: Any, vma: VmAreaStruct, addr: int, length: int,
             pgoff: int) -> tuple[VmAreaStruct, VmAreaStruct]:
    """``copy_vma`` (mremap): a VMA for ``[addr, addr+length)`` carrying
    ``vma``'s flags, file and anon_vma at ``pgoff``; an unfaulted anonymous
    VMA is re-based to the new address. Returns (new_vma, source vma),
    the latter changed if the source itself was merged into the new VMA."""
    mm = vma.vm_mm
    vma_start = vma.vm_start
    if vma.vm_file is None and vma.anon_vma is None:
        pgoff = addr >> PAGE_SHIFT
    _, prev = mm.find_vma_prev(addr)
    new = vma_merge(ctx, mm, prev, addr, addr + length, vma.vm_flags, vma.anon_vma, vma.vm_file,
                    pgoff, vma)
    if new is not None:
        if new.vm_start <= vma_start < new.vm_end:
            vma = new
        return new, vma
    new = vma.copy()
    new.vm_start, new.vm_end, new.vm_pgoff = addr, addr + length, pgoff
    ctx.scheme.vma_clone(new, vma)
    vma_link(ctx, mm, new)
    return new, vma


def check_mm_ptes(mm: MmStruct) -> None:
    """No pte may exist outside a VMA."""
    prev_end = 0
    for vma in mm.mmap:
        check_no_pte(mm, prev_end >> PAGE_SHIFT, vma.vm_start >> PAGE_SHIFT)
        prev_end = vma.vm_end
    check_no_pte(mm, prev_end >> PAGE_SHIFT, (TASK_SIZE >> PAGE_SHIFT) + 1)


