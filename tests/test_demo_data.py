"""The bundled demo holds the facts of the 2025-11-17 homelab incident, in the shape real sources produce."""

from __future__ import annotations

import base64
import filecmp
import importlib.util
import itertools
import json
from pathlib import Path
from types import ModuleType

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
GENERATOR = Path(__file__).resolve().parents[1] / "scripts" / "make_demo_bundle.py"
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


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_demo_bundle", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the bundle is what the generator writes, and looks like the API ------------------------------------------


def test_bundle_is_up_to_date_with_its_generator(tmp_path: Path) -> None:
    _load_generator().write_bundle(tmp_path / "bundle")
    cmp = filecmp.dircmp(BUNDLE, tmp_path / "bundle")
    stack, differing = [cmp], []
    while stack:
        c = stack.pop()
        differing += [f"{c.left}/{n}" for n in c.left_only + c.right_only + c.diff_files]
        stack.extend(c.subdirs.values())
    assert not differing, "demo bundle is stale; run python scripts/make_demo_bundle.py"


def test_manifest_and_lists_have_the_api_shape(cluster: ClusterSource) -> None:
    manifest = json.loads((BUNDLE / "kubeshape-bundle.json").read_text())
    assert manifest["kind"] == "Bundle" and manifest["formatVersion"] == 1
    assert manifest["collectedAt"] == "2025-11-17T10:00:00Z"
    assert manifest["cluster"] == {"name": "homelab", "serverVersion": "v1.31.4+k3s1"}
    assert cluster.name == "homelab" and cluster.server_version == "v1.31.4+k3s1"
    assert cluster.collected_at is not None and cluster.collected_at.isoformat() == "2025-11-17T10:00:00+00:00"
    for kind, rel in manifest["resources"].items():
        doc = json.loads((BUNDLE / rel).read_text())
        assert doc["kind"] == f"{kind}List" and doc["apiVersion"] and doc["metadata"]["resourceVersion"]
        for item in doc["items"]:
            assert "kind" not in item and "apiVersion" not in item, rel  # typed lists omit them
            assert item["metadata"]["uid"] and item["metadata"]["resourceVersion"], rel
            assert item["metadata"]["creationTimestamp"], rel


def test_workloads_are_joined_by_owner_uid(inv: Inventory) -> None:
    deploy = next(o for o in inv.live("Deployment") if o.name == "family-assistant-backend")
    pods = sorted(p.name for p in inv.pods_of(deploy))
    assert pods == ["family-assistant-backend-7748c945ff-n2kb7", "family-assistant-backend-7fccb9956b-9g4wb"]
    for pod in inv.live("Pod"):
        assert inv.top_workload(pod).kind in ("Deployment", "StatefulSet", "DaemonSet"), pod.name


# -- Problem 1: image registry chaos -----------------------------------------------------------------------


def test_working_pod_runs_the_registry_image_on_pesubuntu(cluster: ClusterSource) -> None:
    pod = live(cluster, "Pod", "family-assistant-backend-7748c945ff-n2kb7")
    assert pod.spec["nodeName"] == "pesubuntu" and pod.status["phase"] == "Running"
    assert pod.spec["containers"][0]["image"] == f"{REGISTRY}/family-assistant:me-fixed"
    assert pod.status["containerStatuses"][0]["imageID"].startswith(f"{REGISTRY}/family-assistant@sha256:")


def test_failed_pod_backs_off_on_asuna_461_times_over_105_minutes(inv: Inventory, cluster: ClusterSource) -> None:
    pod = live(cluster, "Pod", "family-assistant-backend-7fccb9956b-9g4wb")
    assert pod.spec["nodeName"] == "asuna"
    waiting = pod.status["containerStatuses"][0]["state"]["waiting"]
    assert waiting == {"reason": "ImagePullBackOff",
                       "message": 'Back-off pulling image "family-assistant:phase2-mcp-logging-fix"'}
    (backoff,) = inv.events_for("Pod", "homelab", pod.name, "BackOff")
    assert event_count(backoff) == 461
    last, first = parse_time(backoff["lastTimestamp"]), parse_time(backoff["firstTimestamp"])
    assert last is not None and first is not None and (last - first).total_seconds() == 105 * 60
    reasons = {e["reason"] for e in inv.events_for("Pod", "homelab", pod.name)}
    assert {"Scheduled", "Pulling", "Failed", "BackOff"} <= reasons
    failed = [e["message"] for e in inv.events_for("Pod", "homelab", pod.name, "Failed")]
    assert any("pull access denied, repository does not exist" in m and
               '"docker.io/library/family-assistant:phase2-mcp-logging-fix"' in m for m in failed)


def test_the_local_image_exists_only_on_pesubuntu(cluster: ClusterSource) -> None:
    names = {n.name: {name for img in n.status["images"] for name in img["names"]} for n in cluster.objects["Node"]}
    local = "docker.io/library/family-assistant:phase2-mcp-logging-fix"
    assert local in names["pesubuntu"] and local not in names["asuna"]
    assert not any("family-assistant" in name for name in names["asuna"])
    assert any(name.startswith(f"{REGISTRY}/family-assistant@sha256:") for name in names["pesubuntu"])
    for node in cluster.objects["Node"]:
        ready = [c for c in node.status["conditions"] if c["type"] == "Ready"]
        assert ready[0]["status"] == "True"
        sizes = [img["sizeBytes"] for img in node.status["images"]]
        assert sizes == sorted(sizes, reverse=True) and len(sizes) <= 50  # as kubelet reports them


