"""Load a cluster bundle: kubeshape's own format (directory or .tar.gz) or ``kubectl cluster-info dump``.

See docs/bundle-format.md for the format. Secret values are dropped as they are read.
"""

from __future__ import annotations

import re
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from kubeshape.errors import InputError
from kubeshape.inventory import (
    FLUX_HELM_GROUP,
    FLUX_KUSTOMIZE_GROUP,
    FLUX_SOURCE_GROUP,
    ClusterSource,
    K8sObject,
    RegistryRepo,
    RegistrySnapshot,
    TagInfo,
    api_group,
    cluster_key,
)
from kubeshape.redact import REDACTED, ObjectRedactor, is_secret_name, redact_object, redact_text, redact_value
from kubeshape.sources import shapes
from kubeshape.sources._gc import paused
from kubeshape.sources.bundle_io import BundleReader, DirReader, TarReader
from kubeshape.sources.limits import Limits
from kubeshape.sources.validate import Shape, ShapeMismatch, check, compiled, describe
from kubeshape.timeutil import parse_time

MANIFEST = "kubeshape-bundle.json"
FORMAT_VERSION = 1
LOG_TAIL_LINES = 2000

# File stem (resource[.group]) → kind, for lists that do not say their kind.
RESOURCE_KINDS: dict[str, str] = {
    "pods": "Pod", "nodes": "Node", "namespaces": "Namespace", "services": "Service", "events": "Event",
    "configmaps": "ConfigMap", "secrets": "Secret", "serviceaccounts": "ServiceAccount",
    "persistentvolumeclaims": "PersistentVolumeClaim", "replicationcontrollers": "ReplicationController",
    "replication-controllers": "ReplicationController", "endpoints": "Endpoints",
    "deployments.apps": "Deployment", "deployments": "Deployment",
    "replicasets.apps": "ReplicaSet", "replicasets": "ReplicaSet",
    "statefulsets.apps": "StatefulSet", "statefulsets": "StatefulSet",
    "daemonsets.apps": "DaemonSet", "daemonsets": "DaemonSet",
    "controllerrevisions.apps": "ControllerRevision",
    "jobs.batch": "Job", "cronjobs.batch": "CronJob",
    "horizontalpodautoscalers.autoscaling": "HorizontalPodAutoscaler",
    "poddisruptionbudgets.policy": "PodDisruptionBudget",
    "ingresses.networking.k8s.io": "Ingress",
    "events.events.k8s.io": "Event",
    "endpointslices.discovery.k8s.io": "EndpointSlice", "persistentvolumes": "PersistentVolume",
    "storageclasses.storage.k8s.io": "StorageClass", "networkpolicies.networking.k8s.io": "NetworkPolicy",
    "roles.rbac.authorization.k8s.io": "Role", "rolebindings.rbac.authorization.k8s.io": "RoleBinding",
    "clusterroles.rbac.authorization.k8s.io": "ClusterRole",
    "clusterrolebindings.rbac.authorization.k8s.io": "ClusterRoleBinding",
    "servicemonitors.monitoring.coreos.com": "ServiceMonitor",
    "podmonitors.monitoring.coreos.com": "PodMonitor",
    "prometheusrules.monitoring.coreos.com": "PrometheusRule",
    f"gitrepositories.{FLUX_SOURCE_GROUP}": "GitRepository", f"ocirepositories.{FLUX_SOURCE_GROUP}": "OCIRepository",
    f"helmrepositories.{FLUX_SOURCE_GROUP}": "HelmRepository",
    f"kustomizations.{FLUX_KUSTOMIZE_GROUP}": "Kustomization", f"helmreleases.{FLUX_HELM_GROUP}": "HelmRelease",
}
MAX_FIELD_PATHS = 32  # leaf field paths kept per managedFields entry
# Kubernetes' own controllers write every pod and ReplicaSet: what fields they own is no evidence of a change
# made by someone, and keeping it would cost memory on large clusters.
_SYSTEM_MANAGERS = frozenset({"kube-controller-manager", "kubelet", "kube-scheduler", "kube-apiserver"})
_ENTRY_KEYS = ("manager", "operation", "time", "subresource")


