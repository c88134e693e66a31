"""Reclaim and swap through the reverse map (issue: "Reclaim and swap").

Layouts are drawn one character per page (see rmaplab.show.layout): pte
'a'/'A' anonymous present, 's' swap entry, 'f'/'F' file page, '-' none.
"""

from __future__ import annotations

import numpy as np
import pytest

from rmaplab.check import check_no_leaks, check_rmap_complete, validate
from rmaplab.config import Config
from rmaplab.kernel import Kernel
from rmaplab.mm.swap_state import add_to_swap
from rmaplab.rmap.scheme import SWAP_FAIL, SWAP_SUCCESS
from rmaplab.show.layout import draw

P = 4096
A = 0x1000_0000          # a free, page-aligned base
B = 0x2000_0000


def anon(k: Kernel, pid: int, addr: int, pages: int, flags=()) -> None:
    k.mmap(pid, addr, pages * P, "rw-", ["private", "anonymous", "fixed", *flags])


def pfn_at(k: Kernel, pid: int, addr: int) -> int:
    pte = k.mm(pid).pgd.get(addr >> 12)
    assert pte & 1, f"{addr:#x} not present"
    return pte >> 12


def check(k: Kernel) -> None:
    check_rmap_complete(k, validate(k))


def test_pressure_keeps_every_process_data():
    # 3 processes write 3 x 40 pages into 64 frames: most of it goes to swap
    # and comes back on the reads.
    k = Kernel(Config(mem_pages=64, swap_pages=512))
    k.spawn(1)
    anon(k, 1, A, 40)
    k.touch(1, A, 40 * P, "w", "base")
    k.fork(1, 2)
    k.fork(1, 3)
    for pid in (2, 3):
        for i in range(0, 40, 2):
            assert k.touch(pid, A + i * P, P, "w", f"{pid}:{i}").result == "ok"
        check(k)
    assert k.stat.pswpout > 0 and k.stat.pgsteal > 0
    for pid in (1, 2, 3):
        r = k.touch(pid, A, 40 * P, "r")
        want = ["base" if pid == 1 or i % 2 else f"{pid}:{i}" for i in range(40)]
        assert r.result == "ok" and r.read == want
        check(k)
    assert k.stat.pswpin > 0
    for pid in (1, 2, 3):
        k.exit(pid)
    check_no_leaks(k)


def test_locked_pages_are_never_swapped_out():
    k = Kernel(Config(mem_pages=64, swap_pages=1024))
    k.spawn(1)
    anon(k, 1, A, 8, ["locked"])           # MAP_LOCKED prefaults (write faults)
    k.touch(1, A, 8 * P, "w", "pinned")
    k.spawn(2)
    anon(k, 2, B, 200)
    k.touch(2, B, 200 * P, "w", "churn")    # three times memory: heavy reclaim
    k.touch(2, B, 200 * P, "r")
    assert k.stat.pswpout >= 100
    assert draw(k.mm(1), A, 8, "pte", k.mem) == "AAAAAAAA"
    # shrink_list gave the locked pages swap slots (add_to_swap comes before
    # try_to_unmap) but could never unmap them; try_to_unmap refuses them.
    pfn = pfn_at(k, 1, A)
    assert k.mem.flags[pfn] & (1 << 16)       # PG_swapcache
    k.scheme.page_referenced(pfn)           # clear the young bit first
    assert k.scheme.try_to_unmap(pfn) == SWAP_FAIL
    assert k.touch(1, A, 8 * P, "r").read == ["pinned"] * 8
    check(k)


def _family(scheme: str, n: int, cow: bool) -> Kernel:
    k = Kernel(Config(scheme=scheme))
    k.spawn(1)
    anon(k, 1, A, 4)
    k.touch(1, A, 4 * P, "w", "parent")
    for c in range(2, n + 2):
        k.fork(1, c)
        if cow:
            k.touch(c, A, P, "w", f"child{c}")
    return k


def _delta(k: Kernel, fn, *args):
    before = k.stat.as_dict()
    out = fn(*args)
    after = k.stat.as_dict()
    return out, {n: after[n] - before[n] for n in after if after[n] != before[n]}


