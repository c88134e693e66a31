"""Event counters, in the units that mattered in the 2004 debate.

One ``VmStat`` per model; every layer adds to it. Counters are plain ints.
"""

from __future__ import annotations

COUNTERS = (
    # rmap walks (page_referenced, try_to_unmap)
    "rmap_walks", "rmap_vmas_visited", "rmap_vmas_skipped", "rmap_mms_visited",
    "rmap_pgtable_walks", "rmap_ptes_compared", "rmap_ptes_found",
    "find_vma_calls", "lock_anon_vma", "lock_page_table", "trylock_page_table",
    "lock_i_mmap",
    # anon_vma objects
    "anon_vma_alloc", "anon_vma_free", "anon_vma_reused",
    # anon_vma_chain
    "avc_alloc", "avc_free", "anon_vma_fork_reuse", "page_move_anon_rmap",
    # anonmm objects (rmap 10): the bundle head's lock, allocations, pages
    # migrated away from an exited mm by page_referenced
    "lock_anonmm", "anonmm_alloc", "anonmm_free", "anonmm_migrations",
    # pte_chain blocks (2.5.x-2.6.6): blocks taken into / released from
    # chains, slots compared by page_remove_rmap's linear search, and chain
    # entries rewritten by mremap (remove + add per moved pte)
    "pte_chain_alloc", "pte_chain_free", "pte_chain_slots_searched", "rmap_mremap_updates",
    # vma structure
    "vma_alloc", "vma_free", "vma_merges", "vma_splits",
    # faults
    "fault_anon", "fault_zero_page", "fault_file", "fault_wp_copy", "fault_wp_reuse",
    "fault_early_cow", "fault_swap", "fault_around", "pages_copied",
    # fork / exit / mremap
    "fork_vmas", "fork_ptes", "exit_ptes", "mremap_moves", "mremap_ptes_moved",
    "mremap_cows",
    # reclaim and swap
    "pgscan", "pgsteal", "pswpout", "pswpin", "pgactivate", "pgdeactivate",
    "try_to_unmap_calls", "try_to_unmap_fail", "try_to_unmap_again",
    "page_referenced_calls", "oom_kills", "direct_reclaim", "kswapd_wakeups",
)


class VmStat:
    """The model's counters; ``as_dict()`` gives them to JSON."""

    def __init__(self) -> None:
        for name in COUNTERS:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}

    def reset(self) -> None:
        self.__init__()
