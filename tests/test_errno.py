"""The errno tables of syscall-semantics.md §1, row by row, with the state
Linux leaves after each error (check order and leftovers from
docs/notes/linux-2.6.11-paths.md).

Rows left out, and why:

- mm9/mm10/mm13(charge)/mp8/b2/b4/mr13: RLIMIT_AS, RLIMIT_DATA and the
  commit charge are not limits the model has (unlimited, overcommit GUESS).
- mm12, mm13 and mp6/mp9 use ``mmap(..., open="r"|"w")``: the mode of the
  descriptor behind the mapping (trace-format addition).
- mm14–mm18, mm21: append-only files, mandatory locks, MAP_LOCKED without
  CAP_IPC_LOCK, filesystems without mmap, noexec mounts, 32-bit offsets are
  not modelled. mm19/mm20 are modern only.
- mr10: nothing in the API can set VM_DONTEXPAND. mr11 and ml2/ml3: the
  model's processes hold CAP_IPC_LOCK (syscall-semantics "Defaults"), so the
  memlock limits never apply. mr14 is exercised in the mremap tests only
  through max_map_count (below). mr16/mr17 are modern only.
"""

from __future__ import annotations


from conftest import (P, PROT_BITS, VM_ACCOUNT, VM_LOCKED, VM_READ, VM_WRITE, addr, check,
                      draw, errno_of, mapx, new_kernel, pic, read, snapshot, spans, vma_at,
                      write)

#: x86_64 2.6.11 (linux-2.6.11-paths.md "Constants")
#: x86_64 user space ends one page below 1 << 47 (observed item 20)
TASK_SIZE = 0x8000_0000_0000 - 0x1000
TASK_UNMAPPED_BASE = 0x2AAA_AAAA_B000
U64 = 1 << 64


def anon_fixed(k, page, npages, prot="rw-", flags=("private", "anonymous", "fixed")):
    return k.mmap(1, addr(page), npages * P, prot, list(flags))


def prot_of(k, page, pid=1):
    return vma_at(k, page, pid).vm_flags & PROT_BITS


# ====================================================================== mmap

def test_mm1_neither_shared_nor_private_is_einval_before_unmapping(k):
    # The type check (do_mmap_pgoff step 11/12) comes before the MAP_FIXED
    # unmap (step 14): the mapping already at page 0 survives.
    mapx(k, 0, 2)
    write(k, 0, 2, "old")
    before = snapshot(k)
    assert errno_of(k.mmap, 1, addr(0), P, "rw-", ["anonymous", "fixed"]) == "EINVAL"
    k.declare_file("f", 4 * P)
    # ltp mmap06 last case: MAP_FILE only (no type bits) on a file
    assert errno_of(k.mmap, 1, addr(0), P, "r--", ["fixed"], file="f") == "EINVAL"
    assert snapshot(k) == before
    assert read(k, 0, 2) == ["old", "old"]
    check(k)


def test_mm2_length_zero_returns_addr_in_267(k):
    # 2.6.7 (before 2.6.12): success, nothing created, addr returned as is
    # (even unaligned: the len == 0 test is step 3, before everything else).
    assert k.mmap(1, addr(3) + 5, 0, "rw-", ["private", "anonymous"]) == addr(3) + 5
    assert k.mmap(1, addr(3), 0, "rw-", ["private", "anonymous", "fixed"]) == addr(3)
    assert k.mm(1).mmap == []
    check(k)


def test_mm2_length_zero_is_einval_from_2612():
    k = new_kernel(mmap_len0_einval=True)
    assert errno_of(k.mmap, 1, addr(3), 0, "rw-", ["private", "anonymous", "fixed"]) == "EINVAL"
    assert k.mm(1).mmap == []
    check(k)


def test_mm3_length_or_offset_out_of_range(k):
    k.declare_file("f", 4 * P)
    # PAGE_ALIGN(len) > TASK_SIZE
    assert errno_of(k.mmap, 1, None, TASK_SIZE + 1, "rw-", ["private", "anonymous"]) == "EINVAL"
    # PAGE_ALIGN(len) wraps to 0 in a 64-bit unsigned long
    assert errno_of(k.mmap, 1, None, U64 - 1, "rw-", ["private", "anonymous"]) == "EINVAL"
    # offset + length overflows
    assert errno_of(k.mmap, 1, None, 2 * P, "r--", ["private"], file="f",
                    offset=U64 - P) == "EINVAL"
    assert k.mm(1).mmap == []
    check(k)


def test_mm4_unaligned_offset(k):
    k.declare_file("f", 4 * P)
    assert errno_of(k.mmap, 1, None, P, "r--", ["private"], file="f", offset=100) == "EINVAL"
    # sys_mmap checks the offset before it even looks at MAP_ANONYMOUS
    assert errno_of(k.mmap, 1, None, P, "rw-", ["private", "anonymous"], offset=100) == "EINVAL"
    assert k.mm(1).mmap == []
    check(k)


