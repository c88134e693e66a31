"""What ``rmaplab show`` draws of an address space, as plain data.

Each process is a list of rows, one per ``vm_area_struct`` (special
mappings left out), and each row holds its pages as runs: ``(kind,
pages, first)`` where ``kind`` is one of :data:`KINDS`, and ``first`` is
the page frame number of the run's first page for a present run (the run's
frames are consecutive: ``first``, ``first + 1``, ...), the swap entry of
its first page for a swapped run (consecutive too), and -1 otherwise.

How many ptes map a frame (its mapcount) is not stored: a drawing counts
it from the frames every row names, as ``page_mapcount`` would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rmaplab.asm.page import PAGE_SHIFT
from rmaplab.mm.mm_types import VM_IO
from rmaplab.mm.page import ZERO_PFN
from rmaplab.trace.dump import perms, vma_file_name

#: page kinds: no pte, anonymous page, page-cache page, the zero page, a
#: swap pte
NONE, ANON, FILE, ZERO, SWAP = "-", "A", "F", "z", "s"
KINDS = (NONE, ANON, FILE, ZERO, SWAP)
_CODES = np.array([ord(c) for c in KINDS], dtype=np.uint8)

Run = tuple[str, int, int]


@dataclass(frozen=True)
class Row:
    """One ``vm_area_struct`` and its pages, as runs."""

    vma: int                 # serial (the model's name for the VMA)
    start: int
    end: int
    perms: str
    pgoff: int
    file: str | None
    anon_vma: int | None     # the scheme's anon_vma id (None: none, or no such object)
    runs: tuple[Run, ...]

    @property
    def npages(self) -> int:
        return (self.end - self.start) >> PAGE_SHIFT

    def as_list(self) -> list[Any]:
        """Compact JSON form: [serial, start, end, perms, file, anon_vma, runs]."""
        return [self.vma, self.start, self.end, self.perms, self.file, self.anon_vma,
                [list(r) for r in self.runs]]


def vma_runs(kernel: Any, vma: Any) -> tuple[Run, ...]:
    """The runs of one VMA's pages (see the module docstring)."""
    s, e = vma.vm_start >> PAGE_SHIFT, vma.vm_end >> PAGE_SHIFT
    n = e - s
    vpns, ptes = vma.vm_mm.pgd.populated(s, e)
    if not len(vpns):
        return ((NONE, n, -1),)
    ptes = ptes.astype(np.int64)
    kind = np.zeros(n, dtype=np.int8)            # index into KINDS
    ref = np.full(n, -1, dtype=np.int64)
    pos = vpns.astype(np.int64) - s
    present = (ptes & 1) == 1
    val = ptes >> 12                             # the pfn, or the swap entry
    mapping = kernel.mem.mapping
    pfns = val[present]
    k = np.where(pfns == ZERO_PFN, 3, np.where((mapping[pfns] & 1) == 1, 1, 2))
    kind[pos[present]] = k
    ref[pos[present]] = np.where(pfns == ZERO_PFN, -1, pfns)
    kind[pos[~present]] = 4
    ref[pos[~present]] = val[~present]
    # a run breaks where the kind changes or the frames stop being consecutive
    follows = np.ones(n, dtype=bool)
    follows[1:] = (kind[1:] == kind[:-1]) & (
        (ref[1:] == -1) & (ref[:-1] == -1) | (ref[1:] == ref[:-1] + 1) & (ref[:-1] >= 0))
    follows[0] = False
    starts = np.flatnonzero(~follows)
    lengths = np.diff(np.append(starts, n))
    return tuple((KINDS[int(kind[i])], int(ln), int(ref[i]))
                 for i, ln in zip(starts.tolist(), lengths.tolist()))


def process_rows(kernel: Any, pid: int, old: tuple[Row, ...] | None = None,
                 dirty: list[tuple[int, int]] | None = None) -> tuple[Row, ...]:
    """Every VMA of ``pid`` in address order, with its pages. With ``old``
    (the rows drawn before) and ``dirty`` (the address ranges whose ptes
    may have changed since), a VMA outside every dirty range whose
    serial, bounds, flags, pgoff and anon_vma are as before keeps its old
    runs instead of reading its page tables again."""
    scheme = kernel.scheme
    before = {r.vma: r for r in old} if old is not None and dirty is not None else {}
    out = []
    for v in kernel.mm(pid).mmap:
        if v.vm_flags & VM_IO:
            continue
        head = (v.serial, v.vm_start, v.vm_end, perms(v.vm_flags), v.vm_pgoff,
                vma_file_name(v), scheme.anon_vma_id(v))
        r = before.get(v.serial)
        if (r is not None and (r.vma, r.start, r.end, r.perms, r.pgoff, r.file, r.anon_vma) == head
                and not any(s < v.vm_end and v.vm_start < e for s, e in dirty or ())):
            out.append(r)
        else:
            out.append(Row(*head, vma_runs(kernel, v)))
    return tuple(out)


def expand(row: Row) -> tuple[np.ndarray, np.ndarray]:
    """Per page of the row: the kind code (index into KINDS) and the frame
    (or swap entry; -1 for none)."""
    kinds = np.zeros(row.npages, dtype=np.int8)
    refs = np.full(row.npages, -1, dtype=np.int64)
    at = 0
    for kind, n, first in row.runs:
        kinds[at:at + n] = KINDS.index(kind)
        if first >= 0:
            refs[at:at + n] = np.arange(first, first + n)
        at += n
    return kinds, refs


def mapcounts(rows: dict[int, tuple[Row, ...]]) -> dict[int, int]:
    """Frame -> how many of these rows' ptes map it (the zero page and
    swap entries are not frames here)."""
    counts: dict[int, int] = {}
    for prow in rows.values():
        for row in prow:
            for kind, n, first in row.runs:
                if kind in (ANON, FILE):
                    for pfn in range(first, first + n):
                        counts[pfn] = counts.get(pfn, 0) + 1
    return counts


@dataclass(frozen=True)
class Summary:
    """Machine-wide figures shown under a drawing."""

    processes: int
    vmas: int
    frames_used: int
    mapped: int          # frames mapped by at least one pte
    shared: int          # frames mapped by more than one pte
    swap_used: int
    metadata: dict[str, int]


def summary(kernel: Any) -> Summary:
    mem = kernel.mem
    mc = mem.mapcount[1:]
    vmas = sum(1 for p in kernel.pids() for v in kernel.mm(p).mmap if not v.vm_flags & VM_IO)
    return Summary(len(kernel.pids()), vmas,
                   int(mem.nr_used), int((mc > 0).sum()), int((mc > 1).sum()),
                   int(kernel.ctx.swap.inuse_pages), kernel.scheme.metadata_bytes())
