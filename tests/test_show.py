"""``rmaplab show``: the drawn state is the model's state, the recording
the HTML page steps through rebuilds it exactly at every event, the
schemes' descriptions and walk lists agree with their real walks, and bad
input gets one line."""

from __future__ import annotations

import base64
import gzip
import json
import re

import numpy as np
import pytest

from rmaplab.check import check_rmap_complete, validate
from rmaplab.cli.main import main
from rmaplab.config import Config
from rmaplab.kernel import Kernel
from rmaplab.show.state import ANON, FILE, NONE, SWAP, ZERO, expand, mapcounts, process_rows
from rmaplab.show.steps import rebuild, record
from rmaplab.show.term import page_chars, squeeze
from rmaplab.trace.reader import parse_trace
from rmaplab.workloads.generators import WORKLOADS

SCHEMES = ("anon_vma", "anon_vma_chain", "pte_chain", "anonmm", "none")
P = 4096
B = 0x4000_0000


def _kernel(scheme: str, **kw) -> Kernel:
    """Anonymous, file, zero-page, shared and swapped pages in three
    processes."""
    k = Kernel(Config(scheme=scheme, **kw))
    k.spawn(1)
    k.declare_file("lib", 8 * P)
    k.mmap(1, B, 8 * P, "rw-", ["private", "anonymous", "fixed"])
    k.touch(1, B, 6 * P, "w", "p")
    k.touch(1, B + 6 * P, P, "r")                      # the zero page
    k.mmap(1, B + 16 * P, 4 * P, "r--", ["private", "fixed"], file="lib")
    k.touch(1, B + 16 * P, 4 * P, "r")
    k.fork(1, 2)
    k.fork(1, 3)
    k.touch(2, B + P, 2 * P, "w", "c")                 # COW in the child
    return k


def _trace(events: list[dict]) -> list:
    return list(parse_trace([json.dumps(e) for e in events]).events)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_rows_are_the_page_tables(scheme):
    """Every page of every drawn row is what its pte says (kind and frame),
    and counting frames over all rows gives each frame's mapcount."""
    k = _kernel(scheme)
    rows = {pid: process_rows(k, pid) for pid in k.pids()}
    kinds_seen = set()
    for pid, prow in rows.items():
        mm = k.mm(pid)
        assert [r.vma for r in prow] == [v.serial for v in mm.mmap]
        for r in prow:
            kinds, refs = expand(r)
            assert len(kinds) == r.npages
            for i in range(r.npages):
                pte = int(mm.pgd.get((r.start >> 12) + i))
                if not pte:
                    kind, ref = NONE, -1
                elif not pte & 1:
                    kind, ref = SWAP, pte >> 12
                elif pte >> 12 == 0:
                    kind, ref = ZERO, -1
                else:
                    kind = ANON if k.mem.mapping[pte >> 12] & 1 else FILE
                    ref = pte >> 12
                assert ("-AFzs"[kinds[i]], int(refs[i])) == (kind, ref), (pid, hex(r.start), i)
                kinds_seen.add(kind)
    assert {NONE, ANON, FILE, ZERO} <= kinds_seen
    counts = mapcounts(rows)
    mapped = np.flatnonzero(k.mem.mapcount[1:] > 0) + 1
    assert counts == {int(p): int(k.mem.mapcount[p]) for p in mapped}


def test_swapped_pages_are_drawn_as_swap_entries():
    k = Kernel(Config(scheme="anon_vma", mem_pages=64, swap_pages=256))
    k.spawn(1)
    k.mmap(1, B, 128 * P, "rw-", ["private", "anonymous", "fixed"])
    k.touch(1, B, 128 * P, "w", "x")
    (row,) = process_rows(k, 1)
    kinds, refs = expand(row)
    swapped = kinds == "-AFzs".index(SWAP)
    assert swapped.any()
    vpns = (B >> 12) + np.flatnonzero(swapped)
    assert all(int(k.mm(1).pgd.get(int(v))) >> 12 == int(e) for v, e in zip(vpns, refs[swapped]))


