"""Page size and address-space limits (include/asm-x86_64/page.h, processor.h).

The model is a 64-bit address space with 4 KiB pages, as on x86_64 2.6.11.
"""

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1)

#: x86_64 user space ends one page below 1 << 47 (the kernel's
#: TASK_SIZE_MAX, ``(1 << 47) - PAGE_SIZE``, kept free so no instruction
#: can run into the non-canonical hole); a range ending above it is refused
#: (observed on 6.18, item 20 of docs/linux-6.18-observed.md).
TASK_SIZE = (1 << 47) - (1 << 12)
#: x86_64 legacy bottom-up layout: PAGE_ALIGN(TASK_SIZE / 3).
TASK_UNMAPPED_BASE = ((TASK_SIZE // 3) + PAGE_SIZE - 1) & PAGE_MASK

#: The top-down layout (modern x86_64 ``mmap_base`` without randomisation):
#: the stack's gap is RLIMIT_STACK (8 MiB) plus the guard gap, raised to the
#: 128 MiB minimum, below TASK_SIZE.
MMAP_BASE = TASK_SIZE - (128 << 20)
#: ``stack_guard_gap``: 256 pages kept free below a VM_GROWSDOWN VMA.
STACK_GUARD_GAP = 256 << PAGE_SHIFT
#: vm.mmap_min_addr of the machines the model is checked on (4096).
MMAP_MIN_ADDR = 1 << PAGE_SHIFT

#: Default vm.max_map_count of the model's processes. 2.6.11 had 65536;
#: the trace spec fixes 65530 (the modern DEFAULT_MAX_MAP_COUNT).
DEFAULT_MAX_MAP_COUNT = 65530

#: Page-table geometry: one pte page maps PTRS_PER_PTE pages (2 MiB).
PTRS_PER_PTE = 512
PMD_SHIFT = PAGE_SHIFT + 9
PMD_SIZE = 1 << PMD_SHIFT


#: ``unsigned long`` is 64 bits: user-supplied lengths wrap as in C.
ULONG_MASK = (1 << 64) - 1


def PAGE_ALIGN(addr: int) -> int:
    """Round up to a page, wrapping at 2**64 like the C macro."""
    return (addr + PAGE_SIZE - 1) & PAGE_MASK & ULONG_MASK


def pages(nbytes: int) -> int:
    return nbytes >> PAGE_SHIFT
