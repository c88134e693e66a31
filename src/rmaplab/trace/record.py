"""Recording a command's memory system calls with the real ``strace``.

``run_strace(cmd, log)`` runs ``strace -f -q -y -o LOG -e trace=FILTER --
CMD...`` and waits for it; ``rmaplab record`` then imports the log
(``rmaplab.trace.strace``). The filter keeps what the importer uses and
little else:

- ``%memory``: mmap, munmap, mprotect, mremap, brk, madvise, mlock, ...
- ``%process``: fork, vfork, clone, clone3, execve, exit, exit_group, ...
- the calls that say what an fd is and how big a file is: open, openat,
  openat2, creat, close, close_range, dup, dup2, dup3, fcntl, memfd_create,
  ftruncate, stat, fstat, lstat, newfstatat, statx.

``-y`` makes strace print the path of every fd, so a mapping of an
inherited or passed fd is still a known file; ``-q`` drops the
"attached"/"detached" notes but (unlike ``-qq``) keeps the ``+++ exited``
and ``+++ killed by`` lines, which end processes that die without
``exit_group``.

strace exits with the status of the command (a command killed by a signal
makes strace kill itself with that signal). On Ctrl-C the recording stops (see
``_stop``): the command is given SIGINT if it did not get it from the
terminal, then strace (and with it every traced process) SIGKILL if they
linger; what was logged so far is kept.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass

STRACE_FILTER = ",".join((
    "%memory", "%process",
    "open", "openat", "openat2", "creat", "close", "close_range",
    "dup", "dup2", "dup3", "fcntl", "memfd_create", "ftruncate",
    "stat", "fstat", "lstat", "newfstatat", "statx",
))


class StraceMissing(Exception):
    """No strace executable."""


class RecordFailed(Exception):
    """strace ran but recorded nothing (it could not start or trace the command)."""


@dataclass
class Recording:
    log: str
    argv: list[str]          # the strace command line
    returncode: int          # strace's (the command's) exit status; -N: killed by signal N
    interrupted: bool = False

    def status_text(self) -> str:
        rc = self.returncode
        if self.interrupted and rc == -signal.SIGKILL:
            return "interrupted: strace and the command killed"
        if rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = f"signal {-rc}"
            return f"killed by {name}"
        return f"exited with status {rc}"


def find_strace(strace: str | None = None) -> str:
    path = shutil.which(strace or "strace")
    if path is None:
        raise StraceMissing(f"{strace or 'strace'} not found: install strace "
                            f"(e.g. apt-get install strace) to record")
    return path


def strace_argv(strace: str, log: str, cmd: list[str]) -> list[str]:
    return [strace, "-f", "-q", "-y", "-o", log, "-e", f"trace={STRACE_FILTER}", "--", *cmd]


def run_strace(cmd: list[str], log: str, strace: str | None = None,
               grace: float = 5.0) -> Recording:
    """Run ``cmd`` under strace, logging to ``log``; returns when strace has
    ended (or was stopped by Ctrl-C: then ``interrupted`` is set)."""
    exe = find_strace(strace)
    argv = strace_argv(exe, log, cmd)
    try:
        proc = subprocess.Popen(argv)
    except OSError as e:
        raise RecordFailed(f"cannot run {exe}: {e.strerror or e}") from None
    interrupted = False
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        interrupted = True
        rc = _stop(proc, grace)
    if not interrupted and (not os.path.exists(log) or os.path.getsize(log) == 0):
        raise RecordFailed(
            f"strace exited with status {rc} and logged nothing: it could not start or "
            f"trace the command (see its message above; is ptrace permitted here?)")
    return Recording(log, argv, rc, interrupted)


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (from /proc; empty if unknown)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except (OSError, ValueError):
        return []


def _wait(proc: subprocess.Popen, timeout: float) -> int | None:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    except KeyboardInterrupt:           # another Ctrl-C: go on to the next step
        return None


def _stop(proc: subprocess.Popen, grace: float) -> int:
    """Stop the recording after Ctrl-C.

    From a terminal, Ctrl-C reaches the command too and strace ends when
    it does: wait for that first. Otherwise send SIGINT to the command
    (strace's child; strace itself blocks SIGINT and SIGTERM while it runs
    a command, see its -I option), and at last SIGKILL strace, whose
    tracees the kernel then kills (strace traces with PTRACE_O_EXITKILL)."""
    rc = _wait(proc, grace / 2)
    if rc is not None:
        return rc
    for child in _children(proc.pid):
        try:
            os.kill(child, signal.SIGINT)
        except OSError:
            pass
    rc = _wait(proc, grace / 2)
    if rc is not None:
        return rc
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    return proc.wait()
