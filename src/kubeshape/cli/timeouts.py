"""``--request-timeout``: kubectl's duration syntax, shared by the commands that talk to clusters."""

from __future__ import annotations

import re

from kubeshape.errors import InputError

REQUEST_TIMEOUT_HELP = ("How long one request may take, retries included, as kubectl takes it: 30s, 1m, 1h30m, "
                        "500ms, or a bare number of seconds; 0 waits forever.")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_request_timeout(text: str, flag: str = "--request-timeout") -> float | None:
    """Seconds from kubectl's ``--request-timeout`` syntax (a Go duration such as ``1m30s``, or a bare number of
    seconds); None for ``0`` (no timeout)."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        parts = _DURATION_PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise InputError(f"{flag} {text!r}: expected a duration such as 5s, 1m or 1h30m, or a number of "
                             "seconds (0: no timeout)") from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise InputError(f"{flag} {text!r}: must be a duration of zero (no timeout) or more")
    return None if seconds == 0 else seconds
