"""Flux on the test bed: real source-controller and kustomize-controller reconcile a repository served by
the loopback git server into the shared cluster."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.cluster import Cluster
from testbed.flux import Flux
from testbed.gitops import WorkingCopy, condition, get_or_none
from testbed.gitserver import GitServer

SOURCE = "/apis/source.toolkit.fluxcd.io/v1"
KUSTOMIZE = "/apis/kustomize.toolkit.fluxcd.io/v1"
WAIT = 180.0  # seconds: generous upper bound for a reconcile on a loaded 2-core machine

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
data:
  greeting: {greeting}
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: {image}
"""


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"flux-test-{secrets.token_hex(3)}"
    cluster.api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    # Flux objects first, while the controllers still run to remove their finalizers (and prune).
    for kind in ("kustomizations.kustomize.toolkit.fluxcd.io", "gitrepositories.source.toolkit.fluxcd.io"):
        cluster.kubectl("delete", kind, "--all", "-n", name, "--timeout=60s", check=False, timeout=90)
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _wait_for(check: Callable[[], bool], what: str, flux: Flux, *objects: Callable[[], Any]) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return
        assert all(flux.alive().values()), f"a Flux controller exited: {flux.alive()}"
        time.sleep(0.5)
    state = "\n".join(repr(get()) for get in objects)
    logs = "\n".join(f"--- {name}\n{p.tail(15)}" for name, p in flux.procs.items())
    pytest.fail(f"{what}: not reached after {WAIT:.0f}s\n{state}\n{logs}")


def test_flux_crds_are_installed_and_served(cluster: Cluster, flux: Flux) -> None:
    for crd in ("gitrepositories.source.toolkit.fluxcd.io", "kustomizations.kustomize.toolkit.fluxcd.io"):
        obj = cluster.api("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}")
        established = [c for c in obj["status"]["conditions"] if c["type"] == "Established"]
        assert established and established[0]["status"] == "True", crd
        assert "v1" in [v["name"] for v in obj["spec"]["versions"] if v["served"]], crd
    assert all(flux.alive().values())


def test_kustomization_applies_the_pushed_commit_and_follows_new_pushes(
        cluster: Cluster, flux: Flux, git_server: GitServer, namespace: str, tmp_path: Path) -> None:
    repo = WorkingCopy(tmp_path / "work", git_server.create_repo(namespace))
    first = repo.commit_and_push({
        "apps/settings.yaml": CONFIGMAP.format(name="settings", greeting="hello"),
        "apps/obsolete.yaml": CONFIGMAP.format(name="obsolete", greeting="soon-gone"),
        "apps/web.yaml": DEPLOYMENT.format(image="registry.invalid/web:1"),
    }, "first")

    ns = f"/namespaces/{namespace}"
    cluster.api("POST", f"{SOURCE}{ns}/gitrepositories", {
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "homelab", "namespace": namespace},
        "spec": {"url": repo.url, "interval": "10s", "ref": {"branch": "main"}}})
    cluster.api("POST", f"{KUSTOMIZE}{ns}/kustomizations", {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": namespace},
        "spec": {"interval": "10s", "path": "./apps", "prune": True, "targetNamespace": namespace,
                 "sourceRef": {"kind": "GitRepository", "name": "homelab"}}})

    def source() -> dict[str, Any] | None:
        return get_or_none(cluster, f"{SOURCE}{ns}/gitrepositories/homelab")

    def kustomization() -> dict[str, Any] | None:
        return get_or_none(cluster, f"{KUSTOMIZE}{ns}/kustomizations/apps")

    def applied(sha: str) -> bool:
        ks = kustomization() or {}
        ready = condition(ks) or {}
        return ready.get("status") == "True" and ks["status"].get("lastAppliedRevision") == f"main@sha1:{sha}"

    _wait_for(lambda: applied(first), "Kustomization Ready at the first commit", flux, source, kustomization)

    artifact = (source() or {})["status"]["artifact"]
    assert artifact["revision"] == f"main@sha1:{first}"
    assert artifact["url"].startswith(f"http://{flux.artifact_addr}/gitrepository/{namespace}/homelab/")
    flux_labels = {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": namespace}
    settings = cluster.api("GET", f"/api/v1{ns}/configmaps/settings")
    assert settings["data"] == {"greeting": "hello"}
    assert flux_labels.items() <= settings["metadata"]["labels"].items()
    web = cluster.api("GET", f"/apis/apps/v1{ns}/deployments/web")
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.invalid/web:1"
    assert flux_labels.items() <= web["metadata"]["labels"].items()
    assert get_or_none(cluster, f"/api/v1{ns}/configmaps/obsolete") is not None
    managers = {m["manager"] for m in web["metadata"]["managedFields"]}
    assert "kustomize-controller" in managers

    second = repo.commit_and_push({
        "apps/settings.yaml": CONFIGMAP.format(name="settings", greeting="bonjour"),
        "apps/obsolete.yaml": None,
        "apps/web.yaml": DEPLOYMENT.format(image="registry.invalid/web:2"),
    }, "second")
    assert second != first
    # no reconcile request: the GitRepository's 10s interval has to notice the push
    _wait_for(lambda: applied(second), "Kustomization Ready at the second commit", flux, source, kustomization)

    assert cluster.api("GET", f"/api/v1{ns}/configmaps/settings")["data"] == {"greeting": "bonjour"}
    web = cluster.api("GET", f"/apis/apps/v1{ns}/deployments/web")
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.invalid/web:2"
    _wait_for(lambda: get_or_none(cluster, f"/api/v1{ns}/configmaps/obsolete") is None,
              "the ConfigMap removed from the repository pruned", flux, kustomization)
