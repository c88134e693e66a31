"""The modern profile (Linux 6.18 as observed) against the 2.6.7 default,
rule by rule. Each test names the item of docs/linux-6.18-observed.md it
pins and, where the eras differ, asserts both sides, so flipping a rule in
either profile fails a test. Drawings as in conftest: one character per
page of the window."""

from __future__ import annotations

import pytest

from conftest import (P, VM_ACCOUNT, addr, check, draw, errno_of, mapx, new_kernel, pfn_at,
                      pgoff, read, vma_at, write)
from rmaplab.asm.page import MMAP_BASE, PMD_SIZE, TASK_SIZE
from rmaplab.config import RULES, Config, ConfigError
from rmaplab.show.maps import maps_text


@pytest.fixture
def m():
    """A modern kernel with pid 1."""
    return new_kernel(profile="modern")


def kernels():
    return [pytest.param("2.6.7", id="2.6.7"), pytest.param("modern", id="modern")]


# -- the profile itself -------------------------------------------------------------------

def test_profile_sets_every_rule_and_an_explicit_value_wins():
    old, new = Config(), Config(profile="modern")
    for name, rule in RULES.items():
        assert getattr(old, name) == rule.old and getattr(new, name) == rule.modern, name
        assert rule.old != rule.modern, f"{name} does not differ between the profiles"
    mixed = Config(profile="modern", scheme="anon_vma", fault_around_pages=0)
    assert mixed.differences() == {"scheme": "anon_vma", "fault_around_pages": 0}
    assert mixed.mmap_layout == "top-down"
    assert new.extra["avc_merge_rule"] == "2025"


def test_bad_profile_and_impossible_mixes_are_config_errors():
    with pytest.raises(ConfigError, match="profile"):
        Config(profile="6.18")
    with pytest.raises(ConfigError, match="mremap_lookup_first"):
        Config(mremap_multi_vma=True)


# -- layout --------------------------------------------------------------------------------

def test_top_down_layout_below_mmap_base_and_thp_alignment(m):
    a = m.mmap(1, None, 3 * P, "rw-", ["private", "anonymous"])
    assert a == MMAP_BASE - 3 * P
    b = m.mmap(1, None, P, "rw-", ["private", "anonymous"])
    assert b == a - P and len(m.mm(1).mmap) == 1            # adjacent below: merged
    big = m.mmap(1, None, PMD_SIZE, "rw-", ["private", "anonymous"])
    assert big % PMD_SIZE == 0 and big + PMD_SIZE <= b
    old = new_kernel()
    assert old.mmap(1, None, 3 * P, "rw-", ["private", "anonymous"]) == 0x2AAAAAAAB000


def test_task_size_is_one_page_below_2_to_47_in_both_profiles():
    assert TASK_SIZE == (1 << 47) - P
    for prof in ("2.6.7", "modern"):
        k = new_kernel(profile=prof)
        assert errno_of(k.mmap, 1, (1 << 47) - P, P, "rw-", ["private", "anonymous", "fixed"]) == "ENOMEM"


# -- item 4: fork children refuse merges next to inherited faulted VMAs --------------------

@pytest.mark.parametrize("prof", kernels())
def test_item4_fork_child_refuses_merge_next_to_inherited_faulted_vma(prof):
    k = new_kernel(profile=prof)
    mapx(k, 0, 2)
    write(k, 0, 2)
    k.fork(1, 2)
    for pid in (1, 2):
        mapx(k, 2, 2, pid=pid)
    # 0123
    # AAAA  parent: the new mapping merges
    assert draw(k, 1, n=4) == "AAAA"
    # AABB  modern child: its VMA has an anon_vma_chain of two entries
    assert draw(k, 2, n=4) == ("AABB" if prof == "modern" else "AAAA")
    check(k)


# -- item 5: VM_ACCOUNT and mprotect ------------------------------------------------------------

@pytest.mark.parametrize("prof", kernels())
def test_item5_unwritten_rw_made_readonly_drops_account_only_in_modern(prof):
    k = new_kernel(profile=prof)
    mapx(k, 0, 2)
    assert k.mprotect(1, addr(0), 2 * P, "r--") == 0
    mapx(k, 2, 2, "r--")
    if prof == "modern":
        assert not vma_at(k, 0).vm_flags & VM_ACCOUNT
        assert draw(k, n=4) == "AAAA"
    else:
        assert vma_at(k, 0).vm_flags & VM_ACCOUNT
        assert draw(k, n=4) == "AABB"
    check(k)


