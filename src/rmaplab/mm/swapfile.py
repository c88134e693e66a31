"""Swap space (mm/swapfile.c): one swap area, its ``swap_map`` counts and
the contents written to each slot.

A slot's count is the number of swap ptes that hold it plus one for the
swap cache. Slot 0 is the header and is never used, so an entry is never 0.
"""

from __future__ import annotations

import numpy as np


class SwapInfo:
    """``struct swap_info_struct``. ``nr_slots`` None grows on demand."""

    def __init__(self, nr_slots: int | None) -> None:
        self.limit = nr_slots
        cap = 1 + (nr_slots if nr_slots is not None else 1024)
        self.swap_map = np.zeros(cap, dtype=np.int32)
        self.contents = np.zeros(cap, dtype=np.int64)
        self.inuse_pages = 0
        self._freed: list[int] = []   # slots freed since, reused lowest-last
        self._high = 1                # slots below this have been handed out

    @property
    def pages(self) -> int:
        return len(self.swap_map) - 1

    def nr_free(self) -> int | None:
        return None if self.limit is None else self.limit - self.inuse_pages

    def get_swap_page(self) -> int:
        """Allocate a slot with count 1 (the swap cache's); 0 when full.
        Freed slots are reused first (most recently freed first), then the
        area is used upwards."""
        if self._freed:
            off = self._freed.pop()
        else:
            if self._high >= len(self.swap_map):
                if self.limit is not None:
                    return 0
                self._grow()
            off = self._high
            self._high += 1
        self.swap_map[off] = 1
        self.inuse_pages += 1
        return off

    def _grow(self) -> None:
        n = len(self.swap_map)
        sm = np.zeros(n * 2, dtype=np.int32)
        sm[:n] = self.swap_map
        c = np.zeros(n * 2, dtype=np.int64)
        c[:n] = self.contents
        self.swap_map, self.contents = sm, c

    def swap_duplicate(self, entry: int) -> None:
        self.swap_map[entry] += 1

    def swap_duplicate_many(self, entries: np.ndarray) -> None:
        np.add.at(self.swap_map, entries, 1)

    def swap_free(self, entry: int) -> int:
        """Drop one reference; returns the count left. A slot reaching zero
        is free again."""
        sm = self.swap_map
        if sm[entry] <= 0:
            raise AssertionError(f"swap_free of free slot {entry}")
        sm[entry] -= 1
        left = int(sm[entry])
        if not left:
            self.contents[entry] = 0
            self.inuse_pages -= 1
            self._freed.append(entry)
        return left
