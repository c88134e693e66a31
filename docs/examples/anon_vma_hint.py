"""``anon_vma_hint``: 2.6.7's anon_vma, walked from the VMA each page was born in.

2.6.7 puts every anonymous page of a fork family on the family's one
anon_vma. A page that one child copied on write is mapped by that child
alone, yet reclaiming it walks the list of every VMA in the family until
it finds the one pte (the AIM7 problem that anon_vma_chain fixed in
2.6.34). This variant remembers, per anonymous page, the VMA that first
mapped it, and walks that VMA first, then the rest of the list.
``page_referenced`` and ``try_to_unmap`` stop once the page's mapcount
is used up, so a page mapped once costs one visit.

Correct by construction: the walk is the anon_vma list in another order
(the hint is used only while that VMA is still on the page's list), so
it finds exactly what anon_vma finds.

Cost: a pointer in every struct page in use (4 B on i386, 8 B on x86_64),
the field pte_chain had (``pte.direct``) and rmap 39 gave back. A kernel
would also need a hinted VMA's memory to stay valid after it is freed
(``SLAB_TYPESAFE_BY_RCU`` VMAs, as 6.x has) and re-check it as here.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

import numpy as np

from rmaplab.errors import InvariantError
from rmaplab.rmap.anon_vma import AnonVma, AnonVmaScheme
from rmaplab.rmap.scheme import vma_address


class HintedAnonVma(AnonVmaScheme):
    """anon_vma whose walks start at the VMA each page was born in."""

    name = "anon_vma_hint"

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        #: pfn -> the VMA that first mapped it (the new field of struct page)
        self.hint: dict[int, Any] = {}

    def _set_anon(self, pfns: np.ndarray, vma: Any, vpns: np.ndarray, new: bool) -> None:
        """2.6.7's mapping and index, and the hint."""
        super()._set_anon(pfns, vma, vpns, new)
        self.hint.update(dict.fromkeys(pfns.tolist(), vma))

    def _order(self, av: AnonVma, pfn: int) -> Iterator[Any]:
        """The page's anon_vma list, its hint first while the hint is on it."""
        hint = self.hint.get(pfn)
        if hint is None or hint not in av.head:
            yield from av.walk()
            return
        yield hint
        for vma in av.walk():
            if vma is not hint:
                yield vma

    def _anon_vma(self, pfn: int) -> AnonVma:
        av = self.anon_vmas.get(int(self.mem.mapping[pfn]) >> 1)
        if av is None:
            raise InvariantError(f"pfn {pfn}: page->mapping names a freed anon_vma")
        return av

    def anon_candidates(self, pfn: int) -> Iterator[tuple[Any, int]]:
        """Under the anon_vma lock, as 2.6.7; ``walk_vmas`` counts each VMA
        visited (and skipped)."""
        av = self._anon_vma(pfn)
        self.st.lock_anon_vma += 1
        yield from self.walk_vmas(self._order(av, pfn), int(self.mem.index[pfn]))

    def walk_visits(self, pfn: int, limit: int = 64) -> list[dict[str, Any]]:
        """For ``rmaplab show``: the list in this walk's order."""
        if not int(self.mem.mapping[pfn]) & 1:
            return super().walk_visits(pfn, limit)
        av, index = self._anon_vma(pfn), int(self.mem.index[pfn])
        return [self._visit(v, vma_address(index, v), pfn)
                for v in islice(self._order(av, pfn), limit)]

    def metadata_bytes(self) -> dict[str, int]:
        """anon_vma's bytes plus the hint pointer in every struct page in use."""
        b, frames = super().metadata_bytes(), self.mem.nr_used
        return {"i386": b["i386"] + 4 * frames, "x86_64": b["x86_64"] + 8 * frames}


class TrustingHint(HintedAnonVma):
    """A tempting shortcut, and wrong: a page mapped once is where it was
    born. (A split by munmap or mprotect, or an mremap, leaves it in another
    VMA while its birth VMA lives on.)
    ``rmaplab check-scheme`` finds the program that shows it."""

    name = "anon_vma_hint_trusting"

    def anon_candidates(self, pfn: int) -> Iterator[tuple[Any, int]]:
        hint = self.hint.get(pfn)
        av = self._anon_vma(pfn)
        if self.mem.mapcount[pfn] == 1 and hint is not None and hint in av.head:
            self.st.lock_anon_vma += 1
            return self.walk_vmas([hint], int(self.mem.index[pfn]))
        return super().anon_candidates(pfn)
