"""Random traces for conformance: short programs of every system call the
trace format has, on a small window of pages, so that ranges meet VMA
edges, holes and each other often. ``rmaplab conform --random N`` runs them
on the live kernel and in the model; a trace that differs is the smallest
reproduction to look at (events after the first difference are cut).

Deterministic by seed: ``random_trace(seed)`` is the same list of events
on every machine.
"""

from __future__ import annotations

import random
from typing import Any

P = 4096
#: the window: 32 pages at 32 TiB, far from a process's own mappings
BASE = 0x2000_0000_0000
PAGES = 32
ADVICE = ("dontneed", "dontneed", "willneed", "normal", "random", "sequential", "cold", "pageout")
PROTS = ("rw-", "rw-", "rw-", "r--", "r--", "---", "r-x", "rwx")


def random_trace(seed: int, events: int = 40, procs: int = 3) -> list[dict[str, Any]]:
    """A trace of about ``events`` events with up to ``procs`` processes."""
    rnd = random.Random(seed)
    out: list[dict[str, Any]] = [
        {"op": "file", "name": "f0", "size": 12 * P},
        {"op": "file", "name": "f1", "size": 5 * P // 2},
        {"op": "spawn", "pid": 1},
    ]
    live = [1]
    next_pid = 2
    tok = 0

    def page() -> int:
        return rnd.randrange(PAGES)

    def addr(p: int | None = None) -> int:
        return BASE + (page() if p is None else p) * P

    while len(out) < events + 3:
        pid = rnd.choice(live)
        r = rnd.random()
        if r < 0.06 and len(live) < procs:
            out.append({"op": "fork", "pid": pid, "child": next_pid})
            live.append(next_pid)
            next_pid += 1
        elif r < 0.08 and len(live) > 1:
            out.append({"op": "exit", "pid": pid})
            live.remove(pid)
        elif r < 0.30:
            n = rnd.choice((1, 1, 2, 2, 3, 4, 6))
            shared = rnd.random() < 0.25
            backing = rnd.choice(("anon", "anon", "anon", "f0", "f1"))
            flags = ["shared" if shared else "private"]
            where = rnd.choice(("fixed", "fixed", "fixed", "hint", "noreplace", "anywhere"))
            if where == "fixed":
                flags.append("fixed")
            elif where == "noreplace":
                flags.append("fixed_noreplace")
            extra = rnd.random()
            if extra < 0.05:
                flags.append("populate")
            elif extra < 0.08:
                flags.append("locked")
            elif extra < 0.12:
                flags.append("noreserve")
            f = None
            if backing == "anon":
                flags.append("anonymous")
            else:
                f = {"name": backing, "offset": rnd.randrange(4) * P}
                mode = rnd.choice(("rw", "rw", "rw", "r"))
                if mode != "rw":
                    f["open"] = mode
            out.append({"op": "mmap", "pid": pid, "addr": None if where == "anywhere" else addr(),
                        "len": n * P, "prot": rnd.choice(PROTS), "flags": flags, "file": f})
        elif r < 0.38:
            out.append({"op": "munmap", "pid": pid, "addr": addr(), "len": rnd.randint(1, 5) * P})
        elif r < 0.50:
            out.append({"op": "mprotect", "pid": pid, "addr": addr(), "len": rnd.randint(1, 6) * P,
                        "prot": rnd.choice(PROTS)})
        elif r < 0.60:
            old = rnd.randint(0, 5)
            new = rnd.randint(1, 6) if rnd.random() < 0.6 else old or 1
            flags = rnd.choice(([], ["maymove"], ["maymove", "fixed"], ["maymove", "fixed"],
                                ["maymove", "dontunmap"], ["maymove", "fixed", "dontunmap"]))
            e = {"op": "mremap", "pid": pid, "addr": addr(), "old_len": old * P, "new_len": new * P,
                 "flags": flags}
            if "fixed" in flags or "dontunmap" in flags:
                e["new_addr"] = addr()
            out.append(e)
        elif r < 0.64:
            out.append({"op": rnd.choice(("mlock", "munlock")), "pid": pid, "addr": addr(),
                        "len": rnd.randint(1, 5) * P})
        elif r < 0.65 and rnd.random() < 0.3:
            out.append({"op": "exec", "pid": pid})
        elif r < 0.68:
            out.append({"op": "madvise", "pid": pid, "addr": addr(), "len": rnd.randint(1, 5) * P,
                        "advice": rnd.choice(ADVICE)})
        else:
            n = rnd.randint(1, 4)
            if rnd.random() < 0.5:
                tok += 1
                out.append({"op": "touch", "pid": pid, "addr": addr(), "len": n * P,
                            "access": "w", "token": f"s{seed}.{tok}"})
            else:
                out.append({"op": "touch", "pid": pid, "addr": addr(), "len": n * P,
                            "access": "r"})
    return out
