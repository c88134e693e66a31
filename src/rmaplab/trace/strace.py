"""Importing ``strace`` logs as traces (``spec/trace-v1.md``).

``import_strace(paths)`` reads the output of ``strace -f -o LOG`` (each line
prefixed with a pid) or of ``strace -ff -o PREFIX`` (one file per pid,
``PREFIX.PID``), with or without timestamps (``-t``, ``-tt``, ``-ttt``,
``-r``) and call times (``-T``), with or without fd paths (``-y``), and
turns the memory system calls into trace events. Nothing in a log is fatal:
a line that cannot be used is counted under a reason and reported (in the
header's ``source`` text and in the summary), and the import goes on.

What becomes what
-----------------

- Processes. The first successful ``execve`` of a traced root becomes
  ``spawn`` (a root that shows a memory call before any ``execve``, as
  after ``strace -p``, is spawned there, with an address space that the log
  never showed). ``fork``, ``vfork``, ``clone`` and ``clone3`` that create a
  process with its own mm become ``fork``. A later successful ``execve``
  becomes ``exec``. ``exit_group``, ``exit`` of the last task of an mm,
  ``+++ exited with N +++`` and ``+++ killed by SIG +++`` become ``exit``,
  once per process.
- Threads. ``clone``/``clone3`` with ``CLONE_VM`` and without
  ``CLONE_VFORK`` make a task that shares the mm: its calls are given the
  pid of the process that owns the mm, and no ``fork`` is emitted.
- vfork. A child made with ``CLONE_VM|CLONE_VFORK`` (``vfork``,
  ``posix_spawn``) shares the parent's mm until it execs: until then its
  calls are the parent's (trace pid of the parent), exactly as in the
  kernel, where the child runs on the parent's mm. At its successful
  ``execve`` the importer emits ``fork`` (parent, child) immediately
  followed by ``exec`` (child): the fork copies the parent's address space
  and the exec throws the copy away at once, so the model ends in the state
  Linux reaches (a child with a fresh address space), at the cost of a copy
  Linux never made (the copy's cost counters are a known overstatement). A
  vfork child that exits without exec emits nothing (it never had an mm of
  its own). The same is done for a ``CLONE_VM`` task outside the parent's
  thread group (no ``CLONE_THREAD``) that execs.
- Memory calls. ``mmap``/``mmap2`` (offsets as strace prints them, in
  bytes), ``munmap``, ``mprotect`` (and ``pkey_mprotect`` with key -1),
  ``mremap``, ``brk``, ``madvise``, ``mlock`` (and ``mlock2`` without
  flags), ``munlock``; the result as ``expect``: an address or ``0`` as an
  integer, or the errno name. ``brk(NULL)`` is ``{"addr": 0}``.
- Flags. ``PROT_*`` become the ``"rwx"`` string (``PROT_SEM`` and unknown
  bits are dropped and counted; ``PROT_GROWSDOWN``/``PROT_GROWSUP`` make an
  ``mprotect`` unusable, since they change its range). ``MAP_*`` become the
  spec's words; ``MAP_SHARED_VALIDATE`` is ``"shared"``; any other flag
  (``MAP_STACK``, ``MAP_DENYWRITE``, ``MAP_HUGETLB``, ...) is dropped and
  counted by name. ``MREMAP_DONTUNMAP`` makes the line unusable, as do
  madvise advice outside the model (``MADV_FREE``, ``MADV_HUGEPAGE``, ...).
- Files. ``open``/``openat``/``openat2``/``creat`` results, ``dup*``,
  ``fcntl(F_DUPFD*)``, ``memfd_create`` and ``close``/``close_range`` are
  followed per fd table (shared by ``CLONE_FILES``, copied by fork,
  ``O_CLOEXEC`` fds dropped at exec); ``-y`` paths (``3</lib/libc.so.6>``)
  are used when present and win. Each mapped file is declared once with a
  ``file`` event before its first ``mmap``, under its path. Its size is the
  largest ``st_size``/``stx_size`` of a regular file that a
  ``stat``/``fstat``/``newfstatat``/``statx`` line showed for that path, or
  the largest ``ftruncate`` length, anywhere in the log; when the log shows
  neither, the largest ``offset + length`` mapped from it. ``/dev/zero`` is
  mapped as anonymous memory (what the kernel does). An ``mmap`` of an fd
  whose origin the log does not show is unusable (record with ``-y`` to
  avoid that).

Addresses
---------

Addresses are the real ones. With ``addresses="hint"`` (the default), an
``mmap`` that the system placed itself (address NULL or an unheeded hint,
no ``MAP_FIXED``) is written with the address it got as its (non-fixed)
address hint, and an ``mremap`` that moved without ``MREMAP_FIXED`` is
written as ``maymove``+``fixed`` to the address it got. The model then
lays the address space out as the recorded system did, so the later calls
on those addresses and the synthesised touches act on the same mappings;
where the model cannot (the range is taken in the model), ``expect``
shows the divergence. With ``addresses="as-called"`` the calls are written
as called and the model chooses (2.6.7 bottom-up layout): later calls on
the recorded addresses then mostly miss. The program break cannot be
hinted, so it is placed: at the first ``brk`` since the address space was
made, when it is ``brk(NULL)`` returning ``B`` above the model's own start
(0x600000) with nothing the log mapped in between, ``brk(B)`` (the model's
break grows up to ``B``) and ``munmap`` of ``[0x600000, B)`` go right after
the ``spawn``/``exec``, without ``expect``; the model's ``brk(NULL)`` then
returns ``B``, and the heap grows where the machine's did.

What the model never sees: the mappings that ``execve`` itself makes (the
program, the dynamic loader, the stack, the vdso) are not system calls. The
ones later calls prove are synthesised: a successful ``mprotect``,
``madvise``, ``mlock`` or ``munlock`` on a range that no logged call mapped
(the loader's ``mprotect`` of RELRO in the program and in itself) maps the
unknown part as anonymous ``rw-`` memory right after the ``spawn``/``exec``
(or at the call, where the log itself unmapped that range), without
``expect``. Synthesised events are counted in the report's ``synthesized``,
not in ``ops``. For the whole address space, record with the ptrace
recorder (``rmaplab record``), which reads it from ``/proc``.

Touches
-------

strace shows no memory accesses; ``touch`` events are synthesised by a
policy, right after the call that created the pages, inside what it mapped:

- ``none``: no touches.
- ``write-new-private`` (default): each page of a new private writable
  mapping (``mmap``, ``mremap`` growth, ``brk`` growth) is written once, in
  one event per call, with token ``"p<pid>:<hex addr>"`` (made unique with
  ``#n`` when an address repeats); the pages of any other readable file
  mapping are read once. Shared anonymous and ``PROT_NONE`` mappings are not
  touched.
- ``read-all``: every new page of a readable mapping is read once.

File pages beyond the end of the file (which would raise SIGBUS) are never
touched. One touch covers at most ``touch_limit`` bytes (default 64 MiB)
from the start of the new range, so that a huge ``MAP_NORESERVE``
reservation does not fill the model; capped touches are counted.

Order
-----

In a ``-f`` log, a call split into ``<unfinished ...>`` and ``<... resumed>``
is placed where it completed, except the calls that create tasks, which are
placed where they started (their children's lines follow that point). The
``-ff`` files are merged by timestamp when every line has an absolute one
(``-t``, ``-tt``, ``-ttt``), a child's file never starting before the call
that created it; without timestamps, a child's whole file is placed right
after the call that created it (depth first), which is a valid order for
fork/vfork children and one possible order for threads.
"""

from __future__ import annotations

import codecs
import glob
import gzip
import heapq
import os
import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from rmaplab.trace.writer import write_lines

PAGE = 4096
_MASK = PAGE - 1
#: where the model's program break starts (rmaplab.kernel.system.START_BRK)
MODEL_START_BRK = 0x600000

TOUCH_POLICIES = ("none", "write-new-private", "read-all")
ADDRESS_MODES = ("hint", "as-called")
DEFAULT_TOUCH_LIMIT = 64 << 20


