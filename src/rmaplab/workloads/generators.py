"""Built-in workload generators: the classic workloads of the rmap debate as
trace-v1 event lists (``spec/trace-v1.md``).

Each generator is a function of keyword parameters and a ``seed`` that
returns a list of event dicts, the same list for the same arguments. The
registry ``WORKLOADS`` names them with a one-line description, their default
parameters and a line of documentation per parameter; ``rmaplab generate``
is its command line.

Placement: every mapping is made with ``MAP_FIXED`` at an address the
generator chose (``mremap`` moves use ``MREMAP_FIXED``), and each generator
keeps its own exact record of what each process has mapped, so that every
``touch`` hits mapped memory with the access its protection allows. The
generators therefore put ``expect`` on the results they are certain of: the
address of a fixed ``mmap``/``mremap``, ``0`` from ``munmap``/``mprotect``,
the new break from ``brk``, and ``"ok"`` from each ``touch``. Nothing else
(``reclaim`` frees what it can; ``fork``/``exit`` return nothing). Those
expectations assume enough memory or swap: a replay whose ``--mem`` is so
small that the OOM killer runs will differ from them, and say so.

Layout facts used (the model's x86_64 2.6.11 legacy layout): programs are
linked at 0x400000, the break starts at 0x600000, TASK_UNMAPPED_BASE is
0x2AAAAAAAB000, the stack top is just below TASK_SIZE (1 << 47).

The workloads, and what each exposes:

- ``aim7``: fork fan-out. One anon_vma for the parent and all N children
  means a walk of any child's private page visits N+1 VMAs (the 2010
  problem that anon_vma_chain solved).
- ``kbuild``: kernel-build process churn: fork+exec of short-lived
  compilers mapping program text, private file data (early COW), libraries,
  headers, heap (brk), stack and anonymous arenas.
- ``realloc``: buffers grown by ``mremap`` with moves forced by interleaved
  mappings, optionally after a fork (anonmm must copy the shared pages).
- ``jit``: many small code regions flipped rw- / r-x by ``mprotect``:
  splits and re-merges.
- ``shared_server``: a big shared anonymous region plus a big private one,
  forked to workers who read and write both.
- ``fork_chain``: each generation forks and exits, the child writes: the
  anon_vma hierarchy grows without the 3.19 reuse rule.
"""

from __future__ import annotations

import functools
import inspect
import random
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

PAGE = 4096
PAGE_SHIFT = 12
TASK_SIZE = 1 << 47
#: where a spawned process's first non-fixed mmap lands (x86_64 2.6 legacy layout)
TASK_UNMAPPED_BASE = 0x2AAAAAAAB000
#: the program break of a fresh process
START_BRK = 0x600000
#: where executables are linked
TEXT_BASE = 0x400000
#: the top of the stack VMA (one page below TASK_SIZE, page aligned)
STACK_TOP = TASK_SIZE - PAGE
#: a free area far from everything else, for fixed mappings of our own
FIXED_BASE = 0x1000_0000_0000


