"""Validate registry hosts, repository names, tags and digests (grammar from ``kubeshape.imageref``)."""

from __future__ import annotations

import ipaddress

from kubeshape.imageref import InvalidReference, is_valid_tag, parse
from kubeshape.registry.errors import RegistryConfigError

_PROBE_DOMAIN = "registry.invalid"
DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")


def split_host(host: str) -> tuple[str, int | None]:
    """``host[:port]`` → (hostname without brackets, port)."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    return name, int(port) if port.isdigit() else None


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (with or without a port)."""
    name, _ = split_host(host)
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_host(host: str) -> str:
    """Return ``host`` if it is a bare ``host[:port]``; raise RegistryConfigError otherwise."""
    if "://" in host or "/" in host or not host:
        raise RegistryConfigError(f"invalid registry host {host!r}: give it as host[:port] (e.g. 100.81.76.55:30500), "
                                  "without a scheme or path; use --insecure-registry for plain HTTP", host=host)
    try:
        ref = parse(f"{host}/probe")
    except InvalidReference as exc:
        raise RegistryConfigError(f"invalid registry host {host!r}: {exc.reason}", host=host) from None
    if ref.domain != host:
        raise RegistryConfigError(f"invalid registry host {host!r}", host=host)
    return host


def check_repository(host: str, repo: str) -> str:
    """Return ``repo`` if it is a valid repository path (``team/app``); raise RegistryConfigError otherwise."""
    try:
        ref = parse(f"{_PROBE_DOMAIN}/{repo}")
    except InvalidReference as exc:
        raise RegistryConfigError(f"{host}: invalid repository name {repo!r}: {exc.reason}", host=host,
                                  repository=repo) from None
    if ref.path != repo or ref.tag is not None or ref.digest is not None:
        raise RegistryConfigError(f"{host}: invalid repository name {repo!r}: give the path only, without "
                                  "host, tag or digest", host=host, repository=repo)
    return repo


def is_digest(ref: str) -> bool:
    """True iff ``ref`` is a well-formed digest (``sha256:<64 hex>``)."""
    if ":" not in ref:
        return False
    try:
        parse(f"{_PROBE_DOMAIN}/probe@{ref}")
    except InvalidReference:
        return False
    return True


def check_reference(host: str, repo: str, ref: str) -> str:
    """Return ``ref`` if it is a valid tag or digest; raise RegistryConfigError otherwise."""
    if is_digest(ref) or is_valid_tag(ref):
        return ref
    what = "digest" if ":" in ref else "tag"
    raise RegistryConfigError(f"{host}/{repo}: invalid {what} {ref!r}: tags match [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}} "
                              "(no '+'), digests look like sha256:<64 hex>", host=host, repository=repo,
                              reference=ref)


def check_digest(host: str, repo: str, digest: str) -> str:
    """Return ``digest`` if well-formed; raise RegistryConfigError otherwise (e.g. when given a tag)."""
    if not is_digest(digest):
        raise RegistryConfigError(f"{host}/{repo}: {digest!r} is not a digest (sha256:<64 hex>); to remove a tag "
                                  "use delete_tag", host=host, repository=repo, reference=digest)
    return digest
