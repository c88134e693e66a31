"""The pte_chain scheme (mainline 2.5.x – 2.6.6; kernel-rmap.md §4.1, §4.4).

What is checked here:

- the list policy: PG_direct for one mapping, conversion into a block with
  the two ptes in its last two slots, insertion into the head's last free
  slot, a new head block when the head is full (so ``ceil(m/NRPTE)``
  blocks for m mappings), NRPTE from ``Config.extra["nrpte"]``;
- removal: a linear search costing the entry's position in the chain (so
  O(m)), the head's first used entry moved into the hole, the head freed
  when it empties, no collapse back to direct; page_referenced collapses a
  one-entry chain;
- fork adds one chain entry per copied pte (anonymous and file);
  try_to_unmap visits exactly the chain's ptes, with a trylock and a
  ``find_vma`` per pte and no search; mremap rewrites each moved entry;
- layouts: anonymous VMAs merge on flags alone (no anon_vma restriction),
  against anon_vma where they do not;
- memory accounting, the scheme's own checks (which must catch a broken
  chain), and the generic scenarios (fork/COW/mprotect/mremap/munmap/exit,
  tiny memory with swap) with every validator, data read back and no leaks;
- the Hypothesis state machine of test_stateful.py run on this scheme.

The generic scenarios are plain functions (``run_generic_scenario``,
``run_tiny_memory_scenario``) that test_scheme_none.py reuses.
"""

from __future__ import annotations

import math

import pytest

from conftest import P, addr, check, draw, mapx, new_kernel, pfn_at, read, spans, write
from rmaplab.check import check_no_leaks, check_rmap_complete, validate
from rmaplab.errors import InvariantError
from rmaplab.mm.swap_state import add_to_swap
from rmaplab.rmap.scheme import SWAP_FAIL, SWAP_SUCCESS

NRPTE = 7


def pc(**cfg):
    return new_kernel(scheme="pte_chain", **cfg)


def fan_out(k, m: int) -> None:
    """pid 1 plus m-1 children forked from it: m mappings of each page."""
    for child in range(2, m + 1):
        k.fork(1, child)


def policy_model(m: int, exits: list[int]) -> tuple[list[int], int]:
    """The documented list policy on a plain list (head first): after forks
    pid 1 is the last entry and child c sits before child c-1. Removing the
    entry at position i costs i+1 compared slots; the head's first entry
    fills the hole. Returns the final order and the total slots searched."""
    chain = list(range(m, 1, -1)) + [1]
    total = 0
    for pid in exits:
        i = chain.index(pid)
        total += i + 1
        chain[i] = chain[0]
        del chain[0]
    return chain, total


# -- the list policy -------------------------------------------------------------------

def test_single_mapping_is_direct_and_second_converts_to_a_block():
    k = pc()
    mapx(k, 0, 1)
    write(k, 0, 1, "x")
    s, pfn = k.scheme, pfn_at(k, 0)
    assert s.is_direct(pfn) and s.chain_blocks(pfn) == []
    assert k.stat.pte_chain_alloc == 0
    k.fork(1, 2)
    assert not s.is_direct(pfn)
    mm1, mm2 = k.mm(1), k.mm(2)
    # the old direct pte in the last slot, the new one before it
    assert s.chain_blocks(pfn) == [[None] * (NRPTE - 2) + [(mm2, addr(0)), (mm1, addr(0))]]
    assert k.stat.pte_chain_alloc == 1 and s.nr_blocks == 1
    assert int(k.mem.mapcount[pfn]) == 2
    check(k)


@pytest.mark.parametrize("m", [2, 3, 7, 8, 14, 15, 50])
def test_m_mappings_take_ceil_m_over_nrpte_blocks(m):
    k = pc()
    mapx(k, 0, 1)
    write(k, 0, 1, "x")
    fan_out(k, m)
    s, pfn = k.scheme, pfn_at(k, 0)
    blocks = s.chain_blocks(pfn)
    assert len(blocks) == math.ceil(m / NRPTE) == s.nr_blocks == k.stat.pte_chain_alloc
    # free slots only at the start of the head; every later block full
    used_in_head = m - NRPTE * (len(blocks) - 1)
    assert blocks[0] == [None] * (NRPTE - used_in_head) + blocks[0][NRPTE - used_in_head:]
    assert all(slot is not None for slot in blocks[0][NRPTE - used_in_head:])
    assert all(all(slot is not None for slot in b) for b in blocks[1:])
    # newest child at the front, pid 1 at the very end
    order = [mm.owner for b in blocks for e in b if e is not None for mm, _ in [e]]
    assert order == list(range(m, 1, -1)) + [1]
    assert s.chain_length(pfn) == m == int(k.mem.mapcount[pfn])
    check(k)


