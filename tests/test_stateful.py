"""Stateful random testing of the whole kernel model against a reference.

A Hypothesis ``RuleBasedStateMachine`` drives random system calls (mmap
fixed and anywhere, anonymous and file, private and shared, MAP_LOCKED /
MAP_POPULATE / MAP_NORESERVE; munmap; mprotect; madvise; mlock/munlock;
brk; mremap in place, maymove, fixed and the old_size 0 duplicate), page
touches (reads and writes of page ranges with unique tokens), forks, execs
and exits on up to ``MAX_PROCS`` processes. Each step goes to the model
(``rmaplab.kernel.Kernel``) and to the naive reference of
``tests/refmodel.py``, and the results are compared: return values and
errnos, SIGSEGV/SIGBUS and where they hit, and every token read back.
After every step it checks the kernel's own invariants (``validate``),
rmap completeness (``check_rmap_complete``), that the VMA layout agrees
page by page with the reference (prot, private/shared, backing object and
offset, VM_LOCKED, brk) and that every resident page holds what the
reference says the process would read. Teardown exits every process and
checks for leaks (``check_no_leaks``).

Rules come in two kinds: plain ones take page numbers; the ``*_vma`` and
``mmap_gap`` rules pick a VMA or a gap of the kernel's layout by index, so
that ranges land exactly on VMA edges and fill gaps, where merges, splits
and anon_vma hand-overs happen (expected results still come from the
reference alone).

Processes. The machine starts with a process that sets up ``LAYOUT``
(heap, anonymous, file and shmem mappings, some written) and a fork of it;
``exec`` runs a new program that sets up ``LAYOUT`` again; ``exit`` leaves
at least one process (the rest exit at teardown).

Addresses. Rules name pages, not addresses, so programs stay readable:

- pages 0..11 are the *near* window, page p at ``START_BRK - 6 pages + p``;
  the heap (brk) starts at near page 6 and grows into the window, where
  MAP_FIXED mappings can collide with it;
- pages 1000..1011 are the *far* window, page p at
  ``TASK_UNMAPPED_BASE + (p - 1000) pages``; non-fixed mmaps and mremap
  moves land there (the model tracks wherever they land).

Files: ``f0`` is 6 pages, ``f1`` is 2.5 pages (3 pages readable); page i of
a file reads ``"<name>:<i>"`` until written through a shared mapping.

Running: ``test_rmap_machine`` runs the machine under every registered
scheme (and anon_vma_chain's 2011 merge rule), each on plain memory and on
tiny memory (32 frames, 256 swap slots, a ``reclaim`` rule). A failure
fails; nothing is skipped or marked expected to fail. Settings profiles
(``RMAPLAB_HYPOTHESIS_PROFILE``):

- ``ci`` (default): 20 programs of up to 50 steps per machine::

      python -m pytest -q tests/test_stateful.py

- ``dev``: 60 programs per machine;
- ``soak``: at least ``RMAPLAB_STRESS_STEPS`` (default 100 000) steps per
  machine, programs of up to 100 steps; prints outcome counts and fails if
  fewer steps ran::

      RMAPLAB_STRESS_STEPS=100000 python -m pytest -q -s tests/test_stateful.py -k anon_vma-plain

``RMAPLAB_STATS=1`` prints the outcome counts of any run.

A failure prints a replayable program (``state = RmapMachine()`` followed
by one ``state.<rule>(...)`` per step); paste it into a test to replay it.

Variants: the machine takes its ``Config`` from ``CONFIG_KW`` and has a
``reclaim`` rule gated by ``RECLAIM``; ``ALLOW_OOM`` lets an OOM kill
(result ``"SIGKILL"``) retire a process instead of failing (a write cut
short leaves the shared pages of its range UNKNOWN to the reference). A
variant is one subclass, as ``TinyMemoryMachine`` below::

    class TinyMemoryMachine(RmapMachine):
        CONFIG_KW = dict(mem_pages=32, swap_pages=256)
        RECLAIM = True
        ALLOW_OOM = True

Layout oracle: mremap (the old range must lie in one VMA; in-place growth
needs it to end at the VMA's end) and mlock (how far it gets before a
failing prefault) depend on where a VMA ends. The reference asks the
kernel's layout from *before* the call; ``layout_matches_reference`` checks
that layout against the reference after every step.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, consumes, initialize, invariant,
                                 multiple, precondition, rule)

from refmodel import ANON, SHARED, Err, RefModel
from rmaplab.asm.page import PAGE_SHIFT, PAGE_SIZE, TASK_UNMAPPED_BASE
from rmaplab.check import check_no_leaks, check_rmap_complete, validate
from rmaplab.config import SCHEMES, Config
from rmaplab.errors import SyscallError
from rmaplab.kernel.system import START_BRK, Kernel
from rmaplab.mm.mm_types import VM_EXEC, VM_LOCKED, VM_MAYSHARE, VM_READ, VM_WRITE

# -- address windows -----------------------------------------------------------------

NEAR_PAGES = 12
HEAP_PAGE = 6                                   # near page of START_BRK
NEAR_VPN = (START_BRK >> PAGE_SHIFT) - HEAP_PAGE
FAR_OFF, FAR_PAGES = 1000, 12
FAR_VPN = TASK_UNMAPPED_BASE >> PAGE_SHIFT


def vpn_of(page: int) -> int:
    """Pages below 500 count from the near window (negative ones lie below
    it), pages from 500 from the far one (500-999 lie below it)."""
    return NEAR_VPN + page if page < FAR_OFF // 2 else FAR_VPN + page - FAR_OFF


def page_of(vpn: int) -> int | None:
    """The inverse of vpn_of; None for a vpn no page number names."""
    if vpn - NEAR_VPN < FAR_OFF // 2:
        return vpn - NEAR_VPN
    if vpn - FAR_VPN + FAR_OFF >= FAR_OFF // 2:
        return vpn - FAR_VPN + FAR_OFF
    return None


def addr_of(page: int) -> int:
    return vpn_of(page) << PAGE_SHIFT


def page_name(vpn: int) -> str:
    """A vpn as the page number rules use (for messages)."""
    page = page_of(vpn)
    return f"vpn {vpn:#x}" if page is None else f"page {page}"


FILES = {"f0": 6 * PAGE_SIZE, "f1": 5 * PAGE_SIZE // 2}

pages = st.one_of(st.integers(0, NEAR_PAGES - 1), st.integers(FAR_OFF, FAR_OFF + FAR_PAGES - 1))
npages = st.integers(1, 4)
#: mremap's old size: 0 is the 2.6 "duplicate the mapping" case
old_sizes = st.integers(0, 4)
# "-w-" is left out: a read of a write-only page succeeds only when a pte
# happens to be present (x86), which the reference cannot know.
# Repeats weight the choices towards private anonymous rw- memory, where
# anon_vmas live.
prots = st.sampled_from(["rw-"] * 4 + ["r--"] * 2 + ["---", "rwx", "r-x", "--x", "-wx"])
backings = st.sampled_from(["anon"] * 3 + ["f0", "f1"])
sharing = st.sampled_from(["private"] * 3 + ["shared"])
extras = st.sampled_from(["", "", "", "locked", "populate", "noreserve"])
parts = st.sampled_from(["all", "head", "tail", "middle", "beyond"])
advices = st.sampled_from(["dontneed", "dontneed", "normal", "random", "sequential", "willneed"])



def prot_str(vm_flags: int) -> str:
    return ("r" if vm_flags & VM_READ else "-") + ("w" if vm_flags & VM_WRITE else "-") + \
        ("x" if vm_flags & VM_EXEC else "-")


class RmapMachine(RuleBasedStateMachine):
    #: keyword arguments of the kernel's Config (tiny-memory variants set
    #: mem_pages/swap_pages here)
    CONFIG_KW: dict[str, Any] = {}
    #: run the ``reclaim`` rule (needs ``Kernel.reclaim``)
    RECLAIM = False
    #: an OOM kill retires the process instead of failing the test
    ALLOW_OOM = False
    MAX_PROCS = 4

    #: rule steps run by all instances (for the long run's report)
    steps_run = 0
    #: outcome counts, printed with RMAPLAB_STATS=1 or in a long run
    stats: Counter = Counter()

    procs = Bundle("procs")

    def __init__(self) -> None:
        super().__init__()
        self.k = Kernel(Config(**self.CONFIG_KW))
        self.ref = RefModel(START_BRK)
        for name, size in FILES.items():
            self.k.declare_file(name, size)
            self.ref.declare_file(name, size)
        self.next_pid = 1
        self.ntokens = 0
        self.shm: dict[int, Any] = {}      # id(ref Obj) -> (ref Obj, kernel File)
        self.shm_back: dict[int, Any] = {}   # id(kernel File) -> ref Obj

    # -- helpers ---------------------------------------------------------------

    @classmethod
    def _event(cls, what: str) -> None:
        cls.stats[what] += 1

    def _step(self) -> None:
        type(self).steps_run += 1

    def _alive(self, pid: int) -> bool:
        """False only for a process the OOM killer took (ALLOW_OOM)."""
        self._reap()
        return pid in self.ref.procs

    def _reap(self) -> None:
        """Forget processes the OOM killer took while another one ran."""
        for pid in list(self.ref.procs):
            if pid not in self.k.tasks:
                assert self.ALLOW_OOM and pid in getattr(self.k, "oom_killed", ()), \
                    f"pid {pid} vanished from the model"
                self.ref.exit(pid)

    def _call(self, fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            out = fn(*args, **kw)
        except SyscallError as e:
            return Err(e.errno)
        return out

    def _killed(self, pid: int, result: Any) -> bool:
        """A system call that faults pages in (MAP_LOCKED, mlock, mremap of
        locked memory) had its caller OOM-killed."""
        if result != "SIGKILL":
            return False
        assert self.ALLOW_OOM, f"pid {pid} was OOM-killed with unlimited memory"
        self.ref.exit(pid)
        return True

    def _vma_end_oracle(self, pid: int) -> Any:
        """vpn -> end vpn of the VMA holding it, from the layout *now*."""
        spans = [(v.vm_start >> PAGE_SHIFT, v.vm_end >> PAGE_SHIFT) for v in self.k.mm(pid).mmap]

        def vma_end(vpn: int) -> int:
            for s, e in spans:
                if s <= vpn < e:
                    return e
            raise AssertionError(f"no VMA holds {page_name(vpn)} but the reference maps it")
        return vma_end

    def _token(self) -> str:
        self.ntokens += 1
        return f"t{self.ntokens}"

    @classmethod
    def _outcome(cls, what: str, got: Any) -> None:
        cls._event(f"{what}: {got.errno if isinstance(got, Err) else 'ok'}")

    @staticmethod
    def _expect(what: str, got: Any, want: Any) -> None:
        assert got == want, f"{what}: model gave {got!r}, reference expects {want!r}"

    # -- processes -----------------------------------------------------------------

    @initialize(target=procs)
    def init(self) -> Any:
        """Process 1 (see LAYOUT) and a fork of it, sharing COW pages."""
        pid = self.spawn_()
        child = self.next_pid
        self.next_pid += 1
        self.k.fork(pid, child)
        self.ref.fork(pid, child)
        return multiple(pid, child)

    #: the address space every spawned process sets up first, so that early
    #: steps meet mappings: (page, pages, sharing, file, file page, pages
    #: written, prot). Each is mapped rw-, written, then mprotected to its
    #: prot. First the heap is grown over near pages 6-8 and written at 6.
    #: Near 4-5 then merges into the heap's VMA; near 0-2 has another
    #: anon_vma, so filling the gap at near 3 tries a three-way merge of
    #: incompatible anon_vmas. Far 1000-1001 (unfaulted, VM_ACCOUNT, r--)
    #: and 1002-1003 (faulted, rw-) are two anonymous VMAs that one
    #: mprotect can merge or shift the boundary of.
    LAYOUT = ((0, 3, "private", None, 0, 2, "rw-"),
              (4, 2, "private", None, 0, 1, "rw-"),
              (9, 3, "private", "f1", 0, 1, "rw-"),
              (1000, 2, "private", None, 0, 0, "r--"),
              (1002, 2, "private", None, 0, 2, "rw-"),
              (1004, 4, "shared", None, 0, 2, "rw-"),
              (1008, 2, "shared", "f0", 1, 1, "rw-"),
              (1010, 2, "private", "f0", 3, 0, "r--"))

    def spawn_(self) -> int:
        """A new process with the LAYOUT address space and heap."""
        pid = self.next_pid
        self.next_pid += 1
        self.k.spawn(pid)
        self.ref.spawn(pid)
        self._setup_layout(pid)
        return pid

    def _setup_layout(self, pid: int) -> None:
        self._expect("brk", self.k.brk(pid, addr_of(9)), self.ref.brk(pid, addr_of(9)))
        self._touch(pid, HEAP_PAGE, 1, True, note=False)
        for page, n, share, file, fpage, written, prot in self.LAYOUT:
            if not self._alive(pid):
                return
            flags = [share, "fixed"] + ([] if file else ["anonymous"])
            self.k.mmap(pid, addr_of(page), n * PAGE_SIZE, "rw-", flags, file=file,
                        offset=fpage * PAGE_SIZE)
            self.ref.mmap(pid, vpn_of(page), n, "rw-", share == "shared", file, fpage)
            if written:
                self._touch(pid, page, written, True, note=False)
            if prot != "rw-" and self._alive(pid):
                self.k.mprotect(pid, addr_of(page), n * PAGE_SIZE, prot)
                self.ref.mprotect(pid, vpn_of(page), n, prot)

    @precondition(lambda self: not self.ref.procs)
    @rule(target=procs)
    def spawn(self) -> int:
        self._step()
        return self.spawn_()

    @precondition(lambda self: len(self.ref.procs) < self.MAX_PROCS)
    @rule(target=procs, parent=procs)
    def fork(self, parent: int) -> int:
        self._step()
        if not self._alive(parent):
            return -1
        child = self.next_pid
        self.next_pid += 1
        mm = self.k.mm(parent)
        self._event(f"fork: parent has {'no' if mm.anon_rss == 0 else 'some'} anon pages")
        self.k.fork(parent, child)
        self.ref.fork(parent, child)
        return child

    @precondition(lambda self: len(self.ref.procs) >= 2)   # the last one exits at teardown
    @rule(pid=consumes(procs))
    def exit(self, pid: int) -> None:
        self._step()
        if not self._alive(pid):
            return
        self.k.exit(pid)
        self.ref.exit(pid)

    @rule(pid=procs)
    def exec(self, pid: int) -> None:
        self._step()
        if not self._alive(pid):
            return
        self.k.exec(pid)
        self.ref.exec(pid)
        self._setup_layout(pid)     # the new program maps its LAYOUT

    # -- mmap / munmap ---------------------------------------------------------------

    @rule(pid=procs, page=pages, n=npages, prot=prots, share=sharing, backing=backings,
          file_page=st.integers(0, 7), extra=extras)
    def mmap_fixed(self, pid: int, page: int, n: int, prot: str, share: str, backing: str,
                   file_page: int, extra: str) -> None:
        self._step()
        if not self._alive(pid):
            return
        flags = [share, "fixed"] + ([extra] if extra else [])
        file = None if backing == "anon" else backing
        if file is None:
            flags.append("anonymous")
        got = self._call(self.k.mmap, pid, addr_of(page), n * PAGE_SIZE, prot, flags,
                         file=file, offset=file_page * PAGE_SIZE if file else 0)
        if self._killed(pid, got):
            return
        self._outcome("mmap_fixed", got)
        self._expect("mmap", got, addr_of(page))
        self.ref.mmap(pid, vpn_of(page), n, prot, share == "shared", file,
                      file_page if file else 0, locked=extra == "locked")

    @rule(pid=procs, n=npages, prot=prots, share=sharing, backing=backings,
          file_page=st.integers(0, 7), hint=st.none() | pages)
    def mmap_anywhere(self, pid: int, n: int, prot: str, share: str, backing: str,
                      file_page: int, hint: int | None) -> None:
        self._step()
        if not self._alive(pid):
            return
        flags = [share]
        file = None if backing == "anon" else backing
        if file is None:
            flags.append("anonymous")
        got = self._call(self.k.mmap, pid, None if hint is None else addr_of(hint), n * PAGE_SIZE,
                         prot, flags, file=file, offset=file_page * PAGE_SIZE if file else 0)
        self._outcome("mmap_anywhere", got)
        assert isinstance(got, int) and got % PAGE_SIZE == 0, f"mmap gave {got!r}"
        vpn = got >> PAGE_SHIFT
        assert not any(self.ref.mapped(pid, vpn, n)), \
            f"non-fixed mmap returned {page_name(vpn)}, which overlaps a mapping"
        if hint is not None and not any(self.ref.mapped(pid, vpn_of(hint), n)):
            self._expect("mmap with a free hint", got, addr_of(hint))
        self.ref.mmap(pid, vpn, n, prot, share == "shared", file, file_page if file else 0)

    @rule(pid=procs, page=pages, n=npages)
    def munmap(self, pid: int, page: int, n: int) -> None:
        self._step()
        if not self._alive(pid):
            return
        got = self._call(self.k.munmap, pid, addr_of(page), n * PAGE_SIZE)
        self._outcome("munmap", got)
        self._expect("munmap", got, self.ref.munmap(pid, vpn_of(page), n))

    # -- mprotect / madvise / mlock --------------------------------------------------

    @rule(pid=procs, page=pages, n=npages, prot=prots)
    def mprotect(self, pid: int, page: int, n: int, prot: str) -> None:
        self._step()
        if not self._alive(pid):
            return
        got = self._call(self.k.mprotect, pid, addr_of(page), n * PAGE_SIZE, prot)
        self._outcome("mprotect", got)
        self._expect("mprotect", got, self.ref.mprotect(pid, vpn_of(page), n, prot))

    @rule(pid=procs, page=pages, n=npages, advice=advices)
    def madvise(self, pid: int, page: int, n: int, advice: str) -> None:
        self._step()
        if not self._alive(pid):
            return
        if advice == "dontneed":
            pgs = self.ref.procs[pid].pages
            kinds = {pg.kind for v in range(vpn_of(page), vpn_of(page) + n)
                     if (pg := pgs.get(v)) is not None and pg.own and pg.token is not None}
            for kind in kinds:
                self._event(f"madvise dontneed: drops {kind} data")
        got = self._call(self.k.madvise, pid, addr_of(page), n * PAGE_SIZE, advice)
        self._outcome(f"madvise {advice}", got)
        self._expect(f"madvise {advice}", got, self.ref.madvise(pid, vpn_of(page), n, advice))

    @rule(pid=procs, page=pages, n=npages)
    def mlock(self, pid: int, page: int, n: int) -> None:
        self._step()
        if not self._alive(pid):
            return
        oracle = self._vma_end_oracle(pid)
        got = self._call(self.k.mlock, pid, addr_of(page), n * PAGE_SIZE)
        if self._killed(pid, got):
            return
        self._outcome("mlock", got)
        self._expect("mlock", got, self.ref.mlock(pid, vpn_of(page), n, True, oracle))

    @rule(pid=procs, page=pages, n=npages)
    def munlock(self, pid: int, page: int, n: int) -> None:
        self._step()
        if not self._alive(pid):
            return
        oracle = self._vma_end_oracle(pid)
        got = self._call(self.k.munlock, pid, addr_of(page), n * PAGE_SIZE)
        self._outcome("munlock", got)
        self._expect("munlock", got, self.ref.mlock(pid, vpn_of(page), n, False, oracle))

    # -- brk / mremap -----------------------------------------------------------------

    @rule(pid=procs, page=st.integers(0, NEAR_PAGES + 2), byte=st.sampled_from([0, 0, 1, 2048]))
    def brk(self, pid: int, page: int, byte: int) -> None:
        self._step()
        if not self._alive(pid):
            return
        new = addr_of(page) + byte
        got = self._call(self.k.brk, pid, new)
        self._event(f"brk: {'moved' if got == new else 'unchanged'}")
        self._expect("brk", got, self.ref.brk(pid, new))

    def _mremap(self, pid: int, page: int, old_n: int, new_n: int, flags: list[str],
                new_page: int | None) -> None:
        oracle = self._vma_end_oracle(pid)
        got = self._call(self.k.mremap, pid, addr_of(page), old_n * PAGE_SIZE,
                         new_n * PAGE_SIZE, flags, None if new_page is None else addr_of(new_page))
        if self._killed(pid, got):
            return

        def placed() -> int:
            assert isinstance(got, int) and got % PAGE_SIZE == 0, \
                f"mremap should have moved the mapping but gave {got!r}"
            return got >> PAGE_SHIFT

        want = self.ref.mremap(pid, vpn_of(page), old_n, new_n, "maymove" in flags,
                               "fixed" in flags, None if new_page is None else vpn_of(new_page),
                               oracle, placed)
        if isinstance(want, int):
            kind = "shrink/same" if new_n <= old_n and new_page is None else \
                "in place" if want == vpn_of(page) else "moved"
            want <<= PAGE_SHIFT
            self._event(f"mremap{'_fixed' if new_page is not None else ''}: {kind}")
        else:
            self._outcome(f"mremap{'_fixed' if new_page is not None else ''}", want)
        self._expect("mremap", got, want)

    @rule(pid=procs, page=pages, old_n=old_sizes, new_n=npages, maymove=st.booleans())
    def mremap(self, pid: int, page: int, old_n: int, new_n: int, maymove: bool) -> None:
        self._step()
        if not self._alive(pid):
            return
        self._mremap(pid, page, old_n, new_n, ["maymove"] if maymove else [], None)

    @rule(pid=procs, page=pages, old_n=old_sizes, new_n=npages, new_page=pages,
          maymove=st.sampled_from([True, True, True, False]))
    def mremap_fixed(self, pid: int, page: int, old_n: int, new_n: int, new_page: int,
                     maymove: bool) -> None:
        self._step()
        if not self._alive(pid):
            return
        self._mremap(pid, page, old_n, new_n, ["maymove", "fixed"] if maymove else ["fixed"],
                     new_page)

    # -- rules aimed at VMA edges ---------------------------------------------------------
    #
    # Merges, splits and anon_vma hand-overs happen where a range meets a
    # VMA's edge or exactly fills a gap, which random pages rarely do. These
    # rules pick their range from the kernel's VMA list (``vma``/``gap`` is
    # an index, taken modulo the number of VMAs/gaps) and then run the plain
    # rule on it, so the expected results still come from the reference
    # alone. They do nothing when the process has no VMA (or gap).

    def _spans(self, pid: int) -> list[tuple[int, int]]:
        return [(v.vm_start >> PAGE_SHIFT, v.vm_end >> PAGE_SHIFT) for v in self.k.mm(pid).mmap]

    def _gaps(self, pid: int) -> list[tuple[int, int]]:
        spans = self._spans(pid)
        return [(a[1], b[0]) for a, b in zip(spans, spans[1:]) if b[0] > a[1]]

    @staticmethod
    def _part(s: int, e: int, part: str) -> tuple[int, int]:
        return {"all": (s, e), "head": (s, s + 1), "tail": (e - 1, e),
                "middle": (s + 1, e - 1) if e - s >= 3 else (s, e),
                "beyond": (s, e + 1)}[part]

    @rule(pid=procs, vma=st.integers(0, 15), part=parts, prot=prots)
    def mprotect_vma(self, pid: int, vma: int, part: str, prot: str) -> None:
        spans = self._spans(pid) if self._alive(pid) else []
        if not spans:
            return
        s, e = self._part(*spans[vma % len(spans)], part)
        if page_of(s) is not None:
            self.mprotect(pid, page_of(s), e - s, prot)

    @rule(pid=procs, vma=st.integers(0, 15), part=parts,
          what=st.sampled_from(["write", "read", "dontneed", "normal", "mlock", "munlock",
                                "munmap"]))
    def apply_to_vma(self, pid: int, vma: int, part: str, what: str) -> None:
        """Touch, madvise, (un)lock or unmap (part of) one VMA."""
        spans = self._spans(pid) if self._alive(pid) else []
        if not spans:
            return
        s, e = self._part(*spans[vma % len(spans)], part)
        page, n = page_of(s), e - s
        if page is None:
            return
        if what in ("write", "read"):
            getattr(self, what)(pid, page, n)
        elif what in ("dontneed", "normal"):
            self.madvise(pid, page, n, what)
        else:
            getattr(self, what)(pid, page, n)

    @rule(pid=procs, gap=st.integers(0, 15), side=st.sampled_from(["fill", "left", "right"]),
          prot=prots, share=sharing, backing=backings, file_page=st.integers(0, 7))
    def mmap_gap(self, pid: int, gap: int, side: str, prot: str, share: str, backing: str,
                 file_page: int) -> None:
        """Map into a gap between two VMAs: all of it (if it is at most 8
        pages), or one page against its left or right neighbour."""
        gaps = self._gaps(pid) if self._alive(pid) else []
        if not gaps:
            return
        g0, g1 = gaps[gap % len(gaps)]
        if side == "fill" and g1 - g0 > 8:
            side = "left"
        s, e = {"fill": (g0, g1), "left": (g0, g0 + 1), "right": (g1 - 1, g1)}[side]
        if page_of(s) is not None:
            self.mmap_fixed(pid, page_of(s), e - s, prot, share, backing, file_page, "")

    @rule(pid=procs, vma=st.integers(0, 15), gap=st.integers(0, 15),
          side=st.sampled_from(["left", "right"]), grow=st.integers(-1, 1))
    def mremap_vma(self, pid: int, vma: int, gap: int, side: str, grow: int) -> None:
        """Move a whole VMA (resized by ``grow`` pages) against the left or
        right neighbour of a gap (MREMAP_FIXED)."""
        spans = self._spans(pid) if self._alive(pid) else []
        gaps = self._gaps(pid)
        if not spans or not gaps:
            return
        s, e = spans[vma % len(spans)]
        g0, g1 = gaps[gap % len(gaps)]
        new_n = max(1, e - s + grow)
        dest = g0 if side == "left" else g1 - new_n
        if page_of(s) is not None and page_of(dest) is not None:
            self.mremap_fixed(pid, page_of(s), e - s, new_n, page_of(dest), True)

    # -- the CPU ------------------------------------------------------------------------

    def _touch(self, pid: int, page: int, n: int, write: bool, note: bool = True) -> None:
        token = self._token() if write else None
        if note:
            self._event(f"touch: process maps {min(len(self.ref.procs[pid].pages) // 4 * 4, 20):2}+"
                        " pages")
            self._event(f"touch: live processes {len(self.ref.procs)}")
        got = self.k.touch(pid, addr_of(page), n * PAGE_SIZE, "w" if write else "r", token)
        if got.result == "SIGKILL":
            assert self.ALLOW_OOM, f"pid {pid} was OOM-killed with unlimited memory"
            self.ref.touch_killed(pid, vpn_of(page), n, write)
            return
        res, reads, fault = self.ref.touch(pid, vpn_of(page), n, write, token)
        what = f"{'write' if write else 'read'} of {n} pages at {page_name(vpn_of(page))}"
        if note:
            self._event(f"{'write' if write else 'read'}: {res}")
        self._expect(f"{what}: result", got.result, res)
        if fault is not None:
            self._expect(f"{what}: fault address", got.fault_addr, fault << PAGE_SHIFT)
        if not write:
            self._expect(f"{what}: data", got.read, reads)

    @rule(pid=procs, page=pages, n=npages)
    def write(self, pid: int, page: int, n: int) -> None:
        self._step()
        if self._alive(pid):
            self._touch(pid, page, n, True)

    @rule(pid=procs, page=pages, n=npages)
    def read(self, pid: int, page: int, n: int) -> None:
        self._step()
        if self._alive(pid):
            self._touch(pid, page, n, False)

    @precondition(lambda self: self.RECLAIM)
    @rule(n=st.integers(1, 16))
    def reclaim(self, n: int) -> None:
        """Memory pressure (tiny-memory variants only): reclaim may swap
        pages out; nothing a process sees may change."""
        self._step()
        got = self.k.reclaim(n)
        self._event(f"reclaim: {'freed some' if got else 'freed none'}")
        self._reap()

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def kernel_invariants(self) -> None:
        scan = validate(self.k)
        check_rmap_complete(self.k, scan)

    @invariant()
    def layout_matches_reference(self) -> None:
        """Every VMA page is a reference page with the same prot, sharing,
        backing object and offset, and lock state; and nothing else is."""
        self._reap()
        self._expect("live processes", sorted(self.k.pids()), sorted(self.ref.procs))
        for pid, proc in self.ref.procs.items():
            mm = self.k.mm(pid)
            self._expect(f"pid {pid} brk", mm.brk, proc.brk)
            seen = 0
            for vma in mm.mmap:
                s, e = vma.vm_start >> PAGE_SHIFT, vma.vm_end >> PAGE_SHIFT
                seen += e - s
                for vpn in range(s, e):
                    pg = proc.pages.get(vpn)
                    where = f"pid {pid} {page_name(vpn)} in {vma!r}"
                    assert pg is not None, f"{where}: mapped, but the reference has no page there"
                    assert prot_str(vma.vm_flags) == pg.prot, f"{where}: reference prot {pg.prot}"
                    assert bool(vma.vm_flags & VM_LOCKED) == pg.locked, \
                        f"{where}: reference locked={pg.locked}"
                    assert bool(vma.vm_flags & VM_MAYSHARE) == (pg.kind == SHARED), \
                        f"{where}: reference kind {pg.kind}"
                    f = vma.vm_file
                    if pg.kind == ANON:
                        assert f is None, f"{where}: reference says private anonymous"
                        continue
                    assert f is not None, f"{where}: reference says backed by {pg.obj!r}"
                    self._expect(f"{where}: file offset", vma.vm_pgoff + vpn - s, pg.index)
                    if pg.obj.shmem:
                        assert f.shmem, f"{where}: reference says shmem"
                        ref_obj, kf = self.shm.setdefault(id(pg.obj), (pg.obj, f))
                        other = self.shm_back.setdefault(id(f), pg.obj)
                        assert kf is f and other is pg.obj, \
                            f"{where}: shmem segments of the model and reference do not pair up"
                    else:
                        self._expect(f"{where}: file", f.name, pg.obj.name)
            self._expect(f"pid {pid} mapped pages", seen, len(proc.pages))

    @invariant()
    def resident_data_matches_reference(self) -> None:
        """Every present pte maps the content the process would read."""
        for pid, proc in self.ref.procs.items():
            mm = self.k.mm(pid)
            for vma in mm.mmap:
                vpns, ptes = mm.pgd.populated(vma.vm_start >> PAGE_SHIFT, vma.vm_end >> PAGE_SHIFT)
                for vpn, pte in zip(vpns.tolist(), ptes.tolist()):
                    if not pte & 1:
                        continue
                    pg = proc.pages[vpn]
                    self._expect(f"pid {pid} resident {page_name(vpn)} ({pg.kind})",
                                 self.k.read_page(pid, vpn << PAGE_SHIFT), pg.content())

    def teardown(self) -> None:
        if self.RECLAIM:
            self._event(f"runs that swapped: {bool(getattr(self.k.stat, 'pswpout', 0))}")
        for pid in list(self.k.pids()):
            self.k.exit(pid)
        check_no_leaks(self.k)


# -- settings and the parametrised runs ------------------------------------------------------

#: Hypothesis settings profiles, chosen by RMAPLAB_HYPOTHESIS_PROFILE:
#: ``ci`` (default: every scheme, plain and tiny memory, in about a minute),
#: ``dev`` (three times as many programs), ``soak`` (RMAPLAB_STRESS_STEPS
#: steps per machine at least, default 100 000).
PROFILE = os.environ.get("RMAPLAB_HYPOTHESIS_PROFILE", "ci")
_stress = int(os.environ.get("RMAPLAB_STRESS_STEPS", "0") or 0)
if _stress or PROFILE == "soak":
    PROFILE, STEPS_PER_EXAMPLE = "soak", 100
    _stress = _stress or 100_000
    MAX_EXAMPLES = math.ceil(_stress / STEPS_PER_EXAMPLE * 1.15)
else:
    STEPS_PER_EXAMPLE = 50
    MAX_EXAMPLES = {"ci": 20, "dev": 60}.get(PROFILE)
    if MAX_EXAMPLES is None:
        raise ValueError(f"RMAPLAB_HYPOTHESIS_PROFILE={PROFILE!r}: choose ci, dev or soak")
for _name, _n in (("ci", MAX_EXAMPLES), ("dev", MAX_EXAMPLES), ("soak", MAX_EXAMPLES)):
    settings.register_profile(f"rmaplab-{_name}", max_examples=_n,
                              stateful_step_count=STEPS_PER_EXAMPLE, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow,
                                                     HealthCheck.filter_too_much])


class TinyMemoryMachine(RmapMachine):
    """The same machine on 32 frames of memory and 256 swap slots, with a
    ``reclaim`` rule: pages go to swap and come back under everything the
    machine does."""

    CONFIG_KW = dict(mem_pages=32, swap_pages=256)
    RECLAIM = True
    ALLOW_OOM = True


def machine_for(scheme: str, tiny: bool, **extra: Any) -> type:
    """RmapMachine (or its tiny-memory form) under ``scheme``."""
    base = TinyMemoryMachine if tiny else RmapMachine
    kw = dict(base.CONFIG_KW, scheme=scheme, **extra)
    machine = type(f"{base.__name__}_{scheme}", (base,), {"CONFIG_KW": kw, "stats": Counter(),
                                                          "steps_run": 0})
    machine.TestCase.settings = settings.get_profile(f"rmaplab-{PROFILE}")
    return machine


def _run(machine: type) -> None:
    machine.steps_run = 0
    machine.stats.clear()
    machine.TestCase().runTest()
    if _stress or os.environ.get("RMAPLAB_STATS"):
        print()
        for what, n in sorted(machine.stats.items()):
            print(f"  {what:40} {n}")
    if _stress:
        print(f"\n{machine.__name__}: {machine.steps_run} steps in {MAX_EXAMPLES} examples")
        assert machine.steps_run >= _stress, \
            f"only {machine.steps_run} steps ran; raise MAX_EXAMPLES"


#: every registered scheme, and anon_vma_chain's 2011 merge rule too
VARIANTS = [pytest.param(s, {}, id=s) for s in SCHEMES] + [
    pytest.param("anon_vma_chain", {"extra": {"avc_merge_rule": "2011"}}, id="anon_vma_chain-2011")]


@pytest.mark.parametrize("tiny", [False, True], ids=["plain", "tiny-memory"])
@pytest.mark.parametrize("scheme,extra", VARIANTS)
def test_rmap_machine(scheme: str, extra: dict, tiny: bool) -> None:
    """Any failure fails: Hypothesis prints the replayable program."""
    _run(machine_for(scheme, tiny, **extra))


if __name__ == "__main__":
    pytest.main([__file__, "-q"])
