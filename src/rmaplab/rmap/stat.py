"""Event counters, in the units that mattered in the 2004 debate.

One ``VmStat`` per model; every layer adds to it. Counters are plain ints.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(eq=False)
class VmStat:
    """The model's counters; ``as_dict()`` gives them to JSON. Each is a
    plain int field (so a type checker sees them); ``COUNTERS`` lists them
    in order."""

    # rmap walks (page_referenced, try_to_unmap)
    rmap_walks: int = 0
    rmap_vmas_visited: int = 0
    rmap_vmas_skipped: int = 0
    rmap_mms_visited: int = 0
    rmap_pgtable_walks: int = 0
    rmap_ptes_compared: int = 0
    rmap_ptes_found: int = 0
    find_vma_calls: int = 0
    lock_anon_vma: int = 0
    lock_page_table: int = 0
    trylock_page_table: int = 0
    lock_i_mmap: int = 0
    # anon_vma objects
    anon_vma_alloc: int = 0
    anon_vma_free: int = 0
    anon_vma_reused: int = 0
    # anon_vma_chain
    avc_alloc: int = 0
    avc_free: int = 0
    anon_vma_fork_reuse: int = 0
    page_move_anon_rmap: int = 0
    # anonmm objects (rmap 10): the bundle head's lock, allocations, pages
    # migrated away from an exited mm by page_referenced
    lock_anonmm: int = 0
    anonmm_alloc: int = 0
    anonmm_free: int = 0
    anonmm_migrations: int = 0
    # pte_chain blocks (2.5.x-2.6.6): blocks taken into / released from
    # chains, slots compared by page_remove_rmap's linear search, and chain
    # entries rewritten by mremap (remove + add per moved pte)
    pte_chain_alloc: int = 0
    pte_chain_free: int = 0
    pte_chain_slots_searched: int = 0
    rmap_mremap_updates: int = 0
    # vma structure
    vma_alloc: int = 0
    vma_free: int = 0
    vma_merges: int = 0
    vma_splits: int = 0
    # faults
    fault_anon: int = 0
    fault_zero_page: int = 0
    fault_file: int = 0
    fault_wp_copy: int = 0
    fault_wp_reuse: int = 0
    fault_early_cow: int = 0
    fault_swap: int = 0
    fault_around: int = 0
    pages_copied: int = 0
    # fork / exit / mremap
    fork_vmas: int = 0
    fork_ptes: int = 0
    exit_ptes: int = 0
    mremap_moves: int = 0
    mremap_ptes_moved: int = 0
    mremap_cows: int = 0
    # reclaim and swap
    pgscan: int = 0
    pgsteal: int = 0
    pswpout: int = 0
    pswpin: int = 0
    pgactivate: int = 0
    pgdeactivate: int = 0
    try_to_unmap_calls: int = 0
    try_to_unmap_fail: int = 0
    try_to_unmap_again: int = 0
    page_referenced_calls: int = 0
    oom_kills: int = 0
    direct_reclaim: int = 0
    kswapd_wakeups: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}

    def reset(self) -> None:
        for name in COUNTERS:
            setattr(self, name, 0)


#: every counter's name, in the order of the fields above (and of reports)
COUNTERS: tuple[str, ...] = tuple(f.name for f in fields(VmStat))