def test_page_chars_show_sharing_and_squeeze_keeps_the_commonest():
    k = _kernel("anon_vma")
    row = process_rows(k, 1)[0]
    chars = page_chars(row, k.mem.mapcount).tobytes().decode()
    # pages 1-2 were COWed by pid 2 (pid 1 and 3 still share them), the
    # rest of the written pages are shared by all three; page 6 is the
    # zero page, page 7 untouched
    assert chars == "32233" + "3" + "z" + "-"
    assert squeeze(np.frombuffer(b"AAAB-", dtype=np.uint8), 2) == ("A-", 3)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_descriptions_change_nothing_and_walk_lists_match_the_walks(scheme):
    """``describe``, ``describe_page``, ``walk_visits`` and ``walk_cost``
    leave every counter and invariant as they were; the ptes a walk list
    marks found are those ``rmap_walk`` finds; and the list is as long as
    the walk's own count of places visited."""
    k = _kernel(scheme)
    before = k.stat.as_dict()
    d = k.scheme.describe(4)
    assert d["scheme"] == scheme and "metadata" in d
    mm = k.mm(1)
    for page in range(8):
        pte = int(mm.pgd.get((B >> 12) + page))
        if not pte & 1 or pte >> 12 == 0:
            continue
        pfn = pte >> 12
        desc = k.scheme.describe_page(pfn)
        assert desc["mapcount"] == int(k.mem.mapcount[pfn]) and desc["kind"] == "anon"
        visits = k.scheme.walk_visits(pfn)
        found, cost = k.scheme.walk_cost(pfn)
        assert sorted((v["pid"], v["addr"]) for v in visits if v["found"]) == sorted(found)
        assert len(found) == desc["mapcount"]
        places = cost.get("rmap_mms_visited", 0) if scheme == "anonmm" else cost.get("rmap_vmas_visited", 0)
        if scheme != "pte_chain":
            assert len(visits) == places, (visits, cost)
        else:
            assert len(visits) == cost["find_vma_calls"]
    assert k.stat.as_dict() == before
    check_rmap_complete(k, validate(k))


def test_anon_vma_walk_lists_a_skipped_vma():
    """After an mremap move, a page of the moved part is outside the
    unmoved VMA of the same anon_vma: the walk visits it and skips it."""
    k = Kernel(Config(scheme="anon_vma"))
    k.spawn(1)
    k.mmap(1, B, 4 * P, "rw-", ["private", "anonymous", "fixed"])
    k.touch(1, B, 4 * P, "w", "x")
    k.mremap(1, B + 2 * P, 2 * P, 2 * P, ["maymove", "fixed"], B + 64 * P)
    pfn = int(k.mm(1).pgd.get((B >> 12) + 64)) >> 12
    visits = k.scheme.walk_visits(pfn)
    assert [v["addr"] is None for v in visits] == [False, True] or \
        [v["addr"] is None for v in visits] == [True, False]
    assert sum(v["found"] for v in visits) == 1


