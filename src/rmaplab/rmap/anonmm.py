"""The anonmm scheme of Hugh Dickins ("rmap 10 add anonmm rmap" and
"rmap 11 mremap moves", April 2004; in -mm and the 2.6.7-rc staging until
rmap 38 removed it).

One ``struct anonmm`` per mm. Every mm forked (transitively) from one exec
belongs to that exec's *bundle*: a ring of anonmms hanging off the head
anonmm that ``exec_rmap`` made. An anonymous page points at the anonmm of
the mm it was first mapped in (``page->mapping``; one reference per page)
and remembers its absolute virtual page number (``page->index``), so the
page can only sit at that one address in any mm of the bundle.

Walks lock the bundle head, look in the indicated mm first, then go round
the ring: a page-table lookup at ``page->index`` in every live mm with rss,
whether it maps the page or not, until the page's mapcount of ptes has been
found. ``try_to_unmap_one`` needs the VMA and finds it with ``find_vma``,
only once a pte was found; ``page_referenced_one`` needs no VMA.
``page_referenced`` also migrates pages away from an exited mm so that its
anonmm can be freed.

mremap: a page may move only while exclusive (``mremap_move_anon_rmap``
rewrites ``index``); a shared page is copied first (``make_page_exclusive``,
counted as ``mremap_cows``). A page that was on swap when its pte moved is
copied when it comes back at an address that clashes with ``index`` while
another mm maps it (``mremap_moved_anon_rmap`` in ``do_swap_page``).

Differences from the kernel, and choices:

- ``page->mapping`` is an integer, ``(anonmm id << 1) | 1`` (the anon_vma
  encoding of this model); ids are never reused.
- The last ``page_remove_rmap`` always clears ``mapping`` and drops the
  page's reference (``clear_page_anon``): anonmm predates 2.6.9, so
  ``config.keep_anon_mapping`` does not apply to it.
- The bundle ring is a Python list kept on the head, head first, then the
  members in fork order (``list_add_tail``); a walk goes round it starting
  after the indicated anonmm, as ``list_for_each_entry`` from that anonmm's
  own list node does.
- Locks are counts: ``lock_anonmm`` for the head's spinlock (walks, fork,
  exit, free); the per-mm ``page_table_lock`` of every mm a walk looks in
  (trylock or spin as ``config.trylock_walks`` says).
- ``find_vma_calls`` counts the lookups ``try_to_unmap_one`` makes; the
  other walks locate the VMA too (the interface wants one) but uncounted,
  as ``page_referenced_one`` never calls ``find_vma``.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count, islice
from typing import Any

import numpy as np

from rmaplab.asm.page import PAGE_SHIFT
from rmaplab.asm.pgtable import _PAGE_PRESENT, PTE_PFN_SHIFT
from rmaplab.errors import InvariantError
from rmaplab.rmap.scheme import RmapScheme, vma_ref
from rmaplab.rmap.protocols import Mm, RmapContext, Vma


class Anonmm:
    """``struct anonmm``: ``count`` (one per page pointing here, one for the
    live mm, and for a head one of its own plus one per member), the lock
    (only the head's is used; counted, not modelled), ``mm`` (None once the
    mm exited), ``head`` and the bundle ring (``ring``, on the head only)."""

    __slots__ = ("id", "count", "mm", "head", "ring")

    def __init__(self, am_id: int, mm: Mm, head: Anonmm | None, count_: int) -> None:
        self.id = am_id
        self.count = count_
        self.mm = mm
        self.head = self if head is None else head
        self.ring: list[Anonmm] = [self] if head is None else []

    @property
    def tag(self) -> int:
        """The value of ``page->mapping`` of a page pointing here."""
        return (self.id << 1) | 1

    def walk_order(self) -> list[Anonmm]:
        """This anonmm, then the rest of the ring starting after it."""
        ring = self.head.ring
        i = ring.index(self)
        return ring[i:] + ring[:i]

    def __repr__(self) -> str:
        who = "dead" if self.mm is None else f"pid {self.mm.owner}"
        head = "" if self.head is self else f" head am{self.head.id}"
        return f"<am{self.id} {who} count={self.count}{head}>"


# Sizes (reference kernel-rmap.md §1.5), computed from the fields of
# struct anonmm: atomic_t count, spinlock_t lock, struct mm_struct *mm,
# struct anonmm *head, struct list_head list (two pointers).
#   i386 SMP:  4 + 4 + 4 + 4 + 8      = 24 bytes, + 4 for mm->anonmm
#   x86_64:    4 + 4 + 8 + 8 + 16     = 40 bytes (the two 4-byte fields
#              share one 8-byte slot, so no padding), + 8 for mm->anonmm
ANONMM_BYTES = {"i386": 24, "x86_64": 40}
POINTER_BYTES = {"i386": 4, "x86_64": 8}


class AnonmmScheme(RmapScheme):
    """Hugh Dickins' anonmm (rmap 10 + rmap 11)."""

    name = "anonmm"
    has_anon_vma = False

    def __init__(self, ctx: RmapContext) -> None:
        super().__init__(ctx)
        self.anonmms: dict[int, Anonmm] = {}
        self._ids = count(1)
        # What the current walk is for: "referenced", "unmap" or None (a
        # check's rmap_walk); and the migration page_referenced should do.
        self._walk_mode: str | None = None
        self._migrate: tuple[Anonmm, Anonmm] | None = None

    # -- struct anonmm: exec_rmap / dup_rmap / exit_rmap / free_anonmm -----------

    def _alloc(self, mm: Mm, head: Anonmm | None, count_: int) -> Anonmm:
        am = Anonmm(next(self._ids), mm, head, count_)
        self.anonmms[am.id] = am
        self.st.anonmm_alloc += 1
        return am

    def _free(self, am: Anonmm) -> None:
        del self.anonmms[am.id]
        self.st.anonmm_free += 1

    def mm_exec(self, mm: Mm) -> None:
        """``exec_rmap``: a new bundle whose head is this mm's anonmm; count
        2, one for the mm and one for being the head."""
        mm.rmap = self._alloc(mm, None, 2)

    def mm_fork(self, child_mm: Mm, parent_mm: Mm) -> None:
        """``dup_rmap``: the child's anonmm (count 1, for the mm) joins the
        tail of the parent's bundle and holds a reference on the head."""
        parent = parent_mm.rmap
        if parent is None:
            raise InvariantError(f"fork from {parent_mm!r}, which has no anonmm")
        head = parent.head
        am = self._alloc(child_mm, head, 1)
        self.st.lock_anonmm += 1
        head.count += 1
        head.ring.append(am)
        child_mm.rmap = am

    def mm_exit(self, mm: Mm) -> None:
        """``exit_rmap``: the anonmm forgets its mm and drops the mm's
        reference; it lingers while pages point to it. The head goes when
        only its own reference is left."""
        am = mm.rmap
        if am is None:
            return
        mm.rmap = None
        head = am.head
        self.st.lock_anonmm += 1
        am.mm = None
        am.count -= 1
        if not am.count:
            if am is head:
                raise InvariantError(f"{am!r}: the head's count reached zero")
            head.ring.remove(am)
            self._free(am)
            head.count -= 1
            if not head.count:
                raise InvariantError(f"{head!r}: count reached zero through a member")
        if head.count == 1:
            if head.mm is not None or len(head.ring) != 1:
                raise InvariantError(f"{head!r}: count 1 but still in use")
            self._free(head)

    def _put(self, am: Anonmm, n: int = 1) -> None:
        """Drop ``n`` page references (``clear_page_anon``); a member whose
        count reaches zero is freed (``free_anonmm``)."""
        am.count -= n
        if am.count > 0:
            return
        if am.count < 0 or am.mm is not None or am is am.head:
            raise InvariantError(f"{am!r}: page references dropped below what it holds")
        head = am.head
        self.st.lock_anonmm += 1
        head.ring.remove(am)
        self._free(am)
        head.count -= 1
        if head.count < 2:
            # Only a live mm of the bundle can drop a page reference, and
            # it holds the head above its own reference.
            raise InvariantError(f"{head!r}: count {head.count} after freeing {am!r}")

    def _anonmm_of(self, pfn: int) -> Anonmm:
        m = int(self.mem.mapping[pfn])
        am = self.anonmms.get(m >> 1) if m & 1 else None
        if am is None:
            raise InvariantError(f"pfn {pfn}: page->mapping {m:#x} names no anonmm")
        return am

    # -- merging and the other VMA decisions ------------------------------------------

    def is_mergeable_anon_vma(self, av_src: Any, av_dst: Any, dst: Vma | None = None,
                              src: Vma | None = None) -> bool:
        """Nothing per VMA restricts merging."""
        return True

    def anon_pgoff_matters(self) -> bool:
        """Pages keep absolute addresses, so anonymous VMAs merge on flags
        alone (the pre-rmap 39 rule)."""
        return False

    def anon_vma_id(self, vma: Vma) -> int | None:
        return None

    def expected_index(self, vma: Vma, vpns: np.ndarray) -> np.ndarray:
        """``page->index`` is the virtual page number itself."""
        return vpns

    # -- pages -----------------------------------------------------------------------------

    def _set_anon(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray, new: bool) -> None:
        """``page_add_anon_rmap`` for a page's first pte: point it at this
        mm's anonmm (a reference per page) at its virtual address."""
        am = vma.vm_mm.rmap
        if am is None or am.mm is not vma.vm_mm:
            raise InvariantError(f"page_add_anon_rmap into {vma!r}: its mm has no anonmm")
        mem = self.mem
        if self.config.debug_rmap and mem.mapping[pfns].any():
            # BUG_ON(page->mapping): an unmapped page holds no reference
            pfn = int(pfns[np.flatnonzero(mem.mapping[pfns])[0]])
            raise InvariantError(f"page_add_anon_rmap: pfn {pfn} is unmapped but still has"
                                 f" mapping {int(mem.mapping[pfn]):#x}")
        mem.mapping[pfns] = am.tag
        mem.index[pfns] = vpns
        am.count += len(pfns)

    def page_add_anon_rmap(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray,
                           new: bool = True) -> None:
        super().page_add_anon_rmap(pfns, vma, vpns, new)
        if self.config.debug_rmap:
            self._check_same(pfns, vma, vpns)

    def _check_same(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray) -> None:
        """A page mapped again (swap-in) must sit at its noted address, in
        the same bundle, or no walk could find this pte."""
        mem = self.mem
        bad = mem.index[pfns] != vpns
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvariantError(f"page_add_anon_rmap: pfn {int(pfns[i])} mapped at"
                                 f" {int(vpns[i]) << PAGE_SHIFT:#x} in {vma!r} but its index is"
                                 f" {int(mem.index[pfns[i]]) << PAGE_SHIFT:#x}")
        head = vma.vm_mm.rmap.head
        for m in np.unique(mem.mapping[pfns]).tolist():
            am = self.anonmms.get(m >> 1)
            if am is None or am.head is not head:
                raise InvariantError(f"page_add_anon_rmap into {vma!r}: a page belongs to"
                                     f" {am!r}, outside this mm's bundle")

    def page_remove_rmap(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray) -> None:
        """``page_remove_rmap``; the last pte of an anonymous page clears its
        mapping and drops its anonmm reference (``clear_page_anon``)."""
        mem = self.mem
        self._scatter_add(mem.mapcount, pfns, -1)
        last = pfns[(mem.mapcount[pfns] == 0) & ((mem.mapping[pfns] & 1) == 1)]
        if not len(last):
            return
        last = np.unique(last)
        tags, n = np.unique(mem.mapping[last], return_counts=True)
        mem.mapping[last] = 0
        for tag, k in zip(tags.tolist(), n.tolist()):
            self._put(self.anonmms[tag >> 1], k)

    def page_remove_rmap_one(self, pfn: int, vma: Vma, vpn: int) -> None:
        mem = self.mem
        mem.mapcount[pfn] -= 1
        m = int(mem.mapping[pfn])
        if not mem.mapcount[pfn] and m & 1:
            mem.mapping[pfn] = 0
            self._put(self.anonmms[m >> 1])

    # -- mremap (rmap 11) -------------------------------------------------------------------

    def mremap_check(self, vma: Vma, pfns: np.ndarray, vpns: np.ndarray) -> np.ndarray:
        """``can_move_one_pte``: an anonymous page mapped more than once
        cannot take a new address; mremap must copy it first."""
        mem = self.mem
        return ((mem.mapping[pfns] & 1) == 1) & (mem.mapcount[pfns] > 1)

    def mremap_moved(self, old: Vma, new: Vma, pfns: np.ndarray, old_vpns: np.ndarray,
                     new_vpns: np.ndarray) -> None:
        """``mremap_move_anon_rmap``: each moved (exclusive) anonymous page
        notes its new address."""
        mem = self.mem
        anon = (mem.mapping[pfns] & 1) == 1
        if not anon.any():
            return
        ap = pfns[anon]
        shared = mem.mapcount[ap] != 1
        if shared.any():
            raise InvariantError(f"mremap moved pfn {int(ap[shared][0])}, mapped"
                                 f" {int(mem.mapcount[ap[shared][0]])} times, without a copy")
        mem.index[ap] = new_vpns[anon]

    def swapin_must_copy(self, pfn: int, vma: Vma, vpn: int) -> bool:
        """``mremap_moved_anon_rmap`` in ``do_swap_page``: the swap-cache page
        is mapped elsewhere at another address (mremap moved one of its
        ptes while on swap), so this pte gets a private copy. A page nobody
        maps takes the faulting address as its own."""
        mem = self.mem
        return bool(mem.mapcount[pfn] > 0 and mem.mapping[pfn] & 1 and mem.index[pfn] != vpn)

    # -- walks -------------------------------------------------------------------------------

    def candidates(self, pfn: int) -> Iterator[tuple[Vma, int]]:
        # The anon walk compares ptes itself (and yields only hits); the file
        # walk leaves the comparison to the per-candidate step.
        m = int(self.mem.mapping[pfn])
        self.candidates_checked = bool(m & 1)
        return super().candidates(pfn)

    def anon_candidates(self, pfn: int) -> Iterator[tuple[Vma, int]]:
        """``page_referenced_anon`` / ``try_to_unmap_anon``: under the head's
        lock, the indicated mm, then round the bundle; a page-table lookup
        at ``page->index`` in each live mm with rss; on a hit the VMA
        (``find_vma``) is yielded. Ends once mapcount ptes were found."""
        mem, st = self.mem, self.st
        am = self._anonmm_of(pfn)
        vpn = int(mem.index[pfn])
        addr = vpn << PAGE_SHIFT
        want = int(mem.mapcount[pfn])
        mode = self._walk_mode
        st.lock_anonmm += 1
        found = 0
        first_hit: Anonmm | None = None
        for a in am.walk_order():
            mm = a.mm
            if mm is None or not mm.rss:
                continue
            st.rmap_mms_visited += 1
            st.rmap_pgtable_walks += 1
            st.rmap_ptes_compared += 1
            pte = int(mm.pgd.get(vpn))
            if not (pte & _PAGE_PRESENT and pte >> PTE_PFN_SHIFT == pfn):
                if mode is not None:
                    self._lock_page_table()   # a hit's lock is the caller's
                continue
            st.rmap_ptes_found += 1
            found += 1
            if first_hit is None:
                first_hit = a
            if mode == "unmap":
                st.find_vma_calls += 1
            vma = mm.find_vma(addr)
            if vma is None or vma.vm_start > addr:
                raise InvariantError(f"pfn {pfn}: pte at {addr:#x} in {mm!r} outside any VMA")
            if found >= want and mode == "referenced" and am.mm is None and first_hit is not am:
                self._migrate = (am, first_hit)
            yield vma, addr
            if found >= want:
                return

    def page_referenced(self, pfn: int) -> int:
        """``page_referenced``; then, if the page's anonmm belongs to an
        exited mm and the walk found all its ptes, the page migrates to the
        first live anonmm that maps it."""
        self._walk_mode, self._migrate = "referenced", None
        try:
            referenced = super().page_referenced(pfn)
        finally:
            self._walk_mode = None
        mig, self._migrate = self._migrate, None
        if mig is not None:
            old, new = mig
            mem = self.mem
            if int(mem.mapping[pfn]) == old.tag and mem.mapcount[pfn]:
                mem.mapping[pfn] = new.tag
                new.count += 1
                self.st.anonmm_migrations += 1
                self._put(old)
        return referenced

    def try_to_unmap(self, pfn: int) -> int:
        self._walk_mode = "unmap"
        try:
            return super().try_to_unmap(pfn)
        finally:
            self._walk_mode = None

    # -- description (read-only, for drawings) ---------------------------------------------

    def describe(self, limit: int = 64) -> dict[str, Any]:
        """Every bundle: its head and ring of ``struct anonmm`` in walk
        order, each with its mm's pid (None once the mm exited), its count
        and the pages pointing at it."""
        pages = self._objects_pages()
        bundles = []
        for head in self.anonmms.values():
            if head.head is not head:
                continue
            ring = [{"id": a.id, "pid": None if a.mm is None else int(a.mm.owner),
                     "count": a.count, "pages": pages.get(a.id, 0)}
                    for a in islice(head.ring, limit)]
            bundles.append({"head": head.id, "ring": ring, "nr": len(head.ring)})
            if len(bundles) >= limit:
                break
        nr = sum(1 for a in self.anonmms.values() if a.head is a)
        return {"scheme": self.name, "kind": "anonmm", "bundles": bundles, "nr_bundles": nr,
                "nr_anonmms": len(self.anonmms), "metadata": self.metadata_bytes()}

    def describe_page(self, pfn: int) -> dict[str, Any]:
        """``page->mapping`` names an anonmm; ``page->index`` is the virtual
        page number."""
        out = super().describe_page(pfn)
        if out["kind"] == "anon":
            am = self.anonmms.get(out["mapping"] >> 1)
            if am is not None:
                out["anonmm"] = am.id
                out["owner"] = None if am.mm is None else int(am.mm.owner)
                out["head"] = am.head.id
                out["ring"] = len(am.head.ring)
        return out

    def walk_visits(self, pfn: int, limit: int = 64) -> list[dict[str, Any]]:
        """The mms of the bundle the walk looks in, the page's own anonmm
        first, each at ``page->index`` (exited mms and mms without rss are
        passed over); it stops once it found mapcount ptes."""
        mem = self.mem
        m = int(mem.mapping[pfn])
        am = self.anonmms.get(m >> 1) if m & 1 else None
        if am is None:
            return super().walk_visits(pfn, limit) if m and not m & 1 else []
        vpn = int(mem.index[pfn])
        addr = vpn << PAGE_SHIFT
        want, found = int(mem.mapcount[pfn]), 0
        out: list[dict[str, Any]] = []
        for a in am.walk_order():
            mm = a.mm
            if mm is None or not mm.rss:
                continue
            vma = mm.find_vma(addr)
            pte = int(mm.pgd.get(vpn))
            hit = bool(pte & _PAGE_PRESENT and pte >> PTE_PFN_SHIFT == pfn)
            ref = vma_ref(vma) if vma is not None and vma.vm_start <= addr else None
            out.append({"vma": ref, "pid": int(mm.owner),
                        "addr": addr, "found": hit, "anonmm": a.id})
            found += hit
            if found >= want or len(out) >= limit:
                break
        return out

    # -- checking --------------------------------------------------------------------------

    def check(self) -> None:
        """Bundle structure and exact reference counts."""
        mem = self.mem
        anon = (mem.mapping & 1) == 1
        if (anon & (mem.mapcount == 0)).any():
            pfn = int(np.flatnonzero(anon & (mem.mapcount == 0))[0])
            raise InvariantError(f"pfn {pfn}: unmapped but still points at an anonmm")
        ids, n = np.unique(mem.mapping[anon] >> 1, return_counts=True)
        pages = dict(zip(ids.tolist(), n.tolist()))
        for am_id in pages:
            if am_id not in self.anonmms:
                raise InvariantError(f"pages point at freed anonmm {am_id}")
        for am in self.anonmms.values():
            head = am.head
            if self.anonmms.get(head.id) is not head or head.head is not head:
                raise InvariantError(f"{am!r}: its head {head!r} is not a live head")
            if am not in head.ring:
                raise InvariantError(f"{am!r} is not on its head's ring")
            if am is head:
                if head.ring[0] is not head:
                    raise InvariantError(f"{head!r}: the ring does not start at the head")
                for other in head.ring:
                    if other.head is not head:
                        raise InvariantError(f"{other!r} is on {head!r}'s ring but has another head")
            elif am.ring:
                raise InvariantError(f"{am!r} is a member but holds a ring")
            want = pages.get(am.id, 0) + (am.mm is not None)
            if am is head:
                want += 1 + len(head.ring) - 1
            if am.count != want:
                raise InvariantError(f"{am!r}: count {am.count}, expected {want}"
                                     f" ({pages.get(am.id, 0)} pages)")
            if am.mm is not None and am.mm.rmap is not am:
                raise InvariantError(f"{am!r}: its mm points at {am.mm.rmap!r}")
            if am.mm is None and am is not head and not pages.get(am.id):
                raise InvariantError(f"{am!r}: dead and unreferenced but not freed")
            if am is head and am.mm is None and am.count == 1:
                raise InvariantError(f"{am!r}: dead head with nothing left but not freed")

    def check_mapped(self, vma: Vma, pfns: np.ndarray, vpns: np.ndarray) -> None:
        """Each page's anonmm is in the bundle of the mm mapping it (its
        address is the index, which ``validate`` checks)."""
        mine = vma.vm_mm.rmap
        if mine is None:
            raise InvariantError(f"{vma!r} maps anonymous pages but its mm has no anonmm")
        for m in np.unique(self.mem.mapping[pfns]).tolist():
            am = self.anonmms.get(m >> 1)
            if am is None or am.head is not mine.head:
                raise InvariantError(f"{vma!r} maps a page of {am!r}, outside its bundle"
                                     f" (head {mine.head!r})")

    def metadata_bytes(self) -> dict[str, int]:
        n = len(self.anonmms)
        mms = sum(1 for am in self.anonmms.values() if am.mm is not None)
        return {arch: ANONMM_BYTES[arch] * n + POINTER_BYTES[arch] * mms
                for arch in ("i386", "x86_64")}