def strip_secret(raw: dict[str, Any]) -> dict[str, Any]:
    """Keep a Secret's identity and key names, never its values (also in last-applied annotations)."""
    meta = dict(raw.get("metadata") or {})
    ann = {k: v for k, v in (meta.get("annotations") or {}).items()
           if k != "kubectl.kubernetes.io/last-applied-configuration"}
    meta["annotations"] = ann
    meta.pop("managedFields", None)
    keys = sorted({*(raw.get("data") or {}), *(raw.get("stringData") or {})})
    return {"apiVersion": raw.get("apiVersion", "v1"), "kind": "Secret", "metadata": meta,
            "type": raw.get("type"), "dataKeys": keys}


def list_kind(doc: dict[str, Any], stem: str = "") -> str:
    """The item kind of a List: from its ``kind`` (``DeploymentList``) or its file name."""
    kind = str(doc.get("kind") or "")
    if kind.endswith("List") and kind != "List":
        return kind.removesuffix("List")
    return RESOURCE_KINDS.get(stem, "")


def list_group(doc: dict[str, Any], stem: str = "") -> str:
    """The API group of a List's items: from a typed list's ``apiVersion``, else from its file name
    (``kustomizations.kustomize.toolkit.fluxcd.io`` → ``kustomize.toolkit.fluxcd.io``)."""
    kind = str(doc.get("kind") or "")
    if kind.endswith("List") and kind != "List":
        return api_group(doc.get("apiVersion"))
    return stem.partition(".")[2]


def redact_item(item: dict[str, Any],
                redact: Callable[[dict[str, Any]], dict[str, Any]] = redact_object) -> dict[str, Any]:
    """:func:`redact_object` (or ``redact``, an :class:`ObjectRedactor`), plus the values Flux objects carry inline:
    a HelmRelease's ``spec.values`` and a Kustomization's ``spec.postBuild.substitute`` (a value under a
    secret-looking key is hidden)."""
    redact(item)
    spec = item.get("spec")
    if isinstance(spec, dict):
        post = spec.get("postBuild")
        for tree in (spec.get("values"), post.get("substitute") if isinstance(post, dict) else None):
            if isinstance(tree, dict):
                _redact_tree(tree)
    return item


def _redact_tree(root: dict[str, Any]) -> None:
    """Redact, in place, every string (by its key's name and its text) and every number under a secret-looking
    key of a values tree."""
    stack: list[tuple[Any, str]] = [(root, "")]
    while stack:
        node, key = stack.pop()
        entries = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in list(entries):
            name = str(k) if isinstance(node, dict) else key
            if isinstance(v, dict | list):
                stack.append((v, name))
            elif isinstance(v, str):
                node[k] = redact_value(name, v)
            elif isinstance(v, int | float) and not isinstance(v, bool) and is_secret_name(name):
                node[k] = REDACTED


def add_list(cluster: ClusterSource, kind: str, items: list[Any],
             check_item: Callable[[int, Any], None] | None = None, group: str = "") -> None:
    """Add the items of one listed kind of API ``group``: Secrets lose their values, secret-looking values are
    redacted, managedFields are compacted. Flux's kinds are keyed ``Kind.group`` (see ``cluster_key``).

    ``check_item(index, item)`` runs first on each item (while it is hot in the CPU cache) and may raise.
    """
    key = cluster_key(kind, group)
    cluster.listed_kinds.add(key)
    redact = ObjectRedactor()
    if kind == "Event":
        if check_item is not None:
            for n, ev in enumerate(items):
                check_item(n, ev)
        events = [i for i in items if isinstance(i, dict)]
        for ev in events:
            redact(ev)  # messages can carry what a container printed
        cluster.events.extend(events)
        return
    bucket = cluster.objects.setdefault(key, [])
    for n, item in enumerate(items):
        if check_item is not None:
            check_item(n, item)
        if not isinstance(item, dict):
            continue
        if kind == "Secret":
            item = strip_secret(item)
        else:
            redact_item(item, redact)
        meta = item.get("metadata")
        if isinstance(meta, dict) and "managedFields" in meta:
            meta["managedFields"] = compact_managed_fields(meta["managedFields"])
        obj = K8sObject.from_raw(item, "cluster", kind=kind)
        if group and not obj.group:  # items of a typed list may omit their apiVersion
            obj.group = group
        bucket.append(obj)


