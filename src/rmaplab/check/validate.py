"""Invariants of the model, checked from scratch (the kernel's debug checks
plus kernel-rmap.md §1.6). ``validate`` raises ``InvariantError`` naming
the first thing found wrong; the stress tests call it after every step.

The brute-force side never uses the reverse map: it scans every page table
of every process.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from rmaplab.asm.page import PAGE_MASK, PAGE_SHIFT
from rmaplab.errors import InvariantError
from rmaplab.mm.mm_types import MmStruct, VmAreaStruct
from rmaplab.mm.mmap import check_mm_ptes
from rmaplab.mm.page import PG_reserved, PG_swapcache, ZERO_PFN


@dataclass
class PteScan:
    """Every non-none pte of every process, as parallel arrays."""

    pfn: np.ndarray        # -1 for swap ptes
    swap: np.ndarray       # swap entry, -1 for present ptes
    vpn: np.ndarray
    owner: list[tuple[MmStruct, VmAreaStruct]]   # (mm, vma) per run
    run: np.ndarray        # index into owner per pte


def scan_ptes(kernel: Any) -> PteScan:
    pfns: list[np.ndarray] = []
    swaps: list[np.ndarray] = []
    vpns: list[np.ndarray] = []
    runs: list[np.ndarray] = []
    owner: list[tuple[MmStruct, VmAreaStruct]] = []
    for pid in kernel.pids():
        mm = kernel.mm(pid)
        for vma in mm.mmap:
            v, p = mm.pgd.populated(vma.vm_start >> PAGE_SHIFT, vma.vm_end >> PAGE_SHIFT)
            if not len(v):
                continue
            present = (p & 1) == 1
            pfns.append(np.where(present, p >> 12, -1))
            swaps.append(np.where(present, -1, p >> 12))
            vpns.append(v)
            runs.append(np.full(len(v), len(owner), dtype=np.int64))
            owner.append((mm, vma))
    if not owner:
        z = np.zeros(0, dtype=np.int64)
        return PteScan(z, z, z, [], z)
    return PteScan(np.concatenate(pfns), np.concatenate(swaps), np.concatenate(vpns), owner,
                   np.concatenate(runs))


def _fail(msg: str) -> None:
    raise InvariantError(msg)


def validate(kernel: Any) -> PteScan:
    """Check every invariant; returns the pte scan for further checks."""
    ctx = kernel.ctx
    mem = ctx.mem
    for pid in kernel.pids():
        _check_mm(kernel.mm(pid))
    scan = scan_ptes(kernel)
    present = scan.pfn >= 0
    real = present & (scan.pfn != ZERO_PFN)
    # mapcount == number of ptes that map the frame
    mc = np.bincount(scan.pfn[real], minlength=mem.capacity)
    bad = np.flatnonzero(mc != mem.mapcount)
    bad = bad[bad != ZERO_PFN]
    if len(bad):
        p = int(bad[0])
        _fail(f"pfn {p}: mapcount {int(mem.mapcount[p])} but {int(mc[p])} ptes map it")
    # rss per mm
    per_mm: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    anon_frame = (mem.mapping & 1) == 1
    for i, (mm, vma) in enumerate(scan.owner):
        sel = real & (scan.run == i)
        per_mm[id(mm)][0] += int(sel.sum())
        per_mm[id(mm)][1] += int(anon_frame[scan.pfn[sel]].sum())
        _check_vma_pages(kernel, mm, vma, scan.pfn[sel], scan.vpn[sel])
    for pid in kernel.pids():
        mm = kernel.mm(pid)
        rss, anon = per_mm[id(mm)]
        if mm.rss != rss or mm.anon_rss != anon:
            _fail(f"pid {pid}: rss {mm.rss}/anon_rss {mm.anon_rss} but ptes give {rss}/{anon}")
    _check_frames(kernel, mc)
    _check_swap(kernel, scan)
    ctx.scheme.check()
    for pid in kernel.pids():
        for vma in kernel.mm(pid).mmap:
            hook = getattr(ctx.scheme, "check_vma", None)
            if hook is not None:
                hook(vma)
    return scan


def _check_mm(mm: Any) -> None:
    prev_end = 0
    for vma in mm.mmap:
        if vma.vm_mm is not mm:
            _fail(f"{vma!r} is on {mm!r}'s list but belongs to {vma.vm_mm!r}")
        if vma.vm_start & ~PAGE_MASK or vma.vm_end & ~PAGE_MASK or vma.vm_start >= vma.vm_end:
            _fail(f"{vma!r}: bad bounds")
        if vma.vm_start < prev_end:
            _fail(f"{vma!r} overlaps or is out of order in {mm!r}")
        prev_end = vma.vm_end
        if vma.vm_file is not None and vma not in vma.vm_file.i_mmap:
            _fail(f"{vma!r} maps {vma.vm_file!r} but is not in its i_mmap")
    if mm.map_count != len(mm.mmap):
        _fail(f"{mm!r}: map_count {mm.map_count} but {len(mm.mmap)} VMAs")
    check_mm_ptes(mm)


def _check_vma_pages(kernel: Any, mm: Any, vma: Any, pfns: np.ndarray, vpns: np.ndarray) -> None:
    """Linear index and list closure for the pages mapped in one VMA."""
    mem = kernel.ctx.mem
    if not len(pfns):
        return
    idx = vma.vm_pgoff + (vpns - (vma.vm_start >> PAGE_SHIFT))
    anon = (mem.mapping[pfns] & 1) == 1
    if anon.any():
        ai = np.flatnonzero(anon)
        idx = idx.copy()
        idx[ai] = kernel.ctx.scheme.expected_index(vma, vpns[ai])
        wrong = mem.index[pfns[ai]] != idx[ai]
        if wrong.any():
            j = ai[np.flatnonzero(wrong)[0]]
            _fail(f"page index: pfn {int(pfns[j])} at {int(vpns[j]) << PAGE_SHIFT:#x} in {vma!r}"
                  f" has index {int(mem.index[pfns[j]]):#x}, expected {int(idx[j]):#x}")
        kernel.ctx.scheme.check_mapped(vma, pfns[ai], vpns[ai])
    fi = np.flatnonzero(~anon)
    if len(fi):
        if vma.vm_file is None:
            _fail(f"{vma!r} maps non-anonymous pfn {int(pfns[fi[0]])} without a file")
        f = vma.vm_file
        if (mem.mapping[pfns[fi]] != f.mapping_tag).any() or (mem.index[pfns[fi]] != idx[fi]).any():
            _fail(f"{vma!r} maps a page that is not its file's page at that offset")


def _check_frames(kernel: Any, mc: np.ndarray) -> None:
    """count == ptes + page cache + swap cache; free frames are clean."""
    ctx = kernel.ctx
    mem = ctx.mem
    expect = mc.astype(np.int64)
    for f in ctx.all_files():
        _, pc = f.page_cache.populated(0, 1 << 52)
        if len(pc) != f.nrpages:
            _fail(f"{f!r}: nrpages {f.nrpages} but {len(pc)} pages cached")
        expect[pc] += 1
        bad = (mem.mapping[pc] != f.mapping_tag)
        if bad.any():
            _fail(f"{f!r}: cached pfn {int(pc[bad][0])} does not point back at the file")
    for entry, pfn in ctx.swapper_space.items():
        expect[pfn] += 1
        if not mem.flags[pfn] & PG_swapcache or mem.private[pfn] != entry:
            _fail(f"swap cache entry {entry}: pfn {pfn} lacks PG_swapcache or private")
    sc = np.flatnonzero(mem.flags & PG_swapcache)
    if len(sc) != len(ctx.swapper_space):
        _fail(f"{len(sc)} frames have PG_swapcache but the swap cache holds {len(ctx.swapper_space)}")
    free = np.zeros(mem.capacity, dtype=bool)
    free[mem.free[:mem.nr_free]] = True
    if free[ZERO_PFN] or not mem.flags[ZERO_PFN] & PG_reserved:
        _fail("ZERO_PAGE is free or not reserved")
    expect[ZERO_PFN] = mem.count[ZERO_PFN]
    bad = np.flatnonzero(expect != mem.count)
    if len(bad):
        p = int(bad[0])
        _fail(f"pfn {p}: count {int(mem.count[p])} but {int(expect[p])} references"
              f" (ptes + page cache + swap cache)")
    used = ~free
    used[ZERO_PFN] = False
    leaked = np.flatnonzero(used & (mem.count == 0))
    if len(leaked):
        _fail(f"pfn {int(leaked[0])} is neither free nor referenced (leak)")
    dirty_free = np.flatnonzero(free & ((mem.count != 0) | (mem.mapcount != 0) | (mem.flags != 0)))
    if len(dirty_free):
        _fail(f"free pfn {int(dirty_free[0])} has state left in it")


def _check_swap(kernel: Any, scan: PteScan) -> None:
    ctx = kernel.ctx
    sw = ctx.swap
    refs = np.bincount(scan.swap[scan.swap >= 0], minlength=len(sw.swap_map)).astype(np.int64)
    for entry in ctx.swapper_space:
        refs[entry] += 1
    bad = np.flatnonzero(refs[:len(sw.swap_map)] != sw.swap_map)
    if len(bad):
        e = int(bad[0])
        _fail(f"swap slot {e}: swap_map {int(sw.swap_map[e])} but {int(refs[e])} references")
    if int((sw.swap_map > 0).sum()) != sw.inuse_pages:
        _fail(f"swap inuse_pages {sw.inuse_pages} but {int((sw.swap_map > 0).sum())} slots used")


def check_rmap_complete(kernel: Any, scan: PteScan | None = None) -> int:
    """For every mapped frame, the scheme's rmap walk finds exactly the
    (mm, address) pairs that map it in a brute-force scan. Returns the
    number of frames checked."""
    if scan is None:
        scan = scan_ptes(kernel)
    real = (scan.pfn >= 0) & (scan.pfn != ZERO_PFN)
    truth: dict[int, set[tuple[int, int]]] = defaultdict(set)
    for pfn, vpn, run in zip(scan.pfn[real].tolist(), scan.vpn[real].tolist(), scan.run[real].tolist()):
        truth[pfn].add((id(scan.owner[run][0]), vpn << PAGE_SHIFT))
    scheme = kernel.ctx.scheme
    with scheme.uncounted():
        for pfn, want in truth.items():
            got = {(id(mm), addr) for mm, addr in scheme.rmap_walk(pfn)}
            if got != want:
                missing = sorted(a for _, a in want - got)
                extra = sorted(a for _, a in got - want)
                _fail(f"rmap walk of pfn {pfn}: missing {[hex(a) for a in missing]},"
                      f" extra {[hex(a) for a in extra]}")
    return len(truth)


def check_no_leaks(kernel: Any) -> None:
    """Once every process has exited, only two things may hold frames or
    swap slots: the page cache of declared files, and swap-cache pages that
    nobody maps and whose slot only the cache holds (Linux leaves those for
    reclaim too: do_wp_page drops a swap-cache page without freeing it)."""
    ctx = kernel.ctx
    mem = ctx.mem
    if kernel.pids():
        _fail("check_no_leaks with live processes")
    cached = sum(f.nrpages for f in ctx.all_files())
    orphans = 0
    for entry, pfn in ctx.swapper_space.items():
        if mem.count[pfn] != 1 or mem.mapcount[pfn] or ctx.swap.swap_map[entry] != 1:
            _fail(f"swap cache page pfn {pfn} (slot {entry}) is still referenced"
                  f" after every process exited")
        orphans += 1
    if mem.nr_used != cached + orphans:
        _fail(f"{mem.nr_used} frames in use after every process exited:"
              f" {cached} page cache, {orphans} orphaned swap cache")
    if ctx.swap.inuse_pages != orphans:
        _fail(f"{ctx.swap.inuse_pages} swap slots in use after every process exited,"
              f" {orphans} held by orphaned swap-cache pages")