def test_live_deployment_uses_the_unqualified_never_pushed_image(cluster: ClusterSource) -> None:
    deploy = live(cluster, "Deployment", "family-assistant-backend")
    c = deploy.spec["template"]["spec"]["containers"][0]
    assert c["image"] == "family-assistant:phase2-mcp-logging-fix" and c["imagePullPolicy"] == "IfNotPresent"
    assert not parse(c["image"]).qualified
    assert deploy.spec["replicas"] == 2
    env = {e["name"]: e for e in c["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector.homelab.svc.cluster.local:4317"
    assert "OTEL_SERVICE_NAME" in env and "secretKeyRef" in env["DATABASE_PASSWORD"]["valueFrom"]
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
    assert revisions == list(range(53, 63))
    assert all("kubernetes.io/change-cause" not in rs.annotations for rs in [*rss, deploy])


# -- Problems 3 and 4: pipeline and tags -------------------------------------------------------------------


def test_registry_has_45_meaningless_tags_and_not_the_deployed_one(registry: RegistrySnapshot) -> None:
    repo = registry.repo(REGISTRY, "family-assistant")
    assert repo is not None
    assert len(repo.tags) == 45
    assert "phase2-mcp-logging-fix" not in repo.tags
    assert set(repo.tags) >= SEED_TAGS
    assert repo.tags["latest"].digest == repo.tags["fixed-final"].digest
    assert all(t.revision is None and t.created is not None for t in repo.tags.values())
    total = sum(t.size or 0 for t in repo.tags.values())
    unique_layers = {d: s for t in repo.tags.values() for d, s in t.layers}
    assert 60e9 < total < 70e9  # "45 tags × 1.5GB"
    assert sum(unique_layers.values()) < total / 5  # layers are shared
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
    pod = live(cluster, "Pod", "homelab-dashboard-5946d57cdf-b7kwx")
    (status,) = pod.status["containerStatuses"]
    assert status["restartCount"] == 598
    assert status["lastState"]["terminated"]["exitCode"] == 137 and "running" in status["state"]
    assert pod.metadata["creationTimestamp"] == "2025-11-12T09:57:01Z"  # five days before collection
    container = pod.spec["containers"][0]
    assert container["image"] == "ghcr.io/pesuga/homelab/homelab-dashboard:latest"
    assert container["imagePullPolicy"] == "Always"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/api/status" and container[probe]["httpGet"]["port"] == 8080
    unhealthy = {e["message"]: event_count(e) for e in inv.events_for("Pod", "homelab", pod.name, "Unhealthy")}
    assert unhealthy.keys() == {"Liveness probe failed: HTTP probe failed with statuscode: 429",
                                "Readiness probe failed: HTTP probe failed with statuscode: 429"}
    assert min(unhealthy.values()) > 500
    assert inv.events_for("Pod", "homelab", pod.name, "Killing")[0]["message"] == (
        "Container homelab-dashboard failed liveness probe, will be restarted")
    backoff = inv.events_for("Pod", "homelab", pod.name, "BackOff")
    assert backoff[0]["message"].startswith("Back-off restarting failed container")


def test_working_pod_log_floods_with_otel_export_errors(cluster: ClusterSource) -> None:
    lines = cluster.logs[("homelab", "family-assistant-backend-7748c945ff-n2kb7", "family-assistant")]
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
        assert 100 <= event_count(ev) < 1000


def test_otel_collector_is_missing_and_nothing_is_scraped(inv: Inventory, cluster: ClusterSource) -> None:
    services = inv.service_names["homelab"]
    assert "otel-collector" not in services
    assert {"family-assistant-backend", "homelab-dashboard", "prometheus", "loki"} <= services
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        assert inv.listed(kind) and inv.live(kind) == []
    healthy = {o.name: o for o in [*cluster.objects["Deployment"], *cluster.objects["StatefulSet"]]}
    for name in ("prometheus", "loki"):
        image = healthy[name].spec["template"]["spec"]["containers"][0]["image"]
        ref = parse(image)
        assert ref.qualified and ref.tag and not ref.mutable, image
        assert healthy[name].status["readyReplicas"] == 1


# -- secrets ---------------------------------------------------------------------------------------------------


def test_secret_values_never_reach_the_loaded_data(cluster: ClusterSource, registry: RegistrySnapshot,
                                                   repo: RepoSource) -> None:
    raw = (BUNDLE / "resources" / "secrets.json").read_text()
    encoded = base64.b64encode(CANARY.encode()).decode()
    assert encoded in raw  # the bundle on disk carries it, as a careless collector would
    secret = live(cluster, "Secret", "family-assistant-secrets")
    assert secret.raw["dataKeys"] == ["DATABASE_PASSWORD", "TELEGRAM_BOT_TOKEN"]
    assert "data" not in secret.raw
    for text in (repr(cluster), repr(registry), repr(repo),
                 json.dumps([o.raw for objs in cluster.objects.values() for o in objs]),
                 json.dumps(cluster.events), json.dumps(list(cluster.logs.values()))):
        assert CANARY not in text and encoded not in text