def test_nrpte_is_configurable():
    k = pc(extra={"nrpte": 3})
    mapx(k, 0, 1)
    write(k, 0, 1, "x")
    fan_out(k, 10)
    pfn = pfn_at(k, 0)
    assert [sum(e is not None for e in b) for b in k.scheme.chain_blocks(pfn)] == [1, 3, 3, 3]
    assert k.scheme.metadata_bytes()["i386"] == 4 * k.mem.nr_used + 16 * 4
    check(k)
    with pytest.raises(ValueError):
        pc(extra={"nrpte": 1})


# -- removal -------------------------------------------------------------------------------

@pytest.mark.parametrize("m", [10, 100])
def test_removing_the_tail_entry_searches_all_m_slots(m):
    # pid 1's pte is the last entry of the chain: unmapping it compares all m.
    k = pc()
    mapx(k, 0, 1)
    write(k, 0, 1, "x")
    fan_out(k, m)
    pfn = pfn_at(k, 0)
    k.stat.reset()
    k.munmap(1, addr(0), P)
    assert k.stat.pte_chain_slots_searched == m
    assert k.scheme.chain_length(pfn) == m - 1
    check(k)


@pytest.mark.parametrize("m", [10, 30, 100])
def test_exit_oldest_first_costs_what_the_policy_says(m):
    k = pc()
    mapx(k, 0, 1)
    write(k, 0, 1, "x")
    fan_out(k, m)
    pfn = pfn_at(k, 0)
    k.stat.reset()
    exits = list(range(2, m + 1))
    per_exit = []
    for pid in exits:
        before = k.stat.pte_chain_slots_searched
        k.exit(pid)
        per_exit.append(k.stat.pte_chain_slots_searched - before)
    order, total = policy_model(m, exits)
    assert sum(per_exit) == total
    assert [mm.owner for b in k.scheme.chain_blocks(pfn) for e in b if e for mm, _ in [e]] == order
    # the first removal searches m-1 slots: O(m) per removal
    assert per_exit[0] == m - 1
    # not collapsed back to direct on removal
    assert not k.scheme.is_direct(pfn) and k.scheme.chain_length(pfn) == 1
    # every block but the last one was freed as its head emptied
    assert k.scheme.nr_blocks == 1
    assert k.stat.pte_chain_free == math.ceil(m / NRPTE) - 1
    check(k)


def test_removal_cost_grows_linearly_with_m():
    avg = {}
    for m in (10, 100):
        k = pc()
        mapx(k, 0, 1)
        write(k, 0, 1, "x")
        fan_out(k, m)
        k.stat.reset()
        for pid in range(2, m + 1):
            k.exit(pid)
        avg[m] = k.stat.pte_chain_slots_searched / (m - 1)
    # ten times the sharing, about ten times the search per removal
    assert 7 < avg[100] / avg[10] < 13, avg


def test_exit_newest_first_finds_each_entry_at_the_head():
    k = pc()
    mapx(k, 0, 1)
    write(k, 0, 1, "x")
    fan_out(k, 20)
    k.stat.reset()
    for pid in range(20, 1, -1):
        k.exit(pid)
    assert k.stat.pte_chain_slots_searched == 19
    check(k)


