"""The page tables of one mm (pgd → pmd → pte, mm/memory.c).

Modelled as pte pages of PTRS_PER_PTE entries each, keyed by the address
bits above PMD_SHIFT: the upper levels are a dict, a pte page is a numpy
int64 array. Bulk operations work on runs of ptes as arrays.

Departure: upper-level tables are not objects; ``nr_pte_pages`` stands for
the page-table pages the mm would own.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from rmaplab.asm.page import PTRS_PER_PTE
from rmaplab.asm.pgtable import PTE_DTYPE

_SHIFT = PTRS_PER_PTE.bit_length() - 1
_MASK = PTRS_PER_PTE - 1


class TableCount:
    """Page-table pages in use across all mms (they are memory too)."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


class PageTable:
    """One mm's page tables. Addresses are virtual page numbers (vpn).
    ``count``, if given, is charged for every pte page."""

    __slots__ = ("pmd", "count")

    def __init__(self, count: TableCount | None = None) -> None:
        self.pmd: dict[int, np.ndarray] = {}
        self.count = count

    def _new(self, key: int) -> np.ndarray:
        t = self.pmd[key] = np.zeros(PTRS_PER_PTE, dtype=PTE_DTYPE)
        if self.count is not None:
            self.count.n += 1
        return t

    def clear(self) -> None:
        """Free every pte page (exit_mmap's clear_page_range)."""
        if self.count is not None:
            self.count.n -= len(self.pmd)
        self.pmd.clear()

    @property
    def nr_pte_pages(self) -> int:
        return len(self.pmd)

    def get(self, vpn: int) -> int:
        t = self.pmd.get(vpn >> _SHIFT)
        return 0 if t is None else int(t[vpn & _MASK])

    def set(self, vpn: int, pte: int) -> None:
        key = vpn >> _SHIFT
        t = self.pmd.get(key)
        if t is None:
            if pte == 0:
                return
            t = self._new(key)
        t[vpn & _MASK] = pte

    def runs(self, start: int, end: int, alloc: bool = False) -> Iterator[tuple[np.ndarray, int, int, int]]:
        """Yield ``(pte_page, lo, hi, vpn_of_lo)`` covering ``[start, end)``;
        pte pages that do not exist are skipped unless ``alloc``."""
        pmd = self.pmd
        if not alloc:
            for key in self._keys(start, end):
                base = key << _SHIFT
                lo = max(start, base) - base
                hi = min(end, base + PTRS_PER_PTE) - base
                yield pmd[key], lo, hi, base + lo
            return
        vpn = start
        while vpn < end:
            key = vpn >> _SHIFT
            lo = vpn & _MASK
            hi = min(PTRS_PER_PTE, lo + (end - vpn))
            t = pmd.get(key)
            if t is None:
                t = self._new(key)
            yield t, lo, hi, vpn
            vpn += hi - lo

    def _keys(self, start: int, end: int) -> list[int]:
        """Keys of existing pte pages that overlap ``[start, end)``, ascending.
        Costs O(min(span, tables)) so a huge sparse range stays cheap."""
        k0, k1 = start >> _SHIFT, ((end - 1) >> _SHIFT) + 1
        pmd = self.pmd
        if k1 - k0 <= len(pmd):
            return [k for k in range(k0, k1) if k in pmd]
        return sorted(k for k in pmd if k0 <= k < k1)

    def gather(self, start: int, end: int) -> np.ndarray:
        """A copy of the ptes of ``[start, end)`` (zeros where no table)."""
        out = np.zeros(end - start, dtype=PTE_DTYPE)
        for t, lo, hi, vpn in self.runs(start, end):
            out[vpn - start:vpn - start + hi - lo] = t[lo:hi]
        return out

    def scatter(self, start: int, ptes: np.ndarray) -> None:
        """Write ``ptes`` at ``[start, start+len)``, allocating tables only
        where a non-none pte goes."""
        end = start + len(ptes)
        vpn = start
        pmd = self.pmd
        while vpn < end:
            key = vpn >> _SHIFT
            lo = vpn & _MASK
            hi = min(PTRS_PER_PTE, lo + (end - vpn))
            part = ptes[vpn - start:vpn - start + hi - lo]
            t = pmd.get(key)
            if t is None:
                if part.any():
                    t = self._new(key)
                    t[lo:hi] = part
            else:
                t[lo:hi] = part
            vpn += hi - lo

    def scatter_points(self, vpns: np.ndarray, ptes: np.ndarray) -> None:
        """Write ``ptes[i]`` at ``vpns[i]``; ``vpns`` ascending."""
        if not len(vpns):
            return
        keys = vpns >> _SHIFT
        cuts = np.flatnonzero(np.diff(keys)) + 1
        bounds = [0, *cuts.tolist(), len(vpns)]
        pmd = self.pmd
        for a, b in zip(bounds, bounds[1:]):
            key = int(keys[a])
            t = pmd.get(key)
            if t is None:
                t = self._new(key)
            t[vpns[a:b] & _MASK] = ptes[a:b]

    def populated(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """The vpns and values of the non-none ptes in ``[start, end)``."""
        vs, ps = [], []
        for t, lo, hi, vpn in self.runs(start, end):
            seg = t[lo:hi]
            nz = np.flatnonzero(seg)
            if len(nz):
                vs.append(nz + vpn)
                ps.append(seg[nz])
        if not vs:
            return np.zeros(0, np.int64), np.zeros(0, PTE_DTYPE)
        return np.concatenate(vs), np.concatenate(ps)

    def free_pgtables(self, start: int, end: int) -> None:
        """Drop the pte pages of ``[start, end)`` that no longer map anything
        (``free_pgtables``)."""
        for key in self._keys(start, end):
            if not self.pmd[key].any():
                del self.pmd[key]
                if self.count is not None:
                    self.count.n -= 1

    def items(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first vpn, pte page) for every pte page, in no set order."""
        for key, t in self.pmd.items():
            yield key << _SHIFT, t
