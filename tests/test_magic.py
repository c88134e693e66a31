"""The "Magic" of the rmap 39 text: mremap moves a faulted anonymous VMA
without touching its pages, because the new VMA keeps the old pgoff and the
same anon_vma (kernel-rmap.md §2.20, R5, R6; §6 items 5 and 6).

An anonymous page's index is ``vm_pgoff + (addr - vm_start)/P`` of the VMA it
was first mapped in; a walk of its anon_vma list computes
``addr = vm_start + (index - vm_pgoff)*P`` in each VMA. So after a move of a
faulted VMA from page ``s`` to page ``d`` the expected walk result is
``[(mm, addr(d + i))]`` for the page that was at ``s + i``.
"""

from __future__ import annotations

import pytest
from conftest import (P, PGB, VM_ACCOUNT, addr, check, draw, mapx, new_kernel, pfn_at, pgoff, pic,
                      read, spans, vma_at, write)

from rmaplab.check import validate


def walk(k, pfn):
    return sorted((mm.owner, a) for mm, a in k.scheme.rmap_walk(pfn))


def test_moved_faulted_vma_keeps_pgoff_and_anon_vma_and_moves_back(k):
    # §6 item 5.
    # 0123456789ab
    # AAA.........   3 pages written (av 1)
    # AA........B.   mremap(page 2 -> page 10): B keeps pgoff 2 and av 1
    # AAA.........   mremap back: case 2, one VMA again
    mapx(k, 0, 3)
    write(k, 0, 1, "p0")
    write(k, 1, 1, "p1")
    write(k, 2, 1, "p2")
    av = vma_at(k, 0).anon_vma
    moved_pfn = pfn_at(k, 2)
    head = vma_at(k, 0)
    got = k.mremap(1, addr(2), P, P, ["maymove", "fixed"], addr(10))
    assert got == addr(10)
    assert pic(k) == ("AA........B.", "11........1.", "AA........A.")
    assert spans(k) == [(0, 2, 0), (10, 11, 2)]
    assert vma_at(k, 10).anon_vma is av
    # the page itself did not move or change: same frame, same index
    assert pfn_at(k, 10) == moved_pfn
    assert int(k.mem.index[moved_pfn]) == PGB + 2
    assert walk(k, moved_pfn) == [(1, addr(10))]
    assert walk(k, pfn_at(k, 0)) == [(1, addr(0))]
    assert read(k, 10) == ["p2"]
    check(k)
    # move it back: pgoff 2 follows [0,2) of pgoff 0, same anon_vma
    assert k.mremap(1, addr(10), P, P, ["maymove", "fixed"], addr(2)) == addr(2)
    assert pic(k) == ("AAA.........", "111.........", "AAA.........")
    assert vma_at(k, 2) is head and spans(k) == [(0, 3, 0)]
    assert walk(k, moved_pfn) == [(1, addr(2))]
    assert read(k, 0, 3) == ["p0", "p1", "p2"]
    check(k)


def test_moved_faulted_vma_does_not_merge_with_fresh_neighbour(k):
    # §6 item 6.
    # 0123456789ab
    # AAA.........   fresh (unfaulted) 3 pages, pgoff 0
    # AAAB........   a written page from page 20 moved to page 3: pgoff 20
    #                follows nothing (needs 3): no merge
    # AAABC.......   a fresh page mapped after it (pgoff 4 != 21): no merge
    mapx(k, 0, 3)
    mapx(k, 20, 1)
    write(k, 20, 1, "y")
    pfn = pfn_at(k, 20)
    av = vma_at(k, 20).anon_vma
    assert k.mremap(1, addr(20), P, P, ["maymove", "fixed"], addr(3)) == addr(3)
    assert pic(k) == ("AAAB........", "---1........", "---A........")
    assert spans(k) == [(0, 3, 0), (3, 4, 20)]
    assert vma_at(k, 3).anon_vma is av
    assert walk(k, pfn) == [(1, addr(3))]
    mapx(k, 4, 1)
    assert draw(k) == "AAABC......."
    assert spans(k) == [(0, 3, 0), (3, 4, 20), (4, 5, 4)]
    assert read(k, 3) == ["y"]
    check(k)


