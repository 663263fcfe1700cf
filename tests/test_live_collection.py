"""Live collection against a real control plane: log tails read through the API server from a kwok kubelet
(restarting pods first, at most --max-logs, secrets redacted), the early give-up when no kubelet answers, and a
busy API server's 429 (API Priority and Fairness) retried after its Retry-After. Nothing here is mocked: the
kubelet is kwok's, the 429 comes from the API server's own flow control."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kubeshape.sources.bundle import MANIFEST
from kubeshape.sources.live import DEFAULT_BURST, DEFAULT_QPS, KINDS, LOG_GIVE_UP, collect, connect
from testbed.binaries import binary
from testbed.cluster import CHAOS, CHAOS_INTERVAL, CHAOS_MAX_RESTARTS, Cluster, NodeSpec, node_manifest, record_pid
from testbed.procs import Proc, free_port, start

IMAGE = "homelab-dashboard:v3"  # on node-a (conftest); unqualified images run only where the node has them
STAGES = Path(__file__).resolve().parent.parent / "testbed" / "kwok" / "stages.yaml"
SECRET = "hunter2-S3CR3T"
POD_KIND = next(k for k in KINDS if k.kind == "Pod")


def ks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeshape", *args], capture_output=True, text=True, timeout=300,
                          check=False)


def wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError(what)


@pytest.fixture
def ns(cluster: Cluster) -> Iterator[str]:
    name = f"lc-{secrets.token_hex(3)}"
    cluster.api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    cluster.api("DELETE", f"/api/v1/namespaces/{name}")


def pod(cluster: Cluster, ns: str, name: str, node: str, annotations: dict[str, str] | None = None,
        container: str = "app") -> None:
    cluster.api("POST", f"/api/v1/namespaces/{ns}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"nodeName": node, "containers": [{"name": container, "image": IMAGE}],
                 "tolerations": [{"operator": "Exists"}]}})


def running(cluster: Cluster, ns: str, count: int) -> Callable[[], bool]:
    """True once ``count`` pods of ``ns`` have every container running."""
    def check() -> bool:
        pods = cluster.api("GET", f"/api/v1/namespaces/{ns}/pods")["items"]
        return len(pods) == count and all(
            (p.get("status") or {}).get("containerStatuses")
            and all((c.get("state") or {}).get("running") for c in p["status"]["containerStatuses"]) for p in pods)
    return check


# -- kubelets the API server cannot reach -----------------------------------------------------------------------

def test_unreachable_kubelets_stop_log_reading_after_the_first_tails(cluster: Cluster, ns: str) -> None:
    """kwok's nodes run no kubelet on :10250, so the API server answers every log request with a 500. A run with
    many pods tries the first tails only, once each (no retry of the kubelet's failure), and says so."""
    pods = 12
    for n in range(pods):
        pod(cluster, ns, f"web-{n:02d}", "node-a")
    wait(running(cluster, ns, pods), 60, f"{pods} running pods in {ns}")

    api, _ = connect(cluster.kubeconfig, None)
    with api.http:
        without_logs = collect(api, [ns], max_logs=0).requests
    api, _ = connect(cluster.kubeconfig, None)
    with api.http:
        col = collect(api, [ns], max_logs=30)
    assert col.logs == {}
    assert col.requests - without_logs == LOG_GIVE_UP  # one GET per probed tail, none for the other pods
    note = (f"logs: 0 of {pods} log tails read; the API server could not fetch {LOG_GIVE_UP} (kubelet unreachable, "
            f"or too slow), so the other {pods - LOG_GIVE_UP} were not tried")
    assert note in col.notes

    proc = ks("doctor", "--kubeconfig", str(cluster.kubeconfig), "-n", ns, "-o", "json")
    assert proc.returncode in (0, 1), proc.stderr
    assert note in json.loads(proc.stdout)["notes"]


# -- log tails read through the API server -----------------------------------------------------------------------

@pytest.fixture
def log_node(cluster: Cluster, ns: str, tmp_path: Path) -> Iterator[str]:
    """A kwok Node whose kubelet endpoint is a second kwok serving the log file below for every container of
    ``ns`` (kwok's ClusterLogs); tainted so that no other test's pod lands on it."""
    log = tmp_path / "app.log"
    log.write_text("".join(f"2025-01-01T00:00:0{n}.000000000Z stdout F {line}\n" for n, line in enumerate(
        ("starting", f"connecting to db with password={SECRET}", "ready"))))
    config = tmp_path / "logs.yaml"
    config.write_text(json.dumps({
        "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterLogs", "metadata": {"name": f"logs-{ns}"},
        "spec": {"selector": {"matchNamespaces": [ns]}, "logs": [{"containers": [], "logsFile": str(log)}]}}))
    port = free_port()
    # Manages no node (the cluster's kwok runs them all): it only answers the API server's log requests.
    kwok: Proc = start("kwok-logs", [str(binary("kwok")), f"--kubeconfig={cluster.kubeconfig}",
                                     "--manage-all-nodes=false",
                                     "--manage-nodes-with-annotation-selector=kubeshape.test/none=none",
                                     f"--config={config}", f"--config={STAGES}",
                                     f"--server-address=127.0.0.1:{port}"], tmp_path)
    record_pid(cluster.workdir, "kwok-logs", kwok.popen.pid)  # the cluster's reaper stops it too
    name = f"logs-{ns}"
    node = node_manifest(NodeSpec(name, images=(IMAGE,)))
    node["spec"] = {"taints": [{"key": "kubeshape.test/logs", "value": ns, "effect": "NoSchedule"}]}
    node["status"]["daemonEndpoints"] = {"kubeletEndpoint": {"Port": port}}  # where the API server asks for logs
    cluster.api("POST", "/api/v1/nodes", node)
    try:
        yield name
    finally:
        kwok.stop()
        cluster.api("DELETE", f"/api/v1/nodes/{name}")


def test_log_tails_are_read_for_the_restarting_pods_first_and_redacted(cluster: Cluster, ns: str,
                                                                        log_node: str, tmp_path: Path) -> None:
    pod(cluster, ns, "flaky", log_node, {CHAOS: "probe-429", CHAOS_INTERVAL: "200ms", CHAOS_MAX_RESTARTS: "1"})
    for name in ("api-a", "api-b", "api-c", "api-d", "api-e"):
        pod(cluster, ns, name, log_node)

    def settled() -> bool:
        flaky = cluster.api("GET", f"/api/v1/namespaces/{ns}/pods/flaky")["status"].get("containerStatuses") or []
        return running(cluster, ns, 6)() and [c.get("restartCount") for c in flaky] == [1]
    wait(settled, 60, f"6 running pods in {ns}, flaky restarted once")

    # The restarted, unready pod first, then the others by name, at most --max-logs of them.
    out = tmp_path / "bundle"
    proc = ks("snapshot", "--kubeconfig", str(cluster.kubeconfig), "-n", ns, "--max-logs", "3", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "3 log tails" in proc.stderr
    logs = sorted(p.relative_to(out / "logs" / ns).as_posix() for p in (out / "logs" / ns).rglob("*.log"))
    assert logs == ["api-a/app.log", "api-b/app.log", "flaky/app.log"]
    text = (out / "logs" / ns / "flaky" / "app.log").read_text()
    assert "connecting to db with password=" in text and SECRET not in text
    assert not any(n.startswith("logs:") for n in json.loads((out / MANIFEST).read_text())["notes"])

    # Read concurrently, all of them when the limit allows, in the order they were chosen.
    api, _ = connect(cluster.kubeconfig, None)
    with api.http:
        col = collect(api, [ns], max_logs=30)
    assert list(col.logs) == [(ns, "flaky", "app"), *((ns, f"api-{c}", "app") for c in "abcde")]
    assert all(SECRET not in t and t.endswith("ready\n") for t in col.logs.values())
    assert not any(n.startswith("logs:") for n in col.notes)


# -- a busy API server: 429 with Retry-After ----------------------------------------------------------------------

class _Hold(BaseHTTPRequestHandler):
    """A validating admission webhook that holds each request until released (then allows it)."""

    server: _HoldServer

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.server.called.set()
        self.server.release.wait(25)
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                           "response": {"uid": review["request"]["uid"], "allowed": True}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _HoldServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cert: Path, key: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Hold)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.called, self.release = threading.Event(), threading.Event()


def _reader_kubeconfig(cluster: Cluster, ns: str, tmp_path: Path) -> Path:
    """A kubeconfig for ServiceAccount ``reader`` of ``ns``, which may read and create in ``ns``."""
    cluster.api("POST", f"/api/v1/namespaces/{ns}/serviceaccounts",
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}})
    cluster.api("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]})
    token = cluster.api("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/reader/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600}})["status"]["token"]
    path = tmp_path / "reader.kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "reader",
        "clusters": [{"name": "c", "cluster": {"server": cluster.server,
                                               "certificate-authority": str(cluster.ca_file)}}],
        "users": [{"name": "reader", "user": {"token": token}}],
        "contexts": [{"name": "reader", "context": {"cluster": "c", "user": "reader", "namespace": ns}}]}))
    return path


