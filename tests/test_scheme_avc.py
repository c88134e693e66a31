"""The anon_vma_chain scheme (2.6.34+, reuse rule of 3.19 in its 2022 form,
merge rules of 2011 and 2025).

Walk costs against 2.6.7's anon_vma on the same fork fan-out (§5.1), the
bounded hierarchy of a constantly forking chain with and without the reuse
rule (§5.4), the merge rules (§6 items 3, 7 and 10, and the three-way
test), page_move_anon_rmap, swap-in to the root, the scheme's own checks
and sizes, and the generic checks (invariants, rmap completeness, data,
leaks) through fork/COW/mprotect/mremap/munmap/exit and under tiny memory.

Windows are drawn as in conftest.py; addresses are pages of the window.
"""

from __future__ import annotations

import pytest

from conftest import P, addr, check, mapx, new_kernel, pfn_at, read, spans, vma_at, write
from rmaplab.check import check_no_leaks, check_rmap_complete, validate
from rmaplab.config import Config
from rmaplab.errors import ConfigError, InvariantError
from rmaplab.kernel import Kernel
from rmaplab.mm.vmscan import shrink_list
from rmaplab.rmap.anon_vma_chain import AnonVmaChainScheme


def avc(**cfg) -> Kernel:
    return new_kernel(scheme="anon_vma_chain", **cfg)


def rule(name: str, **cfg) -> Kernel:
    return avc(extra={"avc_merge_rule": name}, **cfg)


def visited(k: Kernel, pfn: int) -> tuple[int, list]:
    """(AVCs or VMAs visited, sorted (pid, addr) found) by one rmap walk."""
    before = k.stat.rmap_vmas_visited
    found = sorted((mm.owner, a) for mm, a in k.scheme.rmap_walk(pfn))
    return k.stat.rmap_vmas_visited - before, found


def av_of(k: Kernel, pfn: int):
    """The anon_vma a page's mapping names (anon_vma_chain kernels)."""
    return k.scheme.anon_vmas[int(k.mem.mapping[pfn]) >> 1]


def chain(vma) -> list:
    return [a.anon_vma for a in vma.rmap]


def swap_out(k: Kernel, pfn: int) -> None:
    k.scheme.page_referenced(pfn)          # clear the young bits and PG_referenced
    assert shrink_list(k.ctx, [pfn]) == 1


def all_exit(k: Kernel) -> None:
    for pid in list(k.pids()):
        k.exit(pid)
    check_no_leaks(k)
    if isinstance(k.scheme, AnonVmaChainScheme):
        s = k.scheme
        assert s.anon_vmas == {} and s.n_avc == 0 and not s.chained
        assert k.stat.avc_alloc == k.stat.avc_free
        assert k.stat.anon_vma_alloc == k.stat.anon_vma_free


def test_registered_and_options():
    k = avc()
    assert isinstance(k.scheme, AnonVmaChainScheme) and k.scheme.has_anon_vma
    assert k.scheme.merge_rule == "2025" and k.scheme.reuse and k.scheme.tree_walk
    with pytest.raises(ConfigError):
        avc(extra={"avc_merge_rule": "2019"})
    with pytest.raises(ConfigError):
        avc(extra={"avc_walk": "skiplist"})


# -- structures ------------------------------------------------------------------------------

def test_prepare_fork_cow_unlink_structures():
    # 0123
    # AAA.   written: one root anon_vma R (num_children 1 for itself), one AVC
    k = avc()
    mapx(k, 0, 3)
    write(k, 0, 3, "a")
    v1 = vma_at(k, 0)
    root = v1.anon_vma
    assert chain(v1) == [root] and root.root is root and root.parent is root
    assert (root.num_children, root.num_active_vmas) == (1, 1)
    # fork: the child clones [R] and gets its own C (root R, parent R)
    k.fork(1, 2)
    v2 = vma_at(k, 0, pid=2)
    c = v2.anon_vma
    assert c is not root and c.root is root and c.parent is root
    assert chain(v2) == [root, c]
    assert (root.num_children, root.num_active_vmas) == (2, 1)
    assert (c.num_children, c.num_active_vmas) == (0, 1)
    assert len(root.rb) == 2 and len(c.rb) == 1
    # a COW in the child puts the new page in C; the shared ones stay in R
    write(k, 1, 1, "b", pid=2)
    assert av_of(k, pfn_at(k, 1, pid=2)) is c
    assert av_of(k, pfn_at(k, 0, pid=2)) is root
    check(k)
    # the parent's exit leaves R alive (the child's AVC is in its tree)
    k.exit(1)
    assert root.id in k.scheme.anon_vmas and root.num_active_vmas == 0 and len(root.rb) == 1
    check(k)
    assert read(k, 0, 3, pid=2) == ["a", "b", "a"]
    # the child's exit frees C and then R (root last)
    freed = k.stat.anon_vma_free
    k.exit(2)
    assert k.stat.anon_vma_free - freed == 2
    all_exit(k)


