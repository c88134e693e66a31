"""One ``-p KEY=VALUE`` parser for generate, compare and sweep: floats and
sizes work everywhere (regression: compare refused "evict=0.1" and
"size=64K")."""

from __future__ import annotations

import json

from rmaplab.cli.main import main


def test_compare_takes_floats_and_sizes(capsys):
    assert main(["compare", "jit", "-p", "evict=0.1", "-p", "flips=64", "--scheme", "anon_vma",
                 "--json", "-q"]) == 0
    (m,) = json.loads(capsys.readouterr().out)
    assert m["scheme"] == "anon_vma" and m["events"] > 0
    assert main(["compare", "shared_server", "-p", "size=64K", "-p", "chunk=4", "-p", "workers=2", "-p", "ops=2",
                 "--scheme", "anon_vma", "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["events"] > 0


def test_sweep_parses_fixed_and_varied_values_with_the_workloads_parser(capsys):
    assert main(["sweep", "jit", "--vary", "evict=0.05,0.2", "-p", "flips=32", "--scheme",
                 "anon_vma", "--jobs", "1", "--json", "-q"]) == 0
    points = json.loads(capsys.readouterr().out)
    assert sorted(p["evict"] for p in points) == [0.05, 0.2]


def test_a_bad_parameter_is_one_line_for_every_command(capsys):
    for argv in (["generate", "jit", "-p", "evict=lots", "-o", "-"],
                 ["compare", "jit", "-p", "evict=lots", "-q"],
                 ["sweep", "jit", "--vary", "evict=lots", "-q"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("rmaplab:") and "evict" in err and len(err.splitlines()) == 1
