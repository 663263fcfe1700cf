"""The shapes (see ``validate``) of what a bundle provides, limited to the fields rules and metrics read.

A key ending in ``!`` may be absent but not null (code reads it as ``.get(key, {})``).
Keep these in step with the rules: a field a rule traverses (``.get`` on it, iterates it, compares it as a
number) belongs here, so a wrongly typed bundle fails at load time with a path instead of inside a rule.
"""

from __future__ import annotations

from kubeshape.sources.validate import MapOf, Shape

STRINGS = MapOf(str)
NUMBER = (int, float)

# managedFields, timestamps read through parse_time, and fields only compared for equality are not checked:
# no type makes them fail, and every check costs (20k pods).
META: Shape = {
    "name": str, "generateName": str, "namespace": str, "labels": STRINGS, "annotations": STRINGS,
    "ownerReferences": [{"kind": str, "name": str, "uid": str, "controller": bool}],
}
CONDITIONS: Shape = [dict]
# matchLabels/matchExpressions, or (rules accept both everywhere) a plain label map like a Service's selector.
SELECTOR: Shape = MapOf(str, {"matchLabels": STRINGS,
                              "matchExpressions": [{"key": str, "operator": str, "values": [str]}]})
PROBE: Shape = {"httpGet": dict, "periodSeconds": int, "failureThreshold": int, "timeoutSeconds": int}
CONTAINER: Shape = {
    "name": str, "image": str, "imagePullPolicy": str, "env": [dict], "ports": [dict], "resources": {"limits": dict},
    "livenessProbe": PROBE, "readinessProbe": PROBE, "startupProbe": PROBE,
}
POD_SPEC: Shape = {"containers": [CONTAINER], "initContainers": [CONTAINER], "nodeName": str,
                   "volumes": [{"configMap": dict}]}
TEMPLATE: Shape = {"metadata": {"labels": STRINGS, "annotations": STRINGS}, "spec": POD_SPEC}
STATE: Shape = {"waiting": {"reason": str, "message": str}, "running": dict,
                "terminated": {"exitCode": int, "reason": str, "message": str}}
CONTAINER_STATUS: Shape = {"name": str, "image": str, "imageID": str, "restartCount": int, "state": STATE,
                           "lastState": STATE}
REPLICAS_STATUS: Shape = {"replicas": int, "updatedReplicas": int, "readyReplicas": int,
                          "availableReplicas": int, "unavailableReplicas": int, "observedGeneration": int,
                          "conditions": CONDITIONS}
WORKLOAD_SPEC: Shape = {"replicas": int, "revisionHistoryLimit": int, "selector": SELECTOR,
                        "template": TEMPLATE}
WORKLOAD_META: Shape = {**META, "generation": int}
OBJECT_REF: Shape = {"kind": str, "name": str, "namespace": str, "fieldPath": str}
MONITOR_SPEC: Shape = {"selector": SELECTOR, "namespaceSelector": {"matchNames": [str], "any": bool},
                       "endpoints": [dict], "podMetricsEndpoints": [dict]}


def _kind(**fields: Shape) -> Shape:
    """An object of a kind: metadata, and objects for ``spec``/``status`` unless refined (the list gives the
    kind; ``apiVersion`` is only read through ``str``)."""
    return {"metadata": META, "spec": dict, "status": dict, **fields}


