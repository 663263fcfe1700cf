"""Read the registries a registry command works on: targets from flags or kubeshape.yaml, live tag data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from kubeshape.config import Config
from kubeshape.errors import InputError
from kubeshape.inventory import RegistrySnapshot
from kubeshape.registry.client import RegistryClient
from kubeshape.registry.errors import RegistryNotFound
from kubeshape.registry.models import sha256_digest
from kubeshape.registry.snapshot import snapshot
from kubeshape.sources.bundle import parse_registry_snapshot

# What RegistryClient.delete_tag pushes to a tag before deleting it: an interrupted delete leaves it there.
PLACEHOLDER_ANNOTATION = "io.kubeshape.delete-tag"
_EMPTY_BLOB = (sha256_digest(b"{}"), 2)


@dataclass(frozen=True, slots=True)
class Target:
    """A registry: ``reach`` is where to connect, ``name`` how images (and kubeshape.yaml) call it."""

    reach: str
    name: str

    @classmethod
    def parse(cls, spec: str) -> Target:
        reach, _, name = spec.strip().partition("=")
        if not reach:
            raise InputError(f"--registry {spec!r}: expected HOST[:PORT] or REACH=NAME-IN-IMAGES")
        return cls(reach, name or reach)


def targets_for(specs: Iterable[str], cfg: Config) -> list[Target]:
    """``--registry`` values, else ``registries.private`` of kubeshape.yaml."""
    found = [Target.parse(s) for s in specs] or [Target(h, h) for h in cfg.registries.private]
    if not found:
        raise InputError("no registry to read: pass --registry HOST[:PORT] (or REACH=NAME-IN-IMAGES), or list "
                         "it under registries.private in kubeshape.yaml")
    return list(dict.fromkeys(found))


@dataclass(slots=True)
class RegistryState:
    """Live tag data (hosts named as images name them) and an open client per registry name."""

    snapshot: RegistrySnapshot
    clients: dict[str, RegistryClient]
    targets: list[Target]
    interrupted: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def reach(self, host: str) -> str:
        return next(t.reach for t in self.targets if t.name == host)

    def close(self) -> None:
        for c in self.clients.values():
            c.close()


def read_registries(targets: list[Target], *, insecure: bool = False, repositories: list[str] | None = None,
                    timeout: float = 10.0) -> RegistryState:
    """List, resolve and inspect every tag (of ``repositories``, else the catalog) of every target.

    A named repository that does not exist raises ``RepositoryNotFound``; registry errors propagate.
    """
    clients = {t.name: RegistryClient(t.reach, insecure=insecure, timeout=timeout) for t in targets}
    try:
        by_reach = {t.reach: clients[t.name] for t in targets}
        doc = snapshot(list(by_reach), clients=by_reach, repositories=repositories or None)
        names = {t.reach: t.name for t in targets}
        for reg in doc["registries"]:
            reg["host"] = names[reg["host"]]
        snap = parse_registry_snapshot(doc, "registry")
        for (host, name), repo in snap.repos.items():
            if not repo.tags:
                clients[host].tags(name)  # raises RepositoryNotFound (with close names) if it does not exist
        state = RegistryState(snap, clients, targets)
        state.interrupted = _interrupted(state)
    except BaseException:
        for c in clients.values():
            c.close()
        raise
    return state


def _interrupted(state: RegistryState) -> dict[tuple[str, str], set[str]]:
    """Tags that hold the throw-away manifest of an interrupted ``delete_tag``."""
    out: dict[tuple[str, str], set[str]] = {}
    for (host, name), repo in state.snapshot.repos.items():
        for t in repo.tags.values():
            if t.created is not None or t.layers != [_EMPTY_BLOB] or not t.digest:
                continue
            try:
                manifest = state.clients[host].get_manifest(name, t.digest, suggest=False)
            except RegistryNotFound:
                continue
            if (manifest.data.get("annotations") or {}).get(PLACEHOLDER_ANNOTATION) == t.tag:
                out.setdefault((host, name), set()).add(t.tag)
    return out