def test_page_referenced_collapses_a_single_entry_chain():
    k = pc()
    mapx(k, 0, 1)
    write(k, 0, 1, "x")
    k.fork(1, 2)
    k.exit(2)
    s, pfn = k.scheme, pfn_at(k, 0)
    assert not s.is_direct(pfn) and s.chain_length(pfn) == 1 and s.nr_blocks == 1
    k.stat.reset()
    pte = k.mm(1).pgd.get(addr(0) >> 12)
    assert pte & 0x20                                   # young
    assert s.page_referenced(pfn) >= 1
    assert s.is_direct(pfn) and s.nr_blocks == 0
    assert k.stat.pte_chain_free == 1
    assert not k.mm(1).pgd.get(addr(0) >> 12) & 0x20    # young bit cleared
    # no mm locks, no VMA lookups: the pte is read through its address
    assert k.stat.trylock_page_table == k.stat.lock_page_table == k.stat.find_vma_calls == 0
    assert k.stat.rmap_ptes_compared == 1
    check(k)


# -- fork, unmap, mremap -----------------------------------------------------------------------

def test_fork_adds_one_entry_per_pte_anon_and_file():
    k = pc()
    k.declare_file("f", 4 * P)
    mapx(k, 0, 6)
    write(k, 0, 6, "a")
    k.mmap(1, addr(10), 4 * P, "r--", ["private", "fixed"], "f")
    assert read(k, 10, 4) == [f"f:{i}" for i in range(4)]
    pfns = [pfn_at(k, p) for p in [*range(6), *range(10, 14)]]
    s = k.scheme
    assert all(s.is_direct(p) for p in pfns)
    k.stat.reset()
    k.fork(1, 2)
    # one page_add_rmap per copied pte; every direct page converts (a block each)
    assert k.stat.fork_ptes == 10
    assert k.stat.pte_chain_alloc == 10
    assert all(s.chain_length(p) == 2 == int(k.mem.mapcount[p]) for p in pfns)
    k.fork(1, 3)
    # the heads have room: no more blocks
    assert k.stat.pte_chain_alloc == 10
    assert all(s.chain_length(p) == 3 for p in pfns)
    for page, p in zip([*range(6), *range(10, 14)], pfns):
        assert sorted((mm.owner, a) for mm, a in s.rmap_walk(p)) == \
            [(pid, addr(page)) for pid in (1, 2, 3)]
    check(k)


@pytest.mark.parametrize("m", [1, 5, 20])
def test_try_to_unmap_visits_each_pte_with_trylock_and_find_vma(m):
    k = pc()
    k.declare_file("f", P)
    k.mmap(1, addr(0), P, "r--", ["private", "fixed"], "f")
    read(k, 0)
    fan_out(k, m)
    pfn = pfn_at(k, 0)
    k.stat.reset()
    assert k.scheme.try_to_unmap(pfn) == SWAP_SUCCESS
    st = k.stat
    assert st.find_vma_calls == m and st.trylock_page_table == m
    assert st.rmap_ptes_compared == st.rmap_ptes_found == m
    # slots are released in place: no search
    assert st.pte_chain_slots_searched == 0
    assert st.pte_chain_free == (math.ceil(m / NRPTE) if m > 1 else 0)
    assert int(k.mem.mapcount[pfn]) == 0 and k.scheme.nr_blocks == 0
    assert all(k.mm(pid).pgd.get(addr(0) >> 12) == 0 for pid in range(1, m + 1))
    check(k)
    assert read(k, 0, pid=m) == ["f:0"]
    check(k)


def test_try_to_unmap_anon_leaves_swap_ptes_and_data_comes_back():
    k = pc()
    mapx(k, 0, 2)
    write(k, 0, 1, "zero")
    write(k, 1, 1, "one")
    fan_out(k, 9)
    pfn = pfn_at(k, 0)
    assert add_to_swap(k.ctx, pfn)
    assert k.scheme.try_to_unmap(pfn) == SWAP_SUCCESS
    assert all(not k.mm(pid).pgd.get(addr(0) >> 12) & 1 for pid in range(1, 10))
    check(k)
    for pid in range(1, 10):
        assert read(k, 0, 2, pid=pid) == ["zero", "one"]
    check(k)