@pytest.mark.parametrize("prof", kernels())
def test_item5_written_region_keeps_account_and_stays_apart(prof):
    k = new_kernel(profile=prof)
    mapx(k, 0, 2)
    write(k, 0)
    k.mprotect(1, addr(0), 2 * P, "r--")
    mapx(k, 2, 2, "r--")
    assert vma_at(k, 0).vm_flags & VM_ACCOUNT
    assert draw(k, n=4) == "AABB"
    k.mprotect(1, addr(0), 2 * P, "rw-")                     # adding write sets ac again
    assert vma_at(k, 0).vm_flags & VM_ACCOUNT
    check(k)


# -- items 8-10: faults and fork -------------------------------------------------------------

@pytest.mark.parametrize("prof", kernels())
def test_item8_fault_around_maps_16_page_window_on_read(prof):
    k = new_kernel(profile=prof)
    k.declare_file("f", 40 * P)
    k.mmap(1, addr(0), 40 * P, "r--", ["private", "fixed"], file="f")
    assert read(k, 20) == ["f:20"]
    # window: page 20 rounded down to 16 → [16, 32)
    want = "-" * 16 + "f" * 16 + "-" * 8 if prof == "modern" else "-" * 20 + "f" + "-" * 19
    assert draw(k, what="pte", n=40) == want
    check(k)


def test_item8_write_faults_never_fault_around(m):
    m.declare_file("f", 40 * P)
    m.mmap(1, addr(0), 40 * P, "rw-", ["private", "fixed"], file="f")
    write(m, 20)
    assert draw(m, what="pte", n=40) == "-" * 20 + "A" + "-" * 19
    check(m)


def test_item8_fault_around_is_clipped_to_the_vma_and_eof(m):
    m.declare_file("f", 10 * P + 100)                         # 11 pages, the last partial
    m.declare_file("g", 40 * P)
    m.mmap(1, addr(3), 20 * P, "r--", ["private", "fixed"], file="f")
    read(m, 5)
    # the window starts at the VMA (page 3), runs 16 pages, and EOF (11
    # pages of file) clips it; seen on 6.18 by rmaplab conform
    assert draw(m, what="pte", n=24) == "..." + "f" * 11 + "-" * 9 + "."
    m.mmap(1, addr(40), 30 * P, "r--", ["private", "fixed"], file="g")
    read(m, 43)
    # a window starting at the VMA runs its full 16 pages: [40, 56)
    assert draw(m, what="pte", n=30, base=addr(40)) == "f" * 16 + "-" * 14
    read(m, 57)
    # page 57: window [48, 64), the pages not mapped yet get filled
    assert draw(m, what="pte", n=30, base=addr(40)) == "f" * 24 + "-" * 6
    check(m)


def test_item8_shmem_fault_around_maps_only_pages_it_holds(m):
    s = m.mmap(1, addr(0), 16 * P, "rw-", ["shared", "anonymous", "fixed"])
    write(m, 3)
    m.fork(1, 2)                        # no anon_vma: the child's ptes are not copied
    assert draw(m, 2, "pte", 16) == "-" * 16
    assert read(m, 8, pid=2) == [None]
    assert draw(m, 2, "pte", 16) == "---F----F-------"
    assert s == addr(0)
    check(m)


@pytest.mark.parametrize("prof", kernels())
def test_item9_10_fork_copies_ptes_only_of_vmas_with_an_anon_vma(prof):
    k = new_kernel(profile=prof)
    mapx(k, 0, 2, "r--")
    read(k, 0, 2)                                             # zero pages, no anon_vma
    mapx(k, 3, 2)
    read(k, 3)
    write(k, 4)                                               # anon_vma: copied whole
    k.fork(1, 2)
    assert draw(k, 2, "pte", 5) == ("--.za" if prof == "modern" else "zz.za")
    check(k)


# -- items 13-16: mremap ----------------------------------------------------------------------

@pytest.mark.parametrize("prof", kernels())
def test_item14_pure_move_across_vmas_and_holes(prof):
    k = new_kernel(profile=prof)
    mapx(k, 0, 2)
    mapx(k, 3, 1, "r--")
    write(k, 0, 2, "x")
    got = (errno_of(k.mremap, 1, addr(0), 5 * P, 5 * P, ["maymove", "fixed"], addr(8))
           if prof == "2.6.7" else k.mremap(1, addr(0), 5 * P, 5 * P, ["maymove", "fixed"], addr(8)))
    if prof == "2.6.7":
        assert got == "EFAULT" and draw(k, n=13) == "AA.B........."
    else:
        # 0123456789012
        # ........AA.B.   each VMA stays a VMA of its own, with the gap between them
        assert got == addr(8) and draw(k, n=13) == "........AA.B."
        assert read(k, 8, 2) == ["x", "x"]
    check(k)


