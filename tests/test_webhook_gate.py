"""The webhook at the gate of a real apiserver: registered by URL on loopback over TLS, it denies the seed's bad
deploys with the rule and the fix, admits good ones, passes warnings on to kubectl, and the configured
failurePolicy decides what happens while it is down."""

from __future__ import annotations

import json
import secrets
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kubeshape.admission.certs import ensure_certs
from kubeshape.admission.manifests import webhook_configuration
from kubeshape.registry.client import RegistryClient
from kubeshape.registry.image import build_image, push_image
from testbed.cluster import Cluster
from testbed.procs import free_port
from testbed.registry import Registry

SEED_TAG = "phase2-mcp-logging-fix"


@dataclass
class Gate:
    cluster: Cluster
    namespace: str
    host: str  # the registry, as images name it
    config_name: str
    proc: subprocess.Popen[bytes]
    argv: list[str]
    log: Path
    port: int
    ca: Path

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("-n", self.namespace, *args, input=input, check=False)

    def set_failure_policy(self, policy: str) -> None:
        patch = json.dumps([{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": policy}])
        self.cluster.kubectl("patch", "validatingwebhookconfiguration", self.config_name, "--type=json",
                             "-p", patch)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        wait_ready(self.port, self.ca, self.proc, self.log)


def deployment(name: str, image: str, *, cause: str | None = None) -> str:
    annotations = {"kubernetes.io/change-cause": cause} if cause else {}
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": annotations},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "family-assistant", "image": image,
                                     "ports": [{"containerPort": 8000}]}]}}}})


