"""Fuzz the bundle loader and the rules with realistic bundles whose sub-trees hypothesis retypes.

The property: ``load_bundle`` either raises ``InputError`` with a one-line message, or the bundle loads and
``analyse`` reports no ``KS000`` (a rule that raised means a shape slipped through validation). Anything else
that escapes is a failure. In-process and derandomized, so CI runs the same >= 10,000 examples every time.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kubeshape.analysis import analyse
from kubeshape.config import Config
from kubeshape.errors import InputError
from kubeshape.inventory import Inventory
from kubeshape.sources.bundle import load_bundle

NS = "shop"
NOW = "2025-11-17T10:00:00Z"
IMAGE = "registry.shop.internal:5000/shop/api:1.4.2"
DIGEST = "sha256:" + "a" * 64
LABELS = {"app.kubernetes.io/name": "api"}
PROBE = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10, "failureThreshold": 3,
         "timeoutSeconds": 1}
CONTAINER: dict[str, Any] = {
    "name": "api", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
    "env": [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector.shop.svc:4317"},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "api", "key": "pw"}}}],
    "ports": [{"name": "metrics", "containerPort": 8080}],
    "resources": {"requests": {"cpu": "50m"}, "limits": {"memory": "256Mi"}},
    "livenessProbe": PROBE, "readinessProbe": PROBE,
}
TEMPLATE: dict[str, Any] = {"metadata": {"labels": LABELS, "annotations": {"prometheus.io/scrape": "true"}},
            "spec": {"containers": [CONTAINER], "initContainers": [{"name": "init", "image": "busybox"}],
                     "volumes": [{"name": "cfg", "configMap": {"name": "prometheus"}}]}}


def _meta(name: str, uid: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "namespace": NS, "uid": uid, "creationTimestamp": "2025-11-12T10:00:00Z", **more}


def _list(kind: str, *items: Any) -> dict[str, Any]:
    return {"kind": f"{kind}List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": list(items)}


def _owner(kind: str, name: str, uid: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": True}]


def _replicaset(rev: int, replicas: int) -> dict[str, Any]:
    return {"metadata": _meta(f"api-{rev}", f"rs-{rev}", labels=LABELS, generation=1,
                              annotations={"deployment.kubernetes.io/revision": str(rev)},
                              ownerReferences=_owner("Deployment", "api", "dep-api")),
            "spec": {"replicas": replicas, "selector": {"matchLabels": LABELS}, "template": TEMPLATE},
            "status": {"replicas": replicas, "readyReplicas": 0, "observedGeneration": 1}}


WAITING = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}}
TERMINATED = {"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": "2025-11-17T09:50:00Z",
                             "finishedAt": "2025-11-17T09:55:00Z"}}

# One realistic bundle: a crash-looping, pull-failing Deployment with its ReplicaSets, Pod, Service, HPA, PDB,
# Node, events, monitoring objects and a registry snapshot that knows the image (every rule family has input).
SEED: dict[str, Any] = {
    "kubeshape-bundle.json": {
        "apiVersion": "kubeshape.io/v1", "kind": "Bundle", "formatVersion": 1, "collectedAt": NOW,
        "generator": "kubeshape 0.1.0", "cluster": {"name": "shop", "serverVersion": "v1.31.4+k3s1"},
        "namespaces": [NS], "resources": {"Pod": "resources/pods.json"},
        "blindSpots": [{"kind": "Secret", "reason": "forbidden"}], "notes": ["synthesized"],
    },
    "registry.json": {"collectedAt": NOW, "registries": [{"host": "registry.shop.internal:5000", "repositories": [
        {"name": "shop/api", "tags": [
            {"tag": "1.4.2", "digest": DIGEST, "size": 1000, "created": "2025-11-01T00:00:00Z", "revision": "abc",
             "layers": [{"digest": DIGEST, "size": 900}]},
            {"tag": "latest", "digest": DIGEST, "size": 1000, "created": "2025-11-02T00:00:00Z"}]}]}]},
    "resources/pods.json": _list("Pod", {
        "metadata": _meta("api-2-x7k", "pod-1", labels=LABELS, ownerReferences=_owner("ReplicaSet", "api-2", "rs-2")),
        "spec": {**TEMPLATE["spec"], "nodeName": "node-a"},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                   "containerStatuses": [{"name": "api", "image": IMAGE, "imageID": f"{IMAGE}@{DIGEST}",
                                          "restartCount": 598, "ready": False, "state": WAITING,
                                          "lastState": TERMINATED}],
                   "initContainerStatuses": [{"name": "init", "image": "busybox", "restartCount": 0,
                                              "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}),
    "resources/deployments.apps.json": _list("Deployment", {
        "metadata": _meta("api", "dep-api", labels=LABELS, generation=74,
                          annotations={"deployment.kubernetes.io/revision": "2"}),
        "spec": {"replicas": 1, "revisionHistoryLimit": 10, "selector": {"matchLabels": LABELS},
                 "template": TEMPLATE},
        "status": {"replicas": 1, "unavailableReplicas": 1, "observedGeneration": 74,
                   "conditions": [{"type": "Available", "status": "False"}]}}),
    "resources/replicasets.apps.json": _list("ReplicaSet", _replicaset(1, 0), _replicaset(2, 1)),
    "resources/services.json": _list("Service", {
        "metadata": _meta("api", "svc-api", labels=LABELS),
        "spec": {"type": "ClusterIP", "selector": LABELS,
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}}),
    "resources/horizontalpodautoscalers.autoscaling.json": _list("HorizontalPodAutoscaler", *({
        "metadata": _meta(f"hpa-{target}", f"hpa-{target}"),
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                 "minReplicas": 1, "maxReplicas": 3},
        "status": {"conditions": [{"type": "AbleToScale", "status": "False", "reason": "FailedGetScale"}]}}
        for target in ("api", "gone"))),
    "resources/poddisruptionbudgets.policy.json": _list("PodDisruptionBudget", {
        "metadata": _meta("api", "pdb-api"),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": LABELS, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web"]}]}}}),
    "resources/nodes.json": _list("Node", *({
        "metadata": {"name": node, "uid": node, "labels": {"kubernetes.io/hostname": node}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "images": [{"names": [IMAGE, f"{IMAGE.rsplit(':', 1)[0]}@{DIGEST}"], "sizeBytes": 1000}]
                   if node == "node-a" else []}} for node in ("node-a", "node-b"))),
    "resources/events.json": _list("Event", *({
        "metadata": {"name": f"ev{i}", "namespace": NS},
        "involvedObject": {"kind": kind, "namespace": NS, "name": name, "fieldPath": "spec.containers{api}"},
        "reason": reason, "message": message, "type": "Warning", "count": count,
        "firstTimestamp": "2025-11-17T08:15:00Z", "lastTimestamp": "2025-11-17T10:00:00Z",
        "source": {"component": component}, "reportingComponent": component}
        for i, (kind, name, reason, message, count, component) in enumerate([
            ("Pod", "api-2-x7k", "BackOff", "Back-off restarting failed container api", 461, "kubelet"),
            ("Pod", "api-2-x7k", "Failed", f'Failed to pull image "{IMAGE}": not found', 12, "kubelet"),
            ("Pod", "api-2-x7k", "Unhealthy", "Liveness probe failed: HTTP 500", 30, "kubelet"),
            ("HorizontalPodAutoscaler", "hpa-gone", "FailedGetScale", 'deployments/scale "gone" not found', 99,
             "horizontal-pod-autoscaler"),
        ]))),
    "resources/configmaps.json": _list("ConfigMap", {
        "metadata": _meta("prometheus", "cm-1"),
        "data": {"prometheus.yml": "scrape_configs:\n- job_name: api\n  static_configs:\n"
                                   "  - targets: ['api.shop.svc:80']\n"}}),
    "resources/servicemonitors.monitoring.coreos.com.json": _list("ServiceMonitor", {
        "metadata": _meta("api", "sm-1", labels={"release": "kps"}),
        "spec": {"selector": {"matchLabels": LABELS}, "namespaceSelector": {"matchNames": [NS]},
                 "endpoints": [{"port": "http", "path": "/metrics"}]}}),
    "resources/prometheusrules.monitoring.coreos.com.json": _list("PrometheusRule", {
        "metadata": _meta("alerts", "pr-1"),
        "spec": {"groups": [{"name": "shop", "rules": [
            {"alert": "PodRestartingOften", "expr": "increase(kube_pod_container_status_restarts_total[1h]) > 5",
             "labels": {"severity": "warning"}}]}]}}),
}
LOGS = {"logs/shop/api-2-x7k/api.log": b"connecting to http://otel-collector.shop.svc:4317\nOOM\n"}
SEED_BYTES = {name: json.dumps(doc).encode() for name, doc in SEED.items()}

# Field names rules read: inserted keys and generated objects use them, so a mutation hits a real field often.
FIELDS = sorted({"name", "namespace", "kind", "uid", "image", "images", "names", "labels", "annotations", "count",
                 "series", "regarding", "involvedObject", "reason", "message", "status", "spec", "metadata",
                 "items", "restartCount", "state", "lastState", "waiting", "terminated", "exitCode", "containers",
                 "initContainers", "env", "value", "valueFrom", "ports", "port", "targetPort", "selector",
                 "matchLabels", "matchExpressions", "values", "operator", "key", "replicas", "ownerReferences",
                 "controller", "scaleTargetRef", "conditions", "type", "host", "tags", "tag", "digest", "size",
                 "layers", "registries", "repositories", "cluster", "formatVersion", "collectedAt", "generation",
                 "lastTimestamp", "firstTimestamp", "eventTime", "nodeName", "httpGet", "periodSeconds", "data",
                 "template", "revisionHistoryLimit", "observedGeneration", "endpoints", "groups", "rules", "expr",
                 "fieldPath", "source", "component", "containerStatuses", "imageID", "sizeBytes", "blindSpots",
                 "notes", "namespaceSelector", "matchNames", "configMap", "volumes", "created", "minAvailable"})
STRINGS = ["", "0", "-1", "1.5", "true", "null", "Deployment", "Pod", "api", NS, IMAGE, "busybox", "a:b@sha256:x",
           "http://api:80", "{}", "[]", NOW, "2025-11-17T10:00:00", "0001-01-01T00:00:00+14:00",
           "9999-12-31T23:59:59-14:00", "not a time", "spec.containers{api}", "CrashLoopBackOff", "ErrImagePull"]
HUGE = [2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**63, 2**64, -(2**63) - 1, 10**30, -(10**30), 10**400]
SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 3), st.sampled_from(HUGE),
    st.floats(allow_nan=False, allow_infinity=False, width=32), st.sampled_from([0.0, -0.0, 1.0, 1e308, -1e-300]),
    st.sampled_from(STRINGS), st.text(max_size=6),
)
KEYS = st.one_of(st.sampled_from(FIELDS), st.text(max_size=4))
VALUES: st.SearchStrategy[Any] = st.one_of(
    SCALARS, st.builds(list), st.builds(dict),  # fresh objects: later edits may add to them
    st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, min_size=1, max_size=3),
                                                  st.dictionaries(KEYS, inner, min_size=1, max_size=3)),
                 max_leaves=5),
)

Path_ = tuple[str | int, ...]


def _paths(node: Any, at: Path_ = ()) -> Iterator[Path_]:
    """Every sub-tree of ``node``, the root first."""
    yield at
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*at, i))


def _containers(node: Any, at: Path_ = ()) -> Iterator[Path_]:
    """Every object or list in ``node`` (where a key can be added or removed)."""
    if isinstance(node, dict | list):
        yield at
        for k, v in (node.items() if isinstance(node, dict) else enumerate(node)):
            yield from _containers(v, (*at, k))


def _get(doc: Any, path: Path_) -> Any:
    for part in path:
        doc = doc[part]
    return doc


@st.composite
def mutated(draw: st.DrawFn, names: tuple[str, ...]) -> dict[str, Any]:
    """Decoded documents (``name -> JSON``) of the files in ``names`` that differ from the seed, after 1-3 edits:
    a sub-tree replaced by a value of any JSON type (most often), a key added, or a key or item removed."""
    docs: dict[str, Any] = {}
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(names))
        doc = docs[name] if name in docs else orjson.loads(SEED_BYTES[name])
        op = draw(st.sampled_from(["replace", "replace", "replace", "add", "remove"]))
        if op == "replace":
            path = draw(st.sampled_from(list(_paths(doc))))
            value = draw(VALUES)
            if path:
                _get(doc, path[:-1])[path[-1]] = value
            else:
                doc = value
        elif places := list(_containers(doc)):  # none when the whole file was replaced by a scalar
            node = _get(doc, draw(st.sampled_from(places)))
            if op == "add":
                if isinstance(node, dict):
                    node[draw(KEYS)] = draw(VALUES)
                else:
                    node.insert(draw(st.integers(0, len(node))), draw(VALUES))
            elif node:
                key = draw(st.sampled_from(list(node) if isinstance(node, dict) else range(len(node))))
                del node[key]
        docs[name] = doc
    return docs


@pytest.fixture(scope="module")
def bundle_dir() -> Iterator[Path]:
    """One directory reused by every example (in tmpfs when there is one): only the edited files change."""
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="kubeshape-fuzz-", dir=shm if shm.is_dir() else None))
    for name, data in {**SEED_BYTES, **LOGS}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    yield root
    shutil.rmtree(root)


def check_bundle(root: Path, docs: dict[str, Any]) -> str:
    """Write the edited files, check the property, put the seed back; say how the bundle fared."""
    try:
        for name, doc in docs.items():
            (root / name).write_bytes(json.dumps(doc).encode())  # json: integers beyond 64 bits too
        try:
            cluster, registry = load_bundle(root)
        except InputError as err:
            message = str(err)
            assert len(message.splitlines()) == 1 and message.strip(), message
            return "rejected by the loader"
        _, result = analyse(Inventory(cluster=cluster, registry=registry), Config())
        internal = [f.message for f in result.findings if f.rule == "KS000"]
        assert not internal, internal
        return "loaded and analysed"
    finally:
        for name in docs:
            (root / name).write_bytes(SEED_BYTES[name])


# Each test edits a few files of the full bundle (the others stay intact, so the joins between objects still
# happen); the shares add up to 10,000 examples.
GROUPS: dict[str, tuple[tuple[str, ...], int]] = {
    "pods": (("resources/pods.json",), 2500),
    "workloads": (("resources/deployments.apps.json", "resources/replicasets.apps.json"), 1500),
    "services-hpa-pdb": (("resources/services.json", "resources/horizontalpodautoscalers.autoscaling.json",
                          "resources/poddisruptionbudgets.policy.json"), 1500),
    "nodes-events": (("resources/nodes.json", "resources/events.json"), 1500),
    "monitoring": (("resources/configmaps.json", "resources/servicemonitors.monitoring.coreos.com.json",
                    "resources/prometheusrules.monitoring.coreos.com.json"), 1000),
    "manifest-registry": (("kubeshape-bundle.json", "registry.json"), 1000),
    "anywhere": (tuple(SEED), 1000),
}


def _fuzz_test(names: tuple[str, ...], examples: int) -> Any:
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(docs=mutated(names))
    def test(bundle_dir: Path, docs: dict[str, Any]) -> None:
        event(check_bundle(bundle_dir, docs))  # see --hypothesis-show-statistics
    return test


test_fuzz_pods = _fuzz_test(*GROUPS["pods"])
test_fuzz_workloads = _fuzz_test(*GROUPS["workloads"])
test_fuzz_services_hpa_pdb = _fuzz_test(*GROUPS["services-hpa-pdb"])
test_fuzz_nodes_events = _fuzz_test(*GROUPS["nodes-events"])
test_fuzz_monitoring = _fuzz_test(*GROUPS["monitoring"])
test_fuzz_manifest_registry = _fuzz_test(*GROUPS["manifest-registry"])
test_fuzz_anywhere = _fuzz_test(*GROUPS["anywhere"])


def test_examples_add_up() -> None:
    assert sum(n for _, n in GROUPS.values()) >= 10_000
    assert set(SEED) == {name for names, _ in GROUPS.values() for name in names}


def test_seed_bundle_loads_and_every_rule_runs(bundle_dir: Path) -> None:
    cluster, registry = load_bundle(bundle_dir)
    assert registry is not None and sum(len(v) for v in cluster.objects.values()) == 13
    _, result = analyse(Inventory(cluster=cluster, registry=registry), Config())
    assert not [f for f in result.findings if f.rule == "KS000"]
    assert result.findings  # the seed is unhealthy on purpose: rules get past their early exits


def _edit(name: str, path: Path_, value: Any) -> dict[str, Any]:
    doc = orjson.loads(SEED_BYTES[name])
    _get(doc, path[:-1])[path[-1]] = value
    return {name: doc}


PDBS, RSS, PODS = ("resources/poddisruptionbudgets.policy.json", "resources/replicasets.apps.json",
                   "resources/pods.json")
REVISION = ("items", 0, "metadata", "annotations", "deployment.kubernetes.io/revision")
# What the fuzzer found: (case, edited files, a piece of the one-line InputError or None when the bundle loads).
REGRESSIONS: list[tuple[str, dict[str, Any], str | None]] = [
    ("PDB selector a plain label map with a list value (KS603 hashed it)",
     _edit(PDBS, ("items", 0, "spec", "selector"), {"annotations": [None]}),
     "items[0].spec.selector.annotations: expected a string, got a list"),
    ("PDB selector a plain label map of strings (still accepted)",
     _edit(PDBS, ("items", 0, "spec", "selector"), {"app.kubernetes.io/name": "api"}), None),
    ("ReplicaSet revision annotation '1.5' (KS205 int() on it)", _edit(RSS, REVISION, "1.5"), None),
    ("ReplicaSet revision annotation a superscript digit", _edit(RSS, REVISION, "\u00b2"), None),
    ("ReplicaSet revision annotation of 5000 digits", _edit(RSS, REVISION, "9" * 5000), None),
    ("a label key with a line break and a null value (split the error message)",
     _edit(PODS, ("items", 0, "metadata", "labels"), {"a\nb\u2028": None}),
     'items[0].metadata.labels["a\\nb\\u2028"]: expected a string, got null'),
]


@pytest.mark.parametrize(("case", "docs", "error"), REGRESSIONS, ids=[c[0] for c in REGRESSIONS])
def test_fuzzer_finds(bundle_dir: Path, case: str, docs: dict[str, Any], error: str | None) -> None:
    check_bundle(bundle_dir, docs)  # no KS000, a one-line error if any
    for name, doc in docs.items():
        (bundle_dir / name).write_bytes(json.dumps(doc).encode())
    try:
        if error is None:
            load_bundle(bundle_dir)
        else:
            with pytest.raises(InputError, match=re.escape(error)):
                load_bundle(bundle_dir)
    finally:
        for name in docs:
            (bundle_dir / name).write_bytes(SEED_BYTES[name])
