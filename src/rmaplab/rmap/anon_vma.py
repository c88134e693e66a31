"""The anon_vma scheme of Linux 2.6.7 (mm/rmap.c, include/linux/rmap.h).

An ``AnonVma`` heads a list of the private VMAs, related by fork or split,
that may map its pages. An anonymous page points to it (``page->mapping``)
and keeps a linear ``index``, so any VMA on the list computes the page's
address from its own ``vm_pgoff`` (``vma_address``).

Locking modelled as counts: ``anon_vma->lock`` around list changes and
walks; ``page_table_lock`` per VMA visited (trylock in 2.6.7, spin in 2.6.9+).

The list is a dict used as an ordered set; ``list_add`` puts a VMA at the
head, so walks go newest first, as in the kernel.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count, islice
from typing import Any

import numpy as np

from rmaplab.asm.page import PAGE_SHIFT
from rmaplab.errors import InvariantError
from rmaplab.rmap.scheme import RmapScheme, vma_address, vma_ref
from rmaplab.rmap.protocols import RmapContext, Vma


class AnonVma:
    """``struct anon_vma``: a lock (counted, not modelled) and a VMA list."""

    __slots__ = ("id", "head")

    def __init__(self, av_id: int) -> None:
        self.id = av_id
        self.head: dict[Vma, None] = {}

    def list_add(self, vma: Vma) -> None:
        self.head[vma] = None

    def list_del(self, vma: Vma) -> None:
        del self.head[vma]

    def walk(self) -> Iterator[Vma]:
        """The list from its head: newest VMA first."""
        return reversed(self.head)

    def __repr__(self) -> str:
        return f"av{self.id}"


class AnonVmaScheme(RmapScheme):
    """Linux 2.6.7 anon_vma, with the 2.6.8–2.6.11 fixes selectable."""

    name = "anon_vma"
    has_anon_vma = True

    def __init__(self, ctx: RmapContext) -> None:
        super().__init__(ctx)
        self.anon_vmas: dict[int, AnonVma] = {}
        self._ids = count(1)

    # -- allocation ------------------------------------------------------------

    def anon_vma_alloc(self) -> AnonVma:
        av = AnonVma(next(self._ids))
        self.anon_vmas[av.id] = av
        self.st.anon_vma_alloc += 1
        return av

    def anon_vma_free(self, av: AnonVma) -> None:
        del self.anon_vmas[av.id]
        self.st.anon_vma_free += 1

    # -- VMA events --------------------------------------------------------------

    def anon_vma_prepare(self, vma: Vma) -> None:
        """``anon_vma_prepare``: give ``vma`` an anon_vma before its first
        anonymous page, reusing a touching neighbour's when
        ``find_mergeable_anon_vma`` (rmap 40) finds one."""
        if vma.anon_vma is not None:
            return
        av = self.ctx.find_mergeable_anon_vma(vma) if self.config.find_mergeable_anon_vma else None
        if av is not None:
            self.st.anon_vma_reused += 1
        else:
            av = self.anon_vma_alloc()
        self.st.lock_anon_vma += 1
        self.st.lock_page_table += 1
        vma.anon_vma = av
        av.list_add(vma)

    def vma_link(self, vma: Vma) -> None:
        """``__anon_vma_link`` from vma_link / __insert_vm_struct."""
        av = vma.anon_vma
        if av is not None:
            self.st.lock_anon_vma += 1
            av.list_add(vma)

    def vma_unlink(self, vma: Vma) -> None:
        """``anon_vma_unlink``: leave the list; free the anon_vma when empty."""
        av = vma.anon_vma
        if av is None:
            return
        self.st.lock_anon_vma += 1
        av.list_del(vma)
        if not av.head:
            self.anon_vma_free(av)

    def vma_absorb(self, vma: Vma, gone: Vma) -> None:
        """``__anon_vma_merge``: ``gone`` leaves the list; ``vma`` adopts its
        anon_vma if it had none (the 2.6.7 form; with the importer fix of
        vma_adjust it already has it)."""
        if gone.anon_vma is None:
            return
        if vma.anon_vma is None:
            vma.anon_vma = gone.anon_vma
            gone.anon_vma.list_add(vma)
        elif vma.anon_vma is not gone.anon_vma:
            raise InvariantError(f"merging {gone!r} into {vma!r}: different anon_vmas")
        self.st.lock_anon_vma += 1
        gone.anon_vma.list_del(gone)
        # The list cannot be empty: ``vma`` is on it.

    def vma_import(self, importer: Vma, anon_vma: Any, exporter: Vma | None = None) -> None:
        if importer.anon_vma is None and anon_vma is not None:
            importer.anon_vma = anon_vma
            self.st.lock_anon_vma += 1
            anon_vma.list_add(importer)

    def vma_fork(self, child: Vma, parent: Vma) -> None:
        """``anon_vma_link`` in dup_mmap: the child joins the parent's list."""
        self.vma_link(child)

    def vma_moved(self, new: Vma, old: Vma) -> None:
        pass  # copy_vma's vma_link already put it on the list: the "Magic".

    def is_mergeable_anon_vma(self, av_src: Any, av_dst: Any, dst: Vma | None = None,
                              src: Vma | None = None) -> bool:
        """``is_mergeable_anon_vma``: equal, or at least one is NULL."""
        return av_src is None or av_dst is None or av_src is av_dst

    def anon_vma_id(self, vma: Vma) -> int | None:
        return None if vma.anon_vma is None else vma.anon_vma.id

    # -- pages -------------------------------------------------------------------

    def _set_anon(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray, new: bool) -> None:
        mem = self.mem
        av = vma.anon_vma
        if av is None:
            raise InvariantError(f"page_add_anon_rmap into {vma!r} without anon_vma")
        mem.mapping[pfns] = (av.id << 1) | 1
        mem.index[pfns] = vma.vm_pgoff + (vpns - (vma.vm_start >> PAGE_SHIFT))

    def page_add_anon_rmap(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray,
                           new: bool = True) -> None:
        super().page_add_anon_rmap(pfns, vma, vpns, new)
        if self.config.debug_rmap:
            self._check_same(pfns, vma, vpns)

    def _check_same(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray) -> None:
        """The 2.6.7 BUG_ONs: a second mapping must agree on index and
        anon_vma."""
        mem = self.mem
        idx = vma.vm_pgoff + (vpns - (vma.vm_start >> PAGE_SHIFT))
        bad = (mem.index[pfns] != idx) | (mem.mapping[pfns] != ((vma.anon_vma.id << 1) | 1))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvariantError(f"page_add_anon_rmap: pfn {int(pfns[i])} at {int(vpns[i]) << PAGE_SHIFT:#x}"
                                 f" in {vma!r} disagrees on index or anon_vma")

    def anon_candidates(self, pfn: int) -> Iterator[tuple[Vma, int]]:
        """``page_referenced_anon``/``try_to_unmap_anon``: every VMA on the
        page's anon_vma list, with ``vma_address`` skipping those that do not
        cover the page."""
        mem, st = self.mem, self.st
        av = self.anon_vmas.get(int(mem.mapping[pfn]) >> 1)
        if av is None:
            raise InvariantError(f"pfn {pfn}: page->mapping names a freed anon_vma")
        st.lock_anon_vma += 1
        yield from self.walk_vmas(av.walk(), int(mem.index[pfn]))

    # -- description (read-only, for drawings) -------------------------------------

    def describe(self, limit: int = 64) -> dict[str, Any]:
        """Every ``struct anon_vma``: its VMA list in walk order (newest
        first) and how many pages point at it."""
        pages = self._objects_pages()
        avs = [{"id": av.id, "vmas": [vma_ref(v) for v in islice(av.walk(), limit)],
                "nr_vmas": len(av.head), "pages": pages.get(av.id, 0)}
               for av in islice(self.anon_vmas.values(), limit)]
        return {"scheme": self.name, "kind": "anon_vma", "anon_vmas": avs, "nr_anon_vmas": len(self.anon_vmas),
                "metadata": self.metadata_bytes()}

    def describe_page(self, pfn: int) -> dict[str, Any]:
        """``page->mapping`` names an anon_vma; ``page->index`` is linear."""
        out = super().describe_page(pfn)
        if out["kind"] == "anon":
            av = self.anon_vmas.get(out["mapping"] >> 1)
            out["anon_vma"] = None if av is None else av.id
            out["nr_vmas"] = 0 if av is None else len(av.head)
        return out

    def walk_visits(self, pfn: int, limit: int = 64) -> list[dict[str, Any]]:
        """Every VMA on the page's anon_vma list, newest first; one that
        ``vma_address`` puts the page outside of is skipped (``addr`` None)."""
        m = int(self.mem.mapping[pfn])
        if not m & 1:
            return super().walk_visits(pfn, limit)
        av = self.anon_vmas.get(m >> 1)
        if av is None:
            return []
        index = int(self.mem.index[pfn])
        return [self._visit(v, vma_address(index, v), pfn) for v in islice(av.walk(), limit)]

    # -- checking ------------------------------------------------------------------

    def check(self) -> None:
        for av in self.anon_vmas.values():
            if not av.head:
                raise InvariantError(f"{av!r} has an empty list but was not freed")
            for vma in av.head:
                if vma.anon_vma is not av:
                    raise InvariantError(f"{vma!r} is on {av!r}'s list but points elsewhere")

    def check_vma(self, vma: Vma) -> None:
        av: AnonVma | None = vma.anon_vma
        if av is not None and (self.anon_vmas.get(av.id) is not av or vma not in av.head):
            raise InvariantError(f"{vma!r} points to {av!r} but is not on its list")

    def check_mapped(self, vma: Vma, pfns: np.ndarray, vpns: np.ndarray) -> None:
        """List closure: a VMA mapping an anonymous page is on its list,
        i.e. (one anon_vma per VMA) the page points at the VMA's anon_vma."""
        want = -1 if vma.anon_vma is None else (vma.anon_vma.id << 1) | 1
        bad = self.mem.mapping[pfns] != want
        if bad.any():
            pfn = int(pfns[bad][0])
            av = self.anon_vmas.get(int(self.mem.mapping[pfn]) >> 1)
            raise InvariantError(f"pfn {pfn} at {int(vpns[bad][0]) << PAGE_SHIFT:#x} is mapped by"
                                 f" {vma!r}, which is not on its anon_vma list ({av!r})")

    def metadata_bytes(self) -> dict[str, int]:
        """i386 2004: +12 B in every vma (anon_vma_node 8, anon_vma 4) and
        12 B per anon_vma (SMP spinlock 4, list head 8); x86_64: 24 B per vma
        (16 + 8) and 24 B per anon_vma (spinlock 4 padded to 8, head 16)."""
        nv, na = self.nr_vmas(), len(self.anon_vmas)
        return {"i386": 12 * nv + 12 * na, "x86_64": 24 * nv + 24 * na}
