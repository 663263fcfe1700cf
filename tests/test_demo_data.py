"""The bundled demo is a snapshot of the live homelab scenario (scripts/demo_from_live.py): the facts of the
2025-11-17 homelab incident that a real API server and registry can hold, exactly as they returned them.

What a fresh test bed cannot hold (the seed's pod-name hashes, 105 minutes and 461 pull back-offs, five
days of pod age, gigabyte layers) is not asserted here; the two log tails are synthesized (kwok serves no
logs) and the manifest says so."""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path

import pytest

import kubeshape
from kubeshape.config import load_config
from kubeshape.imageref import parse
from kubeshape.inventory import ClusterSource, Inventory, K8sObject, RegistrySnapshot, RepoSource, event_count
from kubeshape.sources.bundle import load_bundle
from kubeshape.sources.repo import load_repo
from kubeshape.timeutil import parse_time

DEMO = Path(kubeshape.__file__).parent / "demo"
BUNDLE, REPO = DEMO / "bundle", DEMO / "repo"
CANARY = "S3CR3T-CANARY-do-not-leak"
REGISTRY = "100.81.76.55:30500"
SEED_TAGS = {
    "latest", "fixed", "fixed-final", "fixed-v2", "fixed-v3", "fixed-v4", "fixed-v5", "phase2", "phase2-fixed",
    "phase2-mcp-logging", "mcp-working", "mcp-fixed", "mcp-system", "mcp-deps-fixed", "jwt-auth", "jwt-auth-fixed",
    "auth-complete", "complete", "deps-complete", "structure-fixed", "me-fixed", "import-fixed", "pythonpath-fixed",
    "permission-fixed",
}


@pytest.fixture(scope="module")
def bundle() -> tuple[ClusterSource, RegistrySnapshot]:
    cluster, registry = load_bundle(BUNDLE)
    assert registry is not None
    return cluster, registry


@pytest.fixture(scope="module")
def cluster(bundle: tuple[ClusterSource, RegistrySnapshot]) -> ClusterSource:
    return bundle[0]


@pytest.fixture(scope="module")
def registry(bundle: tuple[ClusterSource, RegistrySnapshot]) -> RegistrySnapshot:
    return bundle[1]


@pytest.fixture(scope="module")
def repo() -> RepoSource:
    return load_repo([Path(".")], REPO)


@pytest.fixture(scope="module")
def inv(cluster: ClusterSource, registry: RegistrySnapshot, repo: RepoSource) -> Inventory:
    return Inventory(repo=repo, cluster=cluster, registry=registry)


def live(cluster: ClusterSource, kind: str, name: str, namespace: str = "homelab") -> K8sObject:
    matches = [o for o in cluster.objects.get(kind, []) if o.name == name and o.namespace == namespace]
    assert len(matches) == 1, (kind, namespace, name)
    return matches[0]


def pod_of(inv: Inventory, app: str, node: str) -> K8sObject:
    """The one pod of ``app`` on ``node`` (pod names are the live cluster's, different on every snapshot)."""
    [pod] = [p for p in inv.live("Pod") if p.labels.get("app") == app and p.spec.get("nodeName") == node]
    return pod


# -- the bundle is a live snapshot, and looks like the API ----------------------------------------------------


def test_manifest_is_a_live_snapshot_with_synthesized_logs_noted(cluster: ClusterSource) -> None:
    manifest = json.loads((BUNDLE / "kubeshape-bundle.json").read_text())
    assert manifest["kind"] == "Bundle" and manifest["formatVersion"] == 1
    assert manifest["generator"].startswith("kubeshape ")  # written by kubeshape's own collector
    assert manifest["cluster"]["name"] == "homelab" and manifest["cluster"]["serverVersion"].startswith("v1.")
    assert manifest["namespaces"] == ["homelab", "kube-system"] and manifest["blindSpots"] == []
    assert cluster.name == "homelab" and cluster.server_version == manifest["cluster"]["serverVersion"]
    assert cluster.collected_at is not None and cluster.collected_at == parse_time(manifest["collectedAt"])
    [note] = [n for n in manifest["notes"] if n.startswith("logs:")]
    assert "synthesized" in note and "serves no container logs" in note
    for (ns, pod, container) in cluster.logs:
        assert f"{ns}/{pod}" in note, (pod, container)
    registry_doc = json.loads((BUNDLE / "registry.json").read_text())
    assert [r["host"] for r in registry_doc["registries"]] == [REGISTRY]


