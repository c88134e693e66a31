"""The HTML outputs in a real browser: Debian's chromium, driven by
Playwright (its own browser downloads are never used). Each page must load
without console errors; the step buttons, the slider and hovering must
change what is drawn; a screenshot of each page is kept and its path is
listed at the end of the run.

Skipped, with the reason, when chromium or Playwright is missing
(``.ci/run`` installs both).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rmaplab.cli.main import main

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

pytestmark = [
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                       reason="Debian's chromium is not installed (apt-get install chromium; "
                              ".ci/run does it when root)"),
]
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="Playwright is not installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory, request) -> Path:
    """Where screenshots go; their paths are listed after the run."""
    d = tmp_path_factory.mktemp("screenshots")
    request.config.rmaplab_artifacts = getattr(request.config, "rmaplab_artifacts", [])
    return d


def _keep(request, path: Path) -> None:
    request.config.rmaplab_artifacts.append(str(path))


class Page:
    """A page with its console errors and uncaught exceptions collected."""

    def __init__(self, browser, path: Path, width: int = 1366, height: int = 860) -> None:
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))
        self.page.goto(path.as_uri())

    def event(self) -> int:
        self.page.wait_for_function("document.body.dataset.event !== undefined")
        return int(self.page.evaluate("document.body.dataset.event"))

    def wait_event(self, i: int) -> None:
        self.page.wait_for_function(f"document.body.dataset.event === '{i}'")

    def canvas(self, n: int = 0) -> str:
        return self.page.evaluate(f"document.querySelectorAll('canvas.asp')[{n}].toDataURL()")

    def graph(self, n: int = 0) -> str:
        return self.page.evaluate(f"document.querySelectorAll('.graph')[{n}].innerHTML")


@pytest.fixture(scope="module")
def show_page(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("show")
    trace = d / "aim7.jsonl"
    assert main(["generate", "aim7", "-p", "N=3", "-p", "M=8", "-p", "chunk=4", "-p", "reads=2",
                 "-o", str(trace)]) == 0
    out = d / "aim7.html"
    assert main(["show", str(trace), "--html", str(out), "--scheme", "anon_vma,anon_vma_chain",
                 "-q"]) == 0
    return out


def test_show_page_steps_and_draws(browser, show_page, shots, request):
    p = Page(browser, show_page)
    assert p.event() == 0
    assert p.page.locator("section.panel").count() == 2
    # to the first checkpoint (one process), then one step: a fork
    p.page.click("#ncp")
    p.wait_event(3)
    before, graph_before = p.canvas(), p.graph()
    assert "<svg" in graph_before
    p.page.click("#next")
    p.wait_event(4)
    assert "fork pid 1 -&gt; pid 2" in p.page.inner_html("#cur")
    assert p.canvas() != before, "a fork must change the drawn address spaces"
    assert p.graph() != graph_before, "a fork must change the anon_vma graph"
    p.page.click("#prev")
    p.wait_event(3)
    assert p.canvas() == before, "stepping back must give the same drawing"
    # the slider, and the results of each scheme
    p.page.evaluate("(() => { const s = document.getElementById('slider'); s.value = '9';"
                    " s.dispatchEvent(new Event('input')); })()")
    p.wait_event(9)
    assert p.page.inner_text("section.panel >> nth=0 >> .res") == "result: ok"
    assert "4 processes" in p.page.inner_text("section.panel >> nth=1 >> .stats")
    # hovering a shared page lists the ptes that map its frame
    box = p.page.locator("canvas.asp >> nth=0").bounding_box()
    p.page.mouse.move(box["x"] + 62 + 160 + 4, box["y"] + 7)
    tip = p.page.inner_text("#tip")
    assert "mapped by 3 ptes" in tip and "pid 1 at 0x2aaaaaaab000" in tip
    shot = shots / "show-aim7.png"
    p.page.screenshot(path=str(shot), full_page=True)
    _keep(request, shot)
    assert p.errors == []


def test_show_page_of_a_long_trace_jumps_anywhere(browser, tmp_path, shots, request):
    """2,000 events and 101 processes: jumps across the whole trace land on
    the right state (the same drawing however it was reached)."""
    trace = tmp_path / "aim7.jsonl"
    assert main(["generate", "aim7", "-p", "N=100", "-p", "M=32", "-p", "chunk=8",
                 "-o", str(trace)]) == 0
    out = tmp_path / "aim7.html"
    assert main(["show", str(trace), "--html", str(out), "-q"]) == 0
    p = Page(browser, out)
    n = int(p.page.evaluate("window.rmapShow.events"))
    assert n > 2000
    p.page.evaluate("window.rmapShow.go(1200)")
    p.wait_event(1200)
    direct = p.canvas()
    p.page.click("#last")
    p.wait_event(n - 1)
    assert "1 process," in p.page.inner_text(".stats")
    p.page.evaluate("window.rmapShow.go(1199)")
    p.wait_event(1199)
    p.page.click("#next")
    p.wait_event(1200)
    assert p.canvas() == direct
    assert "101 processes" in p.page.inner_text(".stats")
    shot = shots / "show-aim7-100.png"
    p.page.screenshot(path=str(shot))
    _keep(request, shot)
    assert p.errors == []


def test_compare_report_opens(browser, tmp_path, shots, request):
    from test_report_html import small_study, study_html

    from rmaplab.report.study import verdicts
    res = small_study()
    out = tmp_path / "report.html"
    out.write_text(study_html(res))
    p = Page(browser, out, height=768)
    p.page.wait_for_load_state("load")
    cards = p.page.locator("section.claim")
    assert cards.count() == len(verdicts(res)) >= 7
    widths = p.page.evaluate("[...document.images].map(i => i.naturalWidth)")
    assert widths and all(w > 0 for w in widths)
    # fits a laptop screen: nothing wider than the window
    assert p.page.evaluate("document.documentElement.scrollWidth") <= 1366
    shot = shots / "compare-report.png"
    p.page.screenshot(path=str(shot), full_page=True)
    _keep(request, shot)
    assert p.errors == []
