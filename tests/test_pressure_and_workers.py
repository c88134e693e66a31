"""Memory pressure as users run it: the aim7 workload applies pressure
sized to its footprint unless told otherwise, and a run that fails in a
worker process comes back as one line (never a broken pool)."""

from __future__ import annotations

import json

import pytest

from rmaplab.cli.main import main
from rmaplab.workloads.generators import WORKLOADS, aim7_pages

BROKEN = '''
from rmaplab.rmap.anon_vma import AnonVmaScheme


class Broken(AnonVmaScheme):
    """anon_vma that fails on the first anonymous page."""

    name = "NAME"

    def page_add_anon_rmap(self, *args, **kw):
        raise RuntimeError("boom: the scheme broke")
'''


# -- aim7's default pressure ------------------------------------------------------------

def _reclaims(events: list[dict]) -> list[int]:
    return [e["pages"] for e in events if e["op"] == "reclaim"]


def test_aim7_reclaims_half_the_childrens_pages_by_default():
    w = WORKLOADS["aim7"]
    assert _reclaims(w.generate()) == [100 * aim7_pages(100) // 2]
    assert _reclaims(w.generate(N=10, M=64)) == [10 * 64 // 2]
    assert _reclaims(w.generate(N=10, M=64, reclaim=0)) == []        # told otherwise
    assert _reclaims(w.generate(N=10, M=64, reclaim=7)) == [7]
    assert w.parse_params(["reclaim=auto", "M=auto"]) == {"reclaim": None, "M": None}


def test_aim7_footprint_shrinks_with_n_so_reclaim_stays_affordable():
    assert aim7_pages(10) == 256 and aim7_pages(100) == 51
    assert aim7_pages(1000) == aim7_pages(10_000) == 1
    # reads follow M when M is small
    ev = WORKLOADS["aim7"].generate(N=1000)
    reads = [e for e in ev if e["op"] == "touch" and e["access"] == "r" and e["pid"] != 1]
    assert len(reads) == 1000 * 1


@pytest.mark.parametrize("n", [200, 1000])
def test_compare_aim7_reports_walk_cost_per_reclaimed_page_for_every_scheme(n, capsys):
    """The issue's complaint: -p N=1000 reclaimed nothing, so the table said
    nothing about reclaim. Now every scheme reclaims and has walk/page."""
    assert main(["compare", "aim7", "-p", f"N={n}", "--json", "-q"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["scheme"] for r in rows} >= {"anon_vma", "anonmm", "pte_chain", "none",
                                          "anon_vma_chain"}
    for r in rows:
        assert r["pgsteal"] > 0 and r["walk_work_per_reclaimed"] is not None, r["scheme"]
        assert r["oom_kills"] == 0
    per = {r["scheme"]: r["walk_work_per_reclaimed"] for r in rows}
    assert per["anon_vma"] > 20 * per["anon_vma_chain"]          # O(N) against ~O(1)


# -- errors in workers --------------------------------------------------------------------

def test_sweep_worker_failure_is_one_line(tmp_path, capsys):
    plugin = tmp_path / "broken.py"
    plugin.write_text(BROKEN.replace("NAME", f"broken_{tmp_path.name}"))
    code = main(["sweep", "aim7", "--vary", "N=2,3", "-p", "M=8", "--jobs", "2", "-q",
                 "--scheme", f"anon_vma,{plugin}:Broken"])
    err = capsys.readouterr().err
    assert code == 1
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("rmaplab: sweep aim7 N=") and "boom: the scheme broke" in lines[0]
    assert "Traceback" not in err and "BrokenProcessPool" not in err


def test_sweep_point_returns_errors_instead_of_raising():
    from rmaplab.cli.sweep import _point
    key, d, err = _point(("aim7", {"N": 2, "M": 8, "reads": 9}, "anon_vma", None, 1))
    assert d is None and err[0] == 2 and "reads" in err[1]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_compare_worker_failure_is_one_line(tmp_path, capsys, jobs):
    plugin = tmp_path / "broken.py"
    plugin.write_text(BROKEN.replace("NAME", f"broken_{tmp_path.name}"))
    code = main(["compare", "aim7", "-p", "N=3", "-p", "M=8", "-q", "--jobs", jobs,
                 "--scheme", f"anon_vma,{plugin}:Broken"])
    err = capsys.readouterr().err
    assert code == 1
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("rmaplab: compare: aim7 under ")
    assert "boom: the scheme broke" in lines[0] and "Traceback" not in err


def test_pool_failure_classification():
    from rmaplab.cli.pool import failure
    from rmaplab.trace.reader import TraceError
    from rmaplab.trace.replay import InvariantBroken
    assert failure(TraceError("t", 3, "bad"))[0] == 2
    assert failure(ValueError("aim7: parameter N must be ..."))[0] == 2
    assert failure(InvariantBroken("t", 3, "touch", "mapcount"))[0] == 1
    status, line = failure(KeyError("x"))
    assert status == 1 and line.startswith("model failure: KeyError")
