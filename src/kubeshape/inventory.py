"""The inventory: everything the sources loaded, with the indexes rules need (built once, O(n))."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar, cast

from kubeshape.findings import ObjectRef
from kubeshape.sources.helmvalues import is_helmrelease, values_images

T = TypeVar("T")

_CHILD_KINDS = ("ReplicaSet", "Pod", "Job")  # kinds whose owners rules look up (Inventory.children)
MAX_OWNER_HOPS = 5  # Pod → ReplicaSet → Deployment is two; owner references may also form a cycle

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")
# Kinds whose pod template the user writes (not controller-made children).
TOP_LEVEL_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job", "Pod", "ReplicaSet")
# Kind names of Kubernetes' own API that rules look up; a custom resource of the same name is another kind.
CORE_KIND_NAMES = frozenset({*TOP_LEVEL_WORKLOADS, "Service", "ServiceAccount", "ConfigMap", "Secret", "Namespace",
                             "HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress", "Node", "Event",
                             "PersistentVolumeClaim", "NetworkPolicy", "Role", "RoleBinding", "ClusterRole",
                             "ClusterRoleBinding"})


def lookup_line(lines: dict[str, int], path: str, default: int) -> int:
    """Line of ``path`` or of its nearest indexed parent; ``default`` when none is indexed."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return default


# API groups whose kinds are Kubernetes' own; a kind of any other group is identified as ``Kind.group``
# (``ServiceAccount.talos.dev`` is not the core ServiceAccount).
def builtin_group(group: str) -> bool:
    """True for the core group and the Kubernetes API groups (``apps``, ``*.k8s.io``, …)."""
    return group in _BUILTIN_GROUPS or group.endswith(".k8s.io")


_BUILTIN_GROUPS = frozenset({"", "apps", "batch", "autoscaling", "policy", "extensions"})


def api_group(api_version: Any) -> str:
    """The group of an ``apiVersion`` (``apps/v1`` → ``apps``, ``v1`` → core ``""``)."""
    text = str(api_version or "")
    return text.rpartition("/")[0] if "/" in text else ""


# Flux's API groups. Their kinds are keyed ``Kind.group`` in ``ClusterSource.objects`` and ``listed_kinds``: a
# Flux ``Kustomization`` is not kustomize's, and ``inv.live("HelmRelease")`` keeps meaning what the repo renders.
FLUX_SOURCE_GROUP = "source.toolkit.fluxcd.io"
FLUX_KUSTOMIZE_GROUP = "kustomize.toolkit.fluxcd.io"
FLUX_HELM_GROUP = "helm.toolkit.fluxcd.io"
FLUX_GROUPS = frozenset({FLUX_SOURCE_GROUP, FLUX_KUSTOMIZE_GROUP, FLUX_HELM_GROUP})


def cluster_key(kind: str, group: str) -> str:
    """The key of a listed kind in ``ClusterSource.objects``: ``Kind.group`` for Flux's groups, else ``Kind``."""
    return f"{kind}.{group}" if group in FLUX_GROUPS else kind