@pytest.mark.parametrize("prof", kernels())
def test_item14_shrink_checks_the_vma_first(prof):
    k = new_kernel(profile=prof)
    mapx(k, 0, 2)
    mapx(k, 3, 3)
    # a shrink across VMAs unmaps the tail, cutting the VMA it ends in
    assert k.mremap(1, addr(0), 5 * P, P, []) == addr(0)
    assert draw(k, n=6) == "A....B"
    # a pure shrink of an unmapped range
    if prof == "modern":
        assert errno_of(k.mremap, 1, addr(8), 2 * P, P, []) == "EFAULT"
    else:
        assert k.mremap(1, addr(8), 2 * P, P, []) == addr(8)
    # growth across VMAs; equal sizes is a no-op
    mapx(k, 1, 1, "r--")
    assert errno_of(k.mremap, 1, addr(0), 2 * P, 3 * P, ["maymove"]) == "EFAULT"
    assert k.mremap(1, addr(0), P, P, ["maymove"]) == addr(0)
    check(k)


@pytest.mark.parametrize("prof", kernels())
def test_item6_13_growth_in_place_merges_with_the_next_vma_in_modern(prof):
    k = new_kernel(profile=prof)
    mapx(k, 0, 2)
    mapx(k, 4, 2)
    assert k.mremap(1, addr(0), 2 * P, 4 * P, []) == addr(0)
    assert draw(k, n=6) == ("AAAAAA" if prof == "modern" else "AAAABB")
    check(k)


@pytest.mark.parametrize("prof", kernels())
def test_item15_dontunmap(prof):
    k = new_kernel(profile=prof)
    mapx(k, 0, 2)
    write(k, 0, 2, "d")
    if prof == "2.6.7":
        assert errno_of(k.mremap, 1, addr(0), 2 * P, 2 * P, ["maymove", "dontunmap"], addr(8)) == "EINVAL"
        return
    assert errno_of(k.mremap, 1, addr(0), 2 * P, 4 * P, ["maymove", "dontunmap"], addr(8)) == "EINVAL"
    assert errno_of(k.mremap, 1, addr(0), 2 * P, 2 * P, ["dontunmap"], addr(8)) == "EINVAL"
    assert k.mremap(1, addr(0), 2 * P, 2 * P, ["maymove", "dontunmap", "fixed"], addr(8)) == addr(8)
    # 0123456789
    # AA......BB    the source stays, empty, without anon_vma; it keeps VM_ACCOUNT
    assert draw(k, n=10) == "AA......BB" and draw(k, what="pte", n=10) == "--......AA"
    src = vma_at(k, 0)
    assert src.anon_vma is None and src.vm_flags & VM_ACCOUNT
    assert pgoff(k, 8) == 0                                   # the destination keeps the old pgoff
    assert read(k, 0, 2) == [None, None] and read(k, 8, 2) == ["d", "d"]
    check(k)


@pytest.mark.parametrize("prof", kernels())
def test_item16_old_len_0(prof):
    k = new_kernel(profile=prof)
    mapx(k, 0, 2)
    write(k, 0)
    if prof == "modern":
        assert errno_of(k.mremap, 1, addr(0), 0, 2 * P, ["maymove"]) == "EINVAL"
    else:
        dup = k.mremap(1, addr(0), 0, 2 * P, ["maymove"])      # a new, unrelated mapping
        assert dup != addr(0) and k.touch(1, dup, P, "r").read == [None]
    k.mmap(1, addr(4), 2 * P, "rw-", ["shared", "anonymous", "fixed"])
    write(k, 4, 1, "s")
    view = k.mremap(1, addr(4), 0, 2 * P, ["maymove"])        # both eras: a second view
    assert k.touch(1, view, P, "r").read == ["s"]
    check(k)


# -- items 17, 18: files and descriptors ------------------------------------------------------

@pytest.mark.parametrize("prof", kernels())
def test_item17_file_vmas_merge_only_through_one_open_file_description(prof):
    k = new_kernel(profile=prof)
    k.declare_file("f", 8 * P)
    k.mmap(1, addr(0), 2 * P, "r--", ["private", "fixed"], file="f", open="r")
    k.mmap(1, addr(2), 2 * P, "r--", ["private", "fixed"], file="f", offset=2 * P, open="r")
    k.mmap(1, addr(4), 2 * P, "r--", ["private", "fixed"], file="f", offset=4 * P)
    assert draw(k, n=6) == "AAAABB"
    # one file behind both descriptions: one page cache
    k.mmap(1, addr(8), P, "r--", ["private", "fixed"], file="f", offset=2 * P)
    assert read(k, 2) == read(k, 8) == ["f:2"] and pfn_at(k, 2) == pfn_at(k, 8)
    check(k)


