"""Recording a real program with ptrace: its memory system calls with their
results, the address space each ``execve`` built, and the pages it touched.

``record(argv)`` runs ``argv`` as a traced child (``PTRACE_SEIZE``,
following every fork, vfork, clone and exec) and returns a ``Recording``
whose ``write`` gives a trace (``docs/trace-format.md``) with ``expect`` on
every event. How each part is obtained:

- **Stops.** A seccomp filter (``SECCOMP_RET_TRACE``) stops a tracee only at
  mmap, munmap, mprotect, pkey_mprotect, mremap, brk, madvise, mlock,
  mlock2, munlock (and the calls that change mappings in ways a trace cannot
  say: mlockall, munlockall, shmat, shmdt, remap_file_pages, mseal, ...),
  fork, vfork, clone, clone3, execve, execveat, exit and exit_group; every
  other call runs at full speed. Arguments and results come from
  ``PTRACE_GET_SYSCALL_INFO``. Where the kernel refuses the filter, every
  system call stops (``PTRACE_SYSCALL``): the same trace, slower.
- **Processes.** The root's first ``execve`` is ``spawn``; a child with an
  mm of its own is ``fork`` (emitted at the parent's fork event, before the
  child runs); a ``CLONE_VM`` task (a thread) shares its process's pid and
  makes no event; a vfork child is its parent until it execs, which becomes
  ``fork`` then ``exec`` (as ``import-strace`` does). A process ends with
  ``exit`` when the last task using its mm ends.
- **What execve built.** At each exec, ``/proc/<pid>/maps`` is read and
  every VMA becomes a fixed ``mmap`` with the address as ``expect``: the
  program and interpreter images as private file mappings at their offsets
  (each file declared with its size), anonymous VMAs (bss), ``[stack]``
  (``growsdown``) and ``[vvar]``/``[vdso]`` as private anonymous memory.
  The program break is placed with two events the model understands: a
  ``brk`` to ``start_brk`` (``/proc/<pid>/stat``; the model's break starts
  lower, at 0x600000, and grows up to it) and a ``munmap`` of
  ``[0x600000, start_brk)``, after which the model's ``brk(NULL)`` returns
  the real initial break. The pages already present at exec (the stack
  that holds argv, the bss page the loader cleared) are touched. These
  events are preceded by a ``#`` comment and are not counted among the
  recorded results.
- **Observed touches.** At every stop in a process (the entry of each memory
  call, fork, exec and exit), ``/proc/<pid>/pagemap`` is read over its
  VMAs and compared with the previous reading: a page that became present,
  or whose frame changed, was touched since. It was written when it holds
  an anonymous page that is not the zero page (a write fault, or a copy on
  write of a file or shared page), or, on kernels with
  ``CONFIG_MEM_SOFT_DIRTY``, when its soft-dirty bit is set (the bits are
  cleared by writing 4 to ``/proc/<pid>/clear_refs`` after each reading,
  so a rewrite of a page already present is seen too); otherwise it was
  read. The touches are emitted before the call's own event, in ascending
  address order, coalesced into runs of pages of one VMA with one access,
  each with ``expect`` ``"ok"``. The range of each call is read again
  when it returns, so pages a call brings in itself (``MAP_POPULATE``,
  ``mlock``, the destination of an ``mremap``) are not touches, and pages
  it takes away (``munmap``, ``MADV_DONTNEED``) are new again when touched
  later. A child's pages after fork are its starting point, not touches.
  PROT_NONE VMAs are not read (nothing can be touched there). Without
  CAP_SYS_ADMIN pagemap hides frame numbers: an anonymous page that is new
  and exclusively mapped, or was shared and is exclusive now (a copy on
  write), stands for a write.

What is approximated: the order of touches within an interval (between two
stops of one process) is address order, not the order they happened in; a
page read and then written within one interval is one write; without
soft-dirty, a write to a page that was already present, anonymous and
mapped only by this process is invisible (it changes no pte, and nothing
the model keeps but the page's token), and a first write to a shared
mapping is recorded as a read. Pages mapped by fault-around count as read.
Transparent huge pages are disabled in the traced processes
(``PR_SET_THP_DISABLE``), since the model has none.
"""

from __future__ import annotations

import errno
import os
import select
import shlex
import shutil
import signal
import stat as statmod
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from rmaplab.trace.writer import write_lines
from rmaplab.trace import ptrace_sys as ps
from rmaplab.trace.live import read_vmas
from rmaplab.trace.reproduce import Reproduction, reproduction
from rmaplab.trace.strace import _MAP_BITS, _MAP_WORDS, _WORD_ORDER

PAGE = 4096
_MASK = PAGE - 1
#: where the model's program break starts (rmaplab.kernel.system.START_BRK)
MODEL_START_BRK = 0x600000
#: VMAs of the kernel's own (no touches are recorded in them)
SPECIAL = frozenset(("[vvar]", "[vvar_vclock]", "[vdso]", "[uprobes]", "[sigpage]",
                     "[vectors]"))
CLONE_VM, CLONE_VFORK, CLONE_THREAD = 0x100, 0x4000, 0x10000
MAP_TYPE, MAP_ANONYMOUS, MAP_POPULATE, MAP_LOCKED = 0x0F, 0x20, 0x8000, 0x2000
MADVICE = {0: "normal", 1: "random", 2: "sequential", 3: "willneed", 4: "dontneed",
           20: "cold", 21: "pageout"}
MADV_NAMES = {5: "MADV_5", 8: "MADV_FREE", 9: "MADV_REMOVE", 10: "MADV_DONTFORK",
              11: "MADV_DOFORK", 12: "MADV_MERGEABLE", 13: "MADV_UNMERGEABLE",
              14: "MADV_HUGEPAGE", 15: "MADV_NOHUGEPAGE", 16: "MADV_DONTDUMP",
              17: "MADV_DODUMP", 18: "MADV_WIPEONFORK", 19: "MADV_KEEPONFORK",
              22: "MADV_POPULATE_READ", 23: "MADV_POPULATE_WRITE", 24: "MADV_DONTNEED_LOCKED",
              25: "MADV_COLLAPSE", 100: "MADV_HWPOISON", 101: "MADV_SOFT_OFFLINE",
              102: "MADV_GUARD_INSTALL", 103: "MADV_GUARD_REMOVE"}
