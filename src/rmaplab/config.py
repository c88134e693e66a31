"""Configuration: the model's Kconfig and sysctls, and the named era
behaviours. Every behaviour where kernel eras differ is a field here; the
default is Linux 2.6.7 with the fixes 2.6.8–2.6.11 made to it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from rmaplab.asm.page import DEFAULT_MAX_MAP_COUNT, PAGE_SIZE
from rmaplab.errors import ConfigError



def __getattr__(name: str) -> Any:
    """``SCHEMES``: the registered scheme names (rmaplab.rmap.registry)."""
    if name == "SCHEMES":
        from rmaplab.rmap import registry
        return tuple(registry.names())
    raise AttributeError(name)

PROFILES = ("2.6.7", "modern")


class Rule(NamedTuple):
    """One behaviour where kernel eras differ: its value in each profile."""

    old: Any          # Linux 2.6.7 (with the 2.6.8–2.6.11 fixes)
    modern: Any       # Linux 6.18 as observed
    what: str


#: Every era rule, in the order the README's profile table lists them.
#: ``Config(profile=...)`` takes each value from here unless it is given.
RULES: dict[str, Rule] = {
    "scheme": Rule("anon_vma", "anon_vma_chain",
                   "reverse mapping: 2.6.7's anon_vma list, or 2.6.34's anon_vma_chain "
                   "(2025 merge rule: fork children refuse merges next to inherited "
                   "faulted VMAs)"),
    "mmap_layout": Rule("bottom-up", "top-down",
                        "where mmap without a fixed address goes: x86_64 2.6's legacy "
                        "layout upwards from TASK_UNMAPPED_BASE, or the top-down layout "
                        "below mmap_base (TASK_SIZE - 128 MiB, no randomisation)"),
    "mmap_len0_einval": Rule(False, True, "mmap of length 0 fails with EINVAL (2.6.12+); "
                             "2.6.7 returns addr"),
    "mmap_fixed_noreplace": Rule(False, True,
                                 "MAP_FIXED_NOREPLACE (4.17): EEXIST over a mapping, EINVAL "
                                 "unaligned; 2.6.7 did not know the bit (a hint)"),
    "mmap_huge_len_enomem": Rule(False, True,
                                 "a length above TASK_SIZE: ENOMEM from get_unmapped_area "
                                 "(modern) or EINVAL from do_mmap_pgoff (2.6.7)"),
    "vm_noreserve": Rule(False, True,
                         "MAP_NORESERVE leaves VM_NORESERVE on the VMA (smaps nr): it blocks "
                         "merges with other VMAs, and mprotect adding write then charges no "
                         "VM_ACCOUNT; 2.6 only skipped the charge at mmap"),
    "mprotect_drop_account": Rule(False, True,
                                  "mprotect removing write from an anonymous VMA that has "
                                  "no anon_vma drops VM_ACCOUNT (so it merges with fresh "
                                  "read-only memory)"),
    "mremap_expand_merge": Rule(False, True,
                                "in-place mremap growth that reaches a compatible next VMA "
                                "merges with it (vma_merge_extend)"),
    "mremap_lookup_first": Rule(False, True,
                                "mremap looks the VMA up before shrinking: a shrink of an "
                                "unmapped range is EFAULT (2.6.7 returns the address)"),
    "mremap_multi_vma": Rule(False, True,
                             "6.17: a pure move (MREMAP_FIXED, equal sizes) or a shrink "
                             "may span several VMAs and holes"),
    "mremap_dontunmap": Rule(False, True, "MREMAP_DONTUNMAP (5.7; 5.13 for file mappings)"),
    "mremap_dup_private_einval": Rule(False, True,
                                      "mremap with old_len 0 of a private mapping is EINVAL "
                                      "(4.14); 2.6.7 makes a new private copy of the flags"),
    "fault_around_pages": Rule(0, 16,
                               "a read fault on a file or shmem VMA also maps up to this many "
                               "neighbouring page-cache pages (do_fault_around)"),
    "cow_fault_anon_vma_first": Rule(False, True,
                                     "a write fault on a private file mapping prepares the "
                                     "anon_vma before it reads the page (do_cow_fault), so one "
                                     "that ends in SIGBUS beyond EOF leaves an anon_vma"),
    "mm_populate": Rule(False, True,
                        "MAP_POPULATE, MAP_LOCKED and mlock fault pages in as __mm_populate "
                        "does: every kind of VMA, write faults for private writable memory, "
                        "read faults (zero page, fault-around) otherwise; mlock locks the whole "
                        "range first and a failed fault is ENOMEM. 2.6: make_pages_present, and "
                        "MAP_POPULATE only for shared file mappings"),
    "fork_copy_anon_only": Rule(False, True,
                                "fork copies page tables only of VMAs with an anon_vma "
                                "(vma_needs_copy); others fill by faults"),
    "vma_modify_merges": Rule(False, True,
                              "madvise's read-ahead advice and mlock/munlock merge the changed "
                              "range with compatible neighbours and leave an unchanged VMA "
                              "unsplit (vma_modify_flags); 2.6 only splits"),
    "madvise_cold_pageout": Rule(False, True, "MADV_COLD and MADV_PAGEOUT (5.4)"),
    "madvise_willneed_anon": Rule(False, True,
                                  "MADV_WILLNEED on anonymous memory succeeds (2.6.7: EBADF)"),
    "maps_offset": Rule("2.6", "modern",
                        "/proc/PID/maps offset of an anonymous VMA: vm_pgoff << 12 (2.6) "
                        "or 0 (modern)"),
}


@dataclass
class Config:
    """Everything that selects behaviour. ``None`` sizes mean unlimited.

    ``profile`` selects a whole era: every field named in ``RULES`` that is
    left as None takes the profile's value, so ``Config(profile="modern",
    scheme="anon_vma")`` is 6.18 with 2.6.7's reverse map, and nothing is
    mixed unless asked for by name.
    """

    profile: str = "2.6.7"
    scheme: str = None  # type: ignore[assignment]  # resolved from the profile
    #: how the scheme was named: a registered name, FILE.py:CLASS or
    #: MODULE:CLASS (``scheme`` is then the name it registered under), so
    #: another process can load a plugin again
    scheme_spec: str | None = None
    #: physical memory in pages (ZERO_PAGE included); None grows on demand
    mem_pages: int | None = None
    #: swap space in pages; None grows on demand
    swap_pages: int | None = None
    #: with unlimited memory, the most frames the model will hold before the
    #: OOM killer acts (8 GiB of simulated pages; page-table pages are
    #: limited to a 64th of it)
    max_mem_pages: int = 1 << 21
    max_map_count: int = DEFAULT_MAX_MAP_COUNT
    #: RLIMIT_STACK (2.6's _STK_LIM, 8 MiB): how far a growsdown VMA may grow
    rlimit_stack: int = 8 << 20

    # -- era behaviours of the 2.6 series (not profile rules: 2.6.7 history)
    #: 2.6.8 "mprotect propagate anon_vma": vma_adjust gives the importing
    #: VMA the exporter's anon_vma (False: the 2.6.7 rmap 39 code, which
    #: lets a VMA receive pages without joining their list)
    vma_adjust_importer: bool = True
    #: a VMA that vma_merge grows over a range whose pages belong to an
    #: anon_vma (mremap moving a faulted VMA beside an unfaulted neighbour)
    #: takes that anon_vma. 2.6.x lacks it: the grown VMA is left off the
    #: list its pages point to (validate() reports the broken list closure);
    #: the hole was hidden from 2.6.36 by the singular-chain rule and fixed
    #: with dup_anon_vma in 2025. False reproduces 2.6.x.
    copy_vma_import: bool = True
    #: rmap 40: anon_vma_prepare reuses a touching neighbour's anon_vma
    find_mergeable_anon_vma: bool = True
    #: 2.6.9 rmaplock 2/6: the last page_remove_rmap keeps page->mapping
    keep_anon_mapping: bool = False
    #: 2.6.7/2.6.8: rmap walks trylock page_table_lock (2.6.9+ spin)
    trylock_walks: bool = True
    #: 2.6.7 page_add_anon_rmap BUG_ONs on an index/anon_vma mismatch
    debug_rmap: bool = True

    # -- profile rules (None: the profile's value; see RULES) ---------------
    mmap_layout: str = None  # type: ignore[assignment]
    mmap_len0_einval: bool = None  # type: ignore[assignment]
    mmap_fixed_noreplace: bool = None  # type: ignore[assignment]
    mmap_huge_len_enomem: bool = None  # type: ignore[assignment]
    vm_noreserve: bool = None  # type: ignore[assignment]
    mprotect_drop_account: bool = None  # type: ignore[assignment]
    mremap_expand_merge: bool = None  # type: ignore[assignment]
    mremap_lookup_first: bool = None  # type: ignore[assignment]
    mremap_multi_vma: bool = None  # type: ignore[assignment]
    mremap_dontunmap: bool = None  # type: ignore[assignment]
    mremap_dup_private_einval: bool = None  # type: ignore[assignment]
    fault_around_pages: int = None  # type: ignore[assignment]
    cow_fault_anon_vma_first: bool = None  # type: ignore[assignment]
    mm_populate: bool = None  # type: ignore[assignment]
    fork_copy_anon_only: bool = None  # type: ignore[assignment]
    vma_modify_merges: bool = None  # type: ignore[assignment]
    madvise_cold_pageout: bool = None  # type: ignore[assignment]
    madvise_willneed_anon: bool = None  # type: ignore[assignment]
    maps_offset: str = None  # type: ignore[assignment]

    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError(f"unknown profile {self.profile!r}; choose from {', '.join(PROFILES)}")
        modern = self.profile == "modern"
        for name, rule in RULES.items():
            if getattr(self, name) is None:
                setattr(self, name, rule.modern if modern else rule.old)
        from rmaplab.rmap import registry
        if self.scheme_spec is None:
            self.scheme_spec = self.scheme
        self.scheme = registry.resolve(self.scheme_spec)      # ConfigError if unknown
        if self.mmap_layout not in ("bottom-up", "top-down"):
            raise ConfigError(f"mmap_layout {self.mmap_layout!r}: choose bottom-up or top-down")
        if self.maps_offset not in ("2.6", "modern"):
            raise ConfigError(f"maps_offset {self.maps_offset!r}: choose 2.6 or modern")
        if not isinstance(self.fault_around_pages, int) or not 0 <= self.fault_around_pages <= 512:
            raise ConfigError("fault_around_pages must be a whole number from 0 to 512")
        if (self.mremap_dontunmap or self.mremap_multi_vma) and not self.mremap_lookup_first:
            raise ConfigError("mremap_dontunmap and mremap_multi_vma exist only in 6.18's mremap: "
                              "they need mremap_lookup_first")
        if self.mem_pages is not None and self.mem_pages < 16:
            raise ConfigError("memory must be at least 16 pages (64K)")
        if self.swap_pages is not None and self.swap_pages < 0:
            raise ConfigError("swap size cannot be negative")
        if modern and self.scheme == "anon_vma_chain":
            self.extra.setdefault("avc_merge_rule", "2025")

    def as_dict(self) -> dict:
        return asdict(self)

    def differences(self) -> dict[str, Any]:
        """The rules whose value is not their profile's (named overrides)."""
        modern = self.profile == "modern"
        return {n: getattr(self, n) for n, r in RULES.items()
                if getattr(self, n) != (r.modern if modern else r.old)}


_SIZE = re.compile(r"^\s*(\d+)\s*([kKmMgGtT]?)(i?[bB])?\s*$")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``"64M"`` → bytes. Accepts K, M, G, T (powers of two), and plain bytes."""
    m = _SIZE.match(text)
    if not m:
        raise ConfigError(f"bad size {text!r}: expected a number with an optional K, M, G or T")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def size_to_pages(text: str | None) -> int | None:
    if text is None or text.lower() in ("", "unlimited", "none"):
        return None
    return parse_size(text) // PAGE_SIZE
