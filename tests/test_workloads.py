"""The built-in workload generators (rmaplab.workloads.generators) and
``rmaplab generate``.

Every workload, with small parameters, must give a trace that the reader
accepts and that replays under every scheme of rmaplab.config.SCHEMES
without a difference from the expects it carries, with the invariants and
rmap completeness holding at every checkpoint and at the end.
"""

from __future__ import annotations

import gzip

import pytest

import rmaplab.config
from rmaplab.check import check_rmap_complete, validate
from rmaplab.cli.main import main
from rmaplab.config import Config
from rmaplab.kernel import Kernel
from rmaplab.trace.reader import parse_trace, read_trace
from rmaplab.trace.replay import replay
from rmaplab.workloads.generators import (PAGE, TASK_UNMAPPED_BASE, WORKLOADS, aim7,
                                          fork_chain, kbuild, realloc, shared_server,
                                          trace_lines)

#: small parameters for each workload (everything still happens: forks,
#: moves, splits, exec, growsdown stacks, reclaim)
SMALL = {
    "aim7": dict(N=6, M=24, chunk=5, reads=4, reclaim=40),
    "kbuild": dict(jobs=3, compiles=7, headers=10),
    "realloc": dict(buffers=3, steps=40, max_grow=6),
    "jit": dict(regions=24, flips=120),
    "shared_server": dict(workers=4, size=96, private=48, ops=10, chunk=8),
    "fork_chain": dict(generations=8, pages=16, write=4),
}

#: the schemes, read when the tests are collected (others add schemes)
SCHEMES = rmaplab.config.SCHEMES


def test_every_workload_has_small_parameters():
    assert set(SMALL) == set(WORKLOADS)


def _parsed(events: list[dict], name: str = "<gen>"):
    return parse_trace(list(trace_lines(events, f"test {name}")), name)


def _checked_replay(events: list[dict], scheme: str, name: str, **cfg):
    """Replay with the checks at every checkpoint and at the end; returns
    (kernel, report, results)."""
    k = Kernel(Config(scheme=scheme, **cfg))
    seen = []

    def at_checkpoint(cp: str, index: int, kern: Kernel) -> None:
        check_rmap_complete(kern, validate(kern))
        seen.append(cp)

    results: list[dict] = []
    report = replay(k, _parsed(events, name), results=results, on_checkpoint=at_checkpoint)
    check_rmap_complete(k, validate(k))
    assert seen, f"{name} has no checkpoint"
    return k, report, results


# -- every workload under every scheme ---------------------------------------------------------

@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("name", list(SMALL))
def test_replays_without_mismatch(name, scheme):
    events = WORKLOADS[name].generate(seed=3, **SMALL[name])
    k, report, results = _checked_replay(events, scheme, name)
    assert report.events == len(events)
    assert report.mismatches == 0, report.first_mismatches
    # the expects are really there: on every mapping call and every touch
    for e in events:
        if e["op"] in ("mmap", "munmap", "mprotect", "mremap", "brk", "touch"):
            assert "expect" in e, e
    assert sum(1 for r in results if r["op"] == "touch") > 0


@pytest.mark.parametrize("scheme", SCHEMES)
def test_aim7_under_memory_pressure(scheme):
    """Swap-out and swap-in between the COW phase and the reads: the
    expects still hold (swap is unlimited) and the data survive."""
    events = aim7(N=5, M=32, chunk=8, reads=32, seed=1)
    k, report, results = _checked_replay(events, scheme, "aim7", mem_pages=96)
    assert report.mismatches == 0, report.first_mismatches
    assert k.stat.pswpout > 0
    for r in results:
        if r["op"] == "touch" and "read" in r:
            want = "p" if r["pid"] == 1 else f"c{r['pid']}"
            assert set(r["read"]) == {want}, r


def test_placement_is_fixed():
    """Every mmap is MAP_FIXED; every mremap either grows in place or moves
    with MREMAP_FIXED (so each expect is certain)."""
    for name, w in WORKLOADS.items():
        for e in w.generate(seed=0, **SMALL[name]):
            if e["op"] == "mmap":
                assert "fixed" in e["flags"] and e["expect"] == e["addr"]
            if e["op"] == "mremap":
                assert e["expect"] == e.get("new_addr", e["addr"])


# -- determinism ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SMALL))
def test_same_seed_same_events(name):
    w = WORKLOADS[name]
    assert w.generate(seed=11, **SMALL[name]) == w.generate(seed=11, **SMALL[name])
    assert w.generate(**SMALL[name]) == w.generate(seed=0, **SMALL[name])


@pytest.mark.parametrize("name", list(SMALL))
def test_different_seed_different_events(name):
    """Every workload makes random choices (interleaving, sizes, pages)."""
    w = WORKLOADS[name]
    assert w.generate(seed=1, **SMALL[name]) != w.generate(seed=2, **SMALL[name])


