"""Page size and address-space limits (include/asm-x86_64/page.h, processor.h).

The model is a 64-bit address space with 4 KiB pages, as on x86_64 2.6.11.
"""

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1)

#: x86_64 2.6.11: TASK_SIZE is 0x800000000000 (47 bits).
TASK_SIZE = 1 << 47
#: x86_64 2.6.11 legacy bottom-up layout: PAGE_ALIGN(TASK_SIZE / 3).
TASK_UNMAPPED_BASE = ((TASK_SIZE // 3) + PAGE_SIZE - 1) & PAGE_MASK

#: Default vm.max_map_count of the model's processes. 2.6.11 had 65536;
#: the trace spec fixes 65530 (the modern DEFAULT_MAX_MAP_COUNT).
DEFAULT_MAX_MAP_COUNT = 65530

#: Page-table geometry: one pte page maps PTRS_PER_PTE pages (2 MiB).
PTRS_PER_PTE = 512
PMD_SHIFT = PAGE_SHIFT + 9


#: ``unsigned long`` is 64 bits: user-supplied lengths wrap as in C.
ULONG_MASK = (1 << 64) - 1


def PAGE_ALIGN(addr: int) -> int:
    """Round up to a page, wrapping at 2**64 like the C macro."""
    return (addr + PAGE_SIZE - 1) & PAGE_MASK & ULONG_MASK


def pages(nbytes: int) -> int:
    return nbytes >> PAGE_SHIFT
