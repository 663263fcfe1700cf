"""KS1xx: image rules, on repo files and on live objects."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import check, config, deployment, inventory

REGISTRY = {
    "collectedAt": "2025-11-17T10:00:00Z",
    "registries": [{"host": "100.81.76.55:30500", "repositories": [
        {"name": "family-assistant", "tags": [
            {"tag": "me-fixed", "digest": "sha256:" + "a" * 64, "size": 100},
            {"tag": "latest", "digest": "sha256:" + "b" * 64, "size": 100},
            {"tag": "fixed-final", "digest": "sha256:" + "b" * 64, "size": 100},
        ]}]}],
}

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: homelab
spec:
  template:
    spec:
      containers:
      - name: app
        image: {image}
{extra}"""


def repo_inv(tmp_path: Path, image: str, extra: str = "", registry: dict | None = None):  # type: ignore[type-arg]
    return inventory(tmp_path, files={"app.yaml": MANIFEST.format(image=image, extra=extra)}, registry=registry)


def node(name: str, images: list[str]) -> dict:  # type: ignore[type-arg]
    return {"kind": "Node", "metadata": {"name": name},
            "status": {"images": [{"names": [i], "sizeBytes": 1000} for i in images]}}


def test_ks101_unqualified_image_in_private_registry_is_an_error_with_file_line(tmp_path: Path) -> None:
    inv = repo_inv(tmp_path, "family-assistant:phase2-mcp-logging-fix", registry=REGISTRY)
    [f] = check("KS101", inv, config("registries: {private: ['100.81.76.55:30500']}"))
    assert f.severity.label == "error"
    assert (f.file, f.line) == ("app.yaml", 11)
    assert "tag phase2-mcp-logging-fix is NOT in 100.81.76.55:30500/family-assistant" in "\n".join(f.evidence)
    assert "docker push 100.81.76.55:30500/family-assistant:phase2-mcp-logging-fix" in f.fix
    assert "+   image: 100.81.76.55:30500/family-assistant:phase2-mcp-logging-fix" in f.fix


def test_ks101_plain_docker_hub_image_is_only_a_warning(tmp_path: Path) -> None:
    [f] = check("KS101", repo_inv(tmp_path, "nginx:1.27"))
    assert f.severity.label == "warning"
    assert "docker.io/library/nginx" in f.evidence[0]


def test_ks101_qualified_images_pass(tmp_path: Path) -> None:
    for image in ("registry.local:5000/app:1.0", "localhost/app:1", "[::1]:5000/app:2", "ghcr.io/a/b:3"):
        assert check("KS101", repo_inv(tmp_path, image)) == [], image


def test_ks101_live_evidence_names_nodes_that_have_the_image() -> None:
    dep = deployment("family-assistant-backend", "family-assistant:phase2-mcp-logging-fix")
    inv = inventory(objects=[dep, node("pesubuntu", ["docker.io/library/family-assistant:phase2-mcp-logging-fix"]),
                             node("asuna", [])])
    [f] = check("KS101", inv)
    text = "\n".join(f.evidence)
    assert "present only in the local image store of: pesubuntu" in text
    assert "missing on: asuna" in text


def test_ks102_pull_policy_never(tmp_path: Path) -> None:
    inv = repo_inv(tmp_path, "family-assistant:fixed", "        imagePullPolicy: Never\n", registry=REGISTRY)
    [f] = check("KS102", inv, config("registries: {private: ['100.81.76.55:30500']}"))
    assert f.line == 12
    assert "+   imagePullPolicy: IfNotPresent" in f.fix
    assert "+   image: 100.81.76.55:30500/family-assistant:fixed" in f.fix


def test_ks102_negative(tmp_path: Path) -> None:
    assert check("KS102", repo_inv(tmp_path, "a.io/x:1", "        imagePullPolicy: IfNotPresent\n")) == []


def test_ks103_latest_and_missing_tag_but_not_a_port(tmp_path: Path) -> None:
    assert check("KS103", repo_inv(tmp_path, "registry.local:5000/app:1.0")) == []
    assert len(check("KS103", repo_inv(tmp_path, "app"))) == 1
    [f] = check("KS103", repo_inv(tmp_path, "app:latest"))
    assert "mutable tag 'latest'" in f.message
    assert check("KS103", repo_inv(tmp_path, "registry:5000/app")) != []  # the port is not a tag
    assert check("KS103", repo_inv(tmp_path, "app@sha256:" + "c" * 64)) == []


def test_ks103_pins_the_digest_latest_points_to(tmp_path: Path) -> None:
    [f] = check("KS103", repo_inv(tmp_path, "100.81.76.55:30500/family-assistant:latest", registry=REGISTRY))
    assert "also tagged fixed-final" in "\n".join(f.evidence)
    assert "100.81.76.55:30500/family-assistant@sha256:" + "b" * 64 in f.fix


