"""KS206-KS211: Flux rules on objects shaped like the real controllers' (builders in tests/test_flux_doctor.py),
each with the case that fires and the cases that must not."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from kubeshape.inventory import GitSource
from kubeshape.sources.git import load_git
from kubeshape.sources.repo import load_repo
from tests.helpers import check
from tests.test_flux_doctor import (
    FLUX_APPLY,
    IMAGE_FIELDS,
    KCM_STATUS,
    NOW,
    SHA1,
    SHA2,
    URL,
    configmap,
    flux_labels,
    git_repository,
    healthy_world,
    helm_release,
    helm_repository,
    inv_of,
    kustomization,
    mf,
    rev,
    web_deployment,
)

BUILD_FAILED = ("kustomize build failed: accumulating resources: accumulation err='accumulating resources from "
                "'missing.yaml': open /tmp/kustomization-1287280965/apps/missing.yaml: no such file or directory'")


# -- KS206 flux-not-ready -------------------------------------------------------------------------------------------
def test_ks206_build_failure_reports_flux_message_since_path_and_revision() -> None:
    ks = kustomization(ready="False", reason="BuildFailed", message=BUILD_FAILED, attempted=rev(SHA2),
                       since="2025-11-17T08:30:00Z")
    [f] = check("KS206", inv_of([git_repository(sha=SHA2), ks]))
    assert f.object is not None and f.object.kind == "Kustomization.kustomize.toolkit.fluxcd.io"
    text = "\n".join(f.evidence)
    assert "BuildFailed" in f.message and "missing.yaml" in text
    assert "since 2025-11-17T08:30:00Z (90m ago)" in text
    assert "path: ./apps" in text and f"lastAttemptedRevision: {rev(SHA2)}" in text
    assert "the cluster still runs main@sha1:fcc9b14; the source is at main@sha1:9a1b2c3" in text
    assert "kustomize build ./apps" in f.fix
    assert "flux reconcile kustomization apps -n flux-system --with-source" in f.fix


def test_ks206_healthy_and_briefly_progressing_objects_do_not_fire() -> None:
    static_oci = helm_repository("podinfo")
    static_oci["spec"].update(type="oci", url="oci://ghcr.io/stefanprodan/charts")
    static_oci.pop("status")  # source-controller leaves OCI HelmRepositories without status
    assert check("KS206", inv_of([*healthy_world(), static_oci])) == []
    busy = kustomization(ready="Unknown", reason="Progressing", message="Reconciliation in progress",
                         since="2025-11-17T09:58:00Z")
    assert check("KS206", inv_of([git_repository(), busy])) == []


def test_ks206_unknown_for_longer_than_two_intervals_fires() -> None:
    stuck = kustomization(ready="Unknown", reason="Progressing", message="Reconciliation in progress",
                          since="2025-11-17T09:00:00Z", interval="10m")
    [f] = check("KS206", inv_of([git_repository(), stuck]))
    assert "Ready=Unknown Progressing since 2025-11-17T09:00:00Z" in f.evidence[0]


def test_ks206_helmrelease_waiting_on_its_helmrepository_points_at_the_repository() -> None:
    repo = helm_repository(ready=False, reason="Failed", message="failed to fetch Helm repository index: 404")
    release = helm_release(ready=False, reason="ArtifactFailed",
                           message="HelmChart 'flux-system/homelab-redis' is not ready")
    [f] = check("KS206", inv_of([repo, release]))
    assert f.object is not None and (f.object.kind, f.object.name) == ("HelmRepository.source.toolkit.fluxcd.io",
                                                                       "bitnami")
    assert any("blocks HelmRelease homelab/redis" in e for e in f.evidence)


def test_ks206_suspended_object_is_left_to_ks207() -> None:
    ks = kustomization(ready="False", reason="BuildFailed", message=BUILD_FAILED, suspend=True)
    assert check("KS206", inv_of([git_repository(), ks])) == []


# -- KS207 flux-suspended -------------------------------------------------------------------------------------------
def test_ks207_suspended_kustomization_says_who_since_when_and_what_it_leaves() -> None:
    ks = kustomization(suspend=True, applied=rev(SHA1), inventory=["homelab_web_apps_Deployment",
                                                                   "homelab_web__Service"],
                       managed=[mf("flux", "Update", "2025-11-10T08:00:00Z", {"f:spec": {"f:suspend": {}}})])
    [f] = check("KS207", inv_of([git_repository(sha=SHA2), ks]))
    text = "\n".join(f.evidence)
    assert "set by flux at 2025-11-10T08:00:00Z (7d2h ago)" in text
    assert "2 applied object(s) in namespace(s) homelab" in text
    assert "stays at main@sha1:fcc9b14 while its source is at main@sha1:9a1b2c3" in text
    assert f.fix == "flux resume kustomization apps -n flux-system"


def test_ks207_suspended_source_names_what_sees_no_new_revisions_and_running_objects_do_not_fire() -> None:
    [f] = check("KS207", inv_of([git_repository(suspend=True), kustomization()]))
    assert "no new revisions are fetched from https://github.com/pesuga/homelab.git; Kustomization flux-system/apps " \
           "see none" in "\n".join(f.evidence)
    assert "flux resume source git homelab -n flux-system" in f.fix
    assert check("KS207", inv_of(healthy_world())) == []


# -- KS208 flux-behind ----------------------------------------------------------------------------------------------
def test_ks208_kustomization_behind_its_source_for_longer_than_its_interval() -> None:
    src = git_repository(sha=SHA2, fetched="2025-11-17T09:00:00Z")
    [f] = check("KS208", inv_of([src, kustomization(applied=rev(SHA1), interval="10m")]))
    assert "applied main@sha1:fcc9b14; GitRepository flux-system/homelab has fetched main@sha1:9a1b2c3" in f.evidence[0]
    assert "flux reconcile kustomization apps -n flux-system --with-source" in f.fix


def test_ks208_no_finding_within_the_interval_in_step_or_when_flux_reports_a_failure() -> None:
    fresh = git_repository(sha=SHA2, fetched="2025-11-17T09:58:00Z")
    assert check("KS208", inv_of([fresh, kustomization(applied=rev(SHA1), interval="10m")])) == []
    assert check("KS208", inv_of(healthy_world())) == []
    failing = kustomization(applied=rev(SHA1), ready="False", reason="BuildFailed", message=BUILD_FAILED)
    assert check("KS208", inv_of([git_repository(sha=SHA2), failing])) == []


def test_ks208_suspended_kustomization_is_behind_at_once() -> None:
    src = git_repository(sha=SHA2, fetched="2025-11-17T09:59:30Z")
    [f] = check("KS208", inv_of([src, kustomization(applied=rev(SHA1), suspend=True)]))
    assert "it is suspended" in f.root_cause and f.fix.startswith("flux resume kustomization apps")


def _checkout(path: Path, remote: str, commits: list[str]) -> list[str]:
    """A git checkout whose ``origin`` is ``remote`` and whose ``origin/main`` holds ``commits`` (committer dates)."""
    path.mkdir(parents=True)

    def git(*args: str, when: str | None = None) -> str:
        env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
        if when:
            env["GIT_COMMITTER_DATE"] = env["GIT_AUTHOR_DATE"] = when
        return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, check=True,
                              env=env).stdout.strip()

    git("init", "-q", "-b", "main")
    git("remote", "add", "origin", remote)
    shas = []
    for when in commits:
        git("commit", "-q", "--allow-empty", "-m", when, when=when)
        shas.append(git("rev-parse", "HEAD"))
    git("update-ref", "refs/remotes/origin/main", shas[-1])
    return shas


def _git_source(tmp_path: Path, remote: str, commits: list[str]) -> tuple[GitSource, list[str]]:
    shas = _checkout(tmp_path / "checkout", remote, commits)
    git = load_git(tmp_path / "checkout")
    assert git is not None
    return git, shas


def test_ks208_behind_the_pushed_head_of_the_checkout_that_is_the_flux_source(tmp_path: Path) -> None:
    git, (first, second) = _git_source(tmp_path, "git@github.com:pesuga/homelab",
                                       ["2025-11-17T07:00:00Z", "2025-11-17T08:00:00Z"])
    src = git_repository(sha=first, interval="1h", fetched="2025-11-17T07:05:00Z")  # the 08:00 commit never was
    [f] = check("KS208", inv_of([src, kustomization(applied=rev(first))], git=git))
    text = "\n".join(f.evidence)
    assert f"origin/main in the checkout ({git.root}) is at {second[:12]}, committed 120m ago" in text
    assert (f"GitRepository flux-system/homelab has not fetched {second[:12]} (it polls every 1h; last new artifact "
            "2025-11-17T07:05:00Z (175m ago))") in f.root_cause
    assert "behind the head of origin/main" in f.message


def test_ks208_says_nothing_about_head_unless_the_checkout_is_the_source_or_within_the_poll(tmp_path: Path) -> None:
    git, (first, _) = _git_source(tmp_path, "https://github.com/someone-else/homelab.git",
                                  ["2025-11-17T07:00:00Z", "2025-11-17T08:00:00Z"])
    assert check("KS208", inv_of([git_repository(sha=first), kustomization(applied=rev(first))], git=git)) == []
    recent, (old, _) = _git_source(tmp_path / "b", URL, ["2025-11-17T07:00:00Z", "2025-11-17T09:59:00Z"])
    src = git_repository(sha=old, interval="5m")  # pushed a minute ago, the next poll is at most 5m away
    assert check("KS208", inv_of([src, kustomization(applied=rev(old))], git=recent)) == []
    unknown = GitSource(root="/x", commits=frozenset({SHA2}), remotes={"origin": URL},
                        branches={"origin/main": (SHA2, 1_700_000_000)})
    assert check("KS208", inv_of([git_repository(sha=SHA1), kustomization(applied=rev(SHA1))], git=unknown)) == []


# -- KS210 applied-by-hand ------------------------------------------------------------------------------------------
def _hand_made() -> dict[str, Any]:
    return configmap("debug-settings", managed=[mf("kubectl-client-side-apply", "Update", "2025-11-16T22:14:03Z",
                                                   {"f:data": {".": {}, "f:greeting": {}}})])


def test_ks210_object_applied_by_hand_into_a_flux_namespace() -> None:
    [f] = check("KS210", inv_of([*healthy_world(), _hand_made()]))
    assert f.object is not None and (f.object.kind, f.object.name) == ("ConfigMap", "debug-settings")
    assert f.severity.label == "warning" and "(applied by hand)" in f.message
    text = "\n".join(f.evidence)
    assert "namespace homelab is managed by Flux: Kustomization flux-system/apps (path ./apps)" in text
    assert "written by kubectl-client-side-apply (Update at 2025-11-16T22:14:03Z)" in text
    assert "kubectl get configmap debug-settings -n homelab -o yaml > apps/debug-settings.yaml" in f.fix
    assert "kubectl delete configmap debug-settings -n homelab" in f.fix


def test_ks210_written_at_runtime_by_an_application_is_info() -> None:
    lock = configmap("leader", managed=[mf("my-operator", "Update", NOW, {"f:data": {}})])
    [f] = check("KS210", inv_of([*healthy_world(), lock]))
    assert f.severity.label == "info" and "applied by hand" not in f.message


def test_ks210_flux_helm_controller_children_and_system_objects_are_not_reported() -> None:
    objs = [*healthy_world(),
            configmap("in-inventory"),  # no labels, but the inventory holds it
            configmap("from-helm", labels={"app.kubernetes.io/managed-by": "Helm"},
                      annotations={"meta.helm.sh/release-name": "redis"}),
            configmap("child", owners=[{"kind": "Deployment", "name": "web", "uid": "uid-homelab-web",
                                        "controller": True}]),
            configmap("elsewhere", "default", managed=[mf("kubectl-create", "Update", NOW, {})]),
            configmap("in-system", "kube-system", managed=[mf("kubectl-create", "Update", NOW, {})])]
    objs[1]["status"]["inventory"]["entries"].append({"id": "homelab_in-inventory__ConfigMap", "v": "v1"})
    assert check("KS210", inv_of(objs)) == []
    # without the Kustomizations listed, which namespaces Flux manages is unknown: nothing is claimed
    assert check("KS210", inv_of([*healthy_world()[2:], _hand_made()], listed=())) == []


# -- KS211 changed-behind-flux --------------------------------------------------------------------------------------
def _set_image(when: str = "2025-11-17T09:30:00Z") -> dict[str, Any]:
    return web_deployment(image="registry.example/web:debug", labels=flux_labels(),
                          managed=[FLUX_APPLY, KCM_STATUS, mf("kubectl-set", "Update", when, IMAGE_FIELDS)])


def test_ks211_kubectl_set_image_on_a_flux_object_names_who_and_which_field() -> None:
    [f] = check("KS211", inv_of([git_repository(), kustomization(), _set_image()]))
    assert "changed behind Flux by kubectl-set: spec.template.spec.containers[name=app].image" in f.message
    text = "\n".join(f.evidence)
    assert "kubectl-set changed spec.template.spec.containers[name=app].image = registry.example/web:debug (Update " \
           "at 2025-11-17T09:30:00Z)" in text
    assert "or Flux reverts the fields the repository sets at the next reconcile in ≤ 10m" in f.fix


def test_ks211_with_the_repository_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps/web.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  template:\n"
        "    spec:\n      containers:\n        - name: sidecar\n          image: envoy:1\n        - name: app\n"
        "          image: registry.example/web:1\n")
    repo = load_repo([Path(".")], tmp_path)
    [f] = check("KS211", inv_of([git_repository(), kustomization(), _set_image()], repo=repo))
    assert (f.file, f.line) == ("apps/web.yaml", 13)
    assert f.fix.startswith("commit this change to apps/web.yaml:13 (spec.template.spec.containers[name=app].image), "
                            "or Flux reverts it at the next reconcile in ≤ 10m")
    assert "apps/web.yaml:13 sets it: registry.example/web:1" in "\n".join(f.evidence)


def test_ks211_no_finding_for_reverted_restarts_scaling_or_objects_flux_does_not_manage() -> None:
    older = _set_image(when="2025-11-17T08:00:00Z")  # Flux applied the object after it (09:00)
    restart = web_deployment(labels=flux_labels(), managed=[FLUX_APPLY, mf(
        "kubectl-rollout", "Update", "2025-11-17T09:30:00Z", {"f:spec": {"f:template": {"f:metadata": {
            "f:annotations": {".": {}, "f:kubectl.kubernetes.io/restartedAt": {}}}}}})])
    scaled = web_deployment(labels=flux_labels(), managed=[FLUX_APPLY, mf(
        "kube-controller-manager", "Update", "2025-11-17T09:30:00Z", {"f:spec": {"f:replicas": {}}}, "scale")])
    unmanaged = web_deployment(managed=[mf("kubectl-set", "Update", "2025-11-17T09:30:00Z", IMAGE_FIELDS)])
    for obj in (older, restart, scaled, unmanaged):
        assert check("KS211", inv_of([git_repository(), kustomization(), obj])) == [], obj["metadata"]["managedFields"]
