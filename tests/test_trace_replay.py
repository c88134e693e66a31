"""Replay (spec/trace-v1.md): per-event results, expect mismatches, state
dumps, --check, --stats, and the CLI around them.

The expected values are worked out from Linux 2.6.7/2.6.11 behaviour, not
copied from the model's output:

- the first mmap of a 64-bit x86_64 process lands at TASK_UNMAPPED_BASE =
  PAGE_ALIGN(TASK_SIZE / 3) = 0x2aaaaaaab000, the next one right after it
  (bottom-up search from free_area_cache);
- a private anonymous VMA's vm_pgoff is its start page (rmap 39);
- a read fault on never-written anonymous memory maps the zero page, which
  is not counted in mapcount and reads as zeros (null);
- fork shares every page (mapcount 2) and the child's VMA shares the
  parent's anon_vma; a write in one process copies the page for the writer;
- munmap/mprotect of page-aligned mapped ranges return 0; an unaligned
  munmap is EINVAL; a write to a read-only VMA is SIGSEGV; a read of a file
  page wholly past end of file is SIGBUS; a file mapping without a file is
  EBADF.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import orjson
import pytest

from rmaplab.cli.main import main
from rmaplab.kernel import Kernel
from rmaplab.trace.reader import TraceError, parse_trace, read_trace
from rmaplab.trace.replay import InvariantBroken, replay

DATA = Path(__file__).parent / "data" / "traces"
BASIC = str(DATA / "basic.jsonl")
FILES = str(DATA / "files.jsonl")
P = 4096
B = 0x2AAAAAAAB000          # TASK_UNMAPPED_BASE, x86_64 2.6.11


def run(path: str, **kw):
    k = Kernel()
    results: list[dict] = []
    dumps: list[dict] = []
    rep = replay(k, read_trace(path), results=results, dump=dumps, **kw)
    return k, rep, results, dumps


# -- results --------------------------------------------------------------------------

BASIC_RESULTS = [
    {"event": 0, "line": 3, "op": "spawn", "pid": 1, "result": None},
    {"event": 1, "line": 5, "op": "mmap", "pid": 1, "result": B},
    {"event": 2, "line": 6, "op": "touch", "pid": 1, "result": "ok"},
    # pages 0 and 1 hold "a"; page 2 was never written: zeros
    {"event": 3, "line": 7, "op": "touch", "pid": 1, "result": "ok", "read": ["a", "a", None]},
    {"event": 4, "line": 8, "op": "fork", "pid": 1, "result": None},
    {"event": 5, "line": 9, "op": "checkpoint", "result": None},
    {"event": 6, "line": 10, "op": "touch", "pid": 2, "result": "ok"},
    {"event": 7, "line": 12, "op": "munmap", "pid": 1, "result": 0},
    # the trace claims EINVAL; an aligned mprotect of a mapped page succeeds
    {"event": 8, "line": 13, "op": "mprotect", "pid": 1, "result": 0,
     "expect": "EINVAL", "match": False},
    {"event": 9, "line": 14, "op": "touch", "pid": 1, "result": "SIGSEGV"},
    {"event": 10, "line": 15, "op": "munmap", "pid": 1, "result": "EINVAL"},
    # the child wrote 5 over its copy of page 0; page 1 is still the shared "a"
    {"event": 11, "line": 16, "op": "touch", "pid": 2, "result": "ok", "read": [5, "a", None]},
    {"event": 12, "line": 17, "op": "checkpoint", "result": None},
]


def test_line_numbers_of_basic_trace_are_what_the_test_claims():
    # independent of the reader: the event lines of the file, counted by hand
    lines = Path(BASIC).read_text().split("\n")
    event_lines = [i for i, ln in enumerate(lines, 1)
                   if ln.strip() and not ln.strip().startswith("#") and '"op"' in ln]
    assert event_lines == [r["line"] for r in BASIC_RESULTS]


def test_basic_results_exact():
    _, rep, results, _ = run(BASIC)
    assert results == BASIC_RESULTS
    assert rep.events == 13 and rep.mismatches == 1
    assert rep.first_mismatches == [BASIC_RESULTS[8]]
    # key order as in the spec: event, line, op, pid, result, ...
    assert list(results[3]) == ["event", "line", "op", "pid", "result", "read"]
    assert list(results[8]) == ["event", "line", "op", "pid", "result", "expect", "match"]


FILES_RESULTS = [
    {"event": 0, "line": 3, "op": "file", "result": None},
    {"event": 1, "line": 4, "op": "spawn", "pid": 7, "result": None},
    {"event": 2, "line": 5, "op": "mmap", "pid": 7, "result": B},
    # offset 4096: the mapping starts at file page 1
    {"event": 3, "line": 6, "op": "touch", "pid": 7, "result": "ok", "read": ["lib:1", "lib:2"]},
    # the third page is file page 3, past the end of a 10000-byte file: no "read"
    {"event": 4, "line": 7, "op": "touch", "pid": 7, "result": "SIGBUS"},
    {"event": 5, "line": 8, "op": "fork", "pid": 7, "result": None},
    {"event": 6, "line": 9, "op": "touch", "pid": 8, "result": "ok"},
    {"event": 7, "line": 10, "op": "touch", "pid": 8, "result": "ok", "read": ["lib:1", "patched"]},
    # a private write is invisible to the other process
    {"event": 8, "line": 11, "op": "touch", "pid": 7, "result": "ok", "read": ["lib:1", "lib:2"]},
    {"event": 9, "line": 12, "op": "mmap", "pid": 7, "result": B + 4 * P},
    {"event": 10, "line": 13, "op": "mmap", "pid": 7, "result": "EBADF"},
    {"event": 11, "line": 14, "op": "checkpoint", "result": None},
    {"event": 12, "line": 15, "op": "exit", "pid": 8, "result": None},
    {"event": 13, "line": 16, "op": "exit", "pid": 7, "result": None},
    {"event": 14, "line": 17, "op": "spawn", "pid": 7, "result": None},
]


def test_files_results_exact():
    _, rep, results, _ = run(FILES)
    assert results == FILES_RESULTS
    assert rep.mismatches == 0


def test_results_file_through_cli(tmp_path, capsys):
    out = tmp_path / "res.jsonl"
    assert main(["replay", BASIC, "--results", str(out)]) == 0
    lines = out.read_bytes().splitlines()
    assert [json.loads(x) for x in lines] == BASIC_RESULTS
    # integers are JSON integers, not strings
    assert b'"result":46912496119808' in lines[1].replace(b" ", b"")
    text = capsys.readouterr().out
    assert "13 events, 1 mismatch with expect" in text
    assert f"{BASIC}:13: event 8 mprotect: got 0, expected \"EINVAL\"" in text


def test_results_to_stdout_keeps_stdout_clean(capsys):
    assert main(["replay", BASIC, "--results", "-"]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(x) for x in out.splitlines()] == BASIC_RESULTS
    assert "13 events" in err


def test_quiet_prints_nothing(capsys):
    assert main(["replay", BASIC, "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")


def test_mismatch_is_not_an_error_and_is_listed(tmp_path, capsys):
    p = tmp_path / "mm.jsonl"
    evs = [{"op": "spawn", "pid": 1}]
    # eight wrong expectations: munmap of nothing returns 0 in Linux
    evs += [{"op": "munmap", "pid": 1, "addr": B + i * P, "len": P, "expect": "ENOMEM"}
            for i in range(8)]
    p.write_text("\n".join(json.dumps(e) for e in evs) + "\n")
    assert main(["replay", str(p)]) == 0
    out = capsys.readouterr().out
    assert "9 events, 8 mismatches with expect" in out
    for line in (2, 3, 4, 5, 6):
        assert f"{p}:{line}: event {line - 1} munmap: got 0, expected \"ENOMEM\"" in out
    assert f"{p}:7:" not in out and "and 3 more" in out


def test_expect_in_hex_matches_integer_result(tmp_path):
    t = parse_trace('{"op": "spawn", "pid": 1}\n'
                    '{"op": "brk", "pid": 1, "addr": 0, "expect": "0x1"}\n'
                    '{"op": "mmap", "pid": 1, "addr": null, "len": 4096, "prot": "rw-", '
                    '"flags": ["private", "anonymous"], "expect": "0x2aaaaaaab000"}\n', "x")
    res: list = []
    rep = replay(Kernel(), t, results=res)
    assert rep.mismatches == 1 and res[1]["expect"] == 1 and res[1]["match"] is False
    assert "match" not in res[2]


def test_results_to_binary_and_text_files():
    t = read_trace(BASIC)
    bio, sio = io.BytesIO(), io.StringIO()
    replay(Kernel(), t, results=bio)
    replay(Kernel(), t, results=sio)
    assert [orjson.loads(x) for x in bio.getvalue().splitlines()] == BASIC_RESULTS
    assert sio.getvalue().encode() == bio.getvalue()


# -- state dumps ----------------------------------------------------------------------

def _by_addr(proc):
    return {p["addr"]: p for p in proc["pages"]}


def test_basic_dumps():
    _, _, _, dumps = run(BASIC)
    assert [(d["name"], d["event"]) for d in dumps] == [("after-fork", 5), ("end", 12), (None, 13)]
    assert list(dumps[0]) == ["name", "event", "processes"]

    fork = dumps[0]
    assert [p["pid"] for p in fork["processes"]] == [1, 2]
    av = fork["processes"][0]["maps"][0]["anon_vma"]
    assert av is not None
    for proc in fork["processes"]:
        assert list(proc) == ["pid", "maps", "pages"]
        assert proc["maps"] == [{"start": B, "end": B + 3 * P, "perms": "rw-p",
                                 "pgoff": B >> 12, "file": None, "anon_vma": av}]
        assert [p["addr"] for p in proc["pages"]] == [B, B + P, B + 2 * P]
        for p in proc["pages"]:
            assert list(p) == ["addr", "state", "frame", "mapcount", "token", "zero_page"]
        a0, a1, z = proc["pages"]
        assert (a0["state"], a0["mapcount"], a0["token"], a0["zero_page"]) == ("present", 2, "a", False)
        assert (a1["state"], a1["mapcount"], a1["token"], a1["zero_page"]) == ("present", 2, "a", False)
        assert a0["frame"] != a1["frame"]
        # the zero page: shared, never counted, reads as zeros
        assert (z["state"], z["mapcount"], z["token"], z["zero_page"]) == ("present", 0, None, True)
    p1, p2 = (_by_addr(p) for p in fork["processes"])
    assert all(p1[a]["frame"] == p2[a]["frame"] for a in p1)      # fork shares every page

    end = dumps[1]
    p1, p2 = end["processes"]
    assert p1["maps"] == [
        {"start": B, "end": B + P, "perms": "r--p", "pgoff": B >> 12, "file": None, "anon_vma": av},
        {"start": B + 2 * P, "end": B + 3 * P, "perms": "rw-p", "pgoff": (B >> 12) + 2,
         "file": None, "anon_vma": av}]
    assert p2["maps"] == fork["processes"][1]["maps"]
    f1, f2, fork1 = _by_addr(p1), _by_addr(p2), _by_addr(fork["processes"][0])
    assert sorted(f1) == [B, B + 2 * P]                           # page 1 unmapped in pid 1
    # the parent kept the original frame of page 0; the child wrote its own copy
    assert f1[B]["frame"] == fork1[B]["frame"] and f1[B]["mapcount"] == 1 and f1[B]["token"] == "a"
    assert f2[B]["frame"] != f1[B]["frame"] and f2[B]["mapcount"] == 1 and f2[B]["token"] == 5
    # page 1 now only in the child
    assert f2[B + P]["frame"] == fork1[B + P]["frame"] and f2[B + P]["mapcount"] == 1
    assert f1[B + 2 * P]["zero_page"] and f2[B + 2 * P]["zero_page"]

    final = dumps[2]
    assert final["processes"] == end["processes"]


def test_files_dumps():
    _, _, _, dumps = run(FILES)
    mapped, final = dumps
    assert (mapped["name"], mapped["event"]) == ("mapped", 11)
    p7, p8 = mapped["processes"]
    assert p7["maps"] == [
        {"start": B, "end": B + 4 * P, "perms": "rw-p", "pgoff": 1, "file": "lib", "anon_vma": None},
        # shared anonymous memory: an unnamed shmem file, written as null
        {"start": B + 4 * P, "end": B + 6 * P, "perms": "rw-s", "pgoff": 0, "file": None,
         "anon_vma": None}]
    assert len(p8["maps"]) == 1 and p8["maps"][0]["anon_vma"] is not None   # the COW made one
    assert {k: v for k, v in p8["maps"][0].items() if k != "anon_vma"} == \
        {k: v for k, v in p7["maps"][0].items() if k != "anon_vma"}
    a7, a8 = _by_addr(p7), _by_addr(p8)
    assert sorted(a7) == [B, B + P]          # the SIGBUS page never got a pte
    assert a7[B]["token"] == "lib:1" and a7[B]["frame"] == a8[B]["frame"] and a7[B]["mapcount"] == 2
    assert a7[B + P]["token"] == "lib:2" and a7[B + P]["mapcount"] == 1
    assert a8[B + P]["token"] == "patched" and a8[B + P]["frame"] != a7[B + P]["frame"]
    assert final == {"name": None, "event": 15, "processes": [{"pid": 7, "maps": [], "pages": []}]}


def test_dump_through_cli(tmp_path):
    out = tmp_path / "dump.jsonl"
    assert main(["replay", BASIC, "--dump", str(out), "-q"]) == 0
    dumps = [json.loads(x) for x in out.read_text().splitlines()]
    assert dumps == run(BASIC)[3]


def test_on_checkpoint_callback():
    seen = []
    replay(Kernel(), read_trace(BASIC), on_checkpoint=lambda name, i, k: seen.append((name, i, k.pids())))
    assert seen == [("after-fork", 5, [1, 2]), ("end", 12, [1, 2])]


def test_swap_pages_in_dump():
    # with 16 frames and swap, writing 40 pages must push some out to swap
    from rmaplab.config import Config
    k = Kernel(Config(mem_pages=16, swap_pages=256))
    t = parse_trace("\n".join([
        '{"op": "spawn", "pid": 1}',
        '{"op": "mmap", "pid": 1, "addr": null, "len": 163840, "prot": "rw-", "flags": ["private", "anonymous"]}',
        '{"op": "touch", "pid": 1, "addr": "0x2aaaaaaab000", "len": 163840, "access": "w", "token": "s"}',
        '{"op": "touch", "pid": 1, "addr": "0x2aaaaaaab000", "len": 163840, "access": "r"}',
    ]), "swap.jsonl")
    res, dumps = [], []
    replay(k, t, results=res, dump=dumps, check=True)
    assert res[2]["result"] == "ok" and res[3]["read"] == ["s"] * 40
    pages = dumps[-1]["processes"][0]["pages"]
    assert len(pages) == 40 and all(p["token"] == "s" for p in pages)
    swapped = [p for p in pages if p["state"] == "swap"]
    present = [p for p in pages if p["state"] == "present"]
    assert swapped, "16 frames cannot hold 40 pages"
    assert all(p["frame"] is None and p["mapcount"] is None and not p["zero_page"] for p in swapped)
    assert len({p["frame"] for p in present}) == len(present)


# -- --check --------------------------------------------------------------------------

@pytest.mark.parametrize("path", [BASIC, FILES])
def test_check_finds_nothing_on_good_traces(path, capsys):
    assert main(["replay", path, "--check", "-q"]) == 0
    assert capsys.readouterr() == ("", "")


def test_check_reports_broken_invariant_with_line():
    # corrupt the state at the first checkpoint (line 9): a frame's mapcount
    def corrupt(name, index, k):
        pte = k.mm(1).pgd.get(B >> 12)
        k.mem.mapcount[pte >> 12] += 5
    with pytest.raises(InvariantBroken) as ei:
        replay(Kernel(), read_trace(BASIC), check=True, on_checkpoint=corrupt)
    assert str(ei.value).startswith(f"{BASIC}:9: invariant broken after checkpoint: ")


def test_cli_check_exit_1(monkeypatch, capsys):
    import rmaplab.check as check

    calls = []

    def fake_validate(k):
        calls.append(1)
        if len(calls) == 3:
            from rmaplab.errors import InvariantError
            raise InvariantError("made up for the test")
        return None
    monkeypatch.setattr(check, "validate", fake_validate)
    monkeypatch.setattr(check, "check_rmap_complete", lambda k, scan=None: 0)
    assert main(["replay", BASIC, "--check=full"]) == 1
    err = capsys.readouterr().err
    # the third event is the write touch on line 6
    assert err == f"rmaplab: {BASIC}:6: invariant broken after touch: made up for the test\n"


def test_runtime_trace_error_has_line():
    # fork can fail at run time (ENOMEM with a full memory); the child then
    # never exists. Simulate with a kernel whose fork refuses.
    class K(Kernel):
        def fork(self, pid, child):
            from rmaplab.errors import SyscallError
            raise SyscallError("ENOMEM")
    t = parse_trace('{"op": "spawn", "pid": 1}\n{"op": "fork", "pid": 1, "child": 2}\n'
                    '{"op": "brk", "pid": 2, "addr": 0}\n', "rt.jsonl")
    res: list = []
    with pytest.raises(TraceError) as ei:
        replay(K(), t, results=res)
    assert str(ei.value).startswith("rt.jsonl:3: brk: ")
    assert res[1]["result"] == "ENOMEM"


# -- stats and summary -----------------------------------------------------------------

def test_stats_json(capsys):
    assert main(["replay", BASIC, "--stats"]) == 0
    out, err = capsys.readouterr()
    st = json.loads(out)
    assert st["processes"] == 2
    # frames in use at the end: pid 1 page 0, child's copy of page 0, page 1
    assert st["mem"]["pages_used"] == 3 and st["mem"]["pages_total"] is None
    assert st["swap"] == {"pages_used": 0, "pages_total": None}
    assert st["counters"]["fault_wp_copy"] >= 1
    assert "13 events" in err                    # the summary went to stderr


def test_summary_numbers(capsys):
    assert main(["replay", BASIC, "--mem", "64M"]) == 0
    out = capsys.readouterr().out
    assert "13 events, 1 mismatch with expect" in out
    assert "processes alive: 2; frames used: 3 (of 16384)" in out
    assert "time: " in out


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--maps-offset" in out and "--check" in out


# -- schemes ----------------------------------------------------------------------------

def _schemes():
    from rmaplab.config import SCHEMES
    return SCHEMES


@pytest.mark.parametrize("scheme", _schemes())
def test_results_do_not_depend_on_scheme(scheme):
    # the scheme changes how the kernel finds mappings, never what a process sees
    from rmaplab.config import Config
    for path, want in ((BASIC, BASIC_RESULTS), (FILES, FILES_RESULTS)):
        res: list = []
        replay(Kernel(Config(scheme=scheme)), read_trace(path), results=res, check=True)
        assert res == want


@pytest.mark.parametrize("scheme", _schemes())
def test_dumps_do_not_depend_on_scheme_but_anon_vma(scheme):
    from rmaplab.config import Config

    def strip(d):
        # anon_vma is the scheme's own; frame numbers only matter as sharing
        names: dict = {}
        for p in d["processes"]:
            for m in p["maps"]:
                m.pop("anon_vma")
            for pg in p["pages"]:
                pg["frame"] = names.setdefault(pg["frame"], len(names))
        return d
    ref = [strip(d) for d in run(BASIC)[3]]
    dumps: list = []
    replay(Kernel(Config(scheme=scheme)), read_trace(BASIC), dump=dumps)
    assert [strip(d) for d in dumps] == ref


# -- reclaim ------------------------------------------------------------------------------

RECLAIM = ('{"op": "spawn", "pid": 1}\n{"op": "reclaim", "pages": 12, "expect": 7}\n'
           '{"op": "reclaim", "pages": "0x5"}\n')


def test_reclaim_result_is_what_kernel_reclaim_returns():
    asked = []

    class K(Kernel):
        def reclaim(self, pages):
            asked.append(pages)
            return 7
    res: list = []
    rep = replay(K(), parse_trace(RECLAIM, "r.jsonl"), results=res)
    assert asked == [12, 5]
    assert res[1] == {"event": 1, "line": 2, "op": "reclaim", "result": 7}
    assert rep.mismatches == 0


def test_reclaim_without_kernel_support_frees_nothing():
    class K(Kernel):
        def __getattribute__(self, name):
            if name == "reclaim":
                raise AttributeError(name)
            return super().__getattribute__(name)
    res: list = []
    rep = replay(K(), parse_trace(RECLAIM, "r.jsonl"), results=res)
    assert [r["result"] for r in res[1:]] == [0, 0] and rep.mismatches == 1


def test_reclaim_on_real_kernel_frees_frames():
    # whatever reclaim frees must show in the frames in use
    from rmaplab.config import Config
    k = Kernel(Config(mem_pages=256, swap_pages=256))
    t = parse_trace('{"op": "spawn", "pid": 1}\n'
                    '{"op": "mmap", "pid": 1, "addr": null, "len": 409600, "prot": "rw-", '
                    '"flags": ["private", "anonymous"]}\n'
                    '{"op": "touch", "pid": 1, "addr": "0x2aaaaaaab000", "len": 409600, '
                    '"access": "w", "token": 1}\n'
                    '{"op": "checkpoint", "name": "before"}\n'
                    '{"op": "reclaim", "pages": 32}\n', "rk.jsonl")
    used = {}
    res: list = []
    replay(k, t, results=res, check=True,
           on_checkpoint=lambda name, i, kk: used.setdefault(name, kk.mem.nr_used))
    freed = res[4]["result"]
    assert isinstance(freed, int) and 0 <= freed
    assert used["before"] - k.mem.nr_used == freed


def test_swap_page_token_comes_from_swap_cache_when_cached():
    # After fork and swap-out, the parent's read brings the pages back into
    # the swap cache while the child's ptes still hold the swap entries. A
    # swap pte whose entry is in the swap cache holds what that cached page
    # holds (the slot may be stale); make the slot differ to see which is read.
    from rmaplab.config import Config
    from rmaplab.trace.dump import pages_of
    k = Kernel(Config(mem_pages=64, swap_pages=256))
    t = parse_trace("\n".join([
        '{"op": "spawn", "pid": 1}',
        '{"op": "mmap", "pid": 1, "addr": null, "len": 40960, "prot": "rw-", "flags": ["private", "anonymous"]}',
        '{"op": "touch", "pid": 1, "addr": "0x2aaaaaaab000", "len": 40960, "access": "w", "token": "old"}',
        '{"op": "fork", "pid": 1, "child": 2}',
        '{"op": "reclaim", "pages": 10}',
        '{"op": "touch", "pid": 1, "addr": "0x2aaaaaaab000", "len": 40960, "access": "r"}',
    ]), "sc.jsonl")
    replay(k, t)
    mm = k.mm(2)
    vpns, ptes = mm.pgd.populated(B >> 12, (B >> 12) + 10)
    cached = [(int(v), int(p) >> 12) for v, p in zip(vpns, ptes)
              if not p & 1 and int(p) >> 12 in k.ctx.swapper_space]
    if not cached:
        pytest.skip("the model's reclaim left no swap pte of the child in the swap cache")
    vpn, entry = cached[0]
    k.ctx.swap.contents[entry] = k.ctx.contents.intern("stale slot")
    page = {p["addr"]: p for p in pages_of(k, 2)}[vpn << 12]
    assert page["state"] == "swap" and page["token"] == "old"


def test_final_dump_event_follows_last_event_replayed():
    # replaying a trace in two parts: the final dump of each part names the
    # index where the next event would run
    evs = read_trace(BASIC).events
    k = Kernel()
    first, second = [], []
    replay(k, evs[:6], dump=first)
    replay(k, evs[6:], dump=second)
    assert first[-1]["event"] == 6 and first[-1]["name"] is None
    assert second[-1]["event"] == 13
    assert second[-1] == run(BASIC)[3][-1]
    empty: list = []
    replay(Kernel(), [], dump=empty)
    assert empty == [{"name": None, "event": 0, "processes": []}]