def test_try_to_unmap_fails_on_a_locked_vma():
    # pid 1 locks the page, then forks (children do not inherit VM_LOCKED):
    # the chain is [3, 2, 1], so 3 and 2 are unmapped before 1 fails.
    k = pc()
    mapx(k, 0, 1)
    write(k, 0, 1, "x")
    k.mlock(1, addr(0), P)
    fan_out(k, 3)
    pfn = pfn_at(k, 0)
    assert add_to_swap(k.ctx, pfn)
    k.stat.reset()
    assert k.scheme.try_to_unmap(pfn) == SWAP_FAIL
    assert k.stat.try_to_unmap_fail == 1 and k.stat.find_vma_calls == 3
    assert int(k.mem.mapcount[pfn]) == 1
    assert [(mm.owner, a) for mm, a in k.scheme.rmap_walk(pfn)] == [(1, addr(0))]
    check(k)
    assert read(k, 0, pid=2) == read(k, 0, pid=3) == ["x"]
    check(k)


def test_mremap_rewrites_each_moved_chain_entry():
    k = pc()
    mapx(k, 0, 4)
    for i in range(4):
        write(k, i, 1, f"p{i}")
    k.fork(1, 2)
    pfns = [pfn_at(k, i) for i in range(4)]
    k.stat.reset()
    assert k.mremap(1, addr(1), 2 * P, 2 * P, ["maymove", "fixed"], addr(20)) == addr(20)
    st = k.stat
    assert st.rmap_mremap_updates == 2 == st.mremap_ptes_moved
    # each moved entry had to be found (pid 1's is second in a 2-entry chain)
    assert st.pte_chain_slots_searched == 4
    s = k.scheme
    for i, p in enumerate(pfns):
        where = {(mm.owner, a) for mm, a in s.rmap_walk(p)}
        new = addr(20 + i - 1) if i in (1, 2) else addr(i)
        assert where == {(1, new), (2, addr(i))}
    assert read(k, 20, 2) == ["p1", "p2"]
    assert read(k, 0, 4, pid=2) == ["p0", "p1", "p2", "p3"]
    check(k)
    # an unshared page stays direct across a move
    mapx(k, 40, 1)
    write(k, 40, 1, "solo")
    solo = pfn_at(k, 40)
    k.mremap(1, addr(40), P, P, ["maymove", "fixed"], addr(50))
    assert s.is_direct(solo) and [(mm.owner, a) for mm, a in s.rmap_walk(solo)] == [(1, addr(50))]
    check(k)


# -- layouts: merging on flags alone ----------------------------------------------------------

def _two_faulted_neighbours_and_a_hole(k):
    # 0123456
    # AA.BB..   both written (so under anon_vma: two anon_vmas)
    mapx(k, 0, 2)
    write(k, 0, 2, "a")
    mapx(k, 3, 2)
    write(k, 3, 2, "b")
    mapx(k, 2, 1)          # fill the hole: case 1 when anon_vmas allow it


def test_hole_between_faulted_vmas_merges_all_three():
    k = pc()
    _two_faulted_neighbours_and_a_hole(k)
    assert draw(k, n=6) == "AAAAA."
    check(k)
    av = new_kernel()
    _two_faulted_neighbours_and_a_hole(av)
    assert draw(av, n=6) == "AAABB."     # anon_vma: different anon_vmas stay apart
    check(av)


def test_mprotect_round_trip_always_remerges():
    for scheme, want in (("pte_chain", [(0, 5, 0)]), ("anon_vma", [(0, 3, 0), (3, 5, 3)])):
        k = new_kernel(scheme=scheme)
        _two_faulted_neighbours_and_a_hole(k)
        k.mprotect(1, addr(1), 3 * P, "r--")
        assert len(spans(k)) == (3 if scheme == "pte_chain" else 4)
        k.mprotect(1, addr(1), 3 * P, "rw-")
        assert spans(k) == want, scheme
        assert read(k, 0, 5) == ["a", "a", None, "b", "b"]
        check(k)


