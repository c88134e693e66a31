"""Reverse-mapping schemes behind one interface (``scheme.RmapScheme``)."""

from rmaplab.rmap.anon_vma import AnonVmaScheme
from rmaplab.rmap.anonmm import AnonmmScheme
from rmaplab.rmap.scheme import RmapScheme

SCHEMES: dict[str, type[RmapScheme]] = {
    "anon_vma": AnonVmaScheme,
    "anonmm": AnonmmScheme,
}

__all__ = ["SCHEMES", "RmapScheme"]