_WORKLOAD = _kind(metadata=WORKLOAD_META, spec=WORKLOAD_SPEC, status=REPLICAS_STATUS)
EVENT: Shape = {
    "metadata!": {"name": str, "namespace": str}, "involvedObject": OBJECT_REF, "regarding": OBJECT_REF,
    "count": int, "series": {"count": int}, "reason": str, "message": str, "note": str, "type": str,
    "firstTimestamp": str, "lastTimestamp": str, "eventTime": str, "source": {"component": str},
    "reportingComponent": str,
}
# Flux (keyed ``Kind.group``, as ClusterSource keys them): what KS206-KS211 read.
FLUX_CONDITIONS: Shape = [{"type": str, "status": str, "reason": str, "message": str, "lastTransitionTime": str}]
FLUX_REF: Shape = {"kind": str, "name": str, "namespace": str}
FLUX_ARTIFACT: Shape = {"revision": str, "lastUpdateTime": str, "url": str}
_FLUX_SOURCE_STATUS: Shape = {"conditions": FLUX_CONDITIONS, "artifact": FLUX_ARTIFACT, "observedGeneration": int}
_FLUX_SPEC: Shape = {"suspend": bool, "interval": str, "url": str}
_FLUX_DEPENDS: Shape = [{"name": str, "namespace": str}]
FLUX_SHAPES: dict[str, Shape] = {
    "GitRepository.source.toolkit.fluxcd.io": _kind(
        spec={**_FLUX_SPEC, "ref": {"branch": str, "tag": str, "semver": str, "name": str, "commit": str}},
        status=_FLUX_SOURCE_STATUS),
    "OCIRepository.source.toolkit.fluxcd.io": _kind(
        spec={**_FLUX_SPEC, "ref": {"tag": str, "semver": str, "digest": str}}, status=_FLUX_SOURCE_STATUS),
    "HelmRepository.source.toolkit.fluxcd.io": _kind(spec={**_FLUX_SPEC, "type": str}, status=_FLUX_SOURCE_STATUS),
    "Kustomization.kustomize.toolkit.fluxcd.io": _kind(
        metadata=WORKLOAD_META,
        spec={"suspend": bool, "interval": str, "path": str, "targetNamespace": str, "sourceRef": FLUX_REF,
              "dependsOn": _FLUX_DEPENDS},
        status={"conditions": FLUX_CONDITIONS, "lastAppliedRevision": str, "lastAttemptedRevision": str,
                "observedGeneration": int, "inventory": {"entries": [{"id": str, "v": str}]}}),
    "HelmRelease.helm.toolkit.fluxcd.io": _kind(
        metadata=WORKLOAD_META,
        spec={"suspend": bool, "interval": str, "releaseName": str, "targetNamespace": str, "dependsOn": _FLUX_DEPENDS,
              "chart": {"spec": {"chart": str, "version": str, "sourceRef": FLUX_REF}}, "chartRef": FLUX_REF},
        status={"conditions": FLUX_CONDITIONS, "lastAttemptedRevision": str, "observedGeneration": int}),
}
ITEM_SHAPES: dict[str, Shape] = {
    "Pod": _kind(spec=POD_SPEC, status={"conditions": CONDITIONS, "containerStatuses": [CONTAINER_STATUS],
                                         "initContainerStatuses": [CONTAINER_STATUS]}),
    "Deployment": _WORKLOAD, "StatefulSet": _WORKLOAD, "DaemonSet": _WORKLOAD, "ReplicaSet": _WORKLOAD,
    "ReplicationController": _WORKLOAD, "Job": _WORKLOAD,
    "CronJob": _kind(spec={"jobTemplate": {"metadata": META, "spec": WORKLOAD_SPEC}}),
    "Node": _kind(status={"conditions": CONDITIONS, "images": [{"names": [str], "sizeBytes": int}]}),
    "Service": _kind(spec={"type": str, "selector": STRINGS,
                           "ports": [{"name": str, "port": int, "targetPort": (int, str), "protocol": str}]}),
    "PodDisruptionBudget": _kind(spec={"selector": SELECTOR}),
    "HorizontalPodAutoscaler": _kind(spec={"scaleTargetRef": {"kind": str, "name": str, "apiVersion": str}},
                                     status={"conditions": CONDITIONS}),
    "ConfigMap": _kind(data=STRINGS),
    "Secret": _kind(data=dict, stringData=dict, type=str),
    "ServiceMonitor": _kind(spec=MONITOR_SPEC), "PodMonitor": _kind(spec=MONITOR_SPEC),
    "PrometheusRule": _kind(spec={"groups": [{"name": str, "rules": [{"alert": str, "record": str,
                                                                       "expr": (str, int), "labels": STRINGS}]}]}),
    "Prometheus": _kind(spec={"serviceMonitorSelector": SELECTOR, "ruleSelector": SELECTOR,
                              "podMonitorSelector": SELECTOR}),
    "Event": EVENT,
    **FLUX_SHAPES,
}
ANY_ITEM: Shape = _kind(spec={"targetNamespace": str, "destination": {"namespace": str}})

LIST: Shape = {"kind": str, "apiVersion": str, "items": list}
MANIFEST: Shape = {
    "apiVersion": str, "kind": str, "formatVersion": int, "collectedAt": str, "generator": str,
    # "namespaces" is informational (a list, or "all" as snapshots write it): nothing reads it
    "cluster": {"name": str, "serverVersion": str}, "resources": MapOf(str),
    "blindSpots": [{"kind": str, "reason": str}], "notes": [str],
}
REGISTRY: Shape = {
    "collectedAt": str,
    "registries": [{"host": str, "repositories": [{"name": str, "tags": [{
        "tag": str, "digest": str, "size": int, "created": str, "revision": str,
        "layers": [{"digest": str, "size": int}]}]}]}],
}


def item_shape(kind: str) -> Shape:
    """The shape of one listed object of ``kind`` (as ClusterSource keys it: ``Kind.group`` for Flux's)."""
    return ITEM_SHAPES.get(kind, ANY_ITEM)