def compact_managed_fields(entries: Any) -> list[dict[str, Any]]:
    """Keep who changed an object, how and when (evidence of imperative edits). For an ``Update`` of the object
    itself (not a subresource) by anything but Kubernetes' own controllers, also the leaf paths of the fields it
    owns, at most ``MAX_FIELD_PATHS`` (``fieldsTruncated`` counts the rest): field names and list keys, never a
    value. Idempotent."""
    if not isinstance(entries, list):
        return []
    out: list[dict[str, Any]] = []
    for e in entries:
        if type(e) is not dict:
            continue
        entry: dict[str, Any] = {}
        for k in _ENTRY_KEYS:
            v = e.get(k)
            if v and type(v) is str:
                entry[k] = v
        if entry.get("operation") == "Update" and "subresource" not in entry \
                and entry.get("manager") not in _SYSTEM_MANAGERS:
            if "fieldsV1" in e:
                paths, more = _cached_field_paths(e.get("fieldsV1"))
            else:  # compacted already
                kept = e.get("fields")
                paths = [p for p in kept if isinstance(p, str)][:MAX_FIELD_PATHS] if isinstance(kept, list) else []
                more = e["fieldsTruncated"] if type(e.get("fieldsTruncated")) is int else 0
            if paths:
                entry["fields"] = paths
            if more > 0:
                entry["fieldsTruncated"] = more
        out.append(entry)
    return out


_PLAIN_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _segment(key: str) -> str | None:
    """One ``fieldsV1`` key as a path segment: ``f:name`` → ``.name`` (``["a.b/c"]`` when not a plain name),
    ``k:{"name":"app"}`` → ``[{"name":"app"}]``, ``i:3`` → ``[3]``, a set member ``v:...`` → ``[*]``."""
    prefix, _, rest = key.partition(":")
    if prefix == "f":
        return f".{rest}" if _PLAIN_FIELD.fullmatch(rest) else f"[{orjson.dumps(rest).decode()}]"
    if prefix == "k":
        try:
            return f"[{orjson.dumps(orjson.loads(rest)).decode()}]"
        except orjson.JSONDecodeError:
            return None
    if prefix == "i" and rest.isdigit():
        return f"[{rest}]"
    if prefix == "v":
        return "[*]"  # the member's value is data, not a path
    return None


_PATHS_SEEN: dict[bytes, tuple[list[str], int]] = {}
_PATHS_REMEMBERED = 1024  # sets, each of at most _PATHS_KEY_BYTES: a bounded cache
_PATHS_KEY_BYTES = 16384


def _cached_field_paths(fields: Any) -> tuple[list[str], int]:
    """``field_paths(fields)``, remembered by the set's JSON bytes: the objects of one manager (every Deployment
    a GitOps tool applies) own the same fields, byte for byte."""
    try:
        key = orjson.dumps(fields)
    except orjson.JSONEncodeError:
        return field_paths(fields)
    if len(key) > _PATHS_KEY_BYTES:
        return field_paths(fields)
    hit = _PATHS_SEEN.get(key)
    if hit is None:
        if len(_PATHS_SEEN) >= _PATHS_REMEMBERED:
            _PATHS_SEEN.clear()
        hit = _PATHS_SEEN[key] = field_paths(fields)
    return list(hit[0]), hit[1]


