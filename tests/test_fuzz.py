"""rmaplab fuzz: deterministic by seed, finds and shrinks a broken scheme."""

from __future__ import annotations

import json
import textwrap

from rmaplab.cli.main import main
from rmaplab.report import fuzz

SCHEMES = ["anon_vma", "anon_vma_chain", "pure_anon_vma"]


def test_the_same_seeds_give_the_same_programs_on_one_or_two_processes():
    one = fuzz.run(3000, SCHEMES, ["2.6.7", "modern"], jobs=1, seed=7, chunk=10)
    two = fuzz.run(3000, SCHEMES, ["2.6.7", "modern"], jobs=2, seed=7, chunk=10)
    assert one.finding is None and two.finding is None
    # each program is its seed's: the per-seed step counts agree
    for seed in range(7, 7 + 30):
        p = fuzz.program(seed, SCHEMES, ["2.6.7", "modern"])
        assert fuzz.run_events(p, fuzz.events_of(p)) == fuzz.run_events(p, fuzz.events_of(p))
    assert one.steps >= 3000 and two.steps >= 3000


BROKEN = '''
from rmaplab.rmap.anon_vma import AnonVmaScheme


class Broken(AnonVmaScheme):
    name = "broken_for_fuzz"

    def candidates(self, pfn):
        return iter(list(super().candidates(pfn))[1:])
'''


def test_a_broken_walk_is_found_shrunk_and_replayable(tmp_path, capsys):
    path = tmp_path / "broken.py"
    path.write_text(textwrap.dedent(BROKEN))
    out = tmp_path / "fail.jsonl"
    code = main(["fuzz", "--scheme", f"{path}:Broken", "--steps", "5000", "--jobs", "1", "-q",
                 "--json", "--out", str(out)])
    rep = json.loads(capsys.readouterr().out)
    assert code == 1 and rep["failure"]["error"].startswith("InvariantError: rmap walk")
    lines = out.read_text().splitlines()
    assert len(lines) - 1 == rep["failure"]["events"] < 20          # shrunk
    replay = rep["failure"]["replay"].split()[1:]                    # drop "rmaplab"
    assert main(replay + ["--quiet"]) == 1                           # the model broke again


def test_bad_options_are_one_line_errors(capsys):
    assert main(["fuzz", "--steps", "0"]) == 2
    assert main(["fuzz", "--scheme", "nope"]) == 2
    assert all(line.startswith("rmaplab:") for line in capsys.readouterr().err.splitlines())


def test_sweep_on_a_local_dask_cluster_gives_the_same_points(capsys):
    argv = ["sweep", "jit", "--vary", "flips=16,32", "--scheme", "anon_vma,anonmm", "--json", "-q"]
    assert main(argv + ["--jobs", "1"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert main(argv + ["--jobs", "2", "--scheduler", "local"]) == 0
    dask = json.loads(capsys.readouterr().out)

    def key(points):
        return sorted((p["scheme"], p["flips"], p["walk_work"]) for p in points)
    assert key(local) == key(dask) and len(local) == 4
