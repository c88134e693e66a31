"""The model's kernel: processes and their system calls.

``Kernel`` is the one object a user of the Python API needs::

    k = Kernel()
    k.spawn(1)
    a = k.mmap(1, None, 3 * 4096, "rw-", ["private", "anonymous"])
    k.touch(1, a, 3 * 4096, "w", "hello")
    k.fork(1, 2)

A system call returns its result or raises ``SyscallError`` carrying the
errno name; the state is then what Linux leaves. ``touch`` returns what the
process sees: ``"ok"``, ``"SIGSEGV"`` or ``"SIGBUS"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rmaplab.asm.page import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, TASK_UNMAPPED_BASE, ULONG_MASK
from rmaplab.config import Config
from rmaplab.errors import OOMKilled, SyscallError
from rmaplab.kernel.abi import MMAP_FLAGS, MREMAP_FLAGS, AbiError, parse_flags, parse_prot
from rmaplab.mm import mlock as _mlock
from rmaplab.mm.context import MmContext
from rmaplab.mm.filemap import FMODES
from rmaplab.mm.fork import dup_mmap
from rmaplab.mm.madvise import ADVICE, sys_madvise
from rmaplab.mm.memory import fault_range, fault_sigbus
from rmaplab.mm.mm_types import (VM_EXEC, VM_GROWSDOWN, VM_READ, VM_WRITE, MmStruct,
                                 VmAreaStruct)
from rmaplab.mm.mmap import (MAP_ANONYMOUS, do_mmap_pgoff, do_munmap, exit_mmap,
                             install_special_mapping, sys_brk)
from rmaplab.mm.mprotect import sys_mprotect
from rmaplab.mm.mremap import do_mremap
from rmaplab.mm.page import ZERO_PFN
from rmaplab.mm.vmscan import Zone, select_bad_process, try_to_free_pages
from rmaplab.rmap import registry

#: the initial program break of a spawned process (there is no program
#: image, so end_code == start_brk == brk)
START_BRK = 0x0000_0000_0060_0000


def _ulong(x: int) -> int:
    """System-call arguments are ``unsigned long``: a negative Python int
    is the huge value C would see."""
    return x & ULONG_MASK


class NoSuchProcess(ValueError):
    """An event names a pid that does not exist (or one that already does)."""


@dataclass
class Task:
    pid: int
    mm: MmStruct


@dataclass
class TouchResult:
    result: str                     # "ok", "SIGSEGV" or "SIGBUS"
    read: list[Any] | None = None   # tokens read, for a read access
    fault_addr: int | None = None   # where a signal hit


class Kernel:
    """One simulated machine: processes, memory, swap, files and a scheme."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self.ctx = MmContext(self.config, registry.get(self.config.scheme_spec or self.config.scheme))
        self.ctx.oom_hook = self._oom_kill
        self.tasks: dict[int, Task] = {}
        #: pids the OOM killer took, in order
        self.oom_killed: list[int] = []

    # -- accessors -------------------------------------------------------------

    @property
    def mem(self) -> Any:
        return self.ctx.mem

    @property
    def stat(self) -> Any:
        return self.ctx.stat

    @property
    def scheme(self) -> Any:
        return self.ctx.scheme

    def mm(self, pid: int) -> MmStruct:
        t = self.tasks.get(pid)
        if t is None:
            raise NoSuchProcess(f"no process with pid {pid}")
        return t.mm

    # -- processes ---------------------------------------------------------------

    def _new_mm(self, pid: int, start_brk: int = START_BRK) -> MmStruct:
        mm = MmStruct(start_brk, self.config.max_map_count, self.ctx.tables)
        mm.owner = pid
        mm.topdown = self.config.mmap_layout == "top-down"
        return mm

    def spawn(self, pid: int, start_brk: int = START_BRK,
              special: Iterable[tuple[int, int, str]] = ()) -> None:
        """A process as if just exec'ed, with an empty address space.

        ``start_brk`` places the program break; ``special`` are ranges
        (start, end, perms) that the program image, stack and vDSO of a real
        process occupy (``rmaplab conform`` passes the live worker's): they
        become VM_IO|VM_DONTEXPAND VMAs that never merge, hold no pages and
        are left out of state dumps, so that addresses the kernel picks are
        the addresses the model picks."""
        if pid in self.tasks:
            raise NoSuchProcess(f"pid {pid} already exists")
        mm = self._new_mm(pid, start_brk)
        self.scheme.mm_exec(mm)
        self.tasks[pid] = Task(pid, mm)
        self._install_special(mm, special)

    def fork(self, pid: int, child: int) -> None:
        """``fork``: the child gets a copy of the address space (dup_mmap)."""
        parent = self.mm(pid)
        if child in self.tasks:
            raise NoSuchProcess(f"pid {child} already exists")
        mm = self._new_mm(child)
        mm.free_area_cache = TASK_UNMAPPED_BASE
        dup_mmap(self.ctx, mm, parent)
        self.tasks[child] = Task(child, mm)

    def exec(self, pid: int, start_brk: int = START_BRK,
             special: Iterable[tuple[int, int, str]] = ()) -> None:
        """``execve``: the old address space goes, an empty one replaces it
        (``start_brk`` and ``special`` as for ``spawn``)."""
        old = self.mm(pid)
        exit_mmap(self.ctx, old)
        mm = self._new_mm(pid, start_brk)
        self.scheme.mm_exec(mm)
        self.tasks[pid].mm = mm
        self._install_special(mm, special)

    def _install_special(self, mm: MmStruct, special: Iterable[tuple[int, int, str]]) -> None:
        for start, end, perms in special:
            install_special_mapping(self.ctx, mm, start, end, parse_prot(perms[:3]))

    def exit(self, pid: int) -> None:
        """``exit``: the process and its address space go away."""
        exit_mmap(self.ctx, self.mm(pid))
        del self.tasks[pid]

    def declare_file(self, name: str, size: int) -> None:
        """A regular file of ``size`` bytes; page i holds ``"<name>:<i>"``."""
        if name in self.ctx.files:
            raise SyscallError("EEXIST", f"file {name!r} already declared")
        self.ctx.new_file(name, size)

    # -- system calls --------------------------------------------------------------

    def mmap(self, pid: int, addr: int | None, length: int, prot: int | str,
             flags: int | Iterable[str], file: str | None = None, offset: int = 0,
             open: str = "rw") -> int:
        """``mmap``. A file mapping goes through the process tree's open
        file description of ``file`` in mode ``open`` ("rw", "r", "w")."""
        mm = self.mm(pid)
        addr, length, offset = _ulong(addr or 0), _ulong(length), _ulong(offset)
        prot_v = parse_prot(prot)
        flags_v = parse_flags(flags, MMAP_FLAGS, "mmap")
        if open not in FMODES:
            raise AbiError(f"bad open mode {open!r}: expected rw, r or w")
        if offset & ~PAGE_MASK:
            raise SyscallError("EINVAL", "offset not page aligned")
        f = None
        if not flags_v & MAP_ANONYMOUS:
            if file is None or file not in self.ctx.files:
                raise SyscallError("EBADF", f"no such file {file!r}")
            f = self.ctx.files[file].open_file(open)
        return self._killable(do_mmap_pgoff, self.ctx, mm, f, addr, length, prot_v,
                              flags_v, offset >> PAGE_SHIFT)

    @staticmethod
    def _killable(fn: Any, *args: Any) -> Any:
        """Run a system call that may fault pages in (MAP_LOCKED, mlock,
        mremap of locked memory); if the OOM killer takes the caller, the
        call never returns: the result is ``"SIGKILL"``."""
        try:
            return fn(*args)
        except OOMKilled:
            return "SIGKILL"

    def munmap(self, pid: int, addr: int, length: int) -> int:
        return do_munmap(self.ctx, self.mm(pid), _ulong(addr), _ulong(length))

    def mprotect(self, pid: int, addr: int, length: int, prot: int | str) -> int:
        return sys_mprotect(self.ctx, self.mm(pid), _ulong(addr), _ulong(length), parse_prot(prot))

    def mremap(self, pid: int, addr: int, old_len: int, new_len: int,
               flags: int | Iterable[str] = (), new_addr: int | None = None) -> int:
        return self._killable(do_mremap, self.ctx, self.mm(pid), _ulong(addr), _ulong(old_len),
                              _ulong(new_len), parse_flags(flags, MREMAP_FLAGS, "mremap"),
                              _ulong(new_addr or 0))

    def brk(self, pid: int, addr: int) -> int:
        return sys_brk(self.ctx, self.mm(pid), _ulong(addr))

    def madvise(self, pid: int, addr: int, length: int, advice: str | int) -> int:
        if isinstance(advice, str):
            if advice not in ADVICE:
                raise SyscallError("EINVAL", f"unknown advice {advice!r}")
            advice = ADVICE[advice]
        return sys_madvise(self.ctx, self.mm(pid), _ulong(addr), _ulong(length), advice)

    def mlock(self, pid: int, addr: int, length: int) -> int:
        return self._killable(_mlock.do_mlock, self.ctx, self.mm(pid), _ulong(addr), _ulong(length),
                              True)

    def munlock(self, pid: int, addr: int, length: int) -> int:
        return _mlock.do_mlock(self.ctx, self.mm(pid), _ulong(addr), _ulong(length), False)

    # -- the CPU ------------------------------------------------------------------------

    def touch(self, pid: int, addr: int, length: int = PAGE_SIZE, access: str = "r",
              token: Any = None) -> TouchResult:
        """The process accesses ``[addr, addr+length)`` page by page, in
        address order (``do_page_fault`` on each page that needs it). A write
        stores ``token`` in every page. Stops at the first signal."""
        mm = self.mm(pid)
        write = access == "w"
        if access not in ("r", "w"):
            raise ValueError(f"access must be 'r' or 'w', not {access!r}")
        tid = self.ctx.contents.intern(token) if write else None
        addr = _ulong(addr)
        if length <= 0:
            return TouchResult("ok", [] if not write else None)
        try:
            return self._touch(mm, addr, length, write, tid)
        except OOMKilled as e:
            return TouchResult("SIGKILL", None, addr if e.pid == pid else None)

    def _touch(self, mm: MmStruct, addr: int, length: int, write: bool, tid: int | None) -> TouchResult:
        vpn, last = addr >> PAGE_SHIFT, (addr + length - 1) >> PAGE_SHIFT
        out: list[np.ndarray] = []
        while vpn <= last:
            a = vpn << PAGE_SHIFT
            vma = mm.find_vma(a)
            if vma is None:
                return self._signal("SIGSEGV", a, out, write)
            if vma.vm_start > a:
                if not vma.vm_flags & VM_GROWSDOWN or not self._expand_stack(vma, a):
                    return self._signal("SIGSEGV", a, out, write)
            end = min(last + 1, vma.vm_end >> PAGE_SHIFT)
            stop, sig = self._allowed(vma, vpn, end, write)
            if stop > vpn:
                out.append(fault_range(self.ctx, vma, vpn, stop, write, tid))
            if sig == "SIGBUS":
                fault_sigbus(self.ctx, vma, stop, write)
            if sig:
                return self._signal(sig, stop << PAGE_SHIFT, out, write)
            vpn = end
        return TouchResult("ok", self._tokens(out) if not write else None)

    def _allowed(self, vma: VmAreaStruct, s: int, e: int, write: bool) -> tuple[int, str | None]:
        """How far into ``[s, e)`` the access gets, and the signal there."""
        flags = vma.vm_flags
        if write and not flags & VM_WRITE:
            return s, "SIGSEGV"
        if not flags & (VM_READ | VM_WRITE | VM_EXEC):
            return s, "SIGSEGV"
        stop, sig = e, None
        if not write and not flags & (VM_READ | VM_EXEC):
            # Write-only: a present pte reads without a fault; a missing one
            # faults and do_page_fault refuses the read.
            ptes = vma.vm_mm.pgd.gather(s, e)
            missing = np.flatnonzero((ptes & 1) == 0)
            if len(missing):
                stop, sig = s + int(missing[0]), "SIGSEGV"
        f = vma.vm_file
        if f is not None:
            # Pages below offset 0 (a grown-down shmem stack: the unsigned
            # pgoff wrapped) or at or beyond the end of the file: SIGBUS.
            start = vma.vm_start >> PAGE_SHIFT
            if vma.vm_pgoff + (s - start) < 0:
                return s, "SIGBUS"
            first_bad = start + f.size_pages - vma.vm_pgoff
            if first_bad < stop:
                stop, sig = max(first_bad, s), "SIGBUS"
        return stop, sig

    def _expand_stack(self, vma: VmAreaStruct, addr: int) -> bool:
        """``expand_stack``: grow a VM_GROWSDOWN VMA down to ``addr``
        (vm_pgoff goes down with it); False (SIGSEGV) past RLIMIT_STACK
        (``acct_stack_growth``). The stack-pointer distance check of
        do_page_fault is not modelled. A file-backed VMA (shared anonymous
        memory) is moved in its file's i_mmap as the VMA changes."""
        if vma.vm_end - addr > self.config.rlimit_stack:
            return False
        self.scheme.anon_vma_prepare(vma)
        grow = (vma.vm_start - addr) >> PAGE_SHIFT
        f = vma.vm_file
        if f is not None:
            f.i_mmap.remove(vma)
        vma.vm_start = addr
        vma.vm_pgoff -= grow
        if f is not None:
            f.i_mmap.insert(vma)
        vma.vm_mm.total_vm += grow
        return True

    def _tokens(self, parts: list[np.ndarray]) -> list[Any]:
        value = self.ctx.contents.value
        if not parts:
            return []
        toks = np.concatenate(parts)
        uniq, inv = np.unique(toks, return_inverse=True)
        vals = [value(t) for t in uniq.tolist()]
        return [vals[i] for i in inv.tolist()]

    def _signal(self, sig: str, addr: int, parts: list[np.ndarray], write: bool) -> TouchResult:
        return TouchResult(sig, None if write else self._tokens(parts), addr)

    # -- reclaim -------------------------------------------------------------------

    def reclaim(self, pages: int) -> int:
        """The trace's ``reclaim`` event: run the priority loop of
        ``try_to_free_pages`` down to priority 0, where even a list of one
        page is scanned, until ``pages`` frames are freed or nothing more
        can be; returns the number freed. A pass that frees nothing has
        still aged what it found referenced, so it gives up only after
        three such passes in a row: the same state always frees the same
        pages."""
        zone = self.ctx.zone or Zone(self.mem.capacity)
        freed = idle = 0
        while freed < pages and idle < 3:
            got = try_to_free_pages(self.ctx, zone, pages - freed, at_least_cluster=False,
                                    force=True)
            idle = 0 if got else idle + 1
            freed += got
        return freed

    def _oom_kill(self, mm: MmStruct | None) -> bool:
        """``out_of_memory``: kill the process with the highest badness."""
        pid = select_bad_process(self)
        if pid is None:
            return False
        victim = self.mm(pid)
        self.stat.oom_kills += 1
        self.oom_killed.append(pid)
        self.exit(pid)
        if victim is mm:
            raise OOMKilled(pid)
        return True

    # -- inspection -----------------------------------------------------------------------

    def read_page(self, pid: int, addr: int) -> Any:
        """What a read of the page at ``addr`` would return, without
        faulting (None for zeros); raises LookupError if not resident."""
        pte = self.mm(pid).pgd.get(addr >> PAGE_SHIFT)
        if not pte & 1:
            raise LookupError(f"{addr:#x} is not resident")
        pfn = pte >> 12
        return None if pfn == ZERO_PFN else self.ctx.contents.value(int(self.mem.token[pfn]))

    def pids(self) -> list[int]:
        return sorted(self.tasks)
