"""The test bed itself: a real control plane whose controllers, scheduler and kwok stages behave as the
kubeshape tests assume (see testbed/cluster.py and testbed/kwok/scenarios.yaml)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from testbed.binaries import versions
from testbed.cluster import (
    CHAOS,
    CHAOS_INTERVAL,
    CHAOS_MAX_RESTARTS,
    Cluster,
    kill_recorded,
    recorded_pids,
    start_cluster,
)

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"not within {timeout}s: {what}")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def ns(cluster: Cluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.api("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    # Pods need the namespace's default ServiceAccount (created by the controller-manager).
    wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0, 20,
             f"ServiceAccount {name}/default")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pod(name: str, image: str, *, annotations: dict[str, str] | None = None, node: str | None = None) -> str:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": image}]}
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "spec": spec,
                       "metadata": {"name": name, "annotations": annotations or {}}})


def get_pod(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return dict(cluster.api("GET", f"/api/v1/namespaces/{ns}/pods/{name}"))


def container(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    statuses = get_pod(cluster, ns, name)["status"].get("containerStatuses") or [{}]
    return dict(statuses[0])


def waiting_in(cluster: Cluster, ns: str, name: str, reason: str) -> dict[str, Any] | None:
    waiting = container(cluster, ns, name).get("state", {}).get("waiting") or {}
    return dict(waiting) if waiting.get("reason") == reason else None


def restarted(cluster: Cluster, ns: str, name: str, times: int) -> dict[str, Any] | None:
    status = container(cluster, ns, name)
    return status if status.get("restartCount", 0) >= times else None


def at_least(n: int, items: list[T]) -> list[T] | None:
    return items if len(items) >= n else None


def events(cluster: Cluster, ns: str, kind: str, name: str) -> list[dict[str, Any]]:
    items = cluster.api("GET", f"/api/v1/namespaces/{ns}/events")["items"]
    return [e for e in items if e["involvedObject"]["kind"] == kind and e["involvedObject"]["name"] == name]


def reasons(evs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(e["type"], e["reason"]) for e in evs}


def test_apiserver_serves_pinned_version(cluster: Cluster) -> None:
    assert cluster.api("GET", "/version")["gitVersion"] == versions()["kubernetes"]
    out = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["gitVersion"] == versions()["kubernetes"]
    assert set(cluster.timings) >= {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}


def test_nodes_keep_their_images(cluster: Cluster) -> None:
    node = cluster.api("GET", "/api/v1/nodes/node-a")
    assert node["status"]["images"][0]["names"] == ["docker.io/library/homelab-dashboard:v3"]
    assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"
    lease = cluster.api("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-a")
    assert lease["spec"]["renewTime"]  # kwok keeps the node alive through its Lease


def test_deployment_spreads_over_two_nodes_and_becomes_available(cluster: Cluster, ns: str) -> None:
    spread = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "web"}}}]
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"topologySpreadConstraints": spread,
                     "containers": [{"name": "web", "image": "ghcr.io/example/web:1.0"}]}}}}))
    wait_for(lambda: cluster.api("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/web")["status"]
             .get("availableReplicas") == 2, 30, "Deployment web 2/2 available")
    pods = cluster.api("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector=app%3Dweb")["items"]
    assert {p["spec"]["nodeName"] for p in pods} == {"node-a", "node-b"}
    assert all(p["status"]["phase"] == "Running" and p["status"]["podIP"] for p in pods)
    owners = {p["metadata"]["ownerReferences"][0]["kind"] for p in pods}
    assert owners == {"ReplicaSet"}


def test_unqualified_image_pulls_only_on_the_node_that_has_it(cluster: Cluster, ns: str) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=pod("on-a", "homelab-dashboard:v3", node="node-a"))
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=pod("on-b", "homelab-dashboard:v3", node="node-b"))

    waiting = wait_for(lambda: waiting_in(cluster, ns, "on-b", "ImagePullBackOff"), 20, "on-b in ImagePullBackOff")
    assert waiting["message"].startswith('Back-off pulling image "homelab-dashboard:v3"')
    evs = wait_for(lambda: at_least(4, events(cluster, ns, "Pod", "on-b")), 10, "4 pull events")
    assert {("Warning", "Failed"), ("Normal", "BackOff")} <= reasons(evs)
    assert any(e["message"].startswith('Failed to pull image "homelab-dashboard:v3": ') for e in evs)
    assert get_pod(cluster, ns, "on-b")["status"]["phase"] == "Pending"

    wait_for(lambda: container(cluster, ns, "on-a").get("ready"), 20, "on-a Ready")
    assert get_pod(cluster, ns, "on-a")["status"]["phase"] == "Running"
    assert reasons(events(cluster, ns, "Pod", "on-a")) == {("Normal", "Scheduled")}


def test_hpa_without_target_gets_failed_get_scale_from_the_real_controller(cluster: Cluster, ns: str) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "orphan"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gone"},
                 "minReplicas": 1, "maxReplicas": 3,
                 "metrics": [{"type": "Resource", "resource": {
                     "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}}))
    evs = wait_for(lambda: [e for e in events(cluster, ns, "HorizontalPodAutoscaler", "orphan")
                            if e["reason"] == "FailedGetScale"], 30, "FailedGetScale event")
    assert evs[0]["type"] == "Warning"
    assert 'deployments.apps "gone" not found' in evs[0]["message"]
    assert evs[0]["source"]["component"] == "horizontal-pod-autoscaler"


def test_probe_429_chaos_pod_restarts_with_unhealthy_events(cluster: Cluster, ns: str) -> None:
    ann = {CHAOS: "probe-429", CHAOS_INTERVAL: "500ms"}
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=pod("storm", "ghcr.io/example/api:2", annotations=ann))

    status = wait_for(lambda: restarted(cluster, ns, "storm", 3), 20, "3 restarts")
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert status["lastState"]["terminated"]["exitCode"] == 137
    assert "running" in status["state"]

    def killed_three_times() -> list[dict[str, Any]] | None:
        # the third kill's event may be recorded a moment after the restart count moves
        evs = events(cluster, ns, "Pod", "storm")
        return evs if any(e["reason"] == "Killing" and e.get("count", 1) >= 3 for e in evs) else None

    evs = wait_for(killed_three_times, 20, "3 Killing events")
    messages = {e["message"] for e in evs if (e["type"], e["reason"]) == ("Warning", "Unhealthy")}
    assert messages == {"Liveness probe failed: HTTP probe failed with statuscode: 429",
                        "Readiness probe failed: HTTP probe failed with statuscode: 429"}
    killing = [e for e in evs if e["reason"] == "Killing"]
    assert killing and killing[0]["message"] == "Container app failed liveness probe, will be restarted"
    assert killing[0]["count"] >= 3
    kubelet = [e for e in evs if e["reason"] != "Scheduled"]
    assert all(e["involvedObject"]["namespace"] == ns and e["source"]["component"] == "kubelet" for e in kubelet)


def test_crashloop_chaos_pod_waits_in_crash_loop_back_off(cluster: Cluster, ns: str) -> None:
    ann = {CHAOS: "crashloop", CHAOS_INTERVAL: "300ms", CHAOS_MAX_RESTARTS: "2"}
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=pod("crash", "ghcr.io/example/api:2", annotations=ann))

    status = wait_for(lambda: restarted(cluster, ns, "crash", 2), 20, "2 restarts")
    time.sleep(1)
    status = container(cluster, ns, "crash")
    assert status["restartCount"] == 2  # chaos-max-restarts holds it there
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert status["lastState"]["terminated"]["exitCode"] == 1
    backoff = [e for e in events(cluster, ns, "Pod", "crash") if e["reason"] == "BackOff"]
    assert backoff[0]["type"] == "Warning"
    assert backoff[0]["message"].startswith("Back-off restarting failed container app in pod crash_")


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    c = start_cluster(tmp_path)
    pids = list(c.pids.values())
    assert len(pids) == 5 and all(alive(p) for p in pids)
    c.stop()
    assert not [p for p in pids if alive(p)]
    assert kill_recorded(tmp_path) == []


def test_processes_die_with_the_python_process_that_started_them(tmp_path: Path) -> None:
    script = ("import sys, time; from pathlib import Path; from testbed.cluster import start_cluster; "
              "start_cluster(Path(sys.argv[1])); print('up', flush=True); time.sleep(600)")
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "up"
        pids = [pid for _, pid, _ in recorded_pids(tmp_path)]
        assert len(pids) == 5 and all(alive(p) for p in pids)
        child.send_signal(signal.SIGKILL)  # no atexit, no finally: only the reaper can clean up
        wait_for(lambda: not [p for p in pids if alive(p)], 20, "the reaper killed every process")
    finally:
        child.kill()
        child.wait()
        kill_recorded(tmp_path)


def test_up_and_down(tmp_path: Path) -> None:
    up = subprocess.Popen([sys.executable, "-m", "testbed", "up", "--dir", str(tmp_path)], cwd=ROOT,
                          stdout=subprocess.PIPE, text=True)
    try:
        assert up.stdout is not None
        banner: list[str] = []
        for line in iter(up.stdout.readline, ""):
            banner.append(line)
            if line.startswith("stop with"):
                break
        assert f"export KUBECONFIG={tmp_path / 'kubeconfig'}\n" in banner
        assert {"kube-apiserver", "registry"} <= {name for name, _, _ in recorded_pids(tmp_path)}
        pids = [pid for _, pid, _ in recorded_pids(tmp_path)]
        down = subprocess.run([sys.executable, "-m", "testbed", "down", "--dir", str(tmp_path)], cwd=ROOT,
                              capture_output=True, text=True, check=True, timeout=60)
        assert down.stdout == "stopped: testbed up\n"  # `up` stopped everything itself
        assert up.wait(5) == 0
        assert not [p for p in pids if alive(p)]
    finally:
        up.kill()
        up.wait()
        kill_recorded(tmp_path)
