"""No reverse map at all: the 2.4 baseline (kernel-rmap.md §4.4's column
zero).

Linux 2.4 kept nothing per page that leads back to its ptes; the VM found
mapped pages by scanning virtual memory (``swap_out`` → ``swap_out_mm`` →
``swap_out_vma`` → … → ``try_to_swap_out`` on each pte). This scheme gives
the model's page-based walks (``page_referenced``, ``try_to_unmap``, the
completeness check's ``rmap_walk``) exactly that means: to find the ptes of
one page, scan the page tables of every live mm, VMA by VMA, comparing each
pte with the page. No per-page, per-VMA or per-mm metadata is kept beyond
the list of live mms (2.4's ``init_mm.mmlist``, which existed anyway).

Counted per walk: every mm on the list (``rmap_mms_visited``), every VMA of
an mm with resident pages (``rmap_vmas_visited``), every pte page scanned
for a VMA (``rmap_pgtable_walks``; a pte page shared by two VMAs is scanned
once for each, as swap_out_vma did), every pte slot compared inside the
VMA's range (``rmap_ptes_compared``, up to the last hit when the caller
stops early) and every hit (``rmap_ptes_found``). An mm with no resident
pages is skipped without a scan. The per-candidate
steps (the page_table_lock taken on each hit, the unmap itself) are the
base class's 2.6.11 ones.

Page fields: ``page->mapping`` of an anonymous page is the bare
PAGE_MAPPING_ANON bit (1), which the model uses to tell anonymous pages
apart (2.4 left it NULL); ``page->index`` is unused and stays 0
(``expected_index``). Anonymous VMAs merge on flags alone
(``anon_pgoff_matters`` is False), as before rmap 39.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from rmaplab.asm.page import PAGE_SHIFT
from rmaplab.asm.pgtable import _PAGE_PRESENT, PTE_PFN_SHIFT
from rmaplab.errors import InvariantError
from rmaplab.rmap.scheme import PteLevelScheme, vma_ref
from rmaplab.rmap.protocols import Mm, RmapContext, Vma

ANON_MAPPING = PteLevelScheme.ANON_MAPPING


class NoRmapScheme(PteLevelScheme):
    """Find a page's mappings by scanning every mm's page tables."""

    name = "none"
    has_anon_vma = False
    candidates_checked = True

    def __init__(self, ctx: RmapContext) -> None:
        super().__init__(ctx)
        #: live mms, oldest first (mm.serial -> mm)
        self.mms: dict[int, Mm] = {}

    # -- the mm list -----------------------------------------------------------------

    def mm_exec(self, mm: Mm) -> None:
        self.mms[mm.serial] = mm

    def mm_fork(self, child_mm: Mm, parent_mm: Mm) -> None:
        self.mms[child_mm.serial] = child_mm

    def mm_exit(self, mm: Mm) -> None:
        self.mms.pop(mm.serial, None)

    def _see(self, mm: Mm) -> None:
        # an mm made without the exec/fork hooks still gets scanned
        if mm.serial not in self.mms:
            self.mms[mm.serial] = mm

    # -- pages --------------------------------------------------------------------------

    def page_add_anon_rmap(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray,
                           new: bool = True) -> None:
        self._see(vma.vm_mm)
        super().page_add_anon_rmap(pfns, vma, vpns, new)

    def page_add_file_rmap(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray) -> None:
        self._see(vma.vm_mm)
        super().page_add_file_rmap(pfns, vma, vpns)

    def page_dup_rmap(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray) -> None:
        self._see(vma.vm_mm)
        super().page_dup_rmap(pfns, vma, vpns)

    # -- walks ----------------------------------------------------------------------------

    def candidates(self, pfn: int) -> Iterator[tuple[Vma, int]]:
        """Every (vma, address) whose pte maps ``pfn``, anonymous or file,
        found by scanning all page tables of all live mms."""
        if not self.mem.mapcount[pfn]:
            return
        st = self.st
        for mm in list(self.mms.values()):
            st.rmap_mms_visited += 1
            if not mm.rss:
                continue
            pgd = mm.pgd
            for vma in list(mm.mmap):
                st.rmap_vmas_visited += 1
                for t, lo, hi, vpn in pgd.runs(vma.vm_start >> PAGE_SHIFT, vma.vm_end >> PAGE_SHIFT):
                    st.rmap_pgtable_walks += 1
                    seg = t[lo:hi]
                    hits = np.flatnonzero(((seg & _PAGE_PRESENT) != 0) & ((seg >> PTE_PFN_SHIFT) == pfn))
                    done = 0            # ptes of this run compared so far
                    for h in hits.tolist():
                        st.rmap_ptes_compared += h + 1 - done
                        done = h + 1
                        st.rmap_ptes_found += 1
                        yield vma, (vpn + h) << PAGE_SHIFT
                    st.rmap_ptes_compared += hi - lo - done

    def anon_candidates(self, pfn: int) -> Iterator[tuple[Vma, int]]:
        return self.candidates(pfn)

    # -- description (read-only, for drawings) ----------------------------------------------

    def describe(self, limit: int = 64) -> dict[str, Any]:
        """The only structure: the list of live mms a walk scans (2.4's
        ``init_mm.mmlist``), oldest first."""
        pids = [int(mm.owner) for mm in list(self.mms.values())[:limit]]
        return {"scheme": self.name, "kind": "none", "mms": pids, "nr_mms": len(self.mms),
                "metadata": self.metadata_bytes()}

    def walk_visits(self, pfn: int, limit: int = 64) -> list[dict[str, Any]]:
        """Every VMA of every live mm with resident pages, scanned pte by
        pte: one entry per VMA (``addr`` None) or per pte found in it."""
        out: list[dict[str, Any]] = []
        if not self.mem.mapcount[pfn]:
            return out
        for mm in list(self.mms.values()):
            if not mm.rss:
                continue
            for vma in mm.mmap:
                vpns, ptes = mm.pgd.populated(vma.vm_start >> PAGE_SHIFT, vma.vm_end >> PAGE_SHIFT)
                hits = vpns[((ptes & _PAGE_PRESENT) != 0) & ((ptes >> PTE_PFN_SHIFT) == pfn)]
                if not len(hits):
                    out.append({"vma": vma_ref(vma), "pid": int(mm.owner), "addr": None,
                                "found": False})
                for vpn in hits.tolist():
                    out.append(self._visit(vma, vpn << PAGE_SHIFT, pfn))
                if len(out) >= limit:
                    return out[:limit]
        return out

    # -- checking -----------------------------------------------------------------------------

    def check(self) -> None:
        for serial, mm in self.mms.items():
            if mm.serial != serial:
                raise InvariantError(f"{mm!r} is listed under serial {serial}")

    def check_mapped(self, vma: Vma, pfns: np.ndarray, vpns: np.ndarray) -> None:
        """A scan reaches every pte of a listed mm: the VMA's mm must be on
        the list."""
        if len(pfns) and self.mms.get(vma.vm_mm.serial) is not vma.vm_mm:
            raise InvariantError(f"{vma!r} maps pages but its mm is not on the scanned list")

    def metadata_bytes(self) -> dict[str, int]:
        return {"i386": 0, "x86_64": 0}