def wait_ready(port: int, ca: Path, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    ctx = ssl.create_default_context(cafile=str(ca))
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"webhook exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=ctx, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"webhook not ready: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def gate(cluster: Cluster, registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gate]:
    work = tmp_path_factory.mktemp("gate")
    label = f"gate-{secrets.token_hex(3)}"
    namespace = label
    host = registry.host
    with RegistryClient(host, insecure=True) as client:
        now = datetime.now(UTC)
        for tag in ("1.4.2", "latest"):
            push_image(client, "family-assistant", tag,
                       build_image({"app/version.txt": tag.encode()}, created=now))
    files = ensure_certs(work / "certs", ["127.0.0.1"])
    (work / "kubeshape.yaml").write_text(f"registries:\n  private: ['{host}']\n")
    port = free_port()
    argv = [sys.executable, "-m", "kubeshape", "webhook", "serve", "--cert-file", str(files.cert),
            "--key-file", str(files.key), "--host", "127.0.0.1", "--port", str(port),
            "--config", str(work / "kubeshape.yaml"), "--kubeconfig", str(cluster.kubeconfig),
            "--registry", host, "--insecure-registry", "--registry-ttl", "1"]
    log = work / "webhook.log"
    proc = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    hook = webhook_configuration(files.ca_cert.read_bytes(), url=f"https://127.0.0.1:{port}/validate",
                                 failure_policy="Fail", timeout_seconds=5, match_labels={"kubeshape-test": label})
    hook["metadata"]["name"] = f"kubeshape-{label}"
    g = Gate(cluster, namespace, host, hook["metadata"]["name"], proc, argv, log, port, files.ca_cert)
    try:
        wait_ready(port, files.ca_cert, proc, log)
        cluster.kubectl("create", "namespace", namespace)
        cluster.kubectl("label", "namespace", namespace, f"kubeshape-test={label}")
        cluster.kubectl("apply", "-f", "-", input=json.dumps(hook))
        _wait_gate_active(g)
        yield g
    finally:
        g.stop()
        cluster.kubectl("delete", "validatingwebhookconfiguration", g.config_name, "--ignore-not-found",
                        check=False)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _wait_gate_active(g: Gate, timeout: float = 30) -> None:
    """The apiserver picks a new webhook configuration up within a second or two: wait until it calls it."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = g.kubectl("apply", "--dry-run=server", "-f", "-",
                      input=deployment("probe", f"family-assistant:{SEED_TAG}"))
        if r.returncode != 0 and "KS101" in r.stderr:
            return
        time.sleep(0.3)
    raise AssertionError("the webhook never became active")


def test_seed_unqualified_deployment_is_denied_with_rule_and_fix(gate: Gate) -> None:
    r = gate.kubectl("apply", "-f", "-", input=deployment("family-assistant-backend", f"family-assistant:{SEED_TAG}"))
    assert r.returncode != 0
    assert "denied the request" in r.stderr and "KS101" in r.stderr
    # the fix names the registry the image must come from
    assert f"{gate.host}/family-assistant:{SEED_TAG}" in r.stderr
    assert gate.kubectl("get", "deployment", "family-assistant-backend").returncode != 0  # nothing was created


def test_image_in_registry_is_admitted_and_set_image_to_unqualified_is_denied(gate: Gate) -> None:
    good = f"{gate.host}/family-assistant:1.4.2"
    r = gate.kubectl("apply", "-f", "-", input=deployment("family-assistant-backend", good, cause="release 1.4.2"))
    assert r.returncode == 0, r.stderr
    assert "Warning" not in r.stderr
    r = gate.kubectl("set", "image", "deploy/family-assistant-backend", "family-assistant=family-assistant:foo")
    assert r.returncode != 0 and "KS101" in r.stderr, r.stderr
    live = json.loads(gate.kubectl("get", "deployment", "family-assistant-backend", "-o", "json").stdout)
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == good  # unchanged


def test_tag_missing_from_registry_is_denied(gate: Gate) -> None:
    r = gate.kubectl("apply", "-f", "-", input=deployment("never-pushed", f"{gate.host}/family-assistant:nope"))
    assert r.returncode != 0 and "KS104" in r.stderr and "does not exist" in r.stderr, r.stderr


def test_warning_level_finding_is_admitted_and_kubectl_prints_it(gate: Gate) -> None:
    r = gate.kubectl("apply", "-f", "-", input=deployment("dash", f"{gate.host}/family-assistant:latest"))
    assert r.returncode == 0, r.stderr
    assert "Warning:" in r.stderr and "KS103" in r.stderr
    # a rollout without a change-cause is let through with a warning too
    r = gate.kubectl("set", "image", "deploy/dash", f"family-assistant={gate.host}/family-assistant:1.4.2")
    assert r.returncode == 0, r.stderr
    assert "KS205" in r.stderr and "change-cause" in r.stderr


def test_server_side_dry_run_is_judged_the_same(gate: Gate) -> None:
    r = gate.kubectl("apply", "--dry-run=server", "-f", "-", input=deployment("dry", "family-assistant:x"))
    assert r.returncode != 0 and "KS101" in r.stderr


def test_hpa_of_a_missing_deployment_is_denied_from_the_cluster_cache(gate: Gate) -> None:
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "whisper-hpa"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "whisper"},
                    "minReplicas": 1, "maxReplicas": 3}}
    r = gate.kubectl("apply", "-f", "-", input=json.dumps(hpa))
    assert r.returncode != 0 and "KS601" in r.stderr, r.stderr
    gate.kubectl("apply", "-f", "-", input=deployment("whisper", f"{gate.host}/family-assistant:1.4.2", cause="x"))
    end = time.monotonic() + 20  # the watch delivers the new Deployment to the cache
    while time.monotonic() < end:
        r = gate.kubectl("apply", "-f", "-", input=json.dumps(hpa))
        if r.returncode == 0:
            break
        time.sleep(0.3)
    assert r.returncode == 0, r.stderr


def test_endpoint_naming_a_missing_service_is_denied(gate: Gate) -> None:
    dep = json.loads(deployment("otel-app", f"{gate.host}/family-assistant:1.4.2", cause="x"))
    dep["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": f"http://otel-collector.{gate.namespace}.svc:4317"}]
    r = gate.kubectl("apply", "-f", "-", input=json.dumps(dep))
    assert r.returncode != 0 and "KS701" in r.stderr and "otel-collector" in r.stderr, r.stderr


def test_failure_policy_decides_while_the_webhook_is_down(gate: Gate) -> None:
    gate.stop()
    try:
        gate.set_failure_policy("Ignore")
        end = time.monotonic() + 20  # the apiserver reloads webhook configurations from its informer
        while time.monotonic() < end:
            r = gate.kubectl("apply", "--dry-run=server", "-f", "-", input=deployment("down", "family-assistant:x"))
            if r.returncode == 0:
                break
            time.sleep(0.3)
        assert r.returncode == 0, r.stderr
        gate.set_failure_policy("Fail")
        end = time.monotonic() + 20
        while time.monotonic() < end:
            r = gate.kubectl("apply", "--dry-run=server", "-f", "-", input=deployment("down", "family-assistant:x"))
            if r.returncode != 0:
                break
            time.sleep(0.3)
        assert r.returncode != 0
        assert "failed calling webhook" in r.stderr and "KS101" not in r.stderr, r.stderr
    finally:
        gate.set_failure_policy("Fail")
        gate.start()
    r = gate.kubectl("apply", "--dry-run=server", "-f", "-", input=deployment("up", "family-assistant:x"))
    assert r.returncode != 0 and "KS101" in r.stderr
