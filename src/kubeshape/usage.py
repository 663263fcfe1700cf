"""Which images the repo and the cluster use, per snapshotted registry repository; and what deleting tags frees.

Pure functions over the inventory, shared by the registry rules (KS402-KS404) and ``registry tags``/``prune``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kubeshape.imageref import ImageRef, parse_or_none
from kubeshape.inventory import Inventory, K8sObject, RegistrySnapshot, TagInfo, containers

if TYPE_CHECKING:
    from kubeshape.config import Config


def human_bytes(n: int) -> str:
    """``512 B``, ``3.4 MiB``, ``12.3 GiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


@dataclass(frozen=True, slots=True)
class ImageUse:
    """One image reference: by a container of ``obj`` (a repo or a live workload)."""

    ref: ImageRef
    obj: K8sObject
    container: str
    path: str  # field path of the image in ``obj``; empty when seen on a pod ``obj`` owns

    @property
    def where(self) -> str:
        return f"{self.obj.ref} in {self.obj.file}" if self.obj.file else f"{self.obj.ref} (live)"


def image_uses(inv: Inventory) -> list[ImageUse]:
    """Every image that a repo workload, a live workload or a running pod references (listed once per
    inventory: the registry rules and actions all walk them)."""
    return inv.memo("usage.image_uses", lambda: list(_image_uses(inv)))


def _image_uses(inv: Inventory) -> Iterator[ImageUse]:
    # The pods of a workload repeat its images: a use that is already listed (same owner, container, field
    # path and reference) is listed once, before its reference is even parsed again.
    seen: set[tuple[int, str, str, str]] = set()
    pulled: set[tuple[int, str, str, str]] = set()
    for o in inv.repo_workloads:
        yield from _container_uses(o, o, seen)
    for o in inv.live_workloads:
        yield from _container_uses(o, o, seen)
    for rs in inv.live("ReplicaSet"):
        if rs.metadata.get("ownerReferences") and int(rs.spec.get("replicas", 1) or 0) > 0:
            yield from _container_uses(rs, inv.top_workload(rs), seen)
    for pod in inv.live("Pod"):
        top = inv.top_workload(pod)
        if pod.metadata.get("ownerReferences"):
            yield from _container_uses(pod, top, seen)
        yield from _pulled_digests(pod, top, pulled)


def _container_uses(obj: K8sObject, owner: K8sObject, seen: set[tuple[int, str, str, str]]) -> Iterator[ImageUse]:
    """Images of ``obj``'s containers, attributed to ``owner``; ``path`` only when ``owner`` holds them."""
    for c in containers(obj):
        path = f"{c.path}.image" if obj is owner else ""
        key = (id(owner), c.name, path, c.image)
        if key in seen:
            continue
        seen.add(key)
        ref = parse_or_none(c.image)
        if ref is not None:
            yield ImageUse(ref, owner, c.name, path)


def _pulled_digests(pod: K8sObject, owner: K8sObject, seen: set[tuple[int, str, str, str]]) -> Iterator[ImageUse]:
    """The repo digests a pod's containers actually run (``status.containerStatuses[].imageID``)."""
    for key in ("initContainerStatuses", "containerStatuses"):
        for st in pod.status.get(key) or []:
            image_id = str(st.get("imageID") or "")
            text = image_id.partition("://")[2] or image_id
            use = (id(owner), str(st.get("name") or ""), "", text)
            if use in seen:
                continue
            seen.add(use)
            ref = parse_or_none(text)
            if ref is not None and ref.digest:
                yield ImageUse(ref, owner, use[1], "")


@dataclass(slots=True)
class RepoUses:
    """References to one registry repository, by tag and by digest, with where they come from."""

    tags: dict[str, set[str]] = field(default_factory=dict)
    digests: dict[str, set[str]] = field(default_factory=dict)

    def add(self, ref: ImageRef, where: str) -> None:
        if ref.digest:
            self.digests.setdefault(ref.digest, set()).add(where)
        tag = ref.effective_tag
        if tag:
            self.tags.setdefault(tag, set()).add(where)

    def of(self, t: TagInfo) -> set[str]:
        """Where ``t`` is used, by its tag or by its digest."""
        return self.tags.get(t.tag, set()) | (self.digests.get(t.digest, set()) if t.digest else set())


def _repo_keys(ref: ImageRef, snap: RegistrySnapshot,
               private_by_name: dict[str, list[tuple[str, str]]]) -> list[tuple[str, str]]:
    """The snapshotted repositories ``ref`` points at; an unqualified name maps to a private
    registry's repository only when exactly one private registry has it."""
    domain, _, path = ref.normalized_name.partition("/")
    keys = {(domain, path)}
    if ref.domain is not None:
        keys.add((ref.domain, ref.path))
    found = [k for k in keys if k in snap.repos]
    if ref.domain is None and not found and len(private_by_name.get(ref.path, [])) == 1:
        found = private_by_name[ref.path]
    return found


def registry_uses(inv: Inventory, cfg: Config) -> dict[tuple[str, str], RepoUses]:
    """References per snapshotted repository (host, name); built once per inventory."""
    return inv.memo("registry.registry_uses", lambda: _build_registry_uses(inv, cfg))


def _build_registry_uses(inv: Inventory, cfg: Config) -> dict[tuple[str, str], RepoUses]:
    snap = inv.registry
    out: dict[tuple[str, str], RepoUses] = defaultdict(RepoUses)
    if snap is None:
        return out
    private = set(cfg.registries.private)
    private_by_name: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for host, name in snap.repos:
        if host in private:
            private_by_name[name].append((host, name))
    keys: dict[str, list[tuple[str, str]]] = {}  # by reference text: pods repeat their workload's images
    wheres: dict[int, str] = {}
    seen: set[tuple[str, str]] = set()
    for use in image_uses(inv):
        where = wheres.get(id(use.obj))
        if where is None:
            where = wheres[id(use.obj)] = use.where
        if (use.ref.raw, where) in seen:
            continue  # RepoUses.add would add nothing new
        seen.add((use.ref.raw, where))
        found = keys.get(use.ref.raw)
        if found is None:
            found = keys[use.ref.raw] = _repo_keys(use.ref, snap, private_by_name)
        for key in found:
            out[key].add(use.ref, where)
    return out


def _digest_key(t: TagInfo) -> str:
    return t.digest or f"tag:{t.tag}"


def reclaimable(unused: Iterable[TagInfo], kept: Iterable[TagInfo]) -> tuple[int, int]:
    """Bytes (and layer blobs) that deleting ``unused`` frees: unique blobs not used by a kept image.

    An image without layer data counts with its own size, once per digest.
    """
    kept = list(kept)
    kept_digests = {_digest_key(t) for t in kept}
    kept_blobs = {d for t in kept for d, _ in t.layers}
    blobs: dict[str, int] = {}
    whole: dict[str, int] = {}
    for t in unused:
        key = _digest_key(t)
        if key in kept_digests:
            continue
        if t.layers:
            blobs.update((d, size) for d, size in t.layers if d not in kept_blobs)
        elif t.size:
            whole[key] = t.size
    return sum(blobs.values()) + sum(whole.values()), len(blobs)
