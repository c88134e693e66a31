"""Live-kernel runs (rmaplab.trace.live) against this machine's kernel.

Every expectation is Linux behaviour (x86_64, 4 KiB pages, THP off in the
workers), checked through the session's own observations: a private
anonymous write fault gives each page its own frame, mapped once; fork
shares every present anonymous page (map count 2) until a write copies it
for the writer; a read fault on never-written anonymous memory maps the
shared zero page, which /proc/kpagecount shows with count 0; a file page
holds the token the file was declared with; shared anonymous memory is one
set of frames in every process of the tree.

Skipped, with the reason, unless Linux x86_64, root (frame numbers and map
counts need CAP_SYS_ADMIN) and a C compiler for the worker.
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from rmaplab.trace.reader import parse_trace

P = 4096
B = 0x2000_0000_0000          # far from the worker's image, stack and vDSO
ANON = ["private", "anonymous", "fixed"]


@pytest.fixture(scope="module", autouse=True)
def live_kernel() -> None:
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        pytest.skip(f"live-kernel runs need Linux x86_64, not {platform.system()} {platform.machine()}")
    if os.geteuid() != 0:
        pytest.skip("live-kernel tests need root (frame numbers and map counts)")
    if shutil.which("cc") is None:
        pytest.skip("live-kernel tests need a C compiler (cc) for the worker")
    from rmaplab.trace.live import LiveUnavailable, build_helper
    try:
        build_helper()
    except LiveUnavailable as e:
        pytest.skip(str(e))


def trace(*events: dict) -> Any:
    return parse_trace("\n".join(orjson.dumps(e).decode() for e in events), "live.jsonl")


def run(*events: dict, swap: str = "auto") -> tuple[list[dict], dict, Any]:
    """Step every event in one session: the results, the final observation
    and the session's notes."""
    from rmaplab.trace.live import LiveSession
    t = trace(*events)
    with LiveSession(t.filename, swap=swap) as s:
        results = [s.step(ev) for ev in t.events]
        state = s.observe(None, len(t.events))
        notes = list(s.notes)
    return results, state, notes


def proc(state: dict, pid: int) -> dict:
    (p,) = [p for p in state["processes"] if p["pid"] == pid]
    return p


def pages(state: dict, pid: int) -> dict[int, dict]:
    return {pg["addr"]: pg for pg in proc(state, pid)["pages"]}


def anon(pid: int, addr: int, n: int, prot: str = "rw-", flags: list[str] = ANON) -> dict:
    return {"op": "mmap", "pid": pid, "addr": addr, "len": n * P, "prot": prot, "flags": flags}


def write(pid: int, addr: int, n: int, token: Any) -> dict:
    return {"op": "touch", "pid": pid, "addr": addr, "len": n * P, "access": "w", "token": token}


def read(pid: int, addr: int, n: int = 1) -> dict:
    return {"op": "touch", "pid": pid, "addr": addr, "len": n * P, "access": "r"}


# -- anonymous memory, fork, COW ------------------------------------------------------

def test_private_write_touch_gives_distinct_frames_mapped_once() -> None:
    res, st, _ = run({"op": "spawn", "pid": 1}, anon(1, B, 4), write(1, B, 3, "a"),
                     read(1, B, 3))
    assert res[1]["result"] == B
    assert res[2]["result"] == "ok" and "read" not in res[2]
    assert res[3]["read"] == ["a", "a", "a"]
    pg = pages(st, 1)
    assert sorted(pg) == [B, B + P, B + 2 * P]          # the fourth page has no pte
    assert len({p["frame"] for p in pg.values()}) == 3
    for p in pg.values():
        assert p["state"] == "present" and p["mapcount"] == 1
        assert p["token"] == "a" and p["zero_page"] is False
    (m,) = proc(st, 1)["maps"]
    assert (m["start"], m["end"], m["perms"], m["pgoff"], m["file"], m["anon_vma"]) == \
        (B, B + 4 * P, "rw-p", None, None, None)
    assert {"rd", "wr"} <= set(m["vmflags"])


