"""KS6xx: orphaned HPAs, stale ReplicaSets, PDBs and Services that select nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import check, deployment, doctor, inventory


def hpa(name: str, target: str, ns: str = "homelab", kind: str = "Deployment",
        able: bool = True) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
                 "minReplicas": 1, "maxReplicas": 3},
    }
    if not able:
        obj["status"] = {"conditions": [{
            "type": "AbleToScale", "status": "False", "reason": "FailedGetScale",
            "message": f'the HPA controller was unable to get the target\'s current scale: deployments.apps '
                       f'"{target}" not found'}]}
    return obj


def event(kind: str, name: str, reason: str, count: int, last: str, message: str,
          ns: str = "homelab") -> dict[str, Any]:
    return {"kind": "Event", "type": "Warning", "reason": reason, "count": count, "lastTimestamp": last,
            "message": message, "metadata": {"name": f"{name}.1", "namespace": ns},
            "involvedObject": {"kind": kind, "name": name, "namespace": ns}}


def pod(name: str, labels: dict[str, str], ns: str = "homelab") -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}


HPA_FILE = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: whisper-hpa
  namespace: homelab
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: whisper
  maxReplicas: 3
"""

# -- KS601 -----------------------------------------------------------------------


def whisper_events() -> list[dict[str, Any]]:
    msg = 'deployments.apps "whisper" not found'
    return [
        event("HorizontalPodAutoscaler", "whisper-hpa", "FailedGetScale", 300, "2025-11-17T08:00:00Z", msg),
        event("HorizontalPodAutoscaler", "whisper-hpa", "FailedGetScale", 112, "2025-11-17T09:57:22Z", msg),
        # same name, other namespace / other kind: must not be counted
        event("HorizontalPodAutoscaler", "whisper-hpa", "FailedGetScale", 999, "2025-11-17T09:59:00Z", msg,
              ns="staging"),
        event("Deployment", "whisper-hpa", "FailedGetScale", 999, "2025-11-17T09:59:00Z", msg),
    ]


def test_ks601_live_hpa_with_missing_deployment_counts_failed_get_scale_events() -> None:
    objs = [hpa("whisper-hpa", "whisper", able=False), deployment("family-assistant-backend", "x:1")]
    [f] = check("KS601", inventory(objects=objs, events=whisper_events()))
    text = "\n".join(f.evidence)
    assert f.severity.label == "error"
    assert f.message == "HorizontalPodAutoscaler homelab/whisper-hpa scales Deployment/whisper, which does not exist"
    assert "no Deployment whisper in namespace homelab (live)" in text
    assert ('412 FailedGetScale warnings, last at 2025-11-17T09:57:22Z: deployments.apps "whisper" not found'
            in text)
    assert "condition AbleToScale=False, reason FailedGetScale" in text
    assert f.fix.startswith("kubectl delete hpa whisper-hpa -n homelab")


def test_ks601_file_and_live_merge_into_one_error_located_in_the_file(tmp_path: Path) -> None:
    objs = [hpa("whisper-hpa", "whisper"), deployment("family-assistant-backend", "x:1")]
    inv = inventory(tmp_path, files={"infra/whisper-hpa.yaml": HPA_FILE}, objects=objs, events=whisper_events())
    [f] = [f for f in doctor(inv) if f.rule == "KS601"]
    assert f.severity.label == "error"
    assert (f.file, f.line) == ("infra/whisper-hpa.yaml", 10)
    assert "repo" in f.source and "cluster" in f.source
    assert "the HPA is defined in infra/whisper-hpa.yaml" in f.evidence
    assert "remove the HorizontalPodAutoscaler whisper-hpa document from infra/whisper-hpa.yaml" in f.fix


def test_ks601_repo_lint_is_a_warning_and_suggests_applying_a_defined_target(tmp_path: Path) -> None:
    [f] = check("KS601", inventory(tmp_path, files={"hpa.yaml": HPA_FILE}))
    assert f.severity.label == "warning"
    assert "no Deployment whisper in namespace homelab is defined in the repo (scaleTargetRef at hpa.yaml:10)" in (
        f.evidence[0])
    # the target is in the repo but was never applied: offer to apply it
    objs = [hpa("whisper-hpa", "whisper"), deployment("other", "x:1")]
    target = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: whisper, namespace: homelab}\n"
    [live] = check("KS601", inventory(tmp_path, files={"hpa.yaml": HPA_FILE, "whisper.yaml": target},
                                      objects=objs))
    assert "kubectl apply -f whisper.yaml" in live.fix


