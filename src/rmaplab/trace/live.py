"""Running a trace on the live Linux kernel (``spec/trace-v1.md``,
"Live-kernel runs").

A ``LiveSession`` stands one worker process (``live_helper.c``, a tiny
freestanding program) in for each process of the trace and has it make the
trace's system calls and memory accesses for real: ``fork`` is a real fork,
``touch`` real loads and stores. ``observe`` then reads what the kernel did
from ``/proc/<pid>/smaps``, ``/proc/<pid>/pagemap``, ``/proc/kpagecount``
and ``/proc/kpageflags``, and writes it in the spec's dump format. Results
come out in the ``--results`` format; ``run_live`` runs a whole trace.

What a worker is, and where the live run departs from the model's world:

- A worker's own mappings (its program image, ``[stack]``, ``[vvar]``,
  ``[vvar_vclock]``, ``[vdso]``) exist from spawn and exec on; they are not
  trace VMAs, are left out of dumps and are available as ``foreign(pid)``.
  An event that would reach into them (a ``MAP_FIXED`` over the image, a
  touch of the stack) cannot run faithfully and is refused with a
  ``LiveError``; so is an event after which a trace VMA merged into one.
- Layouts are deterministic: workers run with ``ADDR_NO_RANDOMIZE``,
  ``RLIMIT_STACK`` = 8 MiB, transparent huge pages off, an empty environment
  and all on one CPU.
- A page's token is stored at its start as ``b"RMT1"`` + a 4-byte
  little-endian length + the token's JSON; a page starting with zeros reads
  as null, anything else unreadable as ``"<unrecognised page content>"``.
- Each declared file is a real file in a private temporary directory. All
  mappings of one file with one open mode in one process tree go through
  one open file description, which the controller opens and passes to each
  worker of the tree that needs it (``SCM_RIGHTS``): so even a parent that
  maps the file after its child did shares the child's description.
- ``reclaim`` is approximated by ``MADV_PAGEOUT`` over every trace VMA of
  every live worker (the number of pages asked for is not honoured); the
  result is the number of pages that were present before and are not
  after. ``MADV_PAGEOUT`` leaves pages mapped by more than one process, and
  anonymous pages need swap: with ``swap="auto"`` a temporary 64 MiB swap
  file is enabled when a trace first needs one and the machine has none.
- Tokens are read by ordinary loads in the worker; a present page that
  cannot be loaded (``PROT_NONE``) is read through ``/proc/<pid>/mem``.
- ``pgoff`` is null for private anonymous VMAs (the kernel shows 0); shared
  anonymous memory shows the offset of its shmem file. ``anon_vma`` is
  always null.
"""

from __future__ import annotations

import errno
import hashlib
import os
import platform
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson

from rmaplab.trace.reader import NO_EXPECT, Event, Trace
from rmaplab.trace.replay import _sink

PAGE = 4096
PAGE_SHIFT = 12

# -- the worker's protocol (live_helper.c has the same numbers) -------------------

OP_MMAP, OP_MUNMAP, OP_MPROTECT, OP_MREMAP, OP_BRK, OP_MADVISE, OP_MLOCK = range(1, 8)
OP_MUNLOCK, OP_TOUCH, OP_READ, OP_FORK, OP_EXEC, OP_EXIT, OP_RECVFD = range(8, 15)
#: reply kinds: data frames, then one frame that ends the request (DONE = 1,
#: or the HELLO of a new image)
REPLY_DATA, REPLY_HELLO = 0, 2
_REQUEST = struct.Struct("<II6Q")
_REPLY = struct.Struct("<IIqQ")
PAYLOAD_MAX = 64 * 1024
_RECV_MAX = _REPLY.size + PAYLOAD_MAX
_U64 = (1 << 64) - 1
_KERNEL_HALF = 1 << 63
#: the worker's control socket
CONTROL_FD = 3

# -- Linux ABI values -------------------------------------------------------------------

MAP_FIXED, MAP_ANONYMOUS, MAP_FIXED_NOREPLACE = 0x10, 0x20, 0x100000
MREMAP_FIXED = 2
MADV = {"normal": 0, "random": 1, "sequential": 2, "willneed": 3, "dontneed": 4,
        "cold": 20, "pageout": 21}
OPEN_FLAGS = {"rw": os.O_RDWR, "r": os.O_RDONLY, "w": os.O_WRONLY}
SIGNALS = {7: "SIGBUS", 11: "SIGSEGV"}
PM_PRESENT, PM_SWAP = 1 << 63, 1 << 62
PM_PFN_MASK = (1 << 55) - 1
KPF_ZERO_PAGE = 24
STACK_LIMIT = 8 << 20
SWAP_SIZE = 64 << 20

