"""Live doctor reads Prometheus rule files held in ConfigMaps (Prometheus without the Operator), on a REAL
control plane: KS703 sees them, nothing else of a ConfigMap is kept, and a role that cannot list ConfigMaps
makes a blind spot rather than a false "no rule file"."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeshape.rbac import render as render_rbac
from kubeshape.sources.bundle_writer import bundle_members, write_bundle
from kubeshape.sources.live import collect, connect
from testbed.cluster import Cluster

CANARY = "S3CR3T-CANARY-configmap-value"

# The three alerts KS703 wants, as a plain Prometheus rule file (what the prometheus-community chart mounts).
ALERTING_RULES = """\
groups:
- name: deployment-health
  rules:
  - alert: PodRestartStorm
    expr: sum by (namespace, pod) (increase(kube_pod_container_status_restarts_total[1d])) > 5
    for: 10m
  - alert: DeploymentReplicasUnavailable
    expr: kube_deployment_status_replicas_unavailable > 0
    for: 15m
  - alert: ImagePullFailing
    expr: kube_pod_container_status_waiting_reason{reason=~"ImagePullBackOff|ErrImagePull"} == 1
    for: 5m
"""


def ks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeshape", *args], capture_output=True, text=True, timeout=300,
                          check=False)


def ks703(kubeconfig: Path, ns: str) -> tuple[list[dict[str, Any]], list[str]]:
    """KS703 findings and blind spots of live doctor on namespace ``ns``."""
    proc = ks("doctor", "--kubeconfig", str(kubeconfig), "-n", ns, "--select", "KS703", "-o", "json")
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    return [f for f in report["findings"] if f["rule"] == "KS703"], list(report["blindSpots"])


def configmap(name: str, ns: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data}


@pytest.fixture
def ns(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of this test's own (the cluster is shared), deleted afterwards with all it holds."""
    name = "ks703-" + request.node.name.removeprefix("test_").replace("_", "-")[:40].rstrip("-")
    cluster.api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        cluster.api("DELETE", f"/api/v1/namespaces/{name}")


def add_rule_configmap(cluster: Cluster, ns: str) -> None:
    cluster.api("POST", f"/api/v1/namespaces/{ns}/configmaps", configmap("prometheus-server", ns, {
        "alerting_rules.yml": ALERTING_RULES,
        "prometheus.yml": f"global: {{scrape_interval: 1m}}\n# {CANARY}\n"}))


def test_rule_file_in_a_configmap_satisfies_ks703(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    c = cluster
    c.api("POST", f"/api/v1/namespaces/{ns}/configmaps", configmap("app-settings", ns, {"LOG_LEVEL": CANARY}))
    [without], spots = ks703(c.kubeconfig, ns)
    assert spots == []
    assert "no PrometheusRule and no rule file in a ConfigMap, in the repo or the cluster" in without["evidence"]

    add_rule_configmap(c, ns)
    found, spots = ks703(c.kubeconfig, ns)
    assert found == [] and spots == []

    # Collected and bundled: the rule file only; other keys and other ConfigMaps keep metadata alone.
    api, _ = connect(c.kubeconfig, None)
    with api.http:
        col = collect(api, namespaces=[ns], max_logs=0)
    [cms] = [doc for spec, doc in col.lists.items() if spec.kind == "ConfigMap"]
    by_name = {i["metadata"]["name"]: i for i in cms["items"]}
    assert by_name["prometheus-server"]["data"] == {"alerting_rules.yml": ALERTING_RULES}
    assert "data" not in by_name["app-settings"]
    bundle = write_bundle(tmp_path / "b.tar.gz", bundle_members(col))
    with tarfile.open(bundle) as tar:
        blob = b"".join(f.read() for m in tar if m.isfile() and (f := tar.extractfile(m)) is not None)
    assert b"alerting_rules.yml" in blob and CANARY.encode() not in blob
    offline = json.loads(ks("doctor", "--bundle", str(bundle), "--select", "KS703", "-o", "json").stdout)
    assert [f for f in offline["findings"] if f["rule"] == "KS703"] == []


def _service_account_kubeconfig(c: Cluster, tmp_path: Path, rbac_yaml: str, name: str, sa_ns: str) -> Path:
    c.kubectl("apply", "-f", "-", input=rbac_yaml)
    token = c.api("POST", f"/api/v1/namespaces/{sa_ns}/serviceaccounts/{name}/token",
                  {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                   "spec": {"expirationSeconds": 3600}})["status"]["token"]
    kubeconfig = tmp_path / f"{name}.kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "testbed",
        "clusters": [{"name": "testbed", "cluster": {"server": c.server, "certificate-authority": str(c.ca_file)}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": "testbed", "context": {"cluster": "testbed", "user": name}}]}))
    return kubeconfig


def test_shipped_role_reads_rule_files_and_a_narrower_one_is_a_blind_spot(cluster: Cluster, ns: str,
                                                                          tmp_path: Path) -> None:
    c = cluster
    add_rule_configmap(c, ns)
    shipped = render_rbac(ns).replace("kubeshape-reader", "ks703-reader")
    narrow = render_rbac(ns).replace("kubeshape-reader", "ks703-narrow").replace("  - configmaps\n", "")
    assert "configmaps" in shipped and "configmaps" not in narrow
    try:
        reader = _service_account_kubeconfig(c, tmp_path, shipped, "ks703-reader", ns)
        found, spots = ks703(reader, ns)
        assert found == [] and spots == []

        blind = _service_account_kubeconfig(c, tmp_path, narrow, "ks703-narrow", ns)
        [f], spots = ks703(blind, ns)
        assert any(s.startswith("ConfigMap: forbidden") for s in spots), spots
        assert "ConfigMaps were not readable: rule files there were not checked" in f["evidence"]
        assert not any("no rule file in a ConfigMap, in the repo or the cluster" in e for e in f["evidence"])
    finally:
        for name in ("ks703-reader", "ks703-narrow"):
            for path in (f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{name}",
                         f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}"):
                try:
                    c.api("DELETE", path)
                except urllib.error.HTTPError as exc:
                    if exc.code != 404:
                        raise
