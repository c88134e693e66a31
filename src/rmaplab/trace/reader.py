"""Reading trace files (``spec/trace-v1.md``).

A trace is JSON Lines, plain or gzip'ed. ``read_trace`` parses and checks
the whole file before anything runs: JSON syntax, the optional header, each
event's op, fields and their types, numbers (integers, hex or decimal
strings), prot strings, flag words, advice names, access and tokens, and the
life of pids and files (a pid exists from ``spawn``/``fork`` until ``exit``;
a file exists once a ``file`` event declared it). Every problem is a
``TraceError`` whose message is ``FILE:LINE: reason``.

Events come out as ``Event`` tuples ``(index, line, op, pid, args, expect)``
with the arguments already in the form the Kernel takes (prot and flags as
their C values), so replay does no parsing. ``expect`` is ``NO_EXPECT`` when
the event carries none.

Departures from a lenient reader, on purpose: an unknown field is an error
(a misspelt ``"lenght"`` would otherwise silently become the default), and a
number must be a non-negative integer below 2**64 (no floats, no booleans).
"""

from __future__ import annotations

import gc
import gzip
import re
import sys
import zlib
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from rmaplab.kernel.abi import MMAP_FLAGS, MREMAP_FLAGS, parse_prot

_JSONError: type[ValueError]
_loads: Callable[[bytes], Any]
try:  # orjson is a dependency; the stdlib parser is a fallback only
    import orjson as _orjson
    _JSONError, _loads = _orjson.JSONDecodeError, _orjson.loads
except ImportError:  # pragma: no cover
    import json as _json

    def _int_like_orjson(s: str) -> int | float:
        n = int(s)
        return n if -(1 << 63) <= n < 1 << 64 else float(n)

    def _json_loads(b: bytes) -> Any:
        return _json.loads(b, parse_int=_int_like_orjson)

    _JSONError, _loads = _json.JSONDecodeError, _json_loads

# Both parsers give a JSON integer as an int only in [-2**63, 2**64) (orjson
# turns larger ones into floats), so an int needs only the sign tested.

FORMAT_NAME = "rmaplab-trace"
FORMAT_VERSION = 1
PAGE_SIZE = 4096
_U64 = 1 << 64


class TraceError(ValueError):
    """A problem with a trace: the message is ``FILE:LINE: reason``
    (``FILE: reason`` for problems with the file as a whole)."""

    def __init__(self, filename: str, line: int | None, reason: str) -> None:
        where = f"{filename}:{line}" if line is not None else filename
        super().__init__(f"{where}: {reason}")
        self.filename = filename
        self.line = line
        self.reason = reason

    def __reduce__(self) -> tuple:
        # picklable, so that it crosses a process pool's boundary whole
        return (type(self), (self.filename, self.line, self.reason))


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_EXPECT"

    def __reduce__(self) -> str:
        return "NO_EXPECT"


#: the ``expect`` of an event that carries none
NO_EXPECT: Any = _Missing()


class Event(NamedTuple):
    """One event: its index (from 0), its line (from 1), the op, the pid
    (None for events outside processes), the op's arguments, and the
    expected result (``NO_EXPECT`` if none).

    ``args`` per op::

        spawn, exec, exit      ()
        fork                   (child,)
        file                   (name, size)
        mmap                   (addr|None, len, prot, flags, file|None, offset, open)
        munmap, mlock, munlock (addr, len)
        mprotect               (addr, len, prot)
        mremap                 (addr, old_len, new_len, flags, new_addr|None)
        brk                    (addr,)
        madvise                (addr, len, advice)
        touch                  (addr, len, access, token|None)
        reclaim                (pages,)
        checkpoint             (name,)

    ``prot`` and ``flags`` are the C values (``PROT_*``, ``MAP_*``,
    ``MREMAP_*``), which the Kernel takes as they are.
    """

    index: int  # type: ignore[assignment]  # the field shadows tuple.index on purpose
    line: int
    op: str
    pid: int | None
    args: tuple
    expect: Any


class Trace(NamedTuple):
    """A parsed trace: the file name, the header (``{}`` if none), the
    page size and the events in order."""

    filename: str
    header: dict
    page_size: int
    events: list[Event]


class _Bad(Exception):
    """Raised inside field parsers; becomes a TraceError with the line."""


# -- field parsers -----------------------------------------------------------------