def test_fork_shares_frames_with_mapcount_2() -> None:
    _, st, _ = run({"op": "spawn", "pid": 1}, anon(1, B, 2), write(1, B, 2, "p"),
                   {"op": "fork", "pid": 1, "child": 7})
    parent, child = pages(st, 1), pages(st, 7)
    assert [p["pid"] for p in st["processes"]] == [1, 7]
    assert sorted(parent) == sorted(child) == [B, B + P]
    for a in parent:
        assert parent[a]["frame"] == child[a]["frame"]
        assert parent[a]["mapcount"] == child[a]["mapcount"] == 2
        assert child[a]["token"] == "p"


def test_child_write_copies_the_page_for_the_writer() -> None:
    from rmaplab.trace.live import LiveSession
    t = trace({"op": "spawn", "pid": 1}, anon(1, B, 2), write(1, B, 2, "old"),
              {"op": "fork", "pid": 1, "child": 2}, write(2, B, 1, "new"), read(1, B, 2))
    with LiveSession(t.filename) as s:
        for ev in t.events[:4]:
            s.step(ev)
        shared = pages(s.observe(None, 4), 1)[B]["frame"]
        s.step(t.events[4])
        res = s.step(t.events[5])
        st = s.observe(None, 6)
    parent, child = pages(st, 1), pages(st, 2)
    assert res["read"] == ["old", "old"]
    assert parent[B]["frame"] == shared and parent[B]["mapcount"] == 1
    assert child[B]["frame"] != shared and child[B]["mapcount"] == 1
    assert child[B]["token"] == "new" and parent[B]["token"] == "old"
    # the page nobody wrote is still shared
    assert parent[B + P]["frame"] == child[B + P]["frame"]
    assert parent[B + P]["mapcount"] == 2


def test_read_of_never_written_memory_maps_the_zero_page() -> None:
    res, st, _ = run({"op": "spawn", "pid": 1}, anon(1, B, 2), read(1, B, 2))
    assert res[2] == {"event": 2, "line": 3, "op": "touch", "pid": 1, "result": "ok",
                      "read": [None, None]}
    pg = pages(st, 1)
    assert pg[B]["frame"] == pg[B + P]["frame"]
    for p in pg.values():
        assert p["zero_page"] is True and p["mapcount"] == 0 and p["token"] is None


# -- signals and errors ------------------------------------------------------------------

def test_touch_signals_and_the_worker_lives_on() -> None:
    res, st, _ = run({"op": "spawn", "pid": 1}, anon(1, B, 2, "r--"),
                     read(1, B + 0x10_0000),               # nothing mapped there
                     write(1, B, 1, "x"),                  # r--
                     write(1, B - P, 2, "y"),              # unmapped, then mapped
                     read(1, B, 2))
    assert [r["result"] for r in res[2:]] == ["SIGSEGV", "SIGSEGV", "SIGSEGV", "ok"]
    assert "read" not in res[2]
    assert res[5]["read"] == [None, None]
    assert all(p["zero_page"] for p in pages(st, 1).values())


def test_file_page_past_end_of_file_is_sigbus() -> None:
    from rmaplab.trace.live import UNRECOGNISED
    res, _, _ = run({"op": "file", "name": "f", "size": 2 * P + 10}, {"op": "spawn", "pid": 1},
                    {"op": "mmap", "pid": 1, "addr": B, "len": 4 * P, "prot": "r--",
                     "flags": ["private", "fixed"], "file": {"name": "f", "offset": 0}},
                    read(1, B, 4), read(1, B, 3))
    assert res[3]["result"] == "SIGBUS" and "read" not in res[3]
    # page 2 holds the first 10 bytes of its encoding only
    assert res[4]["read"] == ["f:0", "f:1", UNRECOGNISED]