def test_ks601_existing_or_unlisted_targets_pass(tmp_path: Path) -> None:
    objs = [hpa("backend-hpa", "family-assistant-backend"), deployment("family-assistant-backend", "x:1"),
            hpa("web-hpa", "web", kind="StatefulSet")]  # StatefulSets were not listed: cannot tell
    assert check("KS601", inventory(objects=objs)) == []
    target = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: whisper, namespace: homelab}\n"
    assert check("KS601", inventory(tmp_path, files={"hpa.yaml": HPA_FILE, "whisper.yaml": target})) == []


# -- KS602 -----------------------------------------------------------------------


def rs(name: str, revision: int, replicas: int, owner: str | None = "family-assistant-backend",
       ns: str = "homelab", day: int = 1) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "uid": f"uid-rs-{name}",
                            "labels": {"pod-template-hash": name.rsplit("-", 1)[-1]},
                            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                            "creationTimestamp": f"2025-10-{day:02d}T00:00:00Z"}
    if owner:
        meta["ownerReferences"] = [{"kind": "Deployment", "name": owner, "uid": f"uid-{ns}-{owner}",
                                    "controller": True}]
    return {"kind": "ReplicaSet", "metadata": meta, "spec": {"replicas": replicas},
            "status": {"replicas": replicas}}


def backend(revision: int) -> dict[str, Any]:
    dep = deployment("family-assistant-backend", "family-assistant:me-fixed")
    dep["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": str(revision)}
    return dep


def test_ks602_lists_exact_replicasets_beyond_the_newest_three() -> None:
    sets = [rs(f"family-assistant-backend-r{n}", n, 0, day=n - 43) for n in range(44, 61)]
    sets += [rs("family-assistant-backend-r61", 61, 1, day=18), rs("family-assistant-backend-r62", 62, 1, day=19)]
    [f] = check("KS602", inventory(objects=[backend(62), *sets]))
    text = "\n".join(f.evidence)
    assert "17 old ReplicaSets with 0 replicas; kubeshape keeps 3" in text
    assert "revisions: 44-60; current revision 62" in text
    assert "oldest: family-assistant-backend-r44 (revision 44) created 2025-10-01T00:00:00Z (47d10h ago)" in text
    assert "revisionHistoryLimit is not set (defaults to 10)" in text
    assert ("kubectl patch deployment family-assistant-backend -n homelab -p "
            "'{\"spec\":{\"revisionHistoryLimit\":3}}'") in f.fix
    stale = " ".join(f"family-assistant-backend-r{n}" for n in range(57, 43, -1))
    assert f"kubectl delete rs {stale} -n homelab" in f.fix
    for kept in ("r58", "r59", "r60", "r61", "r62"):
        assert f"family-assistant-backend-{kept} " not in f.fix


def test_ks602_orphaned_zero_replica_replicasets() -> None:
    objs = [rs("whisper-6d8f9c7b5", 3, 0, owner=None, day=2), rs("whisper-5c7d8b9f4", 2, 0, owner=None, day=1),
            rs("busy-7f8d9c6b5", 1, 2, owner=None), backend(1)]
    [f] = check("KS602", inventory(objects=objs))
    assert f.message == "2 ReplicaSets of homelab/whisper have no owner and no replicas"
    assert "no Deployment whisper exists in homelab" in f.evidence
    assert f.fix == "kubectl delete rs whisper-6d8f9c7b5 whisper-5c7d8b9f4 -n homelab"


def test_ks602_short_history_passes() -> None:
    sets = [rs(f"family-assistant-backend-r{n}", n, 0) for n in (1, 2, 3)]
    sets.append(rs("family-assistant-backend-r4", 4, 0))  # current revision, scaled to zero: never counted
    assert check("KS602", inventory(objects=[backend(4), *sets])) == []


# -- KS603 -----------------------------------------------------------------------


def pdb(name: str, selector: dict[str, Any] | None, ns: str = "homelab") -> dict[str, Any]:
    spec: dict[str, Any] = {"minAvailable": 1}
    if selector is not None:
        spec["selector"] = selector
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": ns},
            "spec": spec}