def _pressure_trace() -> list:
    """Forks, COW, munmap, mremap, mprotect, reclaim, exit, and (with a
    small memory) the OOM killer and swap."""
    a = B
    ev = [{"op": "spawn", "pid": 1},
          {"op": "mmap", "pid": 1, "addr": a, "len": 96 * P, "prot": "rw-",
           "flags": ["private", "anonymous", "fixed"], "file": None},
          {"op": "touch", "pid": 1, "addr": a, "len": 96 * P, "access": "w", "token": "p"},
          {"op": "fork", "pid": 1, "child": 2}, {"op": "fork", "pid": 1, "child": 3},
          {"op": "checkpoint", "name": "forked"},
          {"op": "touch", "pid": 2, "addr": a, "len": 48 * P, "access": "w", "token": "c"},
          {"op": "mprotect", "pid": 3, "addr": a + 8 * P, "len": 8 * P, "prot": "r--"},
          {"op": "mremap", "pid": 3, "addr": a + 32 * P, "old_len": 8 * P, "new_len": 8 * P,
           "flags": ["maymove", "fixed"], "new_addr": a + 512 * P},
          {"op": "reclaim", "pages": 40},
          {"op": "touch", "pid": 3, "addr": a, "len": 8 * P, "access": "r"},
          {"op": "munmap", "pid": 1, "addr": a + 64 * P, "len": 16 * P},
          {"op": "touch", "pid": 3, "addr": a + 48 * P, "len": 16 * P, "access": "w", "token": "d"},
          {"op": "mprotect", "pid": 3, "addr": a + 8 * P, "len": 8 * P, "prot": "rw-"},
          {"op": "touch", "pid": 3, "addr": a + 4 * P, "len": 16 * P, "access": "w", "token": "e"},
          {"op": "madvise", "pid": 1, "addr": a, "len": 4 * P, "advice": "dontneed"},
          {"op": "mmap", "pid": 1, "addr": None, "len": 4 * P, "prot": "rw-",
           "flags": ["private", "anonymous"], "file": None},
          {"op": "exit", "pid": 2},
          {"op": "checkpoint", "name": "end"}]
    return _trace(ev)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_recording_rebuilds_the_state_after_every_event(scheme):
    """The deltas, applied as the page's script applies them, give at
    every event exactly the rows of a fresh replay stopped there; looking
    only at the processes an event can change gives the same deltas as
    looking at every process."""
    events = _pressure_trace()
    cfg = Config(scheme=scheme, mem_pages=160, swap_pages=512)
    rec = record(events, cfg, graph_budget=5)
    full = record(events, cfg, graph_budget=5, every_process=True)
    assert rec.error is None
    # VMA serials count across kernels: compare what changed, and the rows
    # without their serial
    assert [[pid for pid, _ in d] for d in rec.deltas] == [[pid for pid, _ in d] for d in full.deltas]
    assert len(rec.deltas) == len(rec.results) == len(rec.stats) == len(events)

    def unnamed(state: dict) -> dict:
        return {pid: [r[1:] for r in rows] for pid, rows in state.items()}
    from rmaplab.trace.replay import run_event
    k = Kernel(cfg)
    for i, ev in enumerate(events):
        run_event(k, ev)
        want = {pid: [r.as_list()[1:] for r in process_rows(k, pid)] for pid in k.pids()}
        assert unnamed(rebuild(rec, i)) == want == unnamed(rebuild(full, i)), f"event {i} {ev.op}"
    assert k.stat.pswpout > 0


def test_graphs_are_bounded_and_named_by_their_event():
    events = list(parse_trace([json.dumps(e) for e in WORKLOADS["aim7"].generate(
        seed=0, N=40, M=16, chunk=8, reads=2, reclaim=0)]).events)
    rec = record(events, Config(scheme="anon_vma_chain"), graph_budget=10)
    checkpoints = [e.index for e in events if e.op == "checkpoint"]
    drawn = sorted(set(rec.graph_event))
    assert set(checkpoints) <= set(drawn) and drawn[0] == 0 and drawn[-1] == len(events) - 1
    assert len(drawn) <= 2 * 10 + len(checkpoints) + 2
    assert len(rec.dots) <= len(drawn)
    for i, (g, ge) in enumerate(zip(rec.graph, rec.graph_event)):
        assert ge <= i and rec.graph[ge] == g
        assert rec.graph_same[ge]
    # the read phase changes nothing a graph shows: those graphs are current
    last_cow = max(i for i, e in enumerate(events) if e.op == "touch" and e.args[2] == "w")
    reads = [i for i, e in enumerate(events) if i > last_cow and e.op == "touch"]
    assert reads and all(rec.graph_same[i] for i in reads)


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def small_trace(tmp_path):
    path = tmp_path / "aim7.jsonl"
    assert main(["generate", "aim7", "-p", "N=3", "-p", "M=8", "-p", "chunk=4", "-p", "reads=2",
                 "-p", "reclaim=0", "-o", str(path)]) == 0
    return str(path)


