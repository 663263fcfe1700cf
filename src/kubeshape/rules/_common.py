"""Helpers shared by rule modules: cached image parsing, node image stores, patch snippets."""

from __future__ import annotations

import re
from collections import defaultdict
from itertools import chain
from typing import TYPE_CHECKING

from kubeshape.imageref import ImageRef, parse_or_none
from kubeshape.inventory import Container, Inventory, K8sObject, RegistryRepo, RegistrySnapshot, containers
from kubeshape.sources.helmvalues import PIECES

if TYPE_CHECKING:
    from kubeshape.config import Config

SYSTEM_NAMESPACES = {"kube-system", "kube-public", "kube-node-lease", "local-path-storage"}


def image_key(ref: ImageRef) -> str:
    """How a node's image store names an image: ``docker.io/library/app:tag`` or ``name@digest``."""
    if ref.digest:
        return f"{ref.normalized_name}@{ref.digest}"
    return f"{ref.normalized_name}:{ref.effective_tag}"


class NodeImages:
    """Which Ready nodes hold which images (from Node status.images), keyed like containerd names them."""

    def __init__(self, inv: Inventory) -> None:
        self.nodes: list[str] = []
        self.by_image: dict[str, set[str]] = defaultdict(set)
        self.sizes: dict[str, int] = {}
        for node in inv.live("Node"):
            self.nodes.append(node.name)
            for img in node.status.get("images") or []:
                for name in img.get("names") or []:
                    ref = parse_or_none(str(name))
                    if ref is None:
                        continue
                    key = image_key(ref)
                    self.by_image[key].add(node.name)
                    self.sizes[key] = int(img.get("sizeBytes") or 0)

    def holders(self, ref: ImageRef) -> set[str]:
        return self.by_image.get(image_key(ref), set())


class RegistryIndex:
    """The registry snapshot's hosts and its repositories by name (for unqualified references)."""

    def __init__(self, snap: RegistrySnapshot | None) -> None:
        self.hosts: frozenset[str] = frozenset(h for h, _ in snap.repos) if snap else frozenset()
        self.by_name: dict[str, list[RegistryRepo]] = defaultdict(list)
        for (_, name), repo in (snap.repos.items() if snap else ()):
            self.by_name[name].append(repo)

    def named(self, name: str) -> list[RegistryRepo]:
        """``RegistrySnapshot.repos_named``, from the index."""
        return self.by_name.get(name, [])


def registry_index(inv: Inventory) -> RegistryIndex:
    """The registry index, built once per inventory (rules ask for hosts and names per container)."""
    return inv.memo("registry_index", lambda: RegistryIndex(inv.registry))


def workload_containers(inv: Inventory) -> list[tuple[K8sObject, Container]]:
    """Every (workload, container) from the repo and the live cluster, images in HelmRelease values included
    (listed once per inventory: most image rules walk them)."""
    return inv.memo("workload_containers", lambda: [
        (obj, c) for obj in chain(inv.workloads(), inv.objects("HelmRelease")) for c in containers(obj)])


def dedupe_key(obj: K8sObject, container: Container, extra: str = "") -> str:
    return f"{obj.kind}/{obj.namespace}/{obj.name}|{container.name}|{extra}"


def private_registry_for(ref: ImageRef, inv: Inventory, cfg: Config) -> str | None:
    """The private registry that holds (or should hold) ``ref``'s repository."""
    if inv.registry is not None:
        for repo in registry_index(inv).named(ref.path):
            if not cfg.registries.private or repo.host in cfg.registries.private:
                return repo.host
    return cfg.registries.private[0] if cfg.registries.private else None