def test_mm5_fixed_unaligned_addr_leaves_existing_mapping(k):
    mapx(k, 0, 2)
    write(k, 0, 1, "old")
    before = snapshot(k)
    assert errno_of(k.mmap, 1, addr(0) + 100, P, "rw-",
                    ["private", "anonymous", "fixed"]) == "EINVAL"
    assert snapshot(k) == before and read(k, 0) == ["old"]
    check(k)


def test_mm6_fixed_past_task_size_is_enomem(k):
    assert errno_of(k.mmap, 1, TASK_SIZE - P, 2 * P, "rw-",
                    ["private", "anonymous", "fixed"]) == "ENOMEM"
    # get_unmapped_area checks the range before the alignment
    assert errno_of(k.mmap, 1, TASK_SIZE - P + 1, 2 * P, "rw-",
                    ["private", "anonymous", "fixed"]) == "ENOMEM"
    # the range ending at 1 << 47 is past TASK_SIZE (regression: it was accepted)
    assert errno_of(k.mmap, 1, (1 << 47) - P, P, "rw-",
                    ["private", "anonymous", "fixed"]) == "ENOMEM"
    # the last page itself is fine
    assert k.mmap(1, TASK_SIZE - P, P, "rw-", ["private", "anonymous", "fixed"]) == TASK_SIZE - P
    check(k)


def test_mm7_no_hole_big_enough(k):
    mapx(k, 0, 1)
    before = snapshot(k)
    too_big = TASK_SIZE - TASK_UNMAPPED_BASE + P
    assert errno_of(k.mmap, 1, None, too_big, "rw-", ["private", "anonymous"]) == "ENOMEM"
    assert snapshot(k) == before
    check(k)


def test_mm8_max_map_count_allows_max_plus_one():
    # The test is map_count > max before adding: with max 5 six mappings
    # succeed (ltp max_map_count.c expects max + 1 lines).
    k = new_kernel(max_map_count=5)
    for i in range(6):
        mapx(k, 2 * i, 1)
    assert k.mm(1).map_count == 6
    before = snapshot(k)
    assert errno_of(mapx, k, 20, 1) == "ENOMEM"
    # even a mapping that would merge (page 1 fills the hole between two
    # compatible VMAs) is refused: the count check comes first
    assert errno_of(mapx, k, 1, 1) == "ENOMEM"
    # and a MAP_FIXED over an existing VMA is refused before the unmap
    write(k, 0, 1, "keep")
    before = snapshot(k)
    assert errno_of(mapx, k, 0, 1, "r--") == "ENOMEM"
    assert snapshot(k) == before and read(k, 0) == ["keep"]
    assert draw(k) == "A.B.C.D.E.F."
    check(k)


def test_mm11_ebadf_for_unknown_file(k):
    mapx(k, 0, 1)
    before = snapshot(k)
    assert errno_of(k.mmap, 1, addr(0), P, "r--", ["private", "fixed"], file="nope") == "EBADF"
    assert errno_of(k.mmap, 1, addr(0), P, "r--", ["shared", "fixed"]) == "EBADF"
    assert snapshot(k) == before
    check(k)


def _mmap_readonly_fd(k, page, npages, prot, shared):
    """mmap of a file through a descriptor opened O_RDONLY."""
    return k.mmap(1, addr(page), npages * P, prot, ["shared" if shared else "private", "fixed"],
                  file="f", open="r")


def test_mm12_mapping_of_a_write_only_fd_is_eacces(k):
    k.declare_file("f", 2 * P)
    for flags in (["private", "fixed"], ["shared", "fixed"]):
        assert errno_of(k.mmap, 1, addr(0), P, "r--", flags, file="f", open="w") == "EACCES"
    assert k.mm(1).mmap == []
    check(k)


def test_mm13_shared_writable_mapping_of_readonly_fd_is_eacces(k):
    k.declare_file("f", 2 * P)
    assert errno_of(_mmap_readonly_fd, k, 0, 1, "rw-", True) == "EACCES"
    assert k.mm(1).mmap == []
    check(k)


# ==================================================================== munmap

def test_mu1_mu2_mu3_einval_and_nothing_changes(k):
    mapx(k, 0, 3)
    write(k, 0, 3, "d")
    before = snapshot(k)
    assert errno_of(k.munmap, 1, addr(1) + 1, P) == "EINVAL"         # mu1
    assert errno_of(k.munmap, 1, addr(1), 0) == "EINVAL"             # mu2
    assert errno_of(k.munmap, 1, TASK_SIZE + P, P) == "EINVAL"       # mu3 addr
    assert errno_of(k.munmap, 1, addr(0), TASK_SIZE) == "EINVAL"     # mu3 len
    assert snapshot(k) == before
    assert read(k, 0, 3) == ["d"] * 3
    check(k)


