"""The machine-wide state the core works on: frames, swap, files, counters,
configuration and the rmap scheme. One ``MmContext`` per model; every mm
function takes it first (the kernel's globals, made explicit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from rmaplab.config import Config
from rmaplab.errors import SyscallError
from rmaplab.mm.filemap import File
from rmaplab.mm.page import Contents, MemMap
from rmaplab.mm.swapfile import SwapInfo
from rmaplab.rmap.stat import VmStat

if TYPE_CHECKING:
    from rmaplab.rmap.scheme import RmapScheme


class MmContext:
    def __init__(self, config: Config, scheme_factory: Any) -> None:
        self.config = config
        self.stat = VmStat()
        self.mem = MemMap(config.mem_pages)
        self.swap = SwapInfo(config.swap_pages)
        self.contents = Contents()
        self.files: dict[str, File] = {}
        self._files_by_id: dict[int, File] = {}
        self._file_ids = 0
        self.swapper_space: dict[int, int] = {}   # swap cache: entry -> pfn
        #: reclaim hook, set by the kernel layer: called with the number of
        #: frames wanted; returns the number freed.
        self.reclaim_hook: Any = None
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
        """``n`` frames, reclaiming when memory is short; ENOMEM (the OOM
        path) when even reclaim cannot provide them."""
        pfns = self.mem.alloc_pages(n)
        while len(pfns) < n:
            if self.reclaim_hook is None or not self.reclaim_hook(n - len(pfns)):
                self.mem.free_pages(pfns)
                raise SyscallError("ENOMEM", "out of memory")
            more = self.mem.alloc_pages(n - len(pfns))
            pfns = np.concatenate([pfns, more])
        return pfns

    def find_mergeable_anon_vma(self, vma: Any) -> Any:
        from rmaplab.mm.mmap import find_mergeable_anon_vma
        return find_mergeable_anon_vma(vma)
