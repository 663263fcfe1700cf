"""A retrying, counting ``httpx`` transport.

Retries connect/read errors, timeouts, 5xx and 429 with exponential back-off, honouring ``Retry-After`` (seconds
or an HTTP date) up to ``max_delay``. TLS failures are never retried: they do not heal by themselves.
The number of attempts a request took is left in ``request.extensions["attempts"]``.

With a ``deadline`` (seconds), the attempts and back-off of a request share it: each attempt's connect, read,
write and pool timeouts are cut to what is left, and no retry starts that could not finish in time. Inside
``budget()``, every request the thread sends (auth round-trips included) shares one deadline.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

log = logging.getLogger("kubeshape.registry")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def is_tls_error(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a TLS handshake/verification failure."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def retry_after(response: httpx.Response, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> float | None:
    """Seconds the server asked us to wait, or None."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now()).total_seconds(), 0.0)


def _fits(end: float | None, delay: float) -> bool:
    """True when another attempt after sleeping ``delay`` seconds would start before ``end``."""
    return end is None or time.monotonic() + delay < end


class RetryTransport(httpx.BaseTransport):
    """Wrap ``inner``; count every attempt in ``requests``."""

    def __init__(self, inner: httpx.BaseTransport, *, retries: int = 3, backoff: float = 0.25,
                 max_delay: float = 30.0, sleep: Callable[[float], None] = time.sleep,
                 deadline: float | None = None) -> None:
        self.inner = inner
        self.deadline = deadline
        self.retries = max(retries, 0)
        self.backoff = backoff
        self.max_delay = max_delay
        self.sleep = sleep
        self._lock = threading.Lock()
        self._requests = 0
        self._local = threading.local()

    @property
    def requests(self) -> int:
        """HTTP requests sent so far (every attempt, including token requests)."""
        return self._requests

    def _count(self) -> None:
        with self._lock:
            self._requests += 1

    def _delay(self, attempt: int) -> float:
        return float(min(self.backoff * (2**attempt), self.max_delay))

    @contextlib.contextmanager
    def budget(self) -> Iterator[None]:
        """Requests this thread sends inside the block share one ``deadline`` (the outermost block sets it)."""
        if self.deadline is None or getattr(self._local, "end", None) is not None:
            yield
            return
        self._local.end = time.monotonic() + self.deadline
        try:
            yield
        finally:
            self._local.end = None

    def _end(self) -> float | None:
        end: float | None = getattr(self._local, "end", None)
        if end is None and self.deadline is not None:
            end = time.monotonic() + self.deadline
        return end

    def _limit(self, request: httpx.Request, end: float | None) -> None:
        """Cut the request's timeouts to the time left before ``end``; raise a timeout when none is left."""
        if end is None:
            return
        left = end - time.monotonic()
        if left <= 0:
            raise httpx.ConnectTimeout(f"no time left of the {self.deadline:g}s deadline", request=request)
        timeouts = dict(request.extensions.get("timeout") or {})
        request.extensions["timeout"] = {k: left if timeouts.get(k) is None else min(float(timeouts[k]), left)
                                         for k in ("connect", "read", "write", "pool")}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        attempt = 0
        end = self._end()
        while True:
            self._count()
            request.extensions["attempts"] = attempt + 1
            try:
                self._limit(request, end)
                response = self.inner.handle_request(request)
            except (httpx.TransportError, OSError) as exc:
                retryable = isinstance(exc, httpx.NetworkError | httpx.TimeoutException | httpx.RemoteProtocolError)
                delay = self._delay(attempt)
                if not retryable or is_tls_error(exc) or attempt >= self.retries or not _fits(end, delay):
                    raise
                log.debug("%s %s: %s; retry %d in %.2fs", request.method, request.url.host, type(exc).__name__,
                          attempt + 1, delay)
            else:
                if response.status_code not in RETRY_STATUSES or attempt >= self.retries:
                    return response
                asked = retry_after(response)
                if asked is not None and asked > self.max_delay:
                    return response  # the caller reports when to come back
                delay = asked if asked is not None else self._delay(attempt)
                if not _fits(end, delay):
                    return response  # no time left for another attempt
                response.close()
                log.debug("%s %s: HTTP %d; retry %d in %.2fs", request.method, request.url.host,
                          response.status_code, attempt + 1, delay)
            self.sleep(delay)
            attempt += 1

    def close(self) -> None:
        self.inner.close()