def test_ks603_live_pdb_selecting_no_pod_names_the_closest_workload() -> None:
    objs = [pdb("backend-pdb", {"matchLabels": {"app": "family-assistant"}}),
            deployment("family-assistant-backend", "x:1"), deployment("whisper-server", "y:1"),
            pod("family-assistant-backend-7748c945ff-n2kb7", {"app": "family-assistant-backend"})]
    [f] = check("KS603", inventory(objects=objs))
    text = "\n".join(f.evidence)
    assert "selector app=family-assistant matches none of the 1 pods in namespace homelab" in text
    assert "closest: homelab/Deployment/family-assistant-backend has pod labels app=family-assistant-backend" in text
    assert ("kubectl patch pdb backend-pdb -n homelab --type=json -p '[{\"op\":\"replace\",\"path\":"
            "\"/spec/selector\",\"value\":{\"matchLabels\":{\"app\":\"family-assistant-backend\"}}}]'") in f.fix
    assert "kubectl delete pdb backend-pdb -n homelab" in f.fix


def test_ks603_repo_pdb_without_workload_and_without_selector(tmp_path: Path) -> None:
    files = {"pdb.yaml": "apiVersion: policy/v1\nkind: PodDisruptionBudget\n"
                         "metadata: {name: whisper-pdb, namespace: homelab}\n"
                         "spec:\n  minAvailable: 1\n  selector:\n    matchLabels: {app: whisper}\n---\n"
                         "apiVersion: policy/v1\nkind: PodDisruptionBudget\n"
                         "metadata: {name: empty-pdb, namespace: homelab}\nspec: {minAvailable: 1}\n"}
    found = {f.object.name: f for f in check("KS603", inventory(tmp_path, files=files))}
    assert set(found) == {"whisper-pdb", "empty-pdb"}
    assert found["whisper-pdb"].file == "pdb.yaml"
    assert "no workload in homelab has pod labels like app=whisper" in found["whisper-pdb"].evidence
    assert "kubectl delete pdb whisper-pdb -n homelab and remove it from pdb.yaml" in found["whisper-pdb"].fix
    assert "spec.selector is not set (pdb.yaml:9): it selects no pod" in found["empty-pdb"].evidence


def test_ks603_matching_scaled_to_zero_and_unlisted_pods_pass() -> None:
    objs = [pdb("backend-pdb", {"matchLabels": {"app": "family-assistant-backend"}}),
            pdb("all-pdb", {}),
            pod("family-assistant-backend-1", {"app": "family-assistant-backend", "pod-template-hash": "1"}),
            pdb("whisper-pdb", {"matchExpressions": [{"key": "app", "operator": "In", "values": ["whisper"]}]}),
            deployment("whisper", "whisper:1", replicas=0)]
    assert check("KS603", inventory(objects=objs)) == []
    # pods were not listed: a live PDB cannot be judged
    assert check("KS603", inventory(objects=[pdb("x-pdb", {"matchLabels": {"app": "x"}})])) == []


# -- KS604 -----------------------------------------------------------------------