def test_item18_descriptor_modes_give_eacces(m):
    m.declare_file("f", 4 * P)
    assert errno_of(m.mmap, 1, addr(0), P, "rw-", ["shared", "fixed"], file="f", open="r") == "EACCES"
    m.mmap(1, addr(0), P, "r--", ["shared", "fixed"], file="f", open="r")
    assert maps_text(m.mm(1)).split()[1] == "r--s"           # maps still prints s
    assert errno_of(m.mprotect, 1, addr(0), P, "rw-") == "EACCES"
    m.mmap(1, addr(2), P, "rw-", ["private", "fixed"], file="f", open="r")
    write(m, 2, 1, "cow")
    assert read(m, 2) == ["cow"]
    assert errno_of(m.mmap, 1, addr(4), P, "r--", ["private", "fixed"], file="f", open="w") == "EACCES"
    check(m)


# -- item 20: errno -----------------------------------------------------------------------------

@pytest.mark.parametrize("prof", kernels())
def test_item20_errnos_that_differ(prof):
    k = new_kernel(profile=prof)
    modern = prof == "modern"
    mapx(k, 0, 2)
    anon = ["private", "anonymous"]
    if modern:
        assert errno_of(k.mmap, 1, addr(4), 0, "rw-", anon) == "EINVAL"
        assert errno_of(k.mmap, 1, addr(1), P, "rw-", anon + ["fixed_noreplace"]) == "EEXIST"
        assert errno_of(k.mmap, 1, addr(4) + 1, P, "rw-", anon + ["fixed_noreplace"]) == "EINVAL"
        assert errno_of(k.mmap, 1, None, TASK_SIZE + P, "rw-", anon) == "ENOMEM"
    else:
        assert k.mmap(1, addr(4), 0, "rw-", anon) == addr(4)
        # not a known bit in 2.6.7: a hint, placed elsewhere
        assert k.mmap(1, addr(1), P, "rw-", anon + ["fixed_noreplace"]) != addr(1)
        assert errno_of(k.mmap, 1, None, TASK_SIZE + P, "rw-", anon) == "EINVAL"
    assert draw(k, n=2) == "AA"
    check(k)


# -- MADV_COLD / MADV_PAGEOUT and the reclaim event --------------------------------------------

@pytest.mark.parametrize("prof", kernels())
def test_madvise_pageout_reclaims_pages_mapped_once(prof):
    k = new_kernel(profile=prof)
    mapx(k, 0, 3)
    write(k, 0, 3, "p")
    k.fork(1, 2)
    write(k, 2, 1, "own", pid=1)                              # page 2: the parent's alone
    if prof == "2.6.7":
        assert errno_of(k.madvise, 1, addr(0), 3 * P, "pageout") == "EINVAL"
        return
    assert k.madvise(1, addr(0), 3 * P, "cold") == 0
    assert k.madvise(1, addr(0), 3 * P, "pageout") == 0
    # 012
    # aas   pages 0-1 are shared with the child: left alone
    assert draw(k, what="pte", n=3) == "aas"
    assert read(k, 0, 3) == ["p", "p", "own"]
    k.mlock(1, addr(0), P)
    assert errno_of(k.madvise, 1, addr(0), P, "pageout") == "EINVAL"
    check(k)


@pytest.mark.parametrize("prof", kernels())
def test_reclaim_event_frees_even_one_or_two_resident_pages(prof):
    k = new_kernel(profile=prof)
    mapx(k, 0, 2)
    write(k, 0, 2, "r")
    assert k.reclaim(2) == 2
    assert draw(k, what="pte", n=2) == "ss"
    assert read(k, 0, 2) == ["r", "r"]
    check(k)


@pytest.mark.parametrize("prof", kernels())
def test_madvise_willneed_on_anonymous_memory(prof):
    k = new_kernel(profile=prof)
    mapx(k, 0, 2)
    if prof == "modern":
        assert k.madvise(1, addr(0), 2 * P, "willneed") == 0
    else:
        assert errno_of(k.madvise, 1, addr(0), 2 * P, "willneed") == "EBADF"


