"""The comparison report and the headline study."""

from __future__ import annotations

import json

import pytest

from rmaplab.cli.main import main
from rmaplab.config import Config
from rmaplab.kernel import Kernel
from rmaplab.report.measure import measure
from rmaplab.report.study import Job, fanout_case, run_job, verdicts
from rmaplab.trace.reader import parse_trace
from rmaplab.trace.replay import replay


def _events(evs: list[dict]) -> list:
    return list(parse_trace([json.dumps(e) for e in evs]).events)


@pytest.mark.parametrize("scheme", ["anon_vma", "anonmm", "pte_chain", "anon_vma_chain"])
def test_report_numbers_equal_the_model_counters(scheme):
    """measure() replays event by event; its totals must be exactly what one
    plain replay leaves in the kernel's counters, and the per-event-kind
    split must add up to the totals."""
    base = 0x2AAAAAAAB000
    evs = _events(fanout_case(children=3, pages=8) + [
        {"op": "mremap", "pid": 1, "addr": base, "old_len": 8 * 4096, "new_len": 8 * 4096,
         "flags": ["maymove", "fixed"], "new_addr": base + (1 << 24)},
        {"op": "touch", "pid": 2, "addr": base, "len": 8 * 4096, "access": "r"},
        {"op": "exit", "pid": 3}, {"op": "reclaim", "pages": 8}])
    m = measure(evs, scheme)
    k = Kernel(Config(scheme=scheme))
    replay(k, evs)
    assert m.stat == k.stat.as_dict()
    for name, total in m.stat.items():
        assert sum(d.get(name, 0) for d in m.by_op.values()) == total, name
    d = m.as_dict()
    assert d["find_vma_calls"] == k.stat.find_vma_calls
    assert d["pages_copied"] == k.stat.pages_copied
    assert d["pgsteal"] == k.stat.pgsteal
    assert d["walk_work"] == (k.stat.rmap_vmas_visited + k.stat.rmap_mms_visited
                              + k.stat.rmap_ptes_compared + k.stat.find_vma_calls
                              + k.stat.as_dict().get("pte_chain_slots_searched", 0))


def test_json_output_is_the_measures(capsys):
    code = main(["compare", "aim7", "-p", "N=3", "-p", "M=8", "-p", "reads=2", "--scheme", "anon_vma,anonmm",
                 "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["scheme"] for r in out] == ["anon_vma", "anonmm"]
    for r in out:
        assert r["walk_work"] == sum(r["stat"][n] for n in ("rmap_vmas_visited",
                                     "rmap_mms_visited", "rmap_ptes_compared",
                                     "find_vma_calls"))


@pytest.fixture(scope="module")
def small_study():
    res = {}
    jobs = [Job("swapout", s, (("workers", 4), ("pages", 96)), 256)
            for s in ("anon_vma", "anonmm", "pte_chain")]
    jobs += [Job("mremap", s, (("children", 2), ("pages", 32))) for s in ("anon_vma", "anonmm")]
    jobs += [Job("lowmem", s, (("vmas", 20), ("children", 4)))
             for s in ("anon_vma", "anonmm", "pte_chain")]
    jobs += [Job("fork", s, (("pages", 512), ("children", 2))) for s in ("anon_vma", "pte_chain")]
    jobs += [Job("fanout", s, (("children", 12), ("pages", 16)))
             for s in ("anon_vma", "anon_vma_chain")]
    for j in jobs:
        job, m = run_job(j)
        res[(job.case, job.scheme)] = m
    return res


def test_anonmm_visits_at_least_as_many_as_anon_vma(small_study):
    av, mm = small_study[("swapout", "anon_vma")], small_study[("swapout", "anonmm")]
    assert av.stat["pgsteal"] > 0 and mm.stat["pgsteal"] > 0
    visits = lambda m: m.stat["rmap_vmas_visited"] + m.stat["rmap_mms_visited"]  # noqa: E731
    assert visits(mm) / mm.stat["pgsteal"] >= visits(av) / av.stat["pgsteal"]


def test_pte_chain_metadata_exceeds_anon_vma_on_fork(small_study):
    pc, av = small_study[("fork", "pte_chain")], small_study[("fork", "anon_vma")]
    assert pc.peak_bytes["i386"] > av.peak_bytes["i386"]
    assert pc.peak_bytes["x86_64"] > av.peak_bytes["x86_64"]


def test_mremap_of_shared_pages_copies_under_anonmm_only(small_study):
    av, mm = small_study[("mremap", "anon_vma")], small_study[("mremap", "anonmm")]
    assert av.stat["mremap_cows"] == 0
    # 3 processes share 32 pages; the first two to move must copy them, the
    # last is then the only mapper left and moves them without copying
    assert mm.stat["mremap_cows"] == 2 * 32


def test_verdicts_follow_the_measures(small_study):
    vs = {v.claim: v for v in verdicts(small_study)}
    assert all(v.supported for v in vs.values()), [v.line() for v in vs.values()]
    names = " ".join(vs)
    for key in ("anonmm", "find_vma", "lowmem", "mremap", "fork", "2010"):
        assert key in names
    # a verdict can fail: flip a measure and the claim is no longer supported
    bad = dict(small_study)
    bad[("mremap", "anon_vma")] = small_study[("mremap", "anonmm")]
    assert not next(v for v in verdicts(bad) if "mremap" in v.claim).supported


def test_study_cli_html(tmp_path, capsys):
    out = tmp_path / "r.html"
    # one scheme keeps this quick; the HTML is self-contained
    assert main(["compare", "--scheme", "anon_vma", "--jobs", "1", "--html", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("<!doctype html>") and "data:image/png;base64," in text
    assert "swapout" in text


def test_unknown_target_is_a_clear_error(capsys):
    assert main(["compare", "no-such-thing"]) == 2
    err = capsys.readouterr().err
    assert "neither a trace file nor a workload" in err and "Traceback" not in err
