"""Flux's helm-controller on the test bed: a HelmRelease installs a chart from a loopback chart repository, and a
failed upgrade shows up in its status the way users see it."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.cluster import Cluster
from testbed.flux import Flux
from testbed.gitops import condition, ensure_namespace, get_or_none, wait_for
from testbed.helmrepo import HelmRepo, start_helm_repo

SOURCE = "/apis/source.toolkit.fluxcd.io/v1"
HELM = "/apis/helm.toolkit.fluxcd.io/v2"

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: %s
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      containers:
        - name: web
          image: {{ .Values.image }}
"""


@pytest.fixture(scope="module")
def charts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HelmRepo]:
    repo = start_helm_repo(tmp_path_factory.mktemp("charts") / "repo")
    repo.add_chart("web", "1.0.0", templates={"deployment.yaml": DEPLOYMENT % "1"},
                   values={"image": "registry.invalid/web:1"})
    # 1.1.0 renders a Deployment the API server refuses: the upgrade fails
    repo.add_chart("web", "1.1.0", templates={"deployment.yaml": DEPLOYMENT % "-1"},
                   values={"image": "registry.invalid/web:2"})
    yield repo
    repo.stop()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"flux-helm-{secrets.token_hex(3)}"
    ensure_namespace(cluster, name)
    yield name
    for kind in ("helmreleases.helm.toolkit.fluxcd.io", "helmrepositories.source.toolkit.fluxcd.io"):
        cluster.kubectl("delete", kind, "--all", "-n", name, "--timeout=60s", check=False, timeout=90)
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _release(namespace: str, version: str) -> dict[str, Any]:
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"interval": "10m", "timeout": "60s",
                     "chart": {"spec": {"chart": "web", "version": version, "interval": "10s",
                                        "sourceRef": {"kind": "HelmRepository", "name": "charts"}}}}}


def test_helmrelease_installs_then_reports_a_failed_upgrade(cluster: Cluster, flux: Flux, charts: HelmRepo,
                                                            namespace: str, tmp_path: Path) -> None:
    assert "helm-controller" in flux.procs
    ns = f"/namespaces/{namespace}"
    cluster.api("POST", f"{SOURCE}{ns}/helmrepositories", {
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "charts", "namespace": namespace}, "spec": {"url": charts.url, "interval": "10s"}})
    cluster.api("POST", f"{HELM}{ns}/helmreleases", _release(namespace, "1.0.0"))

    def release() -> dict[str, Any] | None:
        return get_or_none(cluster, f"{HELM}{ns}/helmreleases/web")

    def ready_is(status: str, reason: str | None = None) -> bool:
        cond = condition(release()) or {}
        return cond.get("status") == status and (reason is None or cond.get("reason") == reason)

    wait_for(lambda: ready_is("True"), 180, "HelmRelease web installed", flux, release)
    web = cluster.api("GET", f"/apis/apps/v1{ns}/deployments/web")
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.invalid/web:1"
    assert web["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert web["metadata"]["annotations"]["meta.helm.sh/release-name"] == "web"
    assert (release() or {})["status"]["history"][0]["chartVersion"] == "1.0.0"

    cluster.api("PATCH", f"{HELM}{ns}/helmreleases/web", {"spec": {"chart": {"spec": {"version": "1.1.0"}}}},
                content_type="application/merge-patch+json")
    wait_for(lambda: ready_is("False", "UpgradeFailed"), 180, "HelmRelease web upgrade failed", flux, release)
    cond = condition(release()) or {}
    assert "replicas" in cond["message"], cond
    # the failed upgrade left the running release alone
    web = cluster.api("GET", f"/apis/apps/v1{ns}/deployments/web")
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.invalid/web:1"

    # doctor says so, with Helm's reason and message, and does not call the Helm-made Deployment hand-applied
    proc = subprocess.run([sys.executable, "-m", "kubeshape", "doctor", "--kubeconfig", str(cluster.kubeconfig),
                           "-n", namespace, "-o", "json"], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1, proc.stderr
    findings = json.loads(proc.stdout)["findings"]
    failed = [f for f in findings if f["rule"] == "KS206"]
    assert [f["object"]["name"] for f in failed] == ["web"], findings
    assert failed[0]["object"]["kind"] == "HelmRelease.helm.toolkit.fluxcd.io"
    text = json.dumps(failed[0])
    assert "UpgradeFailed" in text and "replicas" in text, text
    assert not [f for f in findings if f["rule"] == "KS210"], findings