def field_paths(fields: Any, limit: int = MAX_FIELD_PATHS) -> tuple[list[str], int]:
    """The leaf paths of a managedFields ``fieldsV1`` set, in order (``spec.template.spec.containers
    [{"name":"app"}].image``): at most ``limit``, and how many more there are."""
    found: dict[str, None] = {}
    stack: list[tuple[Any, str]] = [(fields, "")]
    while stack:
        node, path = stack.pop()
        children = [(k, v) for k, v in node.items() if k != "."] if isinstance(node, dict) else []
        if not children:
            if path:
                found[path.removeprefix(".")] = None
            continue
        for key, value in reversed(children):
            seg = _segment(str(key))
            if seg is not None:
                stack.append((value, path + seg))
    paths = list(found)
    return [sys.intern(p) for p in paths[:limit]], max(len(paths) - limit, 0)  # shared by objects alike


def load_bundle(path: Path, limits: Limits | None = None) -> tuple[ClusterSource, RegistrySnapshot | None]:
    """Load a bundle from a directory or archive; raise InputError on anything malformed or over ``limits``
    (default: ``Limits.from_env()``)."""
    limits = limits or Limits.from_env()
    if not path.exists():
        raise InputError(f"{path}: bundle not found -- create one with 'kubeshape snapshot -o {path.name}'")
    if path.is_dir():
        if not (path / MANIFEST).is_file() and not (path / "nodes.json").is_file():
            nested = [p for p in path.iterdir() if p.is_dir() and (p / MANIFEST).is_file()]
            if len(nested) == 1:
                path = nested[0]
            else:
                raise InputError(f"{path}: not a kubeshape bundle or 'kubectl cluster-info dump' directory "
                                 f"(no {MANIFEST} or nodes.json)")
        reader: BundleReader = DirReader(path, limits)
    elif not path.is_file():
        raise InputError(f"{path}: not a directory or a regular file -- pass a bundle directory or .tar.gz")
    elif path.name.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")) or tarfile.is_tarfile(path):
        reader = TarReader(path, limits)
    else:
        raise InputError(f"{path}: not a directory or .tar.gz bundle")
    with paused():
        cluster, registry = _BundleLoader(path, limits).load(reader.members())
    cluster.notes.extend(reader.notes)
    return cluster, registry


_BOMS = ((b"\xef\xbb\xbf", ""), (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))
_FIX = "fix the file or re-create the bundle with 'kubeshape snapshot'"


