"""The vm_flags and page-flag bits (include/linux/mm.h and the
include/linux/page-flags.h it includes, 2.6.11 numbering).

One definition for every layer: ``mm`` (``mm.mm_types``, ``mm.page``, which
re-export them) and ``rmap``, which sits below ``mm`` and may not import it.
"""

# vm_area_struct->vm_flags
VM_READ = 0x1
VM_WRITE = 0x2
VM_EXEC = 0x4
VM_SHARED = 0x8
VM_MAYREAD = 0x10
VM_MAYWRITE = 0x20
VM_MAYEXEC = 0x40
VM_MAYSHARE = 0x80
VM_GROWSDOWN = 0x100
VM_GROWSUP = 0x200
VM_LOCKED = 0x2000
VM_IO = 0x4000
VM_SEQ_READ = 0x8000
VM_RAND_READ = 0x10000
VM_DONTCOPY = 0x20000
VM_DONTEXPAND = 0x40000
VM_RESERVED = 0x80000
VM_ACCOUNT = 0x100000
#: modern: MAP_NORESERVE is kept as a flag (2.6.29+), which vma_merge compares
VM_NORESERVE = 0x200000

VM_SPECIAL = VM_IO | VM_DONTCOPY | VM_DONTEXPAND | VM_RESERVED
VM_PROT_MASK = VM_READ | VM_WRITE | VM_EXEC

# page->flags (include/linux/page-flags.h)
PG_locked = 1 << 0
PG_referenced = 1 << 2
PG_dirty = 1 << 4
PG_lru = 1 << 5
PG_active = 1 << 6
PG_reserved = 1 << 11
PG_private = 1 << 12
PG_writeback = 1 << 13
PG_swapcache = 1 << 16

#: the low bit of ``page->mapping`` that marks an anonymous page
PAGE_MAPPING_ANON = 1
