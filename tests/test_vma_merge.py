"""vma_merge cases 1–8, split, and the merge restrictions of 2.6.7.

References: kernel-rmap.md §2.15–2.18 (vma_merge, vma_adjust, split_vma,
mprotect_fixup), §6 (observable consequences), syscall-semantics.md R1, R2,
R4, R5 and linux-2.6.11-paths.md §3, §5, §11.

The case numbers are those of the comment above vma_merge (2.6.11)::

     mmap/brk/mremap (A is a hole):  PPPP    NNNN
       case 1  PPPPPPPPPPPP   case 2  PPPPPPPPNNNN   case 3  PPPPNNNNNNNN
     mprotect (A inside one VMA):
       case 4  PPNNNNNNNNNN (A = tail of P)   case 5  PPPPPPPPPPNN (A = head of N)
       A = all of N, X follows:  case 6 PPPPPPPPPPPP  case 7 PPPPPPPPXXXX
                                 case 8 PPPPNNNNNNNN

Every private anonymous VMA is made at a fixed page, so its pgoff is the
page number (relative pgoff shown by ``pgoff()``).
"""

from __future__ import annotations

import pytest

from conftest import (P, PROT_BITS, VM_ACCOUNT, VM_EXEC, VM_LOCKED, VM_READ, VM_SEQ_READ,
                      VM_WRITE, addr, check, draw, mapx, new_kernel, pic, spans,
                      vma_at, write)
from rmaplab.errors import InvariantError
from rmaplab.check import check_rmap_complete, validate


def three(k, prots: str, n: int = 6) -> None:
    """Make VMAs of two pages each with the given prots ("r--/rw-/r-x"),
    all cut from one rw- mapping so they all carry VM_ACCOUNT (a rw-
    private mapping is accounted at mmap; mprotect never removes it)."""
    parts = prots.split("/")
    mapx(k, 0, 2 * len(parts), "rw-")
    for i, prot in enumerate(parts):
        if prot != "rw-":
            k.mprotect(1, addr(2 * i), 2 * P, prot)


# -- mmap: A is a hole between P and N ----------------------------------------------

def test_case1_hole_fill_joins_prev_and_next(k):
    # 012345
    # AA.BB.   before
    # AAAAA.   after: P is extended over A and N; N is gone
    mapx(k, 0, 2)
    mapx(k, 3, 2)
    prev, nxt = vma_at(k, 0), vma_at(k, 3)
    assert draw(k, n=6) == "AA.BB."
    mapx(k, 2, 1)
    assert draw(k, n=6) == "AAAAA."
    assert vma_at(k, 4) is prev
    assert nxt not in k.mm(1).mmap
    assert spans(k) == [(0, 5, 0)]
    assert k.mm(1).map_count == 1
    check(k)


def test_case1_with_faulted_prev_and_next_on_one_anon_vma(k):
    # 012345
    # AA.BB.   one VMA written, then its middle page unmapped: both halves
    # 11.11.   keep the anon_vma (split) and the pgoffs 0 and 3
    # AAAAA.   refilling the hole: case 1, both anon_vmas equal
    # 11111.
    mapx(k, 0, 5)
    write(k, 0, 5, "x")
    k.munmap(1, addr(2), P)
    assert pic(k, n=6) == ("AA.BB.", "11.11.", "AA.AA.")
    prev = vma_at(k, 0)
    mapx(k, 2, 1)
    assert pic(k, n=6) == ("AAAAA.", "11111.", "AA-AA.")
    assert vma_at(k, 4) is prev and spans(k) == [(0, 5, 0)]
    write(k, 2, 1, "y")
    assert k.touch(1, addr(0), 5 * P, "r").read == ["x", "x", "y", "x", "x"]
    check(k)


def test_case2_hole_fill_joins_prev(k):
    # 0123456
    # AA..BB.   before
    # AAA.BB.   after: P is extended over A
    mapx(k, 0, 2)
    write(k, 0, 2)          # a faulted P still takes an unfaulted range (R1)
    mapx(k, 4, 2)
    prev, nxt = vma_at(k, 0), vma_at(k, 4)
    mapx(k, 2, 1)
    assert pic(k, n=7) == ("AAA.BB.", "111.--.", "AA-.--.")
    assert vma_at(k, 2) is prev and vma_at(k, 4) is nxt
    assert spans(k) == [(0, 3, 0), (4, 6, 4)]
    check(k)