def test_mu4_split_refused_at_max_map_count():
    # 0123456789
    # AAA.B.C.D.   4 VMAs, max_map_count 4: split_vma refuses (>=)
    k = new_kernel(max_map_count=4)
    mapx(k, 0, 3)
    for p in (4, 6, 8):
        mapx(k, p, 1)
    write(k, 0, 3, "d")
    before = snapshot(k)
    assert errno_of(k.munmap, 1, addr(1), P) == "ENOMEM"     # the middle page
    # 2.6.7 refuses at the limit even when the count would not grow
    assert errno_of(k.munmap, 1, addr(2), P) == "ENOMEM"     # the tail page
    assert errno_of(k.munmap, 1, addr(0), P) == "ENOMEM"     # the head page
    assert snapshot(k) == before
    assert read(k, 0, 3) == ["d"] * 3
    # a whole VMA needs no split
    assert k.munmap(1, addr(4), P) == 0
    assert draw(k, n=10) == "AAA...B.C."
    check(k)


def test_mu4_second_split_refused_keeps_the_first():
    # 0123456789
    # AAABBB..C.   3 VMAs, max 4; munmap([1,5)): the split at 1 succeeds
    # ABBCCC..D.   (count 4), the split at 5 is refused: ENOMEM, nothing
    #              unmapped, one more VMA
    k = new_kernel(max_map_count=4)
    mapx(k, 0, 3)
    mapx(k, 3, 3, "r--")
    mapx(k, 8, 1)
    write(k, 0, 3, "d")
    assert draw(k, n=10) == "AAABBB..C."
    assert errno_of(k.munmap, 1, addr(1), 4 * P) == "ENOMEM"
    assert draw(k, n=10) == "ABBCCC..D."
    assert spans(k) == [(0, 1, 0), (1, 3, 1), (3, 6, 3), (8, 9, 8)]
    assert read(k, 0, 3) == ["d"] * 3
    check(k)


def test_mu5_unmapping_nothing_succeeds(k):
    mapx(k, 0, 1)
    before = snapshot(k)
    assert k.munmap(1, addr(4), 3 * P) == 0
    assert snapshot(k) == before
    check(k)


def test_mu6_touching_unmapped_range_segfaults_rest_stays(k):
    mapx(k, 0, 3)
    for i in range(3):
        write(k, i, 1, f"p{i}")
    k.munmap(1, addr(1), 2 * P)
    assert pic(k, n=4) == ("A...", "1...", "A...")
    assert read(k, 0) == ["p0"]
    r = k.touch(1, addr(1), P, "r")
    assert (r.result, r.fault_addr) == ("SIGSEGV", addr(1))
    r = k.touch(1, addr(2), P, "w", "x")
    assert (r.result, r.fault_addr) == ("SIGSEGV", addr(2))
    check(k)


# ================================================================== mprotect

def test_mp1_unaligned_start(k):
    mapx(k, 0, 2)
    before = snapshot(k)
    assert errno_of(k.mprotect, 1, addr(0) + 1, P, "r--") == "EINVAL"
    assert snapshot(k) == before
    check(k)


def test_mp2_unknown_prot_bits_and_both_grows(k):
    mapx(k, 0, 2)
    before = snapshot(k)
    assert errno_of(k.mprotect, 1, addr(0), P, 0x10) == "EINVAL"
    assert errno_of(k.mprotect, 1, addr(0), P, 0x1 | 0x01000000 | 0x02000000) == "EINVAL"
    # PROT_GROWSDOWN on a VMA without VM_GROWSDOWN
    assert errno_of(k.mprotect, 1, addr(0), P, 0x1 | 0x01000000) == "EINVAL"
    assert snapshot(k) == before
    check(k)


def test_mp2_prot_sem_is_accepted_and_ignored(k):
    # 2.6.11 sys_mprotect: prot & ~(READ|WRITE|EXEC|SEM) -> EINVAL; PROT_SEM
    # itself is allowed and calc_vm_prot_bits ignores it.
    mapx(k, 0, 2)
    assert k.mprotect(1, addr(0), 2 * P, 0x1 | 0x8) == 0
    assert prot_of(k, 0) == VM_READ
    check(k)


def test_mp2_prot_growsdown_extends_to_vma_start(k):
    # 2.6.11: with PROT_GROWSDOWN, start becomes vma->vm_start (the VMA
    # must have VM_GROWSDOWN).
    # 01234567
    # ....AAAA   growsdown rw-
    # ....AAAB   mprotect(page 6, 1P, READ|GROWSDOWN): [4,7) becomes r--
    anon_fixed(k, 4, 4, "rw-", ("private", "anonymous", "fixed", "growsdown"))
    assert k.mprotect(1, addr(6), P, 0x1 | 0x01000000) == 0
    assert draw(k, n=8) == "....AAAB"
    assert prot_of(k, 4) == VM_READ and prot_of(k, 7) == VM_READ | VM_WRITE
    check(k)


def test_mp3_hole_gives_enomem_after_earlier_vmas_changed(k):
    # 012345
    # AA.BB.   mprotect([0,5), r--): [0,2) is changed, then the hole: ENOMEM
    mapx(k, 0, 2)
    mapx(k, 3, 2)
    assert errno_of(k.mprotect, 1, addr(0), 5 * P, "r--") == "ENOMEM"
    assert draw(k, n=6) == "AA.BB."
    assert prot_of(k, 0) == VM_READ
    assert prot_of(k, 3) == VM_READ | VM_WRITE
    assert k.touch(1, addr(0), P, "w", "x").result == "SIGSEGV"
    assert k.touch(1, addr(3), P, "w", "x").result == "ok"
    check(k)