def test_manifest_and_lists_have_the_api_shape(cluster: ClusterSource) -> None:
    manifest = json.loads((BUNDLE / "kubeshape-bundle.json").read_text())
    for kind, rel in manifest["resources"].items():
        doc = json.loads((BUNDLE / rel).read_text())
        assert doc["kind"] == f"{kind}List" and doc["apiVersion"] and doc["metadata"]["resourceVersion"]
        for item in doc["items"]:
            assert "kind" not in item and "apiVersion" not in item, rel  # typed lists omit them
            assert item["metadata"]["uid"] and item["metadata"]["resourceVersion"], rel
            assert item["metadata"]["creationTimestamp"], rel
            assert parse_time(item["metadata"]["creationTimestamp"]) <= cluster.collected_at, rel


def test_workloads_are_joined_by_owner_uid(inv: Inventory) -> None:
    deploy = next(o for o in inv.live("Deployment") if o.name == "family-assistant-backend")
    pods = sorted((p.spec["nodeName"], p.name) for p in inv.pods_of(deploy))
    assert [node for node, _ in pods] == ["asuna", "pesubuntu"]
    assert all(name.startswith("family-assistant-backend-") for _, name in pods)
    for pod in inv.live("Pod"):
        assert inv.top_workload(pod).kind in ("Deployment", "StatefulSet", "DaemonSet"), pod.name


# -- Problem 1: image registry chaos -----------------------------------------------------------------------


def test_working_pod_runs_the_registry_image_on_pesubuntu(inv: Inventory) -> None:
    pod = pod_of(inv, "family-assistant-backend", "pesubuntu")
    assert pod.status["phase"] == "Running"
    assert pod.spec["containers"][0]["image"] == f"{REGISTRY}/family-assistant:me-fixed"
    assert "running" in pod.status["containerStatuses"][0]["state"]


