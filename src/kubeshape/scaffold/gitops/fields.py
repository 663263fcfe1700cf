"""What the API server adds to an object, so that it never lands in a manifest.

Three sets, by field path (list items as ``*``; a workload's pod spec as ``POD``, containers of every sort as
``containers``):

* cluster-only fields: status, server metadata, the rollout revisions and kubectl's last-applied annotation --
  removed from files that carry them (exports of ``kubectl get -o yaml``) and never written;
* fields the cluster assigns (a Service's cluster IPs and node ports, finalizers, owner references, labels Flux
  adds): kept when a file sets them, never copied from the cluster;
* defaults: the value the API server fills in when a manifest leaves a field out -- not copied either.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from kubeshape.inventory import pod_template_path

Path = tuple[str | int, ...]

SERVER_METADATA = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink",
                   "deletionTimestamp", "deletionGracePeriodSeconds")
CLUSTER_ANNOTATIONS = ("deployment.kubernetes.io/revision", "kubectl.kubernetes.io/last-applied-configuration",
                       "deprecated.daemonset.template.generation")
ASSIGNED_LABEL_PREFIXES = ("kustomize.toolkit.fluxcd.io/", "helm.toolkit.fluxcd.io/")
ASSIGNED_ANNOTATIONS = ("kubectl.kubernetes.io/restartedAt", "pv.kubernetes.io/", "volume.kubernetes.io/",
                        "volume.beta.kubernetes.io/", "autoscaling.alpha.kubernetes.io/")
_CONTAINERS = ("containers", "initContainers", "ephemeralContainers")
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def generic(kind: str, path: Path) -> str:
    """``path`` as the tables below name it: ``POD.containers.*.image`` for a Deployment's container image."""
    parts = [str(p) if isinstance(p, str) else "*" for p in path]
    pod = pod_template_path(kind)
    if pod is not None and kind != "Pod":
        prefix = pod.split(".")
        if parts[:len(prefix)] == prefix:
            parts = ["POD", *parts[len(prefix):]]
    return ".".join("containers" if p in _CONTAINERS else p for p in parts)


def is_cluster_only(path: str) -> bool:
    """Fields that describe a running object, never what to run (see the module docstring)."""
    if path in ("status", "spec.volumeClaimTemplates.*.status"):
        return True
    head, _, last = path.rpartition(".")
    if (head == "metadata" or head.endswith(".metadata")) and last in SERVER_METADATA:
        return True
    return path.startswith("metadata.annotations.") and \
        path.removeprefix("metadata.annotations.") in CLUSTER_ANNOTATIONS


def is_assigned(kind: str, path: str) -> bool:
    """Fields the cluster fills in for itself: kept when a file sets them, never copied into one."""
    if path in ("metadata.ownerReferences", "metadata.finalizers", "metadata.namespace"):
        return True
    if path.startswith("metadata.labels.") and path.removeprefix("metadata.labels.").startswith(
            ASSIGNED_LABEL_PREFIXES):
        return True
    if ".annotations." in f".{path}" and path.rpartition("annotations.")[2].startswith(ASSIGNED_ANNOTATIONS):
        return True
    if kind == "Service" and path in ("spec.clusterIP", "spec.clusterIPs", "spec.ipFamilies", "spec.ipFamilyPolicy",
                                      "spec.healthCheckNodePort", "spec.ports.*.nodePort"):
        return True
    return kind == "PersistentVolumeClaim" and path in ("spec.volumeName", "spec.storageClassName")


def _pull_policy(container: dict[str, Any]) -> str:
    image = str(container.get("image") or "")
    last = image.rsplit("/", 1)[-1]
    if "@" in image:
        return "IfNotPresent"
    tag = last.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


