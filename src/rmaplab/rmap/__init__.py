"""Reverse-mapping schemes behind one interface (``scheme.RmapScheme``)."""

from rmaplab.rmap.anon_vma import AnonVmaScheme
from rmaplab.rmap.scheme import RmapScheme

SCHEMES: dict[str, type[RmapScheme]] = {
    "anon_vma": AnonVmaScheme,
}

__all__ = ["SCHEMES", "RmapScheme"]