def test_split_clones_the_chain_and_merge_back_unlinks_it():
    # 012345
    # AAAAAA   written, forked; the child mprotects pages 2-3: three VMAs,
    # AABBCC   each with the chain [R, C]; restoring merges them back
    k = avc()
    mapx(k, 0, 6)
    write(k, 0, 6, "a")
    k.fork(1, 2)
    avcs = k.scheme.n_avc
    k.mprotect(2, addr(2), 2 * P, "r--")
    assert spans(k, 2) == [(0, 2, 0), (2, 4, 2), (4, 6, 4)]
    vs = k.mm(2).mmap
    assert all(v.anon_vma is vs[0].anon_vma and chain(v) == chain(vs[0]) for v in vs)
    assert vs[0].anon_vma.num_active_vmas == 3
    assert k.scheme.n_avc == avcs + 4
    check(k)
    k.mprotect(2, addr(2), 2 * P, "rw-")
    assert spans(k, 2) == [(0, 6, 0)]
    assert k.scheme.n_avc == avcs and vma_at(k, 0, pid=2).anon_vma.num_active_vmas == 1
    check(k)
    all_exit(k)


def test_check_catches_corruption():
    k = avc()
    mapx(k, 0, 2)
    write(k, 0, 2, "a")
    k.fork(1, 2)
    validate(k)
    root = vma_at(k, 0).anon_vma
    root.num_children += 1
    with pytest.raises(InvariantError, match="num_children"):
        k.scheme.check()
    root.num_children -= 1
    child = vma_at(k, 0, pid=2)
    lost = child.rmap.pop(0)                       # drop the child's link to R
    with pytest.raises(InvariantError):
        k.scheme.check()
    child.rmap.insert(0, lost)
    k.mem.mapping[pfn_at(k, 0, pid=2)] = (child.anon_vma.id << 1) | 1   # shared page in C
    with pytest.raises(InvariantError, match="chain lacks"):
        validate(k)


def test_metadata_bytes():
    # The per-VMA fields (anon_vma, anon_vma_chain) count in every VMA.
    k = avc()
    assert k.scheme.metadata_bytes() == {"i386": 0, "x86_64": 0}
    mapx(k, 0, 2)
    write(k, 0, 1, "a")
    # 1 AVC, 1 anon_vma, 1 VMA: x86_64 64 + 96 + 24; i386 24 + 12 + 12
    assert k.scheme.metadata_bytes() == {"i386": 48, "x86_64": 184}
    mapx(k, 10, 1)
    assert k.scheme.metadata_bytes() == {"i386": 60, "x86_64": 208}
    k.fork(1, 2)
    # 3 AVCs, 2 anon_vmas, 4 VMAs
    assert k.scheme.metadata_bytes() == {"i386": 3 * 24 + 2 * 12 + 4 * 12,
                                         "x86_64": 3 * 64 + 2 * 96 + 4 * 24}


# -- walk costs (§5.1) -------------------------------------------------------------------------

def fan_out(scheme: str, n: int, pages: int = 4) -> Kernel:
    """A parent writes ``pages`` pages and forks ``n`` children, each of
    which writes (COWs) every page."""
    k = new_kernel(scheme=scheme)
    mapx(k, 0, pages)
    write(k, 0, pages, "parent")
    for c in range(2, n + 2):
        k.fork(1, c)
        write(k, 0, pages, f"child{c}", pid=c)
    return k