MADV_POPULATE_READ, MADV_POPULATE_WRITE = 22, 23
#: calls that change mappings in ways a trace cannot say
UNMODELLED = ("mlockall", "munlockall", "shmat", "shmdt", "remap_file_pages",
              "process_madvise", "map_shadow_stack", "mseal")
MEMORY = ("mmap", "munmap", "mprotect", "pkey_mprotect", "mremap", "brk", "madvise",
          "mlock", "mlock2", "munlock")
CLONES = ("clone", "clone3", "fork", "vfork")
EXECS = ("execve", "execveat")
EXITS = ("exit", "exit_group")
TRACED = MEMORY + UNMODELLED + CLONES + EXECS + EXITS
_STOP_SIGNALS = frozenset((signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU))
_SYSCALL_TRAP = signal.SIGTRAP | 0x80
_U64 = 1 << 64


def _page_up(n: int) -> int:
    return (n + _MASK) & ~_MASK & (_U64 - 1)


class CommandNotFound(Exception):
    """The command to record does not exist (or is not executable)."""


# -- the state the recorder keeps ---------------------------------------------------------

@dataclass(eq=False)
class _Mm:
    tpid: int                   # the trace pid
    owner: int                  # tgid of the process that owns it
    spawned: bool = False       # the trace has created it
    alive: bool = True
    users: set = field(default_factory=set)
    #: the last reading of pagemap: page numbers (sorted) and their entries
    pages: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    ents: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    need_baseline: bool = False  # a fork child: its first reading is its start
    brk: int | None = None


@dataclass(eq=False)
class _Task:
    tid: int
    tgid: int
    mm: _Mm
    in_syscall: bool = False
    pending: tuple | None = None     # (name, args, extra) of the call it is in
    clone_flags: int | None = None


