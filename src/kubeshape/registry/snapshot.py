"""Snapshot registries into the ``registry.json`` document of docs/bundle-format.md.

Per host: the catalog (or the given repositories), every repository's tags, a HEAD per tag for its digest, then
one ``image_info`` per distinct digest (shared digests are fetched once), all on a bounded thread pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from kubeshape.registry.client import RegistryClient
from kubeshape.registry.errors import ManifestNotFound, RegistryNotFound, RepositoryNotFound
from kubeshape.registry.models import ImageInfo, ManifestRef, format_created


def _tags(client: RegistryClient, repo: str, named: bool) -> list[str]:
    try:
        return client.tags(repo)
    except RepositoryNotFound:
        if named:  # asked for by name and absent: record it with no tags ("nothing was pushed")
            return []
        raise


def _head(client: RegistryClient, repo: str, tag: str) -> ManifestRef | None:
    try:
        return client.head_manifest(repo, tag, suggest=False)
    except ManifestNotFound:
        return None  # deleted since the listing


def _info(client: RegistryClient, repo: str, digest: str) -> ImageInfo | None:
    try:
        return client.image_info(repo, digest)
    except RegistryNotFound:
        return None  # deleted since, or an incomplete image (missing config blob)


def _tag_entry(tag: str, ref: ManifestRef, info: ImageInfo | None) -> dict[str, Any]:
    if info is None:
        return {"tag": tag, "digest": ref.digest, "size": None, "created": None, "revision": None, "layers": []}
    return {"tag": tag, "digest": ref.digest, "size": info.size, "created": format_created(info.created),
            "revision": info.revision, "layers": [{"digest": la.digest, "size": la.size} for la in info.layers]}


def snapshot(hosts: list[str], *, insecure: bool = False, clients: Mapping[str, RegistryClient] | None = None,
             workers: int = 8, repositories: Iterable[str] | None = None) -> dict[str, Any]:
    """The ``registry.json`` document for ``hosts`` (``repositories`` limits every host to those names).

    ``clients`` supplies ready clients per host (others are created with ``insecure`` and closed afterwards).
    Errors (unreachable, auth) propagate as ``RegistryError``; an unreachable host is a ``SourceUnreachable``.
    """
    collected_at = datetime.now(UTC)
    hosts = list(dict.fromkeys(hosts))
    given = dict(clients or {})
    owned = {h: RegistryClient(h, insecure=insecure) for h in hosts if h not in given}
    named = list(dict.fromkeys(repositories)) if repositories is not None else None
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            try:
                registries = _collect(pool, hosts, given, owned, named)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # do not finish thousands of queued HEADs
                raise
    finally:
        for c in owned.values():
            c.close()
    return {"collectedAt": format_created(collected_at.replace(microsecond=0)), "registries": registries}


def _collect(pool: ThreadPoolExecutor, hosts: list[str], given: Mapping[str, RegistryClient],
             owned: Mapping[str, RegistryClient], named: list[str] | None) -> list[dict[str, Any]]:
    """List, resolve and inspect; returns the ``registries`` array."""
    per_host = {h: given.get(h) or owned[h] for h in hosts}
    repo_names = {h: named if named is not None else c.catalog() for h, c in per_host.items()}
    listings = {(h, r): pool.submit(_tags, c, r, named is not None)
                for h, c in per_host.items() for r in repo_names[h]}
    heads = {(h, r, t): pool.submit(_head, per_host[h], r, t)
             for (h, r), fut in listings.items() for t in fut.result()}
    infos: dict[tuple[str, str], Future[ImageInfo | None]] = {}
    for (h, r, _), fut in heads.items():  # one image_info per host and digest
        ref = fut.result()
        if ref is not None and (h, ref.digest) not in infos:
            infos[(h, ref.digest)] = pool.submit(_info, per_host[h], r, ref.digest)
    registries: list[dict[str, Any]] = []
    for h in hosts:
        repos = []
        for r in sorted(repo_names[h]):
            entries = []
            for t in sorted(listings[(h, r)].result()):
                ref = heads[(h, r, t)].result()
                if ref is not None:
                    entries.append(_tag_entry(t, ref, infos[(h, ref.digest)].result()))
            repos.append({"name": r, "tags": entries})
        registries.append({"host": h, "repositories": repos})
    return registries