def test_fan_out_walk_visits_one_avc_for_a_child_page_against_all_vmas_under_anon_vma():
    n = 20
    old, new = fan_out("anon_vma", n), fan_out("anon_vma_chain", n)
    for k in (old, new):
        check(k)
    child_pfn_old, child_pfn_new = pfn_at(old, 2, pid=7), pfn_at(new, 2, pid=7)
    cost_old, found_old = visited(old, child_pfn_old)
    cost_new, found_new = visited(new, child_pfn_new)
    assert found_old == found_new == [(7, addr(2))]
    assert cost_old == n + 1                  # the whole list: parent and every child
    assert cost_new == 1                      # the child's own anon_vma holds one AVC
    # the parent's pages stay in the root, whose tree holds every VMA: the
    # 1/N of pages that still cost O(N)
    cost_root, found_root = visited(new, pfn_at(new, 2))
    assert found_root == [(1, addr(2))] and cost_root == n + 1
    # each walk takes the root's lock once
    locks = new.stat.lock_anon_vma
    visited(new, child_pfn_new)
    assert new.stat.lock_anon_vma == locks + 1
    for c in (2, 9, n + 1):
        assert read(new, 0, 4, pid=c) == [f"child{c}"] * 4
    all_exit(old)
    all_exit(new)


def test_interval_tree_skips_what_the_2634_list_visits():
    # After the child splits its VMA, the shared root tree holds three AVCs
    # of the child's; a page of [0,2) is covered by one of them. The tree
    # query returns the parent's VMA and that one; the 2.6.34 list visits
    # all four AVCs and skips two.
    costs = {}
    for walk in ("tree", "list"):
        k = avc(extra={"avc_walk": walk})
        mapx(k, 0, 6)
        write(k, 0, 6, "a")
        k.fork(1, 2)
        k.mprotect(2, addr(2), 2 * P, "r--")
        skipped = k.stat.rmap_vmas_skipped
        cost, found = visited(k, pfn_at(k, 0))
        assert found == [(1, addr(0)), (2, addr(0))]
        costs[walk] = (cost, k.stat.rmap_vmas_skipped - skipped)
        check(k)
    assert costs == {"tree": (2, 0), "list": (4, 2)}


def test_page_move_anon_rmap_on_reuse():
    # The parent writes, forks three children and COWs its page; child 2
    # writes: the old page is now its alone, so do_wp_page reuses it and
    # moves it from the root to the child's anon_vma.
    for scheme in ("anon_vma", "anon_vma_chain"):
        k = new_kernel(scheme=scheme)
        mapx(k, 0, 1)
        write(k, 0, 1, "p")
        for c in (2, 3, 4):
            k.fork(1, c)
        write(k, 0, 1, "p1")                      # parent copies
        k.exit(3)
        k.exit(4)
        pfn = pfn_at(k, 0, pid=2)
        before, _ = visited(k, pfn)
        reuse = k.stat.fault_wp_reuse
        write(k, 0, 1, "c2", pid=2)
        assert k.stat.fault_wp_reuse == reuse + 1 and pfn_at(k, 0, pid=2) == pfn
        after, found = visited(k, pfn)
        assert found == [(2, addr(0))]
        if scheme == "anon_vma_chain":
            assert av_of(k, pfn) is vma_at(k, 0, pid=2).anon_vma
            assert k.stat.page_move_anon_rmap == 1
            assert (before, after) == (2, 1)          # root tree (parent, child 2) → own
        else:
            assert (before, after) == (2, 2)          # one list for both
        check(k)
        assert read(k, 0, pid=2) == ["c2"] and read(k, 0) == ["p1"]
        all_exit(k)


def test_swapped_in_page_goes_to_the_root():
    k = avc()
    mapx(k, 0, 2)
    write(k, 0, 2, "p")
    k.fork(1, 2)
    write(k, 0, 1, "c", pid=2)                     # child-private page in C
    pfn = pfn_at(k, 0, pid=2)
    child = vma_at(k, 0, pid=2)
    assert av_of(k, pfn) is child.anon_vma
    swap_out(k, pfn)
    assert not k.mm(2).pgd.get(addr(0) >> 12) & 1
    check(k)
    assert read(k, 0, pid=2) == ["c"]              # do_swap_page: not known exclusive
    back = pfn_at(k, 0, pid=2)
    assert av_of(k, back) is child.anon_vma.root
    cost, found = visited(k, back)
    assert found == [(2, addr(0))] and cost == 2  # the root tree: parent and child
    check(k)
    all_exit(k)


# -- the reuse rule (§5.4) --------------------------------------------------------------------

