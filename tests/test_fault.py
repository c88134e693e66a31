"""Page faults as a process sees them: zero page, anon_vma assignment, COW
after fork (copy vs reuse), private file early COW, shared file
visibility, SIGSEGV/SIGBUS, write-only mappings, MADV_DONTNEED, mprotect
after fork (R7) and growsdown stacks.

References: syscall-semantics.md R4, R6, R7, §1.1 "Access signals", §1.6;
linux-2.6.11-paths.md §9 (do_wp_page, do_anonymous_page, do_no_page,
filemap_nopage) and §10 (do_page_fault, expand_stack).

pte drawing: '-' none, 'z' zero page, 'a'/'A' anon read-only/writable,
'f'/'F' file read-only/writable.
"""

from __future__ import annotations

from conftest import (P, PGB, addr, check, draw, mapx, pfn_at, pgoff, pic, read, spans,
                      vma_at, write)


def stat(k, name):
    return getattr(k.stat, name)


class Delta:
    """Counter deltas over a block: ``d = Delta(k, "a", "b"); ...; d()``."""

    def __init__(self, k, *names):
        self.k, self.names = k, names
        self.base = {n: stat(k, n) for n in names}

    def __call__(self):
        return {n: stat(self.k, n) - self.base[n] for n in self.names}


# -- anonymous faults ----------------------------------------------------------------

def test_read_fault_maps_zero_page_without_anon_vma(k):
    # 01
    # AA
    # --   a read fault maps ZERO_PAGE: no anon_vma, no rss
    # z-
    mapx(k, 0, 2)
    d = Delta(k, "fault_zero_page", "anon_vma_alloc")
    assert read(k, 0) == [None]
    assert pic(k, n=2) == ("AA", "--", "z-")
    assert vma_at(k, 0).anon_vma is None
    assert d() == {"fault_zero_page": 1, "anon_vma_alloc": 0}
    assert k.mm(1).rss == 0
    check(k)


def test_write_fault_assigns_anon_vma_and_zero_page_cow_copies(k):
    # 01
    # z-   after a read of page 0
    # zA   a write fault in page 1: anon_vma_prepare, a private zeroed page
    # 11
    # AA   a write to the zero page always copies (never reused)
    mapx(k, 0, 2)
    read(k, 0)
    d = Delta(k, "anon_vma_alloc", "fault_wp_copy", "fault_wp_reuse")
    write(k, 1, 1, "b")
    assert pic(k, n=2) == ("AA", "11", "zA")
    assert k.mm(1).rss == 1 and k.mm(1).anon_rss == 1
    write(k, 0, 1, "a")
    assert pic(k, n=2) == ("AA", "11", "AA")
    assert d() == {"anon_vma_alloc": 1, "fault_wp_copy": 1, "fault_wp_reuse": 0}
    assert read(k, 0, 2) == ["a", "b"]
    # the pages are indexed linearly (pgoff == page number)
    assert [int(k.mem.index[pfn_at(k, i)]) for i in (0, 1)] == [PGB, PGB + 1]
    assert k.mm(1).rss == 2
    check(k)


def test_cow_after_fork_copies_then_reuses_when_exclusive(k):
    # parent 1 and child 2 share write-protected pages after fork:
    #                parent  child
    # fork           aa      aa
    # child  w 0     aa      Aa     copy (page 0 shared)
    # parent w 0     Aa      Aa     reuse (the parent's page 0 is now exclusive)
    # parent w 1     AA      Aa     copy (page 1 still shared)
    # child  w 1     AA      AA     reuse
    mapx(k, 0, 2)
    write(k, 0, 1, "p0")
    write(k, 1, 1, "p1")
    orig = [pfn_at(k, 0), pfn_at(k, 1)]
    k.fork(1, 2)
    assert draw(k, 1, "pte", n=2) == "aa" and draw(k, 2, "pte", n=2) == "aa"
    assert [pfn_at(k, i, pid=2) for i in (0, 1)] == orig
    d = Delta(k, "fault_wp_copy", "fault_wp_reuse")
    write(k, 0, 1, "c0", pid=2)
    assert d() == {"fault_wp_copy": 1, "fault_wp_reuse": 0}
    assert (draw(k, 1, "pte", n=2), draw(k, 2, "pte", n=2)) == ("aa", "Aa")
    assert read(k, 0) == ["p0"]
    write(k, 0, 1, "q0", pid=1)
    assert d() == {"fault_wp_copy": 1, "fault_wp_reuse": 1}
    assert pfn_at(k, 0) == orig[0]                  # reused in place
    write(k, 1, 1, "q1", pid=1)
    assert d() == {"fault_wp_copy": 2, "fault_wp_reuse": 1}
    assert pfn_at(k, 1) != orig[1]
    write(k, 1, 1, "c1", pid=2)
    assert d() == {"fault_wp_copy": 2, "fault_wp_reuse": 2}
    assert pfn_at(k, 1, pid=2) == orig[1]
    assert (draw(k, 1, "pte", n=2), draw(k, 2, "pte", n=2)) == ("AA", "AA")
    assert read(k, 0, 2, pid=1) == ["q0", "q1"]
    assert read(k, 0, 2, pid=2) == ["c0", "c1"]
    # one family, one anon_vma
    assert vma_at(k, 0, 1).anon_vma is vma_at(k, 0, 2).anon_vma
    check(k)