def test_errno_results_and_expect() -> None:
    res, _, _ = run({"op": "spawn", "pid": 1}, anon(1, B, 2),
                    {"op": "munmap", "pid": 1, "addr": B, "len": 0},
                    anon(1, B + 1, 1),
                    anon(1, B, 1, flags=["private", "anonymous", "fixed_noreplace"]),
                    {"op": "mprotect", "pid": 1, "addr": B, "len": P, "prot": "r--",
                     "expect": 0},
                    {"op": "munmap", "pid": 1, "addr": B, "len": P, "expect": "EINVAL"})
    assert [r["result"] for r in res[2:]] == ["EINVAL", "EINVAL", "EEXIST", 0, 0]
    assert "match" not in res[5] and "expect" not in res[5]
    assert res[6]["expect"] == "EINVAL" and res[6]["match"] is False


# -- files and shared memory -----------------------------------------------------------------

def test_file_mapping_reads_the_declared_tokens() -> None:
    res, st, _ = run({"op": "file", "name": "data", "size": 4 * P},
                     {"op": "spawn", "pid": 1},
                     {"op": "mmap", "pid": 1, "addr": B, "len": 2 * P, "prot": "r--",
                      "flags": ["shared", "fixed"], "file": {"name": "data", "offset": 2 * P}},
                     read(1, B, 2))
    assert res[3]["read"] == ["data:2", "data:3"]
    (m,) = proc(st, 1)["maps"]
    assert (m["perms"], m["file"], m["pgoff"]) == ("r--s", "data", 2)
    assert [p["token"] for p in proc(st, 1)["pages"]] == ["data:2", "data:3"]


def fmap(pid: int, addr: int, n: int, prot: str, flags: list[str], name: str, offset: int,
         mode: str) -> dict:
    return {"op": "mmap", "pid": pid, "addr": addr, "len": n * P, "prot": prot,
            "flags": flags + ["fixed"], "file": {"name": name, "offset": offset, "open": mode}}


def test_open_modes_are_the_descriptors_modes() -> None:
    res, _, _ = run({"op": "file", "name": "f", "size": 4 * P}, {"op": "spawn", "pid": 1},
                    fmap(1, B, 1, "rw-", ["shared"], "f", 0, "r"),
                    fmap(1, B, 1, "r--", ["shared"], "f", 0, "r"),
                    fmap(1, B + P, 1, "r--", ["private"], "f", 0, "w"),
                    fmap(1, B + P, 1, "rw-", ["shared"], "f", 0, "rw"))
    assert [r["result"] for r in res[2:]] == ["EACCES", B, "EACCES", B + P]


def test_file_vmas_merge_only_through_one_description() -> None:
    _, st, _ = run({"op": "file", "name": "f", "size": 8 * P}, {"op": "spawn", "pid": 1},
                   fmap(1, B, 1, "r--", ["private"], "f", 0, "rw"),
                   fmap(1, B + P, 1, "r--", ["private"], "f", P, "rw"),
                   fmap(1, B + 2 * P, 1, "r--", ["private"], "f", 2 * P, "r"))
    assert [(m["start"], m["end"], m["pgoff"]) for m in proc(st, 1)["maps"]] == \
        [(B, B + 2 * P, 0), (B + 2 * P, B + 3 * P, 2)]


def test_a_tree_shares_one_open_file_description() -> None:
    import ctypes
    from rmaplab.trace.live import LiveSession
    t = trace({"op": "file", "name": "f", "size": P}, {"op": "spawn", "pid": 1},
              {"op": "fork", "pid": 1, "child": 2},
              fmap(2, B, 1, "r--", ["shared"], "f", 0, "rw"),     # the child first
              fmap(1, B, 1, "r--", ["shared"], "f", 0, "rw"),
              {"op": "spawn", "pid": 3}, fmap(3, B, 1, "r--", ["shared"], "f", 0, "rw"))
    with LiveSession(t.filename) as s:
        for ev in t.events:
            assert s.step(ev)["result"] in (None, B)
        w = {pid: s._workers[pid] for pid in (1, 2, 3)}
        kcmp = ctypes.CDLL(None, use_errno=True).syscall

        def same(a: int, b: int) -> bool:     # kcmp(KCMP_FILE): 0 when one struct file
            return kcmp(312, w[a].kpid, w[b].kpid, 0, w[a].fds[("f", "rw")],
                        w[b].fds[("f", "rw")]) == 0
        assert same(1, 2) and not same(1, 3)


