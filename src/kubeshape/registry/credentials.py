"""Registry credentials from the Docker config file (``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``).

Only inline ``auths`` entries are read. Credential helpers (``credHelpers``, ``credsStore``) are not supported
yet: when one would apply, the lookup returns a note that the client turns into a clear message on a 401.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from kubeshape.registry.errors import RegistryConfigError
from kubeshape.registry.models import Credentials
from kubeshape.registry.names import DOCKER_HUB

_HUB_KEY = "https://index.docker.io/v1/"


@dataclass(frozen=True, slots=True)
class CredentialLookup:
    """Result of looking ``host`` up: credentials, or why none could be used (never the secret itself)."""

    credentials: Credentials | None
    source: str | None  # where they came from, e.g. "/home/me/.docker/config.json"
    unsupported: str | None = None  # e.g. "credHelpers['ghcr.io'] = 'gcloud'"


def docker_config_path() -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def _normalize(key: str) -> str:
    """``https://host/v1/`` → ``host``, as docker matches ``auths`` keys."""
    key = key.strip()
    if "://" in key:
        key = key.split("://", 1)[1]
    return key.split("/", 1)[0].lower()


def _keys_for(host: str) -> set[str]:
    host = host.lower()
    return {_normalize(_HUB_KEY), *DOCKER_HUB} if host in DOCKER_HUB else {host}


def _decode(host: str, path: Path, entry: dict[str, Any]) -> Credentials | None:
    if entry.get("auth"):
        try:
            user, sep, password = base64.b64decode(str(entry["auth"]), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            sep, user, password = "", "", ""
        if not sep or not user:
            raise RegistryConfigError(f"{path}: auths entry for {host} has an 'auth' value that is not "
                                      "base64 of 'username:password': run `docker login` again", host=host)
        return Credentials(user, password)
    if entry.get("username") and entry.get("password"):
        return Credentials(str(entry["username"]), str(entry["password"]))
    return None


def lookup_credentials(host: str, path: Path | None = None) -> CredentialLookup:
    """Find credentials for ``host`` in the Docker config file; a missing file means anonymous."""
    path = path or docker_config_path()
    try:
        doc = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return CredentialLookup(None, None)
    except (OSError, orjson.JSONDecodeError) as exc:
        raise RegistryConfigError(f"{path}: cannot read Docker config ({type(exc).__name__}): fix or move the file",
                                  host=host) from None
    if not isinstance(doc, dict):
        raise RegistryConfigError(f"{path}: Docker config is not a JSON object", host=host)
    keys = _keys_for(host)
    helpers = doc.get("credHelpers") or {}
    for key, helper in helpers.items() if isinstance(helpers, dict) else ():
        if _normalize(key) in keys:
            return CredentialLookup(None, str(path), f"credHelpers[{key!r}] = {helper!r}")
    auths = doc.get("auths") or {}
    entry: dict[str, Any] | None = None
    for key, value in auths.items() if isinstance(auths, dict) else ():
        if _normalize(key) in keys and isinstance(value, dict):
            entry = value
            break
    if entry is not None:
        creds = _decode(host, path, entry)
        if creds is not None:
            return CredentialLookup(creds, str(path))
        if entry.get("identitytoken"):
            return CredentialLookup(None, str(path), f"auths[{host!r}].identitytoken (OAuth refresh token)")
    if doc.get("credsStore"):
        return CredentialLookup(None, str(path), f"credsStore = {doc['credsStore']!r}")
    return CredentialLookup(None, None)