def _page_up(n: int) -> int:
    return (n + _MASK) & ~_MASK


# -- tables ------------------------------------------------------------------------

#: spec flag words of the MAP_* names
_MAP_WORDS = {
    "MAP_SHARED": "shared", "MAP_SHARED_VALIDATE": "shared", "MAP_PRIVATE": "private",
    "MAP_ANONYMOUS": "anonymous", "MAP_ANON": "anonymous", "MAP_FIXED": "fixed",
    "MAP_FIXED_NOREPLACE": "fixed_noreplace", "MAP_POPULATE": "populate",
    "MAP_LOCKED": "locked", "MAP_GROWSDOWN": "growsdown", "MAP_NORESERVE": "noreserve",
    "MAP_FILE": None,
}
_WORD_ORDER = ("private", "shared", "anonymous", "fixed", "fixed_noreplace", "populate",
               "locked", "growsdown", "noreserve")
#: x86_64 values, to read raw numbers (strace -X raw, or bits strace cannot name)
_MAP_BITS = (
    (0x01, "MAP_SHARED"), (0x02, "MAP_PRIVATE"), (0x10, "MAP_FIXED"),
    (0x20, "MAP_ANONYMOUS"), (0x40, "MAP_32BIT"), (0x100, "MAP_GROWSDOWN"),
    (0x800, "MAP_DENYWRITE"), (0x1000, "MAP_EXECUTABLE"), (0x2000, "MAP_LOCKED"),
    (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"), (0x10000, "MAP_NONBLOCK"),
    (0x20000, "MAP_STACK"), (0x40000, "MAP_HUGETLB"), (0x80000, "MAP_SYNC"),
    (0x100000, "MAP_FIXED_NOREPLACE"), (0x4000000, "MAP_UNINITIALIZED"),
)
_PROT_BITS = ((0x1, "PROT_READ"), (0x2, "PROT_WRITE"), (0x4, "PROT_EXEC"),
              (0x8, "PROT_SEM"), (0x01000000, "PROT_GROWSDOWN"),
              (0x02000000, "PROT_GROWSUP"))
_MREMAP_BITS = ((1, "MREMAP_MAYMOVE"), (2, "MREMAP_FIXED"), (4, "MREMAP_DONTUNMAP"))
_MADV = {"MADV_NORMAL": "normal", "MADV_RANDOM": "random",
         "MADV_SEQUENTIAL": "sequential", "MADV_WILLNEED": "willneed",
         "MADV_DONTNEED": "dontneed"}
_MADV_NUM = {"0": "MADV_NORMAL", "1": "MADV_RANDOM", "2": "MADV_SEQUENTIAL",
             "3": "MADV_WILLNEED", "4": "MADV_DONTNEED"}
_CLONE_BITS = {"CLONE_VM": 0x100, "CLONE_FILES": 0x400, "CLONE_VFORK": 0x4000,
               "CLONE_THREAD": 0x10000}
CLONE_VM, CLONE_FILES, CLONE_VFORK, CLONE_THREAD = 0x100, 0x400, 0x4000, 0x10000

#: memory calls the model has (the rest of strace's %memory class is below)
_MEMORY = frozenset(("mmap", "mmap2", "munmap", "mprotect", "pkey_mprotect", "mremap", "brk",
                     "madvise", "mlock", "mlock2", "munlock"))
#: calls that change mappings or memory in ways the trace format cannot say
_NOT_MODELLED = frozenset(("mlockall", "munlockall", "remap_file_pages", "process_madvise",
                           "shmat", "shmdt", "mseal", "map_shadow_stack", "old_mmap",
                           "process_mrelease", "userfaultfd"))
#: memory calls with no effect on mappings or pages of the model
_HARMLESS = frozenset(("msync", "mincore", "mbind", "set_mempolicy", "get_mempolicy",
                       "set_mempolicy_home_node", "migrate_pages", "move_pages",
                       "pkey_alloc", "pkey_free", "membarrier", "cachestat"))
_CLONES = frozenset(("clone", "clone3", "fork", "vfork"))
_EXECS = frozenset(("execve", "execveat"))
_EXITS = frozenset(("exit", "exit_group"))
_OPENS = frozenset(("open", "openat", "openat2", "creat", "memfd_create"))
_STATS = frozenset(("stat", "fstat", "newfstatat", "fstatat64", "stat64", "fstat64",
                    "statx", "lstat", "lstat64"))
_FDCALLS = _OPENS | _STATS | {"close", "close_range", "dup", "dup2", "dup3", "fcntl",
                              "fcntl64", "ftruncate", "ftruncate64"}
#: calls whose lines matter to the importer (others are counted as ignored)
RELEVANT = _MEMORY | _NOT_MODELLED | _CLONES | _EXECS | _EXITS | _FDCALLS


# -- reading lines ------------------------------------------------------------------

_PREFIX = re.compile(r"""\s*
    (?: \[pid\s+(?P<bpid>\d+)\] \s+ | (?P<pid>\d+) \s+ (?=\S) )?
    (?: (?P<ts>\d\d:\d\d:\d\d(?:\.\d+)? | \d+\.\d+) \s+ )?
    (?: \[\s*[0-9a-fA-Fx]+\] \s+ )?""", re.X)
_CALL = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*|\?\?\?)\((?P<rest>.*)\Z", re.S)
_RESUMED = re.compile(r"<\.\.\. (?P<name>[A-Za-z_][A-Za-z0-9_]*|\?\?\?) resumed>(?P<rest>.*)\Z",
                      re.S)
_EXITED = re.compile(r"\+\+\+ exited with (-?\d+) \+\+\+")
_KILLED = re.compile(r"\+\+\+ killed by (\S+)(?: \(core dumped\))? \+\+\+")
_DURATION = re.compile(r"\s+<\d+(?:\.\d+)?>\s*\Z")
_UNFINISHED = re.compile(r"\s*<(?:unfinished|detached) \.\.\.>")
_RESULT = re.compile(r"\s*=\s*(?P<val>0x[0-9a-fA-F]+|-?\d+|\?)(?P<deco><[^>]*>)?"
                     r"(?:\s+(?P<err>E[A-Z0-9_]+))?")


@dataclass
class Line:
    """One line of a log, classified."""
    lineno: int
    pid: int | None
    ts: float | None        # absolute seconds, or None
    kind: str               # call unfinished resumed signal exited killed strace other bad blank
    name: str = ""
    text: str = ""          # for calls: everything after "name("
    status: str = ""        # for exited/killed: the code or signal


def _timestamp(s: str | None) -> tuple[float | None, bool]:
    """(seconds, absolute?) of a timestamp field."""
    if s is None:
        return None, False
    if ":" in s:
        h, m, rest = s.split(":")
        return int(h) * 3600 + int(m) * 60 + float(rest), True
    v = float(s)
    return v, v >= 1e8     # -ttt (epoch seconds) vs -r (relative)


def parse_line(raw: str, lineno: int = 0) -> Line:
    """Classify one line of strace output."""
    m = _PREFIX.match(raw)
    assert m is not None                # every part of _PREFIX is optional
    pid_s = m.group("pid") or m.group("bpid")
    pid = int(pid_s) if pid_s else None
    ts, absolute = _timestamp(m.group("ts"))
    body = raw[m.end():].rstrip("\n").rstrip()
    ts = ts if absolute else None
    if not body:
        return Line(lineno, pid, ts, "blank")
    if body.startswith("---") and body.endswith("---"):
        return Line(lineno, pid, ts, "signal", text=body)
    if body.startswith("+++"):
        x = _EXITED.match(body)
        if x:
            return Line(lineno, pid, ts, "exited", status=x.group(1))
        x = _KILLED.match(body)
        if x:
            return Line(lineno, pid, ts, "killed", status=x.group(1))
        return Line(lineno, pid, ts, "other", text=body)     # "superseded by execve"
    if body.startswith("strace: ") or body.startswith("[ Process"):
        return Line(lineno, pid, ts, "strace", text=body)
    if body.startswith(">"):                                 # -k stack trace
        return Line(lineno, pid, ts, "other", text=body)
    body = _DURATION.sub("", body)
    x = _RESUMED.match(body)
    if x:
        rest = x.group("rest")
        u = _UNFINISHED.search(rest)
        if u and not rest[u.end():].strip().startswith(")"):
            # "<... foo resumed> <unfinished ...>": still unfinished
            return Line(lineno, pid, ts, "unfinished", x.group("name"), rest[:u.start()])
        if u:
            rest = rest[:u.start()] + rest[u.end():]
        return Line(lineno, pid, ts, "resumed", x.group("name"), rest)
    x = _CALL.match(body)
    if x:
        rest = x.group("rest")
        u = _UNFINISHED.search(rest)
        if u and not rest[u.end():].strip():
            return Line(lineno, pid, ts, "unfinished", x.group("name"), rest[:u.start()])
        return Line(lineno, pid, ts, "call", x.group("name"), rest)
    return Line(lineno, pid, ts, "bad", text=body)


def split_call(text: str) -> tuple[list[str], str | None]:
    """Split ``arg, arg, ...) = result`` into the top-level arguments and
    the text after the closing parenthesis (None if there is none).

    Commas inside quotes, ``()``, ``[]``, ``{}``, ``/* comments */`` and
    ``-y`` decorations (``3</path, with comma>``) do not split."""
    args: list[str] = []
    depth = 0
    i = 0
    start = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 1
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                if c == ")":
                    last = text[start:i].strip()
                    if last or args:
                        args.append(last)
                    return args, text[i + 1:]
            else:
                depth -= 1
        elif c == "<" and i > 0 and text[i - 1].isalnum() and text[i + 1:i + 2] not in ("<", ""):
            j = text.find(">", i + 1)
            i = n if j < 0 else j
        elif c == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    last = text[start:].strip()
    if last or args:
        args.append(last)
    return args, None


@dataclass
class Call:
    """A system call (the two halves of an unfinished one joined)."""
    pid: int
    name: str
    args: list[str]
    ret: int | None          # the return value, None for "?" or unparsable
    errno: str | None        # the errno name when ret is -1 (or an ERESTART*)
    deco: str | None         # a -y path decorating the result (open's fd)
    lineno: int              # where it started
    file: str
    ts: float | None
    complete: bool = True    # False: never resumed


@dataclass
class Notice:
    """``+++ exited with N +++`` or ``+++ killed by SIG +++``."""
    pid: int
    kind: str                # "exited" or "killed"
    status: str
    lineno: int
    file: str
    ts: float | None


def _parse_result(tail: str | None) -> tuple[int | None, str | None, str | None]:
    if tail is None:
        return None, None, None
    m = _RESULT.match(tail)
    if not m:
        return None, None, None
    v = m.group("val")
    deco = m.group("deco")
    deco = deco[1:-1] if deco else None
    if v == "?":
        return None, m.group("err"), deco
    return (int(v, 16) if v.startswith("0x") else int(v)), m.group("err"), deco


@dataclass
class Stream:
    """The records of one log file in the order they take effect."""
    file: str
    pid: int | None               # the pid of a -ff file (its suffix)
    records: list                 # Call | Notice
    lines: int = 0
    timestamps: bool = True       # every record has an absolute timestamp
    unprefixed: bool = False      # some lines carried no pid


def _open_text(path: str) -> Iterator[str]:
    if path.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8", errors="surrogateescape") as fh:
            yield from fh
    else:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            yield from fh


_SUFFIX = re.compile(r"\.(\d+)\Z")


def read_stream(path: str, unusable: Counter, ignored: Counter,
                lines: Iterable[str] | None = None, pid: int | None = None,
                index: int = 0) -> Stream:
    """Read one log file into a Stream of Calls and Notices. Lines without
    a pid belong to the file's pid (the ``.PID`` suffix of ``-ff`` files),
    or else to a stand-in pid ``-(index + 1)``."""
    if pid is None:
        m = _SUFFIX.search(path)
        pid = int(m.group(1)) if m else None
    default = -(index + 1) if pid is None else pid
    pending: dict[int, tuple[Line, int]] = {}
    keyed: list[tuple[int, int, Any]] = []     # (position, seq, record)
    seq = 0
    stream = Stream(path, pid, [])
    src = _open_text(path) if lines is None else lines
    n = 0

    def add(pos: int, rec: Any) -> None:
        nonlocal seq
        keyed.append((pos, seq, rec))
        seq += 1

    def finish(start: Line, spos: int, p: int, text: str, endpos: int, complete: bool) -> None:
        args, tail = split_call(text)
        if tail is None and complete:
            if start.name in RELEVANT:
                unusable["malformed line"] += 1
            else:
                ignored["malformed lines of other calls"] += 1
            return
        ret, err, deco = _parse_result(tail)
        rec = Call(p, start.name, args, ret, err, deco, start.lineno, path, start.ts, complete)
        # calls that create tasks take effect where they start (the children's
        # lines may come before the parent's "resumed"); the others where they end
        add(spos if start.name in _CLONES else endpos, rec)

    def abandon(p: int) -> None:
        """A pending unfinished call that will never be resumed."""
        start, spos = pending.pop(p)
        if start.name in _EXITS:
            finish(start, spos, p, start.text + ") = ?", spos, True)
        elif start.name in _MEMORY or start.name in _CLONES:
            unusable["unfinished, never resumed"] += 1
        else:
            ignored["unfinished, never resumed"] += 1

    for raw in src:
        n += 1
        ln = parse_line(raw, n)
        if ln.pid is None:
            if ln.kind != "blank":
                stream.unprefixed = True
            p = default
        else:
            p = ln.pid
        if ln.kind in ("call", "unfinished", "resumed", "exited", "killed") and ln.ts is None:
            stream.timestamps = False
        k = ln.kind
        if k == "call":
            if p in pending:
                abandon(p)
            finish(ln, n, p, ln.text, n, True)
        elif k == "unfinished":
            if p in pending:
                abandon(p)
            pending[p] = (ln, n)
        elif k == "resumed":
            start = pending.pop(p, None)
            if start is None or start[0].name != ln.name:
                if start is not None:
                    pending[p] = start
                if ln.name in RELEVANT:
                    unusable["resumed without its start"] += 1
                else:
                    ignored["resumed without its start"] += 1
                continue
            sl, spos = start
            finish(sl, spos, p, sl.text + ln.text, n, True)
        elif k in ("exited", "killed"):
            if p in pending:
                abandon(p)
            add(n, Notice(p, k, ln.status, n, path, ln.ts))
        elif k == "bad":
            unusable["malformed line"] += 1
        elif k == "blank":
            pass
        else:
            ignored[{"signal": "signal lines", "strace": "strace messages"}.get(k, "other lines")] += 1
    for p in list(pending):
        abandon(p)
    keyed.sort(key=lambda t: (t[0], t[1]))
    stream.records = [r for _, _, r in keyed]
    stream.lines = n
    return stream


def expand_paths(paths: Iterable[str]) -> list[str]:
    """Each path as given if it is a file, else the ``PATH.PID`` files that
    ``strace -ff -o PATH`` made (in pid order). Raises FileNotFoundError."""
    out: list[str] = []
    for p in paths:
        if os.path.isfile(p):
            out.append(p)
            continue
        found: list[tuple[int, str]] = []       # (pid, file)
        for f in glob.glob(glob.escape(p) + ".*"):
            sm = _SUFFIX.search(f)
            if sm and os.path.isfile(f):
                found.append((int(sm.group(1)), f))
        if not found:
            raise FileNotFoundError(f"{p}: no such file (nor {p}.PID files of strace -ff)")
        out.extend(f for _, f in sorted(found, key=lambda pf: pf[0]))
    return out


def merge_streams(streams: list[Stream]) -> tuple[list[Any], str]:
    """All records in one order, and a word on how it was made."""
    if len(streams) == 1:
        return list(streams[0].records), "one log"
    by_pid: dict[int, Stream] = {s.pid: s for s in streams if s.pid is not None}
    children: set[int] = set()
    for s in streams:
        for r in s.records:
            if r.__class__ is Call and r.name in _CLONES and r.ret and r.ret > 0:
                children.add(r.ret)
    timed = all(s.timestamps for s in streams)
    order = {id(s): k for k, s in enumerate(streams)}
    head = [0] * len(streams)
    started: set[int] = set()
    # timed: a heap of (time of the next record, file order); else a stack
    active: list = []

    def start(s: Stream) -> None:
        started.add(id(s))
        k = order[id(s)]
        if not s.records:
            return
        if timed:
            heapq.heappush(active, (s.records[0].ts or 0.0, k))
        else:
            active.append(k)

    for s in streams:
        if s.pid is None or s.pid not in children:
            start(s)
    out: list[Any] = []
    while True:
        if not active:
            # files whose creating call was never seen: as roots
            rest = [s for s in streams if id(s) not in started]
            if not rest:
                break
            start(rest[0])
            continue
        k = active[0][1] if timed else active[-1]
        s = streams[k]
        i = head[k]
        r = s.records[i]
        head[k] = i + 1
        if timed:
            if i + 1 < len(s.records):
                heapq.heapreplace(active, (s.records[i + 1].ts or 0.0, k))
            else:
                heapq.heappop(active)
        elif i + 1 >= len(s.records):
            active.pop()
        out.append(r)
        if r.__class__ is Call and r.name in _CLONES and r.ret and r.ret > 0:
            c = by_pid.get(r.ret)
            if c is not None and id(c) not in started:
                start(c)
    how = ("per-pid files merged by timestamp" if timed
           else "per-pid files, each child's after the call that created it")
    return out, how


# -- argument decoding ------------------------------------------------------------------

class _Unusable(Exception):
    """The call cannot become an event: the message is the reason."""


def _num(s: str) -> int:
    s = s.strip()
    if s == "NULL":
        return 0
    c = s.find(" /*")
    if c > 0:
        s = s[:c]
    try:
        v = int(s, 16) if s[:2] in ("0x", "0X") else int(s)
    except ValueError:
        raise _Unusable("bad arguments") from None
    if not 0 <= v < 1 << 64:
        raise _Unusable("bad arguments")
    return v


def _words(s: str) -> list[str]:
    """The words of a flag expression; ``0x22 /* A|B */`` (-X verbose)
    gives the comment's words."""
    s = s.strip()
    c = s.find("/*")
    if c >= 0:
        inner = s[c + 2:s.rfind("*/")].strip()
        s = inner if inner else s[:c]
    return [w.strip() for w in s.split("|") if w.strip()]


def _bits(words: list[str], table: tuple) -> list[str]:
    """Names for numeric words; names pass through."""
    out: list[str] = []
    for w in words:
        if w[:1].isdigit():
            if "<<" in w:
                out.append(w)
                continue
            try:
                v = int(w, 0)
            except ValueError:
                out.append(w)
                continue
            for bit, name in table:
                if v & bit:
                    out.append(name)
                    v &= ~bit
            if v:
                out.append(hex(v))
        else:
            out.append(w)
    return out


def _prot(s: str) -> tuple[str, set[str]]:
    """The "rwx" string, and the names of bits it cannot carry."""
    words = _bits(_words(s), _PROT_BITS)
    r = w = x = "-"
    other: set[str] = set()
    for wd in words:
        if wd == "PROT_READ":
            r = "r"
        elif wd == "PROT_WRITE":
            w = "w"
        elif wd == "PROT_EXEC":
            x = "x"
        elif wd in ("PROT_NONE", "0"):
            pass
        else:
            other.add(wd)
    return r + w + x, other


def _map_flags(s: str, dropped: Counter) -> list[str]:
    words = _bits(_words(s), _MAP_BITS)
    got: set[str] = set()
    for wd in words:
        if wd in _MAP_WORDS:
            word = _MAP_WORDS[wd]
            if word:
                got.add(word)
        elif wd == "0":
            pass
        else:
            dropped["MAP_HUGE_*" if wd.endswith("<<MAP_HUGE_SHIFT") else wd] += 1
    return [w for w in _WORD_ORDER if w in got]


def _mremap_flags(s: str) -> list[str]:
    out = []
    for wd in _bits(_words(s), _MREMAP_BITS):
        if wd == "MREMAP_MAYMOVE":
            out.append("maymove")
        elif wd == "MREMAP_FIXED":
            out.append("fixed")
        elif wd == "0":
            pass
        else:
            raise _Unusable(f"mremap {wd}")
    return out


def _clone_flags(name: str, args: list[str]) -> int:
    if name == "fork":
        return 0
    if name == "vfork":
        return CLONE_VM | CLONE_VFORK
    text = ", ".join(args)
    m = re.search(r"flags=([^,}]*)", text)
    if not m:
        raise _Unusable(f"{name} without flags")
    v = 0
    for wd in _words(m.group(1)):
        if wd in _CLONE_BITS:
            v |= _CLONE_BITS[wd]
        elif wd[:1].isdigit():
            try:
                v |= int(wd, 0)
            except ValueError:
                pass
    return v


def _cstring(s: str) -> str | None:
    s = s.strip()
    if len(s) < 2 or s[0] != '"':
        return None
    end = s.rfind('"')
    body = s[1:end]
    try:
        return codecs.escape_decode(body.encode("utf-8", "surrogateescape"))[0].decode(
            "utf-8", "surrogateescape")
    except Exception:
        return body


_FD = re.compile(r"\s*(-?\d+|AT_FDCWD)(?:<(?P<path>.*)>)?\s*\Z", re.S)


def _fd(s: str) -> tuple[int | None, str | None]:
    """(fd, -y path) of an fd argument; fd None for AT_FDCWD."""
    m = _FD.match(s)
    if not m:
        raise _Unusable("bad arguments")
    v = m.group(1)
    path = m.group("path")
    if path is not None and path.endswith(" (deleted)"):
        path = path[:-len(" (deleted)")]
    return (None if v == "AT_FDCWD" else int(v)), path


def _file_path(deco: str | None) -> str | None:
    """A -y decoration naming a file (not a pipe, socket or anon inode)."""
    if not deco:
        return None
    if deco.startswith("/"):
        return deco
    return None


# -- the model of the traced system the importer keeps -------------------------------

class _Seg(NamedTuple):
    start: int
    end: int
    prot: str
    shared: bool
    path: str | None
    off: int        # file offset of start


def _cut(s: _Seg, a: int, b: int, prot: str | None = None) -> _Seg:
    """The part ``[a, b)`` of ``s`` (optionally with another prot)."""
    return _Seg(a, b, s.prot if prot is None else prot, s.shared, s.path,
                s.off + (a - s.start) if s.path else 0)


class _Maps:
    """The mappings the log showed being made, per mm: sorted,
    non-overlapping segments (the mappings ``execve`` makes are unknown)."""

    def __init__(self, segs: list[_Seg] | None = None) -> None:
        self.segs: list[_Seg] = segs or []
        self.starts: list[int] = [x.start for x in self.segs]

    def copy(self) -> _Maps:
        return _Maps(list(self.segs))

    def _span(self, start: int, end: int) -> tuple[int, int]:
        """Indices ``[i, j)`` of the segments overlapping ``[start, end)``."""
        i = bisect_right(self.starts, start) - 1
        if i < 0 or self.segs[i].end <= start:
            i += 1
        return i, max(i, bisect_left(self.starts, end))

    def _replace(self, i: int, j: int, new: list[_Seg]) -> None:
        self.segs[i:j] = new
        self.starts[i:j] = [x.start for x in new]

    def remove(self, start: int, end: int) -> None:
        i, j = self._span(start, end)
        if i >= j:
            return
        first, last = self.segs[i], self.segs[j - 1]
        keep = []
        if first.start < start:
            keep.append(_cut(first, first.start, start))
        if last.end > end:
            keep.append(_cut(last, end, last.end))
        self._replace(i, j, keep)

    def add(self, seg: _Seg) -> None:
        self.remove(seg.start, seg.end)
        k = bisect_left(self.starts, seg.start)
        self._replace(k, k, [seg])

    def protect(self, start: int, end: int, prot: str) -> None:
        i, j = self._span(start, end)
        if i >= j:
            return
        pieces = []
        for x in self.segs[i:j]:
            if x.start < start:
                pieces.append(_cut(x, x.start, start))
            pieces.append(_cut(x, max(x.start, start), min(x.end, end), prot))
            if x.end > end:
                pieces.append(_cut(x, end, x.end))
        self._replace(i, j, pieces)

    def gaps(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of ``[start, end)`` that no segment covers."""
        i, j = self._span(start, end)
        out = []
        pos = start
        for x in self.segs[i:j]:
            if x.start > pos:
                out.append((pos, x.start))
            pos = max(pos, x.end)
        if pos < end:
            out.append((pos, end))
        return out

    def overlaps(self, start: int, end: int) -> bool:
        i, j = self._span(start, end)
        return i < j

    def at(self, addr: int) -> _Seg | None:
        i = bisect_right(self.starts, addr) - 1
        if i >= 0 and self.segs[i].end > addr:
            return self.segs[i]
        return None


@dataclass(eq=False)
class _Mm:
    pid: int                    # the trace pid
    owner: int                  # tgid of the thread group that owns it
    spawned: bool = False       # the trace has created it
    alive: bool = True
    users: set = field(default_factory=set)
    maps: _Maps = field(default_factory=_Maps)
    brk: int | None = None
    #: the spawn/exec/fork event that made this address space: events
    #: synthesised for what execve built go right after it
    origin: dict | None = None
    #: every range the log mapped since the origin (never shrinks)
    seen: _Maps = field(default_factory=_Maps)
    #: the first brk since the origin has been seen (or was inherited)
    brk_placed: bool = False


@dataclass(eq=False)
class _Fds:
    table: dict = field(default_factory=dict)   # fd -> (path | None, cloexec)

    def copy(self) -> _Fds:
        return _Fds(dict(self.table))


@dataclass(eq=False)
class _Task:
    tid: int
    tgid: int
    mm: _Mm
    fds: _Fds
    alive: bool = True


# -- the importer ------------------------------------------------------------------------

@dataclass
class ImportReport:
    """What an import did."""
    name: str                            # the log(s), as named in the header
    lines: int = 0
    events: int = 0
    unusable: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    ignored: Counter = field(default_factory=Counter)
    ops: Counter = field(default_factory=Counter)
    #: (strace pid, trace pid, role) for each task
    pids: list = field(default_factory=list)
    touches_capped: int = 0
    #: events made for what the log cannot show (by reason), not in ``ops``
    synthesized: Counter = field(default_factory=Counter)
    order: str = "one log"
    touch: str = "write-new-private"
    addresses: str = "hint"

    @property
    def unusable_total(self) -> int:
        return sum(self.unusable.values())

    def source(self) -> str:
        """The header's ``source`` text."""
        why = ", ".join(f"{k}: {v}" for k, v in sorted(self.unusable.items(),
                                                       key=lambda kv: (-kv[1], kv[0])))
        text = (f"strace import of {self.name}: {self.lines} lines, {self.events} events, "
                f"{self.unusable_total} unusable ({why or 'none'})")
        extra = [f"touch policy {self.touch}", f"addresses {self.addresses}"]
        if self.synthesized:
            extra.append("synthesized: " + ", ".join(
                f"{k} {v}" for k, v in sorted(self.synthesized.items())))
        if self.dropped:
            extra.append("dropped flags: " + ", ".join(
                f"{k} {v}" for k, v in sorted(self.dropped.items())))
        if self.order != "one log":
            extra.append(f"order: {self.order}")
        return text + "; " + "; ".join(extra)

    def summary(self) -> str:
        """Several lines for humans (the CLI prints it to stderr)."""
        out = [self.source().split("; ")[0]]
        for k, v in sorted(self.unusable.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  unusable: {k}: {v}")
        if self.dropped:
            out.append("  dropped flags: " + ", ".join(
                f"{k} {v}" for k, v in sorted(self.dropped.items())))
        if self.ops:
            out.append("  events: " + ", ".join(f"{k} {v}" for k, v in sorted(self.ops.items())))
        if self.ignored:
            out.append("  ignored: " + ", ".join(f"{k} {v}" for k, v in sorted(self.ignored.items())))
        if self.touches_capped:
            out.append(f"  touches capped at the touch limit: {self.touches_capped}")
        for k, v in sorted(self.synthesized.items()):
            out.append(f"  synthesized: {k}: {v}")
        out.append(f"  touch policy {self.touch}; addresses {self.addresses}; order: {self.order}")
        return "\n".join(out)


@dataclass
class ImportResult:
    header: dict
    events: list[dict]
    report: ImportReport
    comments: list[str] = field(default_factory=list)

    def lines(self) -> Iterator[bytes]:
        yield orjson.dumps(self.header)
        for c in self.comments:
            yield ("# " + c).encode()
        for ev in self.events:
            yield orjson.dumps(ev)

    def reproduction(self, profile: str = "modern", keep: int = 20) -> Any:
        """Replay the trace on the model and count the recorded results
        (the events with ``expect``) it reproduces (``rmaplab.trace.reproduce``)."""
        from rmaplab.trace.reproduce import reproduction
        recorded = [i for i, e in enumerate(self.events) if "expect" in e]
        return reproduction(self.lines(), recorded, profile, keep)

    def write(self, path: str) -> None:
        write_lines(path, self.lines())


class _Importer:
    def __init__(self, touch: str, addresses: str, pid_map: bool, touch_limit: int,
                 report: ImportReport, created: set[int], synthetic_root: bool) -> None:
        if touch not in TOUCH_POLICIES:
            raise ValueError(f"unknown touch policy {touch!r}; known: {', '.join(TOUCH_POLICIES)}")
        if addresses not in ADDRESS_MODES:
            raise ValueError(f"unknown address mode {addresses!r}; known: {', '.join(ADDRESS_MODES)}")
        self.touch = touch
        self.hint = addresses == "hint"
        self.renumber = pid_map
        self.limit = touch_limit
        self.r = report
        self.created = created              # tids some clone returned
        self.synthetic_root = synthetic_root
        self.events: list[dict] = []
        self.tasks: dict[int, _Task] = {}
        self.live_pids: set[int] = set()
        self.next_pid = 1
        self.spare_pid = 1 << 22
        #: live tasks of each thread group
        self.groups: dict[int, set[_Task]] = {}
        self.files: dict[str, dict] = {}     # path -> its file event
        self.stat_size: dict[str, int] = {}
        self.mapped_size: dict[str, int] = {}
        self.file_touches: list[tuple[dict, str, int]] = []
        self.tokens: Counter = Counter()
        #: id(origin event) -> (brk placement events, image mappings) to put after it
        self.inserts: dict[int, tuple[list[dict], list[dict]]] = {}

    # -- pids and tasks ------------------------------------------------------------

    def _trace_pid(self, real: int) -> int:
        """The trace pid of a new process: its real pid, or with --pid-map
        the next of 1, 2, 3, ...; a stand-in for an unknown pid, or a real
        pid still in use in the trace (a missed exit), is taken above
        Linux's largest pid_max (2**22), where it meets no real pid."""
        if self.renumber:
            p = self.next_pid
            self.next_pid += 1
        elif real < 0 or real in self.live_pids:
            while self.spare_pid in self.live_pids:
                self.spare_pid += 1
            p = self.spare_pid
            self.spare_pid += 1
        else:
            p = real
        return p

    def _root(self, tid: int) -> _Task:
        mm = _Mm(pid=self._trace_pid(tid), owner=tid)
        mm.users.add(tid)
        t = _Task(tid, tid, mm, _Fds())
        self._add_task(t)
        self.r.pids.append((tid, mm.pid, "root process"))
        return t

    def task(self, tid: int) -> _Task:
        t = self.tasks.get(tid)
        if t is not None:
            return t
        # stderr-style logs: the root's lines carry no pid until it has
        # children; the first unknown pid that no clone created is the root
        if self.synthetic_root and tid >= 0 and tid not in self.created:
            root = self.tasks.get(-1)
            if root is not None and root.alive:
                self.synthetic_root = False
                self.tasks[tid] = root
                return root
        return self._root(tid)

    def _add_task(self, t: _Task) -> None:
        old = self.tasks.get(t.tid)
        if old is not None and old.alive:      # a tid reused without its end seen
            self._task_dies(old)
        self.tasks[t.tid] = t
        self.groups.setdefault(t.tgid, set()).add(t)

    def _need(self, mm: _Mm) -> None:
        """The trace must have created the process before it acts."""
        if not mm.spawned:
            mm.origin = self.emit({"op": "spawn", "pid": mm.pid})
            mm.spawned = True
            self.live_pids.add(mm.pid)

    def _task_dies(self, t: _Task) -> None:
        if not t.alive:
            return
        t.alive = False
        g = self.groups.get(t.tgid)
        if g is not None:
            g.discard(t)
        mm = t.mm
        mm.users.discard(t.tid)
        if not mm.users and mm.alive:
            mm.alive = False
            if mm.spawned:
                self.emit({"op": "exit", "pid": mm.pid})
                self.live_pids.discard(mm.pid)

    # -- output --------------------------------------------------------------------

    def emit(self, ev: dict) -> dict:
        self.events.append(ev)
        self.r.ops[ev["op"]] += 1
        return ev

    def _token(self, pid: int, addr: int) -> str:
        tok = f"p{pid}:{addr:x}"
        n = self.tokens[tok]
        self.tokens[tok] += 1
        return tok if n == 0 else f"{tok}#{n}"

    def _touch_new(self, mm: _Mm, start: int, length: int, prot: str, shared: bool,
                   path: str | None, off: int) -> None:
        """Touches for pages ``[start, start+length)`` that a call just created."""
        if self.touch == "none" or length <= 0:
            return
        if self.touch == "write-new-private" and not shared and "w" in prot:
            access = "w"
        elif "r" in prot and (self.touch == "read-all" or path is not None):
            access = "r"
        else:
            return
        length = _page_up(length)
        if length > self.limit:
            length = self.limit
            self.r.touches_capped += 1
        ev: dict = {"op": "touch", "pid": mm.pid, "addr": start, "len": length, "access": access}
        if access == "w":
            ev["token"] = self._token(mm.pid, start)
        self.emit(ev)
        if path is not None:
            self.file_touches.append((ev, path, off))

    def _declare(self, path: str) -> None:
        if path not in self.files:
            self.files[path] = self.emit({"op": "file", "name": path, "size": 0})

    # -- what execve built -------------------------------------------------------

    def _mapped(self, mm: _Mm, seg: _Seg) -> None:
        mm.maps.add(seg)
        mm.seen.add(seg)

    def _synth(self, mm: _Mm, ev: dict, why: str, first: bool = False, now: bool = False) -> None:
        """An event for what execve made and the log cannot show: placed
        right after the event that made the address space (``now``: here)."""
        self.r.synthesized[why] += 1
        if now or mm.origin is None:
            self.events.append(ev)
            return
        lists = self.inserts.setdefault(id(mm.origin), ([], []))
        lists[0 if first else 1].append(ev)

    def _place_brk(self, mm: _Mm, addr: int, c: Call, ok: bool) -> None:
        """At the first brk since the address space was made: when it is
        brk(NULL), start the model's break where the recorded one was (the
        model's starts lower, at MODEL_START_BRK: grow it to the break and
        unmap what that mapped below)."""
        if mm.brk_placed:
            return
        mm.brk_placed = True
        start = c.ret
        if addr != 0 or not ok or start is None or start <= MODEL_START_BRK:
            return
        if mm.seen.overlaps(MODEL_START_BRK, _page_up(start) + PAGE):
            return
        why = "heap placed at the recorded break"
        self._synth(mm, {"op": "brk", "pid": mm.pid, "addr": start}, why, first=True)
        self._synth(mm, {"op": "munmap", "pid": mm.pid, "addr": MODEL_START_BRK,
                         "len": start - MODEL_START_BRK}, why, first=True)

    def _prove(self, mm: _Mm, start: int, end: int) -> None:
        """A call succeeded on ``[start, end)``, which must then be mapped:
        the parts the log never showed mapped were mapped by execve (the
        program's and the loader's images). Map them (anonymous, rw-)."""
        for a, b in mm.maps.gaps(start, end):
            now = mm.seen.overlaps(a, b)      # unmapped in the log since: map it here
            self._synth(mm, {"op": "mmap", "pid": mm.pid, "addr": a, "len": b - a,
                             "prot": "rw-", "flags": ["private", "anonymous", "fixed"],
                             "file": None}, "image mappings proven by later calls", now=now)
            self._mapped(mm, _Seg(a, b, "rw-", False, None, 0))

    def finish(self) -> list[dict]:
        """Place the synthesised events, settle file sizes, clip file
        touches to them, drop emptied touches."""
        if self.inserts:
            placed = []
            for ev in self.events:
                placed.append(ev)
                extra = self.inserts.get(id(ev))
                if extra:
                    placed.extend(extra[0])
                    placed.extend(extra[1])
            self.events = placed
        for path, ev in self.files.items():
            ev["size"] = self.stat_size.get(path, self.mapped_size.get(path, 0))
        gone = set()
        for ev, path, off in self.file_touches:
            size = self.files[path]["size"]
            room = _page_up(size - off) if size > off else 0
            if room <= 0:
                gone.add(id(ev))
            elif ev["len"] > room:
                ev["len"] = room
        if gone:
            kept = []
            for ev in self.events:
                if id(ev) in gone:
                    self.r.ops["touch"] -= 1
                else:
                    kept.append(ev)
            self.events = kept
        self.r.events = len(self.events)
        return self.events

    # -- records -------------------------------------------------------------------

    def record(self, rec: Any) -> None:
        if rec.__class__ is Notice:
            t = self.tasks.get(rec.pid)
            if t is not None:
                self._task_dies(t)
            return
        name = rec.name
        try:
            if name in _MEMORY:
                self._memory(rec)
            elif name in _CLONES:
                self._clone(rec)
            elif name in _EXECS:
                self._exec(rec)
            elif name in _EXITS:
                self._exit(rec)
            elif name in _FDCALLS:
                self._fdcall(rec)
            elif name in _NOT_MODELLED:
                raise _Unusable(name)
            elif name in _HARMLESS:
                self.r.ignored["memory calls with no effect on mappings"] += 1
            else:
                self.r.ignored["other system calls"] += 1
        except _Unusable as e:
            self.r.unusable[str(e)] += 1
        except (IndexError, ValueError):
            self.r.unusable["bad arguments"] += 1

    # processes

    def _clone(self, c: Call) -> None:
        if c.ret is None:
            if c.errno is None:
                raise _Unusable("unfinished, never resumed" if not c.complete
                                else f"{c.name} without a result")
            return                            # failed: nothing happened
        if c.ret <= 0:
            return
        flags = _clone_flags(c.name, c.args)
        parent = self.task(c.pid)
        child_tid = c.ret
        if not parent.alive:
            raise _Unusable("call after its process exited")
        fds = parent.fds if flags & CLONE_FILES else parent.fds.copy()
        if flags & CLONE_VM:
            mm = parent.mm
            tgid = parent.tgid if flags & CLONE_THREAD else child_tid
            mm.users.add(child_tid)
            self._add_task(_Task(child_tid, tgid, mm, fds))
            role = ("thread" if flags & CLONE_THREAD else
                    "vfork child" if flags & CLONE_VFORK else "CLONE_VM task")
            self.r.pids.append((child_tid, mm.pid, f"{role} of {c.pid}, on its mm"))
            return
        self._need(parent.mm)
        mm = _Mm(pid=self._trace_pid(child_tid), owner=child_tid, spawned=True,
                 maps=parent.mm.maps.copy(), brk=parent.mm.brk, seen=parent.mm.seen.copy(),
                 brk_placed=True)
        mm.users.add(child_tid)
        self.live_pids.add(mm.pid)
        self._add_task(_Task(child_tid, child_tid, mm, fds))
        self.r.pids.append((child_tid, mm.pid, f"child of {c.pid}"))
        mm.origin = self.emit({"op": "fork", "pid": parent.mm.pid, "child": mm.pid})

    def _exec(self, c: Call) -> None:
        if c.ret != 0:
            return                            # failed execve: nothing changes
        t = self.task(c.pid)
        mm = t.mm
        if not mm.spawned:
            self._need(mm)
        elif t.tgid != mm.owner:
            # a vfork child (or CLONE_VM task) leaves the parent's mm
            mm.users.discard(t.tid)
            new = _Mm(pid=self._trace_pid(t.tgid), owner=t.tgid, spawned=True)
            new.users.add(t.tid)
            self.live_pids.add(new.pid)
            self.emit({"op": "fork", "pid": mm.pid, "child": new.pid})
            new.origin = self.emit({"op": "exec", "pid": new.pid})
            self.r.pids.append((t.tid, new.pid, f"exec'ed off the mm of pid {mm.pid}"))
            t.mm = new
            mm = new
        else:
            mm.origin = self.emit({"op": "exec", "pid": mm.pid})
            for other in list(self.groups.get(t.tgid, ())):
                if other is not t:             # exec ends the other threads
                    other.alive = False
                    self.groups[t.tgid].discard(other)
                    mm.users.discard(other.tid)
            mm.maps = _Maps()
            mm.seen = _Maps()
            mm.brk = None
            mm.brk_placed = False
        t.fds = _Fds({fd: v for fd, v in t.fds.table.items() if not v[1]})
        if t.tid != t.tgid:                   # a non-leader thread exec'ed: it takes the tgid
            mm.users.discard(t.tid)
            t.tid = t.tgid
            mm.users.add(t.tid)
            self.tasks[t.tgid] = t

    def _exit(self, c: Call) -> None:
        t = self.task(c.pid)
        if c.name == "exit_group":
            for other in list(self.groups.get(t.tgid, ())):
                if other is not t:
                    self._task_dies(other)
        self._task_dies(t)

    # fds and files

    def _fdcall(self, c: Call) -> None:
        t = self.task(c.pid)
        name, a = c.name, c.args
        if name in _STATS:
            self._stat(t, c)
            return
        if name in ("ftruncate", "ftruncate64"):
            if c.ret == 0:
                fd, deco = _fd(a[0])
                path = _file_path(deco) or self._fd_path(t, fd)
                if path:
                    self._size(path, _num(a[1]))
            return
        if c.ret is None or c.ret < 0:
            return
        table = t.fds.table
        if name in _OPENS:
            if name == "memfd_create":
                s = _cstring(a[0])
                path = f"/memfd:{s}" if s is not None else None     # as -y and maps show it
                cloexec = "MFD_CLOEXEC" in a[1] if len(a) > 1 else False
            else:
                if name in ("open", "creat"):
                    rel, dirfd, fl = _cstring(a[0]), None, (a[1] if len(a) > 1 else "")
                else:
                    dirfd, _ = _fd(a[0])
                    rel, fl = _cstring(a[1]), (a[2] if len(a) > 2 else "")
                path = self._join(t, dirfd, rel)
                cloexec = "O_CLOEXEC" in fl
            path = _file_path(c.deco) or path
            table[c.ret] = (path, cloexec)
        elif name == "close":
            fd, _ = _fd(a[0])
            table.pop(fd, None)
        elif name == "close_range":
            lo, hi = _num(a[0]), _num(a[1])
            if "CLOSE_RANGE_CLOEXEC" in (a[2] if len(a) > 2 else ""):
                for fd in [fd for fd in table if lo <= fd <= hi]:
                    table[fd] = (table[fd][0], True)
            else:
                for fd in [fd for fd in table if lo <= fd <= hi]:
                    del table[fd]
        elif name in ("dup", "dup2", "dup3", "fcntl", "fcntl64"):
            if name.startswith("fcntl"):
                if len(a) < 2 or not a[1].startswith("F_DUPFD"):
                    return
                cloexec = a[1] == "F_DUPFD_CLOEXEC"
            else:
                cloexec = name == "dup3" and len(a) > 2 and "O_CLOEXEC" in a[2]
            fd, deco = _fd(a[0])
            path = _file_path(deco) or self._fd_path(t, fd)
            table[c.ret] = (_file_path(c.deco) or path, cloexec)

    def _fd_path(self, t: _Task, fd: int | None) -> str | None:
        v = t.fds.table.get(fd) if fd is not None else None
        return v[0] if v else None

    def _join(self, t: _Task, dirfd: int | None, rel: str | None) -> str | None:
        if rel is None:
            return None
        if rel.startswith("/") or dirfd is None:
            return rel
        base = self._fd_path(t, dirfd)
        return f"{base.rstrip('/')}/{rel}" if base else rel

    def _size(self, path: str, size: int) -> None:
        if size > self.stat_size.get(path, -1):
            self.stat_size[path] = size

    def _stat(self, t: _Task, c: Call) -> None:
        if c.ret != 0:
            return
        text = ", ".join(c.args)
        m = re.search(r"\bstx?_size=(\d+)", text)
        if not m or not re.search(r"\bstx?_mode=S_IFREG", text):
            return
        name, a = c.name, c.args
        path: str | None = None
        if name in ("fstat", "fstat64"):
            fd, deco = _fd(a[0])
            path = _file_path(deco) or self._fd_path(t, fd)
        elif name in ("stat", "stat64", "lstat", "lstat64"):
            path = _cstring(a[0])
            if name.startswith("lstat"):
                return                          # the size of a link, maybe
        else:                                   # newfstatat, fstatat64, statx
            dirfd, deco = _fd(a[0])
            rel = _cstring(a[1])
            if rel == "":
                path = _file_path(deco) or self._fd_path(t, dirfd)
            elif rel is not None:
                path = rel if rel.startswith("/") else (
                    f"{deco.rstrip('/')}/{rel}" if deco and deco.startswith("/")
                    else self._join(t, dirfd, rel))
        if path:
            self._size(path, int(m.group(1)))

    # memory

    def _memory(self, c: Call) -> None:
        if c.ret is None and c.errno is None:
            raise _Unusable("unfinished, never resumed" if not c.complete else "no result")
        if c.ret is None or (c.errno or "").startswith("ERESTART"):
            raise _Unusable("interrupted call")
        t = self.task(c.pid)
        if not t.alive:
            raise _Unusable("call after its process exited")
        ok = c.ret >= 0
        if ok:
            expect: Any = c.ret
        elif c.errno is None:
            raise _Unusable("error without an errno name")
        else:
            expect = c.errno
        getattr(self, "_" + {"mmap2": "mmap", "pkey_mprotect": "mprotect",
                              "mlock2": "mlock"}.get(c.name, c.name))(t, c, expect, ok)

    def _mmap(self, t: _Task, c: Call, expect: Any, ok: bool) -> None:
        a = c.args
        if len(a) != 6:
            raise _Unusable("bad arguments")
        addr, length = _num(a[0]), _num(a[1])
        prot, other = _prot(a[2])
        dropped: Counter = Counter(other)
        flags = _map_flags(a[3], dropped)
        fd, deco = _fd(a[4])
        off = _num(a[5])
        path = None
        if "anonymous" not in flags:
            if fd is not None and fd >= 0:
                path = _file_path(deco) or self._fd_path(t, fd)
                if path is None:
                    raise _Unusable("mmap of an fd of unknown origin")
                if path == "/dev/zero":
                    flags = [w for w in _WORD_ORDER if w in set(flags) | {"anonymous"}]
                    path = None
        mm = t.mm
        self._need(mm)
        if path is not None:
            self._declare(path)
            if ok:
                end = off + length
                if end > self.mapped_size.get(path, 0):
                    self.mapped_size[path] = end
        call_addr: int | None = addr or None
        if self.hint and ok and "fixed" not in flags and "fixed_noreplace" not in flags:
            call_addr = c.ret
        self.r.dropped.update(dropped)
        ev: dict = {"op": "mmap", "pid": mm.pid, "addr": call_addr, "len": length,
                    "prot": prot, "flags": flags,
                    "file": {"name": path, "offset": off} if path is not None else None,
                    "expect": expect}
        self.emit(ev)
        if ok:
            start = c.ret
            assert start is not None            # _memory: ok means a result
            shared = "shared" in flags
            self._mapped(mm, _Seg(start, start + _page_up(length), prot, shared, path, off))
            if path is None and shared and self.touch == "write-new-private":
                return
            self._touch_new(mm, start, length, prot, shared, path, off)

    def _munmap(self, t: _Task, c: Call, expect: Any, ok: bool) -> None:
        addr, length = _num(c.args[0]), _num(c.args[1])
        mm = t.mm
        self._need(mm)
        self.emit({"op": "munmap", "pid": mm.pid, "addr": addr, "len": length, "expect": expect})
        if ok:
            mm.maps.remove(addr, addr + _page_up(length))

    def _mprotect(self, t: _Task, c: Call, expect: Any, ok: bool) -> None:
        a = c.args
        if c.name == "pkey_mprotect" and (len(a) < 4 or a[3].strip() != "-1"):
            raise _Unusable("pkey_mprotect with a protection key")
        addr, length = _num(a[0]), _num(a[1])
        prot, other = _prot(a[2])
        for o in other:
            if o in ("PROT_GROWSDOWN", "PROT_GROWSUP"):
                raise _Unusable(f"mprotect {o}")
        for o in other:
            self.r.dropped[o] += 1
        mm = t.mm
        self._need(mm)
        if ok and length:
            self._prove(mm, addr, addr + _page_up(length))
        self.emit({"op": "mprotect", "pid": mm.pid, "addr": addr, "len": length,
                   "prot": prot, "expect": expect})
        if ok:
            mm.maps.protect(addr, addr + _page_up(length), prot)

    def _mremap(self, t: _Task, c: Call, expect: Any, ok: bool) -> None:
        a = c.args
        addr, old_len, new_len = _num(a[0]), _num(a[1]), _num(a[2])
        flags = _mremap_flags(a[3])
        new_addr = _num(a[4]) if "fixed" in flags and len(a) > 4 else None
        mm = t.mm
        self._need(mm)
        if self.hint and ok and c.ret != addr and "maymove" in flags and "fixed" not in flags:
            flags = ["maymove", "fixed"]
            new_addr = c.ret
        ev: dict = {"op": "mremap", "pid": mm.pid, "addr": addr, "old_len": old_len,
                    "new_len": new_len, "flags": flags}
        if new_addr is not None:
            ev["new_addr"] = new_addr
        ev["expect"] = expect
        self.emit(ev)
        if not ok:
            return
        seg = mm.maps.at(addr)
        old_l, new_l = _page_up(old_len), _page_up(new_len)
        res = c.ret
        assert res is not None                  # _memory: ok means a result
        if res != addr:
            if old_len:
                mm.maps.remove(addr, addr + old_l)
        elif new_l < old_l:
            mm.maps.remove(addr + new_l, addr + old_l)
        if seg is None:
            return
        off = seg.off + (addr - seg.start) if seg.path else 0
        self._mapped(mm, _Seg(res, res + new_l, seg.prot, seg.shared, seg.path, off))
        if new_l > old_l:
            grow_off = off + old_l if seg.path else 0
            if seg.path is None and seg.shared and self.touch == "write-new-private":
                return
            self._touch_new(mm, res + old_l, new_l - old_l, seg.prot, seg.shared,
                            seg.path, grow_off)

    def _brk(self, t: _Task, c: Call, expect: Any, ok: bool) -> None:
        addr = _num(c.args[0])
        mm = t.mm
        self._need(mm)
        self._place_brk(mm, addr, c, ok)
        self.emit({"op": "brk", "pid": mm.pid, "addr": addr, "expect": expect})
        if not ok:
            return
        new = c.ret
        old = mm.brk
        mm.brk = new
        if old is None or new is None:
            return
        a, b = _page_up(old), _page_up(new)
        if b > a:
            self._mapped(mm, _Seg(a, b, "rw-", False, None, 0))
            self._touch_new(mm, a, b - a, "rw-", False, None, 0)
        elif b < a:
            mm.maps.remove(b, a)

    def _madvise(self, t: _Task, c: Call, expect: Any, ok: bool) -> None:
        a = c.args
        addr, length = _num(a[0]), _num(a[1])
        words = _words(a[2])
        adv = words[0] if words else "?"
        adv = _MADV_NUM.get(adv, adv)
        if adv not in _MADV:
            raise _Unusable(f"madvise {adv}")
        mm = t.mm
        self._need(mm)
        if ok and length:
            self._prove(mm, addr, addr + _page_up(length))
        self.emit({"op": "madvise", "pid": mm.pid, "addr": addr, "len": length,
                   "advice": _MADV[adv], "expect": expect})

    def _mlock(self, t: _Task, c: Call, expect: Any, ok: bool) -> None:
        a = c.args
        if c.name == "mlock2" and len(a) > 2 and a[2].strip() != "0":
            raise _Unusable(f"mlock2 {a[2].strip()}")
        self._range(t, "mlock", a, expect, ok)

    def _munlock(self, t: _Task, c: Call, expect: Any, ok: bool) -> None:
        self._range(t, "munlock", c.args, expect, ok)

    def _range(self, t: _Task, op: str, a: list[str], expect: Any, ok: bool) -> None:
        addr, length = _num(a[0]), _num(a[1])
        mm = t.mm
        self._need(mm)
        if ok and length:
            self._prove(mm, addr & ~_MASK, _page_up(addr + length))
        self.emit({"op": op, "pid": mm.pid, "addr": addr, "len": length, "expect": expect})


def import_strace(paths: str | Iterable[str], touch: str = "write-new-private",
                  pid_map: bool = False, addresses: str = "hint",
                  touch_limit: int = DEFAULT_TOUCH_LIMIT, name: str | None = None,
                  texts: dict[str, Iterable[str]] | None = None) -> ImportResult:
    """Import strace log(s) into a trace (see the module docstring).

    ``paths``: a log, several logs, or a ``strace -ff`` prefix. ``texts``
    maps names to lines for logs held in memory (then ``paths`` lists those
    names). ``name``: how the header names the source (default: the paths
    as given). Raises FileNotFoundError for a missing log."""
    if isinstance(paths, str):
        paths = [paths]
    paths = list(paths)
    files = list(paths) if texts is not None else expand_paths(paths)
    report = ImportReport(name or _describe(paths, files), touch=touch, addresses=addresses)
    streams = []
    for i, f in enumerate(files):
        s = read_stream(f, report.unusable, report.ignored,
                        lines=texts[f] if texts is not None else None, index=i)
        report.lines += s.lines
        streams.append(s)
    records, report.order = merge_streams(streams)
    created = {r.ret for r in records if r.__class__ is Call and r.name in _CLONES
               and r.ret and r.ret > 0}
    # an unprefixed root can be recognised only in a single such log
    synthetic = [s.unprefixed and s.pid is None for s in streams] == [True]
    imp = _Importer(touch, addresses, pid_map, touch_limit, report, created, synthetic)
    for rec in records:
        imp.record(rec)
    events = imp.finish()
    header = {"format": "rmaplab-trace", "version": 1, "page_size": PAGE,
              "source": report.source()}
    comments = [f"strace pid {real if real >= 0 else '(unprefixed)'} -> trace pid {tp}: {role}"
                for real, tp, role in report.pids]
    return ImportResult(header, events, report, comments)


def _describe(given: list[str], files: list[str]) -> str:
    if len(files) == 1:
        return os.path.basename(files[0])
    if len(given) == 1 and given[0] not in files:
        return f"{os.path.basename(given[0])}.* ({len(files)} files)"
    return ", ".join(os.path.basename(f) for f in files)
