"""docs/tour.md is what docs/make_tour.py writes today: the tour's
outputs are the program's."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from rmaplab.show.graph import dot_available

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_tour_is_current(monkeypatch):
    if not dot_available():
        pytest.skip("graphviz's dot is not installed; the tour shows show --html with its graphs")
    spec = importlib.util.spec_from_file_location("make_tour", DOCS / "make_tour.py")
    tour = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tour)
    for name in ("COLUMNS", "NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RMAPLAB_TOUR_NO_SHOT", "1")
    text = tour.render()
    assert "```\n$ rmaplab show aim7.jsonl --at 3,7,9\n" in text
    assert (DOCS / "tour.md").read_text() == text, \
        "docs/tour.md is out of date: run python docs/make_tour.py"