def test_moved_unfaulted_vma_is_rebased_and_merges(k):
    # §6 item 6, control: copy_vma re-bases an unfaulted anonymous VMA
    # (pgoff = new address), so it merges with the fresh neighbour.
    # 0123
    # AAAA   (the page from 20 joined [0,3) by vma_merge case 2)
    mapx(k, 0, 3)
    mapx(k, 20, 1)
    head = vma_at(k, 0)
    assert k.mremap(1, addr(20), P, P, ["maymove", "fixed"], addr(3)) == addr(3)
    assert draw(k) == "AAAA........"
    assert spans(k) == [(0, 4, 0)]
    assert vma_at(k, 3) is head
    assert vma_at(k, 20) is None
    check(k)


def test_moved_unfaulted_vma_gets_pgoff_of_new_address(k):
    # Without a neighbour to merge with, the re-based pgoff is visible.
    mapx(k, 20, 2)
    assert k.mremap(1, addr(20), 2 * P, 2 * P, ["maymove", "fixed"], addr(5)) == addr(5)
    assert spans(k) == [(5, 7, 5)]
    # a later write gets the linear index of the new place
    write(k, 6)
    assert int(k.mem.index[pfn_at(k, 6)]) == PGB + 6
    check(k)


def test_move_of_part_of_a_faulted_vma_carries_the_offset(k):
    # new_pgoff = vm_pgoff + (old_addr - vm_start)/P (move_vma).
    # 0123456789ab
    # AAAA........     4 pages written
    # A..B.....CC.     [1,3) moved to page 9: the tail of the old VMA (page 3)
    #                  keeps pgoff 3, the moved piece gets pgoff 1
    mapx(k, 0, 4)
    for i in range(4):
        write(k, i, 1, f"p{i}")
    pfns = [pfn_at(k, i) for i in range(4)]
    assert k.mremap(1, addr(1), 2 * P, 2 * P, ["maymove", "fixed"], addr(9)) == addr(9)
    assert pic(k) == ("A..B.....CC.", "1..1.....11.", "A..A.....AA.")
    assert spans(k) == [(0, 1, 0), (3, 4, 3), (9, 11, 1)]
    assert walk(k, pfns[1]) == [(1, addr(9))]
    assert walk(k, pfns[2]) == [(1, addr(10))]
    assert walk(k, pfns[3]) == [(1, addr(3))]
    assert read(k, 9, 2) == ["p1", "p2"]
    check(k)


def test_fork_then_mremap_in_child_pages_found_from_both(k):
    # The child's VMA joins the parent's anon_vma (dup_mmap); the child's
    # move keeps pgoff and anon_vma, so one walk finds the parent's pte at
    # page i and the child's at page 10+i.
    mapx(k, 0, 3)
    for i in range(3):
        write(k, i, 1, f"p{i}")
    pfns = [pfn_at(k, i) for i in range(3)]
    k.fork(1, 2)
    assert k.mremap(2, addr(0), 3 * P, 3 * P, ["maymove", "fixed"], addr(10)) == addr(10)
    assert draw(k, pid=2) == "..........AA" and draw(k, pid=2, n=14)[10:13] == "AAA"
    assert spans(k, pid=2, n=14) == [(10, 13, 0)]
    assert vma_at(k, 10, pid=2).anon_vma is vma_at(k, 0, pid=1).anon_vma
    for i in range(3):
        assert walk(k, pfns[i]) == [(1, addr(i)), (2, addr(10 + i))]
        assert pfn_at(k, 10 + i, pid=2) == pfns[i]
    check(k)
    # the child breaks COW on its page 10: the copy is indexed with the
    # carried pgoff and found only in the child; the original only in the
    # parent
    write(k, 10, 1, "c0", pid=2)
    new = pfn_at(k, 10, pid=2)
    assert new != pfns[0]
    assert int(k.mem.index[new]) == PGB + 0
    assert walk(k, new) == [(2, addr(10))]
    assert walk(k, pfns[0]) == [(1, addr(0))]
    assert read(k, 0) == ["p0"] and read(k, 10, pid=2) == ["c0"]
    check(k)


def test_fork_then_mremap_in_parent_then_exit_child(k):
    # The parent moves after the fork; when the child exits, its VMA leaves
    # the list and the walk finds only the parent's new address.
    mapx(k, 0, 2)
    write(k, 0, 2, "x")
    pfn = pfn_at(k, 1)
    k.fork(1, 2)
    assert k.mremap(1, addr(0), 2 * P, 2 * P, ["maymove", "fixed"], addr(6)) == addr(6)
    assert walk(k, pfn) == [(1, addr(7)), (2, addr(1))]
    check(k)
    k.exit(2)
    assert walk(k, pfn) == [(1, addr(7))]
    assert pgoff(k, 6) == 0
    check(k)


# -- the walks that matter for reclaim: page_referenced and try_to_unmap -------------

