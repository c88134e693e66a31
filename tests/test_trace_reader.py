"""The trace reader (spec/trace-v1.md): numbers, header, comments, gzip, and a
``FILE:LINE: reason`` error for every kind of bad line, also through the CLI
(exit status 2, one line, no traceback)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from rmaplab.cli.main import main
from rmaplab.kernel.abi import MMAP_FLAGS, MREMAP_FLAGS
from rmaplab.mm.mmap import PROT_EXEC, PROT_READ, PROT_WRITE
from rmaplab.trace.reader import NO_EXPECT, TraceError, parse_trace, read_trace

DATA = Path(__file__).parent / "data" / "traces"
SPAWN = '{"op": "spawn", "pid": 1}'


def parse(*lines: str):
    return parse_trace("\n".join(lines) + "\n", "t.jsonl")


def one(line: str):
    """The last event of a trace that spawns pid 1 first."""
    return parse(SPAWN, line).events[-1]


def bad(*lines: str) -> TraceError:
    with pytest.raises(TraceError) as ei:
        parse(*lines)
    return ei.value


# -- numbers --------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [
    ("4096", 4096), ('"4096"', 4096), ('"0x1000"', 4096), ('"0X1000"', 4096),
    ('"0x7f0000001000"', 0x7F0000001000), ('"0xABCdef"', 0xABCDEF), ("0", 0),
    ('"0"', 0), ('"007"', 7), ('"0xffffffffffffffff"', 2**64 - 1),
    ("18446744073709551615", 2**64 - 1),
])
def test_numbers(text, value):
    ev = one(f'{{"op": "munmap", "pid": 1, "addr": {text}, "len": {text}}}')
    assert ev.args == (value, value)


@pytest.mark.parametrize("text,why", [
    ('"0x"', "not a number"), ('"12abc"', "not a number"), ('"-5"', "not a number"),
    ("-5", "negative"), ('" 5"', "not a number"), ('"1_000"', "not a number"),
    ('"+5"', "not a number"), ('"0x1_0"', "not a number"), ('"0b101"', "not a number"),
    ('"0x10000000000000000"', "not a number"), ('""', "not a number"),
    ("1.5", "floating-point"), ("1e3", "floating-point"), ("true", "boolean"),
    ("null", "null"), ("[1]", "list"), ('{"a": 1}', "object"),
    ("18446744073709551616", "floating-point"),   # 2**64: JSON parsers give a float
])
def test_bad_numbers(text, why):
    e = bad(SPAWN, f'{{"op": "munmap", "pid": 1, "addr": {text}, "len": 4096}}')
    assert str(e).startswith("t.jsonl:2: ")
    assert "addr" in str(e) and why in str(e)


# -- field values ---------------------------------------------------------------------

def test_prot_and_flags_become_c_values():
    ev = one('{"op": "mmap", "pid": 1, "addr": null, "len": 8192, "prot": "r-x", '
             '"flags": ["private", "anonymous", "populate"], "file": null}')
    assert ev.op == "mmap" and ev.pid == 1
    addr, length, prot, flags, fname, off, mode = ev.args
    assert (addr, length, fname, off, mode) == (None, 8192, None, 0, "rw")
    assert prot == PROT_READ | PROT_EXEC
    assert flags == MMAP_FLAGS["private"] | MMAP_FLAGS["anonymous"] | MMAP_FLAGS["populate"]
    for p, v in [("---", 0), ("rw-", PROT_READ | PROT_WRITE), ("rwx", PROT_READ | PROT_WRITE | PROT_EXEC)]:
        ev = one(f'{{"op": "mprotect", "pid": 1, "addr": 0, "len": 0, "prot": "{p}"}}')
        assert ev.args[2] == v


def test_mmap_file_and_optional_fields():
    t = parse('{"op": "file", "name": "lib.so", "size": "0x2000"}', SPAWN,
              '{"op": "mmap", "pid": 1, "len": 4096, "prot": "r--", "flags": ["shared"], '
              '"file": {"name": "lib.so", "offset": "0x1000"}}',
              '{"op": "mmap", "pid": 1, "len": 4096, "prot": "r--", "flags": ["shared"], '
              '"file": {"name": "lib.so"}}')
    assert t.events[0].args == ("lib.so", 0x2000) and t.events[0].pid is None
    assert t.events[2].args[0] is None                      # addr may be left out
    assert t.events[2].args[4:] == ("lib.so", 0x1000, "rw")
    assert t.events[3].args[4:] == ("lib.so", 0, "rw")      # offset defaults to 0


def test_modern_additions_open_dontunmap_cold_pageout():
    t = parse('{"op": "file", "name": "f", "size": 8192}', SPAWN,
              '{"op": "mmap", "pid": 1, "len": 4096, "prot": "r--", "flags": ["shared"], '
              '"file": {"name": "f", "open": "r"}}',
              '{"op": "mremap", "pid": 1, "addr": 4096, "old_len": 4096, "new_len": 4096, '
              '"flags": ["maymove", "dontunmap"]}',
              '{"op": "madvise", "pid": 1, "addr": 4096, "len": 4096, "advice": "cold"}',
              '{"op": "madvise", "pid": 1, "addr": 4096, "len": 4096, "advice": "pageout"}')
    assert t.events[2].args[6] == "r"
    assert t.events[3].args[3] == MREMAP_FLAGS["maymove"] | MREMAP_FLAGS["dontunmap"] == 5
    assert [e.args[2] for e in t.events[4:]] == ["cold", "pageout"]
    with pytest.raises(TraceError, match=r"t.jsonl:3: .*open.*rw, r, w"):
        parse('{"op": "file", "name": "f", "size": 8192}', SPAWN,
              '{"op": "mmap", "pid": 1, "len": 4096, "prot": "r--", "flags": ["shared"], '
              '"file": {"name": "f", "open": "rx"}}')


def test_mremap_touch_madvise_reclaim_checkpoint():
    t = parse(SPAWN,
              '{"op": "mremap", "pid": 1, "addr": 4096, "old_len": 4096, "new_len": 8192, '
              '"flags": ["maymove", "fixed"], "new_addr": "0x10000"}',
              '{"op": "mremap", "pid": 1, "addr": 4096, "old_len": 4096, "new_len": 8192, "flags": []}',
              '{"op": "touch", "pid": 1, "addr": 4096, "access": "r"}',
              '{"op": "touch", "pid": 1, "addr": 4096, "len": 100, "access": "w", "token": 7}',
              '{"op": "madvise", "pid": 1, "addr": 0, "len": 4096, "advice": "dontneed"}',
              '{"op": "reclaim", "pages": "10"}',
              '{"op": "checkpoint", "name": "here"}')
    ev = t.events
    assert ev[1].args == (4096, 4096, 8192, MREMAP_FLAGS["maymove"] | MREMAP_FLAGS["fixed"], 0x10000)
    assert ev[2].args == (4096, 4096, 8192, 0, None)
    assert ev[3].args == (4096, 4096, "r", None)            # len defaults to one page
    assert ev[4].args == (4096, 100, "w", 7)
    assert ev[5].args == (0, 4096, "dontneed")
    assert (ev[6].pid, ev[6].args) == (None, (10,))
    assert (ev[7].pid, ev[7].args) == (None, ("here",))


def test_expect_values():
    t = parse(SPAWN,
              '{"op": "munmap", "pid": 1, "addr": 0, "len": 0, "expect": 0}',
              '{"op": "munmap", "pid": 1, "addr": 0, "len": 0, "expect": "EINVAL"}',
              '{"op": "brk", "pid": 1, "addr": 0, "expect": "0x600000"}',
              '{"op": "brk", "pid": 1, "addr": 0, "expect": "6291456"}',
              '{"op": "exit", "pid": 1, "expect": null}',
              '{"op": "spawn", "pid": 1}')
    assert [e.expect for e in t.events] == [NO_EXPECT, 0, "EINVAL", 0x600000, 6291456, None,
                                            NO_EXPECT]


# -- structure: index, line, header, comments -------------------------------------------

def test_index_and_line_numbers_skip_header_comments_and_blanks():
    t = parse('{"format": "rmaplab-trace", "version": 1, "page_size": 4096, "source": "x"}',
              "# comment", "", "   ", SPAWN, "   # indented comment", "\t",
              '{"op": "exit", "pid": 1}')
    assert [(e.index, e.line, e.op) for e in t.events] == [(0, 5, "spawn"), (1, 8, "exit")]
    assert t.header["source"] == "x" and t.page_size == 4096


def test_header_optional_and_crlf():
    t = parse_trace(SPAWN + "\r\n" + '{"op": "exit", "pid": 1}\r\n', "crlf.jsonl")
    assert t.header == {} and [e.line for e in t.events] == [1, 2]


def test_header_after_comment_is_still_first_object():
    t = parse("# hello", '{"format": "rmaplab-trace", "version": 1}', SPAWN)
    assert t.header["version"] == 1 and t.events[0].line == 3


def test_empty_trace():
    assert parse("# nothing").events == []


@pytest.mark.parametrize("header,why", [
    ('{"format": "rmaplab-trace", "version": 2}', "version 2 is newer"),
    ('{"format": "rmaplab-trace", "version": 99, "page_size": 4096}', "version 99 is newer"),
    ('{"format": "rmaplab-trace", "version": 0}', "bad header version"),
    ('{"format": "rmaplab-trace", "version": "1"}', "bad header version"),
    ('{"format": "other", "version": 1}', "not an rmaplab trace"),
    ('{"format": "rmaplab-trace", "version": 1, "page_size": 8192}', "page_size 8192"),
])
def test_bad_headers(header, why):
    e = bad("# c", header, SPAWN)
    assert str(e).startswith("t.jsonl:2: ") and why in str(e)


def test_header_not_first():
    e = bad(SPAWN, '{"format": "rmaplab-trace", "version": 1}')
    assert str(e) == "t.jsonl:2: a header is only allowed as the first object"


# -- files: plain, gzip, errors ---------------------------------------------------------

def test_gzip_reads_like_plain(tmp_path):
    plain = read_trace(str(DATA / "basic.jsonl"))
    gz = tmp_path / "basic.jsonl.gz"
    gz.write_bytes(gzip.compress((DATA / "basic.jsonl").read_bytes()))
    zipped = read_trace(str(gz))
    assert zipped.events == plain.events and zipped.header == plain.header
    assert read_trace(str(DATA / "basic.jsonl.gz")).events == plain.events


def test_missing_file():
    with pytest.raises(TraceError) as ei:
        read_trace("/nonexistent/trace.jsonl")
    assert str(ei.value).startswith("/nonexistent/trace.jsonl: cannot read")


def test_bad_gzip(tmp_path):
    p = tmp_path / "t.jsonl.gz"
    p.write_bytes(b"not gzip at all")
    with pytest.raises(TraceError) as ei:
        read_trace(str(p))
    assert str(ei.value).startswith(f"{p}: cannot read")


# -- every kind of bad line -----------------------------------------------------------

BAD_LINES = [
    # (line, fragment of the reason)
    ('{"op": "spawn", "pid": 1', "not valid JSON"),
    ("spawn 1", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('"text"', "expected a JSON object"),
    ('{"pid": 1}', 'event has no "op"'),
    ('{"op": "fly", "pid": 1}', "unknown op 'fly'"),
    ('{"op": 3}', "unknown op 3"),
    ('{"op": "munmap", "pid": 1, "addr": 0}', "munmap needs field 'len'"),
    ('{"op": "munmap", "pid": 1, "addr": 0, "len": 1, "lenght": 2}', "unknown field 'lenght'"),
    ('{"op": "munmap", "pid": "1", "addr": 0, "len": 1}', "pid must be a non-negative integer"),
    ('{"op": "munmap", "pid": -1, "addr": 0, "len": 1}', "pid must be a non-negative integer"),
    ('{"op": "mprotect", "pid": 1, "addr": 0, "len": 1, "prot": "rwx-"}', "bad prot 'rwx-'"),
    ('{"op": "mprotect", "pid": 1, "addr": 0, "len": 1, "prot": "wr-"}', "bad prot 'wr-'"),
    ('{"op": "mprotect", "pid": 1, "addr": 0, "len": 1, "prot": 3}', "bad prot 3"),
    ('{"op": "mmap", "pid": 1, "addr": null, "len": 1, "prot": "rw-", "flags": ["private", "anon"]}',
     "unknown mmap flag 'anon'"),
    ('{"op": "mmap", "pid": 1, "addr": null, "len": 1, "prot": "rw-", "flags": "private"}',
     "mmap flags must be a list"),
    ('{"op": "mmap", "pid": 1, "len": 1, "prot": "rw-", "flags": ["private"], "file": "lib"}',
     "mmap file must be null or"),
    ('{"op": "mmap", "pid": 1, "len": 1, "prot": "rw-", "flags": ["private"], "file": {"offset": 0}}',
     'mmap file needs a "name"'),
    ('{"op": "mmap", "pid": 1, "len": 1, "prot": "rw-", "flags": ["private"], "file": {"name": "nofile"}}',
     "unknown file 'nofile'"),
    ('{"op": "mremap", "pid": 1, "addr": 0, "old_len": 1, "new_len": 2, "flags": ["move"]}',
     "unknown mremap flag 'move'"),
    ('{"op": "mremap", "pid": 1, "addr": 0, "old_len": 1, "new_len": 2, "flags": ["maymove", "fixed"]}',
     'needs new_addr'),
    ('{"op": "madvise", "pid": 1, "addr": 0, "len": 1, "advice": "free"}', "unknown advice 'free'"),
    ('{"op": "touch", "pid": 1, "addr": 0, "access": "x"}', "access must be"),
    ('{"op": "touch", "pid": 1, "addr": 0}', "touch needs access"),
    ('{"op": "touch", "pid": 1, "addr": 0, "access": "w"}', "needs a token"),
    ('{"op": "touch", "pid": 1, "addr": 0, "access": "w", "token": 1.5}', "token must be"),
    ('{"op": "touch", "pid": 1, "addr": 0, "access": "w", "token": ["a"]}', "token must be"),
    ('{"op": "touch", "pid": 1, "addr": 0, "access": "r", "token": "a"}', "takes no token"),
    ('{"op": "munmap", "pid": 1, "addr": 0, "len": 1, "expect": 1.5}', "expect must be"),
    ('{"op": "munmap", "pid": 1, "addr": 0, "len": 1, "expect": [0]}', "expect must be"),
    ('{"op": "checkpoint", "name": 5}', "checkpoint name must be a string"),
    ('{"op": "file", "name": "", "size": 1}', "file name must be a non-empty string"),
    ('{"op": "reclaim"}', "reclaim needs field 'pages'"),
    # pid and file lifetimes
    ('{"op": "munmap", "pid": 2, "addr": 0, "len": 1}', "munmap: no process with pid 2"),
    ('{"op": "spawn", "pid": 1}', "spawn: pid 1 already exists"),
    ('{"op": "fork", "pid": 1, "child": 1}', "fork: child pid 1 already exists"),
    ('{"op": "fork", "pid": 3, "child": 4}', "fork: no process with pid 3"),
]


@pytest.mark.parametrize("line,why", BAD_LINES)
def test_bad_line_reports_file_and_line(line, why):
    e = bad("# header comment", SPAWN, "", line, SPAWN.replace("1", "9"))
    assert str(e).startswith("t.jsonl:4: "), str(e)
    assert why in str(e), str(e)
    assert e.line == 4 and e.filename == "t.jsonl"


def test_lifetimes_over_several_lines():
    # exit ends a pid; it may then be spawned again; a forked child lives
    parse(SPAWN, '{"op": "fork", "pid": 1, "child": 2}', '{"op": "exit", "pid": 1}',
          '{"op": "exec", "pid": 2}', SPAWN)
    e = bad(SPAWN, '{"op": "exit", "pid": 1}', '{"op": "brk", "pid": 1, "addr": 0}')
    assert str(e).startswith("t.jsonl:3: brk: no process with pid 1")
    e = bad('{"op": "file", "name": "f", "size": 1}', '{"op": "file", "name": "f", "size": 2}')
    assert str(e) == "t.jsonl:2: file 'f' is already declared"


def test_repeated_line_checked_each_time():
    # the reader parses a repeated line once; its pid check must still run per line
    e = bad(SPAWN, '{"op": "brk", "pid": 1, "addr": 0}', '{"op": "exit", "pid": 1}',
            '{"op": "brk", "pid": 1, "addr": 0}')
    assert str(e).startswith("t.jsonl:4: brk: no process with pid 1")


def test_nothing_runs_before_whole_trace_is_checked(tmp_path, capsys):
    # a bad last line stops the replay before the first event ran: no results
    p = tmp_path / "late.jsonl"
    p.write_text(SPAWN + "\n" + '{"op": "checkpoint", "name": "a"}\n' + "{oops\n")
    res = tmp_path / "res.jsonl"
    assert main(["replay", str(p), "--results", str(res)]) == 2
    assert not res.exists()
    err = capsys.readouterr().err
    assert err.startswith(f"rmaplab: {p}:3: not valid JSON") and err.count("\n") == 1


# -- through the CLI: exit status 2, one line, no traceback ------------------------------

@pytest.mark.parametrize("line,why", BAD_LINES[::3])
def test_cli_bad_line_exit_2(tmp_path, capsys, line, why):
    p = tmp_path / "bad.jsonl"
    p.write_text(SPAWN + "\n\n" + line + "\n")
    assert main(["replay", str(p)]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err and out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"rmaplab: {p}:3: ") and why in err


def test_cli_refuses_newer_version(tmp_path, capsys):
    p = tmp_path / "v2.jsonl"
    p.write_text('{"format": "rmaplab-trace", "version": 2}\n' + SPAWN + "\n")
    assert main(["replay", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rmaplab: {p}:1: trace format version 2 is newer than this reader")
    assert "Traceback" not in err and err.count("\n") == 1


def test_cli_missing_trace(capsys):
    assert main(["replay", "/nonexistent.jsonl"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rmaplab: /nonexistent.jsonl: cannot read") and "Traceback" not in err


def test_cli_bad_options(capsys):
    assert main(["replay", str(DATA / "basic.jsonl"), "--mem", "lots"]) == 2
    assert main(["replay", str(DATA / "basic.jsonl"), "--scheme", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("rmaplab: ") == 2


def test_truncated_gzip(tmp_path):
    p = tmp_path / "t.jsonl.gz"
    p.write_bytes(gzip.compress((DATA / "basic.jsonl").read_bytes())[:-30])
    with pytest.raises(TraceError) as ei:
        read_trace(str(p))
    assert str(ei.value).startswith(f"{p}: cannot read")


def test_byte_order_mark_is_ignored():
    t = parse_trace(b"\xef\xbb\xbf" + SPAWN.encode() + b"\n", "bom.jsonl")
    assert [(e.line, e.op) for e in t.events] == [(1, "spawn")]


def test_iterable_of_lines():
    t = parse_trace([SPAWN + "\n", "# c\n", '{"op": "exit", "pid": 1}\n'], "it")
    assert [(e.line, e.op) for e in t.events] == [(1, "spawn"), (3, "exit")]


@pytest.mark.parametrize("name", ["basic.jsonl", "basic.jsonl.gz"])
def test_cli_reads_stdin(monkeypatch, capsys, name):
    import io
    import sys
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO((DATA / name).read_bytes())))
    assert main(["replay", "-"]) == 0
    assert capsys.readouterr().out.startswith("<stdin>: 13 events, 1 mismatch")


def test_cli_stdin_error_names_stdin(monkeypatch, capsys):
    import io
    import sys
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"op": "spawn"}\n')))
    assert main(["replay", "-"]) == 2
    assert capsys.readouterr().err == "rmaplab: <stdin>:1: spawn needs field 'pid'\n"