def test_shared_anonymous_memory_is_shared_across_fork() -> None:
    res, st, _ = run({"op": "spawn", "pid": 1},
                     anon(1, B, 1, flags=["shared", "anonymous", "fixed"]),
                     {"op": "fork", "pid": 1, "child": 2},
                     write(2, B, 1, "from-child"), read(1, B))
    assert res[4]["read"] == ["from-child"]
    parent, child = pages(st, 1)[B], pages(st, 2)[B]
    assert parent["frame"] == child["frame"] and parent["mapcount"] == 2
    (m,) = proc(st, 1)["maps"]
    assert m["perms"] == "rw-s" and m["file"] is None


def test_exit_removes_the_process_and_its_mappings() -> None:
    _, st, _ = run({"op": "spawn", "pid": 1}, anon(1, B, 1), write(1, B, 1, "t"),
                   {"op": "fork", "pid": 1, "child": 2}, {"op": "exit", "pid": 2})
    assert [p["pid"] for p in st["processes"]] == [1]
    assert pages(st, 1)[B]["mapcount"] == 1


def test_exec_replaces_the_address_space() -> None:
    from rmaplab.trace.live import LiveSession
    t = trace({"op": "spawn", "pid": 1}, anon(1, B, 1), write(1, B, 1, "t"),
              {"op": "exec", "pid": 1}, anon(1, B + P, 1))
    with LiveSession(t.filename) as s:
        res = [s.step(ev) for ev in t.events[:3]]
        before = s.foreign(1)
        res += [s.step(ev) for ev in t.events[3:]]
        st = s.observe(None, 5)
        assert s.foreign(1) == before
    assert res[3]["result"] is None and res[4]["result"] == B + P
    assert [(m["start"], m["end"]) for m in proc(st, 1)["maps"]] == [(B + P, B + 2 * P)]
    assert proc(st, 1)["pages"] == []


def test_mremap_dontunmap_leaves_the_source_mapped_and_empty() -> None:
    res, st, _ = run({"op": "spawn", "pid": 1}, anon(1, B, 1), write(1, B, 1, "moved"),
                     {"op": "mremap", "pid": 1, "addr": B, "old_len": P, "new_len": P,
                      "flags": ["maymove", "fixed", "dontunmap"], "new_addr": B + 0x10_0000},
                     read(1, B + 0x10_0000))
    assert res[3]["result"] == B + 0x10_0000
    assert res[4]["read"] == ["moved"]
    assert [(m["start"], m["end"]) for m in proc(st, 1)["maps"]] == \
        [(B, B + P), (B + 0x10_0000, B + 0x10_0000 + P)]
    assert sorted(pages(st, 1)) == [B + 0x10_0000]


def test_pageout_moves_an_anonymous_page_to_swap() -> None:
    from rmaplab.trace.live import LiveSession
    t = trace({"op": "spawn", "pid": 1}, anon(1, B, 2), write(1, B, 2, "swapped"),
              {"op": "madvise", "pid": 1, "addr": B, "len": P, "advice": "pageout"},
              {"op": "checkpoint", "name": "out"}, read(1, B, 2))
    with LiveSession(t.filename) as s:
        res = [s.step(ev) for ev in t.events[:5]]
        if any(n.startswith("no swap") for n in s.notes):
            pytest.skip(f"no swap here: {s.notes}")
        out = pages(s.observe("out", 4), 1)
        res.append(s.step(t.events[5]))
        back = pages(s.observe(None, 6), 1)
    assert res[3]["result"] == 0
    assert out[B] == {"addr": B, "state": "swap", "frame": None, "mapcount": None,
                      "token": None, "zero_page": False}
    assert out[B + P]["state"] == "present"
    assert res[5]["read"] == ["swapped", "swapped"]
    assert back[B]["state"] == "present" and back[B]["token"] == "swapped"
    assert "rmaplab-live-" not in Path("/proc/swaps").read_text()      # swapped off


