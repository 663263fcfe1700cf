"""Create a scenario for real: nodes, registry images, objects, and the imperative history that broke it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from kubeshape.registry.client import RegistryClient
from kubeshape.registry.image import build_image, push_image
from testbed.cluster import Cluster, NodeSpec

HERE = Path(__file__).resolve().parent

# kind → (API prefix, plural, namespaced)
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("/api/v1", "namespaces", False),
    "Secret": ("/api/v1", "secrets", True),
    "Service": ("/api/v1", "services", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "StatefulSet": ("/apis/apps/v1", "statefulsets", True),
    "HorizontalPodAutoscaler": ("/apis/autoscaling/v2", "horizontalpodautoscalers", True),
}


@dataclass
class Scenario:
    """The scenario file: a header document (nodes, registry, rollout) and the objects to apply."""

    spec: dict[str, Any]
    objects: list[dict[str, Any]]
    pushed: dict[str, dict[str, str]] = field(default_factory=dict)  # repo → tag → digest

    @classmethod
    def load(cls, name: str = "homelab") -> Scenario:
        docs = [d for d in yaml.safe_load_all((HERE / f"{name}.yaml").read_text()) if d]
        return cls(spec=docs[0], objects=docs[1:])

    @property
    def namespace(self) -> str:
        return str(self.spec["namespace"])


def object_path(obj: dict[str, Any]) -> str:
    prefix, plural, namespaced = RESOURCES[obj["kind"]]
    meta = obj["metadata"]
    ns = f"/namespaces/{meta['namespace']}" if namespaced else ""
    return f"{prefix}{ns}/{plural}/{meta['name']}"


def apply(cluster: Cluster, obj: dict[str, Any], manager: str = "kubectl-client-side-apply") -> Any:
    """Server-side apply of one object."""
    return cluster.api("PATCH", object_path(obj) + f"?fieldManager={manager}&force=true", obj,
                       content_type="application/apply-patch+yaml")


def set_image(cluster: Cluster, namespace: str, deployment: str, container: str, image: str) -> Any:
    """What `kubectl set image` sends: a strategic merge patch under the field manager kubectl-set."""
    body = {"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}}
    return cluster.api("PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}"
                       "?fieldManager=kubectl-set", body, content_type="application/strategic-merge-patch+json")


def cordon(cluster: Cluster, node: str, unschedulable: bool) -> None:
    cluster.api("PATCH", f"/api/v1/nodes/{node}?fieldManager=kubectl-cordon",
                {"spec": {"unschedulable": unschedulable}}, content_type="application/strategic-merge-patch+json")


def push_images(scenario: Scenario, registry_host: str, now: datetime) -> dict[str, dict[str, str]]:
    """Push one tiny real image per tag (tags in ``same_digest`` share their twin's digest)."""
    out: dict[str, dict[str, str]] = {}
    with RegistryClient(registry_host, insecure=True) as client:
        for repo, spec in scenario.spec["registry"]["repositories"].items():
            base = build_image({"app/requirements.txt": f"{repo}\n".encode()},
                               created=now - timedelta(days=60))
            tags: list[str] = list(spec["tags"])
            twins: dict[str, str] = dict(spec.get("same_digest") or {})
            digests: dict[str, str] = {}
            for i, tag in enumerate(t for t in tags if t not in twins):
                created = now - timedelta(days=45) + timedelta(hours=20 * i)
                image = build_image({"app/version.txt": f"{repo} {tag}\n".encode()}, created=created, base=base)
                digests[tag] = push_image(client, repo, tag, image)
            for tag, twin in twins.items():
                manifest = client.get_manifest(repo, twin)
                digests[tag] = client.put_manifest(repo, tag, manifest.body, manifest.media_type)
            out[repo] = digests
    return out


def wait_for(check: Any, timeout: float, what: str, interval: float = 0.3) -> None:
    """Poll ``check`` until it is true; TimeoutError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"scenario: {what} not reached after {timeout:.0f}s")


def _deployment(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return dict(cluster.api("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"))


def _pods(cluster: Cluster, ns: str, selector: str) -> list[dict[str, Any]]:
    return list(cluster.api("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector={selector}")["items"])


def _revision(dep: dict[str, Any]) -> int:
    return int((dep["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", "0"))


def play_rollouts(cluster: Cluster, scenario: Scenario) -> None:
    """Reach revision N by repeated `kubectl set image`; leave the good pods on the first node and send the
    broken revision to the second, where its unqualified image does not exist."""
    spec, ns = scenario.spec["rollout"], scenario.namespace
    name, container = spec["deployment"], spec["container"]
    nodes = [n["name"] for n in scenario.spec["nodes"]]
    host = scenario.spec["registry"]["name_in_images"]
    first = _deployment(cluster, ns, name)["spec"]["template"]["spec"]["containers"][0]["image"]
    tags = [t for t in scenario.spec["registry"]["repositories"]["family-assistant"]["tags"]
            if t != "latest" and f"{host}/family-assistant:{t}" not in (first, spec["good"])]
    # Every change must differ from the one before, or the controller makes no new revision.
    history = [f"{host}/family-assistant:{tags[i % len(tags)]}" for i in range(spec["revisions"] - 3)]
    for image in history:  # revisions 2 .. N-2
        set_image(cluster, ns, name, container, image)
        wait_for(lambda: _observed(_deployment(cluster, ns, name)), 30, f"{name} change observed")
    cordon(cluster, nodes[1], True)  # revision N-1 runs on the first node only
    set_image(cluster, ns, name, container, spec["good"])
    wait_for(lambda: _rollout_complete(_deployment(cluster, ns, name)), 60, f"{name} revision N-1 available")
    cordon(cluster, nodes[1], False)
    cordon(cluster, nodes[0], True)  # the broken revision can only land on the second node
    set_image(cluster, ns, name, container, spec["broken"])
    wait_for(lambda: any(_waiting(p) == "ImagePullBackOff" for p in _pods(cluster, ns, f"app={name}")), 60,
          f"{name} ImagePullBackOff")
    cordon(cluster, nodes[0], False)


def _observed(dep: dict[str, Any]) -> bool:
    """The controller has seen the latest change (one GET per poll, not two)."""
    return bool(dep["metadata"].get("generation", 0) == (dep.get("status") or {}).get("observedGeneration"))


def _waiting(pod: dict[str, Any]) -> str:
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
        if reason:
            return str(reason)
    return ""


def _rollout_complete(dep: dict[str, Any]) -> bool:
    st, spec = dep.get("status") or {}, dep["spec"]
    return bool(st.get("observedGeneration", 0) >= dep["metadata"].get("generation", 0)
                and st.get("updatedReplicas") == spec.get("replicas") == st.get("availableReplicas")
                and st.get("replicas") == spec.get("replicas"))


def apply_seed_scale(scenario: Scenario) -> None:
    """Merge the header's ``seed_scale`` pod template annotations into the objects (before they are applied)."""
    knobs = (scenario.spec.get("seed_scale") or {}).get("pod_template_annotations") or {}
    for obj in scenario.objects:
        extra = knobs.get(f"{obj['kind']}/{obj['metadata']['name']}")
        if extra:
            meta = obj["spec"]["template"].setdefault("metadata", {})
            meta["annotations"] = {**(meta.get("annotations") or {}), **extra}


def load(cluster: Cluster, registry_host: str, name: str = "homelab", *, wait: bool = True,
         seed_scale: bool = False) -> Scenario:
    """Create the scenario on ``cluster`` and ``registry_host``; with ``wait``, return once every symptom
    the seed describes is visible (pull back-off, restarts, FailedGetScale, progress deadline). With
    ``seed_scale``, the header's ``seed_scale`` knobs apply (the seed's restart count, see homelab.yaml)."""
    scenario = Scenario.load(name)
    if seed_scale:
        apply_seed_scale(scenario)
    now = datetime.now(UTC)
    scenario.pushed = push_images(scenario, registry_host, now)
    cluster.create_nodes([NodeSpec(n["name"], tuple(n.get("images") or ())) for n in scenario.spec["nodes"]])
    for obj in scenario.objects:
        apply(cluster, obj)
    ns = scenario.namespace
    wait_for(lambda: _rollout_complete(_deployment(cluster, ns, scenario.spec["rollout"]["deployment"])), 60,
          "first rollout")
    play_rollouts(cluster, scenario)
    if wait:
        wait_for_symptoms(cluster, scenario)
    return scenario


def _events(cluster: Cluster, ns: str) -> list[dict[str, Any]]:
    return list(cluster.api("GET", f"/api/v1/namespaces/{ns}/events")["items"])


def wait_for_symptoms(cluster: Cluster, scenario: Scenario, timeout: float = 90) -> None:
    ns = scenario.namespace
    dep = scenario.spec["rollout"]["deployment"]

    def ready() -> bool:
        evs = _events(cluster, ns)
        failed_get_scale = {e["involvedObject"]["name"] for e in evs if e.get("reason") == "FailedGetScale"}
        unhealthy_429 = any(e.get("reason") == "Unhealthy" and "429" in e.get("message", "") for e in evs)
        deadline = any(c.get("reason") == "ProgressDeadlineExceeded"
                       for c in (_deployment(cluster, ns, dep).get("status") or {}).get("conditions") or [])
        return bool(failed_get_scale >= {"family-assistant-enhanced-hpa", "whisper-hpa"} and unhealthy_429
                    and deadline)

    wait_for(ready, timeout, "FailedGetScale on both HPAs, 429 probe failures and the progress deadline")
