"""Reverse-mapping schemes behind one interface (``scheme.RmapScheme``);
``registry`` knows them by name."""

from rmaplab.rmap.registry import get, names, register, resolve
from rmaplab.rmap.scheme import RmapScheme

__all__ = ["RmapScheme", "get", "names", "register", "resolve"]