# Default value per generic path; a callable gets the mapping that holds the field.
DEFAULTS: dict[str, Any] = {
    "POD.restartPolicy": "Always",
    "POD.terminationGracePeriodSeconds": 30,
    "POD.dnsPolicy": "ClusterFirst",
    "POD.schedulerName": "default-scheduler",
    "POD.securityContext": {},
    "POD.enableServiceLinks": True,
    "POD.serviceAccount": lambda parent: parent.get("serviceAccountName"),
    "POD.containers.*.terminationMessagePath": "/dev/termination-log",
    "POD.containers.*.terminationMessagePolicy": "File",
    "POD.containers.*.imagePullPolicy": _pull_policy,
    "POD.containers.*.resources": {},
    "POD.containers.*.ports.*.protocol": "TCP",
    "POD.containers.*.env.*.valueFrom.fieldRef.apiVersion": "v1",
    "POD.volumes.*.configMap.defaultMode": 420,
    "POD.volumes.*.secret.defaultMode": 420,
    "POD.volumes.*.projected.defaultMode": 420,
    "POD.volumes.*.downwardAPI.defaultMode": 420,
    "POD.volumes.*.hostPath.type": "",
    "spec.revisionHistoryLimit": 10,
    "spec.progressDeadlineSeconds": 600,
    "spec.strategy.type": "RollingUpdate",
    "spec.strategy.rollingUpdate.maxSurge": "25%",
    "spec.strategy.rollingUpdate.maxUnavailable": "25%",
    "spec.podManagementPolicy": "OrderedReady",
    "spec.updateStrategy.type": "RollingUpdate",
    "spec.updateStrategy.rollingUpdate.partition": 0,
    "spec.persistentVolumeClaimRetentionPolicy.whenDeleted": "Retain",
    "spec.persistentVolumeClaimRetentionPolicy.whenScaled": "Retain",
    "spec.volumeClaimTemplates.*.apiVersion": "v1",
    "spec.volumeClaimTemplates.*.kind": "PersistentVolumeClaim",
    "spec.volumeClaimTemplates.*.spec.volumeMode": "Filesystem",
    "spec.concurrencyPolicy": "Allow",
    "spec.suspend": False,
    "spec.successfulJobsHistoryLimit": 3,
    "spec.failedJobsHistoryLimit": 1,
    "spec.jobTemplate.metadata.creationTimestamp": None,
    "spec.template.metadata.creationTimestamp": None,
}
for _probe in _PROBES:
    DEFAULTS.update({f"POD.containers.*.{_probe}.timeoutSeconds": 1, f"POD.containers.*.{_probe}.periodSeconds": 10,
                     f"POD.containers.*.{_probe}.successThreshold": 1,
                     f"POD.containers.*.{_probe}.failureThreshold": 3,
                     f"POD.containers.*.{_probe}.httpGet.scheme": "HTTP"})
_KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "Deployment": {"spec.replicas": 1},
    "StatefulSet": {"spec.replicas": 1},
    "DaemonSet": {"spec.updateStrategy.rollingUpdate.maxUnavailable": 1,
                  "spec.updateStrategy.rollingUpdate.maxSurge": 0},
    "Service": {"spec.type": "ClusterIP", "spec.sessionAffinity": "None", "spec.internalTrafficPolicy": "Cluster",
                "spec.externalTrafficPolicy": "Cluster", "spec.allocateLoadBalancerNodePorts": True,
                "spec.ports.*.protocol": "TCP", "spec.ports.*.targetPort": lambda port: port.get("port")},
    "PersistentVolumeClaim": {"spec.volumeMode": "Filesystem"},
}
_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}


def default_of(kind: str, path: str, parent: dict[str, Any]) -> tuple[bool, Any]:
    """(True, value) when the API server defaults ``path`` of a ``kind`` to ``value`` (given the mapping
    ``parent`` that holds the field), else (False, None)."""
    table = _KIND_DEFAULTS.get(kind, {})
    if path in table:
        value = table[path]
    elif kind in _WORKLOADS and path in DEFAULTS:
        value = DEFAULTS[path]
    else:
        return False, None
    return True, value(parent) if callable(value) else value


def strip_defaults(kind: str, path: Path, value: Any, parent: dict[str, Any] | None = None) -> Any:
    """``value`` (found at ``path`` in a live object) without cluster-only, assigned and defaulted fields;
    ``DROP`` when nothing of it is left to write. List items are never dropped, only cleaned."""
    where = generic(kind, path)
    if is_cluster_only(where) or is_assigned(kind, where):
        return DROP
    known, default = default_of(kind, where, parent or {})
    if known and equal(where, value, default):
        return DROP
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            kept = strip_defaults(kind, (*path, str(k)), v, value)
            if kept is not DROP:
                out[k] = kept
        return DROP if value and not out else out
    if isinstance(value, list):
        items = []
        for i, v in enumerate(value):
            kept = strip_defaults(kind, (*path, i), v, None)
            items.append(kept if kept is not DROP else {} if isinstance(v, dict) else v)
        return items
    return value


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Any = _Drop()

_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
_FACTORS = {None: Decimal(1), "m": Decimal("0.001"), "k": Decimal(10) ** 3, "M": Decimal(10) ** 6,
            "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
            "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
            "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60}


def quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity (``500m``, ``1Gi``, ``0.5``) as a number; None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    m = _QUANTITY.match(str(value).strip())
    if m is None:
        return None
    try:
        return Decimal(m.group(1)) * _FACTORS[m.group(2)]
    except InvalidOperation:
        return None


def _is_quantity_path(path: str) -> bool:
    return (".resources.limits." in f".{path}" or ".resources.requests." in f".{path}"
            or (path.endswith((".averageValue", ".value")) and ".metrics." in path))


def equal(path: str, a: Any, b: Any) -> bool:
    """Values equal as the API server sees them (quantities by amount: ``0.5`` is ``500m``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(f"{path}.{k}", a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(f"{path}.*", x, y) for x, y in zip(a, b, strict=True))
    if _is_quantity_path(path):
        qa, qb = quantity(a), quantity(b)
        if qa is not None and qb is not None:
            return qa == qb
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return str(a) == str(b)
    return a is None and b is None