@dataclass(slots=True)
class K8sObject:
    """One Kubernetes object from the repo or the cluster, with its provenance.

    Repo objects also say which render root produced them (a Flux Kustomization, an Argo CD Application,
    a top-level kustomization or the plain files), which deploy target that root belongs to, and which
    ``${VARIABLES}`` stayed unresolved in them.
    """

    raw: dict[str, Any]
    kind: str
    namespace: str
    name: str
    source: str  # "repo" or "cluster"
    file: str | None = None
    line: int | None = None
    lines: dict[str, int] | None = None
    group: str = ""
    root: str = ""
    target: str = ""
    unresolved: tuple[str, ...] = ()
    values_containers: list[Container] | None = field(default=None, repr=False, compare=False)
    # A live object's containers, listed on first use: rules ask for them again and again, and live objects are
    # not edited after loading.
    live_containers: list[Container] | None = field(default=None, repr=False, compare=False)
    # Fields an overlay (a kustomize patch, an images/replicas entry) set: path -> (file, line) that sets it.
    origins: dict[str, tuple[str, int]] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_raw(cls, raw: dict[str, Any], source: str, kind: str | None = None,
                 file: str | None = None, line: int | None = None,
                 lines: dict[str, int] | None = None, default_namespace: str = "") -> K8sObject:
        meta = raw.get("metadata") or {}
        return cls(raw=raw, kind=kind or raw.get("kind", ""), namespace=meta.get("namespace") or default_namespace,
                   name=meta.get("name") or meta.get("generateName") or "", source=source,
                   file=file, line=line, lines=lines, group=api_group(raw.get("apiVersion")))

    @property
    def builtin(self) -> bool:
        """True when the kind belongs to a Kubernetes API group (not a custom resource)."""
        return builtin_group(self.group)

    @property
    def qualified_kind(self) -> str:
        """``Deployment`` for Kubernetes' own kinds, ``ServiceAccount.talos.dev`` for custom ones."""
        return self.kind if builtin_group(self.group) else f"{self.kind}.{self.group}"

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity: (kind qualified by its API group when custom, namespace, name)."""
        return (self.qualified_kind, self.namespace, self.name)

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.qualified_kind, self.namespace, self.name)

    @property
    def metadata(self) -> dict[str, Any]:
        return self.raw.get("metadata") or {}

    @property
    def annotations(self) -> dict[str, str]:
        return self.metadata.get("annotations") or {}

    @property
    def labels(self) -> dict[str, str]:
        return self.metadata.get("labels") or {}

    @property
    def spec(self) -> dict[str, Any]:
        return self.raw.get("spec") or {}

    @property
    def status(self) -> dict[str, Any]:
        return self.raw.get("status") or {}

    @property
    def uid(self) -> str:
        return str(self.metadata.get("uid") or "")

    def line_of(self, path: str) -> int | None:
        """Line of a field (``spec.replicas``) in the source file, else the object's line."""
        if self.lines and self.line is not None:
            return lookup_line(self.lines, path, self.line)
        return self.line

    def origin(self, path: str) -> tuple[str, int] | None:
        """File and line of the overlay (a kustomize patch, an ``images:`` entry) that set the field at ``path`` or
        a field holding it; None when the object's own file writes it."""
        prefix = path
        while self.origins and prefix:
            hit = self.origins.get(prefix)
            if hit is not None:
                return hit
            cut = max(prefix.rfind("."), prefix.rfind("["))
            prefix = prefix[:cut] if cut > 0 else ""
        return None

    def where(self, path: str) -> tuple[str | None, int | None]:
        """File and line that set the field at ``path``: the overlay that set it (or a field holding it), else
        the object's own file at the field's line."""
        hit = self.origin(path)
        if hit is not None:
            return hit
        return self.file, self.line_of(path) if path else self.line

    def owner(self, kind: str | None = None) -> dict[str, Any] | None:
        """The controller owner reference (optionally of ``kind``)."""
        refs = self.metadata.get("ownerReferences") or []
        for ref in refs:
            if (ref.get("controller") or len(refs) == 1) and (
                kind is None or ref.get("kind") == kind
            ):
                return dict(ref)
        return None


@dataclass(slots=True)
class Container:
    """A container of a workload's pod template, with the field path for line lookups.

    For an image mapping in HelmRelease values, ``values`` holds its fields (``repository``, ``tag``...),
    ``path`` points at the mapping and ``spec`` is a container spec built from it.
    """

    spec: dict[str, Any]
    path: str
    init: bool
    values: dict[str, str] | None = None

    @property
    def image_path(self) -> str:
        """Field path of the line that names the image."""
        return f"{self.path}.repository" if self.values is not None else f"{self.path}.image"

    @property
    def name(self) -> str:
        return str(self.spec.get("name", ""))

    @property
    def image(self) -> str:
        return str(self.spec.get("image") or "")

    @property
    def pull_policy(self) -> str | None:
        value = self.spec.get("imagePullPolicy")
        return str(value) if value else None


_TEMPLATE_PATHS = {
    "Pod": "spec",
    "Deployment": "spec.template.spec",
    "StatefulSet": "spec.template.spec",
    "DaemonSet": "spec.template.spec",
    "ReplicaSet": "spec.template.spec",
    "Job": "spec.template.spec",
    "CronJob": "spec.jobTemplate.spec.template.spec",
}
_TEMPLATE_PARTS = {kind: tuple(path.split(".")) for kind, path in _TEMPLATE_PATHS.items()}


def pod_template_path(kind: str) -> str | None:
    """Field path of the pod spec inside a workload of ``kind``."""
    return _TEMPLATE_PATHS.get(kind)


