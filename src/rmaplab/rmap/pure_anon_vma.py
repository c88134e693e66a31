"""``pure_anon_vma``: the variant the rmap 39 patch considered and set aside.

anon_vmas exist only for purely anonymous VMAs. A private file mapping
gets none: the anonymous pages it acquires by copy-on-write point at the
file instead (``page->mapping`` tagged as anonymous, ``page->index`` the
file offset, which is the linear index there), and a walk from such a page
searches the file's ``i_mmap`` prio tree: every VMA of the file, in every
process, that covers the index. The seed (Hugh Dickins, "rmap 39 add
anon_vma rmap", 2004) predicted this "long search for each private copy"
and called the variant "probably not a good idea"; this scheme measures it.

What it saves: no anon_vma object, list link or lock for private file
VMAs (shared libraries' data and the like). What it costs: each walk of a
COW page visits every mapping of the file at that offset — the shared
text's readers included.

Everything else is ``anon_vma`` (2.6.7), unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from rmaplab.asm.page import PAGE_SHIFT
from rmaplab.errors import InvariantError
from rmaplab.include.mm import VM_SHARED
from rmaplab.rmap.anon_vma import AnonVmaScheme
from rmaplab.rmap.protocols import MappedFile, Vma

#: ``page->mapping`` of a COW page of a private file VMA: the file's id
#: with this bit and PAGE_MAPPING_ANON (the anon_vma ids never reach it)
FILE_ANON = 1 << 62


class PureAnonVmaScheme(AnonVmaScheme):
    """anon_vma for purely anonymous VMAs only; private file COW pages are
    found through the file's i_mmap."""

    name = "pure_anon_vma"
    file_vmas_get_anon_vma = False

    @staticmethod
    def _tag(f: MappedFile) -> int:
        """``page->mapping`` of a COW page of file ``f``."""
        return FILE_ANON | (f.id << 1) | 1

    def anon_vma_prepare(self, vma: Vma) -> None:
        """Private file VMAs get no anon_vma (their COW pages point at the
        file); anonymous VMAs as in 2.6.7."""
        if vma.vm_file is None:
            super().anon_vma_prepare(vma)

    def _set_anon(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray, new: bool) -> None:
        f = vma.vm_file
        if f is None:
            super()._set_anon(pfns, vma, vpns, new)
            return
        mem = self.mem
        mem.mapping[pfns] = self._tag(f)
        mem.index[pfns] = vma.vm_pgoff + (vpns - (vma.vm_start >> PAGE_SHIFT))

    def _check_same(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray) -> None:
        f = vma.vm_file
        if f is None:
            super()._check_same(pfns, vma, vpns)
            return
        idx = vma.vm_pgoff + (vpns - (vma.vm_start >> PAGE_SHIFT))
        bad = (self.mem.index[pfns] != idx) | (self.mem.mapping[pfns] != self._tag(f))
        if bad.any():
            raise InvariantError(f"page_add_anon_rmap: pfn {int(pfns[bad][0])} in {vma!r}"
                                 f" disagrees on index or file")

    def anon_candidates(self, pfn: int) -> Iterator[tuple[Vma, int]]:
        """A COW page of a file: the "long search", every VMA of the file
        covering ``page->index`` (``vma_prio_tree_foreach``) under the
        file's i_mmap lock; an anonymous page: the anon_vma list."""
        m = int(self.mem.mapping[pfn])
        if not m & FILE_ANON:
            yield from super().anon_candidates(pfn)
            return
        f = self.ctx.file_of(m & ~FILE_ANON & ~1)
        index = int(self.mem.index[pfn])
        self.st.lock_i_mmap += 1
        for vma in f.i_mmap.query(index):
            self.st.rmap_vmas_visited += 1
            if vma.vm_flags & VM_SHARED:        # shared mappings hold no private copies
                self.st.rmap_vmas_skipped += 1
                continue
            yield vma, vma.vm_start + ((index - vma.vm_pgoff) << PAGE_SHIFT)

    def check_mapped(self, vma: Vma, pfns: np.ndarray, vpns: np.ndarray) -> None:
        """Closure: a file VMA's COW pages point at its file; anonymous VMAs
        as in 2.6.7."""
        f = vma.vm_file
        if f is None:
            super().check_mapped(vma, pfns, vpns)
            return
        bad = self.mem.mapping[pfns] != self._tag(f)
        if bad.any():
            raise InvariantError(f"pfn {int(pfns[bad][0])} is a COW page of {vma!r} but does not"
                                 f" point at its file")

    def check_vma(self, vma: Vma) -> None:
        if vma.vm_file is not None and vma.anon_vma is not None:
            raise InvariantError(f"{vma!r}: a file VMA with an anon_vma under pure_anon_vma")
        super().check_vma(vma)
