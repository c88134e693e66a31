"""Files: ``struct address_space`` with its page cache and ``i_mmap``.

Models the parts of mm/filemap.c, mm/shmem.c and include/linux/fs.h that
rmap needs. A file's page cache is a sparse array of pfns (the radix tree);
``i_mmap`` is an interval index of the VMAs mapping the file, standing in for
the radix priority search tree of 2.6.7 (same queries: every VMA whose
``[vm_pgoff, vm_pgoff + pages)`` covers an index).

Shared anonymous memory is shmem: each such mmap gets its own unnamed shmem
file whose pages start as zeros (``shmem_zero_setup``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sortedcontainers import SortedKeyList

from rmaplab.asm.page import PAGE_SIZE
from rmaplab.mm.pgtable import PageTable

if TYPE_CHECKING:
    from rmaplab.mm.mm_types import VmAreaStruct


#: ``file->f_mode`` bits: how the descriptor behind a mapping was opened
FMODE_READ, FMODE_WRITE = 0x1, 0x2
FMODES = {"rw": FMODE_READ | FMODE_WRITE, "r": FMODE_READ, "w": FMODE_WRITE}


def _imm_key(vma: VmAreaStruct) -> tuple[int, int]:
    return (vma.vm_pgoff, vma.serial)


class PrioTree:
    """The VMAs mapping a file, indexed by their page-offset interval.

    Keys are ``vm_pgoff``; callers remove a VMA before changing its pgoff or
    length and insert it again after, as ``vma_adjust`` does with
    ``vma_prio_tree_remove``/``vma_prio_tree_insert``.
    """

    def __init__(self) -> None:
        self._list: SortedKeyList = SortedKeyList(key=_imm_key)
        self._maxlen = 0

    def __len__(self) -> int:
        return len(self._list)

    def __iter__(self) -> Iterator[VmAreaStruct]:
        return iter(self._list)

    def insert(self, vma: VmAreaStruct) -> None:
        self._list.add(vma)
        self._maxlen = max(self._maxlen, vma.npages)

    def remove(self, vma: VmAreaStruct) -> None:
        self._list.remove(vma)

    def __contains__(self, vma: VmAreaStruct) -> bool:
        return vma in self._list

    def query(self, index: int) -> Iterator[VmAreaStruct]:
        """``vma_prio_tree_foreach(index, index)``: VMAs covering ``index``."""
        lo = (index - self._maxlen + 1, -1)
        for vma in self._list.irange_key(lo, (index, 1 << 62)):
            if vma.vm_pgoff + vma.npages > index:
                yield vma


class File:
    """A file (inode + address_space). ``size`` is in bytes.

    ``page_cache`` maps page index → pfn of the cached page. ``disk`` holds
    the content tokens written back; a page never written back still has its
    original content: ``"<name>:<i>"`` for a declared file, zeros for shmem.
    """

    def __init__(self, file_id: int, name: str, size: int, token_base: int,
                 shmem: bool = False, writable: bool = True) -> None:
        self.id = file_id
        self.name = name
        self.size = size
        self.shmem = shmem
        self.writable = writable
        self.token_base = token_base
        self.page_cache = PageTable()
        self.disk = PageTable()
        self.i_mmap = PrioTree()
        self.i_mmap_writable = 0
        self.nrpages = 0
        #: a File stands for itself opened read-write; other modes are
        #: ``OpenFile`` descriptions of it (``open_file``)
        self.f_mode = FMODE_READ | FMODE_WRITE
        self.opened: dict[int, OpenFile] = {}

    def open_file(self, mode: str) -> File | OpenFile:
        """The open file description of this file in ``mode`` ("rw", "r",
        "w"). The trace format says a process tree opens a file once per
        mode; a VMA's ``vm_file`` is that description, so VMAs of one file
        opened twice never merge (vma_merge compares ``vm_file``)."""
        f_mode = FMODES[mode]
        if f_mode == self.f_mode:
            return self
        of = self.opened.get(f_mode)
        if of is None:
            of = self.opened[f_mode] = OpenFile(self, f_mode)
        return of

    @property
    def mapping_tag(self) -> int:
        """The value of ``page->mapping`` for this file's pages."""
        return self.id << 1

    @property
    def size_pages(self) -> int:
        return (self.size + PAGE_SIZE - 1) // PAGE_SIZE

    def original_token(self, index: int) -> int:
        return 0 if self.shmem else self.token_base | index

    def disk_token(self, index: int) -> int:
        t = self.disk.get(index)
        return t if t else self.original_token(index)

    def __repr__(self) -> str:
        return f"<file {self.name} {self.size}B>"


class OpenFile:
    """``struct file`` for a mode other than read-write: its own identity
    and ``f_mode``; everything else (page cache, ``i_mmap``, size) is the
    file's, so rmap, faults and reclaim see one file."""

    __slots__ = ("file", "f_mode")

    def __init__(self, file: File, f_mode: int) -> None:
        object.__setattr__(self, "file", file)
        object.__setattr__(self, "f_mode", f_mode)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.file, name, value)

    def __repr__(self) -> str:
        mode = {v: k for k, v in FMODES.items()}[self.f_mode]
        return f"<file {self.file.name} {self.file.size}B open {mode}>"