def test_prot_none_page_token_is_still_observed() -> None:
    _, st, _ = run({"op": "spawn", "pid": 1}, anon(1, B, 1), write(1, B, 1, 42),
                   {"op": "mprotect", "pid": 1, "addr": B, "len": P, "prot": "---"})
    (p,) = proc(st, 1)["pages"]
    assert p["state"] == "present" and p["token"] == 42


# -- dumps, the worker's own mappings, refusal ---------------------------------------------------

def test_run_live_results_and_dumps(tmp_path: Path) -> None:
    from rmaplab.trace.live import run_live
    t = trace({"op": "spawn", "pid": 2}, {"op": "spawn", "pid": 1}, anon(1, B, 1),
              write(1, B, 1, "c"), {"op": "checkpoint", "name": "mid"},
              {"op": "munmap", "pid": 1, "addr": B, "len": P, "expect": "EINVAL"})
    out_res, out_dump = tmp_path / "r.jsonl", tmp_path / "d.jsonl"
    with open(out_res, "wb") as fr, open(out_dump, "wb") as fd:
        rep = run_live(t, results=fr, dump=fd)
    results = [orjson.loads(x) for x in out_res.read_bytes().splitlines()]
    dumps = [orjson.loads(x) for x in out_dump.read_bytes().splitlines()]
    assert rep.events == 6 and rep.elapsed > 0
    assert [r["event"] for r in results] == list(range(6))
    assert results[4] == {"event": 4, "line": 5, "op": "checkpoint", "result": None}
    assert results[5]["match"] is False and rep.mismatches == [results[5]]
    assert [(d["name"], d["event"]) for d in dumps] == [("mid", 4), (None, 6)]
    mid = dumps[0]
    assert [p["pid"] for p in mid["processes"]] == [1, 2]
    assert proc(mid, 1)["maps"] == [{"start": B, "end": B + P, "perms": "rw-p", "pgoff": None,
                                     "file": None, "anon_vma": None}]
    (pg,) = proc(mid, 1)["pages"]
    assert set(pg) == {"addr", "state", "frame", "mapcount", "token", "zero_page"}
    assert pg["token"] == "c" and pg["mapcount"] == 1
    assert proc(dumps[1], 1)["maps"] == [] and proc(dumps[1], 2)["maps"] == []


def test_the_workers_own_mappings_are_foreign() -> None:
    from rmaplab.trace.live import LiveSession
    t = trace({"op": "spawn", "pid": 1}, {"op": "brk", "pid": 1, "addr": 0})
    with LiveSession(t.filename) as s:
        s.step(t.events[0])
        foreign = s.foreign(1)
        brk0 = s.start_brk(1)
        grown = s.step(t.events[1])["result"]
        st = s.observe(None, 1)
    names = {f["name"] for f in foreign}
    assert {"[stack]", "[vdso]"} <= names
    assert any(f["perms"] == "r-xp" and f["name"].startswith("/") for f in foreign)
    assert grown == brk0 and brk0 % P == 0
    assert proc(st, 1)["maps"] == [] and proc(st, 1)["pages"] == []


def test_brk_heap_is_a_trace_vma() -> None:
    from rmaplab.trace.live import LiveSession
    t = trace({"op": "spawn", "pid": 1})
    with LiveSession(t.filename) as s:
        s.step(t.events[0])
        brk0 = s.start_brk(1)
        t2 = trace({"op": "spawn", "pid": 1}, {"op": "brk", "pid": 1, "addr": brk0 + 2 * P},
                   write(1, brk0, 2, "h"))
        res = [s.step(ev) for ev in t2.events[1:]]
        st = s.observe(None, 3)
    assert res[0]["result"] == brk0 + 2 * P and res[1]["result"] == "ok"
    assert [(m["start"], m["end"], m["pgoff"]) for m in proc(st, 1)["maps"]] == \
        [(brk0, brk0 + 2 * P, None)]