def test_mp3_partial_application_splits_the_first_vma(k):
    # 012345
    # AA.BB.   mprotect([1,5), r--): page 1 is split off and changed
    # AB.CC.
    mapx(k, 0, 2)
    mapx(k, 3, 2)
    assert errno_of(k.mprotect, 1, addr(1), 4 * P, "r--") == "ENOMEM"
    assert draw(k, n=6) == "AB.CC."
    assert [prot_of(k, p) for p in (0, 1, 3, 4)] == [3, 1, 3, 3]
    check(k)


def test_mp3_start_in_hole_changes_nothing(k):
    mapx(k, 0, 2)
    mapx(k, 3, 2)
    before = snapshot(k)
    assert errno_of(k.mprotect, 1, addr(2), 3 * P, "r--") == "ENOMEM"
    assert snapshot(k) == before
    check(k)


def test_mp4_range_overflow_is_enomem_and_changes_nothing(k):
    # end = start + PAGE_ALIGN(len) wraps below start: ENOMEM at step 3,
    # before any VMA is looked at.
    mapx(k, 0, 2)
    before = snapshot(k)
    assert errno_of(k.mprotect, 1, addr(0), U64 - P, "r--") == "ENOMEM"
    assert snapshot(k) == before
    check(k)


def test_mp5_len_zero_succeeds_without_checking_the_range(k):
    assert k.mprotect(1, addr(7), 0, "rw-") == 0          # nothing mapped there
    mapx(k, 0, 1)
    before = snapshot(k)
    assert k.mprotect(1, addr(0), 0, "r--") == 0
    assert snapshot(k) == before
    # ... but the alignment check comes first
    assert errno_of(k.mprotect, 1, addr(0) + 1, 0, "r--") == "EINVAL"
    check(k)


def test_mp6_write_on_shared_mapping_of_readonly_fd_is_eacces(k):
    k.declare_file("f", 2 * P)
    _mmap_readonly_fd(k, 0, 2, "r--", True)
    before = snapshot(k)
    assert errno_of(k.mprotect, 1, addr(0), 2 * P, "rw-") == "EACCES"
    assert snapshot(k) == before
    assert read(k, 0) == ["f:0"]
    check(k)


def test_mp9_private_mapping_of_readonly_fd_may_become_writable(k):
    k.declare_file("f", 2 * P)
    _mmap_readonly_fd(k, 0, 2, "r--", False)
    assert k.mprotect(1, addr(0), 2 * P, "rw-") == 0
    write(k, 0, 1, "mine")                              # a private COW copy
    assert read(k, 0, 2) == ["mine", "f:1"]
    k.spawn(2)
    k.mmap(2, addr(0), 2 * P, "r--", ["private", "fixed"], file="f")
    assert read(k, 0, pid=2) == ["f:0"]
    check(k)


def test_mp7_split_refused_at_max_map_count():
    # 0123456789
    # AAAA..B.C.   3 VMAs, max 3: no split possible
    k = new_kernel(max_map_count=3)
    mapx(k, 0, 4)
    mapx(k, 6, 1)
    mapx(k, 8, 1)
    before = snapshot(k)
    assert errno_of(k.mprotect, 1, addr(1), 2 * P, "r--") == "ENOMEM"   # inside
    assert errno_of(k.mprotect, 1, addr(0), P, "r--") == "ENOMEM"       # head
    assert errno_of(k.mprotect, 1, addr(3), P, "r--") == "ENOMEM"       # tail
    assert snapshot(k) == before
    # the whole VMA needs no split
    assert k.mprotect(1, addr(0), 4 * P, "r--") == 0
    assert draw(k, n=10) == "AAAA..B.C."
    check(k)


def test_mp7_second_split_refused_keeps_the_first():
    # 01234
    # AAAA.   2 VMAs (one outside the window), max 3
    # ABBB.   mprotect([1,3)): split at 1 done, split at 3 refused; the
    #         protection is unchanged everywhere
    k = new_kernel(max_map_count=3)
    mapx(k, 0, 4)
    mapx(k, 20, 1)
    assert errno_of(k.mprotect, 1, addr(1), 2 * P, "r--") == "ENOMEM"
    assert draw(k, n=5) == "ABBB."
    assert prot_of(k, 0) == prot_of(k, 1) == VM_READ | VM_WRITE
    assert spans(k, n=5) == [(0, 1, 0), (1, 4, 1)]
    check(k)


# ==================================================================== mremap

