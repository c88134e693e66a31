"""Physical frames: ``struct page`` for every frame, kept as numpy arrays.

Models ``mem_map`` (include/linux/mm.h, 2.6.11). Each field of struct page is
one array indexed by pfn, so bulk work (fault a range, fork, exit) is array
work while every frame keeps its own exact flags, count, mapcount, mapping,
index and private.

Departures from the kernel:

- ``mapcount`` is the number of ptes (2.6.7's ``mapcount``); 2.6.9's
  ``_mapcount`` is this minus one.
- ``mapping`` is an integer: ``(anon_vma_id << 1) | PAGE_MAPPING_ANON`` for an
  anonymous page (the 2.6.9 encoding), ``file_id << 1`` for a page-cache page,
  0 for none.
- ``token`` is the page's content: what was last written to it (0 = zeros).
- Frame 0 is ZERO_PAGE, PG_reserved, never freed and never counted.
"""

from __future__ import annotations

import numpy as np

# Page flag bits: defined in rmaplab.include.mm (rmap needs them too), importable from here.
from rmaplab.include.mm import (PAGE_MAPPING_ANON, PG_active, PG_dirty, PG_locked,  # noqa: F401
                                PG_lru, PG_private, PG_referenced, PG_reserved, PG_swapcache,
                                PG_writeback)

ZERO_PFN = 0

# ``private`` holds a swap entry (slot numbers stay far below 2**31) and the
# free list a pfn: 32 bits each keep the model at 60 bytes a frame (with
# its pte), under the 64 a real struct page takes.
_FIELDS = (("flags", np.uint32), ("count", np.int32), ("mapcount", np.int32),
           ("mapping", np.int64), ("index", np.int64), ("private", np.int32),
           ("token", np.int64), ("lru_seq", np.int64))


def scatter_add(arr: np.ndarray, idx: np.ndarray, delta: int) -> None:
    """``arr[idx] += delta`` with repeats counted (``np.add.at``); a dense
    index uses one bincount pass, which is much faster than ``add.at``."""
    n = len(idx)
    if not n:
        return
    if n * 4 >= len(arr):
        arr += (np.bincount(idx, minlength=len(arr)) * delta).astype(arr.dtype)
    else:
        np.add.at(arr, idx, delta)


def unique_pfns(pfns: np.ndarray, capacity: int) -> np.ndarray:
    """The distinct values of ``pfns``, ascending (a mask pass when dense)."""
    if len(pfns) * 4 >= capacity:
        mask = np.zeros(capacity, dtype=bool)
        mask[pfns] = True
        return np.flatnonzero(mask)
    return np.unique(pfns)


class MemMap:
    """The frame table, its free list, and the physical-memory limit.

    ``totalram`` is the number of frames (ZERO_PAGE included); ``None`` means
    memory grows on demand and allocation never fails.
    """

    #: one array per field of struct page (``_FIELDS``), indexed by pfn;
    #: ``_grow`` replaces them with longer ones
    flags: np.ndarray
    count: np.ndarray
    mapcount: np.ndarray
    mapping: np.ndarray
    index: np.ndarray
    private: np.ndarray
    token: np.ndarray
    lru_seq: np.ndarray

    def __init__(self, totalram: int | None = None, initial: int = 1024) -> None:
        cap = totalram if totalram is not None else initial
        if cap < 2:
            raise ValueError("memory must hold at least two frames")
        self.totalram = totalram
        self.capacity = 0
        for name, dt in _FIELDS:
            setattr(self, name, np.zeros(0, dtype=dt))
        self.free = np.zeros(0, dtype=np.int32)   # stack of free pfns
        self.nr_free = 0
        self._grow(cap)
        # pfn 0 is ZERO_PAGE: take it off the free list.
        self.nr_free -= 1
        assert self.free[self.nr_free] == ZERO_PFN
        self.flags[ZERO_PFN] = PG_reserved
        self.lru_clock = 0

    def lru_add(self, pfns: np.ndarray) -> None:
        """Put frames at the head of their LRU list (PG_active chooses the
        list). Each list's order is ``lru_seq``: the tail is the lowest."""
        n = len(pfns)
        self.lru_seq[pfns] = np.arange(self.lru_clock + 1, self.lru_clock + 1 + n, dtype=np.int64)
        self.lru_clock += n

    def lru_touch(self, pfn: int) -> None:
        self.lru_clock += 1
        self.lru_seq[pfn] = self.lru_clock

    def _grow(self, newcap: int) -> None:
        old = self.capacity
        for name, dt in _FIELDS:
            arr = np.zeros(newcap, dtype=dt)
            arr[:old] = getattr(self, name)
            setattr(self, name, arr)
        free = np.zeros(newcap, dtype=np.int32)
        free[:self.nr_free] = self.free[:self.nr_free]
        # New frames go below the existing free ones so that low pfns are
        # handed out first, which keeps runs deterministic and readable.
        n_new = newcap - old
        free[n_new:n_new + self.nr_free] = free[:self.nr_free].copy()
        free[:n_new] = np.arange(newcap - 1, old - 1, -1, dtype=np.int32)
        self.free = free
        self.nr_free += n_new
        self.capacity = newcap

    @property
    def nr_used(self) -> int:
        """Frames in use, ZERO_PAGE excluded."""
        return self.capacity - self.nr_free - 1

    def alloc_pages(self, n: int) -> np.ndarray:
        """Take up to ``n`` free frames (``alloc_pages``); fewer only when
        memory has a fixed size and is short. The frames come back zeroed."""
        if n > self.nr_free and self.totalram is None:
            self._grow(max(self.capacity * 2, self.capacity + n - self.nr_free + 1))
        k = min(n, self.nr_free)
        top = self.nr_free
        pfns = self.free[top - k:top][::-1].astype(np.int64)
        self.nr_free = top - k
        return pfns

    def free_pages(self, pfns: np.ndarray) -> None:
        """Return frames whose count reached zero (``__free_pages``)."""
        k = len(pfns)
        if not k:
            return
        for name, _ in _FIELDS:
            getattr(self, name)[pfns] = 0
        self.free[self.nr_free:self.nr_free + k] = pfns[::-1]
        self.nr_free += k



class Contents:
    """Interned page contents ("tokens").

    Token 0 is a page of zeros. User tokens (JSON strings or integers) are
    interned to small ids. The original content of page *i* of a declared
    file, ``"<name>:<i>"``, is ``(file_id << FILE_SHIFT) | i`` so that a
    file costs nothing until its pages are read.
    """

    FILE_SHIFT = 40

    def __init__(self) -> None:
        self._values: list[object] = [None]
        self._ids: dict[tuple[type, object], int] = {}
        self._files: dict[int, str] = {}

    def intern(self, value: object) -> int:
        if value is None:
            return 0
        key = (type(value), value)
        tid = self._ids.get(key)
        if tid is None:
            tid = len(self._values)
            if tid >= 1 << self.FILE_SHIFT:
                raise OverflowError("too many distinct tokens")
            self._values.append(value)
            self._ids[key] = tid
        return tid

    def register_file(self, file_id: int, name: str) -> int:
        self._files[file_id] = name
        return file_id << self.FILE_SHIFT

    def value(self, tid: int) -> object:
        tid = int(tid)
        if tid < 1 << self.FILE_SHIFT:
            return self._values[tid]
        return f"{self._files[tid >> self.FILE_SHIFT]}:{tid & ((1 << self.FILE_SHIFT) - 1)}"