class _BundleLoader:
    def __init__(self, path: Path, limits: Limits) -> None:
        self.path = path
        self.cluster = ClusterSource(name=path.name)
        self.registry: RegistrySnapshot | None = None
        self.manifest: dict[str, Any] | None = None
        self.is_dump = False
        self._wrap = limits.json_pad
        self._max_depth = limits.max_json_depth

    def _json(self, name: str, padded: bytes | bytearray) -> Any:
        """Parse a member the reader padded with ``self._wrap`` brackets: orjson's own limit on nesting
        (1024) then enforces ours (``max_json_depth``) in the same single pass."""
        data = memoryview(padded)[self._wrap:len(padded) - self._wrap]
        for bom, encoding in _BOMS:
            if data[:len(bom)] == bom:
                if encoding:
                    raise InputError(f"{self.path}: {name}: JSON encoded as {encoding} -- save it as UTF-8")
                padded = b"".join((b"[" * self._wrap, data[len(bom):], b"]" * self._wrap))
        try:
            doc = orjson.loads(padded)
            for _ in range(self._wrap):  # each level holds exactly the one value, else the file was not JSON
                if type(doc) is not list or len(doc) != 1:
                    raise orjson.JSONDecodeError("not a single JSON document", "", 0)
                doc = doc[0]
            return doc
        except orjson.JSONDecodeError as exc:
            if "depth" in str(exc) or "recursion" in str(exc):
                raise InputError(f"{self.path}: {name}: JSON nested deeper than {self._max_depth} levels -- "
                                 "not Kubernetes data; raise KUBESHAPE_BUNDLE_MAX_JSON_DEPTH (or "
                                 "limits.bundle_max_json_depth in kubeshape.yaml) if it is genuine") \
                    from None
            try:  # parse unpadded for a message whose line and column match the file
                orjson.loads(data)
            except orjson.JSONDecodeError as plain:
                exc = plain
            raise InputError(f"{self.path}: {name}: invalid JSON ({exc}) -- the bundle is truncated or "
                             "corrupt; re-create it with 'kubeshape snapshot'") from None

    def _check(self, name: str, value: Any, shape: Shape, prefix: str = "") -> None:
        """Raise a one-line InputError naming the file and the JSON path unless ``value`` has ``shape``."""
        try:
            check(value, shape)
        except ShapeMismatch as err:
            raise InputError(f"{self.path}: {name}: {err.where(prefix)}: {err.describe()} -- {_FIX}") from None

    def load(self, members: Iterator[tuple[str, bytes | bytearray]]) -> tuple[ClusterSource, RegistrySnapshot | None]:
        pending: list[tuple[str, bytes | bytearray]] = []
        prefix: str | None = None
        seen_any = False
        for name, data in members:
            seen_any = True
            if prefix is None:
                if name == MANIFEST or name.endswith("/" + MANIFEST):
                    prefix = name[: -len(MANIFEST)]
                    self._manifest(name, self._json(name, data))
                    for n, d in pending:
                        self._member(n[len(prefix):] if n.startswith(prefix) else n, d)
                    pending = []
                    continue
                pending.append((name, data))
                continue
            self._member(name[len(prefix):] if name.startswith(prefix) else name, data)
        if not seen_any:
            raise InputError(f"{self.path}: empty bundle")
        if prefix is None:
            # No manifest: accept 'kubectl cluster-info dump --output-directory' layouts.
            names = [n for n, _ in pending]
            root = next((n[: -len("nodes.json")] for n in names if n.endswith("nodes.json")
                         and n.count("/") <= 1), None)
            if root is None:
                raise InputError(f"{self.path}: not a kubeshape bundle ({MANIFEST} missing) nor a "
                                 "'kubectl cluster-info dump' (nodes.json missing)")
            self.is_dump = True
            for n, d in pending:
                self._member(n[len(root):] if n.startswith(root) else n, d)
        if self.cluster.collected_at is None:
            self.cluster.collected_at = self._latest_timestamp()
        return self.cluster, self.registry

    def _manifest(self, name: str, m: Any) -> None:
        self._check(name, m, shapes.MANIFEST)
        if m.get("kind") != "Bundle":
            raise InputError(f"{self.path}: {MANIFEST} is not a kubeshape bundle manifest (its kind is not 'Bundle')")
        version = m.get("formatVersion")
        if version is None:
            raise InputError(f"{self.path}: {name}: formatVersion: missing -- {_FIX}")
        if version > FORMAT_VERSION:
            raise InputError(f"{self.path}: bundle format {version!r} is newer than this kubeshape "
                             f"understands ({FORMAT_VERSION}) -- upgrade kubeshape")
        self.manifest = m
        cluster = m.get("cluster") or {}
        self.cluster.name = str(cluster.get("name") or self.cluster.name)
        self.cluster.server_version = str(cluster.get("serverVersion") or "")
        self.cluster.collected_at = parse_time(m.get("collectedAt"))
        self.cluster.notes = [str(n) for n in m.get("notes") or []]
        for spot in m.get("blindSpots") or []:
            self.cluster.blind_spots.append((str(spot.get("kind")), str(spot.get("reason"))))

    def _member(self, name: str, data: bytes | bytearray) -> None:
        parts = name.split("/")
        if name == "registry.json":
            self.registry = parse_registry_snapshot(self._json(name, data), f"{self.path}: {name}")
        elif parts[0] == "logs" and len(parts) == 4 and self.manifest is not None:
            self._log(parts[1], parts[2], parts[3].removesuffix(".log"), data)
        elif self.manifest is None and len(parts) == 3 and parts[2] == "logs.txt":
            self._log(parts[0], parts[1], "", data)
        elif name.endswith(".json") and (parts[0] == "resources" or self.manifest is None):
            self._list(name, self._json(name, data))

    def _log(self, ns: str, pod: str, container: str, data: bytes | bytearray) -> None:
        """``data`` is already a bounded tail (see ``Limits.max_log_bytes``)."""
        lines = data.decode("utf-8", errors="replace").splitlines()
        self.cluster.logs[(ns, pod, container)] = [redact_text(line) for line in lines[-LOG_TAIL_LINES:]]

    def _list(self, name: str, doc: Any) -> None:
        if not isinstance(doc, dict) or "items" not in doc:
            if self.manifest is None:
                return  # cluster-info dump may hold other JSON
            got = "an object without 'items'" if isinstance(doc, dict) else describe(type(doc))
            raise InputError(f"{self.path}: {name}: expected a Kubernetes List (an object with 'items'), "
                             f"got {got} -- {_FIX}")
        self._check(name, doc, shapes.LIST)
        items = doc["items"]
        if not isinstance(items, list):
            raise InputError(f"{self.path}: {name}: items: expected a list, got {describe(type(items))} -- {_FIX}")
        stem = PurePosixPath(name).name.removesuffix(".json")
        kind = list_kind(doc, stem)
        if not kind:
            raise InputError(f"{self.path}: {name}: cannot tell the kind of this list -- name it like "
                             "'deployments.apps.json' or set its 'kind' to e.g. 'DeploymentList'")
        group = list_group(doc, stem)
        shape = shapes.item_shape(cluster_key(kind, group))
        ok = compiled(shape)

        def check_item(n: int, item: Any) -> None:
            if not ok(item):
                self._check(name, item, shape, f"items[{n}]")

        add_list(self.cluster, kind, items, check_item, group=group)

    def _latest_timestamp(self) -> Any:
        latest = None
        for ev in self.cluster.events:
            t = parse_time(ev.get("lastTimestamp") or ev.get("eventTime") or
                           (ev.get("metadata") or {}).get("creationTimestamp"))
            if t and (latest is None or t > latest):
                latest = t
        return latest