def _num(v: Any, what: str) -> int:
    """An address, length or count: an integer, or a hex or decimal string."""
    c = v.__class__
    if c is int:
        if v >= 0:
            return v
        raise _Bad(f"{what} {v} is negative")
    if c is str:
        x = v[1:2]
        try:
            n = int(v, 16) if (x == "x" or x == "X") else int(v, 10)
        except ValueError:
            n = -1
        # int() also takes signs, blanks, "_" and non-ASCII digits: refuse them
        if 0 <= n < _U64 and v.isalnum() and v.isascii():
            return n
        raise _Bad(f"{what} {v!r} is not a number (an integer, or a hex \"0x..\" or "
                   f"decimal string, below 2**64)")
    raise _Bad(f"{what} must be an integer or a hex/decimal string, not {_jtype(v)}")


def _jtype(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a floating-point number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _pid(v: Any, what: str = "pid") -> int:
    if v.__class__ is int and v >= 0:
        return v
    raise _Bad(f"{what} must be a non-negative integer, not "
               f"{v if v.__class__ is int else _jtype(v)}")


_PROTS = {s: parse_prot(s) for s in (a + b + c for a in "r-" for b in "w-" for c in "x-")}


def _prot(v: Any) -> int:
    p = _PROTS.get(v) if v.__class__ is str else None
    if p is None:
        raise _Bad(f"bad prot {v!r}: expected three characters from r/-, w/-, x/- "
                   f"such as \"rw-\"")
    return p


def _flag_parser(table: dict[str, int], what: str) -> Any:
    cache: dict[tuple, int] = {}

    def parse(v: Any) -> int:
        if v.__class__ is list:
            key = tuple(v)
            try:
                return cache[key]
            except (KeyError, TypeError):
                pass
            out = 0
            for w in v:
                if w.__class__ is not str or w not in table:
                    raise _Bad(f"unknown {what} flag {w!r}; known: {', '.join(table)}")
                out |= table[w]
            cache[key] = out
            return out
        raise _Bad(f"{what} flags must be a list of words, not {_jtype(v)}")
    return parse


_mmap_flags = _flag_parser(MMAP_FLAGS, "mmap")
_mremap_flags = _flag_parser(MREMAP_FLAGS, "mremap")
_MREMAP_FIXED = MREMAP_FLAGS["fixed"]

ADVICE = ("dontneed", "willneed", "normal", "random", "sequential", "cold", "pageout")
#: the access modes of the descriptor behind a file mapping (modern addition)
OPEN_MODES = ("rw", "r", "w")


def _token(v: Any) -> Any:
    if v.__class__ is str or v.__class__ is int:
        return v
    raise _Bad(f"token must be a string or an integer, not {_jtype(v)}")


def _expect(v: Any) -> Any:
    """Results are integers, strings or null; a numeric string is a number
    (a recorder may write addresses in hex)."""
    c = v.__class__
    if c is int or v is None:
        return v
    if c is str:
        if v[:2] in ("0x", "0X") or (v.isascii() and v.isdigit()):
            return _num(v, "expect")
        return v
    raise _Bad(f"expect must be an integer, a string or null, not {_jtype(v)}")


# -- per-op parsers: each returns (pid, args) --------------------------------------
# ``d`` is the event object; keys were already checked against _FIELDS.

def _p_proc(d: dict) -> tuple:
    return _pid(d["pid"]), ()


def _p_fork(d: dict) -> tuple:
    return _pid(d["pid"]), (_pid(d["child"], "child"),)


def _p_file(d: dict) -> tuple:
    name = d["name"]
    if name.__class__ is not str or not name:
        raise _Bad("file name must be a non-empty string")
    return None, (name, _num(d["size"], "size"))


def _p_mmap(d: dict) -> tuple:
    addr = d.get("addr")
    if addr is not None:
        addr = _num(addr, "addr")
    f = d.get("file")
    fname, off, mode = None, 0, "rw"
    if f is not None:
        if f.__class__ is not dict:
            raise _Bad(f"mmap file must be null or {{\"name\": .., \"offset\": ..}}, not {_jtype(f)}")
        extra = f.keys() - {"name", "offset", "open"}
        if extra:
            raise _Bad(f"unknown field {sorted(extra)[0]!r} in mmap file; known: name, offset, open")
        fname = f.get("name")
        if fname.__class__ is not str or not fname:
            raise _Bad("mmap file needs a \"name\" (a non-empty string)")
        if "offset" in f:
            off = _num(f["offset"], "offset")
        mode = f.get("open", "rw")
        if mode not in OPEN_MODES:
            raise _Bad(f"mmap file \"open\" must be one of {', '.join(OPEN_MODES)}, not {mode!r}")
    return _pid(d["pid"]), (addr, _num(d["len"], "len"), _prot(d["prot"]),
                            _mmap_flags(d["flags"]), fname, off, mode)


# The hot ops below test the common case (a plain integer in range) inline
# and call _num/_pid/_prot only otherwise: a call costs as much as the test.

def _p_range(d: dict) -> tuple:
    pid = d["pid"]
    if pid.__class__ is not int or pid < 0:
        _pid(pid)
    a = d["addr"]
    if a.__class__ is not int or a < 0:
        a = _num(a, "addr")
    n = d["len"]
    if n.__class__ is not int or n < 0:
        n = _num(n, "len")
    return pid, (a, n)


def _p_mprotect(d: dict) -> tuple:
    pid = d["pid"]
    if pid.__class__ is not int or pid < 0:
        _pid(pid)
    a = d["addr"]
    if a.__class__ is not int or a < 0:
        a = _num(a, "addr")
    n = d["len"]
    if n.__class__ is not int or n < 0:
        n = _num(n, "len")
    p = d["prot"]
    prot = _PROTS.get(p) if p.__class__ is str else None
    if prot is None:
        prot = _prot(p)
    return pid, (a, n, prot)


def _p_mremap(d: dict) -> tuple:
    flags = _mremap_flags(d["flags"])
    new_addr = d.get("new_addr")
    if new_addr is not None:
        new_addr = _num(new_addr, "new_addr")
    elif flags & _MREMAP_FIXED:
        raise _Bad("mremap with \"fixed\" needs new_addr")
    return _pid(d["pid"]), (_num(d["addr"], "addr"), _num(d["old_len"], "old_len"),
                            _num(d["new_len"], "new_len"), flags, new_addr)


def _p_brk(d: dict) -> tuple:
    return _pid(d["pid"]), (_num(d["addr"], "addr"),)


def _p_madvise(d: dict) -> tuple:
    adv = d["advice"]
    if adv.__class__ is not str or adv not in ADVICE:
        raise _Bad(f"unknown advice {adv!r}; known: {', '.join(ADVICE)}")
    return _pid(d["pid"]), (_num(d["addr"], "addr"), _num(d["len"], "len"), adv)


def _p_touch(d: dict) -> tuple:
    pid = d["pid"]
    if pid.__class__ is not int or pid < 0:
        _pid(pid)
    a = d["addr"]
    if a.__class__ is not int or a < 0:
        a = _num(a, "addr")
    n = d.get("len", PAGE_SIZE)
    if n.__class__ is not int or n < 0:
        n = PAGE_SIZE if n is None else _num(n, "len")
    access = d.get("access")
    tok = d.get("token")
    if access == "w":
        if tok.__class__ is not str and tok.__class__ is not int:
            if tok is None:
                raise _Bad("a \"w\" touch needs a token (a string or an integer)")
            tok = _token(tok)
    elif access == "r":
        if tok is not None:
            raise _Bad("a \"r\" touch takes no token")
    else:
        raise _Bad(f"access must be \"r\" or \"w\", not {access!r}" if "access" in d
                   else "touch needs access (\"r\" or \"w\")")
    return pid, (a, n, access, tok)


def _p_reclaim(d: dict) -> tuple:
    return None, (_num(d["pages"], "pages"),)


def _p_checkpoint(d: dict) -> tuple:
    name = d["name"]
    if name.__class__ is not str:
        raise _Bad(f"checkpoint name must be a string, not {_jtype(name)}")
    return None, (name,)


#: op -> (parser, required fields, optional fields)
_OPS: dict[str, tuple[Any, tuple[str, ...], tuple[str, ...]]] = {
    "spawn": (_p_proc, ("pid",), ()),
    "exec": (_p_proc, ("pid",), ()),
    "exit": (_p_proc, ("pid",), ()),
    "fork": (_p_fork, ("pid", "child"), ()),
    "file": (_p_file, ("name", "size"), ()),
    "mmap": (_p_mmap, ("pid", "len", "prot", "flags"), ("addr", "file")),
    "munmap": (_p_range, ("pid", "addr", "len"), ()),
    "mprotect": (_p_mprotect, ("pid", "addr", "len", "prot"), ()),
    "mremap": (_p_mremap, ("pid", "addr", "old_len", "new_len", "flags"), ("new_addr",)),
    "brk": (_p_brk, ("pid", "addr"), ()),
    "madvise": (_p_madvise, ("pid", "addr", "len", "advice"), ()),
    "mlock": (_p_range, ("pid", "addr", "len"), ()),
    "munlock": (_p_range, ("pid", "addr", "len"), ()),
    "touch": (_p_touch, ("pid", "addr", "access"), ("len", "token")),
    "reclaim": (_p_reclaim, ("pages",), ()),
    "checkpoint": (_p_checkpoint, ("name",), ()),
}
OPS = tuple(_OPS)

#: op -> (parser, the keys allowed in its events, its required fields)
_TABLE = {op: (fn, frozenset(("op", "expect") + req + opt), req)
          for op, (fn, req, opt) in _OPS.items()}

#: ops that create or end pids and files, or name a file
_LIFE_OPS = frozenset(("spawn", "fork", "exit", "file", "mmap"))


def _field_problem(d: dict, op: str) -> str:
    """Why the fields of ``d`` do not fit ``op`` (called on the slow path)."""
    _, allowed, req = _TABLE[op]
    for k in req:
        if k not in d:
            return f"{op} needs field {k!r}"
    for k in d:
        if k not in allowed:
            return (f"unknown field {k!r} for {op}; fields: "
                    f"{', '.join(sorted(allowed - {'op', 'expect'}))}, expect")
    return ""


# -- the reader ---------------------------------------------------------------------------

def _read_bytes(path: str) -> bytes:
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as fh:
                data = fh.read()
        if path.endswith(".gz") or data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except OSError as e:   # includes gzip.BadGzipFile
        raise TraceError("<stdin>" if path == "-" else path, None, f"cannot read: {e.strerror or e}") from None
    except (EOFError, zlib.error) as e:
        raise TraceError("<stdin>" if path == "-" else path, None, f"cannot read: corrupt or truncated gzip data ({e})") from None
    return data


def read_trace(path: str) -> Trace:
    """Read and check the whole trace at ``path`` (``"-"`` is stdin, named
    ``<stdin>`` in messages)."""
    return parse_trace(_read_bytes(path), "<stdin>" if path == "-" else path)


def parse_trace(data: bytes | str | Iterable[str | bytes], filename: str = "<trace>") -> Trace:
    """Parse and check trace text (bytes, str, or an iterable of lines)."""
    # The parse makes two long-lived tuples per event; the cyclic garbage
    # collector would rescan them again and again (a third of the time).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _parse(data, filename)
    finally:
        if enabled:
            gc.enable()


def _parse(data: bytes | str | Iterable[str | bytes], filename: str) -> Trace:
    if isinstance(data, str):
        data = data.encode()
    if isinstance(data, bytes) and data[:3] == b"\xef\xbb\xbf":
        data = data[3:]            # a UTF-8 byte-order mark
    lines = data.split(b"\n") if isinstance(data, bytes) else [
        (ln.encode() if isinstance(ln, str) else ln).rstrip(b"\n") for ln in data]
    return _parse_lines(lines, filename)


def _no_process(filename: str, lineno: int, op: str, pid: int) -> TraceError:
    return TraceError(filename, lineno, f"{op}: no process with pid {pid} "
                      f"(a pid exists from spawn or fork until exit)")


def _lifetime(filename: str, lineno: int, op: str, pid: Any, args: tuple,
              live: set, files: set) -> None:
    """The pid/file bookkeeping of an op in _LIFE_OPS: raises TraceError
    when the trace uses a pid or file that does not exist (or re-creates
    one that does)."""
    if op == "spawn":
        if pid in live:
            raise TraceError(filename, lineno, f"spawn: pid {pid} already exists")
        live.add(pid)
        return
    if op == "file":
        if args[0] in files:
            raise TraceError(filename, lineno, f"file {args[0]!r} is already declared")
        files.add(args[0])
        return
    if pid not in live:
        raise _no_process(filename, lineno, op, pid)
    if op == "fork":
        if args[0] in live:
            raise TraceError(filename, lineno, f"fork: child pid {args[0]} already exists")
        live.add(args[0])
    elif op == "exit":
        live.discard(pid)
    elif op == "mmap" and args[4] is not None and args[4] not in files:
        raise TraceError(filename, lineno, f"mmap: unknown file {args[4]!r} "
                         f"(declare it first with a \"file\" event)")


def _parse_lines(lines: list[bytes], filename: str) -> Trace:
    """Line by line, so the first problem in file order is the one reported.

    (A column-wise parser of the distinct lines, grouped by op, was tried
    and measured: no faster than this, so not kept.)"""
    header: dict = {}
    page_size = PAGE_SIZE
    events: list[Event] = []
    append = events.append
    new = tuple.__new__
    life_ops = _LIFE_OPS
    live: set[int] = set()
    files: set[str] = set()
    # Identical lines parse identically, and traces repeat lines a lot (the
    # same mprotect flipped back and forth): parse each distinct line once.
    # Only the pid/file bookkeeping depends on the position.
    seen: dict[bytes, tuple] = {}
    first = True
    lineno = 0
    index = 0
    for raw in lines:
        lineno += 1
        hit = seen.get(raw)
        if hit is None:
            if raw[:1] != b"{":
                s = raw.strip()
                if not s or s[:1] == b"#":
                    continue
            if first:
                first = False
                h = _maybe_header(raw, filename, lineno)
                if h is not None:
                    header, page_size = h
                    continue
            hit = seen[raw] = _parse_event(raw, filename, lineno)
        op, pid, args, expect = hit
        if op in life_ops:
            _lifetime(filename, lineno, op, pid, args, live, files)
        elif pid not in live and pid is not None:
            raise _no_process(filename, lineno, op, pid)
        append(new(Event, (index, lineno, op, pid, args, expect)))
        index += 1
    return Trace(filename, header, page_size, events)


def _load(raw: bytes, filename: str, lineno: int) -> dict:
    try:
        d = _loads(raw)
    except (_JSONError, UnicodeDecodeError) as e:
        raise TraceError(filename, lineno, f"not valid JSON: {_json_reason(e)}") from None
    if d.__class__ is not dict:
        raise TraceError(filename, lineno, f"expected a JSON object, found {_jtype(d)}")
    return d


def _maybe_header(raw: bytes, filename: str, lineno: int) -> tuple[dict, int] | None:
    """The header, if the first object is one."""
    d = _load(raw, filename, lineno)
    if "op" in d or "format" not in d:
        return None
    return _header(d, filename, lineno)


def _parse_event(raw: bytes, filename: str, lineno: int) -> tuple:
    """``(op, pid, args, expect)`` of one event line."""
    try:
        d = _loads(raw)
    except (_JSONError, UnicodeDecodeError) as e:
        raise TraceError(filename, lineno, f"not valid JSON: {_json_reason(e)}") from None
    if d.__class__ is not dict:
        raise TraceError(filename, lineno, f"expected a JSON object, found {_jtype(d)}")
    op = d.get("op")
    if not isinstance(op, str) or (entry := _TABLE.get(op)) is None:
        if op is None:
            reason = ("a header is only allowed as the first object" if "format" in d
                      else "event has no \"op\"")
        else:
            reason = f"unknown op {op!r}; known: {', '.join(OPS)}"
        raise TraceError(filename, lineno, reason) from None
    fn, allowed, req = entry
    if not allowed.issuperset(d):
        raise TraceError(filename, lineno, _field_problem(d, op))
    try:
        pid, args = fn(d)
        expect = d.get("expect", NO_EXPECT)
        if expect.__class__ is not int and expect is not NO_EXPECT and expect is not None:
            expect = _expect(expect)
    except KeyError:
        raise TraceError(filename, lineno,
                         _field_problem(d, op) or f"malformed {op} event") from None
    except _Bad as e:
        raise TraceError(filename, lineno, str(e)) from None
    return op, pid, args, expect


def _header(d: dict, filename: str, lineno: int) -> tuple[dict, int]:
    fmt = d.get("format")
    if fmt != FORMAT_NAME:
        raise TraceError(filename, lineno, f"not an rmaplab trace: format is {fmt!r}, "
                         f"expected {FORMAT_NAME!r}")
    version = d.get("version", FORMAT_VERSION)
    if version.__class__ is not int or version < 1:
        raise TraceError(filename, lineno, f"bad header version {version!r}: expected a "
                         f"positive integer")
    if version > FORMAT_VERSION:
        raise TraceError(filename, lineno, f"trace format version {version} is newer than "
                         f"this reader understands (version {FORMAT_VERSION}); "
                         f"upgrade rmaplab to replay it")
    ps = d.get("page_size", PAGE_SIZE)
    if ps != PAGE_SIZE or ps.__class__ is not int:
        raise TraceError(filename, lineno, f"page_size {ps!r} is not supported: the model "
                         f"has {PAGE_SIZE}-byte pages")
    src = d.get("source")
    if src is not None and src.__class__ is not str:
        raise TraceError(filename, lineno, "header source must be a string")
    return d, ps


def _json_reason(e: Exception) -> str:
    if isinstance(e, UnicodeDecodeError):
        return "the line is not UTF-8"
    msg = str(e) or "syntax error"
    # the parser sees one line at a time: keep the column, drop "line 1"
    return _LINE_COL.sub(r"at column \1", msg)


_LINE_COL = re.compile(r"line \d+ column (\d+) \(char \d+\)")

