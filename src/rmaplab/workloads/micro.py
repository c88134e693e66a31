"""The micro-workloads of ``rmaplab bench``: each is a trace (a list of
trace-v1 event dicts) split into a setup prefix and the measured part.
"""

from __future__ import annotations

from dataclasses import dataclass

PAGE = 4096
GIB = 1 << 30


@dataclass
class Micro:
    name: str
    what: str                  # the work measured, for the table
    setup: list[dict]
    measured: list[dict]
    units: int                 # e.g. faults or calls in the measured part
    unit: str
    kernel_s: float | None     # the live kernel's time for the same work
    target_s: float | None     # the target for the model


def _anon(pid: int, length: int) -> dict:
    return {"op": "mmap", "pid": pid, "addr": None, "len": length, "prot": "rw-",
            "flags": ["private", "anonymous"], "file": None}


def _touch(pid: int, addr: int, length: int, token: str) -> dict:
    return {"op": "touch", "pid": pid, "addr": addr, "len": length, "access": "w", "token": token}


#: address of the first mmap in a spawned process (TASK_UNMAPPED_BASE)
BASE = 0x2AAAAAAAB000


def micro_workloads(size: int = GIB, mprotects: int = 40_000) -> list[Micro]:
    pages = size // PAGE
    grow = [{"op": "spawn", "pid": 1}, _anon(1, size)]
    full = grow + [_touch(1, BASE, size, "t")]
    jit_pages = 1024
    churn = []
    for i in range(mprotects // 2):
        a = BASE + (i % (jit_pages - 1)) * PAGE
        churn.append({"op": "mprotect", "pid": 1, "addr": a, "len": PAGE, "prot": "r-x"})
        churn.append({"op": "mprotect", "pid": 1, "addr": a, "len": PAGE, "prot": "rw-"})
    scale = size / GIB
    return [
        Micro("touch", f"{pages} anonymous write faults", grow, [_touch(1, BASE, size, "t")],
              pages, "faults", 0.33 * scale, 1.0 * scale),
        Micro("fork+exit", f"fork and exit of a {size >> 20} MiB process", full,
              [{"op": "fork", "pid": 1, "child": 2}, {"op": "exit", "pid": 2}],
              pages, "ptes", 0.02 * scale, 0.06 * scale),
        Micro("munmap", f"munmap of {size >> 20} MiB", full,
              [{"op": "munmap", "pid": 1, "addr": BASE, "len": size}], pages, "ptes",
              0.05 * scale, 0.15 * scale),
        Micro("mprotect", f"{mprotects} mprotects splitting and re-merging",
              [{"op": "spawn", "pid": 1}, _anon(1, jit_pages * PAGE),
               _touch(1, BASE, jit_pages * PAGE, "j")], churn, mprotects, "calls",
              0.1 * mprotects / 40_000, 0.3 * mprotects / 40_000),
    ]


def reclaim_workload(demand: int = GIB, sharers: int = 0) -> list[dict]:
    """1 GiB of demand: one process writing it all, or (``sharers`` > 0) a
    parent writing demand/(sharers+1) and forking ``sharers`` children that
    each read all of it, then the parent rewriting it (COW under pressure)."""
    if not sharers:
        return [{"op": "spawn", "pid": 1}, _anon(1, demand), _touch(1, BASE, demand, "w")]
    part = demand // (sharers + 1)
    ev = [{"op": "spawn", "pid": 1}, _anon(1, part), _touch(1, BASE, part, "p")]
    for c in range(2, sharers + 2):
        ev.append({"op": "fork", "pid": 1, "child": c})
    for c in range(2, sharers + 2):
        ev.append({"op": "touch", "pid": c, "addr": BASE, "len": part, "access": "r"})
    ev.append(_touch(1, BASE, part, "p2"))
    return ev
