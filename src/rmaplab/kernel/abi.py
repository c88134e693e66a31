"""The user-visible encodings: prot strings, mmap/mremap flag words, and
their C values."""

from __future__ import annotations

from collections.abc import Iterable

from rmaplab.mm.mmap import (MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_GROWSDOWN,
                             MAP_LOCKED, MAP_NORESERVE, MAP_POPULATE, MAP_PRIVATE, MAP_SHARED,
                             PROT_EXEC, PROT_READ, PROT_WRITE)
from rmaplab.mm.mremap import MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE

MMAP_FLAGS = {"shared": MAP_SHARED, "private": MAP_PRIVATE, "anonymous": MAP_ANONYMOUS,
              "fixed": MAP_FIXED, "fixed_noreplace": MAP_FIXED_NOREPLACE,
              "populate": MAP_POPULATE, "locked": MAP_LOCKED, "growsdown": MAP_GROWSDOWN,
              "noreserve": MAP_NORESERVE}
MREMAP_FLAGS = {"maymove": MREMAP_MAYMOVE, "fixed": MREMAP_FIXED, "dontunmap": MREMAP_DONTUNMAP}


class AbiError(ValueError):
    """A prot or flag word the model does not know."""


_PROTS = {f"{r}{w}{x}": (PROT_READ if r == "r" else 0) | (PROT_WRITE if w == "w" else 0)
          | (PROT_EXEC if x == "x" else 0) for r in "r-" for w in "w-" for x in "x-"}


def parse_prot(prot: int | str) -> int:
    """``"rw-"`` → PROT_READ|PROT_WRITE. Integers pass through."""
    if isinstance(prot, int):
        return prot
    v = _PROTS.get(prot)
    if v is not None:
        return v
    if len(prot) != 3 or any(c not in ok for c, ok in zip(prot, ("r-", "w-", "x-"))):
        raise AbiError(f"bad prot {prot!r}: expected three characters like 'rw-'")
    return ((PROT_READ if prot[0] == "r" else 0) | (PROT_WRITE if prot[1] == "w" else 0)
            | (PROT_EXEC if prot[2] == "x" else 0))


def parse_flags(flags: int | Iterable[str], table: dict[str, int], what: str) -> int:
    if isinstance(flags, int):
        return flags
    if isinstance(flags, str):
        flags = [flags]
    out = 0
    for word in flags:
        if word not in table:
            raise AbiError(f"unknown {what} flag {word!r}; known: {', '.join(table)}")
        out |= table[word]
    return out