def fork_chain(generations: int, reuse: bool) -> list[tuple[int, int, int]]:
    """Each generation forks, its child writes a page, then it exits.
    Returns (anon_vmas, VMAs with a chain, chain length) after each fork
    (parent and child alive) and after each exit."""
    k = avc(extra={"avc_reuse": reuse})
    mapx(k, 0, 4)
    write(k, 0, 4, "g1")
    out = []
    s = k.scheme
    for g in range(1, generations + 1):
        k.fork(g, g + 1)
        write(k, g % 4, 1, f"g{g + 1}", pid=g + 1)
        out.append((len(s.anon_vmas), len(s.chained), len(vma_at(k, 0, pid=g + 1).rmap)))
        k.exit(g)
        out.append((len(s.anon_vmas), len(s.chained), len(vma_at(k, 0, pid=g + 1).rmap)))
        validate(k)
    check_rmap_complete(k)
    last = generations + 1
    want = [f"g{max(g for g in range(1, last + 1) if g == 1 or (g - 1) % 4 == i)}" for i in range(4)]
    assert read(k, 0, 4, pid=last) == want
    all_exit(k)
    return out


def test_constantly_forking_chain_is_bounded_with_reuse_and_grows_without():
    g = 30
    with_reuse = fork_chain(g, True)
    at_fork = with_reuse[0::2]
    after_exit = with_reuse[1::2]
    # Khlebnikov's bound, at the fork (parent and child alive)
    assert all(avs <= 2 * vmas for avs, vmas, _ in at_fork)
    # and a constant afterwards: the root plus two levels that take turns
    assert max(avs for avs, _, _ in after_exit) == 3
    assert max(n for _, _, n in with_reuse) == 3
    assert after_exit[-1][1] == 1
    without = fork_chain(g, False)
    assert [avs for avs, _, _ in without[1::2]] == list(range(2, g + 2))
    assert without[-1][2] == g + 1              # the child's chain links every level


def test_reuse_picks_an_abandoned_ancestor_never_the_root():
    k = avc()
    mapx(k, 0, 1)
    write(k, 0, 1, "a")
    root = vma_at(k, 0).anon_vma
    k.fork(1, 2)
    b = vma_at(k, 0, pid=2).anon_vma
    k.exit(1)                       # root: no VMA but two children (itself, B)
    k.fork(2, 3)                    # B still has its VMA: a new C under B
    c = vma_at(k, 0, pid=3).anon_vma
    assert c.parent is b and k.stat.anon_vma_fork_reuse == 0
    k.exit(2)                       # B: no VMA, one child
    k.fork(3, 4)
    assert vma_at(k, 0, pid=4).anon_vma is b and k.stat.anon_vma_fork_reuse == 1
    assert b.num_active_vmas == 1 and root.num_active_vmas == 0
    check(k)
    all_exit(k)


# -- merge rules -------------------------------------------------------------------------------

def test_forked_vma_does_not_grow_but_the_parent_does():
    # §6 item 7. 2.6.7 merges the child's fresh neighbour; anon_vma_chain
    # (either rule) does not, as the child's VMA has two AVCs; the parent's
    # VMA (one AVC) still grows.
    results = {}
    for name, cfg in (("anon_vma", {}), ("2011", {"extra": {"avc_merge_rule": "2011"}}),
                      ("2025", {"extra": {"avc_merge_rule": "2025"}})):
        k = new_kernel(scheme="anon_vma" if name == "anon_vma" else "anon_vma_chain", **cfg)
        mapx(k, 0, 2)
        write(k, 0, 2, "a")
        k.fork(1, 2)
        mapx(k, 2, 1, pid=2)
        mapx(k, 2, 1, pid=1)
        results[name] = (spans(k, pid=2), spans(k, pid=1))
        write(k, 2, 1, "n", pid=2)
        check(k)
        assert read(k, 0, 3, pid=2) == ["a", "a", "n"]
        all_exit(k)
    assert results["anon_vma"] == ([(0, 3, 0)], [(0, 3, 0)])
    assert results["2011"] == results["2025"] == ([(0, 2, 0), (2, 3, 2)], [(0, 3, 0)])


def unfaulted_neighbours(k: Kernel) -> None:
    """§6 item 10: three pages, pages 0 and 2 read-only, the middle one
    written, then made read-only too."""
    mapx(k, 0, 3)
    k.mprotect(1, addr(0), P, "r--")
    k.mprotect(1, addr(2), P, "r--")
    assert len(spans(k)) == 3
    write(k, 1, 1, "m")
    k.mprotect(1, addr(1), P, "r--")