def _add_to_swap(k, pfn):
    from rmaplab.mm.swap_state import add_to_swap
    assert add_to_swap(k.ctx, pfn)


def test_page_referenced_and_try_to_unmap_reach_the_moved_pte(k):
    # 0123456789ab
    # ........AA..   [0,2) written, then moved to page 8 (pgoff 0 kept)
    # ........As..   try_to_unmap of page 9's frame through its anon_vma
    from rmaplab.rmap.scheme import SWAP_FAIL, SWAP_SUCCESS
    mapx(k, 0, 2)
    write(k, 0, 2, "x")
    pfn = pfn_at(k, 1)
    assert k.mremap(1, addr(0), 2 * P, 2 * P, ["maymove", "fixed"], addr(8)) == addr(8)
    assert k.scheme.page_referenced(pfn) >= 1      # the young pte at page 9
    assert k.scheme.page_referenced(pfn) == 0      # young bit and PG_referenced cleared
    read(k, 9)
    assert k.scheme.page_referenced(pfn) == 1      # found again at the new address
    _add_to_swap(k, pfn)
    read(k, 9)                                      # young again: try_to_unmap refuses
    assert k.scheme.try_to_unmap(pfn) == SWAP_FAIL
    assert draw(k, what="pte") == "........AA.."
    assert k.scheme.try_to_unmap(pfn) == SWAP_SUCCESS
    assert draw(k, what="pte") == "........As.."
    check(k)
    assert read(k, 8, 2) == ["x", "x"]             # swapped back in
    assert pfn_at(k, 9) == pfn                      # from the swap cache
    check(k)


def test_try_to_unmap_fails_on_a_locked_vma(k):
    from rmaplab.rmap.scheme import SWAP_FAIL
    mapx(k, 0, 1)
    write(k, 0, 1, "x")
    k.mlock(1, addr(0), P)
    pfn = pfn_at(k, 0)
    k.scheme.page_referenced(pfn)
    assert k.scheme.page_referenced(pfn) == 0      # not young any more
    _add_to_swap(k, pfn)
    assert k.scheme.try_to_unmap(pfn) == SWAP_FAIL
    assert draw(k, what="pte", n=1) == "A"
    check(k)


def test_fork_then_child_move_then_try_to_unmap_unmaps_both(k):
    from rmaplab.rmap.scheme import SWAP_SUCCESS
    mapx(k, 0, 1)
    write(k, 0, 1, "p")
    pfn = pfn_at(k, 0)
    k.fork(1, 2)
    k.mremap(2, addr(0), P, P, ["maymove", "fixed"], addr(10))
    k.scheme.page_referenced(pfn)                   # clear the young bits
    _add_to_swap(k, pfn)
    assert k.scheme.try_to_unmap(pfn) == SWAP_SUCCESS
    assert draw(k, 1, "pte", n=1) == "s"
    assert draw(k, 2, "pte", n=12)[10] == "s"
    check(k)
    assert read(k, 10, pid=2) == ["p"] and read(k, 0, pid=1) == ["p"]
    assert walk(k, pfn) == [(1, addr(0)), (2, addr(10))]
    check(k)


def test_unfaulted_move_next_to_its_own_remainder(k):
    # An unfaulted page moved to just after its own VMA: copy_vma re-bases
    # (pgoff 4) and vma_merge extends the source VMA itself (case 2); the
    # munmap of the old page then splits it. VM_ACCOUNT is restored on both
    # pieces (move_vma: excess, split).
    # 01234
    # AAAA.
    # AAA.B
    mapx(k, 0, 4)
    assert k.mremap(1, addr(3), P, P, ["maymove", "fixed"], addr(4)) == addr(4)
    assert draw(k, n=5) == "AAA.B"
    assert spans(k, n=5) == [(0, 3, 0), (4, 5, 4)]
    assert vma_at(k, 0).vm_flags & VM_ACCOUNT and vma_at(k, 4).vm_flags & VM_ACCOUNT
    check(k)


def test_fresh_neighbour_of_a_moved_vma_gets_its_own_anon_vma(k):
    # find_mergeable_anon_vma needs contiguous pgoff too: the moved page
    # (pgoff 20) cannot lend its anon_vma to the fresh page 4 (pgoff 4).
    # 01234
    # AAABC
    # ---12
    mapx(k, 0, 3)
    mapx(k, 20, 1)
    write(k, 20, 1, "y")
    k.mremap(1, addr(20), P, P, ["maymove", "fixed"], addr(3))
    mapx(k, 4, 1)
    write(k, 4, 1, "z")
    assert pic(k, n=5) == ("AAABC", "---12", "---AA")
    check(k)


