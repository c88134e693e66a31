"""Reverse-mapping schemes behind one interface (``scheme.RmapScheme``)."""

from rmaplab.rmap.anon_vma import AnonVmaScheme
from rmaplab.rmap.anon_vma_chain import AnonVmaChainScheme
from rmaplab.rmap.anonmm import AnonmmScheme
from rmaplab.rmap.none import NoRmapScheme
from rmaplab.rmap.pte_chain import PteChainScheme
from rmaplab.rmap.scheme import RmapScheme

SCHEMES: dict[str, type[RmapScheme]] = {
    "anon_vma": AnonVmaScheme,
    "anon_vma_chain": AnonVmaChainScheme,
    "anonmm": AnonmmScheme,
    "pte_chain": PteChainScheme,
    "none": NoRmapScheme,
}

__all__ = ["SCHEMES", "RmapScheme"]
