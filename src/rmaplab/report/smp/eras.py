"""Lock rules by kernel era: which locks an operation holds, and how a
waiter behaves, for each scheme's time.

A ``LockKind`` says how a lock behaves under contention: whether readers
share it, whether a waiter spins (keeping its CPU), sleeps (giving it up:
a context switch, and it must be scheduled again once woken) or spins
adaptively (spins while the owner runs, sleeps after ``spin_cap``), and
whether release hands the lock to the first waiter in FIFO order (a ticket
spinlock; the rwsem before 3.10) or lets a running task take it first (lock
stealing: mutexes, rwsems from 3.10, the page lock's woken waiters).

An ``Era`` is the set of rules one kernel followed. The anon_vma_chain eras
are the named rules of the issue: ``spin`` (the root anon_vma's spinlock),
``mutex``, ``rwsem``, ``rwsem-read`` (read-locked walks), ``rwsem-steal``
and ``rwsem-spin`` (today's). A simulated variant is ``scheme@era``.

Sources (commit ids as cited in the commits that followed them; those
marked *(inferred)* were not read):

- 2.6.6 pte_chain, 2.6.7 anon_vma and 2.6.9 rmaplock: docs/kernel-reference.md,
  "Locking" (the walks' trylocks, what rmap 39 took off page_table_lock);
- 012f18004da3 "mm: always lock the root (oldest) anon_vma" (Rik van Riel,
  2.6.36): one lock per fork family;
- "mm: Convert anon_vma->lock to a mutex" (Peter Zijlstra, 3.0
  *(inferred)*) and "mutex: implement adaptive spinning" (2.6.30
  *(inferred)*);
- 5a505085f043 "mm/rmap: Convert the struct anon_vma::mutex to an rwsem"
  (Ingo Molnar, 3.8) and 4fc3f1d66b1e "mm/rmap, migration: Make
  rmap_walk_anon() and try_to_unmap_anon() more scalable" (3.8): walks take
  the rwsem for read;
- ce6711f3d196 "rwsem: Implement writer lock-stealing for better
  scalability" (Alex Shi, 3.10): 5a505085f043 "caused aim7 fork_test
  performance to drop by 50%", blamed on the rwsem's strict FIFO write
  ownership; lock stealing recovered it;
- "locking/rwsem: Support optimistic spinning" (Davidlohr Bueso, 3.16
  *(inferred)*); c8c06efa8b55 "mm: convert i_mmap_mutex to rwsem" (3.19
  *(inferred)*).

Departures: 2.6.34-2.6.35's per-anon_vma locks (before the root lock) are
not modelled: every anon_vma_chain era locks the root. The 2.6.6 and 2.4
i_mmap semaphore is modelled as a sleeping FIFO lock. Split page-table locks
(2.6.15+) are per 2 MiB of address space, the unit of a pte page.
"""

from __future__ import annotations

from dataclasses import dataclass

from rmaplab.errors import ConfigError


@dataclass(frozen=True)
class LockKind:
    """How a lock behaves when it is contended."""

    name: str
    rw: bool             # readers share it
    sleeps: bool         # a waiter may give up its CPU
    spins: bool          # a waiter spins (adaptive when it also sleeps)
    handoff: bool        # release passes it to the first waiter (FIFO); else stealing

    @property
    def blocking(self) -> bool:
        """May be held by a task that sleeps (a sleeping lock)."""
        return self.sleeps


SPIN = LockKind("spinlock", rw=False, sleeps=False, spins=True, handoff=True)
SEMAPHORE = LockKind("semaphore", rw=False, sleeps=True, spins=False, handoff=True)
MUTEX = LockKind("mutex", rw=False, sleeps=True, spins=True, handoff=False)
RWSEM_FIFO = LockKind("rwsem-fifo", rw=True, sleeps=True, spins=False, handoff=True)
RWSEM_STEAL = LockKind("rwsem-steal", rw=True, sleeps=True, spins=False, handoff=False)
RWSEM_SPIN = LockKind("rwsem-spin", rw=True, sleeps=True, spins=True, handoff=False)
PAGE_LOCK = LockKind("page-lock", rw=False, sleeps=True, spins=False, handoff=False)


@dataclass(frozen=True)
class Era:
    """The lock rules of one kernel era."""

    name: str
    kernels: str
    schemes: tuple[str, ...]
    #: the rmap object's lock: anon_vma (or its root), the anonmm head, the
    #: pte_chain bit lock; None: the scheme has none (2.4)
    rmap_lock: LockKind | None
    #: walks take the rmap lock for read
    walk_read: bool
    i_mmap: LockKind
    mmap_sem: LockKind
    #: "mm": one page_table_lock per mm; "split": one per pte page
    ptl: str
    #: the VMA list and tree change under page_table_lock (before rmap 39,
    #: because try_to_unmap looked VMAs up with find_vma under it)
    vma_tree_ptl: bool
    #: walks trylock page_table_lock and skip a busy mm (2.6.7; 2.6.9 spins)
    trylock_walks: bool
    source: str


