"""Page-table entry encoding (include/asm-x86_64/pgtable.h).

A pte is one int64. Zero is ``pte_none``. A present pte holds the pfn above
bit 12 and the x86 bits below it. A swap pte is non-zero and not present;
its swap offset sits above bit 12 and bit 1 marks it (the model has one
swap type, so ``__swp_type`` is always 0).
"""

import numpy as np

_PAGE_PRESENT = 0x001
_PAGE_RW = 0x002
_PAGE_ACCESSED = 0x020  # the "young" bit
_PAGE_DIRTY = 0x040
_PAGE_SWP = 0x002        # meaning of bit 1 when not present: a swap entry
PTE_PFN_SHIFT = 12

PTE_DTYPE = np.int64


def swp_entry_to_pte(offset: int) -> int:
    """``swp_entry_to_pte``: the not-present pte that holds a swap entry."""
    return (offset << PTE_PFN_SHIFT) | _PAGE_SWP