def pod_spec(obj: K8sObject) -> dict[str, Any] | None:
    parts = _TEMPLATE_PARTS.get(obj.kind)
    if parts is None:
        return None
    node: Any = obj.raw
    for part in parts:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return None
    return node if isinstance(node, dict) else None


def containers(obj: K8sObject) -> Iterator[Container]:
    """Init and app containers of a workload or pod, or the images in a HelmRelease's values."""
    if is_helmrelease(obj.raw):
        if obj.values_containers is None:  # walking values is costly and every image rule asks
            obj.values_containers = []
            for v in values_images(obj.raw):
                c: dict[str, Any] = {"name": v.name, "image": v.image}
                if v.pull_policy:
                    c["imagePullPolicy"] = v.pull_policy
                obj.values_containers.append(Container(c, v.path, v.init, v.pieces or None))
        yield from obj.values_containers
        return
    if obj.source == "cluster":
        if obj.live_containers is None:
            obj.live_containers = list(_pod_containers(obj))
        yield from obj.live_containers
        return
    yield from _pod_containers(obj)


def _pod_containers(obj: K8sObject) -> Iterator[Container]:
    spec = pod_spec(obj)
    if spec is None:
        return
    base = _TEMPLATE_PATHS[obj.kind]
    for field_name, init in (("initContainers", True), ("containers", False)):
        for i, c in enumerate(spec.get(field_name) or []):
            if isinstance(c, dict):
                yield Container(c, f"{base}.{field_name}[{i}]", init)