def test_case3_hole_fill_joins_next(k):
    # 012345
    # A..BB.   before
    # A.BBB.   after: N is extended down over A, its pgoff lowered
    mapx(k, 0, 1)
    mapx(k, 3, 2)
    write(k, 3, 2)
    first, nxt = vma_at(k, 0), vma_at(k, 3)
    mapx(k, 2, 1)
    assert pic(k, n=6) == ("A.BBB.", "-.111.", "-.-AA.")
    assert vma_at(k, 2) is nxt and vma_at(k, 0) is first
    assert spans(k) == [(0, 1, 0), (2, 5, 2)]
    write(k, 2, 1)          # the new page's index is linear in N: pgoff 2
    check(k)


def test_brk_extension_merges_with_the_heap(k):
    # brk0 .. : the heap VMA grows by vma_merge case 2, same object
    # 012345
    # AA....   brk(brk0 + 2P)
    # AAAAA.   brk(brk0 + 5P)
    brk0 = k.brk(1, 0)
    assert k.brk(1, brk0 + 2 * P) == brk0 + 2 * P
    heap = k.mm(1).find_vma(brk0)
    k.touch(1, brk0, 2 * P, "w", "h")
    assert draw(k, base=brk0, n=6) == "AA...."
    assert k.brk(1, brk0 + 5 * P) == brk0 + 5 * P
    assert draw(k, base=brk0, n=6) == "AAAAA."
    assert draw(k, base=brk0, n=6, what="av") == "11111."
    assert k.mm(1).find_vma(brk0 + 4 * P) is heap
    assert heap.vm_start == brk0 and heap.vm_end == brk0 + 5 * P
    assert heap.vm_pgoff == brk0 >> 12
    assert heap.vm_flags & VM_ACCOUNT and k.mm(1).map_count == 1
    check(k)


# -- mprotect: split and cases 4–8 --------------------------------------------------------

def test_split_mprotect_strictly_inside(k):
    # 012345
    # AAAAAA   rw-, written (anon_vma 1)
    # AABBCC   mprotect([2,4), r--): two splits; the original VMA object
    # 111111   is the middle piece (split below, then above); every piece
    #          keeps the anon_vma and its linear pgoff
    mapx(k, 0, 6)
    write(k, 0, 6)
    orig = vma_at(k, 0)
    k.mprotect(1, addr(2), 2 * P, "r--")
    assert pic(k, n=6) == ("AABBCC", "111111", "AAaaAA")
    assert vma_at(k, 2) is orig
    assert spans(k) == [(0, 2, 0), (2, 4, 2), (4, 6, 4)]
    assert vma_at(k, 0).vm_flags & PROT_BITS == VM_READ | VM_WRITE
    assert orig.vm_flags & PROT_BITS == VM_READ
    assert k.touch(1, addr(2), P, "w").result == "SIGSEGV"
    check(k)


def test_case4_tail_of_prev_joins_next(k):
    # 012345
    # AAAABB   P rw- (written: av 1), N r-- (unfaulted)
    # 1111--
    # AABBBB   mprotect([2,4), r--): P shrinks, N grows down (pgoff 2)
    # 111111   and imports P's anon_vma (R5, 2.6.8 fix)
    mapx(k, 0, 6)
    k.mprotect(1, addr(4), 2 * P, "r--")
    write(k, 0, 4)
    prev, nxt = vma_at(k, 0), vma_at(k, 4)
    assert pic(k, n=6) == ("AAAABB", "1111--", "AAAA--")
    k.mprotect(1, addr(2), 2 * P, "r--")
    assert pic(k, n=6) == ("AABBBB", "111111", "AAaa--")
    assert vma_at(k, 0) is prev and vma_at(k, 2) is nxt
    assert nxt.anon_vma is prev.anon_vma
    assert spans(k) == [(0, 2, 0), (2, 6, 2)]
    check(k)