def parse_registry_snapshot(doc: Any, where: str) -> RegistrySnapshot:
    """Parse the ``registry.json`` snapshot (see docs/bundle-format.md)."""
    if not isinstance(doc, dict) or doc.get("registries") is None:
        raise InputError(f"{where}: expected {{\"registries\": [...]}}")
    try:
        check(doc, shapes.REGISTRY)
    except ShapeMismatch as err:
        raise InputError(f"{where}: {err.where()}: {err.describe()} -- fix the snapshot or take it again "
                         "('kubeshape snapshot --registry ...')") from None
    snap = RegistrySnapshot(collected_at=parse_time(doc.get("collectedAt")))
    for reg in doc["registries"]:
        host = str(reg.get("host") or "")
        if not host:
            raise InputError(f"{where}: a registry entry has no 'host'")
        for repo in reg.get("repositories") or []:
            r = RegistryRepo(host=host, name=str(repo.get("name")))
            for t in repo.get("tags") or []:
                layers = [(str(layer.get("digest")), int(layer.get("size") or 0)) for layer in t.get("layers") or []]
                r.tags[str(t.get("tag"))] = TagInfo(
                    tag=str(t.get("tag")), digest=t.get("digest"), size=t.get("size"),
                    created=parse_time(t.get("created")), revision=t.get("revision"), layers=layers)
            snap.repos[(host, r.name)] = r
    return snap