def test_fork_write_protects_a_readonly_private_vma_too(k):
    # copy_one_pte decides by VM_MAYWRITE: a r-- private VMA that was
    # written earlier is COW after fork; making it rw- later copies.
    mapx(k, 0, 1)
    write(k, 0, 1, "p")
    k.mprotect(1, addr(0), P, "r--")
    k.fork(1, 2)
    k.mprotect(2, addr(0), P, "rw-")
    d = Delta(k, "fault_wp_copy")
    write(k, 0, 1, "c", pid=2)
    assert d() == {"fault_wp_copy": 1}
    assert read(k, 0, pid=1) == ["p"]
    check(k)


# -- file faults -----------------------------------------------------------------------

def test_private_file_mapping_write_is_early_cow(k):
    # 01
    # AA
    # 11   do_no_page, write on a private VMA: the file page is copied into
    # A-   a new anonymous page at once (no read-only file pte first)
    # Af   a read maps the page-cache page
    k.declare_file("f", 2 * P)
    k.mmap(1, addr(0), 2 * P, "rw-", ["private", "fixed"], file="f")
    d = Delta(k, "fault_early_cow", "fault_wp_copy", "anon_vma_alloc")
    write(k, 0, 1, "x")
    assert pic(k, n=2) == ("AA", "11", "A-")
    assert d() == {"fault_early_cow": 1, "fault_wp_copy": 0, "anon_vma_alloc": 1}
    assert read(k, 1) == ["f:1"]
    assert draw(k, what="pte", n=2) == "Af"
    assert read(k, 0) == ["x"]
    # the anonymous copy's index is the file offset (vm_pgoff 0 + 0)
    assert int(k.mem.index[pfn_at(k, 0)]) == 0
    # the file is untouched
    k.spawn(2)
    k.mmap(2, addr(0), 2 * P, "r--", ["shared", "fixed"], file="f")
    assert read(k, 0, 2, pid=2) == ["f:0", "f:1"]
    check(k)


def test_private_file_read_then_write_copies_the_page_cache_page(k):
    k.declare_file("f", 2 * P)
    k.mmap(1, addr(0), 2 * P, "rw-", ["private", "fixed"], file="f")
    assert read(k, 1) == ["f:1"]
    d = Delta(k, "fault_wp_copy", "fault_wp_reuse")
    write(k, 1, 1, "y")
    # a page-cache page is never exclusive (the cache holds a reference)
    assert d() == {"fault_wp_copy": 1, "fault_wp_reuse": 0}
    assert draw(k, what="pte", n=2) == "-A"
    check(k)


def test_shared_file_writes_visible_to_others_and_to_a_later_private_read(k):
    k.declare_file("f", 2 * P)
    k.mmap(1, addr(0), 2 * P, "rw-", ["shared", "fixed"], file="f")
    write(k, 0, 1, "w")
    assert draw(k, what="pte", n=2) == "F-"
    assert vma_at(k, 0).anon_vma is None
    k.spawn(2)
    k.mmap(2, addr(4), 2 * P, "r--", ["shared", "fixed"], file="f")
    assert read(k, 4, 2, pid=2) == ["w", "f:1"]
    k.spawn(3)
    k.mmap(3, addr(0), 2 * P, "rw-", ["private", "fixed"], file="f")
    assert read(k, 0, pid=3) == ["w"]
    # pid 3's private write does not reach the file
    write(k, 0, 1, "mine", pid=3)
    assert read(k, 0, pid=1) == ["w"] and read(k, 4, pid=2) == ["w"]
    # a later write through the shared mapping is seen by pid 2
    write(k, 1, 1, "w1", pid=1)
    assert read(k, 5, pid=2) == ["w1"]
    check(k)


# -- signals ---------------------------------------------------------------------------