ERAS: dict[str, Era] = {e.name: e for e in (
    Era("2.4", "2.4", ("none",), None, False, SEMAPHORE, RWSEM_FIFO, "mm", True, False,
        "2.4: no reverse map; swap_out scans each mm under its page_table_lock, which also "
        "guards the VMA list (inferred)"),
    Era("2.6.6", "2.5.x-2.6.6", ("pte_chain",), SPIN, False, SEMAPHORE, RWSEM_FIFO, "mm", True, True,
        "pte_chain: the PG_chainlock bit spinlock per page; try_to_unmap trylocks each mm's "
        "page_table_lock and calls find_vma under it, so VMA changes take it too"),
    Era("2.6.6-mm", "2.6.6-mm (rmap 10)", ("anonmm",), SPIN, False, SPIN, RWSEM_FIFO, "mm", True, True,
        "anonmm: the bundle head's spinlock; try_to_unmap_one calls find_vma under "
        "page_table_lock, so VMA changes take it (i_mmap_lock a spinlock: inferred)"),
    Era("2.6.7", "2.6.7-2.6.8", ("anon_vma", "pure_anon_vma"), SPIN, False, SPIN, RWSEM_FIFO, "mm",
        False, True,
        "rmap 39: anon_vma->lock spinlock per anon_vma; walks trylock page_table_lock; the VMA "
        "tree leaves page_table_lock (page -> anon_vma -> vma needs no find_vma)"),
    Era("2.6.9", "2.6.9-2.6.14", ("anon_vma", "pure_anon_vma"), SPIN, False, SPIN, RWSEM_FIFO, "mm",
        False, False, "rmaplock 4/6: walks spin on page_table_lock instead of trylocking"),
    Era("spin", "2.6.36-2.6.39", ("anon_vma_chain",), SPIN, False, SPIN, RWSEM_FIFO, "split", False,
        False, "012f18004da3: the root anon_vma's spinlock serialises a fork family"),
    Era("mutex", "3.0-3.7", ("anon_vma_chain",), MUTEX, False, MUTEX, RWSEM_FIFO, "split", False,
        False, "anon_vma->lock and i_mmap_lock become mutexes (adaptive spinning, stealing)"),
    Era("rwsem", "3.8 (5a505085f043)", ("anon_vma_chain",), RWSEM_FIFO, False, MUTEX, RWSEM_FIFO,
        "split", False, False,
        "5a505085f043: the anon_vma mutex becomes an rwsem, every user a writer; FIFO hand-off, "
        "no spinning"),
    Era("rwsem-read", "3.8 (4fc3f1d66b1e)", ("anon_vma_chain",), RWSEM_FIFO, True, MUTEX,
        RWSEM_FIFO, "split", False, False, "4fc3f1d66b1e: rmap walks take the rwsem for read"),
    Era("rwsem-steal", "3.10-3.15", ("anon_vma_chain",), RWSEM_STEAL, True, MUTEX, RWSEM_STEAL,
        "split", False, False, "ce6711f3d196: writer lock stealing (aim7 fork_test recovered)"),
    Era("rwsem-spin", "3.16-6.x", ("anon_vma_chain",), RWSEM_SPIN, True, RWSEM_SPIN, RWSEM_SPIN,
        "split", False, False, "rwsem optimistic spinning (3.16); i_mmap an rwsem (3.19)"),
)}

#: each scheme's own era (a variant named without '@')
DEFAULT_ERA = {"none": "2.4", "pte_chain": "2.6.6", "anonmm": "2.6.6-mm", "anon_vma": "2.6.7",
               "pure_anon_vma": "2.6.7", "anon_vma_chain": "rwsem-spin"}
#: the era of a scheme rmaplab does not know (a plugin): 2.6.9's rules
PLUGIN_ERA = "2.6.9"


def eras_of(scheme: str) -> list[str]:
    """The eras that apply to ``scheme``, oldest first."""
    return [e.name for e in ERAS.values() if scheme in e.schemes] or [PLUGIN_ERA]


@dataclass(frozen=True)
class Variant:
    """One simulated kernel: a scheme under an era's lock rules."""

    scheme: str
    era: Era

    @property
    def name(self) -> str:
        return f"{self.scheme}@{self.era.name}"


def parse_variants(text: str, schemes: list[str]) -> list[Variant]:
    """``all`` (every scheme at its own era, anon_vma_chain at every era),
    or a comma list of ``SCHEME``, ``SCHEME@ERA`` or ``SCHEME@all``.
    ``schemes``: the registered names. ConfigError (one line) on bad input."""
    out: list[Variant] = []
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise ConfigError("--scheme needs at least one scheme")
    if items == ["all"]:
        items = [s if s != "anon_vma_chain" else "anon_vma_chain@all" for s in schemes]
    for item in items:
        scheme, _, era = item.partition("@")
        if scheme not in schemes:
            raise ConfigError(f"unknown scheme {scheme!r}; choose from {', '.join(schemes)}")
        known = eras_of(scheme)
        if era == "all":
            names = known
        elif era:
            if era not in ERAS:
                raise ConfigError(f"unknown era {era!r} for {scheme}; choose from {', '.join(known)}")
            if era not in known and scheme in DEFAULT_ERA:
                raise ConfigError(f"era {era!r} is not {scheme}'s; choose from {', '.join(known)}")
            names = [era]
        else:
            names = [DEFAULT_ERA.get(scheme, PLUGIN_ERA)]
        for n in names:
            v = Variant(scheme, ERAS[n])
            if v not in out:
                out.append(v)
    return out
