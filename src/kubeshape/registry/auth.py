"""Registry authentication as an ``httpx.Auth`` flow: Basic, and Bearer tokens from a challenge.

On a 401 with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` the flow asks the realm for a
token (with Basic credentials when it has some) and repeats the request. Tokens are cached per
(realm, service, scope), and each route (repository + pull/push/delete) remembers its scope so later requests
carry the token up front. After a ``Basic`` challenge, credentials are sent up front too.
Tokens and passwords never appear in messages or logs.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Generator

import httpx
import orjson

from kubeshape.registry.models import Credentials
from kubeshape.registry.names import is_loopback

_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')
_ROUTE = re.compile(r"^/v2/(.+?)/(?:manifests|blobs|tags)/")
_DEFAULT_TTL = 60.0  # seconds, per the Docker token spec when expires_in is absent
_MARGIN = 10.0

TokenKey = tuple[str, str, str]  # realm, service, scope


class TokenError(Exception):
    """The token service refused or answered nonsense; ``str`` is safe to show (no secrets)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def parse_challenge(header: str) -> tuple[str, dict[str, str]] | None:
    """``Bearer realm="..",service=".."`` → ("bearer", {...}); None when there is no challenge."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params = {k.lower(): v[1:-1].replace('\\"', '"') if v.startswith('"') else v for k, v in _PARAM.findall(rest)}
    return scheme.lower(), params


def route_of(request: httpx.Request) -> tuple[str, str]:
    """(repository or ``_catalog``/``_base``, action class) of a request, to remember its token scope."""
    path = request.url.path
    match = _ROUTE.match(path)
    repo = match.group(1) if match else ("_catalog" if path.startswith("/v2/_catalog") else "_base")
    method = request.method
    action = "pull" if method in ("GET", "HEAD") else "delete" if method == "DELETE" else "push"
    return repo, action


class RegistryAuth(httpx.Auth):
    """Basic and Bearer authentication for one registry host (thread-safe)."""

    requires_response_body = True

    def __init__(self, host: str, credentials: Credentials | None) -> None:
        self.host = host
        self.credentials = credentials
        self._lock = threading.Lock()
        self._basic = False
        self._tokens: dict[TokenKey, tuple[str, float]] = {}
        self._routes: dict[tuple[str, str], TokenKey] = {}

    def _basic_header(self) -> str:
        assert self.credentials is not None
        raw = f"{self.credentials.username}:{self.credentials.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _cached(self, key: TokenKey) -> str | None:
        entry = self._tokens.get(key)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def _attach(self, request: httpx.Request, route: tuple[str, str]) -> str | None:
        """Put a known token (or Basic credentials) on ``request``; returns the token used."""
        with self._lock:
            key = self._routes.get(route)
            token = self._cached(key) if key else None
            basic = self._basic and self.credentials is not None
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        elif basic:
            request.headers["Authorization"] = self._basic_header()
        return token

    def _may_send_credentials(self, realm: httpx.URL) -> bool:
        """Credentials go to an HTTPS realm, to loopback, or to the registry host itself."""
        return realm.scheme == "https" or is_loopback(realm.netloc.decode()) or realm.netloc.decode() == self.host

    def token_request(self, params: dict[str, str]) -> httpx.Request:
        """The GET to the realm for a token with ``params``' service and scope."""
        realm = httpx.URL(params["realm"])
        if realm.scheme not in ("http", "https"):
            raise TokenError(f"token realm {params['realm']!r} is not an http(s) URL")
        query = {k: params[k] for k in ("service", "scope") if params.get(k)}
        headers = {}
        if self.credentials is not None:
            if not self._may_send_credentials(realm):
                raise TokenError(f"refusing to send credentials over plain HTTP to token service {realm.host}")
            query["account"] = self.credentials.username
            headers["Authorization"] = self._basic_header()
        return httpx.Request("GET", realm.copy_merge_params(query), headers=headers)

    @staticmethod
    def parse_token(response: httpx.Response, realm: str) -> tuple[str, float]:
        """(token, ttl seconds) from a token service response; raises TokenError."""
        host = httpx.URL(realm).host
        if response.status_code in (401, 403):
            raise TokenError(f"token service {host} rejected the credentials (HTTP {response.status_code})",
                             response.status_code)
        if response.status_code != 200:
            raise TokenError(f"token service {host} answered HTTP {response.status_code}", response.status_code)
        try:
            doc = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise TokenError(f"token service {host} did not answer JSON") from None
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise TokenError(f"token service {host} answered without a token")
        try:
            ttl = float(doc.get("expires_in") or _DEFAULT_TTL)
        except (TypeError, ValueError):
            ttl = _DEFAULT_TTL
        return token, max(ttl - _MARGIN, 1.0)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        route = route_of(request)
        sent = self._attach(request, route)
        response = yield request
        if response.status_code != 401:
            return
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            return
        scheme, params = challenge
        if scheme == "basic":
            if self.credentials is None or request.headers.get("Authorization", "").startswith("Basic "):
                return
            with self._lock:
                self._basic = True
            request.headers["Authorization"] = self._basic_header()
            yield request
            return
        if scheme != "bearer" or not params.get("realm"):
            return
        key: TokenKey = (params["realm"], params.get("service", ""), params.get("scope", ""))
        with self._lock:
            token = self._cached(key)
        if token is None or token == sent:  # none yet, or the one we sent is no longer good enough
            token, ttl = self.parse_token((yield self.token_request(params)), params["realm"])
            with self._lock:
                self._tokens[key] = (token, time.monotonic() + ttl)
        with self._lock:
            self._routes[route] = key
        request.headers["Authorization"] = f"Bearer {token}"
        yield request