def service(name: str, selector: dict[str, str] | None, ns: str = "homelab", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ports": [{"port": 8001}], **spec}
    if selector is not None:
        body["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": body}


def test_ks604_live_service_with_mismatched_selector_gets_exact_patch() -> None:
    objs = [service("family-assistant", {"app": "family-assistant"}),
            deployment("family-assistant-backend", "x:1"),
            pod("family-assistant-backend-7748c945ff-n2kb7",
                {"app": "family-assistant-backend", "pod-template-hash": "7748c945ff"})]
    [f] = check("KS604", inventory(objects=objs))
    assert f.message == "Service homelab/family-assistant selects no pods (app=family-assistant)"
    assert "selector app=family-assistant matches none of the 1 pods in namespace homelab" in f.evidence
    assert ("kubectl patch service family-assistant -n homelab --type=json -p '[{\"op\":\"replace\",\"path\":"
            "\"/spec/selector\",\"value\":{\"app\":\"family-assistant-backend\"}}]'") in f.fix


def test_ks604_repo_service_gets_a_yaml_edit_at_its_line(tmp_path: Path) -> None:
    files = {"svc.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: family-assistant, namespace: homelab}\n"
                         "spec:\n  selector:\n    app: family-assistant\n  ports: [{port: 8001}]\n",
             "dep.yaml": "apiVersion: apps/v1\nkind: Deployment\n"
                         "metadata: {name: family-assistant-backend, namespace: homelab}\n"
                         "spec:\n  selector: {matchLabels: {app: family-assistant-backend}}\n"
                         "  template:\n    metadata: {labels: {app: family-assistant-backend, tier: api}}\n"}
    [f] = check("KS604", inventory(tmp_path, files=files))
    assert (f.file, f.line) == ("svc.yaml", 5)
    assert "matches no pod template of the 1 workloads the repo defines in namespace homelab" in f.evidence[0]
    assert ("set in svc.yaml:5:\n\n    spec:\n      selector:\n        app: family-assistant-backend\n\n"
            "then `kubectl apply -f svc.yaml`") in f.fix


def test_ks604_external_name_selectorless_and_matching_services_pass(tmp_path: Path) -> None:
    objs = [service("db", None), service("ext", {"app": "x"}, type="ExternalName", externalName="db.example.com"),
            service("backend", {"app": "family-assistant-backend"}),
            pod("family-assistant-backend-1", {"app": "family-assistant-backend", "pod-template-hash": "1"})]
    assert check("KS604", inventory(objects=objs)) == []
    # a repo Service whose pods run live (deployed from elsewhere) is fine too
    files = {"svc.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: backend, namespace: homelab}\n"
                         "spec:\n  selector: {app: family-assistant-backend}\n"}
    assert check("KS604", inventory(tmp_path, files=files, objects=objs)) == []


# -- KS603/KS604: pods that something unseen may create -----------------------------------------------


def helmrelease(name: str, ns: str = "homelab", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": ns}, "spec": {"chart": {"spec": {"chart": name}}, **spec}}


HELMRELEASE_FILE = """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: whisper, namespace: homelab}
spec:
  chart: {spec: {chart: app-template}}
"""
PDB_FILE = """\
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: whisper-pdb, namespace: homelab}
spec:
  minAvailable: 1
  selector: {matchLabels: {app.kubernetes.io/name: whisper}}
"""


def test_ks603_repo_pdb_next_to_a_helmrelease_is_only_unknown(tmp_path: Path) -> None:
    [f] = check("KS603", inventory(tmp_path, files={"pdb.yaml": PDB_FILE, "hr.yaml": HELMRELEASE_FILE}))
    assert f.severity.label == "info"
    assert "unknown whether it selects pods" in f.message
    assert "HelmRelease homelab/whisper may create pods in homelab that are not visible here" in f.evidence
    assert "kubectl get pods -n homelab -l app.kubernetes.io/name=whisper" in f.fix
    # a HelmRelease of another namespace changes nothing
    other = HELMRELEASE_FILE.replace("namespace: homelab", "namespace: media")
    [f] = check("KS603", inventory(tmp_path, files={"pdb.yaml": PDB_FILE, "hr.yaml": other}))
    assert f.severity.label == "warning"


def test_ks604_live_service_with_a_live_helmrelease_targeting_its_namespace_is_only_unknown() -> None:
    objs = [service("whisper", {"app": "whisper"}), pod("other-1", {"app": "other"}),
            helmrelease("whisper", ns="flux-system", targetNamespace="homelab")]
    [f] = check("KS604", inventory(objects=objs))
    assert f.severity.label == "info" and "unknown" in f.message
    assert "HelmRelease flux-system/whisper may create pods in homelab that are not visible here" in f.evidence


def test_ks604_operator_custom_resource_makes_it_unknown_but_a_service_monitor_does_not(tmp_path: Path) -> None:
    svc = ("apiVersion: v1\nkind: Service\nmetadata: {name: db-rw, namespace: db}\n"
           "spec:\n  selector: {cnpg.io/cluster: db}\n")
    monitor = ("apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: db, namespace: db}\n"
               "spec: {selector: {matchLabels: {app: db}}}\n")
    [f] = check("KS604", inventory(tmp_path, files={"svc.yaml": svc, "monitor.yaml": monitor}))
    assert f.severity.label == "warning"
    cluster = "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {name: db, namespace: db}\nspec: {}\n"
    [f] = check("KS604", inventory(tmp_path, files={"svc.yaml": svc, "monitor.yaml": monitor,
                                                     "cluster.yaml": cluster}))
    assert f.severity.label == "info"
    assert "Cluster db/db may create pods in db that are not visible here" in f.evidence


def test_ks603_static_pods_in_the_namespace_make_it_unknown() -> None:
    mirror = pod("kube-vip-node1", {"component": "kube-vip"}, ns="kube-system")
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "abc123"}
    objs = [pdb("vip-pdb", {"matchLabels": {"app": "kube-vip"}}, ns="kube-system"), mirror]
    [f] = check("KS603", inventory(objects=objs))
    assert f.severity.label == "info"
    assert any("static pod kube-vip-node1" in e for e in f.evidence)