# -- parameters and the registry ------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """One parameter of a workload: its default, a line of documentation,
    its kind (``int``, ``float``, ``bool`` or ``"pages"``: a page count
    that the command line also accepts as a size such as ``64M``) and its
    allowed range."""

    name: str
    default: Any
    doc: str
    kind: Any = int
    lo: float | None = None
    hi: float | None = None
    #: a default of None is "auto": the generator works the value out from
    #: the others, and ``-p NAME=auto`` asks for it explicitly
    auto: bool = False

    def describe(self) -> str:
        if self.kind is bool:
            return "true or false"
        what = {int: "an integer", float: "a number", "pages": "a number of pages"}[self.kind]
        if self.lo is not None and self.hi is not None:
            return f"{what} from {_fmt(self.lo)} to {_fmt(self.hi)}"
        if self.lo is not None:
            return f"{what} >= {_fmt(self.lo)}"
        return what

    def check(self, workload: str, value: Any) -> Any:
        """The value if it is valid; else ValueError naming the parameter."""
        if value is None and self.auto:
            return None
        bad = False
        if self.kind is bool:
            bad = not isinstance(value, bool)
        elif self.kind is float:
            bad = isinstance(value, bool) or not isinstance(value, (int, float)) or value != value
        else:
            bad = isinstance(value, bool) or not isinstance(value, int)
        if not bad and self.kind is not bool:
            bad = (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi)
        if bad:
            raise ValueError(f"{workload}: parameter {self.name} must be {self.describe()}, "
                             f"not {value!r}")
        return float(value) if self.kind is float else value

    def parse(self, workload: str, text: str) -> Any:
        """The value of ``text`` from the command line, checked."""
        t = text.strip()
        value: Any
        if self.auto and t.lower() == "auto":
            return None
        try:
            if self.kind is bool:
                low = t.lower()
                if low in ("1", "true", "yes", "on"):
                    value = True
                elif low in ("0", "false", "no", "off"):
                    value = False
                else:
                    raise ValueError
            elif self.kind is float:
                value = float(t)
            elif self.kind == "pages":
                value = _parse_pages(t)
            else:
                value = int(t, 0)
        except ValueError:
            raise ValueError(f"{workload}: parameter {self.name} must be {self.describe()}, "
                             f"not {text!r}") from None
        return self.check(workload, value)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


_SIZE = re.compile(r"^(\d+)\s*([kKmMgGtT])(i?[bB])?$")
_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _parse_pages(text: str) -> int:
    """``"256"`` → 256 pages; ``"64M"`` → 16384 pages (sizes must be whole pages)."""
    m = _SIZE.match(text)
    if not m:
        return int(text, 0)
    size = int(m.group(1)) * _UNITS[m.group(2).lower()]
    if size % PAGE:
        raise ValueError(text)
    return size // PAGE


@dataclass(frozen=True)
class Workload:
    """A registered generator: ``func(seed=.., **params)`` returns the events."""

    name: str
    description: str
    func: Callable[..., list[dict]]
    defaults: dict[str, Any]
    docs: dict[str, str]
    params: tuple[Param, ...]

    def generate(self, seed: int = 0, **params: Any) -> list[dict]:
        return self.func(seed=seed, **params)

    def parse_params(self, pairs: Iterable[str]) -> dict[str, Any]:
        """``["N=10", "M=64"]`` → ``{"N": 10, "M": 64}``, each value checked.
        Raises ValueError (naming the parameter) for anything wrong."""
        by_name = {p.name: p for p in self.params}
        out: dict[str, Any] = {}
        for pair in pairs:
            key, eq, text = pair.partition("=")
            key = key.strip()
            if not eq or not key:
                raise ValueError(f"{self.name}: parameter {pair!r} is not KEY=VALUE")
            p = by_name.get(key)
            if p is None:
                raise ValueError(f"{self.name}: unknown parameter {key!r}; known: "
                                 f"{', '.join(by_name)}")
            out[key] = p.parse(self.name, text)
        return out


#: name -> Workload, in the order ``rmaplab generate --list`` shows them
WORKLOADS: dict[str, Workload] = {}


def workload(name: str, description: str, *params: Param) -> Callable:
    """Register a generator. The wrapper checks every parameter (and the
    seed) before the generator runs; the generator's own keyword defaults
    must be the declared ones."""

    def register(fn: Callable[..., list[dict]]) -> Callable[..., list[dict]]:
        sig = inspect.signature(fn)
        declared = {p.name: p for p in params}
        for pname, sp in sig.parameters.items():
            if pname == "seed":
                continue
            assert pname in declared, f"{name}: {pname} not declared"
            assert sp.default == declared[pname].default, f"{name}: default of {pname}"
        assert set(declared) <= set(sig.parameters), f"{name}: declared but not taken"

        @functools.wraps(fn)
        def checked(*args: Any, seed: int = 0, **kw: Any) -> list[dict]:
            if args:
                raise TypeError(f"{name}() takes keyword parameters only")
            unknown = set(kw) - set(declared)
            if unknown:
                raise ValueError(f"{name}: unknown parameter {sorted(unknown)[0]!r}; known: "
                                 f"{', '.join(declared)}")
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ValueError(f"{name}: parameter seed must be an integer, not {seed!r}")
            values = {p.name: p.check(name, kw.get(p.name, p.default)) for p in params}
            return fn(seed=seed, **values)

        WORKLOADS[name] = Workload(name, description, checked,
                                   {p.name: p.default for p in params},
                                   {p.name: p.doc for p in params}, tuple(params))
        return checked

    return register


def _need(ok: bool, workload: str, param: str, why: str) -> None:
    """A check across parameters: ValueError naming ``param``."""
    if not ok:
        raise ValueError(f"{workload}: parameter {param} {why}")


# -- writing traces ------------------------------------------------------------------------

def header(source: str) -> dict:
    return {"format": "rmaplab-trace", "version": 1, "page_size": PAGE, "source": source}


def trace_lines(events: Iterable[dict], source: str | None = None) -> Iterator[bytes]:
    """The trace as JSON Lines (bytes, each ending in a newline), with a
    header first when ``source`` is given."""
    dumps = orjson.dumps
    if source is not None:
        yield dumps(header(source)) + b"\n"
    for e in events:
        yield dumps(e) + b"\n"


# -- building events -------------------------------------------------------------------------

class Trace:
    """An event list under construction, with an expect on each result the
    generator is sure of."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self._add = self.events.append

    def spawn(self, pid: int) -> None:
        self._add({"op": "spawn", "pid": pid})

    def fork(self, pid: int, child: int) -> None:
        self._add({"op": "fork", "pid": pid, "child": child})

    def exec(self, pid: int) -> None:
        self._add({"op": "exec", "pid": pid})

    def exit(self, pid: int) -> None:
        self._add({"op": "exit", "pid": pid})

    def file(self, name: str, pages: int) -> None:
        self._add({"op": "file", "name": name, "size": pages * PAGE})

    def mmap(self, pid: int, addr: int, pages: int, prot: str, shared: bool = False,
             file: str | None = None, offset_pages: int = 0, extra: tuple[str, ...] = ()) -> int:
        flags = ["shared" if shared else "private"]
        if file is None:
            flags.append("anonymous")
        flags.append("fixed")
        flags.extend(extra)
        self._add({"op": "mmap", "pid": pid, "addr": addr, "len": pages * PAGE, "prot": prot,
                   "flags": flags,
                   "file": None if file is None else {"name": file, "offset": offset_pages * PAGE},
                   "expect": addr})
        return addr

    def munmap(self, pid: int, addr: int, pages: int) -> None:
        self._add({"op": "munmap", "pid": pid, "addr": addr, "len": pages * PAGE, "expect": 0})

    def mprotect(self, pid: int, addr: int, pages: int, prot: str) -> None:
        self._add({"op": "mprotect", "pid": pid, "addr": addr, "len": pages * PAGE,
                   "prot": prot, "expect": 0})

    def mremap(self, pid: int, addr: int, old_pages: int, new_pages: int,
               new_addr: int | None) -> int:
        """Grow in place (``new_addr`` None: the caller knows there is room)
        or move to ``new_addr`` (MREMAP_MAYMOVE|MREMAP_FIXED)."""
        e: dict[str, Any] = {"op": "mremap", "pid": pid, "addr": addr,
                             "old_len": old_pages * PAGE, "new_len": new_pages * PAGE}
        expect = addr if new_addr is None else new_addr
        if new_addr is None:
            e["flags"] = ["maymove"]
        else:
            e["flags"] = ["maymove", "fixed"]
            e["new_addr"] = new_addr
        e["expect"] = expect
        self._add(e)
        return expect

    def brk(self, pid: int, addr: int) -> None:
        self._add({"op": "brk", "pid": pid, "addr": addr, "expect": addr})

    def write(self, pid: int, addr: int, pages: int, token: str) -> None:
        self._add({"op": "touch", "pid": pid, "addr": addr, "len": pages * PAGE,
                   "access": "w", "token": token, "expect": "ok"})

    def read(self, pid: int, addr: int, pages: int) -> None:
        self._add({"op": "touch", "pid": pid, "addr": addr, "len": pages * PAGE,
                   "access": "r", "expect": "ok"})

    def reclaim(self, pages: int) -> None:
        self._add({"op": "reclaim", "pages": pages})

    def checkpoint(self, name: str) -> None:
        self._add({"op": "checkpoint", "name": name})