def test_case5_head_of_next_joins_prev(k):
    # 012345
    # AABBBB   P r-- (unfaulted), N rw- (written: av 1)
    # --1111
    # AAAABB   mprotect([2,4), r--): P grows over A and imports N's
    # 111111   anon_vma; N shrinks, its pgoff moves up to 4
    mapx(k, 0, 6)
    k.mprotect(1, addr(0), 2 * P, "r--")
    write(k, 2, 4)
    prev, nxt = vma_at(k, 0), vma_at(k, 2)
    assert pic(k, n=6) == ("AABBBB", "--1111", "--AAAA")
    k.mprotect(1, addr(2), 2 * P, "r--")
    assert pic(k, n=6) == ("AAAABB", "111111", "--aaAA")
    assert vma_at(k, 2) is prev and vma_at(k, 4) is nxt
    assert prev.anon_vma is nxt.anon_vma
    assert spans(k) == [(0, 4, 0), (4, 6, 4)]
    check(k)


def test_case6_whole_middle_joins_prev_and_next(k):
    # 012345
    # AABBCC   r-- / rw- / r--
    # AAAAAA   mprotect(N, r--): P absorbs N and X
    three(k, "r--/rw-/r--")
    prev, mid, nxt = vma_at(k, 0), vma_at(k, 2), vma_at(k, 4)
    assert draw(k, n=6) == "AABBCC"
    k.mprotect(1, addr(2), 2 * P, "r--")
    assert pic(k, n=6) == ("AAAAAA", "------", "------")
    assert vma_at(k, 5) is prev
    assert mid not in k.mm(1).mmap and nxt not in k.mm(1).mmap
    assert spans(k) == [(0, 6, 0)] and k.mm(1).map_count == 1
    check(k)


def test_case6_faulted_middle_merges_into_unfaulted_neighbours(k):
    # §6 item 10 in its 2.6.7 form: NULL anon_vmas are compatible, and
    # vma_adjust makes the expanding P import the middle's anon_vma.
    # 012
    # ABC   r-- / rw- (written, av 1) / r--
    # -1-
    # AAA   mprotect(page 1, r--)
    # 111
    mapx(k, 0, 3)
    k.mprotect(1, addr(0), P, "r--")
    k.mprotect(1, addr(2), P, "r--")
    write(k, 1, 1, "m")
    prev = vma_at(k, 0)
    assert pic(k, n=4) == ("ABC.", "-1-.", "-A-.")
    k.mprotect(1, addr(1), P, "r--")
    assert pic(k, n=4) == ("AAA.", "111.", "-a-.")
    assert vma_at(k, 2) is prev
    assert k.touch(1, addr(1), P, "r").read == ["m"]
    check(k)


def test_case7_whole_middle_joins_prev_only(k):
    # 012345
    # AABBCC   r-- / rw- / r-x
    # AAAABB   mprotect(N, r--): P absorbs N; X (other prot) stays
    three(k, "r--/rw-/r-x")
    prev, mid, nxt = vma_at(k, 0), vma_at(k, 2), vma_at(k, 4)
    k.mprotect(1, addr(2), 2 * P, "r--")
    assert draw(k, n=6) == "AAAABB"
    assert vma_at(k, 3) is prev and vma_at(k, 4) is nxt
    assert mid not in k.mm(1).mmap
    assert spans(k) == [(0, 4, 0), (4, 6, 4)]
    assert nxt.vm_flags & PROT_BITS == VM_READ | VM_EXEC
    check(k)


def test_case8_whole_middle_joins_next(k):
    # 012345
    # AABBCC   r-x / rw- / r--
    # AABBBB   mprotect(N, r--): N is extended over X; N survives, X goes
    three(k, "r-x/rw-/r--")
    prev, mid, nxt = vma_at(k, 0), vma_at(k, 2), vma_at(k, 4)
    k.mprotect(1, addr(2), 2 * P, "r--")
    assert draw(k, n=6) == "AABBBB"
    assert vma_at(k, 0) is prev and vma_at(k, 5) is mid
    assert nxt not in k.mm(1).mmap
    assert spans(k) == [(0, 2, 0), (2, 6, 2)]
    assert mid.vm_flags & PROT_BITS == VM_READ
    check(k)


