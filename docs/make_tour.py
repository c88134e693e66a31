"""Write docs/tour.md: a newcomer's first hour with rmaplab, every output
in it real, made by running the commands on this tree.

    python docs/make_tour.py            # rewrite docs/tour.md (and the screenshot)
    python docs/make_tour.py --check    # exit 1 if docs/tour.md is out of date

``tests/test_tour.py`` fails when docs/tour.md differs from what this
script writes, so the tour cannot drift from the program. Figures that
vary from run to run (wall-clock times) are replaced by "..."; the
screenshot (docs/tour-show.png, taken with Debian's chromium when it and
Playwright are installed) is not compared.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
TOUR = DOCS / "tour.md"
SHOT = DOCS / "tour-show.png"

TRACE = "aim7.jsonl"
GEN = f"rmaplab generate aim7 -p N=3 -p M=8 -p chunk=4 -p reads=2 -p reclaim=0 -o {TRACE}"


def run(cmd: str) -> str:
    """Run an rmaplab command line in a fresh interpreter (so that the
    model's serial numbers start at 1, as for a user); its stdout, then
    its stderr."""
    argv = shlex.split(cmd)
    assert argv[0] == "rmaplab"
    p = subprocess.run([sys.executable, "-c", "import sys; from rmaplab.cli.main import main; "
                        "sys.exit(main(sys.argv[1:]))", *argv[1:]], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{cmd}: exit status {p.returncode}\n{p.stderr}")
    return _steady(p.stdout + p.stderr)


def _steady(text: str) -> str:
    """Wall-clock figures replaced, trailing blanks dropped."""
    text = re.sub(r"(\u2502 time +\u2502)([^\n]*)",
                  lambda m: m.group(1) + re.sub(r"\d+\.\d+", lambda n: "...".rjust(len(n.group())),
                                                m.group(2)), text)
    text = re.sub(r", \d+\.\ds$", ", ...s", text, flags=re.M)
    text = re.sub(r"^(wrote \S+: )[\d,]+ bytes", r"\1... bytes", text, flags=re.M)
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


def block(cmd: str, output: str | None = None) -> str:
    out = run(cmd) if output is None else output
    return f"```\n$ {cmd}\n{out}\n```\n"


def render() -> str:
    """The tour's text (runs every command in a scratch directory)."""
    os.environ["COLUMNS"] = "100"
    os.environ.pop("FORCE_COLOR", None)
    os.environ["NO_COLOR"] = "1"
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            return _render()
        finally:
            os.chdir(here)


def _render() -> str:
    parts = []
    add = parts.append
    add("""# A tour of rmaplab

A first hour with rmaplab, following one small trace from its first event
to the rmap walks of each scheme. Every output below is real: `python
docs/make_tour.py` ran the commands on this tree and wrote this file, and
a test fails when it is out of date (wall-clock times show as `...`).

Set up first (see the [README](../README.md)):

```sh
python3 -m venv .venv && . .venv/bin/activate && pip install -e .
```

## 1. A trace

A trace is a list of events, one JSON object a line
([trace-format.md](trace-format.md)). The generator writes the classic
workloads; this is AIM7's fork fan-out made tiny: a parent writes 8 pages,
forks 3 children, each child writes every page (copy on write), reads two,
and exits.

""")
    add(block(GEN))
    head = "\n".join(Path(TRACE).read_text().splitlines()[:9])
    add(f"\nIts first lines:\n\n```\n$ head -9 {TRACE}\n{head}\n```\n")
    add("""
## 2. Replay it

`replay` runs the trace on the model and checks each result against the
trace's `expect`; `--maps` prints each live process's `/proc/PID/maps` at
the end (in the 2.6 format, the offset column being `vm_pgoff << 12`).

""")
    add(block(f"rmaplab replay {TRACE} --maps -q"))
    add("""
## 3. See it

`show` draws every process's VMAs, one line per VMA and one character
per page: `-` no pte, `A` an anonymous page mapped once, `F` a page-cache
page, `z` the zero page, `s` a page swapped out, and a digit for a frame
that several ptes map (how many; `*` for ten or more). Processes whose
lines are the same are drawn once. Under the pages: the reverse-mapping
scheme's own structures. Here: after the parent wrote its pages, after the
three forks (every frame mapped four times, one anon_vma listing four
VMAs), and after the third child copied half of its pages.

""")
    add(block(f"rmaplab show {TRACE} --at 3,7,9"))
    add("""
## 4. One page's reverse map

`--page ADDR --pid PID` follows one page back to every pte that maps it:
the pte, `struct page` (mapcount, mapping, index), what the mapping
leads to, and every place the walk looks, with what it cost. Under
anon_vma the walk visits every VMA on the list, even the child that no
longer maps this frame:

""")
    add(block(f"rmaplab show {TRACE} --at 9 --pid 1 --page 0x2aaaaaaab000"))
    add("""
## 5. The same under each scheme

anon_vma_chain (Linux 2.6.34 and later) gives each child its own anon_vma
and links every VMA to its ancestors' through AVCs; the page copied by a
child points at the child's anon_vma, so a walk from it visits one VMA:

""")
    add(block(f"rmaplab show {TRACE} --at 9 --pid 3 --page 0x2aaaaaaaf000 --scheme anon_vma_chain"))
    add("""
pte_chain (2.5.x to 2.6.6) keeps, per frame, the address of every pte that
maps it; anonmm (Hugh Dickins' 2004 rival) keeps one anonmm per process,
in a ring per exec:

""")
    add(block(f"rmaplab show {TRACE} --at 7 --pid 1 --scheme pte_chain,anonmm"))
    add("""
## 6. What it costs

`compare` replays the trace under each scheme and counts what the 2004
debate counted: VMAs and mms visited by walks, ptes compared, `find_vma`
calls, locks, and the rmap metadata each scheme needs (i386 and x86_64
structure sizes). Without an argument it runs the headline study, each
claim of the anon_vma patch on a workload built for it (see the README).

""")
    add(block(f"rmaplab compare {TRACE} --scheme anon_vma,anonmm,pte_chain,anon_vma_chain"))
    add("""
## 7. Step through it in a browser

`show --html` writes one self-contained page (no network) that steps
through every event: a slider and step buttons (or the arrow keys), every
process's address space a cell per page, the frames coloured by how many
ptes map them, and the scheme's graph drawn by graphviz. Hover a page to
list every pte that maps its frame; click to keep it outlined while
stepping. `--scheme a,b` puts two schemes side by side.

""")
    add(block(f"rmaplab show {TRACE} --html aim7.html --scheme anon_vma,anon_vma_chain"))
    _screenshot(Path("aim7.html"))
    add("""
![the page at event 9, anon_vma and anon_vma_chain side by side](tour-show.png)

## 8. Where next

- `rmaplab generate --list`: the other workloads (kbuild, realloc, jit,
  shared_server, fork_chain), each with its parameters;
- `rmaplab record -o ls.jsonl -- ls /`: a trace of a real program;
- `--mem 1M --swap 4M` on replay, show and compare: memory pressure,
  reclaim and swap (`s` pages in the drawings);
- `--profile modern`: Linux 6.18's rules as a whole (the README's profile
  table);
- [design.md](design.md) for how the model is built, and
  [kernel-reference.md](kernel-reference.md) for the kernel facts it
  follows.
""")
    return "".join(parts)


def _screenshot(page: Path) -> None:
    """docs/tour-show.png: the page at event 9 in Debian's chromium, if
    it and Playwright are there (otherwise the old picture stays)."""
    if os.environ.get("RMAPLAB_TOUR_NO_SHOT") or not os.access("/usr/bin/chromium", os.X_OK):
        return
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium",
                              args=["--headless", "--no-sandbox", "--disable-gpu",
                                    "--disable-background-networking",
                                    "--disable-component-update", "--no-first-run"])
        pg = b.new_page(viewport={"width": 1280, "height": 760})
        pg.goto(page.resolve().as_uri())
        pg.wait_for_function("document.body.dataset.event !== undefined")
        pg.evaluate("window.rmapShow.go(9)")
        pg.wait_for_function("document.body.dataset.event === '9'")
        pg.screenshot(path=str(SHOT))
        b.close()


def main(argv: list[str]) -> int:
    if "--check" in argv:
        os.environ["RMAPLAB_TOUR_NO_SHOT"] = "1"
        if TOUR.read_text() != render():
            print(f"{TOUR} is out of date: run python docs/make_tour.py", file=sys.stderr)
            return 1
        return 0
    TOUR.write_text(render())
    print(f"wrote {TOUR}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