def test_busy_api_server_429_is_retried_and_the_list_completes(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    """API Priority and Fairness: the reader's requests get a priority level with no seats of its own, so one of
    them runs at a time and any other is rejected at once with 429 and Retry-After. While a create of the reader
    is held in an admission webhook, its LIST of pods is rejected; once the create returns, the retried LIST
    goes through and the pods are all there."""
    for n in range(3):
        pod(cluster, ns, f"web-{n}", "node-a")
    kubeconfig = _reader_kubeconfig(cluster, ns, tmp_path)
    cert, key = tmp_path / "hold.crt", tmp_path / "hold.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=hold",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    hold = _HoldServer(cert, key)
    threading.Thread(target=hold.serve_forever, daemon=True).start()
    name = f"kubeshape-test-{ns}"
    reader = {"kind": "ServiceAccount", "serviceAccount": {"name": "reader", "namespace": ns}}
    flowcontrol = "/apis/flowcontrol.apiserver.k8s.io/v1"
    webhooks = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
    created: list[str] = []
    try:
        cluster.api("POST", f"{flowcontrol}/prioritylevelconfigurations", {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
            "metadata": {"name": name},
            "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 0, "lendablePercent": 0,
                                                    "borrowingLimitPercent": 0, "limitResponse": {"type": "Reject"}}}})
        created.append(f"{flowcontrol}/prioritylevelconfigurations/{name}")
        cluster.api("POST", f"{flowcontrol}/flowschemas", {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema", "metadata": {"name": name},
            "spec": {"priorityLevelConfiguration": {"name": name}, "matchingPrecedence": 100,
                     "distinguisherMethod": {"type": "ByUser"},
                     "rules": [{"subjects": [reader], "resourceRules": [
                         {"verbs": ["list"], "apiGroups": [""], "resources": ["pods"], "namespaces": [ns]},
                         {"verbs": ["create"], "apiGroups": [""], "resources": ["configmaps"],
                          "namespaces": [ns]}]}]}})
        created.append(f"{flowcontrol}/flowschemas/{name}")
        schema = cluster.api("GET", f"{flowcontrol}/flowschemas/{name}")["metadata"]["uid"]
        cluster.api("POST", webhooks, {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [{"name": "hold.kubeshape.test", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                          "failurePolicy": "Ignore", "timeoutSeconds": 30,
                          "clientConfig": {"url": f"https://127.0.0.1:{hold.server_address[1]}/hold",
                                           "caBundle": base64.b64encode(cert.read_bytes()).decode()},
                          "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                          "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                     "resources": ["configmaps"]}]}]})
        created.append(f"{webhooks}/{name}")

        api, _ = connect(kubeconfig, None)
        wait(lambda: api.http.get(f"/api/v1/namespaces/{ns}/pods").headers.get(
            "X-Kubernetes-PF-FlowSchema-UID") == schema, 30, "the flow schema to be in force")

        holder = threading.Thread(target=lambda: api.http.post(f"/api/v1/namespaces/{ns}/configmaps", json={
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "held-"}}, timeout=40), daemon=True)
        holder.start()
        wait(hold.called.is_set, 30, "the reader's create to reach the webhook")
        first = api.http.get(f"/api/v1/namespaces/{ns}/pods", timeout=10)
        assert first.status_code == 429 and first.headers.get("Retry-After")  # what the API server answers

        result: dict[str, Any] = {}
        reading = threading.Thread(target=lambda: result.update(col=collect(api, [ns], kinds=(POD_KIND,),
                                                                            max_logs=0)), daemon=True)
        reading.start()
        wait(lambda: api.retries_429 >= 1, 30, "a 429 on the reader's LIST")
        hold.release.set()  # the create returns, its seat frees up, the retried LIST gets it
        reading.join(60)
        holder.join(40)
        col = result["col"]
        assert col.blind_spots == []
        assert sorted(p["metadata"]["name"] for p in col.lists[POD_KIND]["items"]) == ["web-0", "web-1", "web-2"]
        assert api.retries_429 >= 1
        api.http.close()
    finally:
        hold.release.set()
        for path in reversed(created):
            with contextlib.suppress(urllib.error.HTTPError):
                cluster.api("DELETE", path)
        hold.shutdown()
        hold.server_close()


# -- flags ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["doctor", "snapshot"])
def test_qps_and_burst_flags_default_to_what_a_run_needs(command: str) -> None:
    proc = ks(command, "--help")
    text = " ".join(proc.stdout.split())
    assert "--qps" in text and "--burst" in text
    assert f"[default: {DEFAULT_QPS}]" in text and f"[default: {DEFAULT_BURST};" in text
    bad = ks(command, "--burst", "0", *(["-o", "x.tar.gz"] if command == "snapshot" else []))
    assert bad.returncode == 2 and "--burst" in bad.stderr and "Traceback" not in bad.stderr
