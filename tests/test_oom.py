"""Running out of memory is a modelled event, never an exception.

Each path by which the model calls the OOM killer (``MmContext.reserve``:
direct reclaim fails ten times; ``MmContext.guard``: the model's own
ceiling; the killable system calls MAP_LOCKED, mlock and mremap of locked
memory; any other call that faults pages in, such as modern's mprotect of a
locked VMA) is driven under every scheme with tiny memory, no swap and a
workload bigger than memory. The victim is the process with the largest
total_vm (``select_bad_process``); the event it was in gets "SIGKILL"; the
replay goes on with the others; the victim's later events are skipped
(result "SIGKILL", "skipped": true, counted); the state stays valid.
"""

from __future__ import annotations

import json

import pytest

from rmaplab.check import check_no_leaks, check_rmap_complete, validate
from rmaplab.cli.main import main
from rmaplab.config import Config
from rmaplab.kernel import Kernel
from rmaplab.rmap import registry
from rmaplab.trace.reader import parse_trace
from rmaplab.trace.replay import replay

P = 4096
BASE = 0x1000_0000_0000
SCHEMES = [s for s in registry.names() if s in ("anon_vma", "anonmm", "pte_chain", "none",
                                                 "anon_vma_chain", "pure_anon_vma")]


def _map(pid: int, addr: int, pages: int, prot: str = "rw-", extra: tuple = ()) -> dict:
    return {"op": "mmap", "pid": pid, "addr": addr, "len": pages * P, "prot": prot,
            "flags": ["private", "anonymous", "fixed", *extra], "file": None}


def _touch(pid: int, addr: int, pages: int, access: str = "w") -> dict:
    e = {"op": "touch", "pid": pid, "addr": addr, "len": pages * P, "access": access}
    if access == "w":
        e["token"] = f"t{pid}"
    return e


def _replay(events: list[dict], **cfg) -> tuple[Kernel, object, list[dict]]:
    k = Kernel(Config(**cfg))
    out: list[dict] = []
    rep = replay(k, parse_trace([json.dumps(e) for e in events], filename="oom").events,
                 results=out)
    check_rmap_complete(k, validate(k))
    return k, rep, out


def _bystander(pid: int = 9) -> list[dict]:
    """A small process that must survive the OOM and keep running."""
    a = BASE + (1 << 36)
    return [{"op": "spawn", "pid": pid}, _map(pid, a, 4), _touch(pid, a, 4)]


def _after(pid: int = 9) -> list[dict]:
    """The bystander reads its pages back after the kill."""
    return [_touch(pid, BASE + (1 << 36), 4, "r")]


def _check(out: list[dict], k: Kernel, victim: int, killed_at: int, later: int) -> None:
    assert k.oom_killed[0] == victim and victim not in k.pids() and k.stat.oom_kills >= 1
    assert out[killed_at]["result"] == "SIGKILL" and "skipped" not in out[killed_at]
    skipped = [o for o in out if o.get("skipped")]
    assert len(skipped) == later and all(o["pid"] == victim and o["result"] == "SIGKILL"
                                         for o in skipped)
    assert out[-1]["result"] == "ok" and out[-1]["read"] == ["t9"] * 4   # the others go on
    assert 9 in k.pids()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_fault_path_reserve_kills_the_biggest_writer(scheme):
    """Direct reclaim cannot free anything (no swap): after ten failed
    passes out_of_memory kills the largest total_vm, here the writer."""
    ev = _bystander() + [{"op": "spawn", "pid": 1}, _map(1, BASE, 100), _touch(1, BASE, 100),
                         _touch(1, BASE, 1, "r"), {"op": "exit", "pid": 1}] + _after()
    k, rep, out = _replay(ev, scheme=scheme, mem_pages=64, swap_pages=0)
    _check(out, k, victim=1, killed_at=5, later=2)
    assert rep.skipped == 2 and rep.mismatches == 0
    assert k.stat.direct_reclaim >= 10


@pytest.mark.parametrize("scheme", SCHEMES)
def test_fault_path_victim_is_another_process(scheme):
    """The victim need not be the process faulting: a bigger idle process
    goes, the writer's touch completes, and a fork by the victim later is
    skipped (the child it would have made is skipped too)."""
    ev = _bystander() + [{"op": "spawn", "pid": 1}, _map(1, BASE, 30), _touch(1, BASE, 30),
                         _map(1, BASE + (1 << 30), 200),          # big total_vm, unfaulted
                         {"op": "spawn", "pid": 2}, _map(2, BASE, 30), _touch(2, BASE, 30),
                         {"op": "fork", "pid": 1, "child": 3}, _touch(3, BASE, 1, "r"),
                         _touch(2, BASE, 30, "r")] + _after()
    k, rep, out = _replay(ev, scheme=scheme, mem_pages=64, swap_pages=0)
    assert k.oom_killed == [1]
    assert out[9]["result"] == "ok"                    # pid 2's write went through
    assert [o["op"] for o in out if o.get("skipped")] == ["fork", "touch"]
    assert out[12]["read"] == ["t2"] * 30 and out[-1]["read"] == ["t9"] * 4


