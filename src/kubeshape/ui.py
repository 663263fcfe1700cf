"""Terminal helpers: the stderr console and spinners that appear only for people, never in pipes."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from functools import cache

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


@cache
def err_console() -> Console:
    return Console(stderr=True, highlight=False)


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner on stderr while slow work runs (only when stderr is a terminal)."""
    if not sys.stderr.isatty():
        yield
        return
    with err_console().status(message):
        yield


class KindProgress:
    """A progress bar over the kinds being listed (stderr, terminals only); a no-op in pipes and CI."""

    def __init__(self, label: str, total: int) -> None:
        self.enabled = sys.stderr.isatty()
        self.total = total
        self.objects = 0
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self.label = label

    def __enter__(self) -> KindProgress:
        if self.enabled:
            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(), console=err_console(),
                                      transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.label, total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def update(self, kind: str, count: int, done: bool) -> None:
        if self._progress is None or self._task is None:
            return
        if done:
            self.objects += count
            self._progress.update(self._task, advance=1,
                                  description=f"{self.label}: {kind} ({self.objects} objects so far)")
        else:
            self._progress.update(self._task, description=f"{self.label}: {kind} ({count}…)")
