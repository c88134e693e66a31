"""The lock claims of the headline study, simulated on many CPUs.

Two cases, each a trace built to test one claim:

- ``ptl_case``: workers each churn their own VMAs (mprotect splits and
  merges, a scratch mmap and munmap, writes) while reclaim, woken between
  rounds, walks their pages. The seed (rmap 39) claims try_to_unmap no
  longer needs the mm's page_table_lock to find the VMA, and VMA changes
  no longer take it: measured as the page_table_lock time the rmap walks
  hold per page they unmap, and the time every operation waits for
  page_table_lock, on 8 CPUs.
- ``forkstorm_case``: AIM7's fork_test pattern: a driver with several
  faulted VMAs forks users, each of which forks children that write a page
  and exit, over and over. Every fork and exit links or unlinks each VMA
  under its family's root anon_vma lock (anon_vma_chain), so the users
  contend on it; ce6711f3d196 reports the 3.8 rwsem (FIFO hand-off) cost
  aim7 fork_test half its throughput and writer lock stealing won it back.

``lock_claims()`` returns the verdicts as plain dicts (the fields of
``report.study.Verdict``), computed once per process.
"""

from __future__ import annotations

import functools
import json
from typing import Any

PAGE = 4096
BASE = 0x2AAAAAAAB000


def _map(pid: int, addr: int, pages: int, prot: str = "rw-") -> dict:
    return {"op": "mmap", "pid": pid, "addr": addr, "len": pages * PAGE, "prot": prot,
            "flags": ["private", "anonymous", "fixed"], "file": None, "expect": addr}


def _w(pid: int, addr: int, pages: int, token: str) -> dict:
    return {"op": "touch", "pid": pid, "addr": addr, "len": pages * PAGE, "access": "w",
            "token": token}


def ptl_case(workers: int = 8, pages: int = 64, rounds: int = 12, reclaim: int = 96) -> list[dict]:
    """Workers churning VMAs while reclaim walks their pages (see the module
    docstring)."""
    ev: list[dict] = [{"op": "spawn", "pid": 1}]
    for c in range(2, workers + 2):
        ev.append({"op": "fork", "pid": 1, "child": c})
    for c in range(2, workers + 2):
        a = BASE + c * 1024 * PAGE
        ev += [_map(c, a, pages), _w(c, a, pages, f"w{c}")]
    for r in range(rounds):
        for c in range(2, workers + 2):
            a = BASE + c * 1024 * PAGE
            mid = a + (r % (pages - 2) + 1) * PAGE
            scratch = a + 512 * PAGE
            ev += [{"op": "mprotect", "pid": c, "addr": mid, "len": PAGE, "prot": "r--",
                    "expect": 0},
                   {"op": "mprotect", "pid": c, "addr": mid, "len": PAGE, "prot": "rw-",
                    "expect": 0},
                   _map(c, scratch, 4), _w(c, scratch, 4, f"s{c}.{r}"),
                   {"op": "munmap", "pid": c, "addr": scratch, "len": 4 * PAGE, "expect": 0},
                   _w(c, a, 8, f"r{c}.{r}")]
        ev.append({"op": "reclaim", "pages": reclaim})
    return ev


