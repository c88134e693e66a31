"""The ``none`` scheme: no reverse map, the 2.4 baseline (kernel-rmap.md §4.4).

A walk finds the ptes of a page by scanning the page tables of every live
mm, VMA by VMA. Checked here: walks visit every mm (whether or not it maps
the page) and compare every pte of every VMA of an mm with resident pages;
page_referenced stops once it has found mapcount ptes; try_to_unmap
unmaps everywhere through the scan; no per-page state and no metadata;
anonymous VMAs merge on flags alone; the scheme's check catches an mm the
scan would miss; and the generic scenarios and the state machine of
test_stateful.py run on it (shared with test_scheme_pte_chain.py).
"""

from __future__ import annotations

import pytest

from conftest import P, addr, check, draw, mapx, new_kernel, pfn_at, read, spans, write
from rmaplab.check import validate
from rmaplab.errors import InvariantError
from rmaplab.mm.swap_state import add_to_swap
from rmaplab.rmap.scheme import SWAP_SUCCESS
from test_scheme_pte_chain import (_two_faulted_neighbours_and_a_hole, run_generic_scenario,
                                   run_tiny_memory_scenario)


def nk(**cfg):
    return new_kernel(scheme="none", **cfg)


def five_processes(k, pages: int = 4) -> None:
    """pid 1 (already spawned) and pids 2..5, each with its own ``pages``
    written anonymous pages at page 0; pid 6 maps but never touches."""
    for pid in range(1, 7):
        if pid != 1:
            k.spawn(pid)
        mapx(k, 0, pages, pid=pid)
        if pid != 6:
            write(k, 0, pages, f"p{pid}", pid=pid)


def test_rmap_walk_scans_every_mm():
    k = nk()
    five_processes(k)
    pfn = pfn_at(k, 2, pid=3)
    k.stat.reset()
    assert [(mm.owner, a) for mm, a in k.scheme.rmap_walk(pfn)] == [(3, addr(2))]
    st = k.stat
    assert st.rmap_mms_visited == 6                 # pid 6 too, skipped for rss 0
    assert st.rmap_vmas_visited == 5
    assert st.rmap_pgtable_walks == 5               # one pte page per VMA
    assert st.rmap_ptes_compared == 5 * 4           # every pte of every VMA
    assert st.rmap_ptes_found == 1
    assert st.find_vma_calls == 0


def test_page_referenced_stops_at_mapcount_and_exited_mms_are_gone():
    k = nk()
    five_processes(k)
    first, last = pfn_at(k, 0, pid=1), pfn_at(k, 0, pid=5)
    k.stat.reset()
    assert k.scheme.page_referenced(first) >= 1
    assert k.stat.rmap_mms_visited == 1             # found in the first mm: done
    k.stat.reset()
    k.scheme.page_referenced(last)
    # four whole VMAs, then the first pte of pid 5's: the hit ends the walk
    assert k.stat.rmap_mms_visited == 5 and k.stat.rmap_ptes_compared == 4 * 4 + 1
    k.exit(2)
    k.stat.reset()
    k.scheme.page_referenced(last)
    assert k.stat.rmap_mms_visited == 4 and k.stat.rmap_ptes_compared == 3 * 4 + 1
    check(k)


def test_shared_pages_are_found_in_every_mm_of_a_fork_tree():
    k = nk()
    mapx(k, 0, 3)
    write(k, 0, 3, "x")
    k.fork(1, 2)
    k.fork(2, 3)
    k.spawn(4)                                      # unrelated, still scanned
    mapx(k, 0, 3, pid=4)
    write(k, 0, 3, "y", pid=4)
    pfn = pfn_at(k, 1)
    k.stat.reset()
    assert sorted((mm.owner, a) for mm, a in k.scheme.rmap_walk(pfn)) == \
        [(1, addr(1)), (2, addr(1)), (3, addr(1))]
    assert k.stat.rmap_mms_visited == 4 and k.stat.rmap_ptes_compared == 4 * 3
    check(k)