def test_mr1_to_mr7_einval_and_nothing_changes(k):
    mapx(k, 0, 2)
    write(k, 0, 2, "s")
    mapx(k, 6, 1, "r--")        # something at a destination
    before = snapshot(k)
    assert errno_of(k.mremap, 1, addr(0), 2 * P, 3 * P, 4) == "EINVAL"            # mr1
    assert errno_of(k.mremap, 1, addr(0) + 1, P, 2 * P, ["maymove"]) == "EINVAL"  # mr2
    assert errno_of(k.mremap, 1, addr(0), 2 * P, 0, ["maymove"]) == "EINVAL"      # mr3
    assert errno_of(k.mremap, 1, addr(0), 2 * P, 2 * P, ["fixed"], addr(6)) == "EINVAL"  # mr4
    assert errno_of(k.mremap, 1, addr(0), 2 * P, 2 * P, ["maymove", "fixed"],
                    addr(6) + 8) == "EINVAL"                                        # mr5
    # mr6: overlap either way, and the same address (ltp mremap05 #3: the
    # old range is not even shrunk, the FIXED checks come first)
    assert errno_of(k.mremap, 1, addr(0), 2 * P, 2 * P, ["maymove", "fixed"], addr(1)) == "EINVAL"
    assert errno_of(k.mremap, 1, addr(1), P, 2 * P, ["maymove", "fixed"], addr(0)) == "EINVAL"
    assert errno_of(k.mremap, 1, addr(0), 2 * P, P, ["maymove", "fixed"], addr(0)) == "EINVAL"
    # mr7
    assert errno_of(k.mremap, 1, addr(0), 2 * P, 2 * P, ["maymove", "fixed"],
                    TASK_SIZE - P) == "EINVAL"
    assert snapshot(k) == before
    assert draw(k, n=8) == "AA....B."
    assert read(k, 0, 2) == ["s", "s"]
    check(k)


def test_mr8_unmapped_old_address_is_efault(k):
    mapx(k, 0, 1)
    before = snapshot(k)
    assert errno_of(k.mremap, 1, addr(4), P, 2 * P, ["maymove"]) == "EFAULT"   # grow
    assert errno_of(k.mremap, 1, addr(4), P, 2 * P, []) == "EFAULT"
    assert snapshot(k) == before
    check(k)


def test_mr8_fixed_move_of_unmapped_source_destroys_destination_first(k):
    # do_mremap step 4: with MREMAP_FIXED the destination is unmapped before
    # the source is even looked up; the EFAULT leaves that hole.
    mapx(k, 0, 2)
    write(k, 0, 2, "dst")
    # 0123
    # AA..   before
    # .A..   after: [0,1) (new_addr, new_size) was unmapped, then EFAULT
    assert errno_of(k.mremap, 1, addr(6), P, P, ["maymove", "fixed"], addr(0)) == "EFAULT"
    assert draw(k, n=4) == ".A..", "the destination range must be gone"
    assert k.touch(1, addr(0), P, "r").result == "SIGSEGV"
    assert read(k, 1) == ["dst"]
    check(k)


def test_mr8_pure_shrink_of_unmapped_range_returns_addr(k):
    # 2.6.7 shrinks first (do_munmap of the tail) and returns old_address
    # without looking the VMA up.
    assert k.mremap(1, addr(4), 2 * P, P, []) == addr(4)
    assert k.mremap(1, addr(4), 2 * P, 2 * P, []) == addr(4)
    assert k.mm(1).mmap == []
    check(k)


def test_mr8_shrink_unmaps_the_tail(k):
    mapx(k, 0, 4)
    write(k, 0, 4, "t")
    assert k.mremap(1, addr(0), 4 * P, P, []) == addr(0)
    assert pic(k, n=5) == ("A....", "1....", "A....")
    check(k)


def test_mr9_old_range_crosses_a_vma_boundary(k):
    # 012345
    # AABB..   two VMAs (rw- / r--); any grow or move of [0,3) is EFAULT
    mapx(k, 0, 2)
    mapx(k, 2, 2, "r--")
    before = snapshot(k)
    assert errno_of(k.mremap, 1, addr(0), 3 * P, 4 * P, ["maymove"]) == "EFAULT"
    # 2.6.7: even a pure move (equal sizes) may not span VMAs (6.17 may)
    assert errno_of(k.mremap, 1, addr(0), 3 * P, 3 * P, ["maymove", "fixed"],
                    addr(10)) == "EFAULT"
    # into a hole
    assert errno_of(k.mremap, 1, addr(2), 3 * P, 4 * P, ["maymove"]) == "EFAULT"
    assert snapshot(k) == before
    check(k)


def test_mr12_cannot_grow_in_place_without_maymove(k):
    # 0123
    # A.B.   page 0 cannot grow to 3 pages in place (B is in the way)
    # CC..   old_size shorter than the rest of the VMA: no in-place growth
    mapx(k, 0, 1)
    mapx(k, 2, 1)
    mapx(k, 6, 2)
    before = snapshot(k)
    assert errno_of(k.mremap, 1, addr(0), P, 3 * P, []) == "ENOMEM"
    assert errno_of(k.mremap, 1, addr(6), P, 2 * P, []) == "ENOMEM"
    assert snapshot(k) == before
    # with MAYMOVE the first one moves instead
    new = k.mremap(1, addr(0), P, 3 * P, ["maymove"])
    assert new != addr(0) and draw(k, n=4) == "..A."
    check(k)


