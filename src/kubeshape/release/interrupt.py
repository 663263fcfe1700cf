"""SIGINT/SIGTERM during a release: the first one becomes an exception the release answers (compensation or
a report); a second one, while it answers, ends the process as usual."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from kubeshape.errors import KubeshapeError

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KubeshapeError):
    """The release was stopped by a signal."""

    exit_code = 1


@contextmanager
def abort_on_signals(second_kills: bool = False) -> Iterator[None]:
    """Turn SIGINT/SIGTERM into ``Interrupted`` inside the block (or, with ``second_kills``, let them end the
    process: the block is already answering a failure)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        for s in SIGNALS:
            signal.signal(s, signal.SIG_DFL)
        raise Interrupted(f"interrupted by {signal.Signals(signum).name}")

    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, signal.SIG_DFL if second_kills else handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
