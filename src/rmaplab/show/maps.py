"""``/proc/<pid>/maps`` text for a model process.

The layout is the one Linux 2.6 printed (``show_map`` in fs/proc/task_mmu.c,
2.6.11): for each VMA,

    start-end perms offset major:minor inode[ padding path]

with start and end as ``%08lx``, perms as ``rwxp``/``rw-s`` (``s`` from
VM_MAYSHARE), the offset as ``%08lx``, the device as ``%02x:%02x``, the
inode as ``%lu`` followed by one space. A VMA with a file gets the path
after padding to column 73 (25 + 6 * sizeof(void *) on a 64-bit kernel, at
least one space); a line without a file ends with that space. 2.6.11 had no
``[heap]``/``[stack]`` names.

The offset column is ``vm_pgoff << 12``. In 2.6 that includes anonymous
VMAs, whose vm_pgoff is their start page; modern Linux prints 0 for a VMA
without a file (``offset_style="modern"``). A shared anonymous VMA has its
shmem file in both, so its offset is printed as is.

Model departures: there are no devices, so the device is ``00:00``; the
inode is the model's file number (0 without a file). Declared files print
their trace name as the path; shared anonymous memory prints
``/dev/zero (deleted)`` as 2.6 did.
"""

from __future__ import annotations

from typing import Any

from rmaplab.asm.page import PAGE_SHIFT
from rmaplab.mm.mm_types import VM_EXEC, VM_IO, VM_MAYSHARE, VM_READ, VM_WRITE

OFFSET_STYLES = ("2.6", "modern")

#: the column a file path starts at: 25 + sizeof(void *) * 6 on 64 bits
PATH_COLUMN = 25 + 8 * 6


def format_vma(vma: Any, offset_style: str = "2.6") -> str:
    """One maps line (without the newline)."""
    if offset_style not in OFFSET_STYLES:
        raise ValueError(f"offset style must be one of {', '.join(OFFSET_STYLES)}")
    flags = vma.vm_flags
    f = vma.vm_file
    perms = (("r" if flags & VM_READ else "-") + ("w" if flags & VM_WRITE else "-")
             + ("x" if flags & VM_EXEC else "-") + ("s" if flags & VM_MAYSHARE else "p"))
    if f is None and offset_style == "modern":
        offset = 0
    else:
        offset = (vma.vm_pgoff << PAGE_SHIFT) & ((1 << 64) - 1)
    inode = f.id if f is not None else 0
    head = f"{vma.vm_start:08x}-{vma.vm_end:08x} {perms} {offset:08x} {0:02x}:{0:02x} {inode} "
    if f is None:
        return head
    return head + " " * max(PATH_COLUMN - len(head), 1) + f.name


def maps_text(mm: Any, offset_style: str = "2.6") -> str:
    """The whole maps file of an mm (one line per VMA, each ending in a newline)."""
    return "".join(format_vma(v, offset_style) + "\n" for v in mm.mmap
                   if not v.vm_flags & VM_IO)      # special mappings are not the trace's