class Layout:
    """The generator's record of one process's mappings, as sorted disjoint
    ``[start, end)`` byte ranges (it records what the generator mapped, so
    it knows where the next mapping starts and what is free)."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def copy(self) -> Layout:
        c = Layout()
        c.starts, c.ends = list(self.starts), list(self.ends)
        return c

    def is_free(self, start: int, end: int) -> bool:
        i = bisect_right(self.starts, start) - 1
        if i >= 0 and self.ends[i] > start:
            return False
        return i + 1 >= len(self.starts) or self.starts[i + 1] >= end

    def add(self, start: int, end: int) -> None:
        assert start < end and self.is_free(start, end), (hex(start), hex(end))
        i = bisect_right(self.starts, start)
        self.starts.insert(i, start)
        self.ends.insert(i, end)

    def remove(self, start: int, end: int) -> None:
        """Remove exactly the recorded range ``[start, end)``."""
        i = bisect_right(self.starts, start) - 1
        assert i >= 0 and self.starts[i] == start and self.ends[i] == end
        del self.starts[i], self.ends[i]

    def grow(self, start: int, new_end: int) -> None:
        i = bisect_right(self.starts, start) - 1
        assert self.starts[i] == start
        self.ends[i] = new_end

    def next_start(self, addr: int) -> int:
        """The start of the first range above ``addr`` (TASK_SIZE if none)."""
        i = bisect_right(self.starts, addr)
        return self.starts[i] if i < len(self.starts) else TASK_SIZE


def _runs(pages: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted page numbers → ``(first, count)`` runs of consecutive pages."""
    out: list[tuple[int, int]] = []
    for p in sorted(pages):
        if out and out[-1][0] + out[-1][1] == p:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((p, 1))
    return out