def test_moved_shared_file_mapping_is_found_through_i_mmap(k):
    # The file analogue: the moved VMA keeps its file pgoff, so the prio
    # tree query for the page's index finds the new address.
    k.declare_file("f", 4 * P)
    k.mmap(1, addr(0), 4 * P, "r--", ["shared", "fixed"], file="f")
    read(k, 0, 4)
    pfn = pfn_at(k, 2)
    k.mremap(1, addr(2), 2 * P, 2 * P, ["maymove", "fixed"], addr(8))
    assert draw(k) == "AA......BB.."
    assert [v.vm_pgoff for v in k.mm(1).mmap] == [0, 2]
    assert walk(k, pfn) == [(1, addr(8))]
    assert read(k, 8, 2) == ["f:2", "f:3"]
    check(k)


def test_mremap_maymove_prefers_growing_in_place(k):
    mapx(k, 0, 1)
    write(k, 0, 1, "a")
    assert k.mremap(1, addr(0), P, 3 * P, ["maymove"]) == addr(0)
    assert spans(k) == [(0, 3, 0)]
    check(k)


def test_mremap_grow_and_move_carries_pgoff_into_the_new_part(k):
    # A faulted 2-page VMA that cannot grow in place moves to a new place
    # and grows to 4 pages; a write in the new part is indexed
    # pgoff + offset = 0 + 3.
    mapx(k, 0, 2)
    write(k, 0, 2, "a")
    mapx(k, 2, 1, "r--")
    new = k.mremap(1, addr(0), 2 * P, 4 * P, ["maymove"])
    assert new != addr(0) and draw(k, n=4) == "..A."
    v = k.mm(1).find_vma(new)
    assert (v.vm_end - v.vm_start, v.vm_pgoff) == (4 * P, PGB)
    k.touch(1, new + 3 * P, P, "w", "g")
    pfn = int(k.mm(1).pgd.get((new + 3 * P) >> 12)) >> 12
    assert int(k.mem.index[pfn]) == PGB + 3
    assert walk(k, pfn) == [(1, new + 3 * P)]
    check(k)


def test_mremap_fixed_with_shrink_moves_only_the_kept_part(k):
    # do_mremap shrinks first (unmapping [1,3)), then moves new_size.
    mapx(k, 0, 3)
    write(k, 0, 3, "a")
    assert k.mremap(1, addr(0), 3 * P, P, ["maymove", "fixed"], addr(10)) == addr(10)
    assert draw(k) == "..........A."
    assert spans(k) == [(10, 11, 0)]
    check(k)


def test_exec_frees_the_anon_vmas(k):
    mapx(k, 0, 2)
    write(k, 0, 2)
    freed = k.stat.anon_vma_free
    k.exec(1)
    assert k.stat.anon_vma_free == freed + 1
    assert k.mm(1).mmap == []
    check(k)


@pytest.mark.parametrize("fixed", [True, False])
def test_moved_back_beside_an_unfaulted_neighbour(fixed):
    """A faulted VMA moved away, a fresh mapping put beside its old place,
    then the VMA moved back: copy_vma's vma_merge grows the unfaulted
    neighbour down over the range (case 3; NULL anon_vma is compatible).
    0123
    AA..   written (av 1)
    ..B-   after the move away and a fresh mmap at [2,4) (no anon_vma)
    BBBB   moved back: one VMA, which must now be on av 1's list.
    2.6.x never gave it the anon_vma (Config(copy_vma_import=False)): the
    pages point at an anon_vma whose list no longer holds their VMA, and
    validate() says so."""
    from rmaplab.config import Config
    from rmaplab.errors import InvariantError
    k = new_kernel(copy_vma_import=fixed)
    mapx(k, 0, 2)
    write(k, 0, 2, "x")
    assert k.mremap(1, addr(0), 2 * P, 2 * P, ["maymove", "fixed"], addr(64)) == addr(64)
    mapx(k, 2, 2)
    assert k.mremap(1, addr(64), 2 * P, 2 * P, ["maymove", "fixed"], addr(0)) == addr(0)
    assert draw(k, n=5) == "AAAA."
    assert read(k, 0, 4) == ["x", "x", None, None]
    if fixed:
        check(k)
    else:
        with pytest.raises(InvariantError, match="not on its anon_vma list"):
            validate(k)
    assert Config().copy_vma_import is True
