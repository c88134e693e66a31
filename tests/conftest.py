"""Shared fixtures and helpers for the scenario tests.

Addresses are counted in pages from a base ``B`` that is free and page
aligned (syscall-semantics.md §0). A private anonymous VMA created at page
``a`` has ``vm_pgoff == (B >> PAGE_SHIFT) + a``; ``pgoff()`` returns the
part relative to the base, so a never-moved anonymous VMA at page ``a``
shows ``pgoff == a``.

Drawings follow the kernel's tools/testing/vma comments, one character per
page of the window ``[B, B + W pages)``::

    # 0123456789
    # AAA.BB....     vma: a letter per VMA in order of appearance, '.' unmapped
    # 111.--....     av:  a symbol per anon_vma, '-' none
    # Aaz.--....     pte: '-' none, 'z' zero page, a/A anon ro/rw, f/F file, s swap
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from rmaplab.check import check_rmap_complete, validate
from rmaplab.config import Config
from rmaplab.errors import SyscallError
from rmaplab.kernel import Kernel
from rmaplab.show import layout

P = 4096
PAGE_SHIFT = 12
#: the base of the drawn window: free (below TASK_UNMAPPED_BASE, far above
#: the model's initial program break) and page aligned
B = 0x4000_0000
PGB = B >> PAGE_SHIFT
#: default window width in pages
W = 12

# vm_flags bits (include/linux/mm.h; the values are part of the kernel ABI
# of /proc and of the notes, so the tests spell them out themselves)
VM_READ, VM_WRITE, VM_EXEC, VM_SHARED = 0x1, 0x2, 0x4, 0x8
VM_MAYREAD, VM_MAYWRITE, VM_MAYEXEC, VM_MAYSHARE = 0x10, 0x20, 0x40, 0x80
VM_GROWSDOWN = 0x100
VM_LOCKED = 0x2000
VM_SEQ_READ, VM_RAND_READ = 0x8000, 0x10000
VM_ACCOUNT = 0x100000
PROT_BITS = VM_READ | VM_WRITE | VM_EXEC


def addr(page: int) -> int:
    """The address of page ``page`` of the window."""
    return B + page * P


def new_kernel(**cfg) -> Kernel:
    """A Kernel (with ``Config(**cfg)``) and process 1 spawned."""
    kern = Kernel(Config(**cfg))
    kern.spawn(1)
    return kern


@pytest.fixture
def k() -> Kernel:
    """A default (2.6.7 + 2.6.8–2.6.11 fixes) kernel with pid 1 spawned."""
    return new_kernel()


def mapx(k: Kernel, start: int, npages: int, prot: str = "rw-", pid: int = 1,
         extra: Iterable[str] = ()) -> int:
    """MAP_FIXED private anonymous memory at pages ``[start, start+npages)``."""
    got = k.mmap(pid, addr(start), npages * P, prot, ["private", "anonymous", "fixed", *extra])
    assert got == addr(start)
    return got


def draw(k: Kernel, pid: int = 1, what: str = "vma", n: int = W, base: int = B) -> str:
    """One character per page of ``[base, base + n pages)``."""
    return layout.draw(k.mm(pid), base, n, what, mem=k.mem)


def pic(k: Kernel, pid: int = 1, n: int = W, base: int = B) -> tuple[str, str, str]:
    """(vma, av, pte) drawings of the window."""
    return (draw(k, pid, "vma", n, base), draw(k, pid, "av", n, base),
            draw(k, pid, "pte", n, base))


def vma_at(k: Kernel, page: int, pid: int = 1):
    """The VMA containing page ``page`` of the window, or None."""
    a = addr(page)
    vma = k.mm(pid).find_vma(a)
    return vma if vma is not None and vma.vm_start <= a else None


def pgoff(k: Kernel, page: int, pid: int = 1) -> int:
    """vm_pgoff of the VMA covering ``page``, relative to the base."""
    vma = vma_at(k, page, pid)
    assert vma is not None, f"page {page} is not mapped"
    return vma.vm_pgoff - PGB


def spans(k: Kernel, pid: int = 1, n: int = W) -> list[tuple[int, int, int]]:
    """(start page, end page, relative pgoff) of every VMA meeting the window."""
    out = []
    for vma in k.mm(pid).vma_range(B, addr(n)):
        out.append(((vma.vm_start - B) // P, (vma.vm_end - B) // P, vma.vm_pgoff - PGB))
    return out


def write(k: Kernel, page: int, npages: int = 1, token: object = "w", pid: int = 1) -> None:
    r = k.touch(pid, addr(page), npages * P, "w", token)
    assert r.result == "ok", (page, r)


def read(k: Kernel, page: int, npages: int = 1, pid: int = 1) -> list:
    r = k.touch(pid, addr(page), npages * P, "r")
    assert r.result == "ok", (page, r)
    return r.read


def pfn_at(k: Kernel, page: int, pid: int = 1) -> int:
    """The frame mapped at ``page`` (which must be present)."""
    pte = int(k.mm(pid).pgd.get(addr(page) >> PAGE_SHIFT))
    assert pte & 1, f"page {page} of pid {pid} is not present"
    return pte >> 12


def errno_of(fn, *args, **kwargs) -> str:
    """Call a system call that must fail; its errno name."""
    with pytest.raises(SyscallError) as ei:
        fn(*args, **kwargs)
    return ei.value.errno


def check(k: Kernel) -> None:
    """Every invariant, and rmap completeness against a brute-force scan."""
    validate(k)
    check_rmap_complete(k)


def snapshot(k: Kernel, pid: int = 1) -> list[tuple]:
    """Everything user-visible about the address space's VMAs, for
    "nothing changed" assertions (identity included)."""
    return [(id(v), v.vm_start, v.vm_end, v.vm_pgoff, v.vm_flags, id(v.anon_vma))
            for v in k.mm(pid).mmap]


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """List the screenshots the browser tests kept (tests/test_browser.py)."""
    paths = getattr(config, "rmaplab_artifacts", [])
    if paths:
        terminalreporter.write_sep("-", "browser screenshots")
        for p in paths:
            terminalreporter.write_line(p)
