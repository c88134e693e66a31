"""The swap cache and swap-in (mm/swap_state.c, do_swap_page of
mm/memory.c, free_swap_and_cache of mm/swapfile.c).

A page in the swap cache has PG_swapcache, its swap entry in
``page->private``, and one reference held by the cache; ``swapper_space``
maps entry → pfn.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rmaplab.asm.pgtable import _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW, PTE_PFN_SHIFT
from rmaplab.errors import InvariantError
from rmaplab.mm.page import PG_active, PG_dirty, PG_lru, PG_swapcache

_SC = np.uint32(PG_swapcache)


def add_to_swap(ctx: Any, pfn: int) -> bool:
    """``add_to_swap``: give an anonymous page a swap slot and put it in the
    swap cache (dirty, so pageout writes it). False when swap is full."""
    mem = ctx.mem
    if mem.flags[pfn] & PG_swapcache:
        raise InvariantError(f"add_to_swap of pfn {pfn}, already in the swap cache")
    entry = ctx.swap.get_swap_page()
    if not entry:
        return False
    mem.flags[pfn] |= np.uint32(PG_swapcache | PG_dirty)
    mem.private[pfn] = entry
    mem.count[pfn] += 1
    ctx.swapper_space[entry] = pfn
    return True


def delete_from_swap_cache(ctx: Any, pfn: int) -> None:
    """Remove the page from the swap cache and drop the slot's cache
    reference and the page reference the cache held."""
    mem = ctx.mem
    entry = int(mem.private[pfn])
    del ctx.swapper_space[entry]
    mem.flags[pfn] &= ~_SC
    mem.private[pfn] = 0
    ctx.swap.swap_free(entry)
    mem.count[pfn] -= 1
    if not mem.count[pfn]:
        mem.free_pages(np.array([pfn], dtype=np.int64))


def free_swap_and_cache(ctx: Any, entry: int) -> None:
    """A swap pte went away: drop its reference; if only the swap cache
    still holds the slot and nothing maps the page, free both."""
    left = ctx.swap.swap_free(entry)
    if left == 1:
        pfn = ctx.swapper_space.get(entry)
        if pfn is not None and ctx.mem.count[pfn] == 1:
            delete_from_swap_cache(ctx, pfn)


def do_swap_page(ctx: Any, vma: Any, vpn: int, pte: int, write: bool) -> None:
    """``do_swap_page``: find the page in the swap cache or read it from
    swap, map it, drop the pte's slot reference; a write fault then breaks
    COW at once (rmap 11's single-fault COW)."""
    mem, st = ctx.mem, ctx.stat
    entry = pte >> PTE_PFN_SHIFT
    pfn = ctx.swapper_space.get(entry)
    if pfn is None:
        pfn = int(ctx.alloc_pages(1)[0])
        mem.flags[pfn] = np.uint32(PG_lru | PG_active | PG_swapcache)
        mem.lru_touch(pfn)
        mem.private[pfn] = entry
        mem.count[pfn] = 1
        mem.token[pfn] = ctx.swap.contents[entry]
        ctx.swapper_space[entry] = pfn
        ctx.swap.swap_duplicate(entry)          # the cache's reference
        st.pswpin += 1
    st.fault_swap += 1
    mm = vma.vm_mm
    scheme = ctx.scheme
    if scheme.swapin_must_copy(pfn, vma, vpn):
        # anonmm: the page sits at another address in a sharing mm, so this
        # mm takes a private copy (the COW that mremap put off).
        new = ctx.alloc_pages(1)
        from rmaplab.mm.memory import new_anon_ptes
        pte = int(new_anon_ptes(ctx, vma, np.array([vpn], dtype=np.int64),
                                mem.token[[pfn]], new)[0])
        st.mremap_cows += 1
        st.pages_copied += 1
        ctx.swap.swap_free(entry)
        mm.pgd.set(vpn, pte)
        return
    mem.count[pfn] += 1
    ctx.swap.swap_free(entry)
    mm.rss += 1
    mm.anon_rss += 1
    one = np.array([pfn], dtype=np.int64)
    from rmaplab.mm.memory import can_share_swap_page
    writable = write and bool(can_share_swap_page(ctx, one)[0])
    newpte = (pfn << PTE_PFN_SHIFT) | _PAGE_PRESENT | _PAGE_ACCESSED
    if writable:
        newpte |= _PAGE_RW | _PAGE_DIRTY
    mm.pgd.set(vpn, newpte)
    scheme.page_add_anon_rmap(one, vma, np.array([vpn], dtype=np.int64), new=False)
    # remove_exclusive_swap_page when swap is full is not modelled.