def test_defaults_are_the_registered_ones():
    for w in WORKLOADS.values():
        assert w.generate(seed=5) == w.func(seed=5, **w.defaults)
        assert set(w.docs) == set(w.defaults) and all(w.docs.values())
        assert w.description and "\n" not in w.description


# -- parameter validation ------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SMALL))
def test_each_parameter_is_checked(name):
    w = WORKLOADS[name]
    for p in w.params:
        # None asks for the generator's own choice where a parameter is auto
        bad = ["many", 1.5 if p.kind is not float else "x"] + ([] if p.auto else [None])
        if p.kind is not bool:
            bad.append(True)
            if p.lo is not None:
                bad.append(p.lo - 1)
            if p.hi is not None:
                bad.append(p.hi * 2 + 1)
        for v in bad:
            with pytest.raises(ValueError, match=rf"\b{p.name}\b"):
                w.generate(seed=0, **{p.name: v})


@pytest.mark.parametrize("call, param", [
    (lambda: aim7(M=4, reads=5), "reads"),
    (lambda: fork_chain(pages=4, write=5), "write"),
    (lambda: shared_server(size=8, chunk=9), "chunk"),
    (lambda: shared_server(size=64, private=8, chunk=9), "chunk"),
    (lambda: kbuild(nothing=1), "nothing"),
    (lambda: realloc(seed="x"), "seed"),
])
def test_parameters_checked_together(call, param):
    with pytest.raises(ValueError, match=rf"\b{param}\b"):
        call()


def test_parse_params_from_text():
    w = WORKLOADS["shared_server"]
    assert w.parse_params(["size=64M", "workers=3", "chunk=0x10"]) == \
        {"size": 16384, "workers": 3, "chunk": 16}
    assert WORKLOADS["realloc"].parse_params(["fork=false", "interleave=0.25"]) == \
        {"fork": False, "interleave": 0.25}
    for bad, param in [(["size=1.5M"], "size"), (["workers=-1"], "workers"),
                       (["fork=maybe"], "fork"), (["workers"], "workers"),
                       (["colour=red"], "colour")]:
        ws = WORKLOADS["realloc"] if param == "fork" else w
        with pytest.raises(ValueError, match=rf"\b{param}\b"):
            ws.parse_params(bad)


# -- the command line -------------------------------------------------------------------------------

def test_cli_writes_the_generated_trace(tmp_path, capsys):
    out = tmp_path / "fc.jsonl"
    assert main(["generate", "fork_chain", "-p", "generations=5", "-p", "pages=8",
                 "--seed", "4", "-o", str(out)]) == 0
    tr = read_trace(str(out))
    assert tr.header["format"] == "rmaplab-trace"
    assert "fork_chain" in tr.header["source"] and "--seed 4" in tr.header["source"]
    assert tr.events == _parsed(fork_chain(generations=5, pages=8, seed=4), str(out)).events
    assert "events" in capsys.readouterr().err


