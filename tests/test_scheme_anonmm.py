"""The anonmm scheme (Hugh Dickins, rmap 10 + rmap 11, April 2004).

Walk costs round the bundle, find_vma only on hits, mremap's forced and
deferred copies (against anon_vma's none on the same scenarios), migration
off exited mms, merging without pgoff, exact anonmm reference counts, and
the generic checks (invariants, rmap completeness, data, leaks) through
fork/COW/mprotect/mremap/munmap/exit and under tiny memory with swapping.

Windows are drawn as in conftest.py; addresses are pages of the window.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import PGB, P, addr, check, mapx, new_kernel, pfn_at, read, spans, write
from rmaplab.check import check_no_leaks, validate
from rmaplab.config import Config
from rmaplab.errors import InvariantError
from rmaplab.kernel import Kernel
from rmaplab.mm.swap_state import add_to_swap
from rmaplab.mm.vmscan import shrink_list
from rmaplab.rmap.anonmm import AnonmmScheme
from rmaplab.rmap.scheme import SWAP_FAIL, SWAP_SUCCESS


def anonmm(**cfg) -> Kernel:
    return new_kernel(scheme="anonmm", **cfg)


def delta(k: Kernel, fn, *names: str) -> dict[str, int]:
    """Run ``fn()`` and return how much each named counter grew."""
    before = {n: getattr(k.stat, n) for n in names}
    fn()
    return {n: getattr(k.stat, n) - before[n] for n in names}


WALK = ("rmap_mms_visited", "rmap_pgtable_walks", "rmap_ptes_compared", "rmap_ptes_found",
        "find_vma_calls", "lock_anonmm")


def swap_out(k: Kernel, pfn: int) -> None:
    """Age ``pfn`` and put it through shrink_list: unmapped everywhere,
    written to swap and freed."""
    k.scheme.page_referenced(pfn)          # clear the young bits and PG_referenced
    assert shrink_list(k.ctx, [pfn]) == 1


def pte_kinds(k: Kernel, pid: int, start: int, n: int) -> str:
    """'A' present, 's' swap, '-' none, per page of the window."""
    out = ""
    for i in range(n):
        pte = int(k.mm(pid).pgd.get((addr(start) >> 12) + i))
        out += "-" if not pte else ("A" if pte & 1 else "s")
    return out


def test_registered():
    k = anonmm()
    assert isinstance(k.scheme, AnonmmScheme) and k.scheme.name == "anonmm"
    assert not k.scheme.has_anon_vma


# -- structures ----------------------------------------------------------------------------

def test_exec_fork_exit_refcounts():
    # exec_rmap: count 2 (mm + head); dup_rmap: child 1, head +1; a page
    # holds one reference on the anonmm it points at, however many ptes.
    k = anonmm()
    s = k.scheme
    head = k.mm(1).rmap
    assert head.head is head and head.count == 2 and head.ring == [head]
    mapx(k, 0, 3)
    write(k, 0, 3, "a")
    assert head.count == 5
    k.fork(1, 2)
    child = k.mm(2).rmap
    assert child.head is head and child.count == 1 and head.ring == [head, child]
    assert head.count == 6                        # the child's anonmm holds the head
    assert all(int(k.mem.mapping[pfn_at(k, i)]) == head.tag for i in range(3))
    write(k, 0, 1, "b", pid=2)                    # COW: the copy is the child's
    assert int(k.mem.mapping[pfn_at(k, 0, pid=2)]) == child.tag
    assert child.count == 2 and head.count == 6
    check(k)
    k.exit(1)                                     # head lingers: two pages still in pid 2
    assert head.mm is None and head.count == 1 + 2 + 1
    check(k)
    k.exit(2)
    assert s.anonmms == {}
    assert k.stat.anonmm_alloc == k.stat.anonmm_free == 2
    check_no_leaks(k)


def test_exec_starts_a_new_bundle():
    k = anonmm()
    mapx(k, 0, 1)
    write(k, 0)
    k.fork(1, 2)
    k.exec(2)
    assert k.mm(2).rmap.head is k.mm(2).rmap
    assert k.mm(2).rmap.head is not k.mm(1).rmap.head
    assert k.mm(1).rmap.ring == [k.mm(1).rmap]    # the old child left the ring
    check(k)


def test_check_catches_a_wrong_count():
    k = anonmm()
    mapx(k, 0, 2)
    write(k, 0, 2)
    check(k)
    k.mm(1).rmap.count += 1
    with pytest.raises(InvariantError, match="count"):
        validate(k)


def test_check_mapped_catches_a_page_outside_the_bundle():
    k = anonmm()
    k.spawn(2)
    mapx(k, 0, 1)
    write(k, 0)
    mapx(k, 0, 1, pid=2)
    write(k, 0, pid=2)
    # Point pid 2's page at pid 1's anonmm (another bundle): the walk from
    # the page could never reach pid 2.
    pfn = pfn_at(k, 0, pid=2)
    k.mm(2).rmap.count -= 1
    k.mm(1).rmap.count += 1
    k.mem.mapping[pfn] = k.mm(1).rmap.tag
    with pytest.raises(InvariantError, match="outside its bundle"):
        validate(k)


def test_metadata_bytes():
    k = anonmm()
    k.fork(1, 2)
    k.fork(1, 3)
    # three anonmms, three mms: i386 24 + 4 each, x86_64 40 + 8 each
    assert k.scheme.metadata_bytes() == {"i386": 3 * 28, "x86_64": 3 * 48}
    mapx(k, 0, 1)
    write(k, 0)
    k.fork(1, 4)
    k.exit(1)                                     # head lingers without its mm
    assert k.scheme.metadata_bytes() == {"i386": 4 * 24 + 3 * 4, "x86_64": 4 * 40 + 3 * 8}


# -- walks ---------------------------------------------------------------------------------

def _fan_out(scheme: str, f: int) -> Kernel:
    """pid 1 writes pages 0 and 1, forks pids 2..f; every process but the
    last then writes page 1 (COW), so the original frame of page 1 is
    mapped once, in pid f, while page->mapping still names pid 1."""
    k = new_kernel(scheme=scheme)
    mapx(k, 0, 2)
    write(k, 0, 2, "orig")
    for pid in range(2, f + 1):
        k.fork(1, pid)
    return k


@pytest.mark.parametrize("f", [2, 5, 9])
def test_walk_visits_every_live_mm_of_the_bundle(f):
    k = _fan_out("anonmm", f)
    shared = pfn_at(k, 0)
    orig = pfn_at(k, 1)
    for pid in range(1, f):
        write(k, 1, 1, f"own{pid}", pid=pid)
    assert k.mem.mapcount[orig] == 1 and pfn_at(k, 1, pid=f) == orig
    assert int(k.mem.mapping[orig]) == k.mm(1).rmap.tag
    # page_referenced: pid 1 (indicated) misses, then round the ring to pid f
    d = delta(k, lambda: k.scheme.page_referenced(orig), *WALK)
    assert d == {"rmap_mms_visited": f, "rmap_pgtable_walks": f, "rmap_ptes_compared": f,
                 "rmap_ptes_found": 1, "find_vma_calls": 0, "lock_anonmm": 1}
    # a page mapped in all f: f lookups, f hits
    d = delta(k, lambda: k.scheme.page_referenced(shared), *WALK)
    assert d["rmap_pgtable_walks"] == f and d["rmap_ptes_found"] == f
    # try_to_unmap: the same f lookups; find_vma only for the one hit
    assert add_to_swap(k.ctx, orig)
    d = delta(k, lambda: k.scheme.try_to_unmap(orig), *WALK)
    assert d == {"rmap_mms_visited": f, "rmap_pgtable_walks": f, "rmap_ptes_compared": f,
                 "rmap_ptes_found": 1, "find_vma_calls": 1, "lock_anonmm": 1}
    assert pte_kinds(k, f, 1, 1) == "s"
    check(k)
    assert read(k, 1, pid=f) == ["orig"]
    check(k)


def test_walk_stops_at_the_indicated_mm_when_it_holds_every_pte():
    k = _fan_out("anonmm", 6)
    mapx(k, 4, 1, pid=6)
    write(k, 4, 1, "mine", pid=6)                 # only in pid 6, indicated
    pfn = pfn_at(k, 4, pid=6)
    d = delta(k, lambda: k.scheme.page_referenced(pfn), *WALK)
    assert d["rmap_pgtable_walks"] == 1 and d["rmap_ptes_found"] == 1


def test_walk_looks_in_unrelated_mms_of_the_bundle_unlike_anon_vma():
    # pid 1 forks 2..4 (all hold page 0, so rss > 0), then maps page 4,
    # writes it and forks pid 5: the page is in pids 1 and 5 only.
    def run(scheme):
        k = new_kernel(scheme=scheme)
        mapx(k, 0, 1)
        write(k, 0, 1, "z")
        for pid in (2, 3, 4):
            k.fork(1, pid)
        mapx(k, 4, 1)
        write(k, 4, 1, "w")
        k.fork(1, 5)
        pfn = pfn_at(k, 4)
        d = delta(k, lambda: k.scheme.page_referenced(pfn),
                  "rmap_pgtable_walks", "rmap_ptes_found", "rmap_vmas_visited")
        check(k)
        return d
    # anonmm: ring 1,2,3,4,5: a lookup in each; anon_vma: the 2 VMAs
    assert run("anonmm") == {"rmap_pgtable_walks": 5, "rmap_ptes_found": 2, "rmap_vmas_visited": 0}
    assert run("anon_vma") == {"rmap_pgtable_walks": 2, "rmap_ptes_found": 2, "rmap_vmas_visited": 2}


def test_walk_skips_mms_without_rss():
    k = anonmm()
    mapx(k, 0, 1)
    write(k, 0, 1, "z")
    k.fork(1, 2)
    k.fork(1, 3)
    k.munmap(2, addr(0), P)                        # pid 2 keeps nothing: rss 0
    write(k, 0, 1, "mine")                         # pid 1 copies; original in pid 3 only
    orig = pfn_at(k, 0, pid=3)
    d = delta(k, lambda: k.scheme.page_referenced(orig), *WALK)
    assert d["rmap_mms_visited"] == 2 and d["rmap_ptes_found"] == 1   # pids 1 and 3


def test_exited_mms_pages_migrate_on_page_referenced():
    # pid 1 forks 2; pid 2 writes 3 pages and forks 3; pid 2 exits: its
    # anonmm lingers (3 page references) until page_referenced moves each
    # page to pid 3's anonmm, then it is freed.
    k = anonmm()
    k.fork(1, 2)
    mapx(k, 0, 3, pid=2)
    write(k, 0, 3, "c", pid=2)
    k.fork(2, 3)
    dead = k.mm(2).rmap
    k.exit(2)
    assert dead.mm is None and dead.count == 3 and dead.id in k.scheme.anonmms
    check(k)
    pfns = [pfn_at(k, i, pid=3) for i in range(3)]
    # try_to_unmap does not migrate (only page_referenced_anon does)
    read(k, 2, pid=3)                              # young again
    assert add_to_swap(k.ctx, pfns[2])
    assert k.scheme.try_to_unmap(pfns[2]) == SWAP_FAIL
    assert int(k.mem.mapping[pfns[2]]) == dead.tag
    for n, pfn in enumerate(pfns, 1):
        d = delta(k, lambda p=pfn: k.scheme.page_referenced(p), "anonmm_migrations", "anonmm_free",
                  "rmap_pgtable_walks")
        assert d["rmap_pgtable_walks"] == 1        # the dead mm is skipped
        assert int(k.mem.mapping[pfn]) == k.mm(3).rmap.tag
        assert d["anonmm_migrations"] == 1 and d["anonmm_free"] == (1 if n == 3 else 0)
        check(k)
    assert dead.id not in k.scheme.anonmms
    assert k.mm(3).rmap.count == 1 + 3
    assert read(k, 0, 3, pid=3) == ["c"] * 3
    k.exit(1)
    k.exit(3)
    assert k.scheme.anonmms == {}
    check_no_leaks(k)


def test_no_migration_while_the_indicated_mm_lives():
    k = anonmm()
    mapx(k, 0, 1)
    write(k, 0)
    k.fork(1, 2)
    pfn = pfn_at(k, 0)
    k.scheme.page_referenced(pfn)
    assert int(k.mem.mapping[pfn]) == k.mm(1).rmap.tag and k.stat.anonmm_migrations == 0


# -- mremap (rmap 11) ------------------------------------------------------------------------

def _shared_then_moved(scheme: str, n: int = 4) -> tuple[Kernel, list[int]]:
    k = new_kernel(scheme=scheme)
    mapx(k, 0, n)
    write(k, 0, n, "s")
    k.fork(1, 2)
    pfns = [pfn_at(k, i) for i in range(n)]
    assert k.mremap(1, addr(0), n * P, n * P, ["maymove", "fixed"], addr(20)) == addr(20)
    return k, pfns


def test_mremap_of_shared_pages_copies_each_anonmm():
    k, pfns = _shared_then_moved("anonmm")
    assert k.stat.mremap_cows == 4 and k.stat.pages_copied == 4
    moved = [pfn_at(k, 20 + i) for i in range(4)]
    assert not set(moved) & set(pfns)               # pid 1 has copies
    assert [pfn_at(k, i, pid=2) for i in range(4)] == pfns
    assert [int(k.mem.index[p]) for p in moved] == [PGB + 20 + i for i in range(4)]
    assert [int(k.mem.index[p]) for p in pfns] == [PGB + i for i in range(4)]
    assert all(k.mem.mapcount[p] == 1 for p in moved + pfns)
    check(k)
    assert read(k, 20, 4) == ["s"] * 4 and read(k, 0, 4, pid=2) == ["s"] * 4
    write(k, 20, 1, "p1")
    assert read(k, 0, 1, pid=2) == ["s"]
    check(k)


def test_mremap_of_shared_pages_copies_none_anon_vma():
    k, pfns = _shared_then_moved("anon_vma")
    assert k.stat.mremap_cows == 0 and k.stat.pages_copied == 0
    assert [pfn_at(k, 20 + i) for i in range(4)] == pfns
    check(k)


def test_mremap_of_exclusive_pages_rewrites_index():
    k = anonmm()
    mapx(k, 0, 4)
    write(k, 0, 4, "e")
    pfns = [pfn_at(k, i) for i in range(4)]
    k.mremap(1, addr(0), 4 * P, 4 * P, ["maymove", "fixed"], addr(30))
    assert k.stat.mremap_cows == 0 and k.stat.pages_copied == 0
    assert [pfn_at(k, 30 + i) for i in range(4)] == pfns
    assert [int(k.mem.index[p]) for p in pfns] == [PGB + 30 + i for i in range(4)]
    check(k)
    assert read(k, 30, 4) == ["e"] * 4


def test_mremap_copies_only_the_still_shared_pages():
    k = anonmm()
    mapx(k, 0, 4)
    write(k, 0, 4, "s")
    k.fork(1, 2)
    write(k, 0, 2, "c", pid=2)                     # pid 2 COWs pages 0, 1
    k.mremap(2, addr(0), 4 * P, 4 * P, ["maymove", "fixed"], addr(40))
    assert k.stat.mremap_cows == 2
    check(k)
    assert read(k, 40, 4, pid=2) == ["c", "c", "s", "s"]
    assert read(k, 0, 4) == ["s"] * 4


def _swapped_shared_then_moved(scheme: str, n: int = 3) -> Kernel:
    """pid 1 writes n pages, forks 2; every page is swapped out (from both);
    then pid 1 moves the range: only swap ptes move."""
    k = new_kernel(scheme=scheme)
    mapx(k, 0, n)
    write(k, 0, n, "sw")
    k.fork(1, 2)
    for i in range(n):
        swap_out(k, pfn_at(k, i))
    assert pte_kinds(k, 1, 0, n) == pte_kinds(k, 2, 0, n) == "s" * n
    assert not k.ctx.swapper_space
    k.mremap(1, addr(0), n * P, n * P, ["maymove", "fixed"], addr(20))
    assert k.stat.mremap_cows == 0
    check(k)
    return k


@pytest.mark.parametrize("first", [1, 2])
def test_swapped_shared_pages_moved_are_copied_at_swap_in(first):
    # Whoever faults first takes the page at its own address; the other,
    # finding it in the swap cache at a clashing address, takes a copy.
    k = _swapped_shared_then_moved("anonmm")
    at = {1: 20, 2: 0}
    other = 3 - first
    assert read(k, at[first], 3, pid=first) == ["sw"] * 3
    assert k.stat.mremap_cows == 0
    check(k)
    pfns = [pfn_at(k, at[first] + i, pid=first) for i in range(3)]
    assert [int(k.mem.index[p]) for p in pfns] == [PGB + at[first] + i for i in range(3)]
    assert read(k, at[other], 3, pid=other) == ["sw"] * 3
    assert k.stat.mremap_cows == 3 and k.stat.pages_copied == 3
    assert not {pfn_at(k, at[other] + i, pid=other) for i in range(3)} & set(pfns)
    check(k)
    k.exit(1)
    k.exit(2)
    check_no_leaks(k)


def test_swapped_shared_pages_moved_anon_vma_share_the_swap_cache_page():
    k = _swapped_shared_then_moved("anon_vma")
    assert read(k, 20, 3) == ["sw"] * 3 and read(k, 0, 3, pid=2) == ["sw"] * 3
    assert k.stat.mremap_cows == 0 and k.stat.pages_copied == 0
    assert pfn_at(k, 20) == pfn_at(k, 0, pid=2)
    check(k)


def test_swapped_exclusive_page_moved_takes_the_new_index():
    k = anonmm()
    mapx(k, 0, 2)
    write(k, 0, 2, "x")
    pfn = pfn_at(k, 0)
    assert add_to_swap(k.ctx, pfn)
    k.scheme.page_referenced(pfn)
    assert k.scheme.try_to_unmap(pfn) == SWAP_SUCCESS
    assert pfn in k.ctx.swapper_space.values() and k.mem.mapcount[pfn] == 0
    assert k.mem.mapping[pfn] == 0                   # cleared at the last unmap
    k.mremap(1, addr(0), 2 * P, 2 * P, ["maymove", "fixed"], addr(10))
    assert read(k, 10, 2) == ["x", "x"]
    assert pfn_at(k, 10) == pfn                      # straight from the swap cache
    assert int(k.mem.index[pfn]) == PGB + 10
    assert k.stat.mremap_cows == 0 and k.stat.pages_copied == 0
    check(k)


# -- merging -------------------------------------------------------------------------------------

def test_moved_faulted_vma_merges_with_fresh_neighbours():
    # The anon_vma counterpart (test_magic) keeps three VMAs: pgoff 20 follows
    # nothing. anonmm merges on flags alone.
    def run(scheme):
        k = new_kernel(scheme=scheme)
        mapx(k, 0, 3)
        mapx(k, 20, 1)
        write(k, 20, 1, "y")
        pfn = pfn_at(k, 20)
        assert k.mremap(1, addr(20), P, P, ["maymove", "fixed"], addr(3)) == addr(3)
        mapx(k, 4, 1)
        assert read(k, 3) == ["y"] and pfn_at(k, 3) == pfn
        check(k)
        return k, pfn
    k, pfn = run("anonmm")
    assert spans(k) == [(0, 5, 0)]
    assert int(k.mem.index[pfn]) == PGB + 3
    k, _ = run("anon_vma")
    assert spans(k) == [(0, 3, 0), (3, 4, 20), (4, 5, 4)]


@pytest.mark.parametrize("scheme, merges", [("anonmm", True), ("anon_vma", False)])
def test_vma_merge_of_anonymous_range_ignores_pgoff(scheme, merges):
    # In this core every anonmm VMA keeps vm_pgoff == vm_start >> PAGE_SHIFT
    # (copy_vma re-bases a VMA without anon_vma), so ask vma_merge directly
    # about a range whose pgoff does not follow prev's.
    from rmaplab.mm.mmap import vma_merge
    k = new_kernel(scheme=scheme)
    mapx(k, 0, 3)
    prev = k.mm(1).find_vma(addr(0))
    got = vma_merge(k.ctx, k.mm(1), prev, addr(3), addr(4), prev.vm_flags, None, None, PGB + 50)
    assert (got is prev) == merges
    assert spans(k)[0] == ((0, 4, 0) if merges else (0, 3, 0))


def test_mprotect_split_and_remerge_of_written_pages():
    k = anonmm()
    mapx(k, 0, 6)
    write(k, 0, 6, "m")
    k.fork(1, 2)
    k.mprotect(1, addr(2), 2 * P, "r--")
    assert len(spans(k)) == 3
    check(k)
    k.mprotect(1, addr(2), 2 * P, "rw-")
    assert spans(k) == [(0, 6, 0)]
    check(k)


# -- generic scenarios ---------------------------------------------------------------------

def test_fork_cow_mprotect_mremap_munmap_exit_scenario():
    k = anonmm()
    mapx(k, 0, 8)
    write(k, 0, 8, "a")
    k.fork(1, 2)
    check(k)
    write(k, 0, 3, "b", pid=2)                         # COW in the child
    k.fork(2, 3)
    check(k)
    k.mprotect(2, addr(2), 3 * P, "r--")
    check(k)
    k.mremap(2, addr(5), 3 * P, 5 * P, ["maymove", "fixed"], addr(40))
    check(k)
    k.mprotect(3, addr(0), 8 * P, "r--")
    k.munmap(1, addr(6), 2 * P)
    check(k)
    write(k, 0, 2, "c")
    k.mremap(3, addr(0), 8 * P, 8 * P, ["maymove", "fixed"], addr(60))
    check(k)
    assert read(k, 0, 6) == ["c", "c", "a", "a", "a", "a"]
    assert read(k, 0, 4, pid=2) == ["b", "b", "b", "a"]
    assert read(k, 40, 5, pid=2) == ["a"] * 3 + [None, None]
    assert read(k, 60, 8, pid=3) == ["b"] * 3 + ["a"] * 5
    k.exit(2)
    check(k)
    for pfn in np.flatnonzero(k.mem.mapcount > 0).tolist():
        if k.mem.mapping[pfn] & 1:
            k.scheme.page_referenced(pfn)
    check(k)
    assert read(k, 60, 8, pid=3) == ["b"] * 3 + ["a"] * 5
    k.exit(1)
    k.exit(3)
    assert k.scheme.anonmms == {}
    check_no_leaks(k)


def test_tiny_memory_with_swapping_and_mremap_of_swapped_shared_pages():
    n = 40
    k = Kernel(Config(scheme="anonmm", mem_pages=64, swap_pages=512))
    k.spawn(1)
    mapx(k, 0, n)
    write(k, 0, n, "x")
    k.fork(1, 2)
    mapx(k, 100, n, pid=2)
    write(k, 100, n, "y", pid=2)                       # pressure: shared pages go to swap
    kinds = pte_kinds(k, 1, 0, n)
    assert "s" in kinds and "A" in kinds
    check(k)
    k.mremap(1, addr(0), n * P, n * P, ["maymove", "fixed"], addr(200))
    cows_at_move = k.stat.mremap_cows
    assert cows_at_move == kinds.count("A")            # present and shared: copied now
    check(k)
    assert read(k, 200, n) == ["x"] * n
    check(k)
    assert read(k, 0, n, pid=2) == ["x"] * n
    check(k)
    assert k.stat.mremap_cows > cows_at_move           # some copied at swap-in
    assert read(k, 100, n, pid=2) == ["y"] * n
    k.fork(2, 3)
    write(k, 0, 10, "z", pid=3)
    k.mremap(3, addr(0), n * P, n * P, ["maymove", "fixed"], addr(300))
    check(k)
    assert read(k, 300, n, pid=3) == ["z"] * 10 + ["x"] * (n - 10)
    assert read(k, 0, n, pid=2) == ["x"] * n
    k.exit(2)
    check(k)
    assert read(k, 200, n) == ["x"] * n
    assert k.stat.pswpout > 0 and k.stat.pswpin > 0
    k.exit(1)
    k.exit(3)
    assert k.scheme.anonmms == {}
    check_no_leaks(k)