# -- aim7 ------------------------------------------------------------------------------------

#: aim7's cost budget: walks under anon_vma, anonmm and none visit about N
#: VMAs or mms per page, and reclaim must age every page once (all are young
#: after the COW phase), so the reclaim costs about N x footprint visits.
#: M's default keeps N x (N+1) x M near this (about 10 s at N = 100 for the
#: slowest scheme, none)
AIM7_BUDGET = 1 << 19


def aim7_pages(N: int) -> int:
    """aim7's default ``M`` for ``N`` children: 256, or fewer (at least one)
    so that N x footprint stays within ``AIM7_BUDGET``."""
    return max(1, min(256, AIM7_BUDGET // (N * (N + 1))))


@workload(
    "aim7", "fork fan-out as in AIM7: a parent writes M pages, forks N children that "
            "COW them all, read some, and exit; reclaim takes half the children's pages",
    Param("N", 100, "children forked", int, 1, 30_000),
    Param("M", None, "pages of the parent's private anonymous region (auto: 256 up to "
                     "N = 44, then 2^19 / (N x (N+1)) so that reclaim's N x footprint stays "
                     "bounded: 51 at N = 100, 1 from N = 512)", "pages", 1, 1 << 20, auto=True),
    Param("chunk", 64, "pages per write touch; children's touches are interleaved at random",
          "pages", 1, 1 << 20),
    Param("reads", None, "single-page reads per child after the COW phase (random pages; "
                         "auto: 16, or M if smaller)", int, 0, 1 << 20, auto=True),
    Param("reclaim", None, "pages to ask reclaim for after the COW phase (auto: N x M / 2, "
                           "half the children's pages: pressure sized to the footprint; "
                           "0: none)", int, 0, 1 << 30, auto=True),
)
def aim7(*, N: int = 100, M: int | None = None, chunk: int = 64, reads: int | None = None,
         reclaim: int | None = None, seed: int = 0) -> list[dict]:
    """The parent (pid 1) maps ``M`` private anonymous pages at
    TASK_UNMAPPED_BASE and writes them, forks children 2..N+1; the children
    write all their pages (breaking COW) in ``chunk``-page touches
    interleaved at random, then a ``reclaim`` of ``N*M/2`` pages (unless
    told otherwise) is the memory pressure, each child reads ``reads``
    random pages of its own, and they exit in random order. The parent
    stays alive and reads its pages back at the end.

    Under anon_vma (2.6.7) every COWed page of every child is on the one
    anon_vma of the parent's VMA, whose list holds N+1 VMAs: each rmap
    walk of a child's private page visits all N+1 (up to the one that maps
    it). The reclaim ages every page of the footprint once, so its cost
    grows as N x footprint; ``M``'s default keeps that bounded (pass
    ``M=256`` for the old fixed size: at N = 1000, minutes per scheme).
    """
    if M is None:
        M = aim7_pages(N)
    if reads is None:
        reads = min(16, M)
    if reclaim is None:
        reclaim = N * M // 2
    _need(reads <= M, "aim7", "reads", f"must be at most M ({M}), not {reads}")
    rng = random.Random(seed)
    t = Trace()
    base = TASK_UNMAPPED_BASE
    t.spawn(1)
    t.mmap(1, base, M, "rw-")
    t.write(1, base, M, "p")
    t.checkpoint("parent-written")
    children = list(range(2, N + 2))
    for c in children:
        t.fork(1, c)
    t.checkpoint("forked")
    # COW phase: each child's chunks in order, children picked at random
    todo = {c: 0 for c in children}          # next page to write
    live = list(children)
    while live:
        i = rng.randrange(len(live))
        c = live[i]
        first = todo[c]
        n = min(chunk, M - first)
        t.write(c, base + first * PAGE, n, f"c{c}")
        todo[c] = first + n
        if first + n >= M:
            live[i] = live[-1]
            live.pop()
    t.checkpoint("children-cowed")
    if reclaim:
        t.reclaim(reclaim)
        t.checkpoint("reclaimed")
    if reads:
        plan = [(c, p) for c in children for p in rng.sample(range(M), reads)]
        rng.shuffle(plan)
        for c, p in plan:
            t.read(c, base + p * PAGE, 1)
    order = list(children)
    rng.shuffle(order)
    for c in order:
        t.exit(c)
    t.checkpoint("children-exited")
    t.read(1, base, M)
    return t.events


# -- kbuild ----------------------------------------------------------------------------------

# The programs' files, in pages: text then data (the data segment is mapped
# private and writable from the file, so writes COW file pages).
_MAKE_TEXT, _MAKE_DATA = 48, 16
_CC1_TEXT, _CC1_DATA = 448, 64          # cc1 ends exactly at START_BRK
_LIBC_TEXT, _LIBC_DATA = 256, 16
_STACK = 8                               # initial stack pages (VM_GROWSDOWN)
_ARENA_BASE = TASK_UNMAPPED_BASE + 0x1000_0000    # private anonymous arenas
_FILE_BASE = TASK_UNMAPPED_BASE + 0x2000_0000     # headers and sources


def _program(t: Trace, pid: int, exe: str, text: int, data: int, rng: random.Random,
             token: str) -> None:
    """What execve and ld.so leave: the executable's text and data at
    TEXT_BASE, libc's at TASK_UNMAPPED_BASE, a small growsdown stack; some
    text pages executed, some data pages written (COW of file pages), the
    top of the stack written."""
    t.mmap(pid, TEXT_BASE, text, "r-x", file=exe)
    t.mmap(pid, TEXT_BASE + text * PAGE, data, "rw-", file=exe, offset_pages=text)
    t.mmap(pid, TASK_UNMAPPED_BASE, _LIBC_TEXT, "r-x", file="libc.so")
    t.mmap(pid, TASK_UNMAPPED_BASE + _LIBC_TEXT * PAGE, _LIBC_DATA, "rw-", file="libc.so",
           offset_pages=_LIBC_TEXT)
    stack = STACK_TOP - _STACK * PAGE
    t.mmap(pid, stack, _STACK, "rw-", extra=("growsdown",))
    for p, n in _runs(rng.sample(range(text), min(text, 24))):
        t.read(pid, TEXT_BASE + p * PAGE, n)
    for p, n in _runs(rng.sample(range(_LIBC_TEXT), 16)):
        t.read(pid, TASK_UNMAPPED_BASE + p * PAGE, n)
    for p, n in _runs(rng.sample(range(data), min(data, 8))):
        t.write(pid, TEXT_BASE + (text + p) * PAGE, n, token)
    t.write(pid, TASK_UNMAPPED_BASE + _LIBC_TEXT * PAGE, 2, token)
    t.write(pid, STACK_TOP - 2 * PAGE, 2, token)


def _compiler(t: Trace, pid: int, job: int, source: str, source_pages: int,
              headers: list[tuple[str, int]], rng: random.Random) -> Iterator[None]:
    """One compiler process, already forked from make: each ``yield`` ends
    a slice of its work (the scheduler interleaves the running compilers)."""
    tok = f"cc{job}"
    t.exec(pid)
    _program(t, pid, "cc1", _CC1_TEXT, _CC1_DATA, rng, tok)
    yield
    brk = START_BRK
    arena = _ARENA_BASE
    files = _FILE_BASE
    mapped: list[tuple[int, int]] = []          # file mappings still mapped
    # the source, then the headers it includes, interleaved with heap growth
    todo = [(source, source_pages)] + rng.sample(headers, min(len(headers), rng.randint(4, 16)))
    stack_low = STACK_TOP - _STACK * PAGE
    while todo:
        r = rng.random()
        if r < 0.5:
            name, pages = todo.pop(0)
            t.mmap(pid, files, pages, "r--", file=name)
            t.read(pid, files, pages)
            mapped.append((files, pages))
            files += (pages + 1) * PAGE
            if rng.random() < 0.7:              # done with it
                a, n = mapped.pop()
                t.munmap(pid, a, n)
        elif r < 0.8:                           # the heap grows (obstacks, trees)
            grow = rng.randint(1, 16)
            t.brk(pid, brk + grow * PAGE)
            t.write(pid, brk, grow, tok)
            brk += grow * PAGE
        elif r < 0.95:                          # a malloc arena / GC page pool
            n = rng.randint(4, 64)
            t.mmap(pid, arena, n, "rw-")
            t.write(pid, arena, rng.randint(1, n), tok)
            arena += (n + 1) * PAGE
        else:                                   # deep recursion: the stack grows
            down = rng.randint(1, 4)
            stack_low -= down * PAGE
            t.write(pid, stack_low, down, tok)
        yield
    # write the assembler output in the heap and go
    t.brk(pid, brk + 4 * PAGE)
    t.write(pid, brk, 4, tok)
    yield
    t.exit(pid)


@workload(
    "kbuild", "kernel-build-like churn: make forks+execs short-lived compilers that map "
              "text, libraries, headers, heap, stack and arenas, then exit",
    Param("jobs", 8, "compilers running at once (make -j)", int, 1, 4096),
    Param("compiles", 64, "compilers run in all", int, 1, 1_000_000),
    Param("headers", 64, "header files to choose includes from", int, 1, 100_000),
)
def kbuild(*, jobs: int = 8, compiles: int = 64, headers: int = 64, seed: int = 0) -> list[dict]:
    """Files: ``make``, ``cc1`` and ``libc.so`` (text and data segments),
    ``include/hN.h`` (1-8 pages each), ``src/fN.c`` (one per compile,
    1-16 pages). Make (pid 1) maps its program and grows its heap, then
    keeps ``jobs`` compilers running: it forks one (pids 2, 3, ...), the
    child execs ``cc1``, maps its program, libc and stack, reads its source
    and some headers through private file mappings (unmapping most), grows
    its heap with brk, maps arenas, grows its stack, and exits. Slices of
    the running compilers interleave at random. Make stays alive."""
    rng = random.Random(seed)
    t = Trace()
    t.file("make", _MAKE_TEXT + _MAKE_DATA)
    t.file("cc1", _CC1_TEXT + _CC1_DATA)
    t.file("libc.so", _LIBC_TEXT + _LIBC_DATA)
    hdrs = [(f"include/h{i}.h", rng.randint(1, 8)) for i in range(headers)]
    for name, n in hdrs:
        t.file(name, n)
    srcs = [(f"src/f{i}.c", rng.randint(1, 16)) for i in range(compiles)]
    for name, n in srcs:
        t.file(name, n)
    t.spawn(1)
    _program(t, 1, "make", _MAKE_TEXT, _MAKE_DATA, rng, "make")
    make_brk = START_BRK + 32 * PAGE
    t.brk(1, make_brk)
    t.write(1, START_BRK, 32, "make")       # the dependency graph
    t.checkpoint("make-ready")
    running: dict[int, Iterator[None]] = {}
    started = finished = 0
    pid = 2
    while started < compiles or running:
        while len(running) < jobs and started < compiles:
            t.fork(1, pid)
            gen = _compiler(t, pid, started, *srcs[started], hdrs, rng)
            running[pid] = gen
            started += 1
            pid += 1
            if rng.random() < 0.25:             # make's bookkeeping grows
                t.brk(1, make_brk + PAGE)
                t.write(1, make_brk, 1, "make")
                make_brk += PAGE
        c = rng.choice(sorted(running))
        try:
            next(running[c])
        except StopIteration:
            del running[c]
            finished += 1
            if finished == compiles // 2:
                t.checkpoint("half-built")
    t.checkpoint("built")
    return t.events


# -- realloc ---------------------------------------------------------------------------------

@workload(
    "realloc", "realloc-style growth: buffers grown by mremap(MAYMOVE), moved by "
               "interleaved mappings, optionally after a fork (anonmm copies)",
    Param("buffers", 8, "buffers grown", int, 1, 10_000),
    Param("steps", 128, "growth steps in all (a random buffer each)", int, 0, 1_000_000),
    Param("start_pages", 4, "initial pages of each buffer", "pages", 1, 1 << 20),
    Param("max_grow", 16, "most pages added by one step (1 to max_grow, random)",
          "pages", 1, 1 << 20),
    Param("interleave", 0.5, "chance that another mapping is made right after the buffer "
                             "before it grows (forcing a move)", float, 0.0, 1.0),
    Param("fork", True, "fork after the buffers are written; the child grows them "
                        "(its pages are shared with the parent)", bool),
)
def realloc(*, buffers: int = 8, steps: int = 128, start_pages: int = 4, max_grow: int = 16,
            interleave: float = 0.5, fork: bool = True, seed: int = 0) -> list[dict]:
    """Pid 1 maps ``buffers`` buffers of ``start_pages`` pages (a free page
    after each) and writes them; with ``fork`` it forks pid 2, which does
    the growing while its pages are still shared with pid 1. Each step picks
    a buffer; with chance ``interleave`` a small mapping (1-4 pages, written)
    is first made one page after the buffer's end, as another allocation
    would; then the buffer grows by 1..``max_grow`` pages: in place with
    MREMAP_MAYMOVE when the room after it suffices, else moved with
    MREMAP_MAYMOVE|MREMAP_FIXED to fresh space (the generator's own address
    allocator, above 0x100000000000). The new pages are written; now and
    then the whole buffer is read back. Both processes read their buffers
    at the end and stay alive."""
    rng = random.Random(seed)
    t = Trace()
    lay = Layout()
    bump = FIXED_BASE

    def fresh(pages: int) -> int:
        # above everything mapped so far, a free page after the last range
        nonlocal bump
        a = max(bump, lay.ends[-1] + PAGE) if lay.ends else bump
        bump += (pages + rng.randint(1, max(1, pages // 2))) * PAGE
        return a

    t.spawn(1)
    bufs: list[list[int]] = []                  # [addr, pages]
    for i in range(buffers):
        a = fresh(start_pages)
        t.mmap(1, a, start_pages, "rw-")
        lay.add(a, a + start_pages * PAGE)
        t.write(1, a, start_pages, f"b{i}.0")
        bufs.append([a, start_pages])
    t.checkpoint("buffers-written")
    pid = 1
    parent_bufs = [list(b) for b in bufs]
    if fork:
        t.fork(1, 2)
        pid = 2
        lay = lay.copy()
        t.checkpoint("forked")
    others: list[tuple[int, int]] = []
    for step in range(1, steps + 1):
        i = rng.randrange(buffers)
        a, n = bufs[i]
        end = a + n * PAGE
        if rng.random() < interleave:
            m = rng.randint(1, 4)
            o = end + PAGE
            if lay.is_free(o, o + (m + 1) * PAGE):      # keep a free page after it too
                t.mmap(pid, o, m, "rw-")
                lay.add(o, o + m * PAGE)
                t.write(pid, o, m, f"o{step}")
                others.append((o, m))
        if others and rng.random() < 0.1:               # another allocation is freed
            o, m = others.pop(rng.randrange(len(others)))
            t.munmap(pid, o, m)
            lay.remove(o, o + m * PAGE)
        new = n + rng.randint(1, max_grow)
        if lay.next_start(a) - a >= new * PAGE:
            t.mremap(pid, a, n, new, None)
            lay.grow(a, a + new * PAGE)
        else:
            dest = fresh(new)
            t.mremap(pid, a, n, new, dest)
            lay.remove(a, end)
            lay.add(dest, dest + new * PAGE)
            a = dest
        t.write(pid, a + n * PAGE, new - n, f"b{i}.{step}")
        bufs[i] = [a, new]
        if rng.random() < 0.2:
            t.read(pid, a, new)
    t.checkpoint("grown")
    for a, n in bufs:
        t.read(pid, a, n)
    if fork:
        for a, n in parent_bufs:
            t.read(1, a, n)
    return t.events


# -- jit ----------------------------------------------------------------------------------------

@workload(
    "jit", "JIT-style mprotect churn: many small code regions written rw-, flipped to "
           "r-x, re-patched (rw- and back) and evicted",
    Param("regions", 256, "code regions", int, 1, 20_000),
    Param("flips", 1024, "re-patch or evict operations after the first compile", int, 0,
          10_000_000),
    Param("region_pages", 4, "most pages of a region (1 to region_pages, random)", "pages",
          1, 4096),
    Param("evict", 0.05, "chance that an operation evicts a region (munmap) and compiles "
                         "it again (mmap)", float, 0.0, 1.0),
)
def jit(*, regions: int = 256, flips: int = 1024, region_pages: int = 4, evict: float = 0.05,
        seed: int = 0) -> list[dict]:
    """Pid 1 lays ``regions`` regions out in a code area at 0x100000000000,
    half of them right after the previous one (so their VMAs can merge when
    the protections agree), the others after a 1-2 page gap. Each region is
    mapped rw-, written, mprotected r-x and executed (read). Then ``flips``
    operations on regions picked with a bias to hot (low-numbered) ones:
    re-patch the whole region (rw-, write, r-x), patch one page of it (a
    split and re-merge), or with chance ``evict`` unmap the region and
    compile it afresh. The region is executed after each. The process stays
    alive."""
    rng = random.Random(seed)
    t = Trace()
    where: list[tuple[int, int]] = []
    a = FIXED_BASE
    for _ in range(regions):
        n = rng.randint(1, region_pages)
        where.append((a, n))
        a += (n + (0 if rng.random() < 0.5 else rng.randint(1, 2))) * PAGE

    def compile_(i: int, tok: str) -> None:
        a, n = where[i]
        t.mmap(1, a, n, "rw-")
        t.write(1, a, n, tok)
        t.mprotect(1, a, n, "r-x")
        t.read(1, a, n)

    t.spawn(1)
    for i in range(regions):
        compile_(i, f"j{i}")
    t.checkpoint("compiled")
    for f in range(1, flips + 1):
        i = int(regions * rng.random() ** 2)
        a, n = where[i]
        r = rng.random()
        if r < evict:
            t.munmap(1, a, n)
            compile_(i, f"j{i}.{f}")
            continue
        if r < evict + (1 - evict) / 2:
            t.mprotect(1, a, n, "rw-")
            t.write(1, a, n, f"j{i}.{f}")
            t.mprotect(1, a, n, "r-x")
        else:
            p = a + rng.randrange(n) * PAGE
            t.mprotect(1, p, 1, "rw-")
            t.write(1, p, 1, f"j{i}.{f}")
            t.mprotect(1, p, 1, "r-x")
        t.read(1, a, n)
    t.checkpoint("churned")
    return t.events


# -- shared_server --------------------------------------------------------------------------

@workload(
    "shared_server", "a server with a big MAP_SHARED|MAP_ANONYMOUS region and a big private "
                     "one, forked to W workers that read and write parts of both",
    Param("workers", 16, "worker processes forked", int, 1, 30_000),
    Param("size", 16384, "pages of the shared anonymous region (or a size: 64M)", "pages",
          1, 1 << 24),
    Param("private", 4096, "pages of the private anonymous region (0: none)", "pages",
          0, 1 << 24),
    Param("ops", 32, "operations per worker (read/write a chunk of either region)", int, 0,
          1_000_000),
    Param("chunk", 64, "pages per operation", "pages", 1, 1 << 24),
)
def shared_server(*, workers: int = 16, size: int = 16384, private: int = 4096, ops: int = 32,
                  chunk: int = 64, seed: int = 0) -> list[dict]:
    """The server (pid 1) maps ``size`` shared anonymous pages at
    TASK_UNMAPPED_BASE and ``private`` private anonymous pages after a free
    page, writes both, and forks workers 2..W+1. The workers' operations
    (``ops`` each) interleave at random; each reads or writes a random
    ``chunk`` of the shared region (seen by everyone) or of the private one
    (a write COWs). The workers exit; the server reads the shared region
    (the workers' writes) and its private one (its own) and stays alive."""
    _need(chunk <= size, "shared_server", "chunk", f"must be at most size ({size}), not {chunk}")
    _need(not private or chunk <= private, "shared_server", "chunk",
          f"must be at most private ({private}), not {chunk}")
    rng = random.Random(seed)
    t = Trace()
    shm = TASK_UNMAPPED_BASE
    priv = shm + (size + 1) * PAGE
    t.spawn(1)
    t.mmap(1, shm, size, "rw-", shared=True)
    if private:
        t.mmap(1, priv, private, "rw-")
    t.write(1, shm, size, "s")
    if private:
        t.write(1, priv, private, "m")
    t.checkpoint("server-ready")
    ws = list(range(2, workers + 2))
    for w in ws:
        t.fork(1, w)
    t.checkpoint("forked")
    plan = [w for w in ws for _ in range(ops)]
    rng.shuffle(plan)
    for k, w in enumerate(plan):
        use_private = private and rng.random() < 0.5
        base, n = (priv, private) if use_private else (shm, size)
        a = base + rng.randrange(n - chunk + 1) * PAGE
        if rng.random() < 0.5:
            t.read(w, a, chunk)
        else:
            t.write(w, a, chunk, f"w{w}.{k}")
    t.checkpoint("served")
    for w in ws:
        t.exit(w)
    t.read(1, shm, size)
    if private:
        t.read(1, priv, private)
    return t.events


# -- fork_chain ---------------------------------------------------------------------------------

@workload(
    "fork_chain", "a constantly forking chain: each generation forks a child and exits, "
                  "the child writes some pages",
    Param("generations", 64, "forks in the chain", int, 1, 1_000_000),
    Param("pages", 64, "pages of the private anonymous region", "pages", 1, 1 << 20),
    Param("write", 8, "random pages each new generation writes", "pages", 0, 1 << 20),
)
def fork_chain(*, generations: int = 64, pages: int = 64, write: int = 8,
               seed: int = 0) -> list[dict]:
    """Pid 1 maps ``pages`` private anonymous pages at TASK_UNMAPPED_BASE
    and writes them. Generation g (pid g+1) is forked by generation g-1,
    which then exits; it writes ``write`` random pages of the region and
    reads all of it. Only the last generation is alive at the end.

    Without the 3.19 reuse rule, anon_vma_chain gives each generation a
    new anon_vma linked under all the previous ones (none can go while
    pages point to them): the hierarchy grows with the generations. 2.6.7
    anon_vma keeps one anon_vma throughout."""
    _need(write <= pages, "fork_chain", "write", f"must be at most pages ({pages}), not {write}")
    rng = random.Random(seed)
    t = Trace()
    base = TASK_UNMAPPED_BASE
    t.spawn(1)
    t.mmap(1, base, pages, "rw-")
    t.write(1, base, pages, "g0")
    for g in range(1, generations + 1):
        parent, child = g, g + 1
        t.fork(parent, child)
        t.exit(parent)
        for p, n in _runs(rng.sample(range(pages), write)):
            t.write(child, base + p * PAGE, n, f"g{g}")
        t.read(child, base, pages)
        if g == generations // 2 and g != generations:
            t.checkpoint(f"generation-{g}")
    t.checkpoint(f"generation-{generations}")
    return t.events
