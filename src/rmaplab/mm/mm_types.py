"""``struct vm_area_struct`` and ``struct mm_struct`` (include/linux/mm.h,
include/linux/sched.h, 2.6.11), with the vm_flags bits.

The per-mm VMA list ``mmap`` is a Python list sorted by ``vm_start``; it
stands for both the kernel's vm_next list and the mm_rb rbtree (bisection
gives the rbtree's O(log n) lookup).
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import count
from operator import attrgetter
from typing import Any

from rmaplab.asm.page import DEFAULT_MAX_MAP_COUNT, MMAP_BASE, PAGE_SHIFT, TASK_UNMAPPED_BASE
# The flags live in rmaplab.include.mm (rmap needs them too); code imports them from here as well.
from rmaplab.include.mm import (VM_ACCOUNT, VM_DONTCOPY, VM_DONTEXPAND, VM_EXEC,  # noqa: F401
                                VM_GROWSDOWN, VM_GROWSUP, VM_IO, VM_LOCKED, VM_MAYEXEC, VM_MAYREAD,
                                VM_MAYSHARE, VM_MAYWRITE, VM_NORESERVE, VM_PROT_MASK, VM_RAND_READ,
                                VM_READ, VM_RESERVED, VM_SEQ_READ, VM_SHARED, VM_SPECIAL, VM_WRITE)
from rmaplab.mm.pgtable import PageTable, TableCount


FLAG_NAMES = {VM_READ: "READ", VM_WRITE: "WRITE", VM_EXEC: "EXEC", VM_SHARED: "SHARED",
              VM_MAYREAD: "MAYREAD", VM_MAYWRITE: "MAYWRITE", VM_MAYEXEC: "MAYEXEC",
              VM_MAYSHARE: "MAYSHARE", VM_GROWSDOWN: "GROWSDOWN", VM_GROWSUP: "GROWSUP",
              VM_LOCKED: "LOCKED", VM_IO: "IO", VM_SEQ_READ: "SEQ_READ",
              VM_RAND_READ: "RAND_READ", VM_DONTCOPY: "DONTCOPY",
              VM_DONTEXPAND: "DONTEXPAND", VM_RESERVED: "RESERVED", VM_ACCOUNT: "ACCOUNT",
              VM_NORESERVE: "NORESERVE"}


def flag_names(flags: int) -> str:
    return "|".join(n for bit, n in FLAG_NAMES.items() if flags & bit) or "0"


def is_cow_mapping(flags: int) -> bool:
    """Private and possibly writable: fork write-protects it (copy_one_pte)."""
    return (flags & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE


_vma_serial = count(1)


class VmAreaStruct:
    """One VMA: ``[vm_start, vm_end)`` of ``vm_mm`` with one set of flags.

    ``anon_vma`` is owned by the rmap scheme (an opaque object, or None);
    ``rmap`` is a free slot for scheme-private per-VMA state (the
    anon_vma_chain list, for example). ``serial`` names the VMA in dumps and
    errors; the kernel has no such field.
    """

    __slots__ = ("vm_mm", "vm_start", "vm_end", "vm_flags", "vm_pgoff", "vm_file",
                 "anon_vma", "rmap", "serial", "vm_next", "vm_prev", "__weakref__")

    def __init__(self, mm: MmStruct, start: int, end: int, flags: int, pgoff: int,
                 file: Any = None) -> None:      # an mm.filemap.File, which imports us
        self.vm_mm = mm
        self.vm_start = start
        self.vm_end = end
        self.vm_flags = flags
        self.vm_pgoff = pgoff
        self.vm_file = file
        self.anon_vma: Any = None
        self.rmap: Any = None
        self.serial = next(_vma_serial)
        #: neighbours in the mm's sorted list (the kernel's vm_next; vm_prev
        #: is the model's, the kernel of 2.6 finds prev by search)
        self.vm_next: VmAreaStruct | None = None
        self.vm_prev: VmAreaStruct | None = None

    def copy(self) -> VmAreaStruct:
        """``*new = *vma``: every field but the list links, a new identity."""
        new = VmAreaStruct(self.vm_mm, self.vm_start, self.vm_end, self.vm_flags,
                           self.vm_pgoff, self.vm_file)
        new.anon_vma = self.anon_vma
        return new

    @property
    def npages(self) -> int:
        return (self.vm_end - self.vm_start) >> PAGE_SHIFT

    def __repr__(self) -> str:
        f = f" file={self.vm_file.name}" if self.vm_file is not None else ""
        return (f"<vma#{self.serial} {self.vm_start:#x}-{self.vm_end:#x} pgoff={self.vm_pgoff:#x}"
                f" {flag_names(self.vm_flags)}{f} av={self.anon_vma!r}>")


_start = attrgetter("vm_start")
_mm_serial = count(1)


class MmStruct:
    """One address space: the sorted VMA list, page tables and counters."""

    def __init__(self, start_brk: int, max_map_count: int = DEFAULT_MAX_MAP_COUNT,
                 tables: TableCount | None = None) -> None:
        self.mmap: list[VmAreaStruct] = []
        self.map_count = 0
        self.pgd = PageTable(tables)
        self.rss = 0
        self.anon_rss = 0
        self.total_vm = 0
        self.locked_vm = 0
        self.start_brk = self.brk = self.end_code = start_brk
        self.free_area_cache = TASK_UNMAPPED_BASE
        #: the layout (``arch_pick_mmap_layout``): top-down below mmap_base,
        #: or 2.6's bottom-up from TASK_UNMAPPED_BASE
        self.topdown = False
        self.mmap_base = MMAP_BASE
        self.max_map_count = max_map_count
        self.rmap: Any = None            # scheme-private per-mm state (anonmm)
        self.serial = next(_mm_serial)
        self.owner = 0                   # pid, for printing

    # -- lookups (mm/mmap.c) -------------------------------------------------

    def find_vma(self, addr: int) -> VmAreaStruct | None:
        """``find_vma``: the first VMA with ``vm_end > addr``."""
        mmap = self.mmap
        i = bisect_right(mmap, addr, key=_start) - 1
        if i >= 0 and mmap[i].vm_end > addr:
            return mmap[i]
        return mmap[i + 1] if i + 1 < len(mmap) else None

    def find_vma_prev(self, addr: int) -> tuple[VmAreaStruct | None, VmAreaStruct | None]:
        """``find_vma_prev``: (find_vma(addr), the VMA before it)."""
        mmap = self.mmap
        i = bisect_right(mmap, addr, key=_start) - 1
        if i >= 0 and mmap[i].vm_end > addr:
            return mmap[i], (mmap[i - 1] if i > 0 else None)
        nxt = mmap[i + 1] if i + 1 < len(mmap) else None
        return nxt, (mmap[i] if i >= 0 else None)

    def index_of(self, vma: VmAreaStruct) -> int:
        mmap = self.mmap
        i = bisect_right(mmap, vma.vm_start, key=_start) - 1
        assert mmap[i] is vma, (vma, mmap[i])
        return i

    def vm_next(self, vma: VmAreaStruct) -> VmAreaStruct | None:
        return vma.vm_next

    def vma_range(self, start: int, end: int) -> list[VmAreaStruct]:
        """The VMAs that overlap ``[start, end)``, in address order."""
        mmap = self.mmap
        i = max(bisect_right(mmap, start, key=_start) - 1, 0)
        out = []
        while i < len(mmap) and mmap[i].vm_start < end:
            if mmap[i].vm_end > start:
                out.append(mmap[i])
            i += 1
        return out

    # -- list maintenance (__vma_link_list / __vma_unlink) --------------------

    def link(self, vma: VmAreaStruct) -> None:
        mmap = self.mmap
        i = bisect_right(mmap, vma.vm_start, key=_start)
        prev = mmap[i - 1] if i else None
        nxt = mmap[i] if i < len(mmap) else None
        mmap.insert(i, vma)
        vma.vm_prev, vma.vm_next = prev, nxt
        if prev is not None:
            prev.vm_next = vma
        if nxt is not None:
            nxt.vm_prev = vma
        self.map_count += 1

    def unlink(self, vma: VmAreaStruct) -> None:
        del self.mmap[self.index_of(vma)]
        prev, nxt = vma.vm_prev, vma.vm_next
        if prev is not None:
            prev.vm_next = nxt
        if nxt is not None:
            nxt.vm_prev = prev
        vma.vm_prev = vma.vm_next = None
        self.map_count -= 1

    def __repr__(self) -> str:
        return f"<mm#{self.serial} pid={self.owner} vmas={self.map_count}>"