def test_case8_survivor_imports_the_absorbed_anon_vma(k):
    # 012345
    # AABBCC   r-x / r-- / rw- (written: av 1)
    # ----11
    # AABBBB   mprotect(N, rw-): N absorbs X and takes its anon_vma (R5)
    # --1111
    three(k, "r-x/r--/rw-")
    write(k, 4, 2, "x")
    mid = vma_at(k, 2)
    assert pic(k, n=6) == ("AABBCC", "----11", "----AA")
    k.mprotect(1, addr(2), 2 * P, "rw-")
    assert pic(k, n=6) == ("AABBBB", "--1111", "----AA")
    assert vma_at(k, 5) is mid
    check(k)


# -- the merge restrictions --------------------------------------------------------

@pytest.mark.parametrize("written", [False, True])
def test_different_anon_vmas_block_a_hole_fill(k, written):
    # §6 item 3.
    # 0123
    # A.B.    two separate VMAs; written, each gets its own anon_vma
    # 1.2.    (they do not touch, so find_mergeable_anon_vma finds nothing)
    # AAB.    refill the hole: case 1 refused (av 1 != av 2), case 2 taken
    # 112.
    # AAA.    unwritten: case 1
    mapx(k, 0, 1)
    mapx(k, 2, 1)
    if written:
        write(k, 0)
        write(k, 2)
        assert draw(k, what="av", n=4) == "1.2."
    prev = vma_at(k, 0)
    mapx(k, 1, 1)
    if written:
        assert draw(k, n=4) == "AAB."
        assert draw(k, what="av", n=4) == "112."
        assert spans(k) == [(0, 2, 0), (2, 3, 2)]
    else:
        assert draw(k, n=4) == "AAA."
        assert spans(k) == [(0, 3, 0)]
    assert vma_at(k, 1) is prev
    check(k)


def test_mprotect_round_trip_remerges(k):
    # §6 item 4.
    # 012
    # AAA   rw-, all written (av 1)
    # ABC   mprotect(page 1, r--): split, one anon_vma
    # AAA   back to rw-: case 6 (same anon_vma, contiguous pgoff)
    mapx(k, 0, 3)
    write(k, 0, 3)
    orig = vma_at(k, 0)
    k.mprotect(1, addr(1), P, "r--")
    assert pic(k, n=4) == ("ABC.", "111.", "AaA.")
    # split below, then above: the original object is the middle piece
    assert vma_at(k, 1) is orig
    prev = vma_at(k, 0)
    k.mprotect(1, addr(1), P, "rw-")
    assert pic(k, n=4)[:2] == ("AAA.", "111.")
    assert spans(k) == [(0, 3, 0)]
    # case 6: P (the lower split piece) absorbs the middle and the tail
    assert vma_at(k, 2) is prev and orig not in k.mm(1).mmap
    # R7: the middle pte stays read-only until the next write fault
    assert draw(k, what="pte", n=4)[1] == "a"
    check(k)


def test_mprotect_round_trip_written_after_split_stays_split(k):
    # §6 item 4, variant: the middle is made r-- before anything is
    # written; pages 0 and 2 then get different anon_vmas (the middle VMA
    # has none, so neither finds a touching donor). Restoring rw-: case 6
    # is refused (av 1 != av 2), case 7 taken (P absorbs the middle).
    # 012
    # ABC
    # 1-2
    # AAB
    # 112
    mapx(k, 0, 3)
    k.mprotect(1, addr(1), P, "r--")
    write(k, 0)
    write(k, 2)
    assert pic(k, n=4)[:2] == ("ABC.", "1-2.")
    prev = vma_at(k, 0)
    k.mprotect(1, addr(1), P, "rw-")
    assert pic(k, n=4)[:2] == ("AAB.", "112.")
    assert vma_at(k, 1) is prev
    assert spans(k) == [(0, 2, 0), (2, 3, 2)]
    check(k)


def test_find_mergeable_anon_vma_reuses_a_neighbours(k):
    # rmap 40: the first write in N reuses P's anon_vma, because P touches
    # N, has contiguous pgoff and flags equal apart from R/W/X. An
    # mprotect can then merge them.
    # 0123
    # AABB   rw- / rwx
    # 1111
    # AAAA   mprotect(N, rw-): case 7
    mapx(k, 0, 4)
    k.mprotect(1, addr(2), 2 * P, "rwx")
    base = (k.stat.anon_vma_alloc, k.stat.anon_vma_reused)
    write(k, 0)
    write(k, 2)
    assert pic(k, n=5)[:2] == ("AABB.", "1111.")
    assert (k.stat.anon_vma_alloc - base[0], k.stat.anon_vma_reused - base[1]) == (1, 1)
    k.mprotect(1, addr(2), 2 * P, "rw-")
    assert draw(k, n=5) == "AAAA."
    check(k)


