"""``rmaplab demo``: the seed's story in one run.

fork → COW → an mprotect split and re-merge → an mremap move ("Magic") →
rmap walks that find every page from its anon_vma, with the layouts drawn
one character per page and every walk's cost.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rmaplab.asm.page import PAGE_SHIFT, PAGE_SIZE

P = PAGE_SIZE
N = 12          # pages drawn


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo", help="walk through fork, COW, mprotect, mremap and rmap walks",
        description=__doc__.replace("``", "'"), formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  rmaplab demo\n  rmaplab demo --json > demo.json\n")
    p.add_argument("--json", action="store_true", help="print the steps as JSON")
    p.add_argument("--scheme", default="anon_vma",
                   help="the reverse-mapping scheme to tell the story with (default anon_vma)")
    p.add_argument("--mem", help="physical memory, e.g. 64M (default: unlimited)")
    p.add_argument("--swap", help="swap space (default: unlimited)")
    p.set_defaults(func=run)


class Story:
    def __init__(self, k: Any, base: int) -> None:
        self.k, self.base = k, base
        self.steps: list[dict[str, Any]] = []

    def show(self, title: str, note: str = "") -> None:
        from rmaplab.check import check_rmap_complete, validate
        from rmaplab.show.layout import draw
        k, b = self.k, self.base
        pids: dict[int, dict[str, Any]] = {}
        step: dict[str, Any] = {"title": title, "note": note, "pids": pids}
        for pid in k.pids():
            mm = k.mm(pid)
            pids[pid] = {w: draw(mm, b, N, w, k.mem) for w in ("vma", "av", "pte")}
        validate(k)
        check_rmap_complete(k)
        self.steps.append(step)

    def walk(self, pid: int, page: int) -> dict:
        k = self.k
        addr = self.base + page * P
        pfn = k.mm(pid).pgd.get(addr >> PAGE_SHIFT) >> 12
        before = k.stat.as_dict()
        found = k.scheme.rmap_walk(pfn)
        after = k.stat.as_dict()
        cost = {n: after[n] - before[n] for n in ("rmap_vmas_visited", "rmap_vmas_skipped", "rmap_mms_visited",
                                                  "rmap_ptes_compared", "find_vma_calls",
                                                  "lock_anon_vma", "lock_anonmm") if after[n] != before[n]}
        w = {"pid": pid, "page": page, "pfn": pfn,
             "index": int(k.mem.index[pfn]), "anon_vma": int(k.mem.mapping[pfn]) >> 1,
             "found": [(mm.owner, (a - self.base) // P) for mm, a in found], "cost": cost}
        self.steps[-1].setdefault("walks", []).append(w)
        return w


def scenario(scheme: str = "anon_vma", mem: int | None = None,
             swap: int | None = None) -> Story:
    from rmaplab.config import Config
    from rmaplab.kernel import Kernel
    k = Kernel(Config(scheme=scheme, mem_pages=mem, swap_pages=swap))
    k.spawn(1)
    base = k.mmap(1, None, N * P, "---", ["private", "anonymous"])
    k.munmap(1, base, N * P)                 # a free window to draw
    s = Story(k, base)
    k.mmap(1, base, 6 * P, "rw-", ["private", "anonymous", "fixed"])
    k.touch(1, base, 6 * P, "w", "parent")
    s.show("pid 1 maps 6 pages and writes them",
           "the first write fault gives the VMA an anon_vma; each page's index is its address")
    k.fork(1, 2)
    s.show("fork: pid 2 shares every page, write-protected",
           "the child's VMA joins the same anon_vma list; no page is touched")
    k.touch(2, base + P, 2 * P, "w", "child")
    s.show("pid 2 writes pages 1-2: copy on write",
           "the copies go to the child's vma->anon_vma, which is the same anon_vma (2.6.7)")
    s.walk(1, 0)
    s.walk(2, 1)
    k.mprotect(1, base + 2 * P, 2 * P, "r--")
    s.show("pid 1 mprotects pages 2-3 read-only: a split", "three VMAs, one anon_vma")
    k.mprotect(1, base + 2 * P, 2 * P, "rw-")
    s.show("and back to rw-: vma_merge case 6 re-merges them",
           "same anon_vma and contiguous vm_pgoff, so the three become one")
    k.mremap(1, base + 4 * P, 2 * P, 2 * P, ["maymove", "fixed"], base + 9 * P)
    s.show("pid 1 moves pages 4-5 to 9-10 with mremap",
           "the moved VMA keeps its vm_pgoff and anon_vma: no page is touched (the \"Magic\")")
    s.walk(1, 9)
    s.walk(1, 0)
    k.mremap(1, base + 9 * P, 2 * P, 2 * P, ["maymove", "fixed"], base + 4 * P)
    s.show("moved back: it re-merges", "pgoff is contiguous again")
    k.exit(2)
    s.show("pid 2 exits", "its VMA leaves the anon_vma list; its COW pages are freed")
    return s


def render(s: Story) -> str:
    from rmaplab.show.layout import ruler
    out = []
    for i, step in enumerate(s.steps, 1):
        out.append(f"{i}. {step['title']}")
        if step["note"]:
            out.append(f"   {step['note']}")
        out.append(f"              {ruler(N)}")
        for pid, d in step["pids"].items():
            out.append(f"   pid {pid} vma  {d['vma']}")
            out.append(f"         av   {d['av']}")
            out.append(f"         pte  {d['pte']}")
        for w in step.get("walks", []):
            found = ", ".join(f"pid {p} page {g}" for p, g in w["found"])
            cost = ", ".join(f"{n.replace('rmap_', '')}={v}" for n, v in w["cost"].items())
            out.append(f"   rmap walk from pid {w['pid']} page {w['page']} (pfn {w['pfn']},"
                       f" mapping {w['anon_vma']}, index {w['index']:#x}):")
            out.append(f"     found {found}   [{cost}]")
        out.append("")
    out.append("legend: vma a letter per VMA; av a symbol per anon_vma ('-' none);")
    out.append("        pte '-' none, 'z' zero page, 'a'/'A' anon read-only/writable, 's' swap")
    out.append("every step was checked: validate() and rmap completeness passed")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    from rmaplab.config import size_to_pages
    s = scenario(args.scheme, size_to_pages(args.mem), size_to_pages(args.swap))
    if args.json:
        print(json.dumps(s.steps, indent=1))
    else:
        print(render(s))
    return 0
