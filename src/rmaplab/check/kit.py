"""The scheme test kit: random programs against any scheme, with every check.

``check_scheme(spec)`` runs a Hypothesis ``RuleBasedStateMachine`` that
drives random system calls (mmap fixed, hinted and anywhere; anonymous,
file and shared; populate, locked, noreserve; munmap, mprotect, mremap
with every flag, madvise with every advice, mlock), touches, forks, execs
and exits over a few processes, on small memory with swap and the reclaim
event, under the scheme named by ``spec`` (a registered name or
``FILE.py:CLASS``). After every step: ``validate`` (every invariant, the
scheme's own ``check`` included) and ``check_rmap_complete`` (each rmap
walk finds exactly the ptes a brute-force scan of every page table finds).
A data oracle checks that a page this process alone wrote reads back its
token. Teardown exits everything and checks for leaks.

A failure comes back shrunk by Hypothesis, as a ``KitFailure`` carrying the
failing program as a trace (``rmaplab replay TRACE --check --scheme SPEC``
reproduces it) and the error. A plugin's own pytest suite can call
``check_scheme`` directly, or subclass ``SchemeMachine``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, cast

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, initialize, invariant,
                                 precondition, rule)

from rmaplab.asm.page import PAGE_SIZE as P
from rmaplab.check.validate import check_no_leaks, check_rmap_complete, validate
from rmaplab.config import Config
from rmaplab.errors import SyscallError
from rmaplab.include.mm import VM_SHARED
from rmaplab.kernel import Kernel

#: the window of the fixed-address rules: 24 pages at 48 TiB
BASE = 0x3000_0000_0000
NPAGES = 24
FILES = {"f0": 8 * P, "f1": 5 * P // 2}

pages = st.integers(0, NPAGES - 1)
lengths = st.integers(0, 5)
prots = st.sampled_from(["rw-"] * 4 + ["r--"] * 2 + ["---", "r-x"])
opens = st.sampled_from(["rw", "rw", "r", "w"])
advices = st.sampled_from(["dontneed", "cold", "pageout", "pageout", "willneed", "normal"])
mremap_flags = st.sampled_from([[], ["maymove"], ["maymove", "fixed"], ["maymove", "fixed"],
                                ["maymove", "dontunmap"], ["maymove", "fixed", "dontunmap"]])


def a(page: int) -> int:
    return BASE + page * P


class SchemeMachine(RuleBasedStateMachine):
    """The kit's machine; subclasses set ``SCHEME`` (a name or spec),
    ``PROFILE`` and ``CONFIG_KW``."""

    SCHEME = "anon_vma"
    PROFILE = "modern"
    CONFIG_KW: dict[str, Any] = dict(mem_pages=48, swap_pages=512)
    procs = Bundle("procs")
    #: outcome counts (for a caller that wants to see what ran)
    outcomes: Counter = Counter()
    #: the events of the last program run (the failing one, after a failure)
    last_events: list[dict] = []

    def __init__(self) -> None:
        super().__init__()
        self.k = Kernel(Config(profile=self.PROFILE, scheme=self.SCHEME, **self.CONFIG_KW))
        self.events: list[dict] = []
        type(self).last_events = self.events
        for name, size in FILES.items():
            self._do({"op": "file", "name": name, "size": size})
        self.next_pid = 1
        self.ntok = 0
        #: (pid, page) -> token this process alone wrote into private memory
        self.mine: dict[tuple[Any, int], str] = {}

    # -- one event: recorded, then applied ----------------------------------------------

    def _do(self, ev: dict) -> Any:
        self.events.append(ev)
        k, op = self.k, ev["op"]
        pid: int = ev.get("pid", 0)
        try:
            if op == "file":
                return k.declare_file(ev["name"], ev["size"])
            if op in ("spawn", "exec", "exit"):
                return getattr(k, op)(pid)
            if op == "fork":
                return k.fork(pid, ev["child"])
            if op == "mmap":
                f = ev["file"] or {}
                return k.mmap(pid, ev["addr"], ev["len"], ev["prot"], ev["flags"], file=f.get("name"),
                              offset=f.get("offset", 0), open=f.get("open", "rw"))
            if op == "mremap":
                return k.mremap(pid, ev["addr"], ev["old_len"], ev["new_len"], ev["flags"],
                                ev.get("new_addr"))
            if op in ("munmap", "mlock", "munlock"):
                return getattr(k, op)(pid, ev["addr"], ev["len"])
            if op == "mprotect":
                return k.mprotect(pid, ev["addr"], ev["len"], ev["prot"])
            if op == "madvise":
                return k.madvise(pid, ev["addr"], ev["len"], ev["advice"])
            if op == "touch":
                return k.touch(pid, ev["addr"], ev["len"], ev["access"], ev.get("token"))
            if op == "reclaim":
                return k.reclaim(ev["pages"])
        except SyscallError as e:
            return e.errno
        raise ValueError(f"the kit has no op {op!r}")

    def _forget(self, pid: int | None = None, lo: int = 0, hi: int = NPAGES) -> None:
        for key in [k for k in self.mine if (pid is None or k[0] == pid) and lo <= k[1] < hi]:
            del self.mine[key]

    def _alive(self, pid: int) -> bool:
        for gone in {p for p, _ in self.mine if p not in self.k.tasks}:
            self._forget(gone)
        return pid in self.k.tasks

    def _vma(self, pid: int, idx: int) -> tuple[int, int] | None:
        """(first page, pages) of the idx-th VMA of the window, if any."""
        vmas = [v for v in self.k.mm(pid).vma_range(BASE, a(NPAGES)) if v.vm_start >= BASE]
        if not vmas:
            return None
        v = vmas[idx % len(vmas)]
        return (v.vm_start - BASE) // P, min(v.npages, NPAGES - (v.vm_start - BASE) // P)

    # -- processes ----------------------------------------------------------------------

    @initialize(target=procs)
    def init(self) -> int:
        """pid 1 with a layout to work on: anonymous rw- (written) and r--,
        a private file mapping (read), shared anonymous memory (written)."""
        pid = cast(int, self.spawn())
        anon, shanon = ["private", "anonymous", "fixed"], ["shared", "anonymous", "fixed"]
        for ev in ({"op": "mmap", "pid": pid, "addr": a(0), "len": 4 * P, "prot": "rw-",
                    "flags": anon, "file": None},
                   {"op": "touch", "pid": pid, "addr": a(0), "len": 3 * P, "access": "w",
                    "token": "init"},
                   {"op": "mmap", "pid": pid, "addr": a(5), "len": 2 * P, "prot": "r--",
                    "flags": anon, "file": None},
                   {"op": "mmap", "pid": pid, "addr": a(8), "len": 3 * P, "prot": "r--",
                    "flags": ["private", "fixed"], "file": {"name": "f0", "offset": 0}},
                   {"op": "touch", "pid": pid, "addr": a(9), "len": P, "access": "r"},
                   {"op": "mmap", "pid": pid, "addr": a(12), "len": 3 * P, "prot": "rw-",
                    "flags": shanon, "file": None},
                   {"op": "touch", "pid": pid, "addr": a(12), "len": 2 * P, "access": "w",
                    "token": "shm"}):
            self._do(ev)
        for i in range(3):
            self.mine[(pid, i)] = "init"
        return pid

    @rule(target=procs)
    @precondition(lambda self: len(self.k.tasks) < 3)
    def spawn(self) -> int:
        pid = self.next_pid
        self.next_pid += 1
        self._do({"op": "spawn", "pid": pid})
        return pid

    @rule(target=procs, parent=procs)
    @precondition(lambda self: 0 < len(self.k.tasks) < 4)
    def fork(self, parent: int) -> int:
        if not self._alive(parent):
            return parent
        child = self.next_pid
        self.next_pid += 1
        self._do({"op": "fork", "pid": parent, "child": child})
        self._forget(parent)            # its pages are shared until written again
        return child

    @rule(pid=procs, how=st.sampled_from(["exit", "exit", "exec"]))
    @precondition(lambda self: len(self.k.tasks) > 1)
    def exit(self, pid: int, how: str) -> None:
        if self._alive(pid):
            self._do({"op": how, "pid": pid})
            self._forget(pid)

    # -- system calls --------------------------------------------------------------------

    @rule(pid=procs, page=pages, n=lengths, prot=prots, shared=st.booleans(),
          backing=st.sampled_from(["anon", "anon", "f0", "f1"]), where=st.sampled_from(
              ["fixed", "fixed", "fixed_noreplace", "hint", "anywhere"]), mode=opens,
          extra=st.sampled_from([[], [], [], ["populate"], ["locked"], ["noreserve"]]))
    def mmap(self, pid, page, n, prot, shared, backing, where, mode, extra) -> None:
        if not self._alive(pid):
            return
        flags = ["shared" if shared else "private", *extra]
        f = None
        if backing == "anon":
            flags.append("anonymous")
        else:
            f = {"name": backing, "offset": (page % 3) * P, "open": mode}
        if where in ("fixed", "fixed_noreplace"):
            flags.append(where)
        got = self._do({"op": "mmap", "pid": pid, "addr": None if where == "anywhere" else a(page),
                        "len": n * P, "prot": prot, "flags": flags, "file": f})
        if isinstance(got, int) and BASE <= got < a(NPAGES):
            self._forget(pid, (got - BASE) // P, (got - BASE) // P + n)

    @rule(pid=procs, page=pages, n=lengths)
    def munmap(self, pid, page, n) -> None:
        if self._alive(pid) and self._do({"op": "munmap", "pid": pid, "addr": a(page),
                                          "len": n * P}) == 0:
            self._forget(pid, page, page + n)

    @rule(pid=procs, page=pages, n=lengths, prot=prots)
    def mprotect(self, pid, page, n, prot) -> None:
        if self._alive(pid):
            self._do({"op": "mprotect", "pid": pid, "addr": a(page), "len": n * P, "prot": prot})

    @rule(pid=procs, page=pages, old=lengths, new=lengths, flags=mremap_flags, to=pages)
    def mremap(self, pid, page, old, new, flags, to) -> None:
        if not self._alive(pid):
            return
        got = self._do({"op": "mremap", "pid": pid, "addr": a(page), "old_len": old * P,
                        "new_len": new * P, "flags": flags, "new_addr": a(to)})
        type(self).outcomes[f"mremap {'ok' if isinstance(got, int) else got}"] += 1
        if got != "EINVAL":
            self._forget(pid)           # pages may have moved anywhere

    @rule(pid=procs, idx=st.integers(0, 7), cut=st.integers(0, 2), grow=st.integers(-2, 3),
          flags=mremap_flags, to=pages)
    def mremap_vma(self, pid, idx, cut, grow, flags, to) -> None:
        """mremap aimed at a VMA: all of it, or less its first pages, to a
        new length around its own (often across the next VMA)."""
        got = self._vma(pid, idx) if self._alive(pid) else None
        if got is not None:
            first, n = got
            cut = min(cut, n - 1)
            self.mremap(pid, first + cut, n - cut, max(n - cut + grow, 1), flags, to)

    @rule(pid=procs, idx=st.integers(0, 7), prot=prots, more=st.integers(0, 3))
    def mprotect_vma(self, pid, idx, prot, more) -> None:
        if self._alive(pid) and (got := self._vma(pid, idx)) is not None:
            self.mprotect(pid, got[0], got[1] + more, prot)

    @rule(pid=procs, page=pages, n=lengths, on=st.booleans())
    def mlock(self, pid, page, n, on) -> None:
        if self._alive(pid):
            self._do({"op": "mlock" if on else "munlock", "pid": pid, "addr": a(page),
                      "len": n * P})

    @rule(pid=procs, page=pages, n=lengths, advice=advices)
    def madvise(self, pid, page, n, advice) -> None:
        if self._alive(pid):
            self._do({"op": "madvise", "pid": pid, "addr": a(page), "len": n * P,
                      "advice": advice})
            if advice == "dontneed":
                self._forget(pid, page, page + n)

    # -- the CPU and reclaim ------------------------------------------------------------------

    @rule(pid=procs, page=pages, n=st.integers(1, 4), write=st.booleans())
    def touch(self, pid, page, n, write) -> None:
        if not self._alive(pid):
            return
        type(self).outcomes[f"touch {'w' if write else 'r'}"] += 1
        if write:
            self.ntok += 1
            tok = f"t{self.ntok}"
            r = self._do({"op": "touch", "pid": pid, "addr": a(page), "len": n * P,
                          "access": "w", "token": tok})
            if r.result == "SIGKILL":
                return
            done = n if r.result == "ok" else (r.fault_addr - a(page)) // P
            for p in range(page, page + done):
                vma = self.k.mm(pid).find_vma(a(p))
                assert vma is not None
                if vma.vm_file is None and not vma.vm_flags & VM_SHARED:    # private anonymous
                    self.mine[(pid, p)] = tok
                else:
                    self.mine.pop((pid, p), None)
            return
        r = self._do({"op": "touch", "pid": pid, "addr": a(page), "len": n * P, "access": "r"})
        if r.result == "ok":
            for i, tok in enumerate(r.read):
                want = self.mine.get((pid, page + i))
                assert want is None or tok == want, \
                    f"pid {pid} page {page + i} reads {tok!r}, but it wrote {want!r}"

    @rule(pid=procs, idx=st.integers(0, 7), write=st.booleans())
    def touch_vma(self, pid, idx, write) -> None:
        if self._alive(pid) and (got := self._vma(pid, idx)) is not None:
            self.touch(pid, got[0], min(got[1], 4), write)

    @rule(n=st.integers(1, 8))
    def reclaim(self, n) -> None:
        self._do({"op": "reclaim", "pages": n})

    @invariant()
    def invariants_and_rmap_complete(self) -> None:
        check_rmap_complete(self.k, validate(self.k))

    def teardown(self) -> None:
        for pid in list(self.k.pids()):
            self._do({"op": "exit", "pid": pid})
        check_no_leaks(self.k)


@dataclass
class KitReport:
    scheme: str
    profile: str
    examples: int
    outcomes: dict[str, int]


class KitFailure(AssertionError):
    """The scheme failed the kit: ``error`` says how, ``trace`` is the
    failing program (JSON Lines) to replay with ``--check``."""

    def __init__(self, scheme: str, error: BaseException, events: list[dict],
                 config: dict[str, Any] | None = None) -> None:
        self.error, self.events, self.scheme = error, events, scheme
        self.config = config or {}
        super().__init__(f"{scheme}: {type(error).__name__}: {error} "
                         f"(after {len(events)} events of the shrunk program)")

    @property
    def replay_hint(self) -> str:
        c = self.config
        return (f"replay with --check --scheme {self.scheme} --profile {c.get('profile', 'modern')}"
                f" --mem {c.get('mem_pages', 48) * 4}K --swap {c.get('swap_pages', 512) * 4}K")

    @property
    def trace(self) -> str:
        head = {"format": "rmaplab-trace", "version": 1,
                "source": f"rmaplab check-scheme failure under {self.scheme} ({self.replay_hint})"}
        return "\n".join(json.dumps(e) for e in [head, *self.events]) + "\n"


def machine_for(spec: str, profile: str = "modern", **config: Any) -> type[SchemeMachine]:
    """A ``SchemeMachine`` subclass for one scheme (and profile, Config)."""
    kw = dict(SchemeMachine.CONFIG_KW, **config)
    return type(f"SchemeMachine_{profile}", (SchemeMachine,),
                {"SCHEME": spec, "PROFILE": profile, "CONFIG_KW": kw, "outcomes": Counter(),
                 "last_events": []})


def check_scheme(spec: str, examples: int = 100, steps: int = 40, profile: str = "modern",
                 derandomize: bool = False, progress: Any = None, **config: Any) -> KitReport:
    """Run the kit on a scheme; raises ``KitFailure`` with the shrunk
    program if any check fails. ``derandomize``: the same programs on
    every run. ``progress(n)`` is called as program n starts."""
    machine = machine_for(spec, profile, **config)
    if progress is not None:
        started = [0]
        base_init = machine.__init__

        def __init__(self: Any) -> None:
            base_init(self)
            started[0] += 1
            progress(started[0])

        machine.__init__ = __init__  # type: ignore[method-assign]
    Config(profile=profile, scheme=spec)                 # a bad spec fails here, plainly
    test_case = machine.TestCase
    test_case.settings = settings(
        max_examples=examples, stateful_step_count=steps, deadline=None, database=None,
        derandomize=derandomize, suppress_health_check=list(HealthCheck))
    try:
        test_case().runTest()
    except Exception as e:
        raise KitFailure(spec, e, list(machine.last_events),
                         dict(machine.CONFIG_KW, profile=profile)) from e
    return KitReport(spec, profile, examples, dict(machine.outcomes))
