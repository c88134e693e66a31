"""The swap cache (mm/swap_state.c, free_swap_and_cache of mm/swapfile.c);
swap-in, ``do_swap_page``, is in ``mm.memory`` as in the kernel.

A page in the swap cache has PG_swapcache, its swap entry in
``page->private``, and one reference held by the cache; ``swapper_space``
maps entry → pfn.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rmaplab.errors import InvariantError
from rmaplab.mm.page import PG_dirty, PG_swapcache

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
