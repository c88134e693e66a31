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
from typing import TYPE_CHECKING

from sortedcontainers import SortedKeyList

from rmaplab.asm.page import PAGE_SIZE
from rmaplab.mm.pgtable import PageTable

if TYPE_CHECKING:
    from rmaplab.mm.mm_types import VmAreaStruct


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
