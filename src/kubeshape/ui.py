"""Terminal helpers: the stderr console and spinners that appear only for people, never in pipes."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from functools import cache

from rich.console import Console


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