def test_cli_gzip_is_deterministic(tmp_path):
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    for p in (a, b):
        assert main(["generate", "jit", "-p", "regions=5", "-p", "flips=9", "-o", str(p)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert gzip.decompress(a.read_bytes()).startswith(b'{"format":"rmaplab-trace"')
    assert len(read_trace(str(a)).events) > 0


def test_cli_list(capsys):
    assert main(["generate", "--list"]) == 0
    text = capsys.readouterr().out
    for w in WORKLOADS.values():
        assert w.name in text and w.description in text
        for p in w.params:
            assert f"{p.name}=" in text


@pytest.mark.parametrize("argv, word", [
    (["generate", "aim7", "-p", "N=0"], "N"),
    (["generate", "aim7", "-p", "M=lots"], "M"),
    (["generate", "aim7", "-p", "M=4", "-p", "reads=9"], "reads"),
    (["generate", "kbuild", "-p", "colour=red"], "colour"),
    (["generate", "kbuild", "-p", "jobs"], "jobs"),
    (["generate", "nosuch"], "nosuch"),
    (["generate", "realloc", "--seed", "pi"], "seed"),
    (["generate"], "workload"),
])
def test_cli_bad_input_exits_2_in_one_line(tmp_path, capsys, argv, word):
    out = tmp_path / "t.jsonl"
    assert main(argv + ["-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and word in err and "Traceback" not in err
    assert not out.exists()


def test_cli_needs_output(capsys):
    assert main(["generate", "aim7"]) == 2
    assert "-o" in capsys.readouterr().err


# -- what the workloads expose -------------------------------------------------------------------

def _pfn(k: Kernel, pid: int, addr: int) -> int:
    pte = int(k.mm(pid).pgd.get(addr >> 12))
    assert pte & 1
    return pte >> 12


def _walk_cost(k: Kernel, pfn: int) -> tuple[int, list]:
    before = k.stat.rmap_vmas_visited
    found = k.scheme.rmap_walk(pfn)
    return k.stat.rmap_vmas_visited - before, found


def _run_to(events: list[dict], scheme: str, checkpoint: str) -> Kernel:
    stop = next(i for i, e in enumerate(events)
                if e["op"] == "checkpoint" and e["name"] == checkpoint)
    k = Kernel(Config(scheme=scheme))
    replay(k, _parsed(events[:stop + 1]))
    return k


@pytest.mark.parametrize("n", [1, 7, 30])
def test_aim7_child_private_page_walk_visits_n_plus_1_vmas_under_anon_vma(n):
    """The 2010 problem: one anon_vma for the parent and its N children, so
    a walk of a page only one child maps visits all N+1 VMAs."""
    events = aim7(N=n, M=8, chunk=3, reads=0, seed=2)
    k = _run_to(events, "anon_vma", "children-cowed")
    for child in (2, n + 1):
        for page in (0, 7):
            pfn = _pfn(k, child, TASK_UNMAPPED_BASE + page * PAGE)
            visited, found = _walk_cost(k, pfn)
            assert visited == n + 1
            assert [(mm.owner, a) for mm, a in found] == [(child, TASK_UNMAPPED_BASE + page * PAGE)]


@pytest.mark.skipif("anon_vma_chain" not in SCHEMES, reason="anon_vma_chain not registered")
def test_aim7_anon_vma_chain_walk_is_constant():
    """anon_vma_chain: a child's COWed page is in the child's own anon_vma."""
    n = 20
    events = aim7(N=n, M=8, chunk=3, reads=0, seed=2)
    k = _run_to(events, "anon_vma_chain", "children-cowed")
    visited, found = _walk_cost(k, _pfn(k, 5, TASK_UNMAPPED_BASE))
    assert [mm.owner for mm, _ in found] == [5]
    assert visited <= 2


@pytest.mark.parametrize("scheme", SCHEMES)
def test_realloc_moves_and_grows_in_place(scheme):
    events = realloc(buffers=3, steps=40, max_grow=6, seed=3)
    moves = [e for e in events if e["op"] == "mremap" and "new_addr" in e]
    in_place = [e for e in events if e["op"] == "mremap" and "new_addr" not in e]
    assert moves and in_place
    k, report, results = _checked_replay(events, scheme, "realloc")
    assert k.stat.mremap_moves == len(moves)
    # the data moved with the buffers: every read of the child sees only
    # tokens written to that buffer
    for r in results:
        if r["op"] == "touch" and "read" in r and r["pid"] == 2:
            bufs = {t.split(".")[0] for t in r["read"]}
            assert len(bufs) == 1 and bufs.pop().startswith("b"), r


@pytest.mark.skipif("anonmm" not in SCHEMES, reason="anonmm not registered")
def test_realloc_after_fork_makes_anonmm_copy():
    with_fork = _checked_replay(realloc(buffers=3, steps=40, seed=3), "anonmm", "r")[0]
    without = _checked_replay(realloc(buffers=3, steps=40, fork=False, seed=3), "anonmm", "r")[0]
    assert with_fork.stat.mremap_cows > 0
    assert without.stat.mremap_cows == 0
    assert _checked_replay(realloc(buffers=3, steps=40, seed=3), "anon_vma",
                           "r")[0].stat.mremap_cows == 0


def test_jit_splits_and_merges():
    k, report, _ = _checked_replay(WORKLOADS["jit"].generate(seed=1, **SMALL["jit"]),
                                   "anon_vma", "jit")
    assert k.stat.vma_splits > 0 and k.stat.vma_merges > 0


def test_kbuild_shape():
    """make forks each compiler, which execs; never more than ``jobs``
    compilers at once; all exit; make stays."""
    jobs, compiles = 3, 9
    events = kbuild(jobs=jobs, compiles=compiles, headers=6, seed=5)
    alive, most = {1}, 0
    forked = execed = 0
    for e in events:
        if e["op"] == "fork":
            assert e["pid"] == 1
            alive.add(e["child"])
            forked += 1
        elif e["op"] == "exec":
            execed += 1
        elif e["op"] == "exit":
            alive.remove(e["pid"])
        most = max(most, len(alive) - 1)
    assert forked == execed == compiles and most == jobs and alive == {1}
    assert any(e["op"] == "brk" for e in events)
    assert any(e["op"] == "mmap" and "growsdown" in e["flags"] for e in events)


def test_shared_server_workers_writes_reach_the_server():
    events = shared_server(workers=3, size=64, private=32, ops=12, chunk=8, seed=4)
    k, report, results = _checked_replay(events, "anon_vma", "shared_server")
    shared_read, private_read = [r for r in results if r["op"] == "touch" and r["pid"] == 1
                                 and "read" in r][-2:]
    assert any(t.startswith("w") for t in shared_read["read"])
    assert set(private_read["read"]) == {"m"}           # the workers' COWs stay theirs


def test_fork_chain_keeps_one_anon_vma_under_anon_vma():
    events = fork_chain(generations=10, pages=8, write=2, seed=1)
    k, report, _ = _checked_replay(events, "anon_vma", "fork_chain")
    assert k.pids() == [11]
    assert k.stat.anon_vma_alloc - k.stat.anon_vma_free == 1