def test_sigsegv_on_prot_none_and_unmapped(k):
    mapx(k, 0, 1, "---")
    mapx(k, 2, 1, "r--")
    for access in ("r", "w"):
        r = k.touch(1, addr(0), P, access, "x")
        assert (r.result, r.fault_addr) == ("SIGSEGV", addr(0))
        r = k.touch(1, addr(5), P, access, "x")
        assert (r.result, r.fault_addr) == ("SIGSEGV", addr(5))
    r = k.touch(1, addr(2), P, "w", "x")
    assert (r.result, r.fault_addr) == ("SIGSEGV", addr(2))
    # a read over [2,4) gets page 2 and stops at the hole
    r = k.touch(1, addr(2), 2 * P, "r")
    assert (r.result, r.fault_addr, r.read) == ("SIGSEGV", addr(3), [None])
    assert draw(k, what="pte", n=4) == "-.z."
    check(k)


def test_sigsegv_after_mprotect_none_of_a_present_page(k):
    mapx(k, 0, 1)
    write(k, 0, 1, "x")
    k.mprotect(1, addr(0), P, "---")
    assert k.touch(1, addr(0), P, "r").result == "SIGSEGV"
    assert k.touch(1, addr(0), P, "w", "y").result == "SIGSEGV"
    k.mprotect(1, addr(0), P, "r--")
    assert read(k, 0) == ["x"]
    check(k)