@pytest.mark.parametrize("scheme", SCHEMES)
def test_guard_path_unlimited_memory_meets_the_model_ceiling(scheme):
    """Without --mem the model still stops at max_mem_pages (guard)."""
    ev = _bystander() + [{"op": "spawn", "pid": 1}, _map(1, BASE, 2048), _touch(1, BASE, 2048),
                         _touch(1, BASE, 1, "r")] + _after()
    k, rep, out = _replay(ev, scheme=scheme, max_mem_pages=1024)
    _check(out, k, victim=1, killed_at=5, later=1)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("call", ["mmap_locked", "mlock", "mremap_locked"])
def test_killable_calls_return_sigkill(scheme, call):
    """MAP_LOCKED, mlock and mremap growing locked memory fault pages in
    inside the call; the OOM killer takes the caller: the call's result is
    SIGKILL."""
    ev = _bystander() + [{"op": "spawn", "pid": 1}]
    if call == "mmap_locked":
        ev.append(_map(1, BASE, 200, extra=("locked",)))
    elif call == "mlock":
        ev += [_map(1, BASE, 200), {"op": "mlock", "pid": 1, "addr": BASE, "len": 200 * P}]
    else:
        ev += [_map(1, BASE, 16, extra=("locked",)),
               {"op": "mremap", "pid": 1, "addr": BASE, "old_len": 16 * P, "new_len": 200 * P,
                "flags": ["maymove"]}]
    ev += [_touch(1, BASE, 1, "r")] + _after()
    k, rep, out = _replay(ev, scheme=scheme, mem_pages=64, swap_pages=0)
    _check(out, k, victim=1, killed_at=len(ev) - 3, later=1)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_any_other_faulting_call_is_killable(scheme):
    """modern's mprotect making a locked VMA writable faults it in
    (mm_populate): an OOM kill there gives "SIGKILL" too, through replay's
    catch-all, not an exception."""
    ev = _bystander() + [{"op": "spawn", "pid": 1}, _map(1, BASE, 200, "r--"),
                         {"op": "mlock", "pid": 1, "addr": BASE, "len": 200 * P},
                         {"op": "mprotect", "pid": 1, "addr": BASE, "len": 200 * P, "prot": "rw-"},
                         _touch(1, BASE, 1, "r")] + _after()
    k, rep, out = _replay(ev, profile="modern", scheme=scheme, mem_pages=64, swap_pages=0)
    _check(out, k, victim=1, killed_at=6, later=1)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_aim7_bigger_than_memory_runs_to_the_end(scheme):
    """A whole workload far bigger than memory, without swap: every
    process is eventually killed or exits, nothing leaks."""
    from rmaplab.workloads.generators import aim7
    ev = aim7(N=8, M=32, chunk=8, reads=4, seed=3)
    k, rep, out = _replay(ev, scheme=scheme, mem_pages=64, swap_pages=0)
    assert len(out) == len(ev) and k.stat.oom_kills >= 3
    assert rep.skipped == sum(1 for o in out if o.get("skipped")) > 0
    for p in k.pids():
        k.exit(p)
    check_no_leaks(k)


# -- the commands ---------------------------------------------------------------------

def _trace(tmp_path) -> str:
    path = tmp_path / "big.jsonl"
    assert main(["generate", "aim7", "-p", "N=6", "-p", "M=64", "-p", "reads=4",
                 "-o", str(path)]) == 0
    return str(path)


def test_replay_runs_out_of_memory_and_exits_0(tmp_path, capsys):
    trace = _trace(tmp_path)
    capsys.readouterr()
    res = tmp_path / "res.jsonl"
    assert main(["replay", trace, "--mem", "256K", "--swap", "0", "--results", str(res)]) == 0
    out = capsys.readouterr().out
    assert "OOM killer:" in out and "skipped" in out
    results = [json.loads(x) for x in res.read_text().splitlines()]
    assert any(r.get("skipped") for r in results)


def test_compare_reports_oom_kills_per_scheme(tmp_path, capsys):
    trace = _trace(tmp_path)
    capsys.readouterr()
    assert main(["compare", trace, "--mem", "256K", "--swap", "0", "--json", "-q"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["scheme"] for r in rows} >= set(SCHEMES)
    assert all(r["oom_kills"] > 0 and r["oom_kills"] == len(r["oom_killed"]) for r in rows)
    assert main(["compare", trace, "--mem", "256K", "--swap", "0", "-q",
                 "--scheme", "anon_vma,anon_vma_chain"]) == 0
    text = capsys.readouterr().out
    assert "OOM kills" in text and "OOM killer:" in text


def test_sweep_reports_oom_kills(capsys):
    assert main(["sweep", "aim7", "--vary", "mem=256K,1M", "--swap", "0", "-p", "N=6",
                 "-p", "M=64", "--scheme", "anon_vma,anonmm", "--jobs", "2", "--json",
                 "-q"]) == 0
    pts = json.loads(capsys.readouterr().out)
    kills = {(p["scheme"], p["mem"]): p["oom_kills"] for p in pts}
    assert kills[("anon_vma", 64)] > 0 and kills[("anonmm", 64)] > 0
    assert main(["sweep", "aim7", "--vary", "mem=256K", "--swap", "0", "-p", "N=6",
                 "-p", "M=64", "--scheme", "anon_vma", "--jobs", "1", "-q"]) == 0
    assert "OOM kills" in capsys.readouterr().out
