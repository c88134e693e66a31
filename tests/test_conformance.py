"""The model against the live kernel: the corpus of tests/conformance/.

Offline (always): each trace replays in the model under the modern profile
and must agree, category by category after every event, with the kernel's
recorded run (``recorded/NAME.kernel.jsonl``, made by ``python
tests/conformance/corpus.py --record`` on Linux 6.18). Under the 2.6.7
profile the same recordings must show the differences the profile table
names, so the comparison is known to catch them.

Live (root on Linux x86_64 with cc): the kernel of this machine must still
do what the recordings say, and ``rmaplab conform`` agrees end to end.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from pathlib import Path

import pytest

from rmaplab.check.conform import compare_results, compare_states
from rmaplab.cli.conform import SavedRun, conform_trace
from rmaplab.cli.main import main
from rmaplab.config import Config
from rmaplab.trace.reader import read_trace

CORPUS = Path(__file__).resolve().parent / "conformance"
TRACES = sorted(CORPUS.glob("*.jsonl"))


def _run(trace: Path) -> Path:
    return CORPUS / "recorded" / trace.name.replace(".jsonl", ".kernel.jsonl")


def _report(rep) -> str:
    return "; ".join(f"{c}: {d.what} (line {d.line})" for c, d in rep.first.items())


def test_the_corpus_covers_every_observed_item():
    items = set()
    for t in TRACES:
        head = json.loads(t.read_text().splitlines()[0])
        for word in head["source"].replace(",", " ").replace(":", " ").split():
            if word.isdigit() or "-" in word and all(x.isdigit() for x in word.split("-")):
                lo, _, hi = word.partition("-")
                items.update(range(int(lo), int(hi or lo) + 1))
    assert set(range(1, 23)) <= items, f"items without a trace: {set(range(1, 23)) - items}"
    assert all(_run(t).exists() for t in TRACES), "a trace has no recorded kernel run"


@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.stem)
def test_modern_profile_agrees_with_the_recorded_kernel(trace: Path):
    rep = conform_trace(read_trace(str(trace)), Config(profile="modern"), SavedRun(str(_run(trace))))
    assert rep.agree, _report(rep)
    assert rep.events == len(read_trace(str(trace)).events)


#: what the 2.6.7 profile must get wrong, by trace (from the profile table)
OLD_DIFFERS = {
    "04-fork-child-merges": "layout",            # scheme: no singular-chain rule
    "05-vm-account": "layout",                   # mprotect_drop_account
    "08-fault-around": "present",                # fault_around_pages
    "10-fork-copies-anon-only": "present",       # fork_copy_anon_only
    "14-mremap-multi-vma": "result",             # mremap_multi_vma
    "15-mremap-dontunmap": "result",             # mremap_dontunmap
    "20-errno": "result",                        # mmap_len0_einval, ...
    "30-layout": "result",                       # mmap_layout
}


@pytest.mark.parametrize("name,category", sorted(OLD_DIFFERS.items()))
def test_the_2_6_7_profile_differs_where_the_eras_differ(name: str, category: str):
    trace = CORPUS / f"{name}.jsonl"
    rep = conform_trace(read_trace(str(trace)), Config(), SavedRun(str(_run(trace))))
    assert category in rep.first, f"2.6.7 unexpectedly agrees in {category}: {_report(rep)}"


# -- the comparison itself --------------------------------------------------------------------

def _state(*procs) -> dict:
    return {"name": None, "event": 1, "processes": [
        {"pid": pid, "maps": [{"start": 0x1000, "end": 0x3000, "perms": "rw-p", "pgoff": None,
                                "file": None, "anon_vma": None}],
         "pages": [{"addr": a, "state": "present", "frame": f, "mapcount": mc, "token": t,
                    "zero_page": f == 0} for a, f, mc, t in pages]}
        for pid, pages in procs]}


def test_sharing_is_compared_as_a_partition_not_by_frame_numbers():
    kernel = _state((1, [(0x1000, 900, 2, "a")]), (2, [(0x1000, 900, 2, "a")]))
    model = _state((1, [(0x1000, 7, 2, "a")]), (2, [(0x1000, 7, 2, "a")]))
    assert compare_states(kernel, model) == {}
    model = _state((1, [(0x1000, 7, 2, "a")]), (2, [(0x1000, 8, 2, "a")]))
    diff = compare_states(kernel, model)
    assert set(diff) == {"sharing"} and diff["sharing"][1:] == (2, 0x1000)


def test_each_category_is_reported_once_with_where():
    kernel = _state((1, [(0x1000, 5, 1, "a"), (0x2000, 0, 0, None)]))
    model = _state((1, [(0x1000, 6, 2, "b")]))
    diff = compare_states(kernel, model)
    assert set(diff) == {"present", "mapcount", "data"}
    assert diff["present"][2] == 0x2000 and diff["mapcount"][2] == 0x1000
    assert compare_states(kernel, model, have_mapcount=False).keys() == {"present", "data"}
    kernel["processes"][0]["maps"][0]["vmflags"] = ["rd", "wr", "ac"]
    model["processes"][0]["maps"][0]["vmflags"] = ["rd", "wr"]
    assert "ac" in compare_states(kernel, model)["layout"][0]


def test_results_and_reads_are_compared():
    assert compare_results({"op": "mmap", "result": 1}, {"op": "mmap", "result": 1}) == (None, None)
    res, data = compare_results({"op": "touch", "result": "ok", "read": ["a", None]},
                                {"op": "touch", "result": "ok", "read": ["a", "b"]})
    assert res is None and "page 1" in data


def test_a_saved_run_that_does_not_fit_the_trace_is_a_clear_error(tmp_path, capsys):
    other = tmp_path / "other.jsonl"
    other.write_text('{"op": "spawn", "pid": 1}\n{"op": "exit", "pid": 1}\n')
    code = main(["conform", str(other), "--from-run", str(_run(CORPUS / "11-cow.jsonl"))])
    assert code == 2 and "does not match the trace" in capsys.readouterr().err
    assert main(["conform", str(tmp_path / "none.jsonl")]) == 2


# -- the live kernel ----------------------------------------------------------------------------

def _live_reason() -> str | None:
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return "needs Linux on x86_64"
    if os.geteuid() != 0:
        return "needs root (pagemap frames, kpagecount)"
    if shutil.which("cc") is None:
        return "needs a C compiler (cc) for the live worker"
    return None


live = pytest.mark.skipif(_live_reason() is not None, reason=_live_reason() or "")


@live
@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.stem)
def test_the_live_kernel_still_does_what_the_recording_says(trace: Path):
    from rmaplab.trace.live import LiveSession
    t = read_trace(str(trace))
    saved = SavedRun(str(_run(trace)))
    with LiveSession(t.filename) as live_side:
        for ev in t.events:
            got, want = live_side.step(ev), saved.step(ev)
            assert compare_results(got, want) == (None, None), f"line {ev.line}"
            diff = compare_states(live_side.observe(None, ev.index + 1),
                                  saved.observe(None, ev.index + 1))
            assert diff == {}, f"line {ev.line}: {diff}"


@live
def test_conform_command_end_to_end(tmp_path, capsys):
    trace = CORPUS / "11-cow.jsonl"
    kr, kd = tmp_path / "kr.jsonl", tmp_path / "kd.jsonl"
    code = main(["conform", str(trace), "--kernel-results", str(kr), "--kernel-dump", str(kd)])
    out = capsys.readouterr().out
    assert code == 0 and "kernel and model agree" in out
    results = [json.loads(x) for x in kr.read_text().splitlines()]
    assert [r["event"] for r in results] == list(range(len(read_trace(str(trace)).events)))
    dumps = [json.loads(x) for x in kd.read_text().splitlines()]
    assert [d["name"] for d in dumps] == ["copied", "reused", "three", None]
    for d in dumps:
        for p in d["processes"]:
            for m in p["maps"]:
                assert set(m) == {"start", "end", "perms", "pgoff", "file", "anon_vma"}
                assert m["anon_vma"] is None and m["pgoff"] is None
    code = main(["conform", str(CORPUS / "14-mremap-multi-vma.jsonl"), "--profile", "2.6.7",
                 "--json"])
    rep = json.loads(capsys.readouterr().out)
    assert code == 1 and not rep["agree"] and rep["categories"]["result"]["line"] == 7
