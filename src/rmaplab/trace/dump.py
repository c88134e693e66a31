"""State dumps (``spec/trace-v1.md``, "State dumps").

``state_dump(kernel, name, event)`` is one JSON-ready object: every live
process in ascending pid, its VMAs in ascending start, and every page inside
a VMA that has a pte, in ascending address.

Choices the spec leaves open, fixed here:

- ``file`` is the declared file's name, and null for anonymous memory,
  private or shared (shared anonymous memory is backed by an unnamed shmem
  file, which is not a file of the trace).
- A ``"swap"`` page has ``frame`` and ``mapcount`` null (no frame maps it);
  its ``token`` is what the page holds: the swap-cache page's content while
  the entry is in the swap cache, else what the swap slot holds.
- The final dump's ``event`` is the number of events (one past the last
  index): like a checkpoint's, it is the index of the event that would
  run next, and the state is that after every event before it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rmaplab.asm.page import PAGE_SHIFT
from rmaplab.mm.mm_types import (VM_ACCOUNT, VM_DONTCOPY, VM_DONTEXPAND, VM_EXEC, VM_GROWSDOWN,
                                 VM_IO, VM_LOCKED, VM_MAYEXEC, VM_MAYREAD, VM_MAYSHARE,
                                 VM_MAYWRITE, VM_NORESERVE, VM_RAND_READ, VM_READ, VM_SEQ_READ,
                                 VM_SHARED, VM_WRITE)

ZERO_PFN = 0


def perms(vm_flags: int) -> str:
    """The maps permission column: ``rwxp`` / ``rw-s``."""
    return (("r" if vm_flags & VM_READ else "-") + ("w" if vm_flags & VM_WRITE else "-")
            + ("x" if vm_flags & VM_EXEC else "-") + ("s" if vm_flags & VM_MAYSHARE else "p"))


def vma_file_name(vma: Any) -> str | None:
    """The trace-level file of a VMA: a declared file's name, else None."""
    f = vma.vm_file
    return None if f is None or f.shmem else f.name


#: ``/proc/PID/smaps`` VmFlags mnemonics of the bits the model has
#: (``show_smap_vma_flags``)
VMFLAG_NAMES = ((VM_READ, "rd"), (VM_WRITE, "wr"), (VM_EXEC, "ex"), (VM_SHARED, "sh"),
                (VM_MAYREAD, "mr"), (VM_MAYWRITE, "mw"), (VM_MAYEXEC, "me"), (VM_MAYSHARE, "ms"),
                (VM_GROWSDOWN, "gd"), (VM_LOCKED, "lo"), (VM_IO, "io"), (VM_SEQ_READ, "sr"),
                (VM_RAND_READ, "rr"), (VM_DONTCOPY, "dc"), (VM_DONTEXPAND, "de"),
                (VM_ACCOUNT, "ac"), (VM_NORESERVE, "nr"))


def vmflags(vm_flags: int) -> list[str]:
    """The VmFlags line of smaps for these flags, as a list."""
    return [name for bit, name in VMFLAG_NAMES if vm_flags & bit]


def maps_of(kernel: Any, pid: int, with_vmflags: bool = False) -> list[dict]:
    scheme = kernel.scheme
    out = []
    for v in kernel.mm(pid).mmap:
        if v.vm_flags & VM_IO:          # a special mapping, not the trace's
            continue
        m = {"start": v.vm_start, "end": v.vm_end, "perms": perms(v.vm_flags),
             "pgoff": v.vm_pgoff, "file": vma_file_name(v), "anon_vma": scheme.anon_vma_id(v)}
        if with_vmflags:
            m["vmflags"] = vmflags(v.vm_flags)
        out.append(m)
    return out


def pages_of(kernel: Any, pid: int) -> list[dict]:
    mm = kernel.mm(pid)
    vs, ps = [], []
    for v in mm.mmap:
        if v.vm_flags & VM_IO:          # a special mapping, not the trace's
            continue
        vpns, ptes = mm.pgd.populated(v.vm_start >> PAGE_SHIFT, v.vm_end >> PAGE_SHIFT)
        if len(vpns):
            vs.append(vpns)
            ps.append(ptes)
    if not vs:
        return []
    vpns = np.concatenate(vs).astype(np.int64)
    ptes = np.concatenate(ps).astype(np.int64)
    ctx = kernel.ctx
    mem = kernel.mem
    present = (ptes & 1) == 1
    pfn = ptes >> 12                      # the pfn, or the swap entry
    tokens = np.zeros(len(ptes), dtype=np.int64)
    mapcount = np.zeros(len(ptes), dtype=np.int64)
    pp = pfn[present]
    tokens[present] = mem.token[pp]
    mapcount[present] = mem.mapcount[pp]
    swapped = np.flatnonzero(~present)
    if len(swapped):
        cache = ctx.swapper_space
        contents = ctx.swap.contents
        for i in swapped.tolist():
            entry = int(pfn[i])
            cpfn = cache.get(entry)
            tokens[i] = mem.token[cpfn] if cpfn is not None else contents[entry]
    # token ids -> JSON values, once per distinct id
    uniq, inv = np.unique(tokens, return_inverse=True)
    value = ctx.contents.value
    vals = [value(t) for t in uniq.tolist()]
    tok = [vals[i] for i in inv.tolist()]
    # every page as if present ...
    out = [{"addr": a, "state": "present", "frame": f, "mapcount": m,
            "token": t if f != ZERO_PFN else None,
            "zero_page": f == ZERO_PFN}
           for a, f, m, t in zip((vpns << PAGE_SHIFT).tolist(), pfn.tolist(),
                                 mapcount.tolist(), tok)]
    # ... then the swap entries put right
    for i in swapped.tolist():
        p = out[i]
        p["state"] = "swap"
        p["token"] = tok[i]
        p["frame"] = p["mapcount"] = None
        p["zero_page"] = False
    return out


def state_dump(kernel: Any, name: str | None, event: int, with_vmflags: bool = False) -> dict:
    """The dump object of the spec for the kernel's current state
    (``with_vmflags``: each map also carries its smaps VmFlags, for
    ``rmaplab conform``; not part of the dump format)."""
    return {"name": name, "event": event,
            "processes": [{"pid": pid, "maps": maps_of(kernel, pid, with_vmflags),
                           "pages": pages_of(kernel, pid)}
                          for pid in kernel.pids()]}