@pytest.mark.parametrize("n", [1, 5, 12])
def test_fork_family_walk_counts_shared_page(n):
    """A page shared by the parent and n children: its anon_vma's list holds
    n+1 VMAs (one per process, newest first) and every one covers the page,
    so page_referenced visits all n+1 (it only stops when it has seen
    mapcount = n+1 ptes) and try_to_unmap visits all n+1 and unmaps each."""
    k = _family("anon_vma", n, cow=False)
    pfn = pfn_at(k, 1, A + P)
    assert k.mem.mapcount[pfn] == n + 1
    ref, d = _delta(k, k.scheme.page_referenced, pfn)
    # the parent's pte is young (it wrote), children's ptes are old (fork
    # makes them old); PG_referenced was set by the write fault: 1 + 1
    assert ref == 2
    assert d["rmap_vmas_visited"] == n + 1 and d["rmap_ptes_compared"] == n + 1
    assert d.get("rmap_vmas_skipped", 0) == 0
    assert add_to_swap(k.ctx, pfn)
    ret, d = _delta(k, k.scheme.try_to_unmap, pfn)
    assert ret == SWAP_SUCCESS
    assert d["rmap_vmas_visited"] == n + 1 and d["rmap_ptes_found"] == n + 1
    assert d.get("find_vma_calls", 0) == 0            # page -> anon_vma -> vma
    entry = int(k.mem.private[pfn])
    assert k.ctx.swap.swap_map[entry] == n + 2        # n+1 swap ptes + the cache
    check(k)


@pytest.mark.parametrize("n", [3, 8])
def test_fork_family_walk_counts_child_private_page(n):
    """Child c (forked c-th of n) COWed page 0: its copy is mapped once but
    still belongs to the family's one anon_vma (2.6.7). The list is walked
    newest first (children N..1, then the parent), and the walk stops at the
    one pte: child c's page costs n - c + 1 visited VMAs, the oldest child's
    the most. Under anon_vma_chain the copy belongs to the child's own
    anon_vma: one VMA."""
    k = _family("anon_vma", n, cow=True)
    kc = _family("anon_vma_chain", n, cow=True)
    for c in range(1, n + 1):
        pid = c + 1
        pfn = pfn_at(k, pid, A)
        assert k.mem.mapcount[pfn] == 1
        _, d = _delta(k, k.scheme.page_referenced, pfn)
        assert d["rmap_vmas_visited"] == n - c + 1
        _, dc = _delta(kc, kc.scheme.page_referenced, pfn_at(kc, pid, A))
        assert dc["rmap_vmas_visited"] == 1
    check(k)
    check(kc)


def test_oom_kills_the_biggest_and_keeps_the_rest():
    k = Kernel(Config(mem_pages=64, swap_pages=32))
    k.spawn(1)
    anon(k, 1, A, 8)
    k.touch(1, A, 8 * P, "w", "small")
    k.spawn(2)
    anon(k, 2, B, 400)
    r = k.touch(2, B, 400 * P, "w", "greedy")       # memory + swap < 400 pages
    assert r.result == "SIGKILL"
    assert k.oom_killed == [2] and 2 not in k.pids()
    assert k.stat.oom_kills == 1
    assert k.touch(1, A, 8 * P, "r").read == ["small"] * 8
    check(k)
    k.exit(1)
    check_no_leaks(k)


def test_oom_victim_may_be_another_process():
    # pid 1 is the biggest (by total_vm) but idle; pid 2 asks for memory.
    k = Kernel(Config(mem_pages=64, swap_pages=16))
    k.spawn(1)
    anon(k, 1, A, 60)
    k.touch(1, A, 60 * P, "w", "hog")
    k.spawn(2)
    anon(k, 2, B, 30)
    r = k.touch(2, B, 30 * P, "w", "needy")
    assert r.result == "ok"
    assert k.oom_killed == [1]
    assert k.touch(2, B, 30 * P, "r").read == ["needy"] * 30
    check(k)
    k.exit(2)
    check_no_leaks(k)


