"""The Linux interfaces the ptrace recorder uses, through ``ctypes``:
``ptrace(2)`` (``PTRACE_SEIZE`` with event options, ``PTRACE_GET_SYSCALL_INFO``),
a seccomp filter that stops a tracee only at the system calls the recorder
wants (``SECCOMP_RET_TRACE``, as ``strace --seccomp-bpf`` does), and the
page-table view of ``/proc/<pid>/pagemap``.

x86_64 only: the system call numbers and ``AUDIT_ARCH_X86_64`` are that
ABI's. Nothing here knows about traces; ``rmaplab.trace.ptrace_record``
builds them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import mmap
import os
import platform
import struct
from typing import NamedTuple

import numpy as np

# -- ptrace(2) ---------------------------------------------------------------------------

PTRACE_CONT, PTRACE_KILL, PTRACE_DETACH, PTRACE_SYSCALL = 7, 8, 17, 24
PTRACE_SETOPTIONS, PTRACE_GETEVENTMSG = 0x4200, 0x4201
PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_LISTEN = 0x4206, 0x4207, 0x4208
PTRACE_GET_SYSCALL_INFO = 0x420E

O_TRACESYSGOOD, O_TRACEFORK, O_TRACEVFORK, O_TRACECLONE = 0x1, 0x2, 0x4, 0x8
O_TRACEEXEC, O_TRACEEXIT, O_TRACESECCOMP, O_EXITKILL = 0x10, 0x40, 0x80, 0x100000

EVENT_FORK, EVENT_VFORK, EVENT_CLONE, EVENT_EXEC = 1, 2, 3, 4
EVENT_EXIT, EVENT_SECCOMP, EVENT_STOP = 6, 7, 128

INFO_NONE, INFO_ENTRY, INFO_EXIT, INFO_SECCOMP = 0, 1, 2, 3

WALL = 0x40000000          # __WALL: wait for every child, threads included

AUDIT_ARCH_X86_64 = 0xC000003E

#: x86_64 system call numbers
NR = {
    "mmap": 9, "mprotect": 10, "munmap": 11, "brk": 12, "mremap": 25, "madvise": 28,
    "shmat": 30, "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "exit": 60,
    "shmdt": 67, "mlock": 149, "munlock": 150, "mlockall": 151, "munlockall": 152,
    "remap_file_pages": 216, "exit_group": 231, "execveat": 322, "mlock2": 325,
    "pkey_mprotect": 329, "clone3": 435, "process_madvise": 440, "map_shadow_stack": 453,
    "mseal": 462,
}
NAME = {v: k for k, v in NR.items()}


class PtraceUnavailable(Exception):
    """ptrace cannot be used here (the message says why, in one line)."""


_libc: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        if platform.system() != "Linux":
            raise PtraceUnavailable(f"the ptrace recorder needs Linux, not {platform.system()}")
        if platform.machine() != "x86_64":
            raise PtraceUnavailable(f"the ptrace recorder needs x86_64, not {platform.machine()}")
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        lib.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        lib.ptrace.restype = ctypes.c_long
        lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                              ctypes.c_ulong]
        lib.prctl.restype = ctypes.c_int
        _libc = lib
    return _libc


def ptrace(request: int, pid: int, addr: int = 0, data: int | ctypes.c_void_p | None = 0) -> int:
    """Raw ptrace; raises OSError with the errno on failure."""
    r = libc().ptrace(request, pid, addr, data)
    if r == -1:
        e = ctypes.get_errno()
        if e:
            raise OSError(e, f"ptrace({request:#x}, {pid}): {os.strerror(e)}")
    return r


def resume(request: int, pid: int, sig: int = 0) -> bool:
    """PTRACE_CONT/SYSCALL/LISTEN; False if the task is gone (ESRCH)."""
    try:
        ptrace(request, pid, 0, sig)
    except OSError as e:
        if e.errno == errno.ESRCH:
            return False
        raise
    return True


def event_msg(pid: int) -> int:
    v = ctypes.c_ulong(0)
    ptrace(PTRACE_GETEVENTMSG, pid, 0, ctypes.addressof(v))
    return v.value


class SyscallInfo(NamedTuple):
    op: int                 # INFO_ENTRY, INFO_EXIT, INFO_SECCOMP (or INFO_NONE)
    arch: int
    nr: int                 # entry and seccomp stops
    args: tuple             # entry and seccomp stops: six unsigned longs
    rval: int               # exit stops: the return value (negative errno on error)
    is_error: bool


_INFO_SIZE = 88
_info_buf = ctypes.create_string_buffer(_INFO_SIZE)


def syscall_info(pid: int) -> SyscallInfo:
    """PTRACE_GET_SYSCALL_INFO (Linux 5.3)."""
    ptrace(PTRACE_GET_SYSCALL_INFO, pid, _INFO_SIZE, ctypes.addressof(_info_buf))
    raw = _info_buf.raw
    op, arch = raw[0], struct.unpack_from("<I", raw, 4)[0]
    if op in (INFO_ENTRY, INFO_SECCOMP):
        vals = struct.unpack_from("<7Q", raw, 24)
        return SyscallInfo(op, arch, vals[0], vals[1:], 0, False)
    if op == INFO_EXIT:
        rval, is_error = struct.unpack_from("<qB", raw, 24)
        return SyscallInfo(op, arch, -1, (), rval, bool(is_error))
    return SyscallInfo(op, arch, -1, (), 0, False)


# -- the seccomp filter ---------------------------------------------------------------------

_BPF_LD_W_ABS, _BPF_JEQ_K, _BPF_RET_K = 0x20, 0x15, 0x06
SECCOMP_RET_TRACE, SECCOMP_RET_ALLOW = 0x7FF00000, 0x7FFF0000
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
PR_SET_NO_NEW_PRIVS = 38
PR_SET_THP_DISABLE = 41


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def seccomp_program(numbers: list[int]) -> list[tuple[int, int, int, int]]:
    """A classic BPF program: SECCOMP_RET_TRACE for the x86_64 system calls
    ``numbers``, SECCOMP_RET_ALLOW for everything else (other ABIs
    included)."""
    numbers = sorted(set(numbers))
    n = len(numbers)
    prog = [(_BPF_LD_W_ABS, 0, 0, 4),                       # seccomp_data.arch
            (_BPF_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
            (_BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
            (_BPF_LD_W_ABS, 0, 0, 0)]                       # seccomp_data.nr
    for i, nr in enumerate(numbers):
        prog.append((_BPF_JEQ_K, n - i, 0, nr))             # to the RET_TRACE
    prog.append((_BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    prog.append((_BPF_RET_K, 0, 0, SECCOMP_RET_TRACE))
    return prog


def install_seccomp(numbers: list[int]) -> None:
    """In the process to be traced (before execve): stop at ``numbers``
    under the tracer. Raises OSError when the kernel refuses."""
    lib = libc()
    prog = seccomp_program(numbers)
    arr = (_SockFilter * len(prog))(*[_SockFilter(*x) for x in prog])
    fprog = _SockFprog(len(prog), arr)
    if lib.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) == 0:
        return
    e = ctypes.get_errno()
    if e != errno.EACCES:
        raise OSError(e, f"prctl(PR_SET_SECCOMP): {os.strerror(e)}")
    # without CAP_SYS_ADMIN a filter needs no_new_privs
    if lib.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(e)}")
    if lib.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"prctl(PR_SET_SECCOMP): {os.strerror(e)}")


def disable_thp() -> bool:
    """PR_SET_THP_DISABLE for this process and its descendants (inherited
    across fork and execve)."""
    return libc().prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0


# -- /proc/<pid>/pagemap -----------------------------------------------------------------------

PAGE = 4096
PAGE_SHIFT = 12
PM_PRESENT, PM_SWAP, PM_FILE = 1 << 63, 1 << 62, 1 << 61
PM_EXCLUSIVE, PM_SOFT_DIRTY = 1 << 56, 1 << 55
PM_PFN_MASK = (1 << 55) - 1
#: entries read at once (2 MiB of pagemap: 1 GiB of address space)
CHUNK = 1 << 18


def pagemap_nonzero(fd: int, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """(page numbers, entries) of the pages of ``[start, end)`` whose
    pagemap entry is present or swapped, read in chunks."""
    pages: list[np.ndarray] = []
    ents: list[np.ndarray] = []
    first, last = start >> PAGE_SHIFT, end >> PAGE_SHIFT
    mask = np.uint64(PM_PRESENT | PM_SWAP)
    p = first
    while p < last:
        n = min(CHUNK, last - p)
        try:
            buf = os.pread(fd, n * 8, p * 8)
        except OSError:
            break
        e = np.frombuffer(buf, dtype="<u8")
        idx = np.flatnonzero(e & mask)
        if idx.size:
            pages.append(idx.astype(np.uint64) + np.uint64(p))
            ents.append(e[idx])
        if len(buf) < n * 8:
            break
        p += n
    if not pages:
        return np.empty(0, np.uint64), np.empty(0, np.uint64)
    return np.concatenate(pages), np.concatenate(ents)


def _own_entry(m: mmap.mmap, touch: str) -> int:
    buf = (ctypes.c_char * len(m)).from_buffer(m)
    addr = ctypes.addressof(buf)
    try:
        if touch == "r":
            _ = buf[0]
        else:
            buf[0] = b"x"
        with open("/proc/self/pagemap", "rb", buffering=0) as f:
            return int.from_bytes(os.pread(f.fileno(), 8, (addr >> PAGE_SHIFT) * 8), "little")
    finally:
        del buf


def probe_zero_pfn() -> int | None:
    """The frame of the shared zero page (a read of fresh anonymous memory
    maps it), or None where pagemap hides frame numbers (not root)."""
    m = mmap.mmap(-1, PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        e = _own_entry(m, "r")
    finally:
        m.close()
    pfn = e & PM_PFN_MASK
    return pfn if e & PM_PRESENT and pfn else None


def probe_soft_dirty() -> bool:
    """Whether the kernel tracks soft-dirty bits (CONFIG_MEM_SOFT_DIRTY): a
    page written in a new mapping shows PM_SOFT_DIRTY."""
    m = mmap.mmap(-1, PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        e = _own_entry(m, "w")
    finally:
        m.close()
    return bool(e & PM_SOFT_DIRTY)


def clear_soft_dirty(tid: int) -> bool:
    """Write 4 to /proc/<tid>/clear_refs: every soft-dirty bit of the mm
    cleared, so the next write to each page sets it again."""
    try:
        with open(f"/proc/{tid}/clear_refs", "w") as f:
            f.write("4")
        return True
    except OSError:
        return False


def read_start_brk(tid: int) -> int | None:
    """``start_brk`` (field 47 of ``/proc/<pid>/stat``), None if unreadable."""
    try:
        with open(f"/proc/{tid}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    rest = text[text.rfind(")") + 2:].split()
    try:
        return int(rest[44])
    except (IndexError, ValueError):
        return None


def unavailable_reason() -> str | None:
    """None when this process can trace a child of its own the way the
    recorder does (PTRACE_SEIZE, PTRACE_GET_SYSCALL_INFO); else why not,
    in one line."""
    try:
        libc()
    except PtraceUnavailable as e:
        return str(e)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                        # wait for the pipe to close, then go
        try:
            os.close(w)
            os.read(r, 1)
        finally:
            os._exit(0)
    os.close(r)
    why = None
    try:
        ptrace(PTRACE_SEIZE, pid, 0, O_EXITKILL)
        ptrace(PTRACE_INTERRUPT, pid)
        _, status = os.waitpid(pid, WALL)
        try:
            syscall_info(pid)
        except OSError as e:
            why = f"PTRACE_GET_SYSCALL_INFO failed (Linux 5.3 or later is needed): {e.strerror}"
        resume(PTRACE_CONT, pid)
    except OSError as e:
        why = f"ptrace is not permitted here: {e.strerror}"
    finally:
        os.close(w)
        os.waitpid(pid, WALL)
    return why