@pytest.mark.parametrize("name, want", [("2011", 3), ("2025", 1)])
def test_unfaulted_neighbours_of_a_faulted_vma(name, want):
    k = rule(name)
    unfaulted_neighbours(k)
    assert len(spans(k)) == want
    v = vma_at(k, 1)
    assert v.anon_vma is not None and chain(v) == [v.anon_vma]
    if want == 1:
        assert v.vm_start == addr(0) and v.vm_end == addr(3)
    assert visited(k, pfn_at(k, 1))[1] == [(1, addr(1))]
    check(k)
    assert read(k, 0, 3) == [None, "m", None]
    all_exit(k)


def test_unfaulted_neighbours_merge_under_anon_vma_too():
    k = new_kernel()
    unfaulted_neighbours(k)
    assert spans(k) == [(0, 3, 0)]
    check(k)


def test_forked_faulted_vma_does_not_merge_into_unfaulted_neighbours_under_2025():
    # The 2025 rule keeps the fork test, on the source now: a child's
    # faulted middle VMA (two AVCs) does not spread into its unfaulted
    # neighbours.
    k = rule("2025")
    mapx(k, 0, 3)
    k.mprotect(1, addr(0), P, "r--")
    k.mprotect(1, addr(2), P, "r--")
    write(k, 1, 1, "m")
    k.fork(1, 2)
    k.mprotect(2, addr(1), P, "r--")
    assert len(spans(k, pid=2)) == 3
    k.mprotect(1, addr(1), P, "r--")
    assert len(spans(k, pid=1)) == 1
    check(k)
    assert read(k, 1, pid=2) == ["m"] and read(k, 1) == ["m"]
    all_exit(k)


@pytest.mark.parametrize("name", ["2011", "2025"])
def test_three_way_merge_of_a_hole(name):
    # A new page fills the hole between a faulted (singular) prev and an
    # unfaulted next: both per-side tests pass, and the three-way test
    # (prev's and next's anon_vmas, one NULL) lets all three merge. Under
    # 2011 the three-way test must not be taken for next's singular test,
    # which an unfaulted next fails.
    k = rule(name)
    mapx(k, 0, 1)
    write(k, 0, 1, "a")
    mapx(k, 2, 1)
    mapx(k, 1, 1)
    assert spans(k) == [(0, 3, 0)]
    check(k)
    # mirror: unfaulted prev, faulted next
    mapx(k, 10, 1)
    mapx(k, 12, 1)
    write(k, 12, 1, "b")
    mapx(k, 11, 1)
    assert spans(k, n=14)[-1] == (10, 13, 10)
    check(k)
    # §6 item 3: two different anon_vmas block the hole fill on one side
    mapx(k, 20, 1)
    mapx(k, 22, 1)
    write(k, 20, 1, "c")
    write(k, 22, 1, "d")
    mapx(k, 21, 1)
    assert spans(k, n=24)[-2:] == [(20, 22, 20), (22, 23, 22)]
    check(k)
    assert read(k, 0, 3) == ["a", None, None] and read(k, 20, 3) == ["c", None, "d"]
    all_exit(k)


@pytest.mark.parametrize("name, want", [("2011", 2), ("2025", 1)])
def test_mremap_back_next_to_an_unfaulted_neighbour(name, want):
    # 0123
    # UUUF    U unfaulted rw- (pgoff 0), F rwx written (pgoff 3)
    # UUU.    F moved away (keeps pgoff 3), made rw-, moved back:
    # UUUF    2011 keeps two VMAs; 2025 merges (case 1: F is no fork
    #         child) and U must take F's anon_vma and chain.
    k = rule(name)
    mapx(k, 0, 4)
    k.mprotect(1, addr(3), P, "rwx")
    write(k, 3, 1, "f")
    av = vma_at(k, 3).anon_vma
    k.mremap(1, addr(3), P, P, ["maymove", "fixed"], addr(10))
    k.mprotect(1, addr(10), P, "rw-")
    k.mremap(1, addr(10), P, P, ["maymove", "fixed"], addr(3))
    assert len(spans(k)) == want
    v = vma_at(k, 3)
    assert v.anon_vma is av and v.vm_pgoff + 3 - (v.vm_start - addr(0)) // P == vma_at(k, 0).vm_pgoff + 3
    assert visited(k, pfn_at(k, 3))[1] == [(1, addr(3))]
    check(k)
    assert read(k, 0, 4) == [None, None, None, "f"]
    all_exit(k)


# -- generic checks ----------------------------------------------------------------------------

