"""docs/writing-a-scheme.md: its example scheme, loaded through its spec,
runs in compare, sweep, bench, replay and the kit; an installed package's
entry point is found; and the numbers the page quotes are what compare
measures."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from rmaplab.check.kit import check_scheme
from rmaplab.cli.main import main
from rmaplab.config import Config
from rmaplab.errors import ConfigError
from rmaplab.rmap import registry

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "anon_vma_hint.py"
SPEC = f"{EXAMPLE}:HintedAnonVma"
TRUSTING = f"{EXAMPLE}:TrustingHint"
FAILURE = ROOT / "docs" / "examples" / "trusting-hint-failure.jsonl"
DOC = ROOT / "docs" / "writing-a-scheme.md"


@pytest.fixture(autouse=True)
def _registry_as_it_was(monkeypatch):
    """Schemes these tests register leave with them."""
    monkeypatch.setattr(registry, "_SCHEMES", dict(registry._SCHEMES))
    monkeypatch.setattr(registry, "_SPECS", dict(registry._SPECS))


def _json(capsys: pytest.CaptureFixture, argv: list[str]) -> object:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def _doc_table(command: str) -> dict[str, dict[str, str]]:
    """The table the page prints under ``$ COMMAND``: row -> scheme -> cell."""
    text = DOC.read_text()
    block = text.split(f"$ {command}\n", 1)[1].split("```", 1)[0]
    rows = [[c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
            for line in block.splitlines() if line.startswith(("│", "┃"))]
    head, body = rows[0], rows[1:]
    return {r[0]: dict(zip(head[1:], r[1:])) for r in body}


def test_compare_runs_the_example_and_the_page_quotes_what_it_measures(capsys):
    cmd = ("rmaplab compare aim7 -p N=48 -p M=128 -p reclaim=3072 --scheme "
           "anon_vma,docs/examples/anon_vma_hint.py:HintedAnonVma,anon_vma_chain")
    out = _json(capsys, ["compare", "aim7", "-p", "N=48", "-p", "M=128", "-p", "reclaim=3072",
                         "--scheme", f"anon_vma,{SPEC},anon_vma_chain", "--json", "-q"])
    by = {r["scheme"]: r for r in out}
    assert list(by) == ["anon_vma", "anon_vma_hint", "anon_vma_chain"]   # named by its name
    av, hint = by["anon_vma"], by["anon_vma_hint"]
    assert hint["pgsteal"] == av["pgsteal"] > 0
    assert hint["walk_work_per_reclaimed"] < av["walk_work_per_reclaimed"] / 10
    assert hint["metadata_bytes_i386"] > 10 * av["metadata_bytes_i386"]
    quoted = _doc_table(cmd)
    for scheme, r in by.items():
        assert quoted["walk/page"][scheme] == f"{r['walk_work_per_reclaimed']:,.1f}"
        assert quoted["locks"][scheme] == f"{r['locks']:,}"
        assert quoted["meta i386"][scheme] == f"{r['metadata_bytes_i386']:,}"
        assert quoted["meta x86_64"][scheme] == f"{r['metadata_bytes_x86_64']:,}"


def test_sweep_runs_the_example_at_two_points(capsys):
    out = _json(capsys, ["sweep", "aim7", "--vary", "N=4,8", "-p", "M=16", "-p", "reclaim=64",
                         "--scheme", f"anon_vma,{SPEC}", "--metric", "walk_work_per_reclaimed",
                         "--jobs", "1", "--json", "-q"])
    got = {(p["scheme"], p["N"]): p["walk_work_per_reclaimed"] for p in out}
    assert sorted(got) == [("anon_vma", 4), ("anon_vma", 8), ("anon_vma_hint", 4),
                           ("anon_vma_hint", 8)]
    for n in (4, 8):
        assert got[("anon_vma_hint", n)] < got[("anon_vma", n)]


def test_bench_runs_the_example_at_its_smallest_size(capsys):
    rows = _json(capsys, ["bench", "--scheme", SPEC, "--size", "1M", "--mprotects", "10",
                          "--repeat", "1", "--mem", "256K", "--json", "-q"])
    assert {r["scheme"] for r in rows} == {"anon_vma_hint"}
    cases = {r["case"]: r for r in rows}
    assert {"touch", "mprotect", "reclaim x1", "reclaim x4", "memory"} <= set(cases)
    assert cases["reclaim x4"]["pgsteal"] > 0


def test_replay_runs_the_example_with_every_check(tmp_path, capsys):
    trace = tmp_path / "aim7.jsonl"
    assert main(["generate", "aim7", "-p", "N=8", "-p", "M=32", "-p", "reclaim=128",
                 "-o", str(trace)]) == 0
    capsys.readouterr()
    stats = {}
    for spec in ("anon_vma", SPEC):
        stats[spec] = _json(capsys, ["replay", str(trace), "--scheme", spec, "--check", "--stats",
                                     "-q"])["counters"]
    assert stats[SPEC]["pgsteal"] == stats["anon_vma"]["pgsteal"] > 0
    assert stats[SPEC]["rmap_vmas_visited"] < stats["anon_vma"]["rmap_vmas_visited"]


@pytest.mark.parametrize("profile", ["modern", "2.6.7"])
def test_the_example_passes_the_kit(profile):
    rep = check_scheme(SPEC, examples=20, profile=profile, derandomize=True)
    assert rep.outcomes.get("touch w")


def test_the_trusting_shortcut_breaks_on_the_kits_program_and_the_example_does_not():
    argv = ["replay", str(FAILURE), "--check", "--profile", "modern", "--mem", "192K",
            "--swap", "2048K", "-q", "--scheme"]
    assert main(argv + [TRUSTING]) == 1          # the model's invariant broke
    assert main(argv + [SPEC]) == 0


def test_an_installed_package_entry_point_is_found(tmp_path, monkeypatch):
    """A throwaway installed distribution (a dist-info with entry_points.txt
    on sys.path) adds a scheme by name."""
    (tmp_path / "tutorial_hint_pkg.py").write_text(
        "from rmaplab.rmap import registry\n"
        f"Base = registry.get({SPEC!r})\n\n\n"
        "class PackagedHint(Base):\n"
        "    name = 'anon_vma_hint_pkg'\n")
    dist = tmp_path / "tutorial_hint_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tutorial-hint-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[rmaplab.schemes]\nanon_vma_hint_pkg = tutorial_hint_pkg:PackagedHint\n")
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    with pytest.raises(ConfigError, match="unknown scheme"):      # not installed yet
        registry.resolve("anon_vma_hint_pkg")
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert "anon_vma_hint_pkg" in registry.names()
        cfg = Config(scheme="anon_vma_hint_pkg")
        assert cfg.scheme == "anon_vma_hint_pkg"
        assert registry.get("anon_vma_hint_pkg").__mro__[1] is registry.get(SPEC)
    finally:
        sys.modules.pop("tutorial_hint_pkg", None)
