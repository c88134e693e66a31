"""The pte_chain reverse map of mainline 2.5.x – 2.6.6 (Rik van Riel's rmap;
mm/rmap.c of 2.6.0, kernel-rmap.md §4.1).

Every mapped page, anonymous or file (mainline before 2.6.7 had no object
rmap for files either), records the address of each pte that maps it:

- mapped once: the page holds that one pte address itself (``pte.direct``
  with PG_direct);
- mapped more: ``pte.chain`` points at a list of blocks (``struct
  pte_chain``), each one L1 cache line: a word packing the next-block
  pointer with the head block's first used slot (``next_and_idx``), then
  NRPTE pte addresses.

The list policy (the one the 2.6.0 comment above the VM code states): only
the head block has free slots, and they are its leading ones; insertion
fills the last free slot of the head, or prepends a new full-from-the-end
block when the head is full; the second mapping of a direct page converts
it into a fresh block holding both ptes in its last two slots. Removal
searches every used slot, head first, for the pte address, moves the head's
first used entry into the hole and frees the head block when that empties
it. A chain is never collapsed back to direct on removal; ``page_referenced``
collapses a one-entry chain (so only under memory pressure).

Model notes:

- A pte address is the pair (mm, virtual page number), packed into one
  integer ``mm.serial << 36 | vpn``; the kernel recovered (mm, address) from
  the page-table page's struct page (``ptep_to_mm``, ``ptep_to_address``).
- PG_direct is not a bit of ``mem.flags`` (the model numbers page flags as
  2.6.11 does, where bit 16 is PG_swapcache): a page is direct when it is in
  ``self.direct``, chained when it is in ``self.chain``.
- ``page->mapping`` of an anonymous page is the bare PAGE_MAPPING_ANON bit
  (1): the page points at no object. ``page->index`` is not used by this
  rmap (the 2.6.0 fault paths never set it for an anonymous page; a swap
  cache page kept its swap entry there, which the model keeps in
  ``private``), so it stays 0 and ``expected_index`` says 0. That also keeps
  the validator right when anonymous VMAs merge regardless of pgoff, as
  they did before rmap 39.
- Blocks are counted as they enter and leave chains (``pte_chain_alloc`` /
  ``pte_chain_free``); the per-cpu one-deep cache and the spare block each
  caller preallocates (and gives back unused) are not modelled.
- ``page_referenced`` and ``try_to_unmap`` are the 2.6.0 ones: the first
  reads the young bit through each pte address with no mm lock; the second
  trylocks each mm's page_table_lock, calls ``find_vma`` on the address,
  fails on VM_LOCKED (there is no young-pte check: page_referenced never
  skipped a pte) and releases the slot in place, without a search.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

import numpy as np

from rmaplab.asm.page import PAGE_SHIFT
from rmaplab.asm.pgtable import (_PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, PTE_PFN_SHIFT,
                                 swp_entry_to_pte)
from rmaplab.errors import InvariantError
from rmaplab.include.mm import PG_dirty, PG_referenced, PG_swapcache, VM_LOCKED
from rmaplab.rmap.scheme import SWAP_AGAIN, SWAP_FAIL, SWAP_SUCCESS, PteLevelScheme
from rmaplab.rmap.protocols import Mm, RmapContext, Vma

#: blocks a page description lists at most
_DESCRIBE_BLOCKS = 16
_VPN_BITS = 36
_VPN_MASK = (1 << _VPN_BITS) - 1
ANON_MAPPING = PteLevelScheme.ANON_MAPPING


class PteChain:
    """``struct pte_chain``: ``next`` and ``idx`` are the two halves of
    ``next_and_idx``; ``ptes`` has NRPTE slots, 0 meaning empty. Slots
    ``[idx, NRPTE)`` are in use (``idx`` is 0 in every block but the head)."""

    __slots__ = ("next", "idx", "ptes")

    def __init__(self, nrpte: int, nxt: PteChain | None, idx: int) -> None:
        self.next = nxt
        self.idx = idx
        self.ptes = [0] * nrpte


class PteChainScheme(PteLevelScheme):
    """Per-page chains of pte addresses (PG_direct for a single mapping)."""

    name = "pte_chain"
    has_anon_vma = False
    candidates_checked = True

    def __init__(self, ctx: RmapContext) -> None:
        super().__init__(ctx)
        self.nrpte = int(self.config.extra.get("nrpte", 7))
        if self.nrpte < 2:
            raise ValueError(f"nrpte must be at least 2 (a converted chain needs two slots),"
                             f" not {self.nrpte}")
        #: pfn -> the pte address of a PG_direct page
        self.direct: dict[int, int] = {}
        #: pfn -> head block of a chained page
        self.chain: dict[int, PteChain] = {}
        #: blocks now in chains
        self.nr_blocks = 0
        #: mm.serial -> mm, to turn a pte address back into (mm, address)
        self._mms: dict[int, Mm] = {}

    # -- pte addresses -----------------------------------------------------------

    def _base(self, mm: Mm) -> int:
        self._mms[mm.serial] = mm
        return mm.serial << _VPN_BITS

    def _decode(self, key: int) -> tuple[Mm, int]:
        """``ptep_to_mm`` and ``ptep_to_address``: (mm, vpn)."""
        mm = self._mms.get(key >> _VPN_BITS)
        if mm is None:
            raise InvariantError(f"pte address {key:#x} names an mm that has gone")
        return mm, key & _VPN_MASK

    def mm_exec(self, mm: Mm) -> None:
        self._mms[mm.serial] = mm

    def mm_fork(self, child_mm: Mm, parent_mm: Mm) -> None:
        self._mms[child_mm.serial] = child_mm

    def mm_exit(self, mm: Mm) -> None:
        self._mms.pop(mm.serial, None)

    # -- the chain ---------------------------------------------------------------

    def _alloc(self, nxt: PteChain | None, idx: int) -> PteChain:
        self.st.pte_chain_alloc += 1
        self.nr_blocks += 1
        return PteChain(self.nrpte, nxt, idx)

    def _free(self, pc: PteChain) -> None:
        self.st.pte_chain_free += 1
        self.nr_blocks -= 1
        pc.next = None

    def _add(self, pfn: int, key: int) -> None:
        """``page_add_rmap`` of one pte address."""
        head = self.chain.get(pfn)
        if head is None:
            old = self.direct.get(pfn)
            if old is None:
                self.direct[pfn] = key
                return
            # the second mapping: direct becomes a two-entry chain
            del self.direct[pfn]
            n = self.nrpte
            pc = self._alloc(None, n - 2)
            pc.ptes[n - 1] = old
            pc.ptes[n - 2] = key
            self.chain[pfn] = pc
            return
        if head.idx == 0:
            # the head is full: a new head, filled from its end
            n = self.nrpte
            pc = self._alloc(head, n - 1)
            pc.ptes[n - 1] = key
            self.chain[pfn] = pc
            return
        head.idx -= 1
        head.ptes[head.idx] = key

    def _remove(self, pfn: int, key: int) -> None:
        """``page_remove_rmap`` of one pte address: the linear search, then
        the head's first used entry fills the hole."""
        st = self.st
        d = self.direct.get(pfn)
        if d is not None:
            st.pte_chain_slots_searched += 1
            if d != key:
                raise InvariantError(f"page_remove_rmap: pfn {pfn} is direct to another pte")
            del self.direct[pfn]
            return
        start = self.chain.get(pfn)
        if start is None:
            raise InvariantError(f"page_remove_rmap: pfn {pfn} has no reverse mapping")
        searched = 0
        pc: PteChain | None = start
        while pc is not None:
            ptes = pc.ptes
            try:
                i = ptes.index(key, pc.idx)
            except ValueError:
                searched += self.nrpte - pc.idx
                pc = pc.next
                continue
            searched += i - pc.idx + 1
            st.pte_chain_slots_searched += searched
            victim = start.idx
            ptes[i] = start.ptes[victim]
            start.ptes[victim] = 0
            self._release_head_slot(pfn, start)
            return
        st.pte_chain_slots_searched += searched
        mm, vpn = self._decode(key)
        raise InvariantError(f"page_remove_rmap: pte {vpn << PAGE_SHIFT:#x} of {mm!r}"
                             f" is not in pfn {pfn}'s chain")

    def _release_head_slot(self, pfn: int, start: PteChain) -> PteChain | None:
        """The head's first used slot was just emptied: advance ``idx`` or
        free the head. Returns the new head (None: the chain is gone)."""
        if start.idx == self.nrpte - 1:
            nxt = start.next
            self._free(start)
            if nxt is None:
                del self.chain[pfn]
            else:
                self.chain[pfn] = nxt
            return nxt
        start.idx += 1
        return start

    def _keys(self, pfn: int) -> Iterator[int]:
        """The page's pte addresses in chain order."""
        d = self.direct.get(pfn)
        if d is not None:
            yield d
            return
        pc = self.chain.get(pfn)
        while pc is not None:
            yield from pc.ptes[pc.idx:]
            pc = pc.next

    # -- introspection (tests, dumps) ---------------------------------------------

    def is_direct(self, pfn: int) -> bool:
        return pfn in self.direct

    def chain_blocks(self, pfn: int) -> list[list[tuple[Mm, int] | None]]:
        """The page's chain, block by block from the head: each slot is
        (mm, address) or None when free. [] for a direct or unmapped page."""
        out = []
        pc = self.chain.get(pfn)
        while pc is not None:
            row: list[tuple[Mm, int] | None] = []
            for key in pc.ptes:
                if key:
                    mm, vpn = self._decode(key)
                    row.append((mm, vpn << PAGE_SHIFT))
                else:
                    row.append(None)
            out.append(row)
            pc = pc.next
        return out

    def chain_length(self, pfn: int) -> int:
        return sum(1 for _ in self._keys(pfn))

    # -- description (read-only, for drawings) ------------------------------------

    def describe(self, limit: int = 64) -> dict[str, Any]:
        """Pages by the form of their reverse map: PG_direct (grouped by
        the process whose pte it is) or a chain of ``struct pte_chain``
        blocks (grouped by length and blocks; ``pids`` are the processes
        of the chain's first entries), largest groups first."""
        groups: dict[tuple, dict[str, Any]] = {}
        for pfn, key in self.direct.items():
            mm = self._mms.get(key >> _VPN_BITS)
            pid = int(mm.owner) if mm is not None else None
            g = groups.setdefault(("direct", pid), {"form": "direct", "ptes": 1, "blocks": 0,
                                                    "pids": [pid], "frames": 0, "pfn": pfn})
            g["frames"] += 1
        longest = None
        for pfn, head in self.chain.items():
            blocks = ptes = 0
            pc: PteChain | None = head
            while pc is not None:
                blocks += 1
                ptes += self.nrpte - pc.idx
                pc = pc.next
            gc = groups.get(("chain", ptes, blocks))
            if gc is None:
                first = [int(self._decode(k)[0].owner) for k in islice(self._keys(pfn), 4)]
                gc = groups[("chain", ptes, blocks)] = {"form": "chain", "ptes": ptes,
                                                        "blocks": blocks, "pids": first,
                                                        "frames": 0, "pfn": pfn}
            gc["frames"] += 1
            if longest is None or ptes > longest["ptes"]:
                longest = {"pfn": pfn, "ptes": ptes, "blocks": blocks}
        ordered = sorted(groups.values(), key=lambda g: (-g["frames"], -g["ptes"], g["pfn"]))
        return {"scheme": self.name, "kind": "pte_chain", "nrpte": self.nrpte, "direct": len(self.direct),
                "chained": len(self.chain), "blocks": self.nr_blocks, "longest": longest,
                "groups": ordered[:limit], "nr_groups": len(ordered),
                "metadata": self.metadata_bytes()}

    def describe_page(self, pfn: int) -> dict[str, Any]:
        """The page's pte addresses: ``pte.direct`` or its chain, block by
        block from the head (None for a free slot)."""
        out = super().describe_page(pfn)
        key = self.direct.get(pfn)
        if key is not None:
            mm, vpn = self._decode(key)
            out["direct"] = {"pid": int(mm.owner), "addr": vpn << PAGE_SHIFT}
        elif pfn in self.chain:
            blocks = self.chain_blocks(pfn)
            out["nr_blocks"] = len(blocks)
            out["blocks"] = [[None if s is None else {"pid": int(s[0].owner), "addr": int(s[1])}
                              for s in row] for row in blocks[:_DESCRIBE_BLOCKS]]
        return out

    # -- page events ----------------------------------------------------------------

    def _add_many(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray) -> None:
        base = self._base(vma.vm_mm)
        add = self._add
        for pfn, vpn in zip(pfns.tolist(), vpns.tolist()):
            add(pfn, base | vpn)

    def page_add_anon_rmap(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray,
                           new: bool = True) -> None:
        super().page_add_anon_rmap(pfns, vma, vpns, new)
        self._add_many(pfns, vma, vpns)

    def page_add_file_rmap(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray) -> None:
        super().page_add_file_rmap(pfns, vma, vpns)
        self._add_many(pfns, vma, vpns)

    def page_dup_rmap(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray) -> None:
        """fork: ``page_add_rmap`` of every copied pte in the child."""
        super().page_dup_rmap(pfns, vma, vpns)
        self._add_many(pfns, vma, vpns)

    def page_remove_rmap(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray) -> None:
        base = self._base(vma.vm_mm)
        remove = self._remove
        for pfn, vpn in zip(pfns.tolist(), vpns.tolist()):
            remove(pfn, base | vpn)
        super().page_remove_rmap(pfns, vma, vpns)

    def page_remove_rmap_one(self, pfn: int, vma: Vma, vpn: int) -> None:
        self._remove(int(pfn), self._base(vma.vm_mm) | int(vpn))
        super().page_remove_rmap_one(pfn, vma, vpn)

    def mremap_moved(self, old: Vma, new: Vma, pfns: np.ndarray, old_vpns: np.ndarray,
                     new_vpns: np.ndarray) -> None:
        """``move_one_page`` of 2.6.0: ``page_remove_rmap`` of the old pte
        (a chain search) and ``page_add_rmap`` of the new one, per page."""
        ob, nb = self._base(old.vm_mm), self._base(new.vm_mm)
        for pfn, ov, nv in zip(pfns.tolist(), old_vpns.tolist(), new_vpns.tolist()):
            self._remove(pfn, ob | ov)
            self._add(pfn, nb | nv)
        self.st.rmap_mremap_updates += len(pfns)

    # -- walks -------------------------------------------------------------------------

    def _read_pte(self, pfn: int, mm: Mm, vpn: int) -> int:
        """Read the pte through its address; it must map ``pfn``."""
        st = self.st
        st.rmap_ptes_compared += 1
        pte = mm.pgd.get(vpn)
        if not pte & _PAGE_PRESENT or pte >> PTE_PFN_SHIFT != pfn:
            raise InvariantError(f"pfn {pfn}: rmap names pte {vpn << PAGE_SHIFT:#x} of {mm!r},"
                                 f" which does not map it ({pte:#x})")
        st.rmap_ptes_found += 1
        return pte

    def candidates(self, pfn: int) -> Iterator[tuple[Vma, int]]:
        """Each pte address of the page, with try_to_unmap_one's steps to
        get at its VMA: trylock the mm's page_table_lock, ``find_vma``."""
        st = self.st
        for key in list(self._keys(pfn)):
            mm, vpn = self._decode(key)
            st.trylock_page_table += 1
            st.find_vma_calls += 1
            addr = vpn << PAGE_SHIFT
            vma = mm.find_vma(addr)
            if vma is None or vma.vm_start > addr:
                raise InvariantError(f"pfn {pfn}: pte {addr:#x} of {mm!r} lies in no VMA")
            self._read_pte(pfn, mm, vpn)
            yield vma, addr

    def anon_candidates(self, pfn: int) -> Iterator[tuple[Vma, int]]:
        return self.candidates(pfn)

    def page_referenced(self, pfn: int) -> int:
        """2.6.0 ``page_referenced``: PG_referenced, then test-and-clear the
        young bit through every pte address (no mm locks, no VMAs). A
        one-entry chain goes back to PG_direct."""
        mem, st = self.mem, self.st
        st.page_referenced_calls += 1
        st.rmap_walks += 1
        referenced = 0
        if mem.flags[pfn] & PG_referenced:
            mem.flags[pfn] &= ~np.uint32(PG_referenced)
            referenced += 1
        n = 0
        for key in self._keys(pfn):
            mm, vpn = self._decode(key)
            pte = self._read_pte(pfn, mm, vpn)
            if pte & _PAGE_ACCESSED:
                mm.pgd.set(vpn, pte & ~_PAGE_ACCESSED)
                referenced += 1
            n += 1
        if n == 1:
            pc = self.chain.get(pfn)
            if pc is not None:
                self.direct[pfn] = pc.ptes[self.nrpte - 1]
                del self.chain[pfn]
                self._free(pc)
        return referenced

    def try_to_unmap(self, pfn: int) -> int:
        """2.6.0 ``try_to_unmap``: ``try_to_unmap_one`` on each pte address;
        each success releases its slot in place (the head's first used entry
        moves into it), so no search. Stops at SWAP_FAIL; SWAP_AGAIN (never
        in the model: trylocks do not fail) would skip the pte."""
        mem, st = self.mem, self.st
        st.try_to_unmap_calls += 1
        st.rmap_walks += 1
        ret = SWAP_SUCCESS
        key = self.direct.get(pfn)
        if key is not None:
            ret = self._unmap_one(pfn, key)
            if ret == SWAP_SUCCESS:
                del self.direct[pfn]
        else:
            ret = self._unmap_chain(pfn)
        if not mem.mapcount[pfn]:
            return SWAP_SUCCESS
        if ret == SWAP_FAIL:
            st.try_to_unmap_fail += 1
        else:
            ret = SWAP_AGAIN
            st.try_to_unmap_again += 1
        return ret

    def _unmap_chain(self, pfn: int) -> int:
        ret = SWAP_SUCCESS
        start = self.chain.get(pfn)
        pc = start
        while pc is not None:
            nxt = pc.next
            for i in range(pc.idx, self.nrpte):
                r = self._unmap_one(pfn, pc.ptes[i])
                if r == SWAP_FAIL:
                    return SWAP_FAIL
                if r == SWAP_AGAIN:
                    ret = SWAP_AGAIN
                    continue
                assert start is not None
                victim = start.idx
                pc.ptes[i] = start.ptes[victim]
                start.ptes[victim] = 0
                start = self._release_head_slot(pfn, start)
            pc = nxt
        return ret

    def _unmap_one(self, pfn: int, key: int) -> int:
        """2.6.0 ``try_to_unmap_one``: trylock, ``find_vma`` (SWAP_FAIL if
        none), SWAP_FAIL on VM_LOCKED, clear the pte (a swap pte for a swap
        cache page), move the dirty bit to the page, drop rss and the
        reference."""
        mem, st = self.mem, self.st
        mm, vpn = self._decode(key)
        st.trylock_page_table += 1
        st.find_vma_calls += 1
        addr = vpn << PAGE_SHIFT
        vma = mm.find_vma(addr)
        if vma is None:
            return SWAP_FAIL
        if vma.vm_start > addr:
            raise InvariantError(f"pfn {pfn}: pte {addr:#x} of {mm!r} lies in no VMA")
        if vma.vm_flags & VM_LOCKED:
            return SWAP_FAIL
        pte = self._read_pte(pfn, mm, vpn)
        anon = bool(mem.mapping[pfn] & 1)
        if mem.flags[pfn] & PG_swapcache:
            entry = int(mem.private[pfn])
            self.ctx.swap.swap_duplicate(entry)
            mm.pgd.set(vpn, swp_entry_to_pte(entry))
        elif anon:
            raise InvariantError(f"try_to_unmap of anonymous pfn {pfn} not in swap cache")
        else:
            mm.pgd.set(vpn, 0)
        if pte & _PAGE_DIRTY:
            mem.flags[pfn] |= np.uint32(PG_dirty)
        if anon:
            mm.anon_rss -= 1
        mm.rss -= 1
        PteLevelScheme.page_remove_rmap_one(self, pfn, vma, vpn)
        mem.count[pfn] -= 1
        return SWAP_SUCCESS

    # -- checking ------------------------------------------------------------------------

    def check(self) -> None:
        mem = self.mem
        n = self.nrpte
        blocks = 0
        for pfn, key in self.direct.items():
            if pfn in self.chain:
                raise InvariantError(f"pfn {pfn} is both PG_direct and chained")
            if mem.mapcount[pfn] != 1:
                raise InvariantError(f"pfn {pfn} is PG_direct with mapcount {int(mem.mapcount[pfn])}")
            self._check_entry(pfn, key)
        for pfn, head in self.chain.items():
            if not 0 <= head.idx < n:
                raise InvariantError(f"pfn {pfn}: head block index {head.idx} out of range")
            keys: list[int] = []
            pc: PteChain | None = head
            while pc is not None:
                blocks += 1
                if pc is not head and pc.idx != 0:
                    raise InvariantError(f"pfn {pfn}: a block after the head has free slots")
                if any(pc.ptes[:pc.idx]) or not all(pc.ptes[pc.idx:]):
                    raise InvariantError(f"pfn {pfn}: free slots are not exactly the leading ones")
                keys.extend(pc.ptes[pc.idx:])
                pc = pc.next
            if len(keys) != mem.mapcount[pfn]:
                raise InvariantError(f"pfn {pfn}: chain of {len(keys)} ptes but mapcount"
                                     f" {int(mem.mapcount[pfn])}")
            if len(set(keys)) != len(keys):
                raise InvariantError(f"pfn {pfn}: a pte address is twice in its chain")
            for key in keys:
                self._check_entry(pfn, key)
        if blocks != self.nr_blocks:
            raise InvariantError(f"{blocks} blocks in chains but {self.nr_blocks} counted")
        mapped = np.flatnonzero(mem.mapcount > 0)
        mapped = mapped[mapped != 0]
        if len(mapped) != len(self.direct) + len(self.chain):
            lost = [p for p in mapped.tolist() if p not in self.direct and p not in self.chain]
            extra = [p for p in self.direct if not mem.mapcount[p]] + \
                    [p for p in self.chain if not mem.mapcount[p]]
            raise InvariantError(f"mapped pages without rmap {lost[:5]}, rmap for unmapped pages {extra[:5]}")

    def _check_entry(self, pfn: int, key: int) -> None:
        mm, vpn = self._decode(key)
        addr = vpn << PAGE_SHIFT
        vma = mm.find_vma(addr)
        if vma is None or vma.vm_start > addr:
            raise InvariantError(f"pfn {pfn}: chain entry {addr:#x} of {mm!r} lies in no VMA")
        pte = mm.pgd.get(vpn)
        if not pte & _PAGE_PRESENT or pte >> PTE_PFN_SHIFT != pfn:
            raise InvariantError(f"pfn {pfn}: chain entry {addr:#x} of {mm!r} does not map it")

    def check_mapped(self, vma: Vma, pfns: np.ndarray, vpns: np.ndarray) -> None:
        """Each (mm, address) mapping one of these pages is in its chain."""
        base = self._base(vma.vm_mm)
        for pfn, vpn in zip(pfns.tolist(), vpns.tolist()):
            key = base | vpn
            if not any(k == key for k in self._keys(pfn)):
                raise InvariantError(f"pfn {pfn} is mapped at {vpn << PAGE_SHIFT:#x} in {vma!r}"
                                     f" but that pte is not in its chain")

    def metadata_bytes(self) -> dict[str, int]:
        """The pte union in every struct page in use (4 B on i386, 8 on
        x86_64) plus every block: one cache line, ``(1 + NRPTE)`` words
        (32 B on i386 and 64 B on x86_64 with NRPTE 7)."""
        frames = self.mem.nr_used
        return {"i386": 4 * frames + 4 * (1 + self.nrpte) * self.nr_blocks,
                "x86_64": 8 * frames + 8 * (1 + self.nrpte) * self.nr_blocks}