def test_find_mergeable_anon_vma_tries_next_first(k):
    # 012345
    # AABBCC   rwx / rw- / rwx; page 0 then page 4 written: separate
    # 11--2-   anon_vmas (the middle VMA has none to lend)
    # 112222   the middle's first write takes the NEXT VMA's anon_vma
    three(k, "rwx/rw-/rwx")
    write(k, 0)
    write(k, 4)
    assert draw(k, what="av", n=6) == "11--22"
    write(k, 2)
    assert draw(k, what="av", n=6) == "112222"
    assert vma_at(k, 2).anon_vma is vma_at(k, 4).anon_vma
    check(k)


def test_vm_locked_difference_blocks_anon_vma_reuse(k):
    # 0123
    # AABB   N mlocked (and so prefaulted by write faults: av 1)
    # --11
    # 2211   a write in P finds N touching but with VM_LOCKED set:
    #        a new anon_vma (drawn in order of appearance: "1122")
    mapx(k, 0, 4)
    k.mlock(1, addr(2), 2 * P)
    assert pic(k, n=4) == ("AABB", "--11", "--AA")
    reused = k.stat.anon_vma_reused
    write(k, 0)
    assert draw(k, what="av", n=4) == "1122"
    assert vma_at(k, 0).anon_vma is not vma_at(k, 2).anon_vma
    assert k.stat.anon_vma_reused == reused
    check(k)


def test_vm_account_gained_on_mprotect_blocks_merging(k):
    # syscall-semantics §1.3: a private r-- mapping has no VM_ACCOUNT;
    # mprotect(rw) adds it and mprotect(r--) keeps it, so the two halves
    # differ in VM_ACCOUNT alone and never merge again.
    # 0123
    # AAAA   r-- (no VM_ACCOUNT)
    # AABB   mprotect([0,2), rw-): P gains VM_ACCOUNT
    # AABB   mprotect([0,2), r--): still two VMAs
    mapx(k, 0, 4, "r--")
    assert not vma_at(k, 0).vm_flags & VM_ACCOUNT
    k.mprotect(1, addr(0), 2 * P, "rw-")
    assert draw(k, n=5) == "AABB."
    assert vma_at(k, 0).vm_flags & VM_ACCOUNT
    k.mprotect(1, addr(0), 2 * P, "r--")
    assert draw(k, n=5) == "AABB."
    assert vma_at(k, 0).vm_flags ^ vma_at(k, 2).vm_flags == VM_ACCOUNT
    check(k)


def test_vm_account_control_rw_mapping_round_trip_merges(k):
    # The same round trip on a mapping born rw- (accounted from the start).
    mapx(k, 0, 4, "rw-")
    k.mprotect(1, addr(0), 2 * P, "r--")
    assert draw(k, n=5) == "AABB."
    k.mprotect(1, addr(0), 2 * P, "rw-")
    assert draw(k, n=5) == "AAAA."
    check(k)


@pytest.mark.parametrize("case", [4, 5])
def test_267_importer_bug_breaks_list_closure(case):
    # kernel-rmap §2.16: without the importer fix (2.6.7 as posted) the VMA
    # that grows over pages of the shrinking one is not put on their
    # anon_vma list. With the fix (the default) everything checks.
    for importer_fix in (True, False):
        k = new_kernel(vma_adjust_importer=importer_fix)
        mapx(k, 0, 6)
        if case == 4:
            # AAAABB -> AABBBB : N (unfaulted) grows down over P's pages
            k.mprotect(1, addr(4), 2 * P, "r--")
            write(k, 0, 4)
            k.mprotect(1, addr(2), 2 * P, "r--")
            assert draw(k, n=6) == "AABBBB"
        else:
            # AABBBB -> AAAABB : P (unfaulted) grows up over N's pages
            k.mprotect(1, addr(0), 2 * P, "r--")
            write(k, 2, 4)
            k.mprotect(1, addr(2), 2 * P, "r--")
            assert draw(k, n=6) == "AAAABB"
        grower = vma_at(k, 2)
        if importer_fix:
            assert grower.anon_vma is not None
            check(k)
        else:
            assert grower.anon_vma is None
            with pytest.raises(InvariantError):
                validate(k)
            with pytest.raises(InvariantError):
                check_rmap_complete(k)


