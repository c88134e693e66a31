"""Stateful random testing of the modern profile, under every scheme.

A Hypothesis ``RuleBasedStateMachine`` drives the system calls the modern
profile changes or adds (top-down mmap anywhere, MAP_FIXED_NOREPLACE,
descriptors opened r/w/rw, 6.17 multi-VMA mremap moves and shrinks,
MREMAP_DONTUNMAP, old_len 0 views, growth that merges, MADV_COLD and
MADV_PAGEOUT, fault-around on file and shmem reads, fork that skips VMAs
without an anon_vma, MAP_POPULATE/MAP_LOCKED/mlock population, VM_NORESERVE,
the reclaim event) together with the old ones, on
small memory with swap. After every step: ``validate`` (every kernel
invariant) and ``check_rmap_complete`` (every rmap walk finds exactly the
ptes a brute-force scan of all page tables finds). A data oracle checks what
reads return: a page of private memory that this process alone wrote, and
that nothing since could have replaced (no fork, mremap or madvise on it),
reads back its token. Teardown exits every process and checks for leaks.

A failure prints a replayable program. ``RMAPLAB_MODERN_EXAMPLES=N`` runs
more examples per scheme (default 40).
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

from rmaplab.asm.page import PAGE_SIZE as P
from rmaplab.check import check_no_leaks, check_rmap_complete, validate
from rmaplab.config import SCHEMES, Config
from rmaplab.errors import SyscallError
from rmaplab.kernel import Kernel

#: the window the fixed-address rules use: 24 pages
BASE = 0x3000_0000_0000
NPAGES = 24
FILES = {"f0": 8 * P, "f1": 5 * P // 2}

pages = st.integers(0, NPAGES - 1)
lengths = st.integers(0, 5)
prots = st.sampled_from(["rw-"] * 4 + ["r--"] * 2 + ["---", "r-x"])
opens = st.sampled_from(["rw", "rw", "r", "w"])
advices = st.sampled_from(["dontneed", "cold", "pageout", "pageout", "willneed", "normal"])
mremap_flags = st.sampled_from([[], ["maymove"], ["maymove", "fixed"], ["maymove", "fixed"],
                                ["maymove", "dontunmap"], ["maymove", "fixed", "dontunmap"]])


def a(page: int) -> int:
    return BASE + page * P


class ModernMachine(RuleBasedStateMachine):
    SCHEME = "anon_vma_chain"
    CONFIG_KW: dict = dict(mem_pages=48, swap_pages=512)
    procs = Bundle("procs")
    #: outcome counts, printed with RMAPLAB_STATS=1
    outcomes: Counter = Counter()

    def __init__(self) -> None:
        super().__init__()
        self.k = Kernel(Config(profile="modern", scheme=self.SCHEME, **self.CONFIG_KW))
        for name, size in FILES.items():
            self.k.declare_file(name, size)
        self.next_pid = 1
        self.ntok = 0
        #: (pid, page) -> token this process alone wrote into private memory
        self.mine: dict[tuple[int, int], str] = {}

    def _call(self, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except SyscallError as e:
            return e.errno

    def _forget(self, pid: int | None = None, lo: int = 0, hi: int = NPAGES) -> None:
        for key in [k for k in self.mine if (pid is None or k[0] == pid) and lo <= k[1] < hi]:
            del self.mine[key]

    def _alive(self, pid: int) -> bool:
        for gone in [p for p, _ in self.mine if p not in self.k.tasks]:
            self._forget(gone)
        return pid in self.k.tasks

    @initialize(target=procs)
    def init(self) -> int:
        """pid 1 with a layout to work on: anonymous rw- (written) and r--,
        a private file mapping (read), shared anonymous memory (written)."""
        pid = self.spawn()
        k = self.k
        k.mmap(pid, a(0), 4 * P, "rw-", ["private", "anonymous", "fixed"])
        k.touch(pid, a(0), 3 * P, "w", "init")
        k.mmap(pid, a(5), 2 * P, "r--", ["private", "anonymous", "fixed"])
        k.mmap(pid, a(8), 3 * P, "r--", ["private", "fixed"], file="f0")
        k.touch(pid, a(9), P, "r")
        k.mmap(pid, a(12), 3 * P, "rw-", ["shared", "anonymous", "fixed"])
        k.touch(pid, a(12), 2 * P, "w", "shm")
        for i in range(3):
            self.mine[(pid, i)] = "init"
        return pid

    @rule(target=procs)
    @precondition(lambda self: len(self.k.tasks) < 3)
    def spawn(self) -> int:
        pid = self.next_pid
        self.next_pid += 1
        self.k.spawn(pid)
        return pid

    @rule(target=procs, parent=procs)
    @precondition(lambda self: 0 < len(self.k.tasks) < 4)
    def fork(self, parent: int) -> int:
        if not self._alive(parent):
            return parent
        child = self.next_pid
        self.next_pid += 1
        self.k.fork(parent, child)
        self._forget(parent)            # its pages are shared until written again
        return child

    @rule(pid=procs)
    @precondition(lambda self: len(self.k.tasks) > 1)
    def exit(self, pid: int) -> None:
        if self._alive(pid):
            self.k.exit(pid)
            self._forget(pid)

    @rule(pid=procs, page=pages, n=lengths, prot=prots, shared=st.booleans(),
          backing=st.sampled_from(["anon", "anon", "f0", "f1"]), fixed=st.sampled_from(
              ["fixed", "fixed", "fixed_noreplace", "hint", "anywhere"]), mode=opens,
          extra=st.sampled_from([[], [], [], ["populate"], ["locked"], ["noreserve"]]))
    def mmap(self, pid, page, n, prot, shared, backing, fixed, mode, extra) -> None:
        if not self._alive(pid):
            return
        flags = ["shared" if shared else "private", *extra]
        file = None if backing == "anon" else backing
        if file is None:
            flags.append("anonymous")
        if fixed in ("fixed", "fixed_noreplace"):
            flags.append(fixed)
        addr = None if fixed == "anywhere" else a(page)
        got = self._call(self.k.mmap, pid, addr, n * P, prot, flags, file=file,
                         offset=(page % 3) * P if file else 0, open=mode)
        if isinstance(got, int) and BASE <= got < a(NPAGES):
            self._forget(pid, (got - BASE) // P, (got - BASE) // P + n)

    @rule(pid=procs, page=pages, n=lengths)
    def munmap(self, pid, page, n) -> None:
        if self._alive(pid):
            if self._call(self.k.munmap, pid, a(page), n * P) == 0:
                self._forget(pid, page, page + n)

    @rule(pid=procs, page=pages, n=lengths, prot=prots)
    def mprotect(self, pid, page, n, prot) -> None:
        if self._alive(pid):
            self._call(self.k.mprotect, pid, a(page), n * P, prot)

    @rule(pid=procs, page=pages, old=lengths, new=lengths, flags=mremap_flags, to=pages)
    def mremap(self, pid, page, old, new, flags, to) -> None:
        if not self._alive(pid):
            return
        got = self._call(self.k.mremap, pid, a(page), old * P, new * P, flags, a(to))
        type(self).outcomes[f"mremap {'ok' if isinstance(got, int) else got}"] += 1
        if got != "EINVAL":
            self._forget(pid)           # pages may have moved anywhere

    def _vma(self, pid: int, idx: int) -> tuple[int, int] | None:
        """(first page, pages) of the idx-th VMA of the window, if any."""
        vmas = [v for v in self.k.mm(pid).vma_range(BASE, a(NPAGES)) if v.vm_start >= BASE]
        if not vmas:
            return None
        v = vmas[idx % len(vmas)]
        return (v.vm_start - BASE) // P, min(v.npages, NPAGES - (v.vm_start - BASE) // P)

    @rule(pid=procs, idx=st.integers(0, 7), cut=st.integers(0, 2), grow=st.integers(-2, 3),
          flags=mremap_flags, to=pages)
    def mremap_vma(self, pid, idx, cut, grow, flags, to) -> None:
        """mremap aimed at a VMA: all of it, or less its first pages, to a
        new length around its own (often across the next VMA)."""
        if not self._alive(pid):
            return
        got = self._vma(pid, idx)
        if got is None:
            return
        first, n = got
        cut = min(cut, n - 1)
        old = n - cut
        self.mremap(pid, first + cut, old, max(old + grow, 1), flags, to)

    @rule(pid=procs, idx=st.integers(0, 7), prot=prots, more=st.integers(0, 3))
    def mprotect_vma(self, pid, idx, prot, more) -> None:
        if self._alive(pid) and (got := self._vma(pid, idx)) is not None:
            self._call(self.k.mprotect, pid, a(got[0]), (got[1] + more) * P, prot)

    @rule(pid=procs, idx=st.integers(0, 7), write=st.booleans())
    def touch_vma(self, pid, idx, write) -> None:
        if self._alive(pid) and (got := self._vma(pid, idx)) is not None:
            self.touch(pid, got[0], min(got[1], 4), write)

    @rule(pid=procs, page=pages, n=lengths, on=st.booleans())
    def mlock(self, pid, page, n, on) -> None:
        if self._alive(pid):
            self._call(self.k.mlock if on else self.k.munlock, pid, a(page), n * P)

    @rule(pid=procs, page=pages, n=lengths, advice=advices)
    def madvise(self, pid, page, n, advice) -> None:
        if self._alive(pid):
            self._call(self.k.madvise, pid, a(page), n * P, advice)
            if advice == "dontneed":
                self._forget(pid, page, page + n)

    @rule(pid=procs, page=pages, n=st.integers(1, 4), write=st.booleans())
    def touch(self, pid, page, n, write) -> None:
        if not self._alive(pid):
            return
        type(self).outcomes[f"touch {'w' if write else 'r'}"] += 1
        if write:
            self.ntok += 1
            tok = f"t{self.ntok}"
            r = self.k.touch(pid, a(page), n * P, "w", tok)
            if r.result == "SIGKILL":
                return
            done = n if r.result == "ok" else (r.fault_addr - a(page)) // P
            for p in range(page, page + done):
                vma = self.k.mm(pid).find_vma(a(p))
                if vma.vm_file is None and not vma.vm_flags & 0x8:
                    self.mine[(pid, p)] = tok
                else:
                    self.mine.pop((pid, p), None)
            return
        r = self.k.touch(pid, a(page), n * P, "r")
        if r.result == "ok":
            for i, tok in enumerate(r.read):
                want = self.mine.get((pid, page + i))
                if want is not None:
                    assert tok == want, f"pid {pid} page {page + i} reads {tok!r}, wrote {want!r}"

    @rule(n=st.integers(1, 8))
    def reclaim(self, n) -> None:
        self.k.reclaim(n)

    @invariant()
    def invariants_and_rmap_complete(self) -> None:
        check_rmap_complete(self.k, validate(self.k))

    def teardown(self) -> None:
        for pid in list(self.k.pids()):
            self.k.exit(pid)
        check_no_leaks(self.k)


EXAMPLES = int(os.environ.get("RMAPLAB_MODERN_EXAMPLES", "40") or 40)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_modern_machine(scheme: str) -> None:
    machine = type(f"ModernMachine_{scheme}", (ModernMachine,), {"SCHEME": scheme})
    machine.TestCase.settings = settings(
        max_examples=EXAMPLES, stateful_step_count=40, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    machine.outcomes = Counter()
    machine.TestCase().runTest()
    if os.environ.get("RMAPLAB_STATS"):
        print(scheme, dict(sorted(machine.outcomes.items())))
    assert machine.outcomes["mremap ok"], "no mremap succeeded: the rules miss the VMAs"