def forkstorm_case(users: int = 32, rounds: int = 4, vmas: int = 16, pages: int = 4) -> list[dict]:
    """AIM7 fork_test: users fork children that write a page and exit, and
    reap them. The users come from the driver as a binary tree of forks (so
    that starting them is short: AIM7 runs long enough that its serial
    start does not count) and all share the driver's anon_vmas' roots."""
    ev: list[dict] = [{"op": "spawn", "pid": 1}]
    for i in range(vmas):
        a = BASE + 2 * i * pages * PAGE
        ev += [_map(1, a, pages, "rw-" if i % 2 else "rwx"), _w(1, a, pages, f"d{i}")]
    for u in range(2, users + 2):
        ev.append({"op": "fork", "pid": u // 2, "child": u})
    child = 2 + users
    for r in range(rounds):
        for u in range(2, users + 2):
            ev += [{"op": "fork", "pid": u, "child": child},
                   _w(child, BASE + 2 * ((r + u) % vmas) * pages * PAGE, 1, f"c{child}"),
                   {"op": "exit", "pid": child}]
            child += 1
    return ev


#: CPU counts of the fork storm's verdict (the full curves: rmaplab smp)
STORM_CPUS = (1, 32)
ERAS_AVC = ("spin", "mutex", "rwsem", "rwsem-read", "rwsem-steal", "rwsem-spin")
#: the ptl case runs in this much memory (pages), so that reclaim walks
PTL_MEM = 448


def _events(ev: list[dict], name: str) -> list[Any]:
    from rmaplab.trace.reader import parse_trace
    return list(parse_trace([json.dumps(e) for e in ev], filename=f"<smp:{name}>").events)


def ptl_results(cpus: int = 8) -> dict[str, dict[str, Any]]:
    """Per scheme at its own era, on ``cpus`` CPUs: the page_table_lock
    time spent on vma lookups in rmap walks (find_vma under it), held by
    vma changes (mmap, mprotect), and its contention (wait, failed trylocks)."""
    from rmaplab.report.smp import build_tasks, probe, simulate
    from rmaplab.report.smp.costs import CostTable
    from rmaplab.report.smp.eras import ERAS, Variant
    from rmaplab.report.smp.ops import Builder
    evs = _events(ptl_case(), "ptl")
    costs = CostTable()
    out = {}
    for scheme, era in (("anon_vma", "2.6.7"), ("pte_chain", "2.6.6"), ("anonmm", "2.6.6-mm")):
        v = Variant(scheme, ERAS[era])
        recs = probe(evs, scheme, mem_pages=PTL_MEM)
        r = simulate(build_tasks(recs, Builder(scheme, v.era, costs)), v, cpus, costs)
        lookups = sum(w.deltas.get("find_vma_calls", 0) for rec in recs for rc in rec.reclaims
                      for w in rc.walks) * costs["find_vma_calls"]
        vma_changes = sum(r.by_op.get(k, {}).get("ptl", {}).get("hold_ns", 0.0)
                          for k in ("mmap", "mprotect"))
        ptl = r.locks.get("ptl", {})
        out[scheme] = {"result": r, "lookup_ns": lookups, "vma_ns": vma_changes,
                       "wait_ns": ptl.get("wait_ns", 0.0), "failed": ptl.get("trylock_failed", 0)}
    return out


def forkstorm_results(variants: tuple[str, ...] = ERAS_AVC,
                      cpus: tuple[int, ...] = STORM_CPUS) -> dict[str, dict[int, Any]]:
    """The fork storm's results per anon_vma_chain era at each CPU count."""
    from rmaplab.report.smp import run_smp
    from rmaplab.report.smp.eras import ERAS, Variant
    evs = _events(forkstorm_case(), "forkstorm")
    out: dict[str, dict[int, Any]] = {}
    for r in run_smp(evs, [Variant("anon_vma_chain", ERAS[e]) for e in variants], cpus):
        out.setdefault(r.era, {})[r.cpus] = r
    return out


@functools.lru_cache(maxsize=1)
def lock_claims() -> tuple[dict[str, Any], ...]:
    """The two lock verdicts (fields of report.study.Verdict)."""
    out = []
    p = ptl_results()
    us = {s: (v["lookup_ns"] / 1000, v["vma_ns"] / 1000) for s, v in p.items()}
    others = [s for s in us if s != "anon_vma"]
    ok = us["anon_vma"] == (0.0, 0.0) and all(min(us[s]) > 0 for s in others)
    out.append({
        "claim": "try_to_unmap needs no page_table_lock to find the vma (page -> anon_vma -> vma), "
                 "so vma changes no longer take it",
        "case": "smp-ptl",
        "figures": "page_table_lock held for vma lookups in rmap walks + by vma changes (us): "
                   + ", ".join(f"{s} {a:,.0f} + {b:,.0f}" for s, (a, b) in us.items())
                   + "; its contention on 8 simulated CPUs (us waited, trylocks failed): "
                   + ", ".join(f"{s} {v['wait_ns'] / 1000:,.0f}, {v['failed']}" for s, v in p.items()),
        "supported": ok, "values": {s: round(a + b, 1) for s, (a, b) in us.items()},
        "measure": "page_table_lock held for vma lookups and changes, us"})
    f = forkstorm_results(("mutex", "rwsem", "rwsem-steal"))
    top = max(STORM_CPUS)
    thr = {e: rs[top].throughput / 1000 for e, rs in f.items()}
    speed = {e: rs[top].throughput / rs[1].throughput for e, rs in f.items()}
    out.append({
        "claim": "fork-heavy loads on anon_vma_chain: the 3.8 rwsem's FIFO hand-off of the root "
                 "anon_vma lock loses throughput the 3.0 mutex had (aim7 fork_test: -50% in "
                 "ce6711f3d196), and writer lock stealing (3.10) wins it back",
        "case": "smp-forkstorm",
        "figures": f"fork storm, events per ms on {top} simulated CPUs (speedup over 1 CPU): "
                   + ", ".join(f"{e} {thr[e]:,.0f} ({speed[e]:.1f}x)" for e in thr)
                   + f"; rwsem vs mutex {100 * (thr['rwsem'] / thr['mutex'] - 1):+.0f}%",
        "supported": thr["rwsem"] < thr["mutex"] and thr["rwsem-steal"] > thr["rwsem"],
        "values": {e: round(v, 1) for e, v in thr.items()},
        "measure": f"anon_vma_chain fork storm, events per ms on {top} simulated CPUs, by lock era"})
    return tuple(out)
