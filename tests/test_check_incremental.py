"""replay --check: incremental checks after each event, the whole state
every K events and at the end (check.incremental.EventChecker)."""

from __future__ import annotations

import json

import pytest

from rmaplab.cli.main import main
from rmaplab.config import Config
from rmaplab.kernel import Kernel
from rmaplab.trace.reader import parse_trace
from rmaplab.trace.replay import InvariantBroken, replay
from rmaplab.workloads.generators import WORKLOADS
from rmaplab.workloads.random_trace import random_trace

P = 4096
A = 0x1000_0000_0000
B = 0x1000_0010_0000


def _events(evs: list[dict]) -> list:
    return list(parse_trace([json.dumps(e) for e in evs], filename="t.jsonl").events)


def _two_processes(touches: int = 12) -> list:
    """pid 1 and pid 2 each map and write 8 pages, then pid 1 reads its
    pages ``touches`` times, one page a time."""
    ev = []
    for pid, a in ((1, A), (2, B)):
        ev += [{"op": "spawn", "pid": pid},
               {"op": "mmap", "pid": pid, "addr": a, "len": 8 * P, "prot": "rw-",
                "flags": ["private", "anonymous", "fixed"], "file": None},
               {"op": "touch", "pid": pid, "addr": a, "len": 8 * P, "access": "w",
                "token": f"p{pid}"}]
    ev += [{"op": "touch", "pid": 1, "addr": A + (i % 8) * P, "len": P, "access": "r"}
           for i in range(touches)]
    return _events(ev)


class _Corrupt:
    """A kernel whose ``touch`` of pid ``pid`` number ``when`` adds one to
    the mapcount of the frame at ``addr`` of ``victim`` afterwards."""

    def __init__(self, k: Kernel, pid: int, when: int, victim: int, addr: int) -> None:
        self.k, self.pid, self.when, self.victim, self.addr = k, pid, when, victim, addr
        self.n = 0
        self.real = k.touch
        k.touch = self.touch            # type: ignore[method-assign]

    def touch(self, pid: int, *a, **kw):
        res = self.real(pid, *a, **kw)
        if pid == self.pid:
            self.n += 1
            if self.n == self.when:
                pfn = int(self.k.mm(self.victim).pgd.get(self.addr >> 12)) >> 12
                self.k.mem.mapcount[pfn] += 1
        return res


def test_a_break_in_the_events_range_is_found_after_that_event():
    """pid 1's second touch (line 7) reads page 0, whose frame then breaks:
    the incremental check after that event walks page 0's frame."""
    evs = _two_processes()
    k = Kernel(Config())
    _Corrupt(k, pid=1, when=2, victim=1, addr=A)
    with pytest.raises(InvariantBroken) as e:
        replay(k, evs, check="incremental", check_every=1000, filename="t.jsonl")
    msg = str(e.value)
    assert msg.startswith("t.jsonl:7: invariant broken after touch") and "mapcount" in msg
    assert "full check" not in msg


def test_a_break_outside_the_range_is_found_by_the_next_full_check():
    """pid 1's reads never touch pid 2's pages: a corrupted frame of pid 2
    escapes the incremental checks and is found by the full check every
    K events, not later."""
    evs = _two_processes(touches=12)
    k = Kernel(Config())
    _Corrupt(k, pid=1, when=2, victim=2, addr=B)        # after event 7 (line 7)
    with pytest.raises(InvariantBroken) as e:
        replay(k, evs, check="incremental", check_every=5, filename="t.jsonl")
    msg = str(e.value)
    assert msg.startswith("t.jsonl:10:")                # the 10th event: the next full check
    assert "the full check found" in msg and "after line 5" in msg and "mapcount" in msg


def test_the_full_check_at_the_end_catches_what_the_increments_miss():
    evs = _two_processes(touches=12)
    k = Kernel(Config())
    _Corrupt(k, pid=1, when=2, victim=2, addr=B)
    with pytest.raises(InvariantBroken) as e:
        replay(k, evs, check="incremental", check_every=1000, filename="t.jsonl")
    assert str(e.value).startswith("t.jsonl:18:") and "the full check found" in str(e.value)


def test_check_full_finds_it_at_once():
    evs = _two_processes(touches=12)
    k = Kernel(Config())
    _Corrupt(k, pid=1, when=2, victim=2, addr=B)
    with pytest.raises(InvariantBroken) as e:
        replay(k, evs, check="full", filename="t.jsonl")
    assert str(e.value).startswith("t.jsonl:7:")


@pytest.mark.parametrize("scheme", ["anon_vma", "anonmm", "pte_chain", "none",
                                    "anon_vma_chain"])
@pytest.mark.parametrize("profile", ["2.6.7", "modern"])
def test_no_false_alarms_on_random_programs(scheme, profile):
    """Every invariant holds on these programs (the full check after every
    event agrees); the incremental checks must not cry wolf, with and
    without memory pressure."""
    for seed in range(6):
        evs = _events(random_trace(seed, events=50, procs=4))
        for mem, swap in ((None, None), (24, 16)):
            k = Kernel(Config(profile=profile, scheme=scheme, mem_pages=mem, swap_pages=swap))
            rep = replay(k, evs, check="incremental", check_every=10 ** 6)
            assert rep.full_checks == 1                 # the one at the end


@pytest.mark.parametrize("name", ["aim7", "kbuild", "realloc", "jit", "shared_server",
                                  "fork_chain"])
def test_no_false_alarms_on_the_workloads(name):
    small = {"aim7": dict(N=6, M=24, chunk=5, reads=4), "kbuild": dict(jobs=3, compiles=7,
             headers=10), "realloc": dict(buffers=3, steps=40, max_grow=6),
             "jit": dict(regions=24, flips=120),
             "shared_server": dict(workers=4, size=96, private=48, ops=10, chunk=8),
             "fork_chain": dict(generations=8, pages=16, write=4)}[name]
    evs = _events(WORKLOADS[name].generate(seed=2, **small))
    for profile in ("2.6.7", "modern"):
        k = Kernel(Config(profile=profile, scheme="anon_vma_chain"))
        replay(k, evs, check="incremental", check_every=10 ** 6)


def test_cli_check_modes(tmp_path, capsys):
    trace = tmp_path / "ss.jsonl"
    assert main(["generate", "shared_server", "-p", "workers=3", "-p", "size=64",
                 "-p", "private=32", "-p", "ops=6", "-p", "chunk=8", "-o", str(trace)]) == 0
    assert main(["replay", str(trace), "--check", "-q"]) == 0
    assert main(["replay", str(trace), "--check=full", "-q"]) == 0
    assert main(["replay", str(trace), "--check", "incremental", "--check-every", "3",
                 "-q"]) == 0
    assert main(["replay", str(trace), "--check-every", "0"]) == 2
    capsys.readouterr()