def pod_template_labels(obj: K8sObject) -> dict[str, str]:
    if obj.kind == "Pod":
        return obj.labels
    tmpl = obj.spec.get("template") or {}
    if obj.kind == "CronJob":
        tmpl = ((obj.spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
    return (tmpl.get("metadata") or {}).get("labels") or {}


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Kubernetes label selector semantics (matchLabels + matchExpressions, or a plain map)."""
    if not selector:
        return False
    if "matchLabels" in selector or "matchExpressions" in selector:
        for k, v in (selector.get("matchLabels") or {}).items():
            if labels.get(k) != v:
                return False
        for expr in selector.get("matchExpressions") or []:
            key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
            if op == "In" and labels.get(key) not in values:
                return False
            if op == "NotIn" and key in labels and labels[key] in values:
                return False
            if op == "Exists" and key not in labels:
                return False
            if op == "DoesNotExist" and key in labels:
                return False
        return True
    return all(labels.get(k) == v for k, v in selector.items())


@dataclass(slots=True)
class TagInfo:
    """One tag in a registry repository."""

    tag: str
    digest: str | None = None
    size: int | None = None
    created: datetime | None = None
    revision: str | None = None
    layers: list[tuple[str, int]] = field(default_factory=list)


@dataclass(slots=True)
class RegistryRepo:
    host: str
    name: str
    tags: dict[str, TagInfo] = field(default_factory=dict)


@dataclass(slots=True)
class RegistrySnapshot:
    """Repositories and tags of one or more registries, as collected at ``collected_at``."""

    repos: dict[tuple[str, str], RegistryRepo] = field(default_factory=dict)
    collected_at: datetime | None = None

    @property
    def hosts(self) -> set[str]:
        return {h for h, _ in self.repos}

    def repo(self, host: str, name: str) -> RegistryRepo | None:
        return self.repos.get((host, name))

    def repos_named(self, name: str) -> list[RegistryRepo]:
        """Repositories called ``name`` on any host (for unqualified references)."""
        return [r for (_, n), r in self.repos.items() if n == name]


@dataclass(slots=True)
class RepoSource:
    """What the manifest repository holds."""

    root: str
    objects: list[K8sObject] = field(default_factory=list)
    yaml_files: list[str] = field(default_factory=list)
    dockerfiles: list[str] = field(default_factory=list)
    ci_files: dict[str, str] = field(default_factory=dict)
    errors: list[tuple[str, int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    not_analysed: list[str] = field(default_factory=list)  # inputs that were found but not read: say so
    skipped_files: list[str] = field(default_factory=list)  # YAML files that are not Kubernetes manifests
    roots: int = 0  # render roots (Flux Kustomizations, Argo CD Applications, kustomizations, plain files)


@dataclass(slots=True)
class ClusterSource:
    """Cluster state from a live API or a bundle."""

    name: str
    objects: dict[str, list[K8sObject]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    logs: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    blind_spots: list[tuple[str, str]] = field(default_factory=list)
    collected_at: datetime | None = None
    listed_kinds: set[str] = field(default_factory=set)
    server_version: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class GitSource:
    root: str
    head: str | None = None
    commits: frozenset[str] = frozenset()
    tags: dict[str, str] = field(default_factory=dict)
    remotes: dict[str, str] = field(default_factory=dict)  # remote name -> fetch URL
    # local (``main``) and remote-tracking (``origin/main``) branches -> (commit, committer time in Unix seconds)
    branches: dict[str, tuple[str, int]] = field(default_factory=dict)


def _event_target(ev: dict[str, Any]) -> tuple[str, str, str]:
    obj = ev.get("involvedObject") or ev.get("regarding") or {}
    return (str(obj.get("kind") or ""), str(obj.get("namespace") or ev.get("metadata", {}).get("namespace") or ""),
            str(obj.get("name") or ""))


def event_count(ev: dict[str, Any]) -> int:
    """How often an event happened (core/v1 ``count`` or events.k8s.io ``series.count``)."""
    series = ev.get("series") or {}
    return int(ev.get("count") or series.get("count") or 1)


class Inventory:
    """The joined world. Indexes are dicts built on first use, so every join is O(n)."""

    def __init__(self, repo: RepoSource | None = None, cluster: ClusterSource | None = None,
                 registry: RegistrySnapshot | None = None, git: GitSource | None = None,
                 now: datetime | None = None) -> None:
        self.repo = repo
        self.cluster = cluster
        self.registry = registry
        self.git = git
        self._memo: dict[str, Any] = {}
        self._tops: dict[tuple[int, int], tuple[K8sObject, K8sObject]] = {}
        collected = cluster.collected_at if cluster else None
        self.now = now or collected or datetime.now().astimezone()

    def memo(self, key: str, factory: Callable[[], T]) -> T:
        """Build an index once per inventory and share it between rules."""
        if key not in self._memo:
            self._memo[key] = factory()
        return cast(T, self._memo[key])

    # -- what is loaded -------------------------------------------------
    @property
    def sources(self) -> set[str]:
        present = set()
        if self.repo is not None:
            present.add("repo")
        if self.cluster is not None:
            present.add("cluster")
        if self.registry is not None:
            present.add("registry")
        if self.git is not None:
            present.add("git")
        return present

    # -- cluster objects --------------------------------------------------
    def live(self, kind: str) -> list[K8sObject]:
        return self.cluster.objects.get(kind, []) if self.cluster else []

    def listed(self, kind: str) -> bool:
        """True when the cluster source could list ``kind`` (so absence means absent)."""
        return bool(self.cluster and kind in self.cluster.listed_kinds)

    @cached_property
    def live_by_key(self) -> dict[tuple[str, str, str], K8sObject]:
        out: dict[tuple[str, str, str], K8sObject] = {}
        if self.cluster:
            for objs in self.cluster.objects.values():
                for o in objs:
                    out[o.key] = o
        return out

    @cached_property
    def live_by_uid(self) -> dict[str, K8sObject]:
        return self._owner_sweep()[0]

    def _owner_sweep(self) -> tuple[dict[str, K8sObject], dict[str, list[K8sObject]], list[K8sObject]]:
        """``live_by_uid``, ``children`` and ``live_workloads``, built in one pass over the live objects' metadata
        (on a large cluster each pass costs mostly the memory it reads)."""
        return self.memo("inventory.owner_sweep", self._sweep_owners)

    def _sweep_owners(self) -> tuple[dict[str, K8sObject], dict[str, list[K8sObject]], list[K8sObject]]:
        by_uid: dict[str, K8sObject] = {}
        owned: dict[str, list[tuple[str, K8sObject]]] = {kind: [] for kind in _CHILD_KINDS}
        unowned: dict[str, list[K8sObject]] = {kind: [] for kind in TOP_LEVEL_WORKLOADS}
        for kind, objs in (self.cluster.objects.items() if self.cluster else ()):
            kids, tops = owned.get(kind), unowned.get(kind)
            for o in objs:
                meta = o.raw.get("metadata") or {}
                uid = meta.get("uid")
                if uid:
                    by_uid[str(uid)] = o
                if kids is None and tops is None:
                    continue
                refs = meta.get("ownerReferences")
                if tops is not None and not refs:
                    tops.append(o)
                if kids is not None:
                    for ref in refs or ():
                        if ref.get("uid"):
                            kids.append((str(ref["uid"]), o))
        children: dict[str, list[K8sObject]] = defaultdict(list)
        for kind in _CHILD_KINDS:  # each owner's list in kind order, as rules read it
            for uid, o in owned[kind]:
                children[uid].append(o)
        return by_uid, children, [o for kind in TOP_LEVEL_WORKLOADS for o in unowned[kind]]

    @cached_property
    def events_by_object(self) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
        """Events keyed by involved object kind, namespace *and* name."""
        out: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        if self.cluster:
            for ev in self.cluster.events:
                out[_event_target(ev)].append(ev)
        return out

    def events_for(self, kind: str, namespace: str, name: str, reason: str | None = None) -> list[dict[str, Any]]:
        evs = self.events_by_object.get((kind, namespace, name), [])
        return [e for e in evs if reason is None or e.get("reason") == reason]

    @cached_property
    def children(self) -> dict[str, list[K8sObject]]:
        """Live objects (ReplicaSets, Pods, Jobs) by the uid of each owner they reference."""
        return self._owner_sweep()[1]

    def pods_of(self, workload: K8sObject) -> list[K8sObject]:
        """Pods that belong to a live workload (through ReplicaSets for Deployments, Jobs for CronJobs)."""
        if workload.kind == "Pod":
            return [workload]
        out: list[K8sObject] = []
        for child in self.children.get(workload.uid, []):
            if child.kind == "Pod":
                out.append(child)
            else:
                out.extend(self.pods_of(child))
        return out

    def top_workload(self, obj: K8sObject) -> K8sObject:
        """Follow controller owners up to the workload a user wrote (Pod → ReplicaSet → Deployment), at most
        ``MAX_OWNER_HOPS`` steps (ownerReferences may form a cycle)."""
        return self._top(obj, MAX_OWNER_HOPS)

    def _top(self, obj: K8sObject, hops: int) -> K8sObject:
        # Many rules ask for the same pods, and the pods of one ReplicaSet share the walk from the ReplicaSet up:
        # remembered per (object, hops left); the entry holds the object, so its id stays unique.
        key = (id(obj), hops)
        hit = self._tops.get(key)
        if hit is not None:
            return hit[1]
        top = obj
        if hops > 0:
            refs = (obj.raw.get("metadata") or {}).get("ownerReferences") or []
            owner = None  # obj.owner(), without the copy
            for ref in refs:
                if ref.get("controller") or len(refs) == 1:
                    owner = ref
                    break
            if owner:
                parent = self.live_by_uid.get(str(owner.get("uid") or "")) or self.live_by_key.get(
                    (str(owner.get("kind")), obj.namespace, str(owner.get("name"))))
                if parent is not None:
                    top = self._top(parent, hops - 1)
        self._tops[key] = (obj, top)
        return top

    @cached_property
    def live_workloads(self) -> list[K8sObject]:
        """Live workloads a user manages: no object that a controller owns."""
        return self._owner_sweep()[2]

    # -- repo objects -------------------------------------------------------
    @property
    def repo_objects(self) -> list[K8sObject]:
        return self.repo.objects if self.repo else []

    @cached_property
    def repo_by_key(self) -> dict[tuple[str, str, str], list[K8sObject]]:
        out: dict[tuple[str, str, str], list[K8sObject]] = defaultdict(list)
        for o in self.repo_objects:
            out[o.key].append(o)
        return out

    @cached_property
    def repo_workloads(self) -> list[K8sObject]:
        return [o for o in self.repo_objects if o.kind in TOP_LEVEL_WORKLOADS and o.builtin]

    # -- both -----------------------------------------------------------------
    def workloads(self) -> Iterator[K8sObject]:
        """Repo workloads, then live ones."""
        yield from self.repo_workloads
        yield from self.live_workloads

    def objects(self, kind: str) -> Iterator[K8sObject]:
        """Repo and live objects of ``kind``."""
        for o in self.repo_objects:
            if o.kind == kind and (o.builtin or kind not in CORE_KIND_NAMES):
                yield o
        yield from self.live(kind)

    @cached_property
    def service_names(self) -> dict[str, set[str]]:
        """Service names per namespace, from the cluster when listed, else from the repo."""
        out: dict[str, set[str]] = defaultdict(set)
        if self.listed("Service"):
            for s in self.live("Service"):
                out[s.namespace].add(s.name)
        for o in self.repo_objects:
            if o.kind == "Service":
                out[o.namespace or "default"].add(o.name)
        return out