def test_ks104_tag_missing_from_registry(tmp_path: Path) -> None:
    inv = repo_inv(tmp_path, "100.81.76.55:30500/family-assistant:phase2-mcp-logging-fix", registry=REGISTRY)
    [f] = check("KS104", inv)
    assert "does not exist" in f.message and "3 tags" in f.evidence[1]


def test_ks104_negative(tmp_path: Path) -> None:
    assert check("KS104", repo_inv(tmp_path, "100.81.76.55:30500/family-assistant:me-fixed", registry=REGISTRY)) == []
    assert check("KS104", repo_inv(tmp_path, "ghcr.io/x/y:1", registry=REGISTRY)) == []  # registry not snapshotted


def _pull_failure_world() -> list[dict]:  # type: ignore[type-arg]
    dep = deployment("family-assistant-backend", "family-assistant:phase2-mcp-logging-fix")
    owner = {"kind": "Deployment", "name": dep["metadata"]["name"], "uid": dep["metadata"]["uid"], "controller": True}
    rs = {"kind": "ReplicaSet", "metadata": {"name": "fab-7f", "namespace": "homelab", "uid": "rs1",
                                              "ownerReferences": [owner]}}
    pod = {"kind": "Pod", "metadata": {"name": "fab-7f-9g4wb", "namespace": "homelab", "uid": "p1",
                                       "ownerReferences": [{"kind": "ReplicaSet", "name": "fab-7f", "uid": "rs1",
                                                            "controller": True}]},
           "spec": {"nodeName": "asuna",
                    "containers": [{"name": "app", "image": "family-assistant:phase2-mcp-logging-fix"}]},
           "status": {"containerStatuses": [{"name": "app", "image": "family-assistant:phase2-mcp-logging-fix",
                                              "restartCount": 0, "state": {"waiting": {
                                                  "reason": "ImagePullBackOff",
                                                  "message": "Back-off pulling image"}}}]}}
    return [dep, rs, pod, node("pesubuntu", ["docker.io/library/family-assistant:phase2-mcp-logging-fix"]),
            node("asuna", [])]


def _event(kind: str, name: str, reason: str, count: int, first: str, last: str, message: str = "m") -> dict:  # type: ignore[type-arg]
    return {"involvedObject": {"kind": kind, "namespace": "homelab", "name": name}, "reason": reason,
            "count": count, "firstTimestamp": first, "lastTimestamp": last, "message": message, "type": "Warning"}


def test_ks105_reports_node_backoffs_and_root_cause() -> None:
    events = [
        _event("Pod", "fab-7f-9g4wb", "BackOff", 461, "2025-11-17T08:15:00Z", "2025-11-17T10:00:00Z"),
        # Same name, other kind: must not be counted (k8sgpt#1752).
        _event("Service", "fab-7f-9g4wb", "BackOff", 999, "2025-11-17T08:15:00Z", "2025-11-17T10:00:00Z"),
    ]
    inv = inventory(objects=_pull_failure_world(), events=events, registry=REGISTRY)
    [f] = check("KS105", inv, config("registries: {private: ['100.81.76.55:30500']}"))
    text = "\n".join(f.evidence)
    assert f.object is not None and f.object.name == "family-assistant-backend"
    assert "on node asuna: ImagePullBackOff" in text
    assert "461 back-offs over 105m" in text
    assert "present only in the local image store of: pesubuntu" in text
    assert "docker push 100.81.76.55:30500/family-assistant:phase2-mcp-logging-fix" in f.fix
    assert "kubectl set image deployment/family-assistant-backend" in f.fix


def test_ks105_negative_running_pods() -> None:
    world = _pull_failure_world()
    world[2]["status"]["containerStatuses"][0]["state"] = {"running": {}}
    assert check("KS105", inventory(objects=world)) == []


def test_ks106_image_on_some_nodes() -> None:
    world = _pull_failure_world()
    [f] = check("KS106", inventory(objects=world))
    assert "exists on pesubuntu only" in f.message and "missing on: asuna" in f.evidence


def test_ks106_negative_qualified_image() -> None:
    dep = deployment("web", "ghcr.io/a/web:1.0")
    inv = inventory(objects=[dep, node("a", ["ghcr.io/a/web:1.0"]), node("b", [])])
    assert check("KS106", inv) == []


def test_ks107_registry_not_allowed(tmp_path: Path) -> None:
    cfg = config("registries: {allowed: ['100.81.76.55:30500', '*.ghcr.io']}")
    [f] = check("KS107", repo_inv(tmp_path, "quay.io/x/y:1"), cfg)
    assert "quay.io" in f.message
    assert check("KS107", repo_inv(tmp_path, "100.81.76.55:30500/family-assistant:me-fixed"), cfg) == []
    assert check("KS107", repo_inv(tmp_path, "quay.io/x/y:1")) == []  # no allow-list configured


def test_ks108_invalid_reference(tmp_path: Path) -> None:
    [f] = check("KS108", repo_inv(tmp_path, "Family-Assistant:fixed"))
    assert "must be lowercase" in f.message
    assert check("KS108", repo_inv(tmp_path, "family-assistant:fixed")) == []
