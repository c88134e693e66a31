"""Writing a trace: JSON Lines to a file, a ``.gz`` file, or stdout (``-``)."""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterable


def write_lines(path: str, lines: Iterable[bytes]) -> None:
    """Write ``lines`` (each without its newline) to ``path``."""
    data = b"\n".join(lines) + b"\n"
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    elif path.endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        with open(path, "wb") as fh:
            fh.write(data)
