"""The anon_vma_chain scheme: Linux 2.6.34+ (Rik van Riel, 5beb49305251),
with the 3.19 reuse heuristic in its 2022 form (Jann Horn, 2555283eb40d:
``num_children`` / ``num_active_vmas``) and the modern merge rules of
mm/vma.c, both the 2011 form (965f55dea0e3) and the 2025 correction
(Lorenzo Stoakes), selectable.

Objects (include/linux/rmap.h):

- ``AnonVma``: ``root`` (the oldest ancestor, whose lock serialises the
  whole family), ``parent``, ``num_children`` (anon_vmas whose parent is
  this one, a root counting itself), ``num_active_vmas`` (VMAs whose
  ``vma->anon_vma`` is this one) and ``rb``, the interval tree of the AVCs
  of every VMA that may map one of its pages.
- ``Avc``: ``struct anon_vma_chain``, one link (vma, anon_vma). A VMA's
  chain (``vma->anon_vma_chain``) lives in the VMA's scheme slot
  ``vma.rmap`` as a Python list ordered oldest → newest, i.e. the kernel's
  ``same_vma`` list read backwards (the kernel ``list_add``s, so its list
  runs newest → oldest with the root last).

A page's ``mapping`` names the anon_vma its rmap walk starts from: the
faulting VMA's own anon_vma for an exclusive new page, the root for a page
that may be shared (swap-in), and the reusing VMA's anon_vma after
``page_move_anon_rmap``. A walk searches only that anon_vma's tree, so a
page COWed in a child is found by looking at the child alone.

Choices the model makes where the core interface is not enough (the end
of this docstring names the core hooks that would remove them):

1. The interval tree is modelled by its result: ``rb`` holds the AVCs and a
   query returns, in order of ``vm_pgoff`` (ties in insertion order, as an
   rbtree with equal keys going right does), those whose VMA covers the
   page index *now*. The core moves VMA boundaries (``vma_adjust``,
   stack growth, mremap growth) without telling the scheme, so a tree keyed
   on boundaries could go stale; the kernel re-keys with
   ``anon_vma_interval_tree_pre/post_update_vma``. Counted cost: one
   ``rmap_vmas_visited`` per AVC the query returns (what the kernel's loop
   body sees); ``config.extra["avc_walk"] = "list"`` instead models the
   2.6.34–3.6 ``same_anon_vma`` list, visiting every AVC.
2. ``vma_clone(new, src)`` (split_vma, copy_vma) clones ``src``'s chain,
   and ``vma_import`` clones the exporter's. Should a VMA with an
   anon_vma reach ``vma_link`` without a chain, it clones the chain of a
   live VMA with the same anon_vma: every VMA sharing an anon_vma has the
   same chain (the invariant 2555283eb40d restored, which ``check``
   verifies). ``AnonVma.active`` (whose size is ``num_active_vmas``) finds
   one in O(1).
3. ``vma_merge``'s three-way test (case 1) is its own hook,
   ``anon_vmas_compatible(prev, next)``, so it is never mistaken for a
   copy_vma test.

Configuration (``config.extra``):

- ``avc_merge_rule``: ``"2025"`` (default) or ``"2011"``;
- ``avc_reuse``: the 3.19 reuse heuristic at fork (default True);
- ``avc_walk``: ``"tree"`` (default, 3.7+ interval tree) or ``"list"``.

Core hooks that would make the model exact (described, not used): a
``vma_adjusted(vma)`` call after any change of a VMA's boundaries or pgoff
(for a keyed tree, choice 1); and the anon_vma handed to
a VMA that copy_vma's merge expanded over the destination (today done in
``vma_moved``, after the ptes moved, where the kernel's ``vma_expand``
does it before).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count, islice
from typing import Any

import numpy as np

from rmaplab.asm.page import PAGE_SHIFT
from rmaplab.errors import ConfigError, InvariantError
from rmaplab.rmap.scheme import RmapScheme, vma_address, vma_ref
from rmaplab.rmap.protocols import RmapContext, Vma

MERGE_RULES = ("2011", "2025")


class AnonVma:
    """``struct anon_vma`` (modern): root, parent, the two reuse counters
    and the interval tree of AVCs. ``active`` is a model aid: the VMAs
    whose ``anon_vma`` is this one (the kernel keeps only their number)."""

    __slots__ = ("id", "root", "parent", "num_children", "num_active_vmas", "rb", "active")

    def __init__(self, av_id: int) -> None:
        self.id = av_id
        self.root: AnonVma = self
        self.parent: AnonVma = self
        self.num_children = 0
        self.num_active_vmas = 0
        self.rb: dict[Avc, None] = {}
        self.active: dict[Vma, None] = {}

    def __repr__(self) -> str:
        return f"av{self.id}"


class Avc:
    """``struct anon_vma_chain``: one link between a VMA and an anon_vma."""

    __slots__ = ("vma", "anon_vma")

    def __init__(self, vma: Vma, anon_vma: AnonVma) -> None:
        self.vma = vma
        self.anon_vma = anon_vma

    def __repr__(self) -> str:
        return f"avc({self.vma.serial}->{self.anon_vma!r})"


def _chain(vma: Vma) -> list[Avc]:
    return vma.rmap if vma.rmap is not None else []


def _fork_child(vma: Vma | None) -> bool:
    """``vma_is_fork_child`` (``vma_had_uncowed_parents``): the VMA has an
    anon_vma and more than one AVC, i.e. it was cloned from a parent."""
    return vma is not None and vma.anon_vma is not None and len(_chain(vma)) != 1


class AnonVmaChainScheme(RmapScheme):
    """Linux anon_vma_chain (2.6.34+), with the 3.19/2022 reuse rule and the
    modern merge rules."""

    name = "anon_vma_chain"
    has_anon_vma = True

    def __init__(self, ctx: RmapContext) -> None:
        super().__init__(ctx)
        self.anon_vmas: dict[int, AnonVma] = {}
        self._ids = count(1)
        #: VMAs with a non-empty chain (for check)
        self.chained: dict[Vma, None] = {}
        self.n_avc = 0
        extra = self.config.extra
        self.merge_rule = str(extra.get("avc_merge_rule", "2025"))
        if self.merge_rule not in MERGE_RULES:
            raise ConfigError(f"avc_merge_rule {self.merge_rule!r}: choose from {', '.join(MERGE_RULES)}")
        self.reuse = bool(extra.get("avc_reuse", True))
        walk = str(extra.get("avc_walk", "tree"))
        if walk not in ("tree", "list"):
            raise ConfigError(f"avc_walk {walk!r}: choose tree or list")
        self.tree_walk = walk == "tree"

    # -- objects -------------------------------------------------------------------

    def anon_vma_alloc(self) -> AnonVma:
        """``anon_vma_alloc``: root and parent point to itself."""
        av = AnonVma(next(self._ids))
        self.anon_vmas[av.id] = av
        self.st.anon_vma_alloc += 1
        return av

    def anon_vma_free(self, av: AnonVma) -> None:
        if av.rb or av.num_children or av.num_active_vmas:
            raise InvariantError(f"freeing {av!r} still in use: {len(av.rb)} AVCs,"
                                 f" {av.num_children} children, {av.num_active_vmas} VMAs")
        del self.anon_vmas[av.id]
        self.st.anon_vma_free += 1

    def _link(self, vma: Vma, av: AnonVma) -> None:
        """``anon_vma_chain_link``: a new AVC on the VMA's chain and in the
        anon_vma's interval tree."""
        avc = Avc(vma, av)
        if vma.rmap is None:
            vma.rmap = []
        vma.rmap.append(avc)
        av.rb[avc] = None
        self.chained[vma] = None
        self.n_avc += 1
        self.st.avc_alloc += 1

    def _set_active(self, vma: Vma, av: AnonVma) -> None:
        vma.anon_vma = av
        av.num_active_vmas += 1
        av.active[vma] = None

    def _clone(self, dst: Vma, src: Vma, fork: bool) -> None:
        """``anon_vma_clone``: link ``dst`` to every anon_vma of ``src``'s
        chain, oldest first, under one root lock. From fork (``dst`` has no
        anon_vma yet) it may pick an anon_vma to reuse: one with no VMA and
        fewer than two children (never the root, which counts itself).
        Then ``num_active_vmas++`` on ``dst->anon_vma``."""
        chain = _chain(src)
        if not chain:
            if src.anon_vma is not None:
                raise InvariantError(f"cloning {src!r}: anon_vma {src.anon_vma!r} but no chain")
            return
        self.st.lock_anon_vma += 1
        for pavc in list(chain):
            av = pavc.anon_vma
            self._link(dst, av)
            if (fork and self.reuse and dst.anon_vma is None
                    and av.num_children < 2 and av.num_active_vmas == 0):
                dst.anon_vma = av
        if dst.anon_vma is not None:
            av = dst.anon_vma
            av.num_active_vmas += 1
            av.active[dst] = None

    def _source_of(self, av: AnonVma, other_than: Vma) -> Vma:
        """A live VMA whose anon_vma is ``av`` (any: they share one chain)."""
        for v in av.active:
            if v is not other_than:
                return v
        raise InvariantError(f"{av!r} has no VMA to clone a chain from")

    # -- VMA events ------------------------------------------------------------------

    def anon_vma_prepare(self, vma: Vma) -> None:
        """``__anon_vma_prepare``: reuse a touching neighbour's anon_vma when
        ``find_mergeable_anon_vma`` finds one whose chain is singular (never
        forked), else a new root (``num_children`` 1 for its self-parent
        link); link one AVC; ``num_active_vmas++``."""
        if vma.anon_vma is not None:
            return
        av = None
        if self.config.find_mergeable_anon_vma:
            av = self.ctx.find_mergeable_anon_vma(vma, accept=_singular)
        if av is not None:
            self.st.anon_vma_reused += 1
        else:
            av = self.anon_vma_alloc()
            av.num_children = 1
        self.st.lock_anon_vma += 1
        self.st.lock_page_table += 1
        self._set_active(vma, av)
        self._link(vma, av)

    def vma_clone(self, new: Vma, src: Vma) -> None:
        """``anon_vma_clone(new, src)`` from split_vma and copy_vma: ``new``
        is a copy of ``src`` (same anon_vma) and gets the same chain."""
        new.rmap = []
        if new.anon_vma is not None:
            self._clone(new, src, fork=False)

    def vma_link(self, vma: Vma) -> None:
        """A new VMA. One that has an anon_vma but no chain yet (a copy the
        core made without ``vma_clone``) clones the chain of a live VMA with
        the same anon_vma (choice 2)."""
        if vma.rmap is None:
            vma.rmap = []
        av = vma.anon_vma
        if av is None or vma.rmap:
            return
        if av.id not in self.anon_vmas:
            raise InvariantError(f"{vma!r} linked with freed {av!r}")
        self._clone(vma, self._source_of(av, vma), fork=False)

    def vma_fork(self, child: Vma, parent: Vma) -> None:
        """``anon_vma_fork``: nothing if the parent has no anon_vma; else
        clone its chain (perhaps reusing an ancestor), or add a new anon_vma
        (root = the parent's root, parent = the parent's anon_vma) and one
        AVC to it."""
        child.rmap = []
        child.anon_vma = None
        pav = parent.anon_vma
        if pav is None:
            return
        self._clone(child, parent, fork=True)
        if child.anon_vma is not None:
            self.st.anon_vma_fork_reuse += 1
            return
        av = self.anon_vma_alloc()
        av.root = pav.root
        av.parent = pav
        pav.num_children += 1
        self.st.lock_anon_vma += 1
        self._set_active(child, av)
        self._link(child, av)

    def _unlink_anon_vmas(self, vma: Vma) -> None:
        """``unlink_anon_vmas``: each AVC leaves its tree, newest first; an
        anon_vma whose tree became empty drops its parent's child count and
        is freed afterwards (in the same order, so the root goes last)."""
        chain = _chain(vma)
        if not chain:
            vma.rmap = []
            return
        self.st.lock_anon_vma += 1
        empty = []
        for avc in reversed(chain):
            av = avc.anon_vma
            del av.rb[avc]
            self.n_avc -= 1
            self.st.avc_free += 1
            if not av.rb:
                av.parent.num_children -= 1
                empty.append(av)
        own = vma.anon_vma
        if own is not None:
            own.num_active_vmas -= 1
            del own.active[vma]
        for av in empty:
            self.anon_vma_free(av)
        vma.rmap = []
        self.chained.pop(vma, None)

    def vma_unlink(self, vma: Vma) -> None:
        self._unlink_anon_vmas(vma)

    def vma_absorb(self, vma: Vma, gone: Vma) -> None:
        """``anon_vma_merge``: ``gone`` was merged into ``vma``, which by the
        merge rules has the same anon_vma or got a clone of ``gone``'s chain
        from ``vma_import``; without that import (2.6.7 rmap 39 config) it
        adopts ``gone``'s chain here."""
        if gone.anon_vma is not None:
            if vma.anon_vma is None:
                self._dup_anon_vma(vma, gone)
            elif vma.anon_vma is not gone.anon_vma:
                raise InvariantError(f"merging {gone!r} into {vma!r}: different anon_vmas")
        self._unlink_anon_vmas(gone)

    def _dup_anon_vma(self, dst: Vma, src: Vma) -> None:
        """``dup_anon_vma``: ``dst`` takes ``src``'s anon_vma and a clone of
        its chain."""
        dst.anon_vma = src.anon_vma
        self._clone(dst, src, fork=False)

    def vma_import(self, importer: Vma, anon_vma: Any, exporter: Vma | None = None) -> None:
        """``dup_anon_vma(importer, exporter)`` in a merge: an importer
        without anon_vma takes the exporter's and a clone of its chain."""
        if anon_vma is None:
            return
        if importer.anon_vma is None:
            if exporter is None or exporter.anon_vma is not anon_vma:
                exporter = self._source_of(anon_vma, importer)
            self._dup_anon_vma(importer, exporter)
        elif importer.anon_vma is not anon_vma:
            raise InvariantError(f"{importer!r} imports {anon_vma!r} over its own")

    def vma_moved(self, new: Vma, old: Vma) -> None:
        """copy_vma merged the destination into a neighbour without anon_vma
        (the 2025 rule allows it when the source is no fork child): that
        neighbour must take the source's anon_vma and chain, as modern
        ``vma_expand`` does with ``dup_anon_vma`` (the -mm patch "fix
        anon_vma UAF on mremap() faulted, unfaulted merge", 2025 (inferred
        from its title)). The core's ``vma_adjust`` hands nothing to a VMA
        that only grows, so it is done here, after the ptes moved. 2.6.11
        has the same gap (its copy_vma → vma_merge → vma_adjust leaves the
        grown VMA without anon_vma); the 2011 rule hid it by refusing the
        merge."""
        if new is not old and new.anon_vma is None and old.anon_vma is not None:
            self._dup_anon_vma(new, old)

    # -- merge decisions -----------------------------------------------------------------

    def is_mergeable_anon_vma(self, av_src: Any, av_dst: Any, dst: Vma | None = None,
                              src: Vma | None = None) -> bool:
        """May a range whose pages belong to ``av_src`` join ``dst``?

        Mapping onto mm/vma.c: ``dst`` is the merge target (the kernel's
        ``vmg->prev`` or ``vmg->next``, ``tgt``), ``av_dst`` its anon_vma;
        ``av_src`` is ``vmg->anon_vma``; ``src`` is ``vmg->middle`` for
        mprotect-style merges of an existing range and ``vmg->copied_from``
        for copy_vma (the 2025 rule tests both the same way), None for a new
        mapping.

        - ``"2011"`` (965f55dea0e3 to 6.15): true if either anon_vma is NULL
          and ``dst`` has a singular chain (an unfaulted ``dst``, with an
          empty chain, fails: the misplaced test), else the two must be
          equal.
        - ``"2025"``: target unfaulted, source faulted: merge unless the
          source is a fork child; target faulted, source not: merge unless
          the target is a fork child; else equal.

        The three-way test of case 1 is ``anon_vmas_compatible`` (the base
        class's: NULL on one side or equal, under both rules).
        """
        if self.merge_rule == "2011":
            if (av_src is None or av_dst is None) and (dst is None or len(_chain(dst)) == 1):
                ok = True
            else:
                ok = av_src is av_dst
        elif av_dst is None and av_src is not None:
            ok = not _fork_child(src)
        elif av_dst is not None and av_src is None:
            ok = not _fork_child(dst)
        else:
            ok = av_src is av_dst
        return ok

    def anon_vma_id(self, vma: Vma) -> int | None:
        return None if vma.anon_vma is None else vma.anon_vma.id

    # -- pages ---------------------------------------------------------------------------

    def _set_anon(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray, new: bool) -> None:
        """``__folio_set_anon``: an exclusive new page goes to the VMA's own
        anon_vma; a page that may be shared (swap-in) to the root, the
        oldest possible, from which every VMA that may map it is reachable.
        With ``keep_anon_mapping`` a swap-cache page still naming a live
        anon_vma of this VMA's chain keeps it (the kernel leaves an anon
        folio's mapping alone)."""
        mem = self.mem
        av = vma.anon_vma
        if av is None:
            raise InvariantError(f"page_add_anon_rmap into {vma!r} without anon_vma")
        if new:
            mem.mapping[pfns] = (av.id << 1) | 1
        else:
            target = np.full(len(pfns), (av.root.id << 1) | 1, dtype=mem.mapping.dtype)
            if self.config.keep_anon_mapping:
                ids = {a.anon_vma.id for a in _chain(vma)}
                for i, m in enumerate(mem.mapping[pfns].tolist()):
                    if m & 1 and (m >> 1) in ids:
                        target[i] = m
            mem.mapping[pfns] = target
        mem.index[pfns] = vma.vm_pgoff + (vpns - (vma.vm_start >> PAGE_SHIFT))

    def page_add_anon_rmap(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray,
                           new: bool = True) -> None:
        super().page_add_anon_rmap(pfns, vma, vpns, new)
        if self.config.debug_rmap:
            self.check_mapped(vma, pfns, vpns)
            idx = vma.vm_pgoff + (vpns - (vma.vm_start >> PAGE_SHIFT))
            bad = self.mem.index[pfns] != idx
            if bad.any():
                raise InvariantError(f"page_add_anon_rmap: pfn {int(pfns[bad][0])} in {vma!r}"
                                     f" disagrees on index")

    def page_reuse(self, pfns: np.ndarray, vma: Vma, vpns: np.ndarray) -> None:
        """``page_move_anon_rmap`` / ``folio_move_anon_rmap``: a page the
        write fault reuses in place is exclusive to this VMA; point it at
        the VMA's own anon_vma so walks skip parents and siblings."""
        av = vma.anon_vma
        if av is None or not len(pfns):
            return
        mem = self.mem
        tag = (av.id << 1) | 1
        moved = pfns[mem.mapping[pfns] != tag]
        if len(moved):
            mem.mapping[moved] = tag
            self.st.page_move_anon_rmap += len(moved)

    # -- walks ---------------------------------------------------------------------------

    def anon_candidates(self, pfn: int) -> Iterator[tuple[Vma, int]]:
        """``rmap_walk_anon``: lock the root, then the AVCs of the page's
        anon_vma whose VMA covers ``page->index``
        (``anon_vma_interval_tree_foreach``), or with ``avc_walk = "list"``
        every AVC on the 2.6.34 ``same_anon_vma`` list."""
        mem, st = self.mem, self.st
        av = self.anon_vmas.get(int(mem.mapping[pfn]) >> 1)
        if av is None:
            if not mem.mapcount[pfn]:
                return      # folio_lock_anon_vma_read: not mapped, nothing to do
            raise InvariantError(f"pfn {pfn}: page->mapping names a freed anon_vma")
        index = int(mem.index[pfn])
        st.lock_anon_vma += 1
        if self.tree_walk:
            hits = []
            for avc in av.rb:
                vma = avc.vma
                off = index - vma.vm_pgoff
                if off >= 0 and vma.vm_start + (off << PAGE_SHIFT) < vma.vm_end:
                    hits.append(vma)
            if len(hits) > 1:
                hits.sort(key=_pgoff)
            for vma in hits:
                st.rmap_vmas_visited += 1
                yield vma, vma.vm_start + ((index - vma.vm_pgoff) << PAGE_SHIFT)
            return
        yield from self.walk_vmas([avc.vma for avc in av.rb], index)

    # -- description (read-only, for drawings) -----------------------------------------

    def describe(self, limit: int = 64) -> dict[str, Any]:
        """Every ``struct anon_vma`` (root, parent, the reuse counters, its
        interval tree of AVCs, the VMAs using it, the pages pointing at it)
        and each VMA's ``anon_vma_chain`` (oldest anon_vma first)."""
        pages = self._objects_pages()
        avs = [{"id": av.id, "root": av.root.id, "parent": av.parent.id,
                "num_children": av.num_children, "num_active_vmas": av.num_active_vmas,
                "avcs": [vma_ref(a.vma) for a in islice(av.rb, limit)], "nr_avcs": len(av.rb),
                "active": [vma_ref(v) for v in islice(av.active, limit)],
                "pages": pages.get(av.id, 0)}
               for av in islice(self.anon_vmas.values(), limit)]
        chains = [{"vma": vma_ref(v), "anon_vma": v.anon_vma.id if v.anon_vma is not None else None,
                   "chain": [a.anon_vma.id for a in islice(_chain(v), limit)],
                   "nr_avcs": len(_chain(v))}
                  for v in islice(self.chained, limit)]
        return {"scheme": self.name, "kind": "anon_vma_chain", "anon_vmas": avs, "nr_anon_vmas": len(self.anon_vmas),
                "chains": chains, "nr_chained": len(self.chained), "nr_avcs": self.n_avc,
                "walk": "tree" if self.tree_walk else "list", "merge_rule": self.merge_rule,
                "reuse": self.reuse, "metadata": self.metadata_bytes()}

    def describe_page(self, pfn: int) -> dict[str, Any]:
        """``page->mapping`` names the anon_vma whose tree the walk searches."""
        out = super().describe_page(pfn)
        if out["kind"] == "anon":
            av = self.anon_vmas.get(out["mapping"] >> 1)
            out["anon_vma"] = None if av is None else av.id
            out["root"] = None if av is None else av.root.id
            out["nr_avcs"] = 0 if av is None else len(av.rb)
        return out

    def walk_visits(self, pfn: int, limit: int = 64) -> list[dict[str, Any]]:
        """The AVCs of the page's anon_vma the walk looks at: those whose
        VMA covers ``page->index`` (the interval tree query, in ``vm_pgoff``
        order), or every AVC of the tree with ``avc_walk = "list"``."""
        m = int(self.mem.mapping[pfn])
        if not m & 1:
            return super().walk_visits(pfn, limit)
        av = self.anon_vmas.get(m >> 1)
        if av is None:
            return []
        index = int(self.mem.index[pfn])
        vmas = [a.vma for a in av.rb]
        if self.tree_walk:
            vmas = sorted((v for v in vmas if vma_address(index, v) is not None), key=_pgoff)
        return [self._visit(v, vma_address(index, v), pfn) for v in vmas[:limit]]

    # -- checking ------------------------------------------------------------------------

    def check(self) -> None:
        """The structures agree with each other: every tree AVC is on its
        VMA's chain; chains share one root, contain their VMA's anon_vma and
        are closed under ``parent``; VMAs with the same anon_vma have the
        same chain; ``num_children`` and ``num_active_vmas`` count what they
        say; no anon_vma with an empty tree survives (the kernel frees it in
        ``unlink_anon_vmas``; only pins this model does not have — KSM,
        migration — could keep one)."""
        avs = self.anon_vmas
        children: dict[int, int] = {}
        n_avc = 0
        for av in avs.values():
            if not av.rb:
                raise InvariantError(f"{av!r} has an empty tree but was not freed")
            if avs.get(av.root.id) is not av.root or av.root.root is not av.root:
                raise InvariantError(f"{av!r}: root {av.root!r} is not a live root")
            if avs.get(av.parent.id) is not av.parent:
                raise InvariantError(f"{av!r}: parent {av.parent!r} was freed")
            a, hops = av, 0
            while a.parent is not a:
                a = a.parent
                hops += 1
                if hops > len(avs):
                    raise InvariantError(f"{av!r}: parent pointers loop")
            if a is not av.root or (av is av.root) != (av.parent is av):
                raise InvariantError(f"{av!r}: parent chain ends at {a!r}, root is {av.root!r}")
            children[av.parent.id] = children.get(av.parent.id, 0) + 1
            for avc in av.rb:
                n_avc += 1
                if avc.anon_vma is not av or not any(x is avc for x in _chain(avc.vma)):
                    raise InvariantError(f"{avc!r} is in {av!r}'s tree but not on its VMA's chain")
            if av.num_active_vmas != len(av.active):
                raise InvariantError(f"{av!r}: num_active_vmas {av.num_active_vmas}"
                                     f" but {len(av.active)} VMAs use it")
            first = None
            for v in av.active:
                if v.anon_vma is not av:
                    raise InvariantError(f"{v!r} counted active on {av!r} but points elsewhere")
                ids = frozenset(x.anon_vma.id for x in _chain(v))
                if first is None:
                    first = ids
                elif ids != first:
                    raise InvariantError(f"VMAs sharing {av!r} have different chains")
        for av in avs.values():
            if av.num_children != children.get(av.id, 0):
                raise InvariantError(f"{av!r}: num_children {av.num_children}"
                                     f" but {children.get(av.id, 0)} anon_vmas name it parent")
        if n_avc != self.n_avc:
            raise InvariantError(f"{self.n_avc} AVCs allocated but {n_avc} in trees")
        for vma in self.chained:
            self.check_vma(vma)

    def check_vma(self, vma: Vma) -> None:
        """One VMA's chain: non-empty exactly when it has an anon_vma, which
        is on it; AVCs live in their trees; one root; closed under parent."""
        chain = _chain(vma)
        av: AnonVma | None = vma.anon_vma
        if av is None:
            if chain:
                raise InvariantError(f"{vma!r} has AVCs but no anon_vma")
            return
        if self.anon_vmas.get(av.id) is not av:
            raise InvariantError(f"{vma!r} points to freed {av!r}")
        if vma not in av.active:
            raise InvariantError(f"{vma!r} is not counted on its {av!r}")
        ids = set()
        for avc in chain:
            a = avc.anon_vma
            if avc.vma is not vma or avc not in a.rb or self.anon_vmas.get(a.id) is not a:
                raise InvariantError(f"{vma!r}: {avc!r} is not in a live tree")
            if a.root is not av.root:
                raise InvariantError(f"{vma!r}: chain mixes roots {a.root!r} and {av.root!r}")
            ids.add(a.id)
        if av.id not in ids:
            raise InvariantError(f"{vma!r}: its {av!r} is not on its chain")
        for avc in chain:
            if avc.anon_vma.parent.id not in ids:
                raise InvariantError(f"{vma!r}: chain has {avc.anon_vma!r} but not its parent")

    def check_mapped(self, vma: Vma, pfns: np.ndarray, vpns: np.ndarray) -> None:
        """Reachability: each page's anon_vma is on the VMA's chain, so the
        walk from the page searches a tree holding this VMA."""
        tags = np.array([(a.anon_vma.id << 1) | 1 for a in _chain(vma)], dtype=np.int64)
        bad = ~np.isin(self.mem.mapping[pfns].astype(np.int64), tags)
        if bad.any():
            pfn = int(pfns[bad][0])
            raise InvariantError(f"pfn {pfn} at {int(vpns[bad][0]) << PAGE_SHIFT:#x} is mapped by"
                                 f" {vma!r}, whose chain lacks its anon_vma"
                                 f" (av{int(self.mem.mapping[pfn]) >> 1})")

    def metadata_bytes(self) -> dict[str, int]:
        """Bytes of rmap metadata (the per-VMA fields count in every VMA).

        x86_64, modern, non-debug: AVC 64 B (vma 8, anon_vma 8, same_vma 16,
        rb_node 24, rb_subtree_last 8); anon_vma 96 B (root 8, rw_semaphore
        40 = count 8 + owner 8 + osq 4 + wait_lock 4 + wait_list 16,
        refcount 4 + 4 padding, num_children 8, num_active_vmas 8, parent 8,
        rb_root_cached 16); per VMA 24 B (anon_vma 8, anon_vma_chain 16).

        i386, 2.6.34 (2010), SMP non-debug: AVC 24 B (vma 4, anon_vma 4,
        same_vma 8, same_anon_vma 8); anon_vma 12 B (spinlock 4, head 8;
        +4 with KSM or MIGRATION, not counted); per VMA 12 B (anon_vma 4,
        anon_vma_chain 8, replacing 2.6.7's anon_vma_node)."""
        nv, na, nc = self.nr_vmas(), len(self.anon_vmas), self.n_avc
        return {"i386": 24 * nc + 12 * na + 12 * nv, "x86_64": 64 * nc + 96 * na + 24 * nv}


def _singular(near: Vma) -> bool:
    """``reusable_anon_vma``'s extra condition: the neighbour's chain is
    singular (it was never forked)."""
    return len(_chain(near)) == 1


def _pgoff(vma: Vma) -> int:
    return vma.vm_pgoff