@pytest.mark.parametrize("prof", kernels())
def test_replay_maps_offset_follows_the_profile(prof, tmp_path, capsys):
    from rmaplab.cli.main import main
    t = tmp_path / "t.jsonl"
    t.write_text('{"op": "spawn", "pid": 1}\n'
                 f'{{"op": "mmap", "pid": 1, "addr": {addr(0)}, "len": 4096, "prot": "rw-", '
                 '"flags": ["private", "anonymous", "fixed"]}\n')
    assert main(["replay", str(t), "--maps", "--quiet", "--profile", prof]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    offset = line.split()[2]
    assert offset == ("00000000" if prof == "modern" else f"{addr(0):08x}")



@pytest.mark.parametrize("prof", kernels())
def test_madvise_and_mlock_merge_in_modern_and_only_split_in_2_6_7(prof):
    k = new_kernel(profile=prof)
    mapx(k, 0, 6)
    assert k.madvise(1, addr(2), 2 * P, "random") == 0
    assert draw(k, n=6) == "AABBCC"
    assert k.madvise(1, addr(2), 2 * P, "normal") == 0
    # 2.6.7 never merges back; modern's vma_modify_flags does
    assert draw(k, n=6) == ("AAAAAA" if prof == "modern" else "AABBCC")
    k.mlock(1, addr(0), 2 * P)
    k.munlock(1, addr(0), 2 * P)
    assert draw(k, n=6) == ("AAAAAA" if prof == "modern" else "AABBCC")
    # advice that changes nothing splits in 2.6.7 only
    assert k.madvise(1, addr(4), P, "normal") == 0
    assert draw(k, n=6) == ("AAAAAA" if prof == "modern" else "AABBCD")
    check(k)


@pytest.mark.parametrize("prof", kernels())
def test_cow_fault_beyond_eof_leaves_an_anon_vma_in_modern(prof):
    k = new_kernel(profile=prof)
    k.declare_file("f", P)
    k.mmap(1, addr(0), 3 * P, "rw-", ["private", "fixed"], file="f")
    assert k.touch(1, addr(2), P, "w", "x").result == "SIGBUS"
    assert (vma_at(k, 0).anon_vma is not None) == (prof == "modern")
    check(k)


def test_item8_a_window_cut_to_one_page_by_eof_maps_nothing(m):
    m.declare_file("f", 3 * P)
    m.mmap(1, addr(14), 6 * P, "r--", ["private", "fixed"], file="f")
    # fault at page 17 (file page 3, beyond EOF): window [16, 20), EOF cuts
    # it to page 16 alone, which is not mapped (observed on 6.18)
    assert m.touch(1, addr(17), P, "r").result == "SIGBUS"
    assert draw(m, what="pte", n=6, base=addr(14)) == "------"
    m.declare_file("g", 4 * P)
    m.mmap(1, addr(46), 8 * P, "r--", ["private", "fixed"], file="g")
    # fault at page 51 (file page 5): window [48, 54) cut to pages 48-49
    # (file pages 2-3): both mapped
    assert m.touch(1, addr(51), P, "r").result == "SIGBUS"
    assert draw(m, what="pte", n=8, base=addr(46)) == "--ff----"
    check(m)


@pytest.mark.parametrize("prof", kernels())
def test_noreserve_is_a_vma_flag_that_blocks_merges_in_modern(prof):
    k = new_kernel(profile=prof)
    mapx(k, 0, 2, "r--", extra=["noreserve"])
    mapx(k, 2, 2, "r--")
    assert draw(k, n=4) == ("AABB" if prof == "modern" else "AAAA")
    check(k)


@pytest.mark.parametrize("prof", kernels())
def test_populate_and_mlock_fault_in_every_kind_of_vma_in_modern(prof):
    k = new_kernel(profile=prof)
    k.declare_file("f", 4 * P)
    mapx(k, 0, 2, extra=["populate"])                         # private anonymous rw-
    mapx(k, 3, 2, "r--", extra=["populate"])                  # private anonymous r--
    k.mmap(1, addr(6), 2 * P, "r--", ["private", "fixed", "populate"], file="f")
    if prof == "modern":
        # write faults for private writable memory, read faults otherwise
        assert draw(k, what="pte", n=8) == "AA.zz.ff"
    else:                                 # 2.6.11 populates only shared file mappings
        assert draw(k, what="pte", n=8) == "--.--.--"
    mapx(k, 9, 2, "---")
    if prof == "modern":
        # mlock locks the range first, then faults; PROT_NONE cannot be faulted: ENOMEM
        assert errno_of(k.mlock, 1, addr(9), 2 * P) == "ENOMEM"
        assert vma_at(k, 9).vm_flags & 0x2000
        k.mprotect(1, addr(9), 2 * P, "rw-")                  # locked, now writable: COW now
        assert draw(k, what="pte", n=2, base=addr(9)) == "AA"
    check(k)