def test_show_draws_checkpoints_and_groups_identical_processes(small_trace, capsys):
    code, out, _ = _run(["show", small_trace], capsys)
    assert code == 0
    assert out.count("checkpoint '") == 4
    assert re.search(r"^pid 1-4 +2aaaaaaab000-2aaaaaab3000 rw-p +av1  44444444  8 pages "
                     r"\(4 processes, drawn once\)$", out, re.M)
    assert "av1: 8 pages point here; list of 4 VMAs, walk order: pid 4 vma#" in out
    assert out.rstrip().splitlines()[-1].startswith("legend: pages:")


def test_show_page_walk(small_trace, capsys):
    code, out, _ = _run(["show", small_trace, "--at", "9", "--pid", "1", "--page", "0x2aaaaaaab000",
                         "--scheme", "anonmm"], capsys)
    assert code == 0
    assert "page 0x2aaaaaaab000 of pid 1" in out
    assert "mapping am1 | PAGE_MAPPING_ANON" in out
    assert re.search(r"found 3 ptes; cost: mms_visited 4", out)


@pytest.mark.parametrize("argv, message", [
    (["--at", "999"], "--at 999: the trace has 26 events, numbered 0 to 25"),
    (["--at", "x"], "--at: 'x' is not an event number"),
    (["--page", "zz"], "--page: 'zz' is not an address"),
    (["--at", "9", "--page", "0x2aaaaaaab000"], "--page: say whose page it is with one --pid"),
    (["--scheme", "nope"], "unknown scheme 'nope'"),
    (["--width", "0"], "--width must be at least 1"),
    (["--html", "/nonexistent/dir/x.html"], "/nonexistent/dir/x.html: cannot write"),
])
def test_show_bad_input_is_one_line(small_trace, capsys, argv, message):
    code, out, err = _run(["show", small_trace, *argv], capsys)
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_show_unknown_trace_is_one_line(tmp_path, capsys):
    code, _, err = _run(["show", str(tmp_path / "missing.jsonl")], capsys)
    assert code == 2 and err.count("\n") == 1


def _page_data(text: str) -> dict:
    blob = re.search(r'<script type="application/octet-stream" id="rmap-data">([^<]*)</script>',
                     text).group(1)
    return json.loads(gzip.decompress(base64.b64decode(blob)))


def test_show_html_is_self_contained(small_trace, tmp_path, capsys):
    out = tmp_path / "s.html"
    code, _, _ = _run(["show", small_trace, "--html", str(out), "--scheme", "anon_vma,pte_chain",
                       "-q"], capsys)
    assert code == 0
    text = out.read_text()
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", text)
    d = _page_data(text)
    assert [s["name"] for s in d["schemes"]] == ["anon_vma", "pte_chain"]
    assert len(d["events"]) == 26 and d["checkpoints"] == [3, 7, 14, 24]
    for s, svgs in zip(d["schemes"], d["svgs"] or [[], []]):
        assert len(s["deltas"]) == 26
        if d["svgs"] is not None:
            assert all(sv.startswith("<svg") for sv in svgs)
            assert max(s["graph"]) == len(svgs) - 1


def test_show_html_without_graphviz_says_so(small_trace, tmp_path, capsys, monkeypatch):
    import rmaplab.show.graph as graph

    def missing(*a, **kw):
        raise graph.GraphvizMissing("graphviz's 'dot' program was not found")
    monkeypatch.setattr(graph, "render_svgs", missing)
    out = tmp_path / "s.html"
    code, _, err = _run(["show", small_trace, "--html", str(out)], capsys)
    assert code == 0
    assert "'dot' program was not found; the page has no rmap graphs" in err
    d = _page_data(out.read_text())
    assert d["svgs"] is None and "dot" in d["graphNote"]


def test_a_scheme_is_drawn_by_the_kind_of_its_structures():
    """A scheme derived from anon_vma (another name) is drawn as anon_vma;
    one that describes nothing still gets a graph and a line."""
    from rmaplab.show.graph import dot_source
    from rmaplab.show.term import rmap_lines
    k = _kernel("anon_vma")
    desc = dict(k.scheme.describe(), scheme="my_anon_vma")
    assert "my_anon_vma: 1 anon_vma" in dot_source(desc) and "anon_vma av1" in dot_source(desc)
    assert "list of 3 VMAs" in rmap_lines(desc)[1].plain
    bare = {"scheme": "plugin", "metadata": {"i386": 0, "x86_64": 0}}
    assert "describes no structures" in dot_source(bare)
    assert [t.plain for t in rmap_lines(bare)] == ["rmap: plugin"]


