"""KS1xx: image rules, on repo files and on live objects."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import check, config, deployment, doctor, inventory

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


# -- images in HelmRelease values (bjw-s app-template and the common chart shape) -------------------

HELMRELEASE = """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: myapp
  namespace: apps
spec:
  chart:
    spec: {{chart: app-template, version: 3.5.1}}
  values:
    controllers:
      myapp:
        containers:
          app:
            image:
              repository: {repository}
              tag: {tag}
"""


def release_inv(tmp_path: Path, repository: str, tag: str = "1.2.3", registry: dict | None = None):  # type: ignore[type-arg]
    text = HELMRELEASE.format(repository=repository, tag=tag)
    return inventory(tmp_path, files={"hr.yaml": text}, registry=registry)


def test_ks101_unqualified_image_in_helmrelease_values_points_at_the_repository_line(tmp_path: Path) -> None:
    [f] = check("KS101", release_inv(tmp_path, "myapp"))
    assert (f.file, f.line) == ("hr.yaml", 15)
    assert f.object is not None and f.object.kind.startswith("HelmRelease") and f.object.name == "myapp"
    assert "container app uses unqualified image myapp:1.2.3" in f.message
    assert ("In hr.yaml:14:\n```diff\n  image:\n-   repository: myapp\n+   repository: <your-registry>/myapp\n"
            "    tag: 1.2.3\n```") in f.fix
    assert "containers:" not in f.fix
    [f] = check("KS101", release_inv(tmp_path, "myapp"), config("registries: {private: ['100.81.76.55:30500']}"))
    assert "+   repository: 100.81.76.55:30500/myapp" in f.fix
    assert "docker push 100.81.76.55:30500/myapp:1.2.3" in f.fix


def test_helmrelease_third_party_images_pass(tmp_path: Path) -> None:
    inv = release_inv(tmp_path, "ghcr.io/onedr0p/sonarr", "4.0.0.745")
    for rule_id in ("KS101", "KS102", "KS103", "KS107", "KS108"):
        assert check(rule_id, inv) == [], rule_id


def test_ks103_latest_in_helmrelease_values(tmp_path: Path) -> None:
    [f] = check("KS103", release_inv(tmp_path, "ghcr.io/onedr0p/sonarr", "latest"))
    assert (f.file, f.line) == ("hr.yaml", 15)
    assert "    repository: ghcr.io/onedr0p/sonarr\n-   tag: latest\n+   tag: <version>" in f.fix


def test_ks104_and_ks102_on_helmrelease_values(tmp_path: Path) -> None:
    inv = release_inv(tmp_path, "100.81.76.55:30500/family-assistant", "phase2", registry=REGISTRY)
    [f] = check("KS104", inv)
    assert "tag phase2 does not exist" in f.message
    files = {"hr.yaml": HELMRELEASE.format(repository="100.81.76.55:30500/family-assistant", tag="me-fixed")
             + "              pullPolicy: Never\n"}
    [f] = check("KS102", inventory(tmp_path, files=files))
    assert f.line == 17
    assert "-   pullPolicy: Never\n+   pullPolicy: IfNotPresent" in f.fix


def test_chart_values_with_a_registry_are_qualified(tmp_path: Path) -> None:
    text = ("apiVersion: helm.toolkit.fluxcd.io/v2beta2\nkind: HelmRelease\nmetadata: {name: redis, namespace: db}\n"
            "spec:\n  values:\n    image:\n      registry: docker.io\n      repository: bitnami/redis\n"
            "      tag: 7.2\n    persistence: {size: 1Gi}\n")
    inv = inventory(tmp_path, files={"redis.yaml": text})
    assert check("KS101", inv) == []
    [f] = check("KS107", inv, config("registries: {allowed: ['ghcr.io']}"))
    assert "pulls from docker.io" in f.message and f.line == 8


def test_helmrelease_without_image_values_gives_nothing(tmp_path: Path) -> None:
    text = ("apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: ingress, namespace: net}\n"
            "spec:\n  values:\n    controller: {replicaCount: 2, service: {type: LoadBalancer}}\n")
    inv = inventory(tmp_path, files={"hr.yaml": text})
    assert [f for f in doctor(inv) if f.rule.startswith("KS1")] == []


# -- KS101 fix text -----------------------------------------------------------------------------------


def test_ks101_fix_names_docker_hub_official_images_in_full_keeping_the_tag(tmp_path: Path) -> None:
    [f] = check("KS101", repo_inv(tmp_path, "redis:7.4"))
    assert "+   image: docker.io/library/redis:7.4" in f.fix
    [f] = check("KS101", repo_inv(tmp_path, "redis"))
    assert "+   image: docker.io/library/redis\n" in f.fix
    assert "pin the version you mean" in f.fix
    assert ":latest" not in f.fix


def test_ks101_fix_for_an_unknown_image_says_push_it_to_your_registry(tmp_path: Path) -> None:
    [f] = check("KS101", repo_inv(tmp_path, "family-assistant:phase2"))
    assert "Push the image to your registry" in f.fix
    assert "docker push <your-registry>/family-assistant:phase2" in f.fix
    assert "+   image: <your-registry>/family-assistant:phase2" in f.fix
    assert "docker.io" not in f.fix
    [f] = check("KS101", repo_inv(tmp_path, "linuxserver/sonarr:4.0"))
    assert "+   image: <your-registry>/linuxserver/sonarr:4.0" in f.fix
    assert "name it in full instead: `docker.io/linuxserver/sonarr:4.0`" in f.fix


def test_ks101_fix_never_invents_latest(tmp_path: Path) -> None:
    cfg = config("registries: {private: ['100.81.76.55:30500']}")
    [f] = check("KS101", repo_inv(tmp_path, "family-assistant"), cfg)
    assert "+   image: 100.81.76.55:30500/family-assistant:<version>" in f.fix
    assert "latest`" in f.fix and ":latest" not in f.fix