def set_image_patch(obj: K8sObject, container: Container, new_image: str, extra: dict[str, str] | None = None,
                    ) -> str:
    """A diff-style patch of the container's image (and other fields), as it stands in the file."""
    anchor = container.path if container.values is not None else f"{container.path}.image"
    where = "{}:{}".format(*obj.where(anchor)) if obj.file else \
        f"{obj.namespace}/{obj.kind}/{obj.name} (live; change it in the file you apply it from)"
    if container.values is not None:
        lines = _values_diff(container, container.values, new_image, extra or {})
    else:
        parent = re.sub(r"\[\d+\]$", "", container.path).rpartition(".")[2]
        lines = [f"  {parent}:", f"  - name: {container.name}",
                 f"-   image: {container.image}", f"+   image: {new_image}"]
        for k, v in (extra or {}).items():
            old = container.spec.get(k)
            if old is not None:
                lines.append(f"-   {k}: {old}")
            lines.append(f"+   {k}: {v}")
    return "\n".join([f"In {where}:", "```diff", *lines, "```"])


def _values_diff(container: Container, old: dict[str, str], new_image: str, extra: dict[str, str]) -> list[str]:
    """The image mapping of chart values, old and new, one field a line (unchanged fields as context)."""
    new = _image_pieces(new_image, split_registry="registry" in old)
    if "pullPolicy" in old:
        new["pullPolicy"] = old["pullPolicy"]
    if "imagePullPolicy" in extra:
        new["pullPolicy"] = extra["imagePullPolicy"]
    lines = [f"  {container.path.rpartition('.')[2]}:"]
    for key in PIECES:
        before, after = old.get(key), new.get(key)
        if before == after:
            lines += [f"    {key}: {before}"] if before is not None else []
            continue
        lines += [f"-   {key}: {before}"] if before is not None else []
        lines += [f"+   {key}: {after}"] if after is not None else []
    return lines


def _image_pieces(image: str, split_registry: bool) -> dict[str, str]:
    """``registry``/``repository``/``tag``/``digest`` of an image text that may hold ``<placeholders>``."""
    rest, _, digest = image.partition("@")
    name, tag = rest, ""
    if rest.rfind(":") > rest.rfind("/"):
        name, _, tag = rest.rpartition(":")
    first, slash, path = name.partition("/")
    out = {"registry": first, "repository": path} if split_registry and slash and (
        "." in first or ":" in first or first == "localhost" or first.startswith("<")) else {"repository": name}
    out.update({k: v for k, v in (("tag", tag), ("digest", digest)) if v})
    return out


def kubectl_set_image(obj: K8sObject, container: Container, new_image: str) -> str:
    return (f"kubectl set image {obj.kind.lower()}/{obj.name} {container.name}={new_image} "
            f"-n {obj.namespace}")


def node_images(inv: Inventory) -> NodeImages:
    """The node image index, built once per inventory."""
    return inv.memo("node_images", lambda: NodeImages(inv))


def pull_problem(inv: Inventory, image: str, pull_policy: str | None = None) -> tuple[str | None, str | None]:
    """(why ``image`` cannot start everywhere, what about it was not checked), from the nodes' image stores and
    the registry snapshot: an unqualified or never-pulled image missing on some node, a tag or digest the
    registry lacks, an invalid reference."""
    ref = parse_or_none(image)
    if ref is None:
        return f"{image!r} is not a valid image reference", None
    idx = node_images(inv)
    if not ref.qualified or pull_policy == "Never":
        why = "unqualified" if not ref.qualified else "never pulled (imagePullPolicy: Never)"
        if not idx.nodes:
            return None, f"which nodes hold {image} was not checked (no nodes read)"
        missing = sorted(set(idx.nodes) - idx.holders(ref))
        if missing:
            return f"{image} is {why} and missing from the local image store of {', '.join(missing)}", None
        return None, None
    snap = inv.registry
    if snap is None or ref.registry not in registry_index(inv).hosts:
        return None, f"whether {ref.registry} has {image} was not checked"
    repo = snap.repo(ref.registry, ref.path)
    if repo is None:
        return f"{ref.registry} has no repository {ref.path}", None
    if ref.digest:
        if not any(t.digest == ref.digest for t in repo.tags.values()):
            return f"no tag of {ref.name} has digest {ref.digest[:19]}…", None
    elif ref.effective_tag not in repo.tags:
        return f"tag {ref.effective_tag} is not in {ref.registry}/{ref.path}", None
    return None, None