def test_sigbus_beyond_eof(k):
    # ltp mmap13: a file of P/2 bytes, 2P mapped, an access in the second
    # page is beyond EOF: SIGBUS. The first page is fine.
    k.declare_file("half", P // 2)
    k.mmap(1, addr(0), 2 * P, "rw-", ["shared", "fixed"], file="half")
    k.mmap(1, addr(4), 2 * P, "rw-", ["private", "fixed"], file="half")
    for base in (0, 4):
        r = k.touch(1, addr(base + 1), P, "w", "x")
        assert (r.result, r.fault_addr) == ("SIGBUS", addr(base + 1))
        r = k.touch(1, addr(base + 1), P, "r")
        assert (r.result, r.fault_addr) == ("SIGBUS", addr(base + 1))
    # a read spanning both pages gets the first and stops at EOF
    r = k.touch(1, addr(0), 2 * P, "r")
    assert (r.result, r.fault_addr, r.read) == ("SIGBUS", addr(1), ["half:0"])
    # a read fault in a shared writable VMA installs vm_page_prot, which is
    # PAGE_SHARED (writable in hardware): 'F'
    assert draw(k, what="pte", n=6) == "F-..--"
    check(k)


def test_write_only_mapping_read_semantics(k):
    # do_page_fault: a read of a non-present page needs VM_READ|VM_EXEC;
    # a present pte (PAGE_COPY is readable) reads without a fault.
    mapx(k, 0, 2, "-w-")
    r = k.touch(1, addr(0), P, "r")
    assert (r.result, r.fault_addr) == ("SIGSEGV", addr(0))
    write(k, 0, 1, "x")
    assert read(k, 0) == ["x"]
    r = k.touch(1, addr(0), 2 * P, "r")
    assert (r.result, r.fault_addr, r.read) == ("SIGSEGV", addr(1), ["x"])
    assert draw(k, what="pte", n=2) == "A-"
    check(k)


# -- MADV_DONTNEED ---------------------------------------------------------------------

def test_dontneed_anon_reads_back_zeros(k):
    # ltp madvise03: fill, DONTNEED, all zero. The anon_vma stays.
    mapx(k, 0, 2)
    write(k, 0, 2, 1)
    assert k.madvise(1, addr(0), 2 * P, "dontneed") == 0
    assert pic(k, n=2) == ("AA", "11", "--")
    assert k.mm(1).rss == 0
    assert read(k, 0, 2) == [None, None]
    assert draw(k, what="pte", n=2) == "zz"
    check(k)


def test_dontneed_private_file_mapping_shows_the_file_again(k):
    k.declare_file("f", 2 * P)
    k.mmap(1, addr(0), 2 * P, "rw-", ["private", "fixed"], file="f")
    write(k, 0, 1, "x")
    assert read(k, 0, 2) == ["x", "f:1"]
    k.madvise(1, addr(0), 2 * P, "dontneed")
    assert draw(k, what="pte", n=2) == "--"
    assert read(k, 0, 2) == ["f:0", "f:1"]
    check(k)


# -- R7: mprotect never makes COW-shared pages writable -----------------------------------

def test_mprotect_rw_after_fork_keeps_cow(k):
    mapx(k, 0, 1)
    write(k, 0, 1, "p")
    k.fork(1, 2)
    k.mprotect(1, addr(0), P, "r--")
    k.mprotect(1, addr(0), P, "rw-")
    assert draw(k, 1, "pte", n=1) == "a" and draw(k, 2, "pte", n=1) == "a"
    d = Delta(k, "fault_wp_copy", "fault_wp_reuse")
    write(k, 0, 1, "q", pid=1)
    assert d() == {"fault_wp_copy": 1, "fault_wp_reuse": 0}
    assert read(k, 0, pid=2) == ["p"]
    check(k)


def test_mprotect_rw_without_fork_installs_readonly_pte_then_reuses(k):
    # PAGE_COPY is read-only in hardware even for an exclusive page: the
    # next write is a wp fault that reuses it.
    mapx(k, 0, 1)
    write(k, 0, 1, "p")
    pfn = pfn_at(k, 0)
    k.mprotect(1, addr(0), P, "r--")
    k.mprotect(1, addr(0), P, "rw-")
    assert draw(k, what="pte", n=1) == "a"
    d = Delta(k, "fault_wp_copy", "fault_wp_reuse")
    write(k, 0, 1, "q")
    assert d() == {"fault_wp_copy": 0, "fault_wp_reuse": 1}
    assert pfn_at(k, 0) == pfn and draw(k, what="pte", n=1) == "A"
    check(k)


# -- growsdown stacks ------------------------------------------------------------------

def test_growsdown_expansion_keeps_the_linear_index(k):
    # 0123456789ab
    # ..........AA   MAP_GROWSDOWN at page 10, pgoff 10
    # ........AAAA   a write at page 8 expands it: vm_start 8, pgoff 10-2
    k.mmap(1, addr(10), 2 * P, "rw-", ["private", "anonymous", "fixed", "growsdown"])
    stack = vma_at(k, 10)
    write(k, 10, 1, "top")
    top = pfn_at(k, 10)
    write(k, 8, 1, "low")
    assert pic(k) == ("........AAAA", "........1111", "........A-A-")
    assert vma_at(k, 8) is stack
    assert spans(k) == [(8, 12, 8)]
    assert int(k.mem.index[pfn_at(k, 8)]) == PGB + 8
    assert int(k.mem.index[top]) == PGB + 10 and pfn_at(k, 10) == top
    check(k)


def test_growsdown_expansion_of_a_moved_stack_lowers_the_carried_pgoff(k):
    # A faulted stack moved from page 20 to page 10 keeps pgoff 20; growing
    # it by 2 pages makes pgoff 18 (vm_pgoff -= grow), not 8.
    k.mmap(1, addr(20), P, "rw-", ["private", "anonymous", "fixed", "growsdown"])
    write(k, 20, 1, "s")
    assert k.mremap(1, addr(20), P, P, ["maymove", "fixed"], addr(10)) == addr(10)
    assert pgoff(k, 10) == 20
    write(k, 8, 1, "t")
    assert spans(k) == [(8, 11, 18)]
    assert int(k.mem.index[pfn_at(k, 8)]) == PGB + 18
    assert read(k, 8, 3) == ["t", None, "s"]
    check(k)


def test_growsdown_write_below_readonly_stack_expands_then_segfaults(k):
    # expand_stack runs before the access check: the VMA grows, then the
    # write gets SEGV_ACCERR.
    k.mmap(1, addr(10), P, "r--", ["private", "anonymous", "fixed", "growsdown"])
    r = k.touch(1, addr(9), P, "w", "x")
    assert (r.result, r.fault_addr) == ("SIGSEGV", addr(9))
    assert spans(k) == [(9, 11, 9)]
    check(k)


# -- fork details ------------------------------------------------------------------------

def test_fork_child_loses_vm_locked(k):
    from conftest import VM_LOCKED
    mapx(k, 0, 2)
    k.mlock(1, addr(0), 2 * P)
    k.fork(1, 2)
    assert vma_at(k, 0, 1).vm_flags & VM_LOCKED
    assert not vma_at(k, 0, 2).vm_flags & VM_LOCKED
    assert k.mm(2).locked_vm == 0
    check(k)


def test_cow_page_reused_by_child_after_parent_exits(k):
    mapx(k, 0, 1)
    write(k, 0, 1, "p")
    pfn = pfn_at(k, 0)
    k.fork(1, 2)
    k.exit(1)
    d = Delta(k, "fault_wp_copy", "fault_wp_reuse")
    write(k, 0, 1, "c", pid=2)
    assert d() == {"fault_wp_copy": 0, "fault_wp_reuse": 1}
    assert pfn_at(k, 0, pid=2) == pfn
    check(k)


def test_shared_anonymous_memory_is_shared_across_fork(k):
    a = k.mmap(1, addr(0), 2 * P, "rw-", ["shared", "anonymous", "fixed"])
    assert a == addr(0)
    write(k, 0, 1, "before")
    k.fork(1, 2)
    d = Delta(k, "fault_wp_copy")
    write(k, 0, 1, "child", pid=2)
    write(k, 1, 1, "parent", pid=1)
    assert read(k, 0, 2, pid=1) == ["child", "parent"]
    assert read(k, 0, 2, pid=2) == ["child", "parent"]
    assert d() == {"fault_wp_copy": 0}
    assert vma_at(k, 0).anon_vma is None
    check(k)


def test_dontneed_on_a_shared_file_mapping_keeps_written_data(k):
    # The zap drops the ptes only; the written page stays in the page cache.
    k.declare_file("f", 2 * P)
    k.mmap(1, addr(0), 2 * P, "rw-", ["shared", "fixed"], file="f")
    write(k, 0, 1, "w")
    k.madvise(1, addr(0), 2 * P, "dontneed")
    assert draw(k, what="pte", n=2) == "--"
    assert read(k, 0, 2) == ["w", "f:1"]
    check(k)


# -- swap and the exclusive-swap-page reuse of R7 ---------------------------------------

def _swap_out(k, pfn):
    from rmaplab.mm.swap_state import add_to_swap
    from rmaplab.rmap.scheme import SWAP_SUCCESS
    k.scheme.page_referenced(pfn)           # clear the young bits
    assert add_to_swap(k.ctx, pfn)
    assert k.scheme.try_to_unmap(pfn) == SWAP_SUCCESS


def test_write_to_an_exclusive_swap_page_reuses_it(k):
    mapx(k, 0, 1)
    write(k, 0, 1, "x")
    pfn = pfn_at(k, 0)
    _swap_out(k, pfn)
    assert draw(k, what="pte", n=1) == "s"
    d = Delta(k, "fault_wp_copy")
    write(k, 0, 1, "y")
    assert d() == {"fault_wp_copy": 0}
    assert pfn_at(k, 0) == pfn and draw(k, what="pte", n=1) == "A"
    assert read(k, 0) == ["y"]
    check(k)


def test_write_to_a_shared_swap_page_copies_then_last_user_reuses(k):
    # parent and child both hold a swap pte to one slot: the child's write
    # copies; the parent's later write finds the slot exclusive and reuses.
    mapx(k, 0, 1)
    write(k, 0, 1, "x")
    pfn = pfn_at(k, 0)
    k.fork(1, 2)
    _swap_out(k, pfn)
    assert draw(k, 1, "pte", n=1) == "s" and draw(k, 2, "pte", n=1) == "s"
    d = Delta(k, "fault_wp_copy")
    write(k, 0, 1, "c", pid=2)
    assert d() == {"fault_wp_copy": 1}
    assert pfn_at(k, 0, pid=2) != pfn
    write(k, 0, 1, "p", pid=1)
    assert d() == {"fault_wp_copy": 1}
    assert pfn_at(k, 0, pid=1) == pfn
    assert read(k, 0, pid=1) == ["p"] and read(k, 0, pid=2) == ["c"]
    check(k)


def test_growsdown_expansion_on_a_read_fault_prepares_an_anon_vma(k):
    # expand_stack calls anon_vma_prepare before anything else, so even a
    # read below an unfaulted stack gives it an anon_vma; the page read is
    # the zero page.
    k.mmap(1, addr(10), 2 * P, "rw-", ["private", "anonymous", "fixed", "growsdown"])
    assert read(k, 9) == [None]
    assert pic(k) == (".........AAA", ".........111", ".........z--")
    assert spans(k) == [(9, 12, 9)]
    check(k)


def test_map_populate_fills_only_the_new_range_of_a_merged_vma(k):
    # 01234567
    # FFFF....   shared file mapping of pages 0-3 of f (no ptes yet)
    # FFFFFFFF   mmap(MAP_POPULATE) of pages 4-7 at offset 4: merges into one
    #            VMA; sys_remap_file_pages populates [4,8) only
    k.declare_file("f", 8 * P)
    k.mmap(1, addr(0), 4 * P, "rw-", ["shared", "fixed"], file="f")
    k.mmap(1, addr(4), 4 * P, "rw-", ["shared", "fixed", "populate"], file="f", offset=4 * P)
    assert draw(k, n=8) == "AAAAAAAA"
    assert draw(k, what="pte", n=8) == "----FFFF"
    check(k)