def test_mr14_move_refused_near_max_map_count():
    # move_vma: map_count >= max - 3 -> ENOMEM, nothing changed
    k = new_kernel(max_map_count=5)
    mapx(k, 0, 1)
    mapx(k, 2, 1)
    before = snapshot(k)
    assert errno_of(k.mremap, 1, addr(0), P, P, ["maymove", "fixed"], addr(8)) == "ENOMEM"
    assert snapshot(k) == before
    assert draw(k, n=10) == "A.B......."
    check(k)


def test_mr15_old_size_zero_duplicates_a_private_mapping(k):
    # 2.6.7: a new, unrelated private mapping of new_size; the old one is
    # left in place. do_munmap(old, 0) fails inside move_vma, so the old
    # VMA keeps VM_ACCOUNT concealed (move_vma steps 4-6).
    mapx(k, 0, 2)
    write(k, 0, 2, "old")
    old = vma_at(k, 0)
    new = k.mremap(1, addr(0), 0, P, ["maymove"])
    assert new != addr(0)
    nv = k.mm(1).find_vma(new)
    assert nv is not None and (nv.vm_start, nv.vm_end) == (new, new + P)
    assert draw(k, n=3) == "AA." and vma_at(k, 0) is old
    assert k.touch(1, new, P, "r").read == [None]
    assert read(k, 0, 2) == ["old", "old"]
    assert not old.vm_flags & VM_ACCOUNT
    assert nv.vm_flags & VM_ACCOUNT
    k.touch(1, new, P, "w", "dup")
    assert read(k, 0) == ["old"]
    check(k)


def test_mr15_old_size_zero_of_a_shared_mapping_is_a_second_view(k):
    a = k.mmap(1, addr(0), P, "rw-", ["shared", "anonymous", "fixed"])
    k.touch(1, a, P, "w", "shared")
    new = k.mremap(1, a, 0, P, ["maymove"])
    assert new != a
    assert k.touch(1, new, P, "r").read == ["shared"]
    k.touch(1, new, P, "w", "again")
    assert read(k, 0) == ["again"]
    check(k)


# ======================================================================= brk

def test_b1_below_end_of_code_fails(k):
    brk0 = k.brk(1, 0)
    assert brk0 == k.brk(1, 0)
    assert k.brk(1, brk0 - P) == brk0
    assert k.brk(1, brk0 + 2 * P) == brk0 + 2 * P
    heap = k.mm(1).find_vma(brk0)
    k.touch(1, brk0, 2 * P, "w", "h")
    assert k.brk(1, brk0 - 1) == brk0 + 2 * P
    assert k.mm(1).find_vma(brk0) is heap and heap.vm_end == brk0 + 2 * P
    check(k)


def test_b3_growth_needs_a_free_guard_page(k):
    # brk0 ...
    # 01234
    # AA.B.   heap grown to 2 pages, a mapping at brk0 + 3P
    # brk(brk0 + 3P) would touch the mapping and leave no free page after
    # the break: fails; brk(brk0 + 2P + 1) rounds to the same: fails
    brk0 = k.brk(1, 0)
    k.mmap(1, brk0 + 3 * P, P, "r--", ["private", "anonymous", "fixed"])
    assert k.brk(1, brk0 + 2 * P) == brk0 + 2 * P
    assert k.brk(1, brk0 + 3 * P) == brk0 + 2 * P
    assert k.brk(1, brk0 + 2 * P + 1) == brk0 + 2 * P
    assert k.brk(1, brk0 + 6 * P) == brk0 + 2 * P            # overlaps
    assert draw(k, base=brk0, n=5) == "AA.B."
    check(k)


def test_b5_shrink_unmaps_the_tail(k):
    brk0 = k.brk(1, 0)
    assert k.brk(1, brk0 + 4 * P) == brk0 + 4 * P
    k.touch(1, brk0, 4 * P, "w", "h")
    # shrink to a value inside page 1: [PAGE_ALIGN(new), old) goes
    assert k.brk(1, brk0 + P + 1) == brk0 + P + 1
    assert draw(k, base=brk0, n=5) == "AA..."
    assert k.touch(1, brk0 + P, P, "r").read == ["h"]
    assert k.touch(1, brk0 + 2 * P, P, "r").result == "SIGSEGV"
    check(k)


def test_b6_break_is_byte_exact_mapping_page_granular(k):
    brk0 = k.brk(1, 0)
    assert k.brk(1, brk0 + 100) == brk0 + 100
    assert k.brk(1, 0) == brk0 + 100
    assert draw(k, base=brk0, n=3) == "A.."
    heap = k.mm(1).find_vma(brk0)
    assert k.brk(1, brk0 + 200) == brk0 + 200       # same page: no new VMA
    assert k.brk(1, brk0 + P) == brk0 + P            # still the same page
    assert k.mm(1).mmap == [heap] and heap.vm_end == brk0 + P
    check(k)


# =================================================================== madvise

def test_ma1_unaligned_start(k):
    mapx(k, 0, 2)
    write(k, 0, 2, "d")
    assert errno_of(k.madvise, 1, addr(0) + 1, P, "dontneed") == "EINVAL"
    assert draw(k, what="pte", n=2) == "AA"
    check(k)


