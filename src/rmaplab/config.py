"""Configuration: the model's Kconfig and sysctls, and the named era
behaviours. Every behaviour where kernel eras differ is a field here; the
default is Linux 2.6.7 with the fixes 2.6.8–2.6.11 made to it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from rmaplab.asm.page import DEFAULT_MAX_MAP_COUNT, PAGE_SIZE
from rmaplab.errors import ConfigError

SCHEMES = ("anon_vma", "anonmm", "pte_chain", "none", "anon_vma_chain")


@dataclass
class Config:
    """Everything that selects behaviour. ``None`` sizes mean unlimited."""

    scheme: str = "anon_vma"
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

    # -- era behaviours ------------------------------------------------------
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
    #: 2.6.12+: mmap with length 0 fails with EINVAL (2.6.7 returns addr)
    mmap_len0_einval: bool = False
    #: 2.6.7 page_add_anon_rmap BUG_ONs on an index/anon_vma mismatch
    debug_rmap: bool = True

    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ConfigError(f"unknown scheme {self.scheme!r}; choose from {', '.join(SCHEMES)}")
        if self.mem_pages is not None and self.mem_pages < 16:
            raise ConfigError("memory must be at least 16 pages (64K)")
        if self.swap_pages is not None and self.swap_pages < 0:
            raise ConfigError("swap size cannot be negative")

    def as_dict(self) -> dict:
        return asdict(self)



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