def test_try_to_unmap_through_the_scan():
    k = nk()
    mapx(k, 0, 2)
    write(k, 0, 1, "a")
    write(k, 1, 1, "b")
    for child in (2, 3, 4):
        k.fork(1, child)
    pfn = pfn_at(k, 0)
    assert add_to_swap(k.ctx, pfn)
    # shrink_list's order: page_referenced clears the young bits that the
    # (2.6.11) per-pte step of try_to_unmap would refuse
    k.scheme.page_referenced(pfn)
    k.stat.reset()
    assert k.scheme.try_to_unmap(pfn) == SWAP_SUCCESS
    assert k.stat.rmap_mms_visited == 4 and k.stat.rmap_ptes_found == 4
    # one page_table_lock per pte found (the base class's per-candidate step)
    assert k.stat.trylock_page_table == 4 and k.stat.find_vma_calls == 0
    assert all(not k.mm(pid).pgd.get(addr(0) >> 12) & 1 for pid in range(1, 5))
    check(k)
    for pid in range(1, 5):
        assert read(k, 0, 2, pid=pid) == ["a", "b"]
    check(k)


def test_scan_cost_against_pte_chain():
    """One page shared by two of eight processes, each with 64 resident
    pages: none compares every pte in the system, pte_chain exactly two."""
    cost = {}
    for scheme in ("none", "pte_chain"):
        k = new_kernel(scheme=scheme)
        mapx(k, 0, 64)
        write(k, 0, 64, "x")
        k.fork(1, 2)
        for pid in range(3, 9):
            k.spawn(pid)
            mapx(k, 0, 64, pid=pid)
            write(k, 0, 64, "y", pid=pid)
        pfn = pfn_at(k, 10)
        assert add_to_swap(k.ctx, pfn)
        k.scheme.page_referenced(pfn)
        k.stat.reset()
        assert k.scheme.try_to_unmap(pfn) == SWAP_SUCCESS
        cost[scheme] = k.stat.rmap_ptes_compared
        check(k)
    assert cost["pte_chain"] == 2
    # stops after the second hit, in pid 2: pid 1's 64 ptes and pid 2's first 11
    assert cost["none"] == 64 + 11


def test_no_per_page_state_no_metadata():
    k = nk()
    mapx(k, 5, 2)
    write(k, 5, 2, "x")
    k.fork(1, 2)
    s = k.scheme
    pfn = pfn_at(k, 6)
    assert int(k.mem.mapping[pfn]) == 1 and int(k.mem.index[pfn]) == 0
    assert s.metadata_bytes() == {"i386": 0, "x86_64": 0}
    vma = k.mm(1).find_vma(addr(5))
    assert vma.anon_vma is None and s.anon_vma_id(vma) is None
    assert not s.has_anon_vma and not s.anon_pgoff_matters()
    assert list(s.expected_index(vma, [1, 2])) == [0, 0]
    assert set(vars(s)) <= {"_scatter_add", "ctx", "mem", "st", "config", "mms"}


def test_flag_only_merging():
    k = nk()
    _two_faulted_neighbours_and_a_hole(k)
    assert draw(k, n=6) == "AAAAA."
    k.mprotect(1, addr(1), 3 * P, "r--")
    k.mprotect(1, addr(1), 3 * P, "rw-")
    assert spans(k) == [(0, 5, 0)]
    check(k)


def test_check_catches_an_mm_the_scan_would_miss():
    k = nk()
    mapx(k, 0, 1)
    write(k, 0, 1, "x")
    k.fork(1, 2)
    check(k)
    del k.scheme.mms[k.mm(2).serial]
    with pytest.raises(InvariantError):
        validate(k)


def test_generic_scenario():
    run_generic_scenario("none")


def test_tiny_memory_scenario():
    st = run_tiny_memory_scenario("none")
    assert st["rmap_mms_visited"] > 0 and st["rmap_ptes_compared"] > st["rmap_ptes_found"]
    assert st["pte_chain_alloc"] == st["lock_anon_vma"] == st["find_vma_calls"] == 0