def test_moved_faulted_vma_merges_with_fresh_neighbours():
    # 0123456789ab
    # AAA.........   fresh 3 pages
    # AAAA........   a written page moved from page 20 to page 3 joins them
    # AAAAA.......   and so does a fresh page after it
    for scheme, want in (("pte_chain", [[(0, 4, 0)], [(0, 5, 0)]]),
                         ("anon_vma", [[(0, 3, 0), (3, 4, 20)], [(0, 3, 0), (3, 4, 20), (4, 5, 4)]])):
        k = new_kernel(scheme=scheme)
        mapx(k, 0, 3)
        mapx(k, 20, 1)
        write(k, 20, 1, "y")
        pfn = pfn_at(k, 20)
        k.mremap(1, addr(20), P, P, ["maymove", "fixed"], addr(3))
        assert spans(k) == want[0], scheme
        mapx(k, 4, 1)
        assert spans(k) == want[1], scheme
        assert [(mm.owner, a) for mm, a in k.scheme.rmap_walk(pfn)] == [(1, addr(3))]
        assert read(k, 3) == ["y"]
        check(k)


# -- memory, checks --------------------------------------------------------------------------------

def test_metadata_bytes_pte_union_plus_blocks():
    k = pc()
    assert k.scheme.metadata_bytes() == {"i386": 0, "x86_64": 0}
    mapx(k, 0, 3)
    write(k, 0, 3, "x")
    assert k.scheme.metadata_bytes() == {"i386": 4 * 3, "x86_64": 8 * 3}
    fan_out(k, 9)                       # 9 mappings: 2 blocks per page
    frames = k.mem.nr_used
    assert frames == 3 and k.scheme.nr_blocks == 6
    assert k.scheme.metadata_bytes() == {"i386": 4 * 3 + 32 * 6, "x86_64": 8 * 3 + 64 * 6}


def test_page_fields_and_interface_answers():
    k = pc()
    mapx(k, 5, 2)
    write(k, 5, 2, "x")
    s = k.scheme
    pfn = pfn_at(k, 6)
    assert int(k.mem.mapping[pfn]) == 1 and int(k.mem.index[pfn]) == 0
    vma = k.mm(1).find_vma(addr(5))
    assert s.anon_vma_id(vma) is None and vma.anon_vma is None
    assert not s.has_anon_vma and not s.anon_pgoff_matters()
    assert list(s.expected_index(vma, [10, 11])) == [0, 0]


def test_check_catches_broken_chains():
    k = pc()
    mapx(k, 0, 2)
    write(k, 0, 2, "x")
    fan_out(k, 3)
    check(k)
    s = k.scheme
    a, b = pfn_at(k, 0), pfn_at(k, 1)
    # swap one entry of page a's chain with page b's: both now name wrong ptes
    ha, hb = s.chain[a], s.chain[b]
    ha.ptes[-1], hb.ptes[-1] = hb.ptes[-1], ha.ptes[-1]
    with pytest.raises(InvariantError):
        s.check()
    ha.ptes[-1], hb.ptes[-1] = hb.ptes[-1], ha.ptes[-1]
    check(k)
    # a lost entry: the chain is one short of mapcount and misses a pte
    lost = ha.ptes[ha.idx]
    ha.ptes[ha.idx] = 0
    ha.idx += 1
    with pytest.raises(InvariantError):
        s.check()
    with pytest.raises(InvariantError):
        validate(k)
    ha.idx -= 1
    ha.ptes[ha.idx] = lost
    check(k)


# -- generic scenarios (also run by test_scheme_none.py) ----------------------------------------------

def _read_all(k, expect: dict) -> None:
    for pid, pages in expect.items():
        for page, tok in pages.items():
            assert read(k, page, pid=pid) == [tok], (pid, page)


