"""The cost table of ``rmaplab smp``: nanoseconds per modelled operation.

Every entry has a value and a source, one of:

- ``measured``: timed on the live kernel of this project's machine (Linux
  6.18, a 2-vCPU KVM guest of an Intel Xeon, x86_64, 4 KiB pages, THP
  refused) by ``bench/calibrate_smp.c``, which ``python bench/calibrate_smp.py
  --swap --runs 5`` builds and runs (each figure the median over 5 runs of a
  median of 7 rounds; ``--json FILE`` writes the table as a cost file);
- ``derived``: arithmetic on measured entries, the formula given;
- ``published``: a figure from the literature, cited;
- ``model``: a parameter of the simulation, not a property of a kernel.

Keys are of three kinds: ``op.<event>`` (the fixed cost of one trace event:
system call entry, task creation), a stat counter name (the cost of one
unit of that counter: ``fault_anon`` per anonymous fault,
``rmap_vmas_visited`` per VMA a walk looks at, ``lock_anon_vma`` per
uncontended acquisition...), and the simulation's own (``zap_pte``,
``page_free``, ``user_*``, ``lock_handoff``, ``context_switch``,
``spin_cap``, ``ptl_fault``, ``vma_link``).

What the table cannot be: a 2004 i386 machine. Every figure is today's; the
simulation compares schemes and lock rules on one machine, it does not
predict 2004's absolute times. A counter missing from the table costs
nothing.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rmaplab.errors import ConfigError


@dataclass(frozen=True)
class Cost:
    """One entry: nanoseconds, where the figure comes from, what it is."""

    ns: float
    source: str          # measured | derived | published | model
    basis: str


#: The figures bench/calibrate_smp.c printed on this machine (see the module
#: docstring); ``derived`` entries are computed from these.
MEASURED: dict[str, float] = {
    "syscall": 115.0,            # getppid()
    "mmap": 1448.0,              # mmap of one unfaulted anonymous page
    "munmap": 1519.0,            # munmap of it
    "mprotect_split": 2614.0,    # mprotect of a middle page: split in three / merge back
    "fault_anon": 2449.0,        # first write to an anonymous page
    "fault_zero_page": 748.0,    # first read of one (the zero page)
    "fault_file": 1042.0,        # read fault on a cached file page, one-page VMA
    "fault_around": 29.5,        # each further page fault-around maps
    "fault_cow": 3811.0,         # write to a page shared with the parent after fork
    "fault_wp_reuse": 1333.0,    # write to a write-protected page no one else maps
    "fork": 28496.0,             # fork() of a minimal process, parent's time
    "fork_pte": 31.7,            # ... per faulted page more
    "fork_vma": 177.0,           # ... per VMA without anon_vma more
    "fork_vma_anon": 580.0,      # ... per VMA with an anon_vma more
    "exit": 45687.0,             # fork-to-reaped less the fork: a minimal child's exit
    "zap_shared_pte": 97.5,      # munmap per pte of a page another process maps
    "munmap_page": 182.5,        # munmap per private page (zap and free)
    "mremap_pte": 12.3,          # mremap move per pte (pte by pte, unaligned)
    "user_write_page": 766.0,    # memset of a present 4 KiB page
    "user_read_page": 321.0,     # reading a present page, a load per cache line
    "pageout_page": 4227.0,      # MADV_PAGEOUT per exclusive page (swap file on virtio disk)
    "fault_swap": 2156.0,        # read fault on a page still in the swap cache
    "lock_uncontended": 11.4,    # pthread spin lock + unlock, one CPU
    "lock_handoff_here": 567.0,  # cache-line ping-pong between the two vCPUs, one way (450-1200 over runs)
    "context_switch": 1632.0,    # pipe ping-pong on one CPU, per switch
    "cache_miss": 294.0,         # dependent load missing every cache (256 MiB, huge pages)
    "cache_hit_l2": 7.1,         # dependent load within 256 KiB
}


def _m(key: str) -> float:
    return MEASURED[key]


def _default_table() -> dict[str, Cost]:
    m = _m
    slab = (m("fork_vma_anon") - m("fork_vma")) / 3
    split = (m("mprotect_split") - m("syscall")) / 2
    zap = m("zap_shared_pte")
    free = m("munmap_page") - zap
    miss, hit, lock = m("cache_miss"), m("cache_hit_l2"), m("lock_uncontended")
    meas = "measured"
    d = "derived"
    t: dict[str, Cost] = {
        # -- the fixed cost of an event ------------------------------------------
        "op.mmap": Cost(m("mmap"), meas, "mmap of one unfaulted anonymous page"),
        "op.munmap": Cost(m("munmap"), meas, "munmap of one unfaulted anonymous page"),
        "op.mprotect": Cost(m("syscall"), meas, "a null system call; splits and merges are extra"),
        "op.mremap": Cost(m("mmap"), d, "= op.mmap (a VMA made, one unlinked)"),
        "op.brk": Cost(m("mmap"), d, "= op.mmap"),
        "op.madvise": Cost(m("syscall"), meas, "a null system call; zapped ptes are extra"),
        "op.mlock": Cost(m("syscall"), meas, "a null system call; splits are extra"),
        "op.munlock": Cost(m("syscall"), meas, "a null system call; splits are extra"),
        "op.fork": Cost(m("fork"), meas, "fork() of a minimal process (parent's time)"),
        "op.exit": Cost(m("exit"), meas, "exit of a minimal process (fork to reaped, less fork)"),
        "op.spawn": Cost(m("fork"), d, "= op.fork (a new task and mm)"),
        "op.exec": Cost(m("fork") + m("exit"), d,
                        "= op.fork + op.exit (an mm torn down, a new one made; no ELF loading)"),
        "op.touch": Cost(0.0, "model", "no system call: the faults and the accesses are costed"),
        "op.reclaim": Cost(m("context_switch"), d, "= context_switch (kswapd woken)"),
        # -- faults (per page) -------------------------------------------------------
        "fault_anon": Cost(m("fault_anon"), meas, "first write to an anonymous page"),
        "fault_zero_page": Cost(m("fault_zero_page"), meas, "first read: the zero page mapped"),
        "fault_file": Cost(m("fault_file"), meas, "read fault on a cached file page"),
        "fault_around": Cost(m("fault_around"), meas,
                             "per page fault-around maps: (16-page fault - 1-page fault) / 15"),
        "fault_wp_copy": Cost(m("fault_cow"), meas, "copy-on-write fault after fork"),
        "fault_wp_reuse": Cost(m("fault_wp_reuse"), meas, "write fault reusing an exclusive page"),
        "fault_early_cow": Cost(m("fault_cow"), d, "= fault_wp_copy (write to a private file page)"),
        "fault_swap": Cost(m("fault_swap"), meas, "read fault on a page in the swap cache"),
        "ptl_fault": Cost(m("fork_pte") + lock, d,
                          "the part of a fault under page_table_lock: fork_pte + lock_uncontended"
                          " (set a pte, count the page, add it to the rmap)"),
        # -- fork, exit, unmap, mremap -----------------------------------------------
        "fork_vmas": Cost(m("fork_vma"), meas, "fork per VMA without an anon_vma"),
        "fork_ptes": Cost(m("fork_pte"), meas, "fork per faulted page"),
        "exit_ptes": Cost(zap, meas, "zap of a pte whose page another process maps"),
        "zap_pte": Cost(zap, meas, "= exit_ptes, for munmap, madvise and mremap shrinks"),
        "page_free": Cost(free, d, "munmap_page - zap_shared_pte: freeing a private page"),
        "mremap_ptes_moved": Cost(m("mremap_pte"), meas, "mremap per pte moved"),
        "pages_copied": Cost(m("fault_cow") - m("fault_wp_reuse"), d,
                             "fault_wp_copy - fault_wp_reuse (charged to mremap's forced copies)"),
        "vma_splits": Cost(split, d, "(mprotect_split - syscall) / 2: a split or a merge"),
        "vma_merges": Cost(split, d, "= vma_splits"),
        "vma_link": Cost(3 * miss, d, "3 x cache_miss: a VMA put into or taken out of the list and"
                                      " tree (vma_alloc, vma_free)"),
        # -- rmap objects (slab allocations) -----------------------------------------------
        "anon_vma_alloc": Cost(slab, d, "(fork per VMA with anon_vma - without) / 3: anon_vma_fork"
                                        " makes one anon_vma and two AVCs"),
        "anon_vma_free": Cost(slab, d, "= anon_vma_alloc"),
        "avc_alloc": Cost(slab, d, "= anon_vma_alloc"),
        "avc_free": Cost(slab, d, "= anon_vma_alloc"),
        "anonmm_alloc": Cost(slab, d, "= anon_vma_alloc"),
        "anonmm_free": Cost(slab, d, "= anon_vma_alloc"),
        "pte_chain_alloc": Cost(slab, d, "= anon_vma_alloc"),
        "pte_chain_free": Cost(slab, d, "= anon_vma_alloc"),
        # -- rmap walks ----------------------------------------------------------------------
        "rmap_vmas_visited": Cost(miss, d, "= cache_miss: the vm_area_struct is read"),
        "rmap_mms_visited": Cost(miss, d, "= cache_miss: the mm_struct is read"),
        "rmap_pgtable_walks": Cost(2 * miss, d, "2 x cache_miss: pmd and pte levels"),
        "rmap_ptes_compared": Cost(hit, d, "= cache_hit_l2"),
        "find_vma_calls": Cost(3 * miss, d, "3 x cache_miss: the lower rbtree levels"),
        "pte_chain_slots_searched": Cost(hit, d, "= cache_hit_l2 per slot compared"),
        "rmap_mremap_updates": Cost(miss, d, "= cache_miss per chain entry rewritten"),
        "pgscan": Cost(miss, d, "= cache_miss: a page taken off the LRU and looked at"),
        "pgsteal": Cost(free, d, "= page_free"),
        "pgactivate": Cost(lock, d, "= lock_uncontended (lru_lock)"),
        "pgdeactivate": Cost(lock, d, "= lock_uncontended (lru_lock)"),
        "pswpout": Cost(m("pageout_page"), meas, "MADV_PAGEOUT per page: unmap, swap entry, write"
                                                 " submitted"),
        # -- locks ------------------------------------------------------------------------------
        "lock_anon_vma": Cost(lock, meas, "an uncontended lock and unlock"),
        "lock_page_table": Cost(lock, meas, "an uncontended lock and unlock"),
        "trylock_page_table": Cost(lock, meas, "an uncontended lock and unlock"),
        "lock_i_mmap": Cost(lock, meas, "an uncontended lock and unlock"),
        "lock_anonmm": Cost(lock, meas, "an uncontended lock and unlock"),
        "lock_handoff": Cost(100.0, "published",
                             "a contended lock's cache line moving to the next owner's CPU: about "
                             "100-300 cycles across cores (David, Guerraoui, Trigonakis, 'Everything "
                             "you always wanted to know about synchronization', SOSP 2013); 100 ns "
                             "taken. This machine's vCPU ping-pong gave 450-1200 ns, a "
                             "hypervisor's figure"),
        "context_switch": Cost(m("context_switch"), meas,
                               "a sleeping lock's waiter: switched out and woken (pipe ping-pong)"),
        "spin_cap": Cost(10_000.0, "model",
                         "an adaptive spinner (mutex, rwsem of 3.16+) sleeps after spinning this"
                         " long"),
        # -- the user's side --------------------------------------------------------------------
        "user_write_page": Cost(m("user_write_page"), meas, "writing a present 4 KiB page"),
        "user_read_page": Cost(m("user_read_page"), meas, "reading a present 4 KiB page"),
    }
    return t


DEFAULT_COSTS: dict[str, Cost] = _default_table()


class CostTable:
    """The costs in force: the defaults, with entries a file overrode."""

    def __init__(self, overrides: Mapping[str, float] | None = None,
                 origin: str = "defaults") -> None:
        self.entries: dict[str, Cost] = dict(DEFAULT_COSTS)
        self.origin = origin
        for k, v in (overrides or {}).items():
            self.entries[k] = Cost(float(v), "file", origin)
        self.ns: dict[str, float] = {k: c.ns for k, c in self.entries.items()}

    def __getitem__(self, key: str) -> float:
        return self.ns.get(key, 0.0)

    def scaled(self, factor: float) -> CostTable:
        """Every cost times ``factor`` (a test of linearity)."""
        return CostTable({k: v * factor for k, v in self.ns.items()}, f"{self.origin} x{factor}")

    def as_dict(self) -> dict[str, float]:
        return dict(self.ns)


def load_costs(path: str | None) -> CostTable:
    """The defaults, overridden by a JSON or TOML file of ``{"key": ns}``
    (TOML: top-level keys, or a ``[costs]`` table). Bad input raises
    ConfigError with one line."""
    if path is None:
        return CostTable()
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"cost file {path}: {e.strerror or e}") from None
    try:
        if p.suffix.lower() == ".toml":
            data = tomllib.loads(text.decode())
        else:
            data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"cost file {path}: not valid {'TOML' if p.suffix.lower() == '.toml' else 'JSON'}:"
                          f" {first}") from None
    if isinstance(data, dict) and isinstance(data.get("costs"), dict):
        data = data["costs"]
    if not isinstance(data, dict):
        raise ConfigError(f"cost file {path}: expected an object of name: nanoseconds")
    out: dict[str, float] = {}
    for k, v in data.items():
        if k not in DEFAULT_COSTS:
            near = [n for n in DEFAULT_COSTS if n.split(".")[-1] == str(k).split(".")[-1]]
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise ConfigError(f"cost file {path}: unknown cost {k!r}{hint}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"cost file {path}: {k} must be a non-negative number of nanoseconds,"
                              f" not {v!r}")
        out[k] = float(v)
    return CostTable(out, str(path))
