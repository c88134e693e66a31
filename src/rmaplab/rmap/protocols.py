"""What a scheme receives from the core, as structural types (PEP 544).

A scheme never imports the mm layer (tests/test_layers.py); these
``Protocol`` classes name the part of the core's objects it may use, so the
scheme hooks can be typed without that import. The mm classes satisfy them
by their shape alone: ``MmContext`` is an ``RmapContext``, ``MemMap`` a
``FrameTable``, ``VmAreaStruct`` a ``Vma``, ``MmStruct`` an ``Mm``,
``File`` a ``MappedFile`` (mm/context.py checks the context statically).

Members a scheme only reads are read-only properties here; the fields it
may write (``vma.anon_vma``, ``vma.rmap``, ``mm.rmap``, and ``rss`` /
``anon_rss`` in ``try_to_unmap_one``) are plain attributes. ``anon_vma``
and ``rmap`` stay ``Any``: what they hold is each scheme's own business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from rmaplab.rmap.stat import VmStat


class PageTable(Protocol):
    """An mm's page tables (``mm.pgd``), one pte per virtual page number."""

    def get(self, vpn: int) -> int: ...

    def set(self, vpn: int, pte: int) -> None: ...

    def runs(self, start: int, end: int,
             alloc: bool = False) -> Iterator[tuple[np.ndarray, int, int, int]]: ...

    def populated(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]: ...


class Mm(Protocol):
    """``struct mm_struct`` as a scheme sees it."""

    rss: int
    anon_rss: int
    #: scheme-private per-mm state (anonmm, pte_chain, none)
    rmap: Any

    @property
    def pgd(self) -> PageTable: ...

    @property
    def mmap(self) -> Sequence[Vma]: ...

    @property
    def owner(self) -> int: ...

    @property
    def serial(self) -> int: ...

    def find_vma(self, addr: int) -> Vma | None: ...


class VmaIndex(Protocol):
    """A file's ``i_mmap``: the VMAs that may map page ``index``."""

    def query(self, index: int) -> Iterable[Vma]: ...


class MappedFile(Protocol):
    """``struct address_space`` of a file (``ctx.file_of``, ``vma.vm_file``)."""

    @property
    def id(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def i_mmap(self) -> VmaIndex: ...


class Vma(Protocol):
    """``struct vm_area_struct`` as a scheme sees it."""

    #: the scheme's anon_vma object (or whatever it names), or None
    anon_vma: Any
    #: scheme-private per-VMA state (the anon_vma_chain list, ...)
    rmap: Any

    @property
    def vm_mm(self) -> Mm: ...

    @property
    def vm_start(self) -> int: ...

    @property
    def vm_end(self) -> int: ...

    @property
    def vm_flags(self) -> int: ...

    @property
    def vm_pgoff(self) -> int: ...

    @property
    def vm_file(self) -> MappedFile | None: ...

    @property
    def serial(self) -> int: ...


class FrameTable(Protocol):
    """``mem_map``: one numpy array per field of ``struct page``, indexed by
    pfn. A scheme writes their elements (``mapping``, ``index``,
    ``mapcount``, ...), never the arrays themselves."""

    @property
    def flags(self) -> np.ndarray: ...

    @property
    def count(self) -> np.ndarray: ...

    @property
    def mapcount(self) -> np.ndarray: ...

    @property
    def mapping(self) -> np.ndarray: ...

    @property
    def index(self) -> np.ndarray: ...

    @property
    def private(self) -> np.ndarray: ...

    @property
    def nr_used(self) -> int: ...


class Swap(Protocol):
    """The swap map, for ``try_to_unmap_one``."""

    def swap_duplicate(self, entry: int) -> None: ...


class RmapConfig(Protocol):
    """The configuration fields the schemes read (rmaplab.config.Config)."""

    @property
    def keep_anon_mapping(self) -> bool: ...

    @property
    def trylock_walks(self) -> bool: ...

    @property
    def debug_rmap(self) -> bool: ...

    @property
    def find_mergeable_anon_vma(self) -> bool: ...

    @property
    def extra(self) -> dict[str, Any]: ...


class RmapContext(Protocol):
    """The ``ctx`` a scheme is built with (mm.context.MmContext)."""

    @property
    def mem(self) -> FrameTable: ...

    @property
    def stat(self) -> VmStat: ...

    @property
    def config(self) -> RmapConfig: ...

    @property
    def swap(self) -> Swap: ...

    def scatter_add(self, arr: np.ndarray, idx: np.ndarray, delta: int) -> None:
        """``arr[idx] += delta`` with repeated indices counted."""

    def file_of(self, mapping: int) -> MappedFile:
        """The file a page-cache page's ``mapping`` names."""

    def find_mergeable_anon_vma(self, vma: Vma,
                                accept: Callable[[Any], bool] | None = None) -> Any:
        """A neighbour's anon_vma that ``vma`` may share (mm/mmap.c), or None."""
