"""The headline study: the claims of the 2004 anon_vma patch (rmap 39/40)
and of the 2010 anon_vma_chain change, each measured on a workload built to
test it, under every scheme, with a verdict line per claim.

Every case is a trace (a list of trace-v1 events) and every figure comes
from the model's counters (``report.measure``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from rmaplab.report.measure import Metrics

PAGE = 4096
BASE = 0x2AAAAAAAB000

SWEEP_FANOUT = ("rmap work per reclaimed page against processes (fan-out, 16 pages "
                "a process)")
SWEEP_PRESSURE = ("rmap work per reclaimed page against memory pressure (swap-out, "
                  "48 pages a worker)")
SWEEP_VMAS = "peak rmap metadata (i386 bytes) against VMAs"


def _spawn() -> list[dict]:
    return [{"op": "spawn", "pid": 1}]


def _map(pid: int, addr: int, pages: int, prot: str = "rw-") -> dict:
    return {"op": "mmap", "pid": pid, "addr": addr, "len": pages * PAGE, "prot": prot,
            "flags": ["private", "anonymous", "fixed"], "file": None, "expect": addr}


def _w(pid: int, addr: int, pages: int, token: str) -> dict:
    return {"op": "touch", "pid": pid, "addr": addr, "len": pages * PAGE, "access": "w",
            "token": token}


def swapout_case(workers: int = 12, pages: int = 384) -> list[dict]:
    """A server forks workers; each maps and writes its own private memory
    (so each page is mapped once, in a VMA created after the fork), under
    memory pressure."""
    ev = _spawn() + [_map(1, BASE, 64), _w(1, BASE, 64, "parent")]
    for c in range(2, workers + 2):
        ev.append({"op": "fork", "pid": 1, "child": c})
    for c in range(2, workers + 2):
        a = BASE + (c * 1024) * PAGE
        ev += [_map(c, a, pages), _w(c, a, pages, f"w{c}")]
    for c in range(2, workers + 2):
        a = BASE + (c * 1024) * PAGE
        ev.append({"op": "touch", "pid": c, "addr": a, "len": pages * PAGE, "access": "r"})
    return ev


def lowmem_case(vmas: int = 200, children: int = 16) -> list[dict]:
    """Many small VMAs (alternating protections so that they cannot merge),
    all written, then a fork-heavy phase."""
    ev = _spawn()
    for i in range(vmas):
        a = BASE + 2 * i * PAGE
        ev += [_map(1, a, 2, "rw-" if i % 2 else "rwx"), _w(1, a, 2, f"v{i}")]
    for c in range(2, children + 2):
        ev.append({"op": "fork", "pid": 1, "child": c})
    return ev


def mremap_case(children: int = 4, pages: int = 256) -> list[dict]:
    """Shared (forked, not yet COWed) anonymous pages moved by mremap."""
    ev = _spawn() + [_map(1, BASE, pages), _w(1, BASE, pages, "shared")]
    for c in range(2, children + 2):
        ev.append({"op": "fork", "pid": 1, "child": c})
    for pid in range(1, children + 2):
        dst = BASE + 4096 * PAGE
        ev.append({"op": "mremap", "pid": pid, "addr": BASE, "old_len": pages * PAGE,
                   "new_len": 2 * pages * PAGE, "flags": ["maymove", "fixed"],
                   "new_addr": dst, "expect": dst})
        ev.append({"op": "touch", "pid": pid, "addr": dst, "len": pages * PAGE, "access": "r"})
    return ev


def fork_case(pages: int = 8192, children: int = 8) -> list[dict]:
    """A 32 MiB process forks children that exit at once (fork/exit cost)."""
    ev = _spawn() + [_map(1, BASE, pages), _w(1, BASE, pages, "big")]
    for c in range(2, children + 2):
        ev += [{"op": "fork", "pid": 1, "child": c}, {"op": "exit", "pid": c}]
    return ev


def fanout_case(children: int = 48, pages: int = 128) -> list[dict]:
    """AIM7-like fan-out: the parent's pages COWed by every child, then
    memory pressure walks child-private pages (the 2010 case)."""
    ev = _spawn() + [_map(1, BASE, pages), _w(1, BASE, pages, "p")]
    for c in range(2, children + 2):
        ev.append({"op": "fork", "pid": 1, "child": c})
    for c in range(2, children + 2):
        ev.append(_w(c, BASE, pages, f"c{c}"))
    ev.append({"op": "reclaim", "pages": children * pages // 2})
    return ev


def privfile_case(processes: int = 32, pages: int = 16, written: int = 4) -> list[dict]:
    """Shared libraries' data: processes (each its own program, no fork)
    map one library's data privately, read it all and write a few pages
    (copy on write); then reclaim walks those private copies."""
    lib = BASE + (1 << 20) * PAGE
    ev: list[dict] = [{"op": "file", "name": "libc.so", "size": pages * PAGE}]
    for pid in range(1, processes + 1):
        ev += [{"op": "spawn", "pid": pid},
               {"op": "mmap", "pid": pid, "addr": lib, "len": pages * PAGE, "prot": "rw-",
                "flags": ["private", "fixed"], "file": {"name": "libc.so", "offset": 0},
                "expect": lib},
               {"op": "touch", "pid": pid, "addr": lib, "len": pages * PAGE, "access": "r"},
               _w(pid, lib, written, f"data{pid}")]
    ev.append({"op": "reclaim", "pages": processes * written})
    return ev


@dataclass
class Case:
    name: str
    title: str
    events: Callable[[], list[dict]]
    mem_pages: int | None
    schemes: tuple[str, ...]


CASES = [
    Case("swapout", "swap-out of post-fork private memory", swapout_case, 2048,
         ("anon_vma", "anonmm", "pte_chain", "anon_vma_chain", "none")),
    Case("lowmem", "rmap metadata of a VMA- and fork-heavy process", lowmem_case, None,
         ("anon_vma", "anonmm", "pte_chain", "anon_vma_chain")),
    Case("mremap", "mremap of shared anonymous pages", mremap_case, None,
         ("anon_vma", "anonmm", "pte_chain", "anon_vma_chain")),
    Case("fork", "fork and exit of a 32 MiB process", fork_case, None,
         ("anon_vma", "anonmm", "pte_chain", "anon_vma_chain")),
    Case("fanout", "AIM7-like fan-out: reclaim of child-private COW pages", fanout_case, None,
         ("anon_vma", "anonmm", "pte_chain", "anon_vma_chain")),
    Case("privfile", "shared libraries' data: reclaim of private copies of file pages",
         privfile_case, None, ("anon_vma", "pure_anon_vma", "anon_vma_chain")),
]


@dataclass
class Verdict:
    claim: str
    case: str
    figures: str
    supported: bool | None
    #: the measure the verdict rests on, per scheme, and what it is
    values: dict[str, float] = field(default_factory=dict)
    measure: str = ""
    #: the title of the sweep (``SWEEPS``) that shows the claim over a range
    sweep: str | None = None

    def line(self) -> str:
        mark = {True: "supported", False: "NOT supported", None: "not measured"}[self.supported]
        return f"[{mark}] {self.claim}: {self.figures}"


def _get(res: dict[tuple[str, str], Metrics], case: str, scheme: str) -> Metrics | None:
    return res.get((case, scheme))


def verdicts(res: dict[tuple[str, str], Metrics],
             smp: list[Verdict] | None = None) -> list[Verdict]:
    """Each claim checked against the measurements that exist (``smp``:
    the lock claims' verdicts if already simulated, e.g. in a worker)."""
    out: list[Verdict] = []

    def per_steal(m: Metrics | None) -> float | None:
        return None if m is None else m.per_reclaimed()

    av, mm, pc = (_get(res, "swapout", s) for s in ("anon_vma", "anonmm", "pte_chain"))
    a, b, c = per_steal(av), per_steal(mm), per_steal(pc)
    if a is not None and b is not None:
        fig = f"rmap work per reclaimed page: anon_vma {a:.2f}, anonmm {b:.2f}"
        if c is not None:
            fig += f", pte_chain {c:.2f}"
        vals = {"anon_vma": a, "anonmm": b, **({"pte_chain": c} if c is not None else {})}
        out.append(Verdict("swap-out locates anonymous vmas more quickly than anonmm",
                           "swapout", fig, a < b, vals, "rmap work per reclaimed page",
                           SWEEP_PRESSURE))
    if av is not None and av.stat.get("pgsteal"):
        per = {s: m.stat.get("find_vma_calls", 0) / max(1, m.stat.get("pgsteal", 1))
               for s in ("anon_vma", "anonmm", "pte_chain")
               if (m := _get(res, "swapout", s)) is not None}
        out.append(Verdict("try_to_unmap needs no find_vma (page -> anon_vma -> vma)", "swapout",
                           "find_vma calls per reclaimed page: "
                           + ", ".join(f"{s} {v:.2f}" for s, v in per.items()),
                           av.stat.get("find_vma_calls", 0) == 0, per,
                           "find_vma calls per reclaimed page"))
    av, mm, pc = (_get(res, "lowmem", s) for s in ("anon_vma", "anonmm", "pte_chain"))
    if av is not None and mm is not None:
        fig = (f"peak rmap metadata (i386): anon_vma {av.peak_bytes['i386']:,} B,"
               f" anonmm {mm.peak_bytes['i386']:,} B")
        if pc is not None:
            fig += f", pte_chain {pc.peak_bytes['i386']:,} B"
        vals = {m.scheme: m.peak_bytes["i386"] for m in (av, mm, pc) if m is not None}
        out.append(Verdict("anon_vma costs more lowmem per vma than anonmm", "lowmem", fig,
                           av.peak_bytes["i386"] > mm.peak_bytes["i386"], vals,
                           "peak rmap metadata, i386 bytes", SWEEP_VMAS))
    av, pc = _get(res, "fork", "anon_vma"), _get(res, "fork", "pte_chain")
    if av is not None and pc is not None:
        out.append(Verdict("pte_chain's metadata exceeds anon_vma's on a fork-heavy workload",
                           "fork", f"peak rmap metadata (i386): pte_chain {pc.peak_bytes['i386']:,}"
                           f" B, anon_vma {av.peak_bytes['i386']:,} B",
                           pc.peak_bytes["i386"] > av.peak_bytes["i386"],
                           {"pte_chain": pc.peak_bytes["i386"], "anon_vma": av.peak_bytes["i386"]},
                           "peak rmap metadata, i386 bytes"))
    av, mm = _get(res, "mremap", "anon_vma"), _get(res, "mremap", "anonmm")
    if av is not None and mm is not None:
        out.append(Verdict("copes effortlessly with mremap moves (anonmm must copy)", "mremap",
                           f"pages copied by mremap: anon_vma {av.stat.get('mremap_cows', 0)},"
                           f" anonmm {mm.stat.get('mremap_cows', 0)}",
                           av.stat.get("mremap_cows", 0) == 0 and mm.stat.get("mremap_cows", 0) > 0,
                           {"anon_vma": av.stat.get("mremap_cows", 0),
                            "anonmm": mm.stat.get("mremap_cows", 0)}, "pages copied by mremap"))
    av, pc = _get(res, "fork", "anon_vma"), _get(res, "fork", "pte_chain")
    if av is not None and pc is not None:
        fa = av.walk_work("fork") + av.walk_work("exit")
        fp = pc.walk_work("fork") + pc.walk_work("exit")
        out.append(Verdict("fork and exit do no per-page rmap search (vs pte_chain)", "fork",
                           f"rmap work in fork+exit: anon_vma {fa:,}, pte_chain {fp:,}", fa < fp,
                           {"anon_vma": fa, "pte_chain": fp}, "rmap work in fork and exit"))
    av, ac = _get(res, "fanout", "anon_vma"), _get(res, "fanout", "anon_vma_chain")
    if av is not None and ac is not None:
        a, b = per_steal(av), per_steal(ac)
        if a is not None and b is not None:
            out.append(Verdict("2010: anon_vma_chain walks child-private pages in ~O(1), "
                               "anon_vma in O(N)", "fanout",
                               f"rmap work per reclaimed page: anon_vma {a:.1f},"
                               f" anon_vma_chain {b:.1f}", b * 4 < a,
                               {"anon_vma": a, "anon_vma_chain": b},
                               "rmap work per reclaimed page", SWEEP_FANOUT))
    av, pu = _get(res, "privfile", "anon_vma"), _get(res, "privfile", "pure_anon_vma")
    if av is not None and pu is not None:
        a, b = per_steal(av), per_steal(pu)
        if a is not None and b is not None:
            out.append(Verdict("anon_vma only for purely anonymous vmas is \"probably not a good "
                               "idea\": each private copy needs a long search of the file's vmas",
                               "privfile",
                               f"rmap work per reclaimed page: anon_vma {a:.1f}, pure_anon_vma "
                               f"{b:.1f}; peak metadata (i386): anon_vma "
                               f"{av.peak_bytes['i386']:,} B, pure_anon_vma "
                               f"{pu.peak_bytes['i386']:,} B", b > 2 * a,
                               {"anon_vma": a, "pure_anon_vma": b},
                               "rmap work per reclaimed page"))
    if _get(res, "swapout", "pte_chain") is not None and _get(res, "fanout", "anon_vma_chain") is not None:
        out += smp_verdicts() if smp is None else smp
    return out


def smp_verdicts() -> list[Verdict]:
    """The lock claims, simulated on many CPUs (``report.smp.claims``): the
    seed's page_table_lock claim, and fork-heavy scaling of anon_vma_chain
    by lock era."""
    from rmaplab.report.smp.claims import lock_claims
    return [Verdict(**c) for c in lock_claims()]


def to_json(res: dict[tuple[str, str], Metrics], vs: list[Verdict]) -> str:
    return json.dumps({"results": [dict(case=c, **m.as_dict()) for (c, _), m in res.items()],
                       "verdicts": [v.__dict__ for v in vs]}, indent=1, default=str)


def case_by_name(name: str) -> Case:
    for c in CASES:
        if c.name == name:
            return c
    raise KeyError(name)


@dataclass(frozen=True)
class Job:
    """One run: a case (with parameters) under one scheme."""

    case: str
    scheme: str
    params: tuple[tuple[str, int], ...] = ()
    mem_pages: int | None = -1          # -1: the case's own setting


def run_job(job: Job) -> tuple[Job, Metrics]:
    """Run a job (in a worker process); metrics are picklable."""
    from rmaplab.report.measure import measure
    from rmaplab.trace.reader import parse_trace
    case = case_by_name(job.case)
    evs = parse_trace([json.dumps(e) for e in case.events(**dict(job.params))],
                      filename=f"<study:{job.case}>")
    mem = case.mem_pages if job.mem_pages == -1 else job.mem_pages
    return job, measure(list(evs.events), job.scheme, mem_pages=mem)




def headline_jobs(schemes: list[str]) -> list[Job]:
    return [Job(c.name, s) for c in CASES for s in c.schemes if s in schemes]


#: sweeps drawn in the HTML report: (title, case, parameter, values, metric);
#: a point equal to a headline run is that run, not run again
SWEEPS = (
    (SWEEP_FANOUT, "fanout", "children", (4, 8, 16, 32, 48, 64), "walk_work_per_reclaimed"),
    (SWEEP_PRESSURE, "swapout", "mem_pages", (128, 192, 256, 384), "walk_work_per_reclaimed"),
    (SWEEP_VMAS, "lowmem", "vmas", (25, 50, 100, 200), "metadata_bytes_i386"),
)
#: the schemes a sweep runs: those its claim compares (the case's table has them all)
SWEEP_SCHEMES = {SWEEP_FANOUT: ("anon_vma", "anon_vma_chain"),
                 SWEEP_PRESSURE: ("anon_vma", "anonmm"), SWEEP_VMAS: ("anon_vma", "anonmm")}
#: parameters a sweep fixes: the cases at an eighth of their size (16 pages
#: a process; 12 workers x 48 pages in an eighth of the memory): the cost per
#: page hardly depends on the size (within 2 % at 48 children), the run
#: time does, and compare --html must cost little more than compare
SWEEP_FIXED: dict[str, tuple[tuple[str, int], ...]] = {SWEEP_FANOUT: (("pages", 16),),
                                                       SWEEP_PRESSURE: (("pages", 48),)}
#: the x axis of each sweep
SWEEP_X = {SWEEP_FANOUT: "children forked", SWEEP_PRESSURE: "memory (pages; 640 written)",
           SWEEP_VMAS: "VMAs"}


def sweep_jobs(schemes: list[str]) -> list[tuple[str, int, Job]]:
    out = []
    for title, case, param, values, _ in SWEEPS:
        c = case_by_name(case)
        for v in values:
            for s in SWEEP_SCHEMES.get(title, c.schemes):
                if s not in schemes:
                    continue
                fixed = SWEEP_FIXED.get(title, ())
                if param == "mem_pages":
                    out.append((title, v, Job(case, s, fixed, v)))
                else:
                    out.append((title, v, Job(case, s, fixed + ((param, v),))))
    return out


def canonical(job: Job) -> Job:
    """``job`` named one way: parameters at their case's defaults and a
    ``mem_pages`` equal to the case's own are dropped, so that a sweep point
    equal to a headline run is that run (``compare --html`` runs it once)."""
    import inspect
    case = case_by_name(job.case)
    defaults = {n: p.default for n, p in inspect.signature(case.events).parameters.items()}
    params = tuple((k, v) for k, v in job.params if defaults.get(k, object()) != v)
    mem = -1 if job.mem_pages == case.mem_pages else job.mem_pages
    return Job(job.case, job.scheme, params, mem)