@pytest.mark.parametrize("how", ["mlock", "madvise"])
def test_mlock_and_madvise_split_and_never_remerge(k, how):
    # R2: neither mlock/munlock nor madvise calls vma_merge.
    # 01234
    # AAAA.
    # ABBC.   mlock([1,3)) / madvise([1,3), SEQUENTIAL)
    # ABBC.   munlock / madvise NORMAL: flags equal again, still three VMAs
    mapx(k, 0, 4)
    if how == "mlock":
        k.mlock(1, addr(1), 2 * P)
        assert vma_at(k, 1).vm_flags & VM_LOCKED
    else:
        k.madvise(1, addr(1), 2 * P, "sequential")
        assert vma_at(k, 1).vm_flags & VM_SEQ_READ
    assert draw(k, n=5) == "ABBC."
    if how == "mlock":
        k.munlock(1, addr(1), 2 * P)
    else:
        k.madvise(1, addr(1), 2 * P, "normal")
    assert draw(k, n=5) == "ABBC."
    flags = {v.vm_flags for v in k.mm(1).mmap}
    assert len(flags) == 1
    assert spans(k) == [(0, 1, 0), (1, 3, 1), (3, 4, 3)]
    check(k)


def test_madvise_normal_splits_even_without_a_change(k):
    # linux-2.6.11-paths §6: madvise_behavior splits before looking at
    # whether the flags change.
    mapx(k, 0, 4)
    k.madvise(1, addr(1), 2 * P, "normal")
    assert draw(k, n=5) == "ABBC."
    check(k)


def test_mremap_grow_in_place_does_not_absorb_next(k):
    # R2 / §6 item 8: the in-place growth only moves vm_end (vma_adjust).
    # 0123
    # A.B.   two unfaulted pages, pgoffs 0 and 2: compatible
    # AAB.   mremap(page 0, 1P -> 2P): still two VMAs
    mapx(k, 0, 1)
    mapx(k, 2, 1)
    a, b = vma_at(k, 0), vma_at(k, 2)
    assert k.mremap(1, addr(0), P, 2 * P) == addr(0)
    assert draw(k, n=4) == "AAB."
    assert vma_at(k, 1) is a and vma_at(k, 2) is b
    assert spans(k) == [(0, 2, 0), (2, 3, 2)]
    check(k)


def test_mremap_grow_control_mmap_fills_the_same_hole_by_merging(k):
    # The control for the test above: the two VMAs were compatible.
    mapx(k, 0, 1)
    mapx(k, 2, 1)
    mapx(k, 1, 1)
    assert draw(k, n=4) == "AAA."
    check(k)


# -- more merge rules ------------------------------------------------------------------

def test_map_fixed_over_the_middle_remerges_with_both_halves(k):
    # 0123
    # AAAA   written (av 1)
    # AAAA   MAP_FIXED over [1,3): the unmap leaves [0,1) and [3,4) on av 1;
    # 1111   the new range (anon NULL, pgoff 1) fills the hole: case 1
    # A--A
    mapx(k, 0, 4)
    write(k, 0, 4, "old")
    first = vma_at(k, 0)
    mapx(k, 1, 2)
    assert pic(k, n=5) == ("AAAA.", "1111.", "A--A.")
    assert spans(k) == [(0, 4, 0)]
    assert vma_at(k, 3) is vma_at(k, 0) is first     # prev (the low half) survives
    assert k.touch(1, addr(0), 4 * P, "r").read == ["old", None, None, "old"]
    check(k)


def test_shared_anonymous_mappings_never_merge(k):
    # R3: each MAP_SHARED|MAP_ANONYMOUS mmap has its own shmem file.
    for p in (0, 1):
        k.mmap(1, addr(p), P, "rw-", ["shared", "anonymous", "fixed"])
    assert draw(k, n=3) == "AB."
    assert vma_at(k, 0).vm_file is not vma_at(k, 1).vm_file
    check(k)