def test_failed_pod_backs_off_on_asuna(inv: Inventory) -> None:
    pod = pod_of(inv, "family-assistant-backend", "asuna")
    waiting = pod.status["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ImagePullBackOff"
    assert waiting["message"].startswith('Back-off pulling image "family-assistant:phase2-mcp-logging-fix"')
    (backoff,) = inv.events_for("Pod", "homelab", pod.name, "BackOff")
    assert backoff["message"] == 'Back-off pulling image "family-assistant:phase2-mcp-logging-fix"'
    assert event_count(backoff) >= 1  # a fresh test bed: no 105 minutes of history (the seed's 461)
    assert backoff["source"]["host"] == "asuna"
    reasons = {e["reason"] for e in inv.events_for("Pod", "homelab", pod.name)}
    assert {"Failed", "BackOff"} <= reasons
    failed = [e["message"] for e in inv.events_for("Pod", "homelab", pod.name, "Failed")]
    assert any("pull access denied, repository does not exist" in m and
               '"docker.io/library/family-assistant:phase2-mcp-logging-fix"' in m for m in failed)
    assert "Error: ImagePullBackOff" in failed


def test_the_local_image_exists_only_on_pesubuntu(cluster: ClusterSource) -> None:
    names = {n.name: {name for img in n.status.get("images") or [] for name in img["names"]}
             for n in cluster.objects["Node"]}
    assert set(names) == {"asuna", "pesubuntu"}
    local = "docker.io/library/family-assistant:phase2-mcp-logging-fix"
    assert local in names["pesubuntu"] and local not in names["asuna"]
    assert not any("family-assistant" in name for name in names["asuna"])
    assert f"{REGISTRY}/family-assistant:me-fixed" in names["pesubuntu"]
    for node in cluster.objects["Node"]:
        ready = [c for c in node.status["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True"


def test_live_deployment_uses_the_unqualified_never_pushed_image(cluster: ClusterSource) -> None:
    deploy = live(cluster, "Deployment", "family-assistant-backend")
    c = deploy.spec["template"]["spec"]["containers"][0]
    assert c["image"] == "family-assistant:phase2-mcp-logging-fix" and c["imagePullPolicy"] == "IfNotPresent"
    assert not parse(c["image"]).qualified
    assert deploy.spec["replicas"] == 2
    env = {e["name"]: e for e in c["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector.homelab.svc.cluster.local:4317"
    assert "OTEL_SERVICE_NAME" in env and "secretKeyRef" in env["DATABASE_PASSWORD"]["valueFrom"]
    assert env["ADMIN_TOKEN"]["value"] == "<redacted>"  # redacted by the collector
    progressing = next(c for c in deploy.status["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert deploy.status["availableReplicas"] == 1


# -- Problem 2: manifest fragmentation and imperative history ----------------------------------------------


def test_four_files_define_family_assistant_workloads(repo: RepoSource) -> None:
    files = {o.file for o in repo.objects if o.kind == "Deployment" and o.name.startswith("family-assistant")}
    assert files == {
        "family-assistant-backend.yaml",
        "infrastructure/kubernetes/family-assistant-backend.yaml",
        "infrastructure/kubernetes/family-assistant-enhancement.yaml",
        "infrastructure/kubernetes/family-assistant-enhanced-deployment.yaml",
    }
    backends = {o.file: o for o in repo.objects if o.key == ("Deployment", "homelab", "family-assistant-backend")}
    images = {f: (o.spec["template"]["spec"]["containers"][0]["image"],
                  o.spec["template"]["spec"]["containers"][0]["imagePullPolicy"], o.spec["replicas"])
              for f, o in backends.items()}
    assert images == {
        "infrastructure/kubernetes/family-assistant-backend.yaml": ("family-assistant:fixed", "Never", 2),
        "family-assistant-backend.yaml": (f"{REGISTRY}/family-assistant:fixed-final", "Always", 2),
    }
    assert repo.errors == []


def test_revision_62_with_ten_replicasets_and_no_change_cause(inv: Inventory, cluster: ClusterSource) -> None:
    deploy = live(cluster, "Deployment", "family-assistant-backend")
    assert deploy.annotations["deployment.kubernetes.io/revision"] == "62"
    assert deploy.spec["revisionHistoryLimit"] == 10
    rss = [o for o in inv.children[deploy.uid] if o.kind == "ReplicaSet"]
    revisions = sorted(int(rs.annotations["deployment.kubernetes.io/revision"]) for rs in rss)
    assert revisions == list(range(51, 63))  # 10 old ReplicaSets kept, plus revisions 61 and 62 both running
    assert all("kubernetes.io/change-cause" not in rs.annotations for rs in [*rss, deploy])


# -- Problems 3 and 4: pipeline and tags -------------------------------------------------------------------


def test_registry_has_45_meaningless_tags_and_not_the_deployed_one(registry: RegistrySnapshot) -> None:
    repo = registry.repo(REGISTRY, "family-assistant")
    assert repo is not None
    assert len(repo.tags) == 45
    assert "phase2-mcp-logging-fix" not in repo.tags
    assert set(repo.tags) >= SEED_TAGS
    assert repo.tags["latest"].digest == repo.tags["fixed-final"].digest
    assert all(t.revision is None and t.created is not None and t.size for t in repo.tags.values())
    shared = set.intersection(*({d for d, _ in t.layers} for t in repo.tags.values()))
    assert shared  # every tag is built on one base layer (tiny test images, not the seed's 1.5 GB)
    whisper = registry.repo(REGISTRY, "whisper")
    assert whisper is not None and len(whisper.tags) == 3


def test_ci_builds_only_the_dashboard(repo: RepoSource) -> None:
    assert list(repo.ci_files) == [".github/workflows/homelab-dashboard.yml"]
    workflow = repo.ci_files[".github/workflows/homelab-dashboard.yml"]
    assert "services/homelab-dashboard" in workflow and "family-assistant" not in workflow
    assert "ghcr.io/pesuga/homelab/homelab-dashboard:latest" in workflow
    assert sorted(repo.dockerfiles) == ["services/family-assistant-enhanced/Dockerfile",
                                        "services/homelab-dashboard/Dockerfile"]
    assert "not bootstrapped" in (REPO / "clusters" / "homelab" / "README.md").read_text()


def test_demo_config_validates() -> None:
    cfg, path = load_config(None, REPO)
    assert path is not None and path.name == "kubeshape.yaml"
    assert cfg.registries.private == [REGISTRY]
    assert cfg.registries.allowed == [REGISTRY, "ghcr.io", "docker.io"]


# -- Problem 5: restarts and log floods --------------------------------------------------------------------


def test_dashboard_restarted_598_times_on_429_probes(inv: Inventory, cluster: ClusterSource) -> None:
    [pod] = [p for p in inv.live("Pod") if p.labels.get("app") == "homelab-dashboard"]
    (status,) = pod.status["containerStatuses"]
    assert status["restartCount"] == 598
    assert status["lastState"]["terminated"]["exitCode"] == 137 and "running" in status["state"]
    container = pod.spec["containers"][0]
    assert container["image"] == "ghcr.io/pesuga/homelab/homelab-dashboard:latest"
    assert container["imagePullPolicy"] == "Always"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/api/status" and container[probe]["httpGet"]["port"] == 8080
    unhealthy = {e["message"]: event_count(e) for e in inv.events_for("Pod", "homelab", pod.name, "Unhealthy")}
    assert unhealthy.keys() == {"Liveness probe failed: HTTP probe failed with statuscode: 429",
                                "Readiness probe failed: HTTP probe failed with statuscode: 429"}
    assert min(unhealthy.values()) > 500
    (killing,) = inv.events_for("Pod", "homelab", pod.name, "Killing")
    assert killing["message"] == "Container homelab-dashboard failed liveness probe, will be restarted"
    assert event_count(killing) == 598


def test_working_pod_log_floods_with_otel_export_errors(inv: Inventory, cluster: ClusterSource) -> None:
    pod = pod_of(inv, "family-assistant-backend", "pesubuntu")
    lines = cluster.logs[("homelab", pod.name, "family-assistant")]  # synthesized: see the manifest notes
    assert 250 <= len(lines) <= 350
    marker = ("Transient error StatusCode.UNAVAILABLE encountered while exporting traces to "
              "otel-collector.homelab.svc.cluster.local:4317, retrying in")
    runs = [len(list(group)) for is_otel, group in itertools.groupby(lines, key=lambda ln: marker in ln) if is_otel]
    assert max(runs) >= 50
    assert any(line.endswith("retrying in 8s.") for line in lines)
    assert any(marker not in line for line in lines)


# -- Problems 6 and 7: orphans and observability -----------------------------------------------------------


def test_both_hpas_target_missing_deployments(inv: Inventory, cluster: ClusterSource) -> None:
    assert inv.listed("Deployment")
    hpas = {h.name: h for h in cluster.objects["HorizontalPodAutoscaler"]}
    assert set(hpas) == {"family-assistant-enhanced-hpa", "whisper-hpa"}
    deployments = {o.name for o in cluster.objects["Deployment"]}
    for name, target in (("family-assistant-enhanced-hpa", "family-assistant-enhanced"), ("whisper-hpa", "whisper")):
        ref = hpas[name].spec["scaleTargetRef"]
        assert (ref["kind"], ref["name"]) == ("Deployment", target) and target not in deployments
        able = next(c for c in hpas[name].status["conditions"] if c["type"] == "AbleToScale")
        assert (able["status"], able["reason"]) == ("False", "FailedGetScale")
        (ev,) = inv.events_for("HorizontalPodAutoscaler", "homelab", name, "FailedGetScale")
        assert ev["type"] == "Warning" and ev["message"] == f'deployments.apps "{target}" not found'
        assert ev["source"]["component"] == "horizontal-pod-autoscaler"  # the real HPA controller
        assert event_count(ev) >= 2


def test_otel_collector_is_missing_and_nothing_is_scraped(inv: Inventory, cluster: ClusterSource) -> None:
    services = inv.service_names["homelab"]
    assert "otel-collector" not in services
    assert {"family-assistant-backend", "homelab-dashboard", "prometheus", "loki"} <= services
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):  # the Prometheus Operator is not installed
        assert not inv.listed(kind) and inv.live(kind) == []
        assert f"{kind}: API monitoring.coreos.com/v1 not installed" in cluster.notes
    healthy = {o.name: o for o in [*cluster.objects["Deployment"], *cluster.objects["StatefulSet"]]}
    for name in ("prometheus", "loki"):
        image = healthy[name].spec["template"]["spec"]["containers"][0]["image"]
        ref = parse(image)
        assert ref.qualified and ref.tag and not ref.mutable, image
        assert healthy[name].status["readyReplicas"] == 1


# -- secrets ---------------------------------------------------------------------------------------------------


def test_secret_values_never_reach_the_loaded_data(cluster: ClusterSource, registry: RegistrySnapshot,
                                                   repo: RepoSource) -> None:
    # The scenario's Secret family-assistant-db holds the canary; the collector lists no Secrets and
    # redacts secret-looking env values, so no file of the bundle carries it, plain or base64.
    encoded = base64.b64encode(CANARY.encode()).decode()
    assert not (BUNDLE / "resources" / "secrets.json").exists()
    for path in BUNDLE.rglob("*"):
        if path.is_file():
            raw = path.read_text()
            assert CANARY not in raw and encoded not in raw and "S3CR3T-CANARY" not in raw, path
    for text in (repr(cluster), repr(registry), repr(repo),
                 json.dumps([o.raw for objs in cluster.objects.values() for o in objs]),
                 json.dumps(cluster.events), json.dumps(list(cluster.logs.values()))):
        assert CANARY not in text and encoded not in text