def test_shared_file_page_written_back_and_clean_pages_dropped():
    k = Kernel(Config(mem_pages=64, swap_pages=512))
    k.declare_file("data", 16 * P)
    k.spawn(1)
    k.mmap(1, A, 16 * P, "rw-", ["shared", "fixed"], file="data")
    k.touch(1, A, 4 * P, "w", "dirty")        # pages 0-3 dirty
    k.touch(1, A + 4 * P, 12 * P, "r")        # pages 4-15 clean
    f = k.ctx.files["data"]
    assert f.nrpages == 16
    k.munmap(1, A, 16 * P)                    # now only the page cache holds them
    anon(k, 1, B, 200)
    k.touch(1, B, 200 * P, "w", "pressure")   # evicts the page cache
    assert f.nrpages < 16
    # the dirty pages were written back, the clean ones dropped unchanged
    k.spawn(2)
    k.mmap(2, A, 16 * P, "r--", ["shared", "fixed"], file="data")
    assert k.touch(2, A, 16 * P, "r").read == ["dirty"] * 4 + [f"data:{i}" for i in range(4, 16)]
    check(k)


def test_private_file_cow_pages_swap_like_anonymous():
    k = Kernel(Config(mem_pages=64, swap_pages=512))
    k.declare_file("lib", 8 * P)
    k.spawn(1)
    k.mmap(1, A, 8 * P, "rw-", ["private", "fixed"], file="lib")
    k.touch(1, A, 8 * P, "r")
    k.touch(1, A, 4 * P, "w", "patched")      # early/COW copies: anonymous pages
    anon(k, 1, B, 200)
    k.touch(1, B, 200 * P, "w", "pressure")
    pte = draw(k.mm(1), A, 8, "pte", k.mem)
    assert "s" in pte[:4], pte                # the COW copies went to swap
    assert k.touch(1, A, 8 * P, "r").read == ["patched"] * 4 + [f"lib:{i}" for i in range(4, 8)]
    check(k)


def test_swap_slots_freed_on_unmap_and_exit():
    k = Kernel(Config(mem_pages=64, swap_pages=512))
    k.spawn(1)
    anon(k, 1, A, 150)
    k.touch(1, A, 150 * P, "w", "x")
    assert k.ctx.swap.inuse_pages > 0
    k.fork(1, 2)                              # swap entries are duplicated
    vpns, ptes = k.mm(2).pgd.populated(A >> 12, (A >> 12) + 150)
    swapped = ptes[(ptes & 1) == 0] >> 12
    assert len(swapped) and (k.ctx.swap.swap_map[swapped] >= 2).all()
    k.munmap(1, A, 150 * P)
    check(k)
    k.exit(2)
    k.exit(1)
    check_no_leaks(k)
    assert k.ctx.swap.inuse_pages == 0


def test_reclaim_event_frees_what_it_reports():
    k = Kernel(Config(mem_pages=256, swap_pages=512))
    k.spawn(1)
    anon(k, 1, A, 100)
    k.touch(1, A, 100 * P, "w", "r")
    used = k.mem.nr_used
    freed = k.reclaim(40)
    assert freed >= 40
    assert k.mem.nr_used == used - freed
    assert k.touch(1, A, 100 * P, "r").read == ["r"] * 100
    check(k)


def test_young_pages_survive_one_scan():
    """shrink_list activates a page whose ptes were referenced: a pass over
    pages just touched reclaims none of them the first time."""
    k = Kernel(Config(mem_pages=256, swap_pages=512))
    k.spawn(1)
    anon(k, 1, A, 32)
    k.touch(1, A, 32 * P, "w", "hot")
    from rmaplab.mm.vmscan import shrink_list
    pfns = [pfn_at(k, 1, A + i * P) for i in range(32)]
    assert shrink_list(k.ctx, pfns) == 0
    assert all(k.mem.flags[p] & (1 << 6) for p in pfns)      # PG_active
    assert np.all(k.mm(1).pgd.gather(A >> 12, (A >> 12) + 32) & 0x20 == 0)  # young cleared
