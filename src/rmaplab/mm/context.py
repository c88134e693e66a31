"""The machine-wide state the core works on: frames, swap, files, counters,
configuration and the rmap scheme. One ``MmContext`` per model; every mm
function takes it first (the kernel's globals, made explicit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from rmaplab.config import Config
from rmaplab.errors import InvariantError, SyscallError
from rmaplab.mm.filemap import File
from rmaplab.mm.mmap import find_mergeable_anon_vma
from rmaplab.mm.page import Contents, MemMap, scatter_add
from rmaplab.mm.pgtable import TableCount
from rmaplab.mm.swapfile import SwapInfo
from rmaplab.mm.vmscan import Zone, try_to_free_pages
from rmaplab.rmap.stat import VmStat

if TYPE_CHECKING:
    from rmaplab.rmap.protocols import RmapContext
    from rmaplab.rmap.scheme import RmapScheme


#: failed reclaim passes before the OOM killer acts
OOM_FAILURES = 10


class MmContext:
    scatter_add = staticmethod(scatter_add)

    def __init__(self, config: Config, scheme_factory: Callable[[RmapContext], RmapScheme]) -> None:
        self.config = config
        self.stat = VmStat()
        self.mem = MemMap(config.mem_pages)
        self.swap = SwapInfo(config.swap_pages)
        self.contents = Contents()
        self.files: dict[str, File] = {}
        self._files_by_id: dict[int, File] = {}
        self._file_ids = 0
        self.swapper_space: dict[int, int] = {}   # swap cache: entry -> pfn
        #: the OOM killer, set by the kernel layer: called with the mm that
        #: needs memory; kills a victim and returns True, or False if none.
        self.oom_hook: Any = None
        self.reserved = 0
        self.tables = TableCount()
        self.zone = Zone(config.mem_pages) if config.mem_pages is not None else None
        self.scheme: RmapScheme = scheme_factory(self)

    # -- files -----------------------------------------------------------------

    def new_file(self, name: str, size: int, shmem: bool = False) -> File:
        self._file_ids += 1
        fid = self._file_ids
        base = self.contents.register_file(fid, name)
        f = File(fid, name, size, base, shmem=shmem)
        self._files_by_id[fid] = f
        if not shmem:
            self.files[name] = f
        return f

    def file_of(self, mapping: int) -> File:
        return self._files_by_id[mapping >> 1]

    def all_files(self) -> list[File]:
        return list(self._files_by_id.values())

    def forget_file(self, f: File) -> None:
        """An unnamed shmem file whose last mapping went away."""
        self._files_by_id.pop(f.id, None)

    # -- frames ------------------------------------------------------------------

    def alloc_pages(self, n: int) -> np.ndarray:
        """``n`` frames out of the current reservation, or reserving them
        now (which may reclaim, or OOM-kill)."""
        if self.mem.totalram is not None:
            if n > self.reserved:
                self.reserve(n)
            self.reserved -= n
        pfns = self.mem.alloc_pages(n)
        if len(pfns) < n:
            raise InvariantError(f"allocation of {n} frames failed inside a reservation")
        return pfns

    def reserve(self, n: int, mm: Any = None) -> None:
        """Make sure ``n`` frames can be allocated without going below
        pages_min: direct reclaim (``try_to_free_pages``), then the OOM
        killer. Raises OOMKilled if ``mm``'s process was the victim."""
        mem, zone = self.mem, self.zone
        if mem.totalram is None or zone is None:     # unlimited memory (one implies the other)
            return
        failures = 0
        while mem.nr_free - n < zone.pages_min:
            self.stat.direct_reclaim += 1
            if try_to_free_pages(self, zone, n + zone.pages_min - mem.nr_free):
                failures = 0
                continue
            # out_of_memory() only believes it after repeated failures
            # (2.6.11 waits for ten within a few seconds).
            failures += 1
            if failures < OOM_FAILURES:
                continue
            failures = 0
            if self.oom_hook is None or not self.oom_hook(mm):
                raise SyscallError("ENOMEM", "out of memory and nothing to kill")
        self.reserved = n

    def guard(self, pages: int, mm: Any = None) -> None:
        """Before faulting ``pages`` pages: the frames and page-table pages
        they may need must fit. With unlimited memory the model still stops
        at ``max_mem_pages`` frames (the OOM killer acts, as it would on a
        real machine). Page-table pages are limited to a 64th of
        ``max_mem_pages`` whatever ``--mem`` says, since each costs the
        model a real 4 KiB array: a bound on the model, not on the machine
        it models. Page tables are not charged to a limited memory's
        frames (a departure), so a small ``--mem`` with many processes
        meets reclaim and the OOM killer through its frames only."""
        limit = self.config.max_mem_pages
        frames = 0 if self.config.mem_pages else 2 * pages
        tables = (pages >> 9) + 2
        while (self.tables.n + tables > max(64, limit >> 6)
               or (frames and self.mem.nr_used + frames > limit)):
            if self.oom_hook is None or not self.oom_hook(mm):
                raise SyscallError("ENOMEM", "out of memory and nothing to kill")

    def kswapd(self) -> None:
        """Background reclaim: woken below pages_low, runs to pages_high."""
        mem, zone = self.mem, self.zone
        self.reserved = 0
        if mem.totalram is None or zone is None or mem.nr_free >= zone.pages_low:
            return
        self.stat.kswapd_wakeups += 1
        while mem.nr_free < zone.pages_high:
            if not try_to_free_pages(self, zone, zone.pages_high - mem.nr_free):
                break

    def find_mergeable_anon_vma(self, vma: Any, accept: Any = None) -> Any:
        return find_mergeable_anon_vma(vma, accept)
