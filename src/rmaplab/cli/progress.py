"""Progress bars for commands that can run longer than about a second.

``progress(quiet)`` is a rich ``Progress`` on stderr, or, when stderr is
not a terminal or the user asked for quiet (``-q``), an object with the
same methods that shows nothing. Either way stdout stays the command's
output alone.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)


class Silent:
    """A progress display that shows nothing."""

    def __enter__(self) -> Silent:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **kw: Any) -> TaskID:
        return TaskID(0)

    def update(self, task: TaskID, **kw: Any) -> None:
        return None

    def advance(self, task: TaskID, advance: float = 1) -> None:
        return None


def enabled(quiet: bool = False) -> bool:
    """Should progress be shown: stderr is a terminal and not quiet."""
    return not quiet and sys.stderr.isatty()


def progress(quiet: bool = False) -> Progress | Silent:
    """A transient progress display on stderr (see the module docstring)."""
    if not enabled(quiet):
        return Silent()
    # Lines the command prints meanwhile go above the bar when stdout is the
    # same terminal; otherwise stdout is left alone (a file or a pipe).
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=True,
                    redirect_stdout=sys.stdout.isatty(), redirect_stderr=False)