@pytest.mark.parametrize("workload, params", [
    ("jit", {"regions": 24, "flips": 120}), ("kbuild", {"compiles": 6, "jobs": 3}),
    ("realloc", {"steps": 40}), ("shared_server", {"workers": 3, "size": 64, "private": 32, "chunk": 16})])
def test_recording_of_workloads_matches_looking_at_everything(workload, params):
    """Reusing the rows of VMAs outside an event's range gives, at every
    event, what reading every page table again gives."""
    events = list(parse_trace([json.dumps(e) for e in WORKLOADS[workload].generate(
        seed=3, **params)]).events)
    cfg = Config(scheme="anon_vma_chain")
    rec = record(events, cfg, graph_budget=3)
    full = record(events, cfg, graph_budget=3, every_process=True)
    assert rec.error is None and full.error is None
    for i in range(len(events)):
        a, b = rebuild(rec, i), rebuild(full, i)
        assert {p: [r[1:] for r in rows] for p, rows in a.items()} == \
            {p: [r[1:] for r in rows] for p, rows in b.items()}, f"event {i} {events[i].op}"


def test_graphs_survive_dot_breaking_down(monkeypatch):
    """When dot fails on a batch, each graph is laid out alone; one that
    still fails is replaced by a note, and the rest are drawn."""
    import graphviz

    from rmaplab.show.graph import dot_available, render_svgs
    if not dot_available():
        pytest.skip("graphviz's dot is not installed")
    real = graphviz.pipe

    def flaky(engine, fmt, data, **kw):
        if data.count(b"digraph") > 1 or b"BAD" in data:
            raise graphviz.CalledProcessError(-6, ["dot"], stderr=b"corrupted size")
        return real(engine, fmt, data, **kw)
    monkeypatch.setattr(graphviz, "pipe", flaky)
    svgs = render_svgs(['digraph { a -> b }', 'digraph { BAD -> c }', 'digraph { d }'], jobs=1)
    assert len(svgs) == 3
    assert "<title>a&#45;&gt;b</title>" in svgs[0] and "could not lay out" in svgs[1]
    assert "<title>d</title>" in svgs[2]


def test_show_without_checkpoints_draws_the_busiest_moment_and_the_end(tmp_path, capsys):
    evs = [{"op": "spawn", "pid": 1},
           {"op": "mmap", "pid": 1, "addr": B, "len": 4 * P, "prot": "rw-",
            "flags": ["private", "anonymous", "fixed"], "file": None},
           {"op": "touch", "pid": 1, "addr": B, "len": 4 * P, "access": "w", "token": "x"},
           {"op": "fork", "pid": 1, "child": 2},
           {"op": "exit", "pid": 2}, {"op": "exit", "pid": 1}]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in evs))
    code, out, _ = _run(["show", str(path)], capsys)
    assert code == 0
    heads = [ln for ln in out.splitlines() if ln.startswith("── after event")]
    assert [h.split(" (")[0] for h in heads] == ["── after event 3", "── after event 5"]
    assert "pid 1-2  0000" in out and out.count("2222") == 1


@pytest.mark.parametrize("lines, message", [
    ('{"op":"spawn","pid":1}\n{"op":"touch","pid":2,"addr":0,"len":4096,"access":"r"}\n',
     ":2: touch: no process with pid 2"),
    ('{"op":"spawn","pid":1}\n{"op": nope}\n', ":2: not valid JSON"),
])
def test_show_bad_trace_lines_are_one_line(tmp_path, capsys, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(lines)
    for extra in ([], ["--html", str(tmp_path / "x.html")]):
        code, _, err = _run(["show", str(path), *extra], capsys)
        assert code == 2 and err.count("\n") == 1 and message in err, err
