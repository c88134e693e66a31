"""Page reclaim (mm/vmscan.c, 2.6.11): the LRU lists, ``refill_inactive_zone``,
``shrink_list`` in its order (page_referenced, add_to_swap, try_to_unmap,
pageout, free), the priority loop of ``try_to_free_pages``, kswapd's
watermarks, and the OOM killer's victim choice (mm/oom_kill.c).

The LRU lists are the frames with PG_lru, split by PG_active and ordered
by ``lru_seq`` (the tail is the lowest). One zone; no highmem.

Departures: reclaim is synchronous (kswapd runs to completion when woken,
pageout writes at once, no writeback state); there is no swap token and no
slab shrinking; ``pages_min`` is capped at an eighth of memory so that tiny
test machines keep working.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rmaplab.mm.memory import remove_from_page_cache
from rmaplab.mm.page import (PG_active, PG_dirty, PG_locked, PG_lru, PG_referenced, PG_reserved,
                             PG_swapcache)
from rmaplab.mm.swap_state import add_to_swap, delete_from_swap_cache
from rmaplab.rmap.scheme import SWAP_AGAIN, SWAP_FAIL

DEF_PRIORITY = 12
SWAP_CLUSTER_MAX = 32
VM_SWAPPINESS = 60

_ACTIVE = np.uint32(PG_active)
_REF = np.uint32(PG_referenced)
_DIRTY = np.uint32(PG_dirty)


class Zone:
    """The one zone: watermarks and the scan state of ``shrink_zone``."""

    def __init__(self, totalram: int) -> None:
        kbytes = totalram * 4
        min_free_kbytes = min(max(int(math.sqrt(kbytes * 16)), 128), 65536)
        self.pages_min = max(4, min(min_free_kbytes // 4, totalram // 8))
        self.pages_low = self.pages_min + self.pages_min // 4
        self.pages_high = self.pages_min + self.pages_min // 2
        self.prev_priority = DEF_PRIORITY
        self.nr_scan_active = 0
        self.nr_scan_inactive = 0
        self.totalram = totalram




def _oldest(mem: Any, active: bool, n: int) -> list[int]:
    on = np.flatnonzero(mem.flags & PG_lru)
    sel = on[((mem.flags[on] & PG_active) != 0) == active]
    if len(sel) > n:
        sel = sel[np.argpartition(mem.lru_seq[sel], n - 1)[:n]]
    return sel[np.argsort(mem.lru_seq[sel], kind="stable")].tolist()


def _activate(ctx: Any, pfn: int) -> None:
    ctx.mem.flags[pfn] |= _ACTIVE
    ctx.mem.lru_touch(pfn)
    ctx.stat.pgactivate += 1


def pageout(ctx: Any, pfn: int) -> None:
    """Write a dirty page to its backing store (synchronously): a swap-cache
    page to its swap slot, a file page to the file."""
    mem = ctx.mem
    if mem.flags[pfn] & PG_swapcache:
        ctx.swap.contents[int(mem.private[pfn])] = mem.token[pfn]
        ctx.stat.pswpout += 1
    else:
        f = ctx.file_of(int(mem.mapping[pfn]))
        if not f.shmem:
            f.disk.set(int(mem.index[pfn]), int(mem.token[pfn]))
    mem.flags[pfn] &= ~_DIRTY


def page_mapping_inuse(ctx: Any, pfn: int) -> bool:
    """Mapped, in the swap cache, or a page of a file someone maps."""
    mem = ctx.mem
    if mem.mapcount[pfn] or mem.flags[pfn] & PG_swapcache:
        return True
    m = int(mem.mapping[pfn])
    if not m or m & 1:
        return False
    return len(ctx.file_of(m).i_mmap) > 0


def shrink_list(ctx: Any, pfns: list[int]) -> int:
    """``shrink_list`` over inactive pages, oldest first; returns pages freed."""
    mem, scheme, st = ctx.mem, ctx.scheme, ctx.stat
    freed = 0
    for pfn in pfns:
        st.pgscan += 1
        flags = int(mem.flags[pfn])
        if flags & (PG_reserved | PG_locked):
            continue
        anon = bool(mem.mapping[pfn] & 1)
        if scheme.page_referenced(pfn) and page_mapping_inuse(ctx, pfn):
            _activate(ctx, pfn)
            continue
        if anon and not flags & PG_swapcache:
            if not add_to_swap(ctx, pfn):
                _activate(ctx, pfn)
                continue
        if mem.mapcount[pfn]:
            ret = scheme.try_to_unmap(pfn)
            if ret == SWAP_FAIL:
                _activate(ctx, pfn)
                continue
            if ret == SWAP_AGAIN:
                mem.lru_touch(pfn)
                continue
        if mem.flags[pfn] & PG_dirty:
            pageout(ctx, pfn)
        if mem.count[pfn] != 1:
            mem.lru_touch(pfn)          # someone still holds it
            continue
        if mem.flags[pfn] & PG_swapcache:
            delete_from_swap_cache(ctx, pfn)
        else:
            f = ctx.file_of(int(mem.mapping[pfn]))
            if f.shmem:
                # shmem pages go to swap through shmem_writepage; the model
                # keeps shmem pages resident instead.
                mem.lru_touch(pfn)
                continue
            remove_from_page_cache(ctx, pfn)
            mem.count[pfn] = 0
            mem.free_pages(np.array([pfn], dtype=np.int64))
        freed += 1
        st.pgsteal += 1
    return freed


def refill_inactive_zone(ctx: Any, zone: Zone, nr: int) -> None:
    """Move up to ``nr`` pages from the active tail to the inactive list;
    a mapped page stays active if referenced (or if mapped pages are not
    being reclaimed at this pressure)."""
    mem, scheme = ctx.mem, ctx.scheme
    distress = 100 >> zone.prev_priority
    nr_mapped = int((mem.mapcount > 0).sum())
    mapped_ratio = nr_mapped * 100 // max(1, zone.totalram)
    reclaim_mapped = mapped_ratio // 2 + distress + VM_SWAPPINESS >= 100
    no_swap = ctx.swap.limit == 0
    for pfn in _oldest(mem, True, nr):
        if mem.mapcount[pfn]:
            if (not reclaim_mapped or (no_swap and mem.mapping[pfn] & 1)
                    or scheme.page_referenced(pfn)):
                mem.lru_touch(pfn)
                continue
        mem.flags[pfn] &= ~_ACTIVE
        mem.lru_touch(pfn)
        ctx.stat.pgdeactivate += 1


def shrink_zone(ctx: Any, zone: Zone, priority: int, want: int, force: bool = False) -> int:
    """``shrink_zone``: scan the lists in proportion to their size at this
    priority, deferring a scan smaller than SWAP_CLUSTER_MAX to a later
    call. ``force``: at priority 0 the whole lists are scanned however
    small (what a trace's ``reclaim`` event asks: free what can be freed)."""
    mem = ctx.mem
    on = mem.flags & PG_lru
    nr_act = int(((on != 0) & ((mem.flags & PG_active) != 0)).sum())
    nr_inact = int((on != 0).sum()) - nr_act
    zone.nr_scan_active += (nr_act >> priority) + 1
    nr_active = zone.nr_scan_active
    if nr_active >= SWAP_CLUSTER_MAX:
        zone.nr_scan_active = 0
    else:
        nr_active = 0
    zone.nr_scan_inactive += (nr_inact >> priority) + 1
    nr_inactive = zone.nr_scan_inactive
    if nr_inactive >= SWAP_CLUSTER_MAX:
        zone.nr_scan_inactive = 0
    else:
        nr_inactive = 0
    if force and priority == 0:
        nr_active, nr_inactive = max(nr_active, nr_act), max(nr_inactive, nr_inact)
        zone.nr_scan_active = zone.nr_scan_inactive = 0
    freed = 0
    while nr_active or nr_inactive:
        if nr_active:
            n = min(nr_active, SWAP_CLUSTER_MAX)
            nr_active -= n
            refill_inactive_zone(ctx, zone, n)
        if nr_inactive:
            n = min(nr_inactive, SWAP_CLUSTER_MAX)
            nr_inactive -= n
            freed += shrink_list(ctx, _oldest(mem, False, n))
            if freed >= want:
                break
    return freed


def try_to_free_pages(ctx: Any, zone: Zone, want: int, at_least_cluster: bool = True,
                      force: bool = False) -> int:
    """The priority loop: scan harder until ``want`` pages (at least
    SWAP_CLUSTER_MAX, as the kernel asks) are freed or priority reaches 0
    (``force``: see ``shrink_zone``)."""
    if at_least_cluster:
        want = max(want, SWAP_CLUSTER_MAX)
    total = 0
    priority = DEF_PRIORITY
    for priority in range(DEF_PRIORITY, -1, -1):
        # shrink_caches: distress follows the pressure within this call
        zone.prev_priority = min(zone.prev_priority, priority)
        total += shrink_zone(ctx, zone, priority, want - total, force)
        if total >= want:
            break
    zone.prev_priority = priority       # temp_priority, kept for next time
    return total


def select_bad_process(kernel: Any) -> int | None:
    """``select_bad_process``/``badness`` of 2.6: the largest total_vm
    (every process is root, so the CAP_SYS_ADMIN divisor is the same for
    all); ties go to the first in the task list."""
    best, best_pts = None, 0
    for pid in kernel.pids():
        pts = kernel.mm(pid).total_vm
        if pts > best_pts:
            best, best_pts = pid, pts
    return best
