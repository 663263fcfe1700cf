"""Turn failed registry responses and transport failures into ``RegistryError``s with actionable messages."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from kubeshape.registry.errors import (
    BlobNotFound,
    DeleteDisabled,
    ManifestNotFound,
    RegistryAuthError,
    RegistryConnectionError,
    RegistryError,
    RegistryNotFound,
    RegistryProtocolError,
    RegistryServerError,
    RegistryTimeout,
    RegistryTLSError,
    RepositoryNotFound,
)
from kubeshape.registry.names import is_loopback, split_host
from kubeshape.registry.transport import is_tls_error, retry_after

_PLAIN_HTTP_REASONS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG")


@dataclass(frozen=True, slots=True)
class Context:
    """What a request was about, for messages."""

    host: str
    op: str  # "list tags", "HEAD manifest", ...
    repository: str | None = None
    reference: str | None = None
    has_credentials: bool = False
    credentials_source: str | None = None
    unsupported_credentials: str | None = None
    timeout: float | None = None

    @property
    def where(self) -> str:
        """``host/repo:tag``, ``host/repo@sha256:..``, ``host/repo`` or ``host``."""
        text = self.host if self.repository is None else f"{self.host}/{self.repository}"
        if self.reference is not None:
            text += ("@" if ":" in self.reference else ":") + self.reference
        return text

    def kw(self, status: int | None = None) -> dict[str, Any]:
        return {"host": self.host, "repository": self.repository, "reference": self.reference, "status": status}


def error_codes(response: httpx.Response) -> list[tuple[str, str, str]]:
    """(code, message, detail) of an OCI error body; empty when there is none (e.g. on HEAD)."""
    try:
        doc = orjson.loads(response.content) if response.content else None
    except (orjson.JSONDecodeError, httpx.ResponseNotRead):
        return []
    errors = doc.get("errors") if isinstance(doc, dict) else None
    out = []
    for err in errors if isinstance(errors, list) else []:
        if isinstance(err, dict):
            detail = err.get("detail")
            out.append((str(err.get("code") or ""), str(err.get("message") or ""),
                        "" if detail is None else detail if isinstance(detail, str) else orjson.dumps(detail).decode()))
    return out


def _summary(codes: list[tuple[str, str, str]]) -> str:
    return "; ".join(f"{c} {m}".strip() + (f" ({d})" if d else "") for c, m, d in codes[:2])


def _attempts(request: httpx.Request | None) -> int:
    return int(request.extensions.get("attempts", 1)) if request is not None else 1


def auth_error(ctx: Context, status: int, detail: str = "") -> RegistryAuthError:
    """401/403 (or a token service refusal) as a message that says how to fix the credentials."""
    login = f"run `docker login {ctx.host}` (kubeshape reads auths in $DOCKER_CONFIG/config.json or " \
            "~/.docker/config.json)"
    extra = f" [{detail}]" if detail else ""
    if status == 403:
        who = "the credentials" + (f" from {ctx.credentials_source}" if ctx.credentials_source else "")
        msg = f"{ctx.where}: access denied (HTTP 403) to {ctx.op}{extra}: {who} lack permission for it"
        if not ctx.has_credentials:
            msg = f"{ctx.where}: access denied (HTTP 403) to {ctx.op} anonymously{extra}: {login}"
    elif ctx.has_credentials:
        src = f" from {ctx.credentials_source}" if ctx.credentials_source else ""
        msg = f"{ctx.where}: the registry rejected the credentials{src} (HTTP 401){extra}: {login} again"
    elif ctx.unsupported_credentials:
        msg = (f"{ctx.where}: authentication required (HTTP 401){extra}; {ctx.credentials_source} uses "
               f"{ctx.unsupported_credentials}, which kubeshape does not support yet: pass credentials explicitly, "
               "or point DOCKER_CONFIG at a config whose auths entry for this host has an 'auth' value")
    else:
        msg = f"{ctx.where}: authentication required (HTTP 401){extra}: {login}"
    return RegistryAuthError(msg, **ctx.kw(status))


def response_error(response: httpx.Response, ctx: Context) -> RegistryError:
    """The error for a response with an unexpected status."""
    status = response.status_code
    codes = error_codes(response)
    names = {c for c, _, _ in codes}
    summary = _summary(codes)
    if status in (401, 403):
        return auth_error(ctx, status)
    if status == 400 and b"HTTP request to an HTTPS server" in response.content:
        return RegistryProtocolError(f"{ctx.host}: the registry speaks HTTPS: drop --insecure-registry (and pass "
                                     "--ca-file PATH if its certificate is signed by a private CA)", **ctx.kw(status))
    if (status == 405 or "UNSUPPORTED" in names) and response.request.method == "DELETE":
        return DeleteDisabled(f"{ctx.host}: deletes are disabled on this registry (HTTP {status}"
                              f"{' UNSUPPORTED' if 'UNSUPPORTED' in names else ''}) so {ctx.where} cannot be "
                              "deleted: start it with REGISTRY_STORAGE_DELETE_ENABLED=true "
                              "(storage.delete.enabled: true)", **ctx.kw(status))
    if status == 405:
        return RegistryProtocolError(f"{ctx.where}: the registry does not allow {ctx.op} (HTTP 405"
                                     f"{', ' + summary if summary else ''}): is it read-only or a pull-through "
                                     "cache?", **ctx.kw(status))
    if status == 404:
        if "NAME_UNKNOWN" in names:
            return RepositoryNotFound(f"{ctx.host}: repository {ctx.repository!r} not found (HTTP 404 NAME_UNKNOWN): "
                                      "check the name, or push the image first", **ctx.kw(status))
        if "BLOB_UNKNOWN" in names:
            return BlobNotFound(f"{ctx.where}: blob not found (HTTP 404 BLOB_UNKNOWN) during {ctx.op}: the image is "
                                "incomplete; push it again", **ctx.kw(status))
        if "MANIFEST_UNKNOWN" in names or ctx.reference is not None:
            return ManifestNotFound(f"{ctx.where}: {_ref_kind(ctx)} not found (HTTP 404)", **ctx.kw(status))
        return RegistryNotFound(f"{ctx.where}: {ctx.op} failed with HTTP 404{', ' + summary if summary else ''}: "
                                f"is {ctx.host} a registry with the v2 API?", **ctx.kw(status))
    if status == 429 or status >= 500:
        attempts = _attempts(response.request)
        wait = retry_after(response)
        what = "rate limited (HTTP 429)" if status == 429 else f"server error HTTP {status}"
        hint = f"retry in {wait:.0f}s" if wait is not None else \
            "retry later" if status == 429 else "check the registry's logs and retry"
        return RegistryServerError(f"{ctx.where}: {what} on {ctx.op} after {attempts} attempt"
                                   f"{'s' if attempts != 1 else ''}{': ' + summary if summary else ''}: {hint}",
                                   **ctx.kw(status))
    return RegistryProtocolError(f"{ctx.where}: {ctx.op} failed with HTTP {status}"
                                 f"{': ' + summary if summary else ''}", **ctx.kw(status))


def _ref_kind(ctx: Context) -> str:
    if ctx.reference is None:
        return "manifest"
    return "digest" if ":" in ctx.reference else "tag"


def speaks_plain_http(exc: BaseException) -> bool:
    """True when a TLS handshake failed because the server answered in plain HTTP."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError) and (getattr(seen, "reason", None) in _PLAIN_HTTP_REASONS or
                                               any(r in str(seen) for r in _PLAIN_HTTP_REASONS)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _ssl_text(exc: BaseException) -> str:
    """The message of the TLS error behind ``exc`` (httpx wraps it)."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return str(exc)


def transport_error(exc: Exception, ctx: Context) -> RegistryError:
    """The error for a connect/timeout/TLS failure (after retries)."""
    try:
        request: httpx.Request | None = exc.request if isinstance(exc, httpx.RequestError) else None
    except RuntimeError:  # the exception was raised without a request attached
        request = None
    attempts = _attempts(request)
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    _, port = split_host(ctx.host)
    if is_tls_error(exc):
        if speaks_plain_http(exc):
            return RegistryTLSError(f"{ctx.host}: the registry answers plain HTTP, not HTTPS: pass "
                                    "--insecure-registry to use HTTP (only on a network you trust)", **ctx.kw())
        reason = _ssl_text(exc).split("] ", 1)[-1].split(" (_ssl", 1)[0]
        hint = "pass --ca-file PATH with the CA certificate that signed the registry's certificate"
        if is_loopback(ctx.host):
            hint += ", or --insecure-registry to use plain HTTP on loopback"
        return RegistryTLSError(f"{ctx.host}: TLS failed during {ctx.op} ({reason}): {hint}", **ctx.kw())
    if isinstance(exc, httpx.TimeoutException):
        after = f" after {ctx.timeout:g}s" if ctx.timeout else ""
        return RegistryTimeout(f"{ctx.host}: timed out{after} during {ctx.op} ({tries}): is the registry up and "
                               "reachable? raise the timeout for a slow link", **ctx.kw())
    text = str(exc)
    if "refused" in text.lower() or "Errno 111" in text:
        return RegistryConnectionError(f"{ctx.host}: connection refused during {ctx.op} ({tries}): nothing listens "
                                       f"on port {port or 'the registry port'}; is the registry running?", **ctx.kw())
    if any(s in text for s in ("Name or service not known", "nodename nor servname", "name resolution",
                               "getaddrinfo failed")):
        return RegistryConnectionError(f"{ctx.host}: cannot resolve the host name: check the registry host",
                                       **ctx.kw())
    return RegistryConnectionError(f"{ctx.host}: cannot talk to the registry during {ctx.op} ({tries}): "
                                   f"{type(exc).__name__}: {text or 'connection failed'}", **ctx.kw())