def test_private_file_mappings_merge_only_with_contiguous_offsets(k):
    # mmap of a file tries vma_merge after ->mmap: same file, same flags,
    # contiguous pgoff (R1)
    # 012345
    # AA....   f[0,2)
    # AAAA..   f[2,4) at page 2: merged (pgoff 0+2 == 2)
    # AAAAB.   f[0,1) at page 4: pgoff 0 != 4, not merged
    k.declare_file("f", 8 * P)
    k.mmap(1, addr(0), 2 * P, "r--", ["private", "fixed"], file="f")
    first = vma_at(k, 0)
    k.mmap(1, addr(2), 2 * P, "r--", ["private", "fixed"], file="f", offset=2 * P)
    assert draw(k, n=6) == "AAAA.."
    assert vma_at(k, 3) is first
    assert (first.vm_start, first.vm_end, first.vm_pgoff) == (addr(0), addr(4), 0)
    k.mmap(1, addr(4), P, "r--", ["private", "fixed"], file="f")
    assert draw(k, n=6) == "AAAAB."
    assert k.touch(1, addr(0), 5 * P, "r").read == ["f:0", "f:1", "f:2", "f:3", "f:0"]
    check(k)


def test_anonymous_and_file_mappings_do_not_merge(k):
    # the file offset is chosen so that the pgoffs are contiguous
    # (B/P + 0, B/P + 1) and the flags equal: only the file differs
    k.declare_file("f", 8 * P)
    mapx(k, 0, 1, "r--")
    k.mmap(1, addr(1), P, "r--", ["private", "fixed"], file="f", offset=addr(1))
    assert vma_at(k, 0).vm_flags == vma_at(k, 1).vm_flags
    assert vma_at(k, 0).vm_pgoff + 1 == vma_at(k, 1).vm_pgoff
    assert draw(k, n=3) == "AB."
    check(k)


def test_brk_shrink_then_grow_merges_again(k):
    brk0 = k.brk(1, 0)
    k.brk(1, brk0 + 4 * P)
    heap = k.mm(1).find_vma(brk0)
    k.touch(1, brk0, 4 * P, "w", "h")
    k.brk(1, brk0 + P)
    assert draw(k, base=brk0, n=5) == "A...."
    k.brk(1, brk0 + 3 * P)
    assert draw(k, base=brk0, n=5) == "AAA.."
    assert k.mm(1).find_vma(brk0 + 2 * P) is heap and heap.vm_pgoff == brk0 >> 12
    assert k.touch(1, brk0, 3 * P, "r").read == ["h", None, None]
    check(k)


def test_anon_vma_lives_while_a_vma_is_on_its_list(k):
    # R5: an anon_vma is freed exactly when its last VMA is unlinked. A
    # split piece, a fork child and a moved copy all keep it alive.
    mapx(k, 0, 4)
    write(k, 0, 4)
    freed = k.stat.anon_vma_free
    k.munmap(1, addr(1), P)                  # split: two VMAs on av 1
    k.fork(1, 2)                             # two more
    k.munmap(1, addr(0), 4 * P)
    assert k.stat.anon_vma_free == freed      # the child still holds it
    k.mremap(2, addr(3), P, P, ["maymove", "fixed"], addr(8))
    k.munmap(2, addr(0), 3 * P)
    assert k.stat.anon_vma_free == freed      # the moved copy holds it
    check(k)
    k.munmap(2, addr(8), P)
    assert k.stat.anon_vma_free == freed + 1
    check(k)


def test_mprotect_over_several_vmas_merges_them_all(k):
    # 012345678
    # AABBCCDD.   rw- / r-- / rw- / r--
    # AAAAAAAA.   mprotect([0,8), rw-): case 6 then case 7, one VMA left
    mapx(k, 0, 8)
    for p in (2, 6):
        k.mprotect(1, addr(p), 2 * P, "r--")
    first = vma_at(k, 0)
    assert draw(k, n=9) == "AABBCCDD."
    k.mprotect(1, addr(0), 8 * P, "rw-")
    assert draw(k, n=9) == "AAAAAAAA."
    assert vma_at(k, 7) is first and spans(k) == [(0, 8, 0)]
    check(k)