def test_map_fixed_over_the_workers_image_is_refused() -> None:
    from rmaplab.trace.live import LiveError, LiveSession
    with LiveSession("live.jsonl") as s:
        t = trace({"op": "spawn", "pid": 1})
        s.step(t.events[0])
        image = min(f["start"] for f in s.foreign(1))
        stack = next(f for f in s.foreign(1) if f["name"] == "[stack]")
        bad = trace({"op": "spawn", "pid": 1},
                    anon(1, image, 1),
                    write(1, stack["end"] - P, 1, "smash"))
        with pytest.raises(LiveError, match=r"^live\.jsonl:2: mmap of .* own mapping"):
            s.step(bad.events[1])
        with pytest.raises(LiveError, match=r"^live\.jsonl:3: touch .*\[stack\]"):
            s.step(bad.events[2])
        # the worker is intact
        ok = trace({"op": "spawn", "pid": 1}, anon(1, B, 1), read(1, B))
        assert [s.step(ev)["result"] for ev in ok.events[1:]] == [B, "ok"]


def test_close_kills_workers_and_removes_files() -> None:
    from rmaplab.trace.live import LiveSession
    t = trace({"op": "file", "name": "f", "size": P}, {"op": "spawn", "pid": 1},
              {"op": "fork", "pid": 1, "child": 2})
    s = LiveSession(t.filename)
    for ev in t.events:
        s.step(ev)
    kpids = [w.kpid for w in s._workers.values()]
    tmp = s._res.tmp
    assert tmp.is_dir() and all(Path(f"/proc/{k}").exists() for k in kpids)
    s.close()
    s.close()
    assert not tmp.exists()
    deadline = time.monotonic() + 5
    while any(_alive(k) for k in kpids) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(_alive(k) for k in kpids)


def _alive(kpid: int) -> bool:
    """Running, not a zombie."""
    try:
        return Path(f"/proc/{kpid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_observe_of_a_thousand_pages_is_fast() -> None:
    from rmaplab.trace.live import LiveSession
    t = trace({"op": "spawn", "pid": 1}, anon(1, B, 1000), write(1, B, 1000, "x"))
    with LiveSession(t.filename) as s:
        for ev in t.events:
            s.step(ev)
        t0 = time.perf_counter()
        st = s.observe(None, 2)
        took = time.perf_counter() - t0
    assert len(pages(st, 1)) == 1000
    assert took < 0.1


def test_interrupted_session_cleans_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from rmaplab.trace import live
    t = trace({"op": "spawn", "pid": 1}, anon(1, B, 1))
    with pytest.raises(KeyboardInterrupt):
        with live.LiveSession(t.filename) as s:
            s.step(t.events[0])
            tmp, kpid = s._res.tmp, s._workers[1].kpid

            def interrupted(*a: Any, **k: Any) -> Any:
                raise KeyboardInterrupt
            monkeypatch.setattr(live._Worker, "call", interrupted)
            s.step(t.events[1])
    assert not tmp.exists() and not _alive(kpid)


def test_build_helper_reasons(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from rmaplab.trace import live
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(live.shutil, "which", lambda name: None)
    with pytest.raises(live.LiveUnavailable, match="no C compiler"):
        live.build_helper()
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(live, "_CC_FLAGS", live._CC_FLAGS + ("-fno-such-option",))
    with pytest.raises(live.LiveUnavailable, match="cannot build the live worker: .*no-such-option"):
        live.build_helper()
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    exe = live.build_helper()
    assert exe.parent == tmp_path / "rmaplab" and exe.name.startswith("live-helper-")
    assert live.build_helper() == exe


def test_a_worker_killed_under_the_session_is_a_live_error() -> None:
    import signal
    from rmaplab.trace.live import LiveError, LiveSession
    t = trace({"op": "spawn", "pid": 1}, anon(1, B, 1))
    with LiveSession(t.filename) as s:
        s.step(t.events[0])
        w = s._workers[1]
        os.kill(w.kpid, signal.SIGKILL)
        w.wait_gone(5.0)
        with pytest.raises(LiveError, match=r"^live\.jsonl:2: mmap: the live worker of pid 1 died"):
            s.step(t.events[1])
        assert s.observe(None, 2)["processes"] == []
