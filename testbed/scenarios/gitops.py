"""The homelab, reconciled by Flux from a git repository on the loopback git server.

    scenario = load_gitops(cluster, registry.host, workdir)   # python -m testbed up --scenario gitops

The repository is laid out like a Flux-bootstrapped homelab repository:

    clusters/homelab/flux-system/gotk-sync.yaml   GitRepository + Kustomization "flux-system" (manage themselves)
    clusters/homelab/apps.yaml                    Kustomization "apps"          -> ./apps/homelab
    clusters/homelab/observability.yaml           Kustomization "observability" -> ./infrastructure/observability
    apps/homelab/<service>.yaml                   one file per service of testbed/scenarios/homelab.yaml
    infrastructure/observability/                 names a collector manifest that was never committed

What Flux cannot see, done the way the seed's cluster got it: the database Secret and the two HPAs of
services that no longer exist are applied by hand, and family-assistant-backend's image is changed with
``kubectl set image`` after Flux applied it (Flux reverts that at the next reconcile of "apps", interval 10m).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from testbed.cluster import Cluster, NodeSpec
from testbed.flux import Flux, start_flux
from testbed.gitops import GitOpsSource, WorkingCopy, condition, wait_for
from testbed.gitserver import GitServer, start_git_server
from testbed.scenarios.loader import Scenario, apply, push_images, set_image

FLUX_NAMESPACE = "flux-system"
SOURCE = "flux-system"
APPS = "apps"
OBSERVABILITY = "observability"
CLUSTER_PATH = "./clusters/homelab"
BY_HAND = ("Secret", "HorizontalPodAutoscaler")  # never committed: applied with kubectl


@dataclass
class GitOpsScenario:
    scenario: Scenario
    flux: Flux
    git: GitServer
    source: GitOpsSource
    commit: str  # the commit Flux applied

    @property
    def repo(self) -> WorkingCopy:
        return self.source.repo

    def stop(self) -> None:
        self.flux.stop()
        self.git.stop()


def _dump(*docs: dict[str, Any]) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def _kustomization(name: str, path: str, *, interval: str = "10m", depends_on: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"interval": interval, "path": path, "prune": True,
                            "sourceRef": {"kind": "GitRepository", "name": SOURCE}}
    if depends_on:
        spec["dependsOn"] = [{"name": depends_on}]
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": FLUX_NAMESPACE}, "spec": spec}


def repository_files(scenario: Scenario, url: str) -> dict[str, str]:
    """The files of the homelab's GitOps repository, for a GitRepository that clones ``url``."""
    sync = _dump({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                  "metadata": {"name": SOURCE, "namespace": FLUX_NAMESPACE},
                  "spec": {"interval": "10s", "ref": {"branch": "main"}, "url": url}},
                 _kustomization(SOURCE, CLUSTER_PATH))
    files = {f"{CLUSTER_PATH[2:]}/flux-system/gotk-sync.yaml": sync,
             f"{CLUSTER_PATH[2:]}/flux-system/kustomization.yaml": _dump(
                 {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                  "resources": ["gotk-sync.yaml"]}),
             f"{CLUSTER_PATH[2:]}/apps.yaml": _dump(_kustomization(APPS, "./apps/homelab")),
             f"{CLUSTER_PATH[2:]}/observability.yaml": _dump(
                 _kustomization(OBSERVABILITY, "./infrastructure/observability", depends_on=APPS)),
             "infrastructure/observability/kustomization.yaml": _dump(
                 {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                  "namespace": scenario.namespace, "resources": ["otel-collector.yaml"]})}
    services: dict[str, list[dict[str, Any]]] = {}
    for obj in scenario.objects:
        if obj["kind"] in BY_HAND:
            continue
        name = "namespace" if obj["kind"] == "Namespace" else obj["metadata"]["name"]
        services.setdefault(name, []).append(obj)
    for name, docs in services.items():
        files[f"apps/homelab/{name}.yaml"] = _dump(*docs)
    files["apps/homelab/kustomization.yaml"] = _dump(
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
         "resources": [f"{name}.yaml" for name in services]})
    return files


def load_gitops(cluster: Cluster, registry_host: str, workdir: Path, *, timeout: float = 240) -> GitOpsScenario:
    """Start a git server and Flux for ``cluster``, push the homelab's repository and bootstrap Flux from it;
    return once Flux applied it and the by-hand changes are in place."""
    scenario = Scenario.load("homelab")
    scenario.pushed = push_images(scenario, registry_host, datetime.now(UTC))
    cluster.create_nodes([NodeSpec(n["name"], tuple(n.get("images") or ())) for n in scenario.spec["nodes"]])
    git = start_git_server(workdir / "git")
    flux: Flux | None = None
    try:
        flux = start_flux(cluster, workdir / "flux")
        url = git.repo_url("homelab")
        source = GitOpsSource.create(cluster, git, workdir / "checkout", name=SOURCE, namespace=FLUX_NAMESPACE,
                                     repo_name="homelab", files=repository_files(scenario, url))
        sha = source.repo.head()
        source.add_kustomization(SOURCE, path=CLUSTER_PATH)
        source.wait_applied(SOURCE, sha, flux, timeout)
        source.wait_applied(APPS, sha, flux, timeout)
        for obj in scenario.objects:
            if obj["kind"] in BY_HAND:
                apply(cluster, obj)
        wait_for(lambda: _build_failed(source), timeout, f"Kustomization {OBSERVABILITY} failing to build", flux,
                 lambda: source.kustomization(OBSERVABILITY))
        spec = scenario.spec["rollout"]
        set_image(cluster, scenario.namespace, spec["deployment"], spec["container"], spec["broken"])
        return GitOpsScenario(scenario, flux, git, source, sha)
    except BaseException:
        if flux is not None:
            flux.stop()
        git.stop()
        raise


def _build_failed(source: GitOpsSource) -> bool:
    ready = condition(source.kustomization(OBSERVABILITY)) or {}
    return ready.get("status") == "False" and ready.get("reason") == "BuildFailed"
