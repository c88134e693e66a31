"""Generate the two benchmark traces of ``rmaplab replay``.

    python bench/gen_traces.py OUTDIR

writes

- ``touch-1g.jsonl``: one process maps 1 GiB of private anonymous memory
  and writes all of it with one ``touch`` (262144 pages);
- ``mprotect-40k.jsonl``: JIT-style protection churn, 40 000 ``mprotect``
  lines: a 1024-page region whose pages are flipped between ``rw-`` and
  ``r-x`` one after another (many lines repeat, as in a real JIT);
- ``mprotect-40k-distinct.jsonl``: the same number of mprotect lines, every
  line different (each over a different page of a 40 000-page region): the
  reader's worst case.

Then time them with, for example::

    time rmaplab replay OUTDIR/touch-1g.jsonl
"""

from __future__ import annotations

import json
import os
import sys

BASE = 0x2AAAAAAAB000       # where the first mmap of a spawned process lands
PAGE = 4096
HEADER = {"format": "rmaplab-trace", "version": 1, "page_size": PAGE,
          "source": "bench/gen_traces.py"}


def _write(path: str, events: list[dict]) -> None:
    with open(path, "w") as f:
        f.write(json.dumps(HEADER) + "\n")
        for e in events:
            f.write(json.dumps(e, separators=(",", ":")) + "\n")


def touch_1g() -> list[dict]:
    n = 1 << 30
    return [{"op": "spawn", "pid": 1},
            {"op": "mmap", "pid": 1, "addr": None, "len": n, "prot": "rw-",
             "flags": ["private", "anonymous"], "file": None, "expect": BASE},
            {"op": "touch", "pid": 1, "addr": hex(BASE), "len": n, "access": "w",
             "token": "t", "expect": "ok"}]


def mprotect_churn(lines: int = 40_000, pages: int = 1024, distinct: bool = False) -> list[dict]:
    if distinct:
        pages = lines
    ev: list[dict] = [{"op": "spawn", "pid": 1},
                      {"op": "mmap", "pid": 1, "addr": None, "len": pages * PAGE,
                       "prot": "rw-", "flags": ["private", "anonymous"], "file": None,
                       "expect": BASE}]
    for i in range(lines):
        page = i % pages
        # each pass over the region flips every page to the other protection
        prot = "r-x" if (i // pages) % 2 == 0 else "rw-"
        ev.append({"op": "mprotect", "pid": 1, "addr": hex(BASE + page * PAGE), "len": PAGE,
                   "prot": prot, "expect": 0})
    return ev


def main(argv: list[str]) -> int:
    out = argv[1] if len(argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    _write(os.path.join(out, "touch-1g.jsonl"), touch_1g())
    _write(os.path.join(out, "mprotect-40k.jsonl"), mprotect_churn())
    _write(os.path.join(out, "mprotect-40k-distinct.jsonl"), mprotect_churn(distinct=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
