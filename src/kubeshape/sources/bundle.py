"""Load a cluster bundle: kubeshape's own format (directory or .tar.gz) or ``kubectl cluster-info dump``.

See docs/bundle-format.md for the format. Secret values are dropped as they are read.
"""

from __future__ import annotations

import abc
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from kubeshape.errors import InputError
from kubeshape.inventory import ClusterSource, K8sObject, RegistryRepo, RegistrySnapshot, TagInfo
from kubeshape.redact import redact_object
from kubeshape.sources._gc import bulk_load
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
}


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


def add_list(cluster: ClusterSource, kind: str, items: list[Any]) -> None:
    """Add the items of one listed kind: Secrets lose their values, secret-looking env values are redacted."""
    cluster.listed_kinds.add(kind)
    if kind == "Event":
        cluster.events.extend(i for i in items if isinstance(i, dict))
        return
    bucket = cluster.objects.setdefault(kind, [])
    for item in items:
        if not isinstance(item, dict):
            continue
        if kind == "Secret":
            item = strip_secret(item)
        else:
            redact_object(item)
        meta = item.get("metadata")
        if isinstance(meta, dict) and "managedFields" in meta:
            meta["managedFields"] = compact_managed_fields(meta["managedFields"])
        bucket.append(K8sObject.from_raw(item, "cluster", kind=kind))


def compact_managed_fields(entries: Any) -> list[dict[str, Any]]:
    """Keep who changed an object and when (evidence of imperative edits), drop the field sets."""
    if not isinstance(entries, list):
        return []
    return [{k: e.get(k) for k in ("manager", "operation", "time", "subresource") if e.get(k)}
            for e in entries if isinstance(e, dict)]


class _Reader(abc.ABC):
    """Uniform access to bundle members in a directory or a tar archive."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @abc.abstractmethod
    def members(self) -> Iterator[tuple[str, bytes]]:
        """Yield (posix path inside the bundle, bytes) for every regular file."""


class _DirReader(_Reader):
    def members(self) -> Iterator[tuple[str, bytes]]:
        for p in sorted(self.path.rglob("*")):
            if p.is_file():
                yield p.relative_to(self.path).as_posix(), p.read_bytes()


class _TarReader(_Reader):
    def members(self) -> Iterator[tuple[str, bytes]]:
        try:
            with tarfile.open(self.path, "r:*") as tar:
                for m in tar:
                    if not m.isfile():
                        continue
                    f = tar.extractfile(m)
                    if f is None:
                        continue
                    name = m.name
                    parts = PurePosixPath(name).parts
                    if parts and parts[0] in (".", ""):
                        parts = parts[1:]
                    yield "/".join(parts), f.read()
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise InputError(f"{self.path}: truncated or corrupt bundle archive ({exc}) -- "
                             "re-create it with 'kubeshape snapshot'") from None


def _strip_root(names: list[str]) -> str:
    """Bundles may be packed with a single top directory; find the prefix holding the manifest."""
    for n in names:
        if n == MANIFEST or n.endswith("/" + MANIFEST):
            return n[: -len(MANIFEST)]
    return ""


def load_bundle(path: Path) -> tuple[ClusterSource, RegistrySnapshot | None]:
    """Load a bundle from a directory or archive; raise InputError on anything malformed."""
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
        reader: _Reader = _DirReader(path)
    elif tarfile.is_tarfile(path) or path.name.endswith((".tar.gz", ".tgz", ".tar")):
        reader = _TarReader(path)
    else:
        raise InputError(f"{path}: not a directory or .tar.gz bundle")
    with bulk_load():
        return _BundleLoader(path).load(reader.members())


class _BundleLoader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.cluster = ClusterSource(name=path.name)
        self.registry: RegistrySnapshot | None = None
        self.manifest: dict[str, Any] | None = None
        self.is_dump = False

    def _json(self, name: str, data: bytes) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"{self.path}: {name}: invalid JSON ({exc}) -- the bundle is truncated or "
                             "corrupt; re-create it with 'kubeshape snapshot'") from None

    def load(self, members: Iterator[tuple[str, bytes]]) -> tuple[ClusterSource, RegistrySnapshot | None]:
        pending: list[tuple[str, bytes]] = []
        prefix: str | None = None
        seen_any = False
        for name, data in members:
            seen_any = True
            if prefix is None:
                if name == MANIFEST or name.endswith("/" + MANIFEST):
                    prefix = name[: -len(MANIFEST)]
                    self._manifest(self._json(name, data))
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

    def _manifest(self, m: Any) -> None:
        if not isinstance(m, dict) or m.get("kind") != "Bundle":
            raise InputError(f"{self.path}: {MANIFEST} is not a kubeshape bundle manifest")
        version = m.get("formatVersion")
        if not isinstance(version, int) or version > FORMAT_VERSION:
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

    def _member(self, name: str, data: bytes) -> None:
        parts = name.split("/")
        if name == "registry.json":
            self.registry = parse_registry_snapshot(self._json(name, data), f"{self.path}: registry.json")
        elif parts[0] == "logs" and len(parts) == 4 and self.manifest is not None:
            self._log(parts[1], parts[2], parts[3].removesuffix(".log"), data)
        elif self.manifest is None and len(parts) == 3 and parts[2] == "logs.txt":
            self._log(parts[0], parts[1], "", data)
        elif name.endswith(".json") and (parts[0] == "resources" or self.manifest is None):
            self._list(name, self._json(name, data))

    def _log(self, ns: str, pod: str, container: str, data: bytes) -> None:
        lines = data.decode("utf-8", errors="replace").splitlines()
        self.cluster.logs[(ns, pod, container)] = lines[-LOG_TAIL_LINES:]

    def _list(self, name: str, doc: Any) -> None:
        if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
            if self.manifest is None:
                return  # cluster-info dump may hold other JSON
            raise InputError(f"{self.path}: {name}: expected a Kubernetes List with 'items'")
        kind = list_kind(doc, PurePosixPath(name).name.removesuffix(".json"))
        if not kind:
            raise InputError(f"{self.path}: {name}: cannot tell the kind of this list -- name it like "
                             "'deployments.apps.json' or set its 'kind' to e.g. 'DeploymentList'")
        add_list(self.cluster, kind, doc["items"])

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
    if not isinstance(doc, dict) or not isinstance(doc.get("registries"), list):
        raise InputError(f"{where}: expected {{\"registries\": [...]}}")
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