def run_generic_scenario(scheme: str) -> None:
    """fork, COW, file private/shared, mprotect split and re-merge, mremap,
    munmap, exec, exit; every validator after each step; data read back."""
    k = new_kernel(scheme=scheme)
    k.declare_file("f", 4 * P)
    mapx(k, 0, 8)
    for i in range(8):
        write(k, i, 1, ("p", i))
    k.mmap(1, addr(20), 4 * P, "rw-", ["private", "fixed"], "f")
    assert read(k, 20, 4) == [f"f:{i}" for i in range(4)]
    write(k, 21, 1, "cow-file")                     # private file page copied
    k.mmap(1, addr(30), 2 * P, "rw-", ["shared", "fixed"], "f")
    write(k, 30, 1, "shared0")
    validate(k)
    check_rmap_complete(k)
    # page 20 is a private file page not yet copied: it sees the shared write
    expect = {1: {**{i: ("p", i) for i in range(8)}, 20: "shared0", 21: "cow-file", 22: "f:2",
                  23: "f:3", 30: "shared0", 31: "f:1"}}
    k.fork(1, 2)
    k.fork(2, 3)
    expect[2] = dict(expect[1])
    expect[3] = dict(expect[1])
    check(k)
    for i in range(4):                             # COW in the middle child
        write(k, i, 1, ("c2", i), pid=2)
        expect[2][i] = ("c2", i)
    write(k, 31, 1, "shared1", pid=3)              # visible to all three
    for pid in expect:
        expect[pid][31] = "shared1"
    check(k)
    k.mprotect(1, addr(2), 4 * P, "r--")
    assert len(k.mm(1).vma_range(addr(0), addr(8))) == 3
    check(k)
    k.mprotect(1, addr(2), 4 * P, "rw-")
    assert len(k.mm(1).vma_range(addr(0), addr(8))) == 1
    check(k)
    assert k.mremap(1, addr(4), 2 * P, 2 * P, ["maymove", "fixed"], addr(40)) == addr(40)
    expect[1][40], expect[1][41] = expect[1].pop(4), expect[1].pop(5)
    check(k)
    assert k.mremap(2, addr(0), 4 * P, 6 * P, ["maymove"]) > 0    # may move: grows
    check(k)
    k.munmap(3, addr(0), 2 * P)
    del expect[3][0], expect[3][1]
    check(k)
    # the mremap of pid 2 moved its pages 0..3 somewhere: follow it
    moved = next(v for v in k.mm(2).mmap if v.vm_end - v.vm_start == 6 * P)
    off = (moved.vm_start - addr(0)) // P
    for i in range(4):
        expect[2][off + i] = expect[2].pop(i)
    _read_all(k, expect)
    check(k)
    k.exit(2)
    del expect[2]
    check(k)
    k.exec(3)
    del expect[3]
    check(k)
    _read_all(k, expect)
    for pid in list(k.pids()):
        k.exit(pid)
    check_no_leaks(k)


def run_tiny_memory_scenario(scheme: str) -> dict:
    """64 frames and 512 swap slots: reclaim swaps anonymous pages out and
    back in across fork, COW and mremap; data survives. Returns counters."""
    from rmaplab.config import Config
    from rmaplab.kernel import Kernel
    k = Kernel(Config(scheme=scheme, mem_pages=64, swap_pages=512))
    k.declare_file("f", 40 * P)
    k.spawn(1)
    mapx(k, 0, 100)
    for i in range(100):
        write(k, i, 1, ("t", i))
    k.mmap(1, addr(200), 40 * P, "r--", ["private", "fixed"], "f")
    assert read(k, 200, 40) == [f"f:{i}" for i in range(40)]
    k.fork(1, 2)
    validate(k)
    check_rmap_complete(k)
    for i in range(0, 100, 3):
        write(k, i, 1, ("c", i), pid=2)
    check(k)
    assert k.mremap(1, addr(50), 10 * P, 10 * P, ["maymove", "fixed"], addr(400)) == addr(400)
    check(k)
    assert read(k, 0, 50) == [("t", i) for i in range(50)]
    assert read(k, 400, 10) == [("t", i) for i in range(50, 60)]
    assert read(k, 0, 100, pid=2) == [("c", i) if i % 3 == 0 else ("t", i) for i in range(100)]
    assert read(k, 200, 40, pid=2) == [f"f:{i}" for i in range(40)]
    check(k)
    assert k.stat.pswpout > 0 and k.stat.pswpin > 0 and k.stat.try_to_unmap_calls > 0
    k.exit(1)
    check(k)
    k.exit(2)
    check_no_leaks(k)
    return k.stat.as_dict()


def test_generic_scenario():
    run_generic_scenario("pte_chain")


def test_tiny_memory_scenario():
    st = run_tiny_memory_scenario("pte_chain")
    # every unmap was a trylock and a find_vma on a chain entry
    assert st["find_vma_calls"] == st["trylock_page_table"] > 0
    assert st["lock_page_table"] == st["lock_anon_vma"] == st["lock_i_mmap"] == 0