@dataclass
class RecordReport:
    """What a recording did."""
    command: str
    processes: int = 0
    ops: Counter = field(default_factory=Counter)
    #: events that carry a result the traced program got (system calls)
    recorded: int = 0
    #: events made from /proc at exec (the address space execve built)
    synthesized: int = 0
    touch_events: int = 0
    pages_read: int = 0
    pages_written: int = 0
    unusable: Counter = field(default_factory=Counter)
    approximated: Counter = field(default_factory=Counter)
    scans: int = 0
    stops: int = 0
    seccomp: bool = True
    soft_dirty: bool = False
    frames: bool = True             # pagemap shows frame numbers (CAP_SYS_ADMIN)
    status: int | None = None        # the root's exit status; -N: killed by signal N
    interrupted: bool = False
    elapsed: float = 0.0

    @property
    def events(self) -> int:
        return sum(self.ops.values())

    def status_text(self) -> str:
        rc = self.status
        if rc is None:
            return "interrupted: killed" if self.interrupted else "status unknown"
        if rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = f"signal {-rc}"
            return f"killed by {name}"
        return f"exited with status {rc}"

    def source(self) -> str:
        why = ", ".join(f"{k}: {v}" for k, v in sorted(self.unusable.items(),
                                                       key=lambda kv: (-kv[1], kv[0])))
        status = self.status_text()
        if self.interrupted and "interrupted" not in status:
            status = f"interrupted: {status}"
        return (f"ptrace recording of {self.command}: {status}; "
                f"{self.processes} processes, {self.events} events ({self.recorded} recorded "
                f"results, {self.synthesized} from /proc at exec), {self.touch_events} touches "
                f"({self.pages_written} pages written, {self.pages_read} read); "
                f"{sum(self.unusable.values())} calls not in the trace ({why or 'none'}); "
                f"touch observed ({self.seen_by()})")

    def seen_by(self) -> str:
        if self.soft_dirty:
            return "writes seen by soft-dirty bits"
        if self.frames:
            return "writes seen by page frames"
        return "writes seen by exclusive-mapping bits (frame numbers hidden)"

    def summary(self) -> str:
        out = [f"recorded {self.command}: {self.status_text()}",
               f"  {self.processes} processes, {self.events} events: {self.recorded} system calls "
               f"with their results, {self.synthesized} from /proc at exec, "
               f"{self.touch_events} touches ({self.pages_written} pages written, "
               f"{self.pages_read} read)"]
        if self.ops:
            out.append("  events: " + ", ".join(f"{k} {v}" for k, v in sorted(self.ops.items())))
        for k, v in sorted(self.unusable.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  not in the trace: {k}: {v}")
        for k, v in sorted(self.approximated.items()):
            out.append(f"  approximated: {k}: {v}")
        mode = "seccomp stops" if self.seccomp else "every system call stops (no seccomp)"
        out.append(f"  {self.stops} stops ({mode}), {self.scans} pagemap readings, "
                   f"{self.seen_by()}; {self.elapsed:.2f} s")
        return "\n".join(out)


@dataclass
class Recording:
    header: dict
    items: list                 # events (dicts) and comments (str), in order
    report: RecordReport
    #: indexes (among events) of the events carrying a recorded result
    recorded_events: list = field(default_factory=list)

    @property
    def events(self) -> list[dict]:
        return [x for x in self.items if x.__class__ is dict]

    def lines(self) -> list[bytes]:
        out = [orjson.dumps(self.header)]
        for x in self.items:
            out.append(orjson.dumps(x) if x.__class__ is dict else ("# " + x).encode())
        return out

    def write(self, path: str) -> None:
        write_lines(path, self.lines())

    def reproduction(self, profile: str = "modern", keep: int = 20) -> Reproduction:
        """Replay the recording on the model and count the results it
        reproduces (``rmaplab.trace.reproduce``)."""
        return reproduction(self.lines(), self.recorded_events, profile, keep)


# -- the recorder ----------------------------------------------------------------------------

class Recorder:
    """One recording (``record`` is the function to call)."""

    def __init__(self, argv: list[str], touch: str = "observed", pid_map: bool = False,
                 addresses: str = "hint", seccomp: bool = True, thp: bool = False,
                 progress: Callable[[RecordReport], None] | None = None,
                 grace: float = 5.0) -> None:
        if touch not in ("observed", "none"):
            raise ValueError(f"the ptrace recorder observes touches or records none, "
                             f"not {touch!r}")
        if addresses not in ("hint", "as-called"):
            raise ValueError(f"unknown address mode {addresses!r}")
        if not argv:
            raise ValueError("no command")
        self.argv = list(argv)
        self.observe = touch == "observed"
        self.renumber = pid_map
        self.hint = addresses == "hint"
        self.want_seccomp = seccomp
        self.keep_thp = thp
        self.progress = progress
        self.grace = grace
        self.r = RecordReport(shlex.join(self.argv))
        self.items: list = []
        self.recorded: list[int] = []
        self.nevents = 0
        self.tasks: dict[int, _Task] = {}
        self.orphans: dict[int, int] = {}       # tid -> wait status, before its parent's event
        self.live_pids: set[int] = set()
        self.next_pid = 1
        self.spare_pid = 1 << 22
        self.files: dict[tuple[int, int], dict] = {}   # (dev, ino) -> its file event
        self.pids: list[str] = []                       # the pid map, one line per process
        self.names: set[str] = set()
        self.token = 0
        self.root = 0
        self.zero_pfn: int | None = None
        self.soft_dirty = False
        self._interrupted = False
        self._last_progress = 0.0

    # -- output -----------------------------------------------------------------------------

    def emit(self, ev: dict, recorded: bool = False, synthesized: bool = False) -> dict:
        self.items.append(ev)
        self.r.ops[ev["op"]] += 1
        if recorded:
            self.recorded.append(self.nevents)
            self.r.recorded += 1
        if synthesized:
            self.r.synthesized += 1
        self.nevents += 1
        return ev

    def comment(self, text: str) -> None:
        self.items.append(text.replace("\n", " "))

    def _trace_pid(self, real: int, role: str) -> int:
        if self.renumber:
            p = self.next_pid
            self.next_pid += 1
        elif real in self.live_pids:
            while self.spare_pid in self.live_pids:
                self.spare_pid += 1
            p = self.spare_pid
            self.spare_pid += 1
        else:
            p = real
        self.live_pids.add(p)
        self.pids.append(f"pid {real} -> trace pid {p}: {role}")
        return p

    def _spawned(self, mm: _Mm) -> None:
        mm.spawned = True
        self.r.processes += 1

    def _exit_mm(self, mm: _Mm) -> None:
        if mm.alive:
            mm.alive = False
            if mm.spawned:
                self.emit({"op": "exit", "pid": mm.tpid})
                self.live_pids.discard(mm.tpid)

    # -- starting ------------------------------------------------------------------------------

    def _start(self) -> None:
        path = self.argv[0]
        if "/" not in path:
            found = shutil.which(path)
            if found is None:
                raise CommandNotFound(f"{path}: command not found")
            path = found
        elif not os.access(path, os.X_OK) or os.path.isdir(path):
            raise CommandNotFound(f"{path}: not an executable file")
        ps.libc()                               # PtraceUnavailable off Linux/x86_64
        self.zero_pfn = ps.probe_zero_pfn()
        self.soft_dirty = ps.probe_soft_dirty()
        self.r.soft_dirty = self.soft_dirty
        self.r.frames = self.zero_pfn is not None
        numbers = [ps.NR[n] for n in TRACED]
        r_go, w_go = os.pipe()
        r_st, w_st = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:                            # the child: wait, filter, exec
            try:
                os.close(w_go)
                os.close(r_st)
                os.read(r_go, 1)
                if not self.keep_thp:
                    ps.disable_thp()
                ok = b"n"
                if self.want_seccomp:
                    try:
                        ps.install_seccomp(numbers)
                        ok = b"s"
                    except OSError:
                        pass
                os.write(w_st, ok)
                os.close(w_st)
                os.execv(path, self.argv)
            except BaseException as e:          # noqa: B036 - the child must not return
                try:
                    os.write(2, f"rmaplab record: cannot run {self.argv[0]}: {e}\n".encode())
                except BaseException:           # noqa: B036
                    pass
            os._exit(127)
        os.close(r_go)
        os.close(w_st)
        opts = (ps.O_TRACESYSGOOD | ps.O_TRACEFORK | ps.O_TRACEVFORK | ps.O_TRACECLONE
                | ps.O_TRACEEXEC | ps.O_TRACEEXIT | ps.O_TRACESECCOMP | ps.O_EXITKILL)
        try:
            ps.ptrace(ps.PTRACE_SEIZE, pid, 0, opts)
        except OSError as e:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(w_go)
            os.close(r_st)
            raise ps.PtraceUnavailable(f"cannot trace the command: {e.strerror} "
                                       f"(is ptrace permitted here?)") from None
        os.write(w_go, b"g")
        os.close(w_go)
        got = os.read(r_st, 1)
        os.close(r_st)
        self.seccomp = got == b"s"
        self.r.seccomp = self.seccomp
        self.root = pid
        mm = _Mm(tpid=0, owner=pid)
        mm.users.add(pid)
        self.tasks[pid] = _Task(pid, pid, mm)

    # -- the loop ------------------------------------------------------------------------------

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self._interrupted = True

    def run(self) -> Recording:
        t0 = time.perf_counter()
        self._start()
        self._loop()
        for mm in {id(t.mm): t.mm for t in self.tasks.values()}.values():
            self._exit_mm(mm)
        self.r.elapsed = time.perf_counter() - t0
        self.r.interrupted = self._interrupted
        header = {"format": "rmaplab-trace", "version": 1, "page_size": PAGE,
                  "source": self.r.source()}
        return Recording(header, self.pids + self.items, self.r, self.recorded)

    def _loop(self) -> None:
        """Wait for the tracees' stops until none is left. In the main thread
        SIGINT (Ctrl-C) only sets a flag: the wait never blocks in waitpid
        (a result it returned could be lost to an exception) but in select
        on the signal wakeup fd, which SIGCHLD (every stop and exit of a
        tracee) and SIGINT write to. After SIGINT the command has grace/2
        seconds to end (from a terminal it got the SIGINT too), then gets
        SIGINT, then after grace seconds every tracee SIGKILL."""
        if threading.current_thread() is not threading.main_thread():
            while self._tracing():
                try:
                    pid, status = os.waitpid(-1, ps.WALL)
                except ChildProcessError:
                    return
                self._status(pid, status)
                self._tick()
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_fd = signal.set_wakeup_fd(w)
        old_int = signal.signal(signal.SIGINT, self._on_sigint)
        old_chld = signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        try:
            since: float | None = None
            sent_int = sent_kill = False
            while self._tracing():
                if self._interrupted:
                    now = time.monotonic()
                    if since is None:
                        since = now
                    if now - since > self.grace / 2 and not sent_int:
                        sent_int = True
                        self._signal_all(signal.SIGINT, root_only=True)
                    if now - since > self.grace and not sent_kill:
                        sent_kill = True
                        self._signal_all(signal.SIGKILL)
                try:
                    pid, status = os.waitpid(-1, ps.WALL | os.WNOHANG)
                except ChildProcessError:
                    return
                if pid:
                    self._status(pid, status)
                    self._tick()
                    continue
                select.select([r], [], [], 0.1 if self._interrupted else 1.0)
                try:
                    while os.read(r, 512):
                        pass
                except BlockingIOError:
                    pass
        finally:
            signal.signal(signal.SIGCHLD, old_chld)
            signal.signal(signal.SIGINT, old_int)
            signal.set_wakeup_fd(old_fd)
            os.close(r)
            os.close(w)

    def _tracing(self) -> bool:
        """Some tracee is still alive. The loop ends on this, not on
        waitpid's ECHILD: the recording process may have children of its
        own (a multiprocessing resource tracker, a worker pool) that never
        exit while it records."""
        return bool(self.tasks or self.orphans)

    def _tick(self) -> None:
        if self.progress is not None:
            now = time.monotonic()
            if now - self._last_progress > 0.5:
                self._last_progress = now
                self.progress(self.r)

    def _signal_all(self, sig: int, root_only: bool = False) -> None:
        tids = [self.root] if root_only else list(self.tasks) + list(self.orphans)
        for tid in tids:
            try:
                os.kill(tid, sig)
            except OSError:
                pass

    def _status(self, pid: int, status: int) -> None:
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            self._gone(pid, status)
            return
        if not os.WIFSTOPPED(status):
            return
        t = self.tasks.get(pid)
        if t is None:                       # a child reported before its parent's event
            self.orphans[pid] = status
            return
        self.r.stops += 1
        self._stop(t, status)

    def _resume(self, t: _Task, sig: int = 0) -> None:
        req = ps.PTRACE_SYSCALL if (t.in_syscall or not self.seccomp) else ps.PTRACE_CONT
        ps.resume(req, t.tid, sig)

    def _stop(self, t: _Task, status: int) -> None:
        sig = os.WSTOPSIG(status)
        event = status >> 16
        if t.mm.need_baseline:
            self._baseline(t)
        try:
            if sig == _SYSCALL_TRAP:
                info = ps.syscall_info(t.tid)
                if info.op == ps.INFO_ENTRY:
                    self._entry(t, info)
                elif info.op == ps.INFO_EXIT:
                    self._exit_stop(t, info)
            elif sig == signal.SIGTRAP and event == ps.EVENT_SECCOMP:
                self._entry(t, ps.syscall_info(t.tid))
            elif sig == signal.SIGTRAP and event in (ps.EVENT_FORK, ps.EVENT_VFORK, ps.EVENT_CLONE):
                self._new_task(t, ps.event_msg(t.tid), event)
            elif sig == signal.SIGTRAP and event == ps.EVENT_EXEC:
                t = self._exec(t, ps.event_msg(t.tid))
            elif sig == signal.SIGTRAP and event == ps.EVENT_EXIT:
                self._exiting(t)
            elif event == ps.EVENT_STOP:
                if sig in _STOP_SIGNALS:        # a group-stop: stay stopped, listen
                    ps.resume(ps.PTRACE_LISTEN, t.tid)
                    return
            else:                               # a signal for the tracee: deliver it
                self._resume(t, sig)
                return
        except OSError as e:
            if e.errno != errno.ESRCH:          # the task died under us: its exit follows
                raise
        self._resume(t)

    # -- system calls ----------------------------------------------------------------------------

    def _entry(self, t: _Task, info: ps.SyscallInfo) -> None:
        name = ps.NAME.get(info.nr)
        if info.arch != ps.AUDIT_ARCH_X86_64:
            if self.seccomp or name is not None:
                self.r.unusable["calls of another ABI (32-bit)"] += 1
            return
        if name is None:
            return
        if self.seccomp:
            t.in_syscall = True
        args = info.args
        extra: Any = None
        mm = t.mm
        if mm.spawned and mm.alive and name not in ("exit",):
            self._scan(t)
        if name == "mmap" and not args[3] & MAP_ANONYMOUS:
            extra = self._fd_info(t.tid, args[4] & 0xFFFFFFFF)
        elif name in CLONES:
            t.clone_flags = self._clone_flags(t.tid, name, args)
        t.pending = (name, args, extra)

    def _exit_stop(self, t: _Task, info: ps.SyscallInfo) -> None:
        t.in_syscall = False
        p, t.pending = t.pending, None
        if p is None:
            return
        name, args, extra = p
        mm = t.mm
        if name not in MEMORY and name not in UNMODELLED:
            return
        if not (mm.spawned and mm.alive):
            return
        rval = info.rval
        if info.is_error and -rval in (512, 513, 514, 516):      # ERESTART*: not done
            self.r.unusable[f"{name} interrupted"] += 1
            return
        expect: Any = errno.errorcode.get(-rval, f"errno {-rval}") if info.is_error else rval
        ok = not info.is_error
        if name in UNMODELLED:
            self.r.unusable[name] += 1
            self.comment(f"pid {mm.tpid}: {name}{tuple(hex(a) for a in args[:3])} = {expect}: "
                         f"not in the trace format")
            if ok:
                self._absorb(t, None)
            return
        handler = getattr(self, "_sys_" + {"pkey_mprotect": "mprotect",
                                            "mlock2": "mlock"}.get(name, name))
        handler(t, mm, name, args, extra, expect, ok, rval)

    def _unusable(self, mm: _Mm, reason: str, text: str) -> None:
        self.r.unusable[reason] += 1
        self.comment(f"pid {mm.tpid}: {text}: not in the trace format ({reason})")

    @staticmethod
    def _prot(v: int) -> tuple[str, int]:
        s = ("r" if v & 1 else "-") + ("w" if v & 2 else "-") + ("x" if v & 4 else "-")
        return s, v & ~7

    def _sys_mmap(self, t: _Task, mm: _Mm, name: str, args: tuple, extra: Any, expect: Any,
                  ok: bool, rval: int) -> None:
        addr, length, protv, flagv, fd, off = args
        prot, other = self._prot(protv)
        if other:
            self.r.approximated[f"mmap prot bits {other:#x} dropped"] += 1
        kind = flagv & MAP_TYPE
        words = {1: ["shared"], 2: ["private"], 3: ["shared"]}.get(kind)
        if words is None:
            self._unusable(mm, "mmap with a bad mapping type",
                           f"mmap(..., flags={flagv:#x}) = {expect}")
            return
        for bit, bname in _MAP_BITS:
            if bit <= 3 or not flagv & bit:
                continue
            w = _MAP_WORDS.get(bname)
            if w:
                words.append(w)
            elif bname not in ("MAP_DENYWRITE", "MAP_EXECUTABLE", "MAP_STACK", "MAP_NONBLOCK"):
                self.r.approximated[f"mmap flag {bname} dropped"] += 1
        file = None
        if not flagv & MAP_ANONYMOUS:
            if extra is None:
                self._unusable(mm, "mmap of an unknown fd",
                               f"mmap({addr:#x}, {length}, fd {fd & 0xFFFFFFFF}) = {expect}")
                return
            kindf, key, path, size, mode = extra
            if kindf == "zero":
                words.append("anonymous")
            elif kindf == "reg":
                fev = self._declare(key, path, size)
                file = {"name": fev["name"], "offset": off}
                if mode != "rw":
                    file["open"] = mode
            else:
                words.append("anonymous")
                self.r.approximated["device mapping recorded as anonymous memory"] += 1
        words = [w for w in _WORD_ORDER if w in set(words)]
        call_addr: int | None = addr or None
        if self.hint and ok and "fixed" not in words and "fixed_noreplace" not in words:
            call_addr = rval
        self.emit({"op": "mmap", "pid": mm.tpid, "addr": call_addr, "len": length, "prot": prot,
                   "flags": words, "file": file, "expect": expect}, recorded=True)
        if ok:      # a new mapping is empty unless populated (MAP_FIXED dropped the old pages)
            self._absorb(t, [(rval, rval + _page_up(length))],
                         read=bool(flagv & (MAP_POPULATE | MAP_LOCKED)))

    def _sys_munmap(self, t, mm, name, args, extra, expect, ok, rval) -> None:
        self.emit({"op": "munmap", "pid": mm.tpid, "addr": args[0], "len": args[1],
                   "expect": expect}, recorded=True)
        if ok:
            self._absorb(t, [(args[0], _page_up(args[0] + args[1]))], read=False)

    def _sys_mprotect(self, t, mm, name, args, extra, expect, ok, rval) -> None:
        addr, length, protv = args[:3]
        if name == "pkey_mprotect" and (args[3] & 0xFFFFFFFF) != 0xFFFFFFFF:
            self._unusable(mm, "pkey_mprotect with a protection key",
                           f"pkey_mprotect({addr:#x}, {length}, {protv:#x}, {args[3]}) = {expect}")
            return
        prot, other = self._prot(protv)
        if other & 0x03000000:
            self._unusable(mm, "mprotect PROT_GROWSDOWN/GROWSUP",
                           f"mprotect({addr:#x}, {length}, {protv:#x}) = {expect}")
            return
        if other:
            self.r.approximated[f"mprotect prot bits {other:#x} dropped"] += 1
        self.emit({"op": "mprotect", "pid": mm.tpid, "addr": addr, "len": length, "prot": prot,
                   "expect": expect}, recorded=True)
        if ok:      # a locked mapping made writable is faulted in
            self._absorb(t, [(addr, _page_up(addr + length))])

    def _sys_mremap(self, t, mm, name, args, extra, expect, ok, rval) -> None:
        addr, old_len, new_len, flagv, new_addr = args[:5]
        flags = [w for bit, w in ((1, "maymove"), (2, "fixed"), (4, "dontunmap")) if flagv & bit]
        if flagv & ~7:
            self._unusable(mm, "mremap with unknown flags",
                           f"mremap({addr:#x}, {old_len}, {new_len}, {flagv:#x}) = {expect}")
            return
        # the kernel reads new_addr with MREMAP_FIXED and with MREMAP_DONTUNMAP
        # (a hint there: EINVAL when it is not page aligned)
        na: int | None = new_addr if ("fixed" in flags or "dontunmap" in flags) else None
        if self.hint and ok and rval != addr and "maymove" in flags and "fixed" not in flags:
            if "dontunmap" in flags:        # the address it got, as the hint
                na = rval
            else:
                flags = ["maymove", "fixed"]
                na = rval
        ev: dict = {"op": "mremap", "pid": mm.tpid, "addr": addr, "old_len": old_len,
                    "new_len": new_len, "flags": flags}
        if na is not None:
            ev["new_addr"] = na
        ev["expect"] = expect
        self.emit(ev, recorded=True)
        if ok:      # the pages left the old range and are in the new one
            self._absorb(t, [(addr, _page_up(addr + old_len))], read=False)
            self._absorb(t, [(rval, rval + _page_up(new_len))])

    def _sys_brk(self, t, mm, name, args, extra, expect, ok, rval) -> None:
        self.emit({"op": "brk", "pid": mm.tpid, "addr": args[0], "expect": expect}, recorded=True)
        if ok:
            if mm.brk is not None and _page_up(rval) < _page_up(mm.brk):
                self._absorb(t, [(_page_up(rval), _page_up(mm.brk))], read=False)
            mm.brk = rval

    def _sys_madvise(self, t, mm, name, args, extra, expect, ok, rval) -> None:
        addr, length, adv = args[0], args[1], args[2] & 0xFFFFFFFF
        if adv in MADVICE:
            self.emit({"op": "madvise", "pid": mm.tpid, "addr": addr, "len": length,
                       "advice": MADVICE[adv], "expect": expect}, recorded=True)
            if ok:      # dontneed, pageout, ... took pages away
                self._absorb(t, [(addr, _page_up(addr + length))])
            return
        aname = MADV_NAMES.get(adv, f"advice {adv}")
        if adv in (MADV_POPULATE_READ, MADV_POPULATE_WRITE) and ok and length:
            # the pages it faulted in, as touches (the call itself is not in the format)
            self.r.approximated[f"madvise {aname} recorded as its touches"] += 1
            self.comment(f"pid {mm.tpid}: madvise({addr:#x}, {length}, {aname}) = 0: "
                         f"recorded as the touches it made")
            self._scan(t)
            return
        self._unusable(mm, f"madvise {aname}", f"madvise({addr:#x}, {length}, {aname}) = {expect}")
        if ok:      # MADV_FREE, MADV_REMOVE, ... may take pages away
            self._absorb(t, [(addr, _page_up(addr + length))])

    def _sys_mlock(self, t, mm, name, args, extra, expect, ok, rval) -> None:
        if name == "mlock2" and args[2]:
            self._unusable(mm, "mlock2 MLOCK_ONFAULT",
                           f"mlock2({args[0]:#x}, {args[1]}, {args[2]:#x}) = {expect}")
            return
        self.emit({"op": "mlock", "pid": mm.tpid, "addr": args[0], "len": args[1],
                   "expect": expect}, recorded=True)
        if ok:
            self._absorb(t, [(args[0] & ~_MASK, _page_up(args[0] + args[1]))])

    def _sys_munlock(self, t, mm, name, args, extra, expect, ok, rval) -> None:
        self.emit({"op": "munlock", "pid": mm.tpid, "addr": args[0], "len": args[1],
                   "expect": expect}, recorded=True)

    # -- files -------------------------------------------------------------------------------------

    def _fd_info(self, tid: int, fd: int) -> tuple | None:
        """(kind, (dev, ino), path, size, open mode) of a tracee's fd."""
        if fd >= 1 << 31:
            return None
        try:
            path = os.readlink(f"/proc/{tid}/fd/{fd}")
            st = os.stat(f"/proc/{tid}/fd/{fd}")
        except OSError:
            return None
        mode = "rw"
        try:
            with open(f"/proc/{tid}/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("flags:"):
                        mode = {0: "r", 1: "w"}.get(int(line.split()[1], 8) & 3, "rw")
        except (OSError, ValueError):
            pass
        if path.endswith(" (deleted)"):
            path = path[:-len(" (deleted)")]
        if statmod.S_ISREG(st.st_mode):
            return ("reg", (st.st_dev, st.st_ino), path, st.st_size, mode)
        if statmod.S_ISCHR(st.st_mode) and path == "/dev/zero":
            return ("zero", None, path, 0, mode)
        return ("other", None, path, 0, mode)

    def _declare(self, key: tuple[int, int], path: str, size: int) -> dict:
        ev = self.files.get(key)
        if ev is None:
            name = path
            n = 1
            while name in self.names:
                n += 1
                name = f"{path} ({n})"
            self.names.add(name)
            ev = self.emit({"op": "file", "name": name, "size": size})
            self.files[key] = ev
        elif size > ev["size"]:
            ev["size"] = size
        return ev

    # -- processes -------------------------------------------------------------------------------

    def _clone_flags(self, tid: int, name: str, args: tuple) -> int:
        if name == "fork":
            return 0
        if name == "vfork":
            return CLONE_VM | CLONE_VFORK
        if name == "clone":
            return args[0]
        try:                                    # clone3: struct clone_args starts with flags
            with open(f"/proc/{tid}/mem", "rb", buffering=0) as f:
                return struct.unpack("<Q", os.pread(f.fileno(), 8, args[0]))[0]
        except (OSError, struct.error):
            return 0

    def _new_task(self, parent: _Task, child: int, event: int) -> None:
        flags = parent.clone_flags
        if event == ps.EVENT_VFORK:
            flags = CLONE_VM | CLONE_VFORK
        elif flags is None:
            flags = 0
        if flags & CLONE_VM:
            mm = parent.mm
            tgid = parent.tgid if flags & CLONE_THREAD else child
            mm.users.add(child)
            t = _Task(child, tgid, mm)
        else:
            pm = parent.mm
            mm = _Mm(tpid=self._trace_pid(child, f"child of {parent.tid}"), owner=child)
            mm.users.add(child)
            if pm.spawned and pm.alive:
                self._spawned(mm)
                self.emit({"op": "fork", "pid": pm.tpid, "child": mm.tpid})
                mm.need_baseline = True
                mm.brk = pm.brk
            t = _Task(child, child, mm)
        self.tasks[child] = t
        status = self.orphans.pop(child, None)
        if status is not None:
            self.r.stops += 1
            self._stop(t, status)

    def _baseline(self, t: _Task) -> None:
        mm = t.mm
        mm.need_baseline = False
        if self.observe:
            self._scan(t, emit=False)

    def _exec(self, t: _Task, former: int) -> _Task:
        pid = t.tid                     # the thread group's pid, which the task now has
        if former != pid and former in self.tasks:
            old_leader = t
            t = self.tasks.pop(former)
            t.tid = pid
            self.tasks[pid] = t
            old_leader.mm.users.discard(pid)
            t.in_syscall = old_leader.in_syscall or t.in_syscall
        old = t.mm
        old.users.discard(former)
        old.users.discard(pid)
        exe = self._exe(pid)
        if not old.spawned:                     # the root's first exec
            mm = _Mm(tpid=self._trace_pid(pid, "root process") if old.tpid == 0 else old.tpid,
                     owner=pid)
            self._spawned(mm)
            self.comment(f"pid {mm.tpid}: {exe}")
            self.emit({"op": "spawn", "pid": mm.tpid})
            old.alive = False
        elif t.tgid != old.owner:               # a vfork child (or CLONE_VM task) leaves
            mm = _Mm(tpid=self._trace_pid(pid, f"vfork child of pid {old.tpid}, at its exec"),
                     owner=pid)
            self._spawned(mm)
            self.comment(f"pid {mm.tpid}: {exe} (exec'ed by a vfork child of pid {old.tpid}: "
                         f"a fork followed by an exec)")
            if old.alive:
                self.emit({"op": "fork", "pid": old.tpid, "child": mm.tpid})
                self.emit({"op": "exec", "pid": mm.tpid})
            else:
                self.emit({"op": "spawn", "pid": mm.tpid})
            if not old.users:
                self._exit_mm(old)
        else:
            mm = _Mm(tpid=old.tpid, owner=pid)
            mm.spawned = True
            self.comment(f"pid {mm.tpid}: {exe}")
            self.emit({"op": "exec", "pid": mm.tpid})
            old.alive = False                   # the other threads die with the old image
            for other in list(self.tasks.values()):
                if other.tgid == t.tgid and other is not t:
                    other.mm = old
        mm.users.add(pid)
        t.mm = mm
        t.tgid = pid
        t.pending = None if t.pending and t.pending[0] not in EXECS else t.pending
        self._layout(t)
        return t

    def _exe(self, pid: int) -> str:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]]
        except OSError:
            argv = []
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            exe = "?"
        return f"execve {exe}: {shlex.join(argv)}"[:400]

    def _layout(self, t: _Task) -> None:
        """The address space execve built, as events (``exec_layout``)."""
        mm = t.mm
        tid = t.tid
        try:
            vmas = read_vmas(tid)
        except OSError:
            self.r.unusable["exec whose maps could not be read"] += 1
            return
        start_brk = ps.read_start_brk(tid)
        if start_brk is not None:
            mm.brk = start_brk

        def file_of(v: Any) -> str | None:
            try:
                st = os.stat(f"/proc/{tid}/map_files/{v.start:x}-{v.end:x}")
            except OSError:
                st = None
            if st is None or not statmod.S_ISREG(st.st_mode):
                self.r.approximated["exec mapping of an unknown file as anonymous"] += 1
                return None
            path = v.path[:-len(" (deleted)")] if v.path.endswith(" (deleted)") else v.path
            return self._declare((st.st_dev, st.st_ino), path, st.st_size)["name"]

        for item in exec_layout(mm.tpid, vmas, start_brk, file_of):
            if isinstance(item, str):
                if "below where the model's starts" in item:
                    self.r.approximated["program break below the model's 0x600000"] += 1
                self.comment(item)
            else:
                self.emit(item, synthesized=True)
        if self.observe:
            mm.pages = np.empty(0, np.uint64)
            mm.ents = np.empty(0, np.uint64)
            n = self.r.touch_events
            self._scan(t, vmas=vmas)
            self.r.synthesized += self.r.touch_events - n

    def _exiting(self, t: _Task) -> None:
        """PTRACE_EVENT_EXIT: the task is about to go, its mm still there."""
        mm = t.mm
        if mm.spawned and mm.alive and mm.users == {t.tid} and self.observe:
            try:
                self._scan(t)
            except OSError:
                pass
        self._leave(t)

    def _leave(self, t: _Task) -> None:
        mm = t.mm
        mm.users.discard(t.tid)
        if not mm.users:
            self._exit_mm(mm)

    def _gone(self, tid: int, status: int) -> None:
        self.orphans.pop(tid, None)
        t = self.tasks.pop(tid, None)
        if tid == self.root:
            self.r.status = (os.WEXITSTATUS(status) if os.WIFEXITED(status)
                             else -os.WTERMSIG(status))
        if t is not None:
            self._leave(t)

    # -- pages -------------------------------------------------------------------------------------

    def _read(self, tid: int, ranges: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        pages: list[np.ndarray] = []
        ents: list[np.ndarray] = []
        merged: list[list[int]] = []            # adjacent ranges read at once
        for a, b in sorted(ranges):
            if merged and merged[-1][1] == a:
                merged[-1][1] = b
            else:
                merged.append([a, b])
        with open(f"/proc/{tid}/pagemap", "rb", buffering=0) as f:
            for a, b in merged:
                p, e = ps.pagemap_nonzero(f.fileno(), a, b)
                if p.size:
                    pages.append(p)
                    ents.append(e)
        if not pages:
            return np.empty(0, np.uint64), np.empty(0, np.uint64)
        p = np.concatenate(pages)
        e = np.concatenate(ents)
        order = np.argsort(p, kind="stable")
        return p[order], e[order]

    def _absorb(self, t: _Task, ranges: list[tuple[int, int]] | None, read: bool = True) -> None:
        """After a call that brought pages in or took them away itself: read
        its ranges into the last reading without making touches of them
        (``None``: the whole mm; ``read=False``: the ranges are empty now)."""
        if not self.observe:
            return
        mm = t.mm
        try:
            if ranges is None:
                self._scan(t, emit=False)
                return
            if read:
                p, e = self._read(t.tid, ranges)
            else:
                p, e = np.empty(0, np.uint64), np.empty(0, np.uint64)
        except OSError:
            return
        keep = np.ones(mm.pages.size, bool)
        for a, b in ranges:
            keep &= ~((mm.pages >= np.uint64(a >> 12)) & (mm.pages < np.uint64(b >> 12)))
        pages = np.concatenate([mm.pages[keep], p])
        ents = np.concatenate([mm.ents[keep], e])
        order = np.argsort(pages, kind="stable")
        mm.pages, mm.ents = pages[order], ents[order]
        if self.soft_dirty:
            ps.clear_soft_dirty(t.tid)

    def _scan(self, t: _Task, emit: bool = True, vmas: list | None = None) -> None:
        """Read the mm's pages; emit touches for what changed since the last
        reading (see the module docstring), and keep this reading."""
        if not self.observe:
            return
        mm = t.mm
        tid = t.tid
        try:
            if vmas is None:
                vmas = read_vmas(tid)
            # no page can be touched in a PROT_NONE VMA (reservations, guard
            # pages: often huge); the pages an mprotect makes accessible are
            # read into the last reading when it returns
            vmas = [v for v in vmas if v.path not in SPECIAL and v.perms[:3] != "---"]
            p, e = self._read(tid, [(v.start, v.end) for v in vmas])
        except OSError:
            return
        self.r.scans += 1
        old_p, old_e = mm.pages, mm.ents
        mm.pages, mm.ents = p, e
        if self.soft_dirty:
            ps.clear_soft_dirty(tid)
        if not emit or not p.size:
            return
        sel, written = changed_pages(old_p, old_e, p, e, self.zero_pfn, self.soft_dirty)
        if not sel.size:
            return
        pages = p[sel]
        starts = np.array([v.start >> 12 for v in vmas], dtype=np.uint64)
        vi = np.searchsorted(starts, pages, side="right") - 1
        self._emit_touches(mm, pages, written, vi, vmas)

    def _emit_touches(self, mm: _Mm, pages: np.ndarray, wr: np.ndarray, vi: np.ndarray,
                      vmas: list) -> None:
        for s, e_ in touch_runs(pages, wr, vi):
            v = vmas[int(vi[s])]
            perms = v.perms
            write = bool(wr[s])
            if write and (perms[1] != "w"):
                self.r.approximated["write seen in a mapping without write permission: read"] += 1
                write = False
            if not write and perms[0] != "r":
                self.r.approximated["page present in an unreadable mapping: no touch"] += e_ - s
                continue
            count = e_ - s
            ev: dict = {"op": "touch", "pid": mm.tpid, "addr": int(pages[s]) << 12,
                        "len": count * PAGE, "access": "w" if write else "r"}
            if write:
                self.token += 1
                ev["token"] = self.token
                self.r.pages_written += count
            else:
                self.r.pages_read += count
            ev["expect"] = "ok"
            self.emit(ev)
            self.r.touch_events += 1


def exec_layout(tpid: int, vmas: list, start_brk: int | None,
                file_of: Callable[[Any], str | None]) -> Iterator[dict | str]:
    """The events (and ``#`` comments) that rebuild, in the model, the
    address space execve built: ``vmas`` as ``read_vmas`` gives them,
    ``start_brk`` from ``/proc/<pid>/stat``; ``file_of(vma)`` declares the
    file a file-backed VMA maps and gives its trace name (None: map it as
    anonymous memory). Every event carries its result as ``expect``.

    The break comes first, while nothing is mapped: the model's break
    starts at MODEL_START_BRK, so ``brk(start_brk)`` grows it there and a
    ``munmap`` takes away what that mapped below; ``brk(NULL)`` then
    returns ``start_brk``, as the kernel does. Then each VMA as a fixed
    ``mmap``: file VMAs private (or shared) at their offset, the others
    anonymous, ``[stack]`` with ``growsdown``."""
    text = f"pid {tpid}: the address space execve built (/proc/PID/maps)"
    if start_brk is not None:
        text += f", and the program break at {start_brk:#x}"
    yield text
    if start_brk is not None:
        if start_brk > MODEL_START_BRK:
            yield {"op": "brk", "pid": tpid, "addr": start_brk, "expect": start_brk}
            yield {"op": "munmap", "pid": tpid, "addr": MODEL_START_BRK,
                   "len": start_brk - MODEL_START_BRK, "expect": 0}
        elif start_brk < MODEL_START_BRK:
            yield (f"pid {tpid}: the break starts at {start_brk:#x}, below where the model's "
                   f"starts ({MODEL_START_BRK:#x}): brk results will differ")
    for v in vmas:
        flags = ["shared" if v.perms[3:4] == "s" else "private", "fixed"]
        file = None
        name = v.path
        if v.inode and name.startswith("/"):
            fname = file_of(v)
            if fname is not None:
                file = {"name": fname, "offset": v.offset}
        if file is None:
            flags.append("anonymous")
            if name == "[stack]":
                flags.append("growsdown")
        yield {"op": "mmap", "pid": tpid, "addr": v.start, "len": v.end - v.start,
               "prot": v.perms[:3], "flags": [w for w in _WORD_ORDER if w in flags],
               "file": file, "expect": v.start}


def changed_pages(old_pages: np.ndarray, old_ents: np.ndarray, pages: np.ndarray,
                  ents: np.ndarray, zero_pfn: int | None,
                  soft_dirty: bool) -> tuple[np.ndarray, np.ndarray]:
    """Compare two readings of pagemap (sorted page numbers and their
    entries, present or swapped pages only) and say which pages of the new
    one were touched in between, and which of those were written.

    Returns (indexes into ``pages`` of the touched pages, written? for each).
    Touched: present now and not before (a fault, a swap-in), present before
    with another frame now (a copy on write, or a re-read after reclaim), or
    soft-dirty (with ``soft_dirty``). Written: soft-dirty, or an anonymous
    page (not the page cache, not shmem) that is new (not swapped in) or on
    a new frame and is not the zero page (``zero_pfn``; where frames are hidden, an exclusively
    mapped page stands for a page of its own, and an anonymous page that
    becomes exclusively mapped for a copy on write)."""
    n = pages.size
    if old_pages.size:
        idx = np.searchsorted(old_pages, pages)
        idx_c = np.minimum(idx, old_pages.size - 1)
        found = old_pages[idx_c] == pages
        prev = np.where(found, old_ents[idx_c], np.uint64(0))
    else:
        prev = np.zeros(n, np.uint64)
    present = (ents & np.uint64(ps.PM_PRESENT)) != 0
    was_present = (prev & np.uint64(ps.PM_PRESENT)) != 0
    pfn_mask = np.uint64(ps.PM_PFN_MASK)
    pfn = ents & pfn_mask
    new = present & ~was_present
    moved = present & was_present & (pfn != (prev & pfn_mask)) & (pfn != 0)
    # where frames are hidden (not root): an anonymous page that was shared
    # and is this process's own now was copied on write (or its sharer went)
    excl = (ents & np.uint64(ps.PM_EXCLUSIVE)) != 0
    was_excl = (prev & np.uint64(ps.PM_EXCLUSIVE)) != 0
    moved |= (present & was_present & (pfn == 0) & excl & ~was_excl
              & ((ents & np.uint64(ps.PM_FILE)) == 0))
    if soft_dirty:
        sd = present & ((ents & np.uint64(ps.PM_SOFT_DIRTY)) != 0)
    else:
        sd = np.zeros(n, bool)
    changed = new | moved | sd
    anon = (ents & np.uint64(ps.PM_FILE)) == 0
    if zero_pfn is not None:
        real = pfn != np.uint64(zero_pfn)
    else:
        real = (ents & np.uint64(ps.PM_EXCLUSIVE)) != 0
    swapped_in = new & ((prev & np.uint64(ps.PM_SWAP)) != 0)
    written = (anon & real & (new | moved) & ~swapped_in) | sd
    sel = np.flatnonzero(changed)
    return sel, written[sel]


def touch_runs(pages: np.ndarray, written: np.ndarray,
               vma_index: np.ndarray) -> list[tuple[int, int]]:
    """Runs ``[i, j)`` of consecutive pages in one VMA with one access."""
    n = pages.size
    if not n:
        return []
    cut = np.ones(n, bool)
    if n > 1:
        cut[1:] = ((pages[1:] != pages[:-1] + np.uint64(1)) | (vma_index[1:] != vma_index[:-1])
                   | (written[1:] != written[:-1]))
    starts = np.flatnonzero(cut).tolist()
    return list(zip(starts, starts[1:] + [n]))


def record(argv: list[str], **kw: Any) -> Recording:
    """Run ``argv`` under the ptrace recorder (see the module docstring;
    keywords as ``Recorder``). Raises CommandNotFound, ps.PtraceUnavailable."""
    return Recorder(argv, **kw).run()
