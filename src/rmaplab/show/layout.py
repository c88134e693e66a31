"""Address-space layouts drawn one character per page, in the manner of the
kernel's tools/testing/vma comments::

    0123456789
    AAABB..CC     vma    (a letter per VMA, '.' where nothing is mapped)
    111-2..33     av     (a digit/letter per anon_vma, '-' for none)
    aaazs..ff     pte    (see PTE_CHARS)

Letters are given in order of appearance within the drawn window, so a
drawing names structure, not identities: "AAB" means the first two pages
share a VMA and the third is in another.
"""

from __future__ import annotations

from typing import Any

from rmaplab.asm.page import PAGE_SHIFT
from rmaplab.mm.page import ZERO_PFN

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_AV = "123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

#: pte characters: no pte '-', zero page 'z', anonymous 'a' (read-only) or
#: 'A' (writable), file/page-cache 'f' or 'F', swap entry 's'
PTE_CHARS = "-zaAfFs"


def _vma_at(mm: Any, addr: int) -> Any:
    vma = mm.find_vma(addr)
    return vma if vma is not None and vma.vm_start <= addr else None


def draw(mm: Any, base: int, npages: int, what: str = "vma", mem: Any = None) -> str:
    """One character per page of ``[base, base + npages pages)``."""
    out = []
    names: dict[int, str] = {}
    for i in range(npages):
        addr = base + (i << PAGE_SHIFT)
        vma = _vma_at(mm, addr)
        if vma is None:
            out.append(".")
            continue
        if what == "vma":
            out.append(names.setdefault(id(vma), _LETTERS[len(names) % len(_LETTERS)]))
        elif what == "av":
            av = vma.anon_vma
            out.append("-" if av is None else names.setdefault(id(av), _AV[len(names) % len(_AV)]))
        elif what == "pte":
            out.append(_pte_char(mm.pgd.get(addr >> PAGE_SHIFT), mem))
        else:
            raise ValueError(f"unknown layout kind {what!r}")
    return "".join(out)


def _pte_char(pte: int, mem: Any) -> str:
    if pte == 0:
        return "-"
    if not pte & 1:
        return "s"
    pfn = pte >> 12
    if pfn == ZERO_PFN:
        return "z"
    anon = mem is None or bool(mem.mapping[pfn] & 1)
    return ("A" if pte & 2 else "a") if anon else ("F" if pte & 2 else "f")


def ruler(npages: int) -> str:
    return "".join(str(i % 10) for i in range(npages))


def layout(mm: Any, base: int, npages: int, mem: Any = None) -> str:
    """Ruler, VMAs, anon_vmas and ptes, as four labelled lines."""
    return "\n".join([
        f"       {ruler(npages)}",
        f"vma    {draw(mm, base, npages, 'vma')}",
        f"av     {draw(mm, base, npages, 'av')}",
        f"pte    {draw(mm, base, npages, 'pte', mem)}",
    ])