def test_fork_gives_each_piece_of_a_split_vma_its_own_anon_vma():
    # anon_vma_fork runs per VMA: the three pieces of a split VMA get three
    # new anon_vmas in the child, so restoring the protection there cannot
    # merge them (2.6.7: one list, they merge; the parent's pieces, sharing
    # one anon_vma, merge under both).
    for scheme, child_vmas in (("anon_vma", 1), ("anon_vma_chain", 3)):
        k = new_kernel(scheme=scheme)
        mapx(k, 0, 8)
        write(k, 0, 8, "a")
        k.mprotect(1, addr(1), 3 * P, "r--")
        k.fork(1, 2)
        k.mprotect(2, addr(1), 3 * P, "rw-")
        k.mprotect(1, addr(1), 3 * P, "rw-")
        assert len(spans(k, pid=2)) == child_vmas and len(spans(k)) == 1
        if scheme == "anon_vma_chain":
            avs = {id(v.anon_vma) for v in k.mm(2).mmap}
            assert len(avs) == 3
        check(k)
        assert read(k, 0, 8, pid=2) == ["a"] * 8
        all_exit(k)


@pytest.mark.parametrize("cfg", [
    {"avc_merge_rule": "2025"}, {"avc_merge_rule": "2011"}, {"avc_reuse": False},
    {"avc_walk": "list"}])
def test_fork_cow_mprotect_mremap_munmap_exit(cfg):
    k = avc(extra=cfg)
    mapx(k, 0, 8)
    write(k, 0, 8, "a")
    k.fork(1, 2)
    write(k, 2, 2, "b", pid=2)
    k.mprotect(2, addr(1), 3 * P, "r--")
    check(k)
    k.fork(2, 3)
    k.mprotect(3, addr(1), 3 * P, "rw-")          # three VMAs stay (see above)
    assert len(spans(k, pid=3)) == 3
    write(k, 1, 1, "c", pid=3)
    k.mremap(3, addr(4), 4 * P, 4 * P, ["maymove", "fixed"], addr(20))
    check(k)
    k.mprotect(2, addr(1), 3 * P, "rw-")          # one anon_vma: merges back
    assert spans(k, pid=2) == [(0, 8, 0)]
    moved = k.mremap(2, addr(0), 8 * P, 12 * P, ["maymove"])
    check(k)
    k.munmap(1, addr(3), 2 * P)
    write(k, 6, 2, "d")
    check(k)
    k.fork(1, 4)
    k.exit(1)
    check(k)
    assert read(k, 0, 3, pid=4) == ["a"] * 3
    assert read(k, 5, 3, pid=4) == ["a", "d", "d"]
    assert read(k, 0, 4, pid=3) == ["a", "c", "b", "b"]
    assert read(k, 20, 4, pid=3) == ["a"] * 4
    assert read(k, (moved - addr(0)) // P, 12, pid=2) == ["a", "a", "b", "b"] + ["a"] * 4 + [None] * 4
    write(k, (moved - addr(0)) // P + 8, 4, "e", pid=2)
    k.munmap(3, addr(20), P)
    k.exit(2)
    check(k)
    k.exec(3)
    check(k)
    all_exit(k)


def test_tiny_memory_with_swapping():
    n = 40
    k = Kernel(Config(scheme="anon_vma_chain", mem_pages=64, swap_pages=512))
    k.spawn(1)
    mapx(k, 0, n)
    write(k, 0, n, "x")
    k.fork(1, 2)
    write(k, 0, n // 2, "y", pid=2)                 # COW under pressure
    mapx(k, 100, n, pid=2)
    write(k, 100, n, "z", pid=2)
    check(k)
    assert k.stat.pswpout > 0
    k.fork(2, 3)
    write(k, 10, 10, "w", pid=3)
    k.mprotect(3, addr(5), 5 * P, "r--")
    k.mremap(3, addr(100), n * P, n * P, ["maymove", "fixed"], addr(200))
    check(k)
    assert read(k, 0, n) == ["x"] * n
    assert read(k, 0, n, pid=2) == ["y"] * (n // 2) + ["x"] * (n - n // 2)
    assert read(k, 0, n, pid=3) == ["y"] * 10 + ["w"] * 10 + ["x"] * (n - 20)
    assert read(k, 200, n, pid=3) == ["z"] * n
    check(k)
    k.exit(2)
    check(k)
    assert read(k, 200, n, pid=3) == ["z"] * n
    assert k.stat.pswpin > 0
    all_exit(k)