TOKEN_MAGIC = b"RMT1"
UNRECOGNISED = "<unrecognised page content>"

_CC_FLAGS = ("-O2", "-static", "-nostdlib", "-ffreestanding", "-fno-stack-protector",
             "-fno-builtin")


class LiveUnavailable(Exception):
    """The live kernel cannot be used here (the message is one line: why)."""


class LiveError(Exception):
    """The live kernel cannot run this trace, or a worker failed under it:
    ``FILE:LINE: reason`` when tied to an event."""


class _WorkerGone(Exception):
    """A worker's control socket closed in the middle of a request."""


# -- the worker program ---------------------------------------------------------------

def build_helper() -> Path:
    """Compile ``live_helper.c`` into the cache (once per source and flags)
    and return the executable's path."""
    if platform.system() != "Linux":
        raise LiveUnavailable(f"live-kernel runs need Linux, not {platform.system()}")
    if platform.machine() != "x86_64":
        raise LiveUnavailable(f"live-kernel runs need x86_64, not {platform.machine()}")
    cc = shutil.which("cc")
    if cc is None:
        raise LiveUnavailable("no C compiler: 'cc' is not on PATH (the live worker is built with it)")
    source = resources.files("rmaplab.trace").joinpath("live_helper.c").read_bytes()
    digest = hashlib.sha256(source + " ".join(_CC_FLAGS).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rmaplab"
    exe = cache / f"live-helper-{digest}"
    if exe.is_file() and os.access(exe, os.X_OK):
        return exe
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            src = Path(tmp) / "live_helper.c"
            src.write_bytes(source)
            out = Path(tmp) / "live-helper"
            proc = subprocess.run([cc, *_CC_FLAGS, "-o", str(out), str(src)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                lines = proc.stderr.splitlines()
                first = next((ln for ln in lines if "error" in ln), lines[0] if lines else "")
                raise LiveUnavailable(f"cannot build the live worker: {first.strip() or 'cc failed'}")
            os.replace(out, exe)      # atomic: a concurrent build gives the same file
    except OSError as e:
        raise LiveUnavailable(f"cannot build the live worker in {cache}: {e.strerror or e}") from None
    return exe


# -- tokens in pages ----------------------------------------------------------------------

def encode_token(token: Any) -> bytes:
    """What a write puts at the start of a page (at most one page of it)."""
    body = orjson.dumps(token)
    return (TOKEN_MAGIC + len(body).to_bytes(4, "little") + body)[:PAGE]


def decode_token(head: bytes) -> Any:
    """The token a page's first bytes hold: None for zeros, the token for
    an encoding, else ``UNRECOGNISED``."""
    if not any(head[:8]):
        return None
    if head[:4] == TOKEN_MAGIC:
        n = int.from_bytes(head[4:8], "little")
        body = head[8:8 + n]
        if len(body) == n:
            try:
                v = orjson.loads(body)
            except orjson.JSONDecodeError:
                return UNRECOGNISED
            if v.__class__ is str or v.__class__ is int:
                return v
    return UNRECOGNISED


def _records(data: bytes) -> list[bytes | None]:
    """The read records of a worker reply (None: the load faulted)."""
    out: list[bytes | None] = []
    pos, end = 0, len(data)
    while pos < end:
        n = data[pos] | data[pos + 1] << 8
        pos += 2
        if n == 0xFFFF:
            out.append(None)
        else:
            out.append(data[pos:pos + n])
            pos += n
    return out


# -- /proc ------------------------------------------------------------------------------

class Vma(NamedTuple):
    """One line of ``/proc/<pid>/maps`` (with smaps' ``VmFlags``)."""

    start: int
    end: int
    perms: str
    offset: int
    inode: int
    path: str
    vmflags: list[str]


def read_vmas(kpid: int, smaps: bool = False) -> list[Vma]:
    """The VMAs of kernel process ``kpid`` from ``maps`` (or ``smaps``,
    which also gives VmFlags). The gate area (``[vsyscall]``, in the
    kernel half) is not a VMA of the process and is left out."""
    with open(f"/proc/{kpid}/{'smaps' if smaps else 'maps'}", "rb") as fh:
        text = fh.read().decode(errors="surrogateescape")
    out: list[Vma] = []
    for line in text.splitlines():
        first, _, rest = line.partition(" ")
        if first.endswith(":"):
            if first == "VmFlags:":
                out[-1].vmflags.extend(rest.split())
            continue
        col = line.split(maxsplit=5)   # range perms offset dev inode [path]
        lo, _, hi = col[0].partition("-")
        out.append(Vma(int(lo, 16), int(hi, 16), col[1], int(col[2], 16), int(col[4]),
                       col[5] if len(col) > 5 else "", []))
    return [v for v in out if v.start < _KERNEL_HALF]


def _errno(r: int) -> Any:
    """A raw system call result: the errno name if negative."""
    return errno.errorcode.get(-r, f"errno {-r}") if r < 0 else r


def _active_swap() -> bool:
    try:
        with open("/proc/swaps") as f:
            return len(f.read().splitlines()) > 1
    except OSError:
        return False


# -- workers ---------------------------------------------------------------------------

class _Tree:
    """A process tree (one spawn and its forks): the open file
    descriptions its mappings go through, ``(file, mode) -> fd`` held by
    the controller."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], int] = {}
        self.members = 0

    def close(self) -> None:
        for fd in self.files.values():
            os.close(fd)
        self.files.clear()


class _Worker:
    """One live worker: the trace's pid, the kernel's, the control socket."""

    def __init__(self, tpid: int, kpid: int, sock: socket.socket, tree: _Tree,
                 proc: subprocess.Popen | None) -> None:
        self.tpid, self.kpid, self.sock, self.tree, self.proc = tpid, kpid, sock, tree, proc
        self.pidfd = os.pidfd_open(kpid)
        #: (file, mode) -> the worker's fd of the tree's description
        self.fds: dict[tuple[str, str], int] = {}
        self.foreign: list[Vma] = []
        self.start_brk = 0
        tree.members += 1

    def send(self, op: int, *args: int, payload: bytes = b"", fd: int | None = None) -> None:
        """Send one request (with ``fd`` passed along, if given)."""
        msg = _REQUEST.pack(op, len(payload), *(a & _U64 for a in args),
                            *(0,) * (6 - len(args))) + payload
        try:
            if fd is None:
                self.sock.send(msg)
            else:
                socket.send_fds(self.sock, [msg], [fd])
        except OSError:   # EPIPE, ECONNRESET: it died
            raise _WorkerGone from None

    def receive(self) -> tuple[int, int, int, bytes, list[int]]:
        """The reply that ends a request, ``(kind, result, aux, data,
        fds)``, with the DATA frames before it joined into ``data``."""
        data: list[bytes] = []
        while True:
            try:
                reply, fds, _, _ = socket.recv_fds(self.sock, _RECV_MAX, 1)
            except OSError:
                raise _WorkerGone from None
            if not reply:
                raise _WorkerGone
            kind, _, result, aux = _REPLY.unpack_from(reply)
            if kind != REPLY_DATA:
                return kind, result, aux, b"".join(data), fds
            data.append(reply[_REPLY.size:])

    def call(self, op: int, *args: int, payload: bytes = b"",
             fd: int | None = None) -> tuple[int, int, int, bytes, list[int]]:
        self.send(op, *args, payload=payload, fd=fd)
        return self.receive()

    def syscall(self, op: int, *args: int) -> int:
        """A system call request: its raw result (-errno on failure)."""
        return self.call(op, *args)[1]

    def hello(self) -> None:
        """Take the HELLO of a new image: its initial break and mappings."""
        kind, _, brk, _, _ = self.receive()
        if kind != REPLY_HELLO:
            raise _WorkerGone
        self.new_image(brk)

    def new_image(self, brk: int) -> None:
        self.start_brk = brk
        self.foreign = read_vmas(self.kpid)

    def wait_gone(self, timeout: float | None = None) -> None:
        """Wait until the worker has exited: its pidfd turns readable in
        ``exit_notify``, after ``exit_mm`` dropped its address space. (A
        forked worker whose parent worker is alive is reaped at once, as
        the parent ignores SIGCHLD.)"""
        select.select([self.pidfd], [], [], timeout)

    def kill(self) -> None:
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except OSError:
            pass            # already gone

    def close(self) -> None:
        self.sock.close()
        os.close(self.pidfd)
        if self.proc is not None:
            self.proc.wait()
        self.tree.members -= 1
        if not self.tree.members:
            self.tree.close()


class _Resources:
    """Everything a session must give back: workers, open files, the
    temporary directory, the temporary swap file. ``close`` runs once,
    from ``LiveSession.close`` or at interpreter exit."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.workers: dict[int, _Worker] = {}
        self.kpage_fds: list[int] = []
        self.swapfile: Path | None = None

    def close(self) -> None:
        # children before parents, so that the parent (alive, ignoring
        # SIGCHLD) reaps each one rather than init
        workers = list(self.workers.values())[::-1]
        self.workers.clear()
        for w in workers:
            w.kill()
            w.wait_gone(5.0)
            w.close()
        for fd in self.kpage_fds:
            os.close(fd)
        self.kpage_fds.clear()
        if self.swapfile is not None:
            subprocess.run(["swapoff", str(self.swapfile)], capture_output=True)
            self.swapfile = None
        shutil.rmtree(self.tmp, ignore_errors=True)


# -- the session ----------------------------------------------------------------------

class LiveSession:
    """A trace run on the live kernel, one event at a time (a context
    manager: leaving it kills the workers and removes everything the
    session made)."""

    def __init__(self, filename: str = "<trace>", swap: str = "auto") -> None:
        if swap not in ("auto", "off"):
            raise ValueError(f"swap must be 'auto' or 'off', not {swap!r}")
        self.helper = build_helper()
        self.filename = filename
        self.swap = swap
        #: one line per thing this session cannot observe or do as asked
        self.notes: list[str] = []
        #: si_addr of the last touch that took a signal
        self.last_fault: int | None = None
        self._res = _Resources(Path(tempfile.mkdtemp(prefix="rmaplab-live-")).resolve())
        self._finalizer = weakref.finalize(self, self._res.close)
        self._workers = self._res.workers
        self._files: dict[str, Path] = {}
        self._names: dict[str, str] = {}      # real path -> trace file name
        self._swap_checked = False
        self._cpu = min(os.sched_getaffinity(0))
        # The controller runs on the workers' CPU too: pages it puts in the
        # page cache (declared files) then sit in that CPU's LRU batch,
        # which the workers' own calls drain (MADV_PAGEOUT skips a folio
        # that is not on the LRU yet; seen as a flaky pageout otherwise).
        self._affinity = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {self._cpu})
        self._root = os.geteuid() == 0
        if not self._root:
            self._note("not root: frames, map counts and zero_page are null (pagemap hides "
                       "page frame numbers, /proc/kpagecount and kpageflags are unreadable)")
        self._kpagecount = self._open_kpage("kpagecount")
        self._kpageflags = self._open_kpage("kpageflags")
        if self._root and self._kpageflags is None:
            self._note("/proc/kpageflags is unreadable: zero_page is null")
        hard = resource.getrlimit(resource.RLIMIT_STACK)[1]
        self._stack = STACK_LIMIT if hard == resource.RLIM_INFINITY else min(STACK_LIMIT, hard)
        if self._stack != STACK_LIMIT:
            self._note(f"RLIMIT_STACK of workers is {self._stack} (the hard limit), not 8 MiB")
        self._ops: dict[str, Callable[[Event], Any]] = {
            "spawn": self._spawn, "exec": self._exec, "fork": self._fork, "exit": self._exit,
            "file": self._file, "mmap": self._mmap, "munmap": self._munmap,
            "mprotect": self._mprotect, "mremap": self._mremap, "brk": self._brk,
            "madvise": self._madvise, "mlock": self._mlock, "munlock": self._munlock,
            "touch": self._touch, "reclaim": self._reclaim, "checkpoint": lambda ev: None,
        }

    # -- the context manager -------------------------------------------------------------

    def __enter__(self) -> LiveSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Kill every worker, disable and delete the temporary swap file,
        remove the temporary files. Safe to call twice."""
        self._finalizer()
        os.sched_setaffinity(0, self._affinity)

    # -- what the caller asks ---------------------------------------------------------------

    def foreign(self, pid: int) -> list[dict]:
        """The worker's own mappings (at spawn, or after its last exec):
        ``start``, ``end``, ``perms``, ``name``."""
        return [{"start": v.start, "end": v.end, "perms": v.perms, "name": v.path}
                for v in self._get(pid).foreign]

    def start_brk(self, pid: int) -> int:
        """The worker's program break at spawn (or after its last exec)."""
        return self._get(pid).start_brk

    def step(self, ev: Event) -> dict:
        """Apply one event; its result object in the ``--results`` format."""
        index, line, op, pid, args, expect = ev
        fn = self._ops.get(op)
        if fn is None:
            raise self._error(ev, f"op {op!r} cannot run on the live kernel")
        read = None
        try:
            res = fn(ev)
        except _WorkerGone:
            self._drop(pid)
            raise self._error(ev, f"{op}: the live worker of pid {pid} died "
                                  f"(killed by a signal or the OOM killer)") from None
        except OSError as e:
            raise self._error(ev, f"{op}: {e}") from None
        if res.__class__ is tuple:
            res, read = res
        obj: dict[str, Any] = {"event": index, "line": line, "op": op}
        if pid is not None:
            obj["pid"] = pid
        obj["result"] = res
        if read is not None:
            obj["read"] = read
        if expect is not NO_EXPECT and (expect != res or expect.__class__ is not res.__class__):
            obj["expect"] = expect
            obj["match"] = False
        return obj

    def observe(self, name: str | None, event: int) -> dict:
        """The state of every live worker as a dump (``"Live-kernel runs"``
        format; each map also carries smaps' ``"vmflags"``)."""
        kpages: dict[int, tuple[int | None, bool | None]] = {}
        try:
            return {"name": name, "event": event,
                    "processes": [self._observe(w, kpages)
                                  for _, w in sorted(self._workers.items())]}
        except _WorkerGone:
            raise LiveError(f"{self.filename}: a live worker died while being observed") from None
        except OSError as e:
            raise LiveError(f"{self.filename}: cannot observe the live workers: {e}") from None

    # -- helpers ------------------------------------------------------------------------------

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def _error(self, ev: Event, reason: str) -> LiveError:
        return LiveError(f"{self.filename}:{ev.line}: {reason}")

    def _open_kpage(self, name: str) -> int | None:
        try:
            fd = os.open(f"/proc/{name}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        self._res.kpage_fds.append(fd)
        return fd

    def _get(self, pid: int) -> _Worker:
        w = self._workers.get(pid)
        if w is None:
            raise KeyError(f"no live process with pid {pid}")
        return w

    def _worker(self, ev: Event) -> _Worker:
        w = self._workers.get(ev.pid) if ev.pid is not None else None
        if w is None:
            raise self._error(ev, f"{ev.op}: no process with pid {ev.pid}")
        return w

    def _drop(self, pid: int | None) -> None:
        w = self._workers.pop(pid, None) if pid is not None else None
        if w is not None:
            w.kill()
            w.wait_gone(5.0)
            w.close()

    def _guard(self, ev: Event, w: _Worker, start: int, length: int) -> None:
        """Refuse an event whose range reaches the worker's own mappings."""
        if length <= 0:
            return
        lo, hi = start & ~(PAGE - 1), start + length
        for v in w.foreign:
            if lo < v.end and v.start < hi:
                raise self._error(ev, f"{ev.op} of [{lo:#x}, {hi:#x}) reaches the live worker's "
                                      f"own mapping {v.path or 'anonymous'} [{v.start:#x}, "
                                      f"{v.end:#x}); the live kernel cannot run this trace")

    def _check_foreign(self, ev: Event, w: _Worker, *ranges: tuple[int, int]) -> None:
        """After an event that changed ranges next to the worker's own
        mappings: those must be unchanged (no trace VMA merged into one)."""
        near = any(lo - PAGE <= v.end and v.start <= hi + PAGE
                   for lo, hi in ranges for v in w.foreign)
        if not near:
            return
        now = {(v.start, v.end, v.perms) for v in read_vmas(w.kpid)}
        for v in w.foreign:
            if (v.start, v.end, v.perms) not in now:
                raise self._error(ev, f"{ev.op} changed the live worker's own mapping "
                                      f"{v.path or 'anonymous'} [{v.start:#x}, {v.end:#x}) (a "
                                      f"trace mapping merged with it); the live kernel cannot "
                                      f"run this trace")

    def _trace_vmas(self, w: _Worker, smaps: bool = False) -> list[Vma]:
        return [v for v in read_vmas(w.kpid, smaps)
                if not any(v.start < f.end and f.start < v.end for f in w.foreign)]

    # -- processes ------------------------------------------------------------------------------

    def _start_worker(self, pid: int, tree: _Tree) -> _Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cpu, stack, fd = self._cpu, self._stack, theirs.fileno()

        def setup() -> None:      # in the child, before exec: inherited by every worker
            os.sched_setaffinity(0, {cpu})
            resource.setrlimit(resource.RLIMIT_STACK,
                               (stack, resource.getrlimit(resource.RLIMIT_STACK)[1]))
            if fd == CONTROL_FD:
                os.set_inheritable(fd, True)
            else:
                os.dup2(fd, CONTROL_FD)

        try:
            proc = subprocess.Popen([str(self.helper)], env={}, close_fds=False,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, preexec_fn=setup)
        except (OSError, subprocess.SubprocessError) as e:
            ours.close()
            raise LiveUnavailable(f"cannot start the live worker {self.helper}: {e}") from None
        finally:
            theirs.close()
        try:
            w = _Worker(pid, proc.pid, ours, tree, proc)
        except OSError:             # pidfd_open: it is gone already
            ours.close()
            proc.wait()
            raise LiveUnavailable(f"the live worker {self.helper} exited at once "
                                  f"(status {proc.returncode})") from None
        self._workers[pid] = w
        try:
            w.hello()
        except _WorkerGone:
            self._drop(pid)
            raise LiveUnavailable(f"the live worker {self.helper} did not start "
                                  f"(status {proc.returncode})") from None
        return w

    def _spawn(self, ev: Event) -> None:
        pid = ev.pid
        if pid is None or pid in self._workers:
            raise self._error(ev, f"spawn: pid {pid} already exists")
        self._start_worker(pid, _Tree())

    def _exec(self, ev: Event) -> Any:
        w = self._worker(ev)
        kind, r, brk, _, _ = w.call(OP_EXEC)
        if kind != REPLY_HELLO:          # execve failed: the old image answers
            return _errno(r)
        w.new_image(brk)
        return None

    def _fork(self, ev: Event) -> Any:
        w = self._worker(ev)
        child = ev.args[0]
        if child in self._workers:
            raise self._error(ev, f"fork: child pid {child} already exists")
        _, r, _, _, fds = w.call(OP_FORK)
        if r < 0:
            return _errno(r)
        if not fds:
            raise self._error(ev, "fork: the live worker sent no control socket for the child")
        c = _Worker(child, r, socket.socket(fileno=fds[0]), w.tree, None)
        c.fds = dict(w.fds)
        c.foreign = list(w.foreign)
        c.start_brk = w.start_brk
        self._workers[child] = c
        return None

    def _exit(self, ev: Event) -> None:
        w = self._worker(ev)
        del self._workers[w.tpid]
        try:
            w.send(OP_EXIT)
        except _WorkerGone:
            pass
        w.wait_gone()
        w.close()

    # -- files ---------------------------------------------------------------------------------

    def _file(self, ev: Event) -> None:
        name, size = ev.args
        if name in self._files:
            raise self._error(ev, f"file {name!r} is already declared")
        d = self._res.tmp / "files"
        d.mkdir(exist_ok=True)
        path = d / f"{len(self._files)}.dat"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            for i in range((size + PAGE - 1) // PAGE):
                os.pwrite(fd, encode_token(f"{name}:{i}")[:size - i * PAGE], i * PAGE)
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
        self._files[name] = path
        self._names[str(path)] = name

    def _file_fd(self, ev: Event, w: _Worker, name: str, mode: str) -> int:
        """The worker's fd for the tree's open file description of
        ``name`` in ``mode``: opened on first use in the tree, passed to
        each worker that does not have it yet."""
        key = (name, mode)
        fd = w.fds.get(key)
        if fd is not None:
            return fd
        if mode not in OPEN_FLAGS:
            raise self._error(ev, f"mmap: unknown open mode {mode!r} (rw, r or w)")
        path = self._files.get(name)
        if path is None:
            raise self._error(ev, f"mmap: unknown file {name!r}")
        ours = w.tree.files.get(key)
        if ours is None:
            ours = w.tree.files[key] = os.open(path, OPEN_FLAGS[mode] | os.O_CLOEXEC)
        r = w.call(OP_RECVFD, fd=ours)[1]
        if r < 0:
            raise self._error(ev, f"mmap: the live worker could not take the file: {_errno(r)}")
        w.fds[key] = r
        return r

    # -- system calls ----------------------------------------------------------------------------

    def _mmap(self, ev: Event) -> Any:
        w = self._worker(ev)
        addr, length, prot, flags, name, offset = ev.args[:6]
        mode = ev.args[6] if len(ev.args) > 6 else "rw"
        addr = addr or 0
        if flags & MAP_FIXED and not flags & MAP_FIXED_NOREPLACE:
            self._guard(ev, w, addr, length)
        fd = -1
        if name is not None and not flags & MAP_ANONYMOUS:
            fd = self._file_fd(ev, w, name, mode)
        r = w.syscall(OP_MMAP, addr, length, prot, flags, fd, offset)
        if r >= 0:
            self._check_foreign(ev, w, (r, r + length))
        return _errno(r)

    def _munmap(self, ev: Event) -> Any:
        w = self._worker(ev)
        addr, length = ev.args
        self._guard(ev, w, addr, length)
        return _errno(w.syscall(OP_MUNMAP, addr, length))

    def _ranged(self, ev: Event, op: int, *extra: int) -> Any:
        """munlock/mlock/mprotect/madvise: refused over the worker's own
        mappings; checked for merges next to them."""
        w = self._worker(ev)
        addr, length = ev.args[:2]
        self._guard(ev, w, addr, length)
        r = w.syscall(op, addr, length, *extra)
        if r == 0:
            self._check_foreign(ev, w, (addr, addr + length))
        return _errno(r)

    def _mprotect(self, ev: Event) -> Any:
        return self._ranged(ev, OP_MPROTECT, ev.args[2])

    def _mlock(self, ev: Event) -> Any:
        return self._ranged(ev, OP_MLOCK)

    def _munlock(self, ev: Event) -> Any:
        return self._ranged(ev, OP_MUNLOCK)

    def _madvise(self, ev: Event) -> Any:
        advice = ev.args[2]
        if advice not in MADV:
            raise self._error(ev, f"madvise: advice {advice!r} cannot run on the live kernel")
        if advice == "pageout":
            self._need_swap()
        return self._ranged(ev, OP_MADVISE, MADV[advice])

    def _mremap(self, ev: Event) -> Any:
        w = self._worker(ev)
        addr, old_len, new_len, flags, new_addr = ev.args
        self._guard(ev, w, addr, max(old_len, 1))
        if flags & MREMAP_FIXED and new_addr is not None:
            self._guard(ev, w, new_addr, new_len)
        r = w.syscall(OP_MREMAP, addr, old_len, new_len, flags, new_addr or 0)
        if r >= 0:
            self._check_foreign(ev, w, (addr, addr + old_len), (r, r + new_len))
        return _errno(r)

    def _brk(self, ev: Event) -> int:
        w = self._worker(ev)
        r = w.syscall(OP_BRK, ev.args[0])
        self._check_foreign(ev, w, (w.start_brk, max(r, w.start_brk)))
        return r

    def _touch(self, ev: Event) -> tuple[str, list | None]:
        w = self._worker(ev)
        addr, length, access, token = ev.args
        write = access == "w"
        if length <= 0:
            return "ok", None if write else []
        first, last = addr >> PAGE_SHIFT, (addr + length - 1) >> PAGE_SHIFT
        self._guard(ev, w, first << PAGE_SHIFT, (last + 1 - first) << PAGE_SHIFT)
        _, sig, fault, data, _ = w.call(OP_TOUCH, first << PAGE_SHIFT, last + 1 - first, write,
                                        payload=encode_token(token) if write else b"")
        if sig:
            self.last_fault = fault
            return SIGNALS.get(sig, f"signal {sig}"), None
        return "ok", None if write else [decode_token(b or b"") for b in _records(data)]

    # -- reclaim and swap ---------------------------------------------------------------------

    def _reclaim(self, ev: Event) -> int:
        """MADV_PAGEOUT over every trace VMA of every live worker: the
        number of pages present before and not after (an approximation of
        the model's reclaim, which frees up to ``pages`` frames by LRU)."""
        self._need_swap()
        freed = 0
        for _, w in sorted(self._workers.items()):
            vmas = self._trace_vmas(w)
            before = self._present(w, vmas)
            for v in vmas:
                w.syscall(OP_MADVISE, v.start, v.end - v.start, MADV["pageout"])
            freed += len(before - self._present(w, vmas))
        return freed

    def _present(self, w: _Worker, vmas: list[Vma]) -> set[int]:
        """The addresses of the present pages in ``vmas``."""
        out: set[int] = set()
        with open(f"/proc/{w.kpid}/pagemap", "rb", buffering=0) as f:
            for v in vmas:
                e = self._pagemap(f.fileno(), v)
                idx = np.flatnonzero(e & np.uint64(PM_PRESENT))
                out.update((v.start + (idx << PAGE_SHIFT)).tolist())
        return out

    def _need_swap(self) -> None:
        """Before the first reclaim or pageout: make sure there is swap, or
        say there is not."""
        if self._swap_checked:
            return
        self._swap_checked = True
        if _active_swap():
            return
        why = ("swap is off" if self.swap == "off" else
               "not root" if not self._root else None)
        if why is None:
            path = self._res.tmp / "swapfile"
            try:
                with open(path, "wb") as f:
                    os.fchmod(f.fileno(), 0o600)
                    chunk = bytes(1 << 20)
                    for _ in range(SWAP_SIZE >> 20):
                        f.write(chunk)
                    os.fsync(f.fileno())
                subprocess.run(["mkswap", str(path)], capture_output=True, text=True, check=True)
                subprocess.run(["swapon", str(path)], capture_output=True, text=True, check=True)
            except subprocess.CalledProcessError as e:
                why = (e.stderr.strip().splitlines() or [f"{e.cmd[0]} failed"])[0]
            except OSError as e:
                why = str(e)
            else:
                self._res.swapfile = path
                self._note("a temporary 64 MiB swap file was enabled for reclaim and pageout "
                           "(the machine had none), and removed at the end")
                return
        self._note(f"no swap ({why}): MADV_PAGEOUT and reclaim cannot move anonymous pages out")

    # -- observation -----------------------------------------------------------------------------

    @staticmethod
    def _pagemap(fd: int, v: Vma) -> np.ndarray:
        n = (v.end - v.start) >> PAGE_SHIFT
        buf = os.pread(fd, n * 8, (v.start >> PAGE_SHIFT) * 8)
        return np.frombuffer(buf, dtype="<u8")

    def _kpage(self, pfn: int) -> tuple[int | None, bool | None]:
        """A frame's map count (``/proc/kpagecount``) and whether it is the
        zero page (``/proc/kpageflags``), None where unreadable."""
        out: list[int | None] = []
        for fd in (self._kpagecount, self._kpageflags):
            b = os.pread(fd, 8, pfn * 8) if fd is not None else b""
            out.append(int.from_bytes(b, "little") if len(b) == 8 else None)
        count, flags = out
        return count, None if flags is None else bool(flags >> KPF_ZERO_PAGE & 1)

    def _map(self, v: Vma) -> dict:
        return {"start": v.start, "end": v.end, "perms": v.perms,
                "pgoff": v.offset >> PAGE_SHIFT if v.inode else None,
                "file": self._names.get(v.path), "anon_vma": None, "vmflags": v.vmflags}

    def _observe(self, w: _Worker, kpages: dict[int, tuple[int | None, bool | None]]) -> dict:
        """One process of a dump; ``kpages`` caches ``_kpage`` per frame
        for the whole observation."""
        vmas = self._trace_vmas(w, smaps=True)
        pages: list[dict] = []
        to_read: list[dict] = []      # present pages whose token is loaded by the worker
        with open(f"/proc/{w.kpid}/pagemap", "rb", buffering=0) as f:
            for v in vmas:
                e = self._pagemap(f.fileno(), v)
                idx = np.flatnonzero(e & np.uint64(PM_PRESENT | PM_SWAP))
                for i, ent in zip(idx.tolist(), e[idx].tolist()):
                    addr = v.start + (i << PAGE_SHIFT)
                    if not ent & PM_PRESENT:
                        pages.append({"addr": addr, "state": "swap", "frame": None,
                                      "mapcount": None, "token": None, "zero_page": False})
                        continue
                    pfn = ent & PM_PFN_MASK if self._root else None
                    count = zero = None
                    if pfn is not None:
                        k = kpages.get(pfn)
                        if k is None:
                            k = kpages[pfn] = self._kpage(pfn)
                        count, zero = k
                    p = {"addr": addr, "state": "present", "frame": pfn, "mapcount": count,
                         "token": None, "zero_page": zero}
                    pages.append(p)
                    if not zero:
                        to_read.append(p)
        self._read_tokens(w, to_read)
        return {"pid": w.tpid, "maps": [self._map(v) for v in vmas], "pages": pages}

    def _read_tokens(self, w: _Worker, pages: list[dict]) -> None:
        """Fill in the tokens of present pages: loads in the worker, and
        ``/proc/<pid>/mem`` for the pages it cannot load."""
        per = PAYLOAD_MAX // 8
        unloadable: list[dict] = []
        for k in range(0, len(pages), per):
            batch = pages[k:k + per]
            addrs = np.array([p["addr"] for p in batch], dtype="<u8").tobytes()
            data = w.call(OP_READ, payload=addrs)[3]
            for p, rec in zip(batch, _records(data)):
                if rec is None:
                    unloadable.append(p)
                else:
                    p["token"] = decode_token(rec)
        if unloadable:
            with open(f"/proc/{w.kpid}/mem", "rb", buffering=0) as mem:
                for p in unloadable:
                    try:
                        p["token"] = decode_token(os.pread(mem.fileno(), PAGE, p["addr"]))
                    except OSError:
                        self._note("some pages that loads cannot reach are unreadable through "
                                   "/proc/<pid>/mem too: their token is null")


# -- whole traces ---------------------------------------------------------------------------------

@dataclass
class LiveReport:
    """What ``run_live`` did: events run, mismatching result objects (with
    ``expect``), the session's notes, seconds taken."""

    events: int = 0
    mismatches: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed: float = 0.0


def kernel_dump(state: dict) -> dict:
    """An ``observe`` result as ``--kernel-dump`` writes it (no vmflags)."""
    return {"name": state["name"], "event": state["event"],
            "processes": [{"pid": p["pid"],
                           "maps": [{k: v for k, v in m.items() if k != "vmflags"}
                                    for m in p["maps"]],
                           "pages": p["pages"]} for p in state["processes"]]}


def run_live(trace: Trace, results: Any = None, dump: Any = None, swap: str = "auto") -> LiveReport:
    """Run every event of ``trace`` on the live kernel. ``results`` gets one
    result object per event, ``dump`` one kernel dump per checkpoint and a
    final one (``name`` null, ``event`` = the number of events); each is a
    list, a callable or a file, as for ``replay``."""
    put, put_dump = _sink(results), _sink(dump)
    report = LiveReport()
    t0 = time.perf_counter()
    with LiveSession(trace.filename, swap) as s:
        for ev in trace.events:
            obj = s.step(ev)
            report.events += 1
            if "match" in obj:
                report.mismatches.append(obj)
            if put is not None:
                put(obj)
            if ev.op == "checkpoint" and put_dump is not None:
                put_dump(kernel_dump(s.observe(ev.args[0], ev.index)))
        if put_dump is not None:
            put_dump(kernel_dump(s.observe(None, len(trace.events))))
        report.notes = list(s.notes)
    report.elapsed = time.perf_counter() - t0
    return report