def test_ma2_unknown_advice(k):
    mapx(k, 0, 2)
    write(k, 0, 2, "d")
    before = snapshot(k)
    assert errno_of(k.madvise, 1, addr(0), P, 1212) == "EINVAL"
    assert errno_of(k.madvise, 1, addr(0), P, 9) == "EINVAL"        # MADV_REMOVE: 2.6.16
    assert errno_of(k.madvise, 1, addr(0), P, 10) == "EINVAL"       # MADV_DONTFORK
    assert snapshot(k) == before and draw(k, what="pte", n=2) == "AA"
    # 2.6.11: an invalid advice over an unmapped range is ENOMEM (no VMA is
    # reached, so madvise_vma never rejects the advice)
    assert errno_of(k.madvise, 1, addr(6), P, 1212) == "ENOMEM"
    check(k)


def test_ma3_dontneed_on_locked_vma(k):
    mapx(k, 0, 2)
    write(k, 0, 2, "d")
    k.mlock(1, addr(0), 2 * P)
    assert errno_of(k.madvise, 1, addr(0), 2 * P, "dontneed") == "EINVAL"
    assert read(k, 0, 2) == ["d", "d"]
    check(k)


def test_ma3_earlier_vmas_are_zapped_before_the_locked_one(k):
    # 0123
    # AABB   [2,4) locked; DONTNEED over [0,4): [0,2) zapped, then EINVAL
    mapx(k, 0, 4)
    write(k, 0, 4, "d")
    k.mlock(1, addr(2), 2 * P)
    assert errno_of(k.madvise, 1, addr(0), 4 * P, "dontneed") == "EINVAL"
    assert draw(k, what="pte", n=4) == "--AA"
    assert read(k, 0, 4) == [None, None, "d", "d"]
    check(k)


def test_ma4_hole_is_enomem_but_mapped_parts_are_advised(k):
    # 012345
    # AA.BB.   DONTNEED over [0,5): ENOMEM, and every mapped page is zapped
    mapx(k, 0, 2)
    mapx(k, 3, 2)
    write(k, 0, 2, "a")
    write(k, 3, 2, "b")
    assert errno_of(k.madvise, 1, addr(0), 5 * P, "dontneed") == "ENOMEM"
    assert pic(k, n=6)[2] == "--.--."
    assert read(k, 0, 2) == [None, None] and read(k, 3, 2) == [None, None]
    check(k)


def test_ma4_last_page_unmapped(k):
    # ltp madvise02: a mapping with its last page unmapped
    mapx(k, 0, 3)
    write(k, 0, 3, "a")
    k.munmap(1, addr(2), P)
    assert errno_of(k.madvise, 1, addr(0), 3 * P, "dontneed") == "ENOMEM"
    assert draw(k, what="pte", n=3) == "--."
    check(k)


def test_ma5_willneed_on_anonymous_memory_is_ebadf(k):
    mapx(k, 0, 2)
    write(k, 0, 2, "a")
    before = snapshot(k)
    assert errno_of(k.madvise, 1, addr(0), 2 * P, "willneed") == "EBADF"
    assert snapshot(k) == before and read(k, 0, 2) == ["a", "a"]
    # on a file mapping it reads ahead into the page cache, mapping nothing
    k.declare_file("f", 2 * P)
    k.mmap(1, addr(4), 2 * P, "r--", ["private", "fixed"], file="f")
    assert k.madvise(1, addr(4), 2 * P, "willneed") == 0
    assert k.ctx.files["f"].nrpages == 2
    assert draw(k, what="pte", n=6)[4:] == "--"
    check(k)


def test_ma6_length_rounding_to_zero_is_einval(k):
    mapx(k, 0, 2)
    write(k, 0, 2, "a")
    assert errno_of(k.madvise, 1, addr(0), U64 - 1, "dontneed") == "EINVAL"
    assert read(k, 0, 2) == ["a", "a"]
    check(k)


def test_ma6_length_zero_succeeds(k):
    assert k.madvise(1, addr(3), 0, "dontneed") == 0
    check(k)


# ===================================================================== mlock

def test_ml1_hole_is_enomem_after_earlier_vmas_locked(k):
    # 012345
    # AA.BB.   mlock([0,5)): [0,2) locked (and prefaulted), then ENOMEM
    mapx(k, 0, 2)
    mapx(k, 3, 2)
    assert errno_of(k.mlock, 1, addr(0), 5 * P) == "ENOMEM"
    assert vma_at(k, 0).vm_flags & VM_LOCKED
    assert not vma_at(k, 3).vm_flags & VM_LOCKED
    assert pic(k, n=6)[2] == "AA.--."
    check(k)


def test_ml1_munlock_over_a_hole(k):
    # ltp munlock02: 8 pages locked, the middle 4 unmapped, munlock of all 8
    mapx(k, 0, 8)
    k.mlock(1, addr(0), 8 * P)
    k.munmap(1, addr(2), 4 * P)
    assert errno_of(k.munlock, 1, addr(0), 8 * P) == "ENOMEM"
    assert not vma_at(k, 0).vm_flags & VM_LOCKED
    assert vma_at(k, 6).vm_flags & VM_LOCKED
    check(k)


