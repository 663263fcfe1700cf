"""Tags of the repositories an admission request names, from the team's registries, cached with a short TTL.

A look-up that does not answer within the request's budget is skipped with a warning and left running: its
answer fills the cache for the next request. Failures are cached briefly too, so a registry that is down costs one
try per TTL, not one per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from kubeshape.actions.registries import Target
from kubeshape.imageref import parse_or_none
from kubeshape.inventory import RegistryRepo, RegistrySnapshot, TagInfo
from kubeshape.registry.client import RegistryClient
from kubeshape.registry.errors import RegistryError, RepositoryNotFound

DEFAULT_TTL = 30.0
ERROR_TTL = 10.0
MAX_ENTRIES = 10_000


@dataclass(slots=True)
class _Entry:
    expires: float
    tags: frozenset[str] | None = None  # None: the repository does not exist
    error: str = ""


class RegistryLookup:
    """Look up tags on the registries in ``targets`` (how images name them → where to connect)."""

    def __init__(self, targets: Iterable[Target], *, insecure: bool = False, ttl: float = DEFAULT_TTL,
                 timeout: float = 5.0) -> None:
        self.targets = {t.name: t for t in targets}
        self.insecure = insecure
        self.ttl = ttl
        self.timeout = timeout
        self._clients: dict[str, RegistryClient] = {}
        self._cache: dict[tuple[str, str], _Entry] = {}
        self._running: dict[tuple[str, str], asyncio.Future[_Entry]] = {}
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="registry")
        self.lookups = 0

    def repositories(self, images: Iterable[str]) -> list[tuple[str, str]]:
        """(host, repository) of the images on these registries, referenced by tag (digests are not listed)."""
        out = []
        for image in images:
            ref = parse_or_none(image)
            if ref is not None and ref.qualified and ref.digest is None and ref.registry in self.targets:
                out.append((ref.registry, ref.path))
        return list(dict.fromkeys(out))

    async def snapshot(self, images: Iterable[str], budget: float) -> tuple[RegistrySnapshot | None, list[str]]:
        """The registry snapshot rules read for ``images``, and warnings about what could not be checked."""
        keys = self.repositories(images)
        if not keys:
            return None, []
        now = time.monotonic()
        entries: dict[tuple[str, str], _Entry] = {}
        waiting: dict[tuple[str, str], asyncio.Future[_Entry]] = {}
        for key in keys:
            hit = self._cache.get(key)
            if hit is not None and hit.expires > now:
                entries[key] = hit
            else:
                waiting[key] = self._start(key)
        if waiting:
            done, _ = await asyncio.wait(list(waiting.values()), timeout=max(budget, 0.0))
            for key, fut in waiting.items():
                if fut in done:
                    entries[key] = fut.result()
        warnings = []
        snap = RegistrySnapshot()
        for key in keys:
            host, repo = key
            entry = entries.get(key)
            if entry is None:
                warnings.append(f"registry {host} did not answer in time: tags of {repo} not checked")
            elif entry.error:
                warnings.append(f"registry {host}: {entry.error}: tags of {repo} not checked")
            else:
                r = RegistryRepo(host=host, name=repo)
                r.tags = {t: TagInfo(tag=t) for t in entry.tags or ()}
                snap.repos[key] = r
        return (snap if snap.repos else None), warnings

    def _start(self, key: tuple[str, str]) -> asyncio.Future[_Entry]:
        running = self._running.get(key)
        if running is not None:
            return running
        loop = asyncio.get_running_loop()
        fut = asyncio.ensure_future(loop.run_in_executor(self._pool, self._fetch, key))
        self._running[key] = fut

        def store(f: asyncio.Future[_Entry]) -> None:
            self._running.pop(key, None)
            if not f.cancelled() and f.exception() is None:
                if len(self._cache) >= MAX_ENTRIES:
                    self._cache.clear()
                self._cache[key] = f.result()

        fut.add_done_callback(store)
        return fut

    def _fetch(self, key: tuple[str, str]) -> _Entry:
        host, repo = key
        self.lookups += 1
        try:
            client = self._client(host)
            tags = frozenset(client.tags(repo))
        except RepositoryNotFound:
            return _Entry(time.monotonic() + self.ttl, None)
        except RegistryError as exc:
            return _Entry(time.monotonic() + ERROR_TTL, error=str(exc).split("\n", 1)[0][:200])
        except Exception as exc:  # never let a look-up break a request
            return _Entry(time.monotonic() + ERROR_TTL, error=f"{type(exc).__name__}")
        return _Entry(time.monotonic() + self.ttl, tags)

    def _client(self, host: str) -> RegistryClient:
        client = self._clients.get(host)
        if client is None:
            client = self._clients[host] = RegistryClient(self.targets[host].reach, insecure=self.insecure,
                                                          timeout=self.timeout, retries=1)
        return client

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for c in self._clients.values():
            c.close()
