"""Progress of a long command: a rich bar on a terminal, nothing more elsewhere.

On a terminal (stderr a TTY, ``TERM`` not "dumb") the bar is drawn on stderr and log records
print above it; in journald, pipes and CI the command's plain one-line logs are all there is.
rich is imported only when a bar is drawn.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class Bar(Protocol):
    drawn: bool  # False: nothing is shown, so nothing need be counted

    def advance(self, steps: int = 1) -> None: ...
    def update(self, *, total: int | None = None, description: str | None = None) -> None: ...


class _NoBar:
    drawn = False

    def advance(self, steps: int = 1) -> None:
        pass

    def update(self, *, total: int | None = None, description: str | None = None) -> None:
        pass


class _RichBar:
    drawn = True

    def __init__(self, progress: Any, task: Any) -> None:
        self._progress = progress
        self._task = task

    def advance(self, steps: int = 1) -> None:
        self._progress.advance(self._task, steps)

    def update(self, *, total: int | None = None, description: str | None = None) -> None:
        changes: dict[str, Any] = {}
        if total is not None:
            changes["total"] = total
        if description is not None:
            changes["description"] = description
        self._progress.update(self._task, **changes)


def is_terminal() -> bool:
    """True when stderr is a terminal a person watches."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


@contextmanager
def progress_bar(
    description: str, total: int | None = None, *, force: bool = False
) -> Iterator[Bar]:
    """A bar for ``total`` steps (None: not known yet) while the block runs; ``force`` draws it
    even when stderr is no terminal (tests)."""
    if not (force or is_terminal()):
        yield _NoBar()
        return
    from rich.console import Console
    from rich.logging import RichHandler
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(file=sys.stderr, force_terminal=True)  # a terminal, or forced
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,  # the summary line that follows says what was done
    )
    root = logging.getLogger()
    swapped: list[tuple[int, logging.Handler]] = []
    for i, handler in enumerate(root.handlers):
        if type(handler) is logging.StreamHandler and handler.stream in (
            sys.stderr,
            sys.__stderr__,
        ):
            rich = RichHandler(console=console, show_path=False, show_time=False, markup=False)
            rich.setLevel(handler.level)
            rich.setFormatter(logging.Formatter("%(name)s %(message)s"))
            swapped.append((i, handler))
            root.handlers[i] = rich
    task = progress.add_task(description, total=total)
    try:
        with progress:
            yield _RichBar(progress, task)
    finally:
        for i, handler in swapped:
            root.handlers[i] = handler