def test_ml1_start_in_hole_changes_nothing(k):
    mapx(k, 2, 2)
    before = snapshot(k)
    assert errno_of(k.mlock, 1, addr(0), 4 * P) == "ENOMEM"
    assert snapshot(k) == before
    assert draw(k, what="pte", n=4) == "..--"
    check(k)


def test_mlock_rounds_start_down_without_error(k):
    mapx(k, 0, 3)
    assert k.mlock(1, addr(1) + 100, 10) == 0
    assert draw(k, n=4) == "ABC."
    assert [bool(vma_at(k, p).vm_flags & VM_LOCKED) for p in range(3)] == [False, True, False]
    assert draw(k, what="pte", n=4) == "-A-."
    check(k)


def test_ml4_range_overflow_is_einval(k):
    mapx(k, 0, 2)
    before = snapshot(k)
    assert errno_of(k.mlock, 1, addr(0), U64 - P) == "EINVAL"
    assert snapshot(k) == before
    check(k)


def test_ml5_split_refused_is_eagain():
    k = new_kernel(max_map_count=1)
    mapx(k, 0, 4)
    before = snapshot(k)
    assert errno_of(k.mlock, 1, addr(1), P) == "EAGAIN"
    assert errno_of(k.mlock, 1, addr(0), P) == "EAGAIN"
    assert snapshot(k) == before
    assert draw(k, what="pte", n=4) == "----"
    # madvise_behavior maps the split's ENOMEM to EAGAIN as well
    assert errno_of(k.madvise, 1, addr(1), P, "random") == "EAGAIN"
    assert snapshot(k) == before
    check(k)


# ======================================================== errors after a partial change

def test_mmap_fixed_growsdown_file_is_einval_after_the_unmap(k):
    # do_mmap_pgoff step 19: VM_GROWSDOWN on a file mapping is refused after
    # the MAP_FIXED unmap (step 14), so the old mapping is gone: a hole.
    k.declare_file("f", 4 * P)
    mapx(k, 0, 3)
    write(k, 0, 3, "old")
    assert errno_of(k.mmap, 1, addr(1), P, "r--", ["private", "fixed", "growsdown"],
                    file="f") == "EINVAL"
    assert draw(k, n=4) == "A.B."
    assert read(k, 0) == ["old"] and read(k, 2) == ["old"]
    assert k.touch(1, addr(1), P, "r").result == "SIGSEGV"
    check(k)


def test_mmap_fixed_split_refused_is_enomem_and_changes_nothing():
    # at map_count == max the count check passes (strict >) but the unmap's
    # split_vma refuses (>=): ENOMEM, nothing unmapped
    k = new_kernel(max_map_count=3)
    mapx(k, 0, 4)
    mapx(k, 6, 1)
    mapx(k, 8, 1)
    write(k, 0, 4, "old")
    before = snapshot(k)
    assert errno_of(mapx, k, 1, 2, "r--") == "ENOMEM"
    assert snapshot(k) == before
    assert read(k, 0, 4) == ["old"] * 4
    check(k)


def test_mprotect_eacces_keeps_earlier_vmas_changed(k):
    # 0123
    # AABB   anon r-- / shared mapping of a read-only fd
    # mprotect([0,4), rw-): [0,2) becomes rw-, then EACCES on [2,4)
    k.declare_file("f", 2 * P)
    mapx(k, 0, 2, "r--")
    _mmap_readonly_fd(k, 2, 2, "r--", True)
    assert errno_of(k.mprotect, 1, addr(0), 4 * P, "rw-") == "EACCES"
    assert prot_of(k, 0) == VM_READ | VM_WRITE
    assert prot_of(k, 2) == VM_READ
    assert vma_at(k, 0).vm_flags & VM_ACCOUNT      # gained on becoming writable
    check(k)


def test_mlock_of_prot_none_is_efault_but_stays_locked(k):
    # make_pages_present -> get_user_pages needs VM_READ: EFAULT; the flag
    # and locked_vm changes are kept.
    mapx(k, 0, 2, "---")
    assert errno_of(k.mlock, 1, addr(0), 2 * P) == "EFAULT"
    assert vma_at(k, 0).vm_flags & VM_LOCKED
    assert k.mm(1).locked_vm == 2
    assert draw(k, what="pte", n=2) == "--"
    check(k)


def test_madvise_willneed_ebadf_stops_the_loop(k):
    # 012345
    # AABBCC   file / anon / file: WILLNEED reads ahead for the first file
    #          VMA, then EBADF at the anonymous one; the last is not reached
    k.declare_file("f", 2 * P)
    k.declare_file("g", 2 * P)
    k.mmap(1, addr(0), 2 * P, "r--", ["private", "fixed"], file="f")
    mapx(k, 2, 2)
    k.mmap(1, addr(4), 2 * P, "r--", ["private", "fixed"], file="g")
    assert errno_of(k.madvise, 1, addr(0), 6 * P, "willneed") == "EBADF"
    assert k.ctx.files["f"].nrpages == 2
    assert k.ctx.files["g"].nrpages == 0
    check(k)
