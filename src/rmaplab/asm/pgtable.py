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
PTE_FLAGS_MASK = (1 << PTE_PFN_SHIFT) - 1

PTE_DTYPE = np.int64


def mk_pte(pfn: int, write: bool, young: bool = True, dirty: bool = False) -> int:
    return ((pfn << PTE_PFN_SHIFT) | _PAGE_PRESENT | (_PAGE_RW if write else 0)
            | (_PAGE_ACCESSED if young else 0) | (_PAGE_DIRTY if dirty else 0))


def swp_entry_to_pte(offset: int) -> int:
    return (offset << PTE_PFN_SHIFT) | _PAGE_SWP


def pte_present(pte: int) -> bool:
    return bool(pte & _PAGE_PRESENT)


def pte_is_swap(pte: int) -> bool:
    return pte != 0 and not (pte & _PAGE_PRESENT)


def pte_pfn(pte: int) -> int:
    return pte >> PTE_PFN_SHIFT


def pte_write(pte: int) -> bool:
    return bool(pte & _PAGE_RW)


def pte_young(pte: int) -> bool:
    return bool(pte & _PAGE_ACCESSED)


def pte_dirty(pte: int) -> bool:
    return bool(pte & _PAGE_DIRTY)
