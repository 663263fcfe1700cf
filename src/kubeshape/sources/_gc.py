"""Loading builds hundreds of thousands of acyclic dicts; the cyclic GC rescanning them is pure waste."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_ONE_SHOT = False


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Pause the cyclic GC, without freezing anything: for a burst of allocations that are freed by reference
    counting or kept (loading, or an analysis building indexes and findings), where full collections would rescan
    a large heap again and again. A cycle made meanwhile is collected once the GC runs again.

    Nothing is frozen here: a library call must not pin its caller's objects for the life of the process (see
    :func:`kept_until_exit`)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def exits_after_command() -> Iterator[None]:
    """Run a command in a process that exits once it is done (the console-script entry point does): loads inside
    :func:`kept_until_exit` freeze. The declaration ends with the block, so a caller that runs the entry point
    in-process and goes on is not affected by later loads."""
    global _ONE_SHOT
    previous, _ONE_SHOT = _ONE_SHOT, True
    try:
        yield
    finally:
        _ONE_SHOT = previous


@contextlib.contextmanager
def kept_until_exit() -> Iterator[None]:
    """Pause the cyclic GC while loading; in a process that exits after its command (see
    :func:`exits_after_command`), then move everything alive out of the GC's reach (``gc.freeze``), so later
    collections (while rendering) do not rescan what was loaded. Measured on the 20k-pod benchmark this halves
    doctor's wall time (see benchmarks/README.md).

    Frozen objects are never collected, so a cycle among them lives until the process exits: anywhere else
    (a command invoked in-process, a library caller) this only pauses the GC, as :func:`paused` does.
    """
    with paused():
        try:
            yield
        finally:
            if _ONE_SHOT:
                gc.freeze()
