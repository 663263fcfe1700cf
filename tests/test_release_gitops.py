"""`kubeshape release --gitops flux` on the test bed: the release commit is pushed to the loopback git server,
the real source-controller and kustomize-controller apply it, and kubeshape follows what Flux reports. A failed
rollout is answered by a pushed revert that Flux applies; the Deployment is never patched by kubeshape."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubeshape.registry import RegistryClient
from kubeshape.registry.errors import ManifestNotFound
from kubeshape.registry.image import push_image
from testbed.cluster import IMAGE_PULL, MISSING_IMAGES, Cluster, start_cluster
from testbed.flux import Flux
from testbed.gitops import flux_revision
from testbed.gitserver import GitServer
from testbed.registry import Registry
from tests.release_helpers import (
    FluxApp,
    delete_tag_on_push,
    flux_app,
    git,
    head,
    hold_pushes,
    image,
    image_managers,
    layout,
    make_repo,
    next_tag,
    refuse_pushes,
    remove_flux_app,
    rolled_out,
    run_cli,
    unique,
    usable_namespace,
    wait_for,
)

WAIT = 180.0
MakeApp = Callable[..., FluxApp]


@pytest.fixture(scope="module")
def checked(cluster: Cluster, registry: Registry) -> Iterator[Registry]:
    """Pods pull from the registry for real: a tag missing there ends in ImagePullBackOff."""
    cluster.check_registry(registry.host)
    yield registry
    cluster.uncheck_registry(registry.host)


@pytest.fixture
def apps(cluster: Cluster, flux: Flux) -> Iterator[list[FluxApp]]:
    made: list[FluxApp] = []
    yield made
    for app in made:
        remove_flux_app(cluster, app.namespace)


@pytest.fixture
def make_app(cluster: Cluster, git_server: GitServer, checked: Registry, flux: Flux, apps: list[FluxApp],
             tmp_path: Path) -> MakeApp:
    def make(kustomize: bool = False) -> FluxApp:
        app = flux_app(cluster, git_server, checked, flux, tmp_path / f"work{len(apps)}", kustomize=kustomize)
        apps.append(app)
        return app
    return make


def feature_commit(app: FluxApp, text: str) -> str:
    """A code change committed (not pushed) in the working copy: what the release builds from."""
    (app.root / "src").mkdir(exist_ok=True)
    (app.root / "src" / "main.py").write_text(text)
    git(app.root, "add", "-A")
    git(app.root, "commit", "-qm", f"feature: {text.strip()}")
    return head(app.root)


def no_journal(root: Path) -> bool:
    return not (root / ".git" / "kubeshape" / "release.json").exists()


def release_args(app: FluxApp, layout_dir: Path, *extra: str) -> tuple[str, ...]:
    option = "--kustomization" if app.file.name == "kustomization.yaml" else "--manifest"
    return ("release", str(app.root), "--image", app.image, "--oci-layout", str(layout_dir), option, str(app.file),
            *app.kube(), "--gitops", "flux", *extra)


# -- the test bed plays the kubelet: a tag missing from the registry does not pull --------------------------


def test_pods_cannot_pull_a_tag_the_registry_does_not_hold(cluster: Cluster, checked: Registry) -> None:
    with RegistryClient(checked.host, insecure=True) as client:
        repo = unique() + "/probe"
        push_image(client, repo, "1", image("probe"))
    with usable_namespace(cluster, "pull-") as ns:
        for name, tag in (("present", "1"), ("absent", "2")):
            cluster.api("POST", f"/api/v1/namespaces/{ns}/pods", {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"containers": [{"name": "c", "image": f"{checked.host}/{repo}:{tag}"}]}})

        def pod(name: str) -> dict[str, Any]:
            return dict(cluster.api("GET", f"/api/v1/namespaces/{ns}/pods/{name}"))

        def waiting(name: str) -> set[str]:
            return {str(((cs.get("state") or {}).get("waiting") or {}).get("reason"))
                    for cs in (pod(name).get("status") or {}).get("containerStatuses") or []}

        wait_for(lambda: (pod("present").get("status") or {}).get("phase") == "Running", 60, "the pod pulling 1")
        wait_for(lambda: "ImagePullBackOff" in waiting("absent"), 60, "ImagePullBackOff of the pod pulling 2")
        annotations = pod("absent")["metadata"]["annotations"]
        assert annotations[IMAGE_PULL] == "backoff" and annotations[MISSING_IMAGES] == f"{checked.host}/{repo}:2"
        assert (pod("absent").get("status") or {}).get("phase") == "Pending"


# -- a release Flux applies ------------------------------------------------------------------------------------


def test_a_release_is_pushed_applied_by_flux_and_rolled_out(make_app: MakeApp, tmp_path: Path) -> None:
    app = make_app()
    before = app.file.read_text()
    feature_commit(app, "v = 2\n")
    tag = next_tag(app.root)

    res = run_cli(*release_args(app, layout(tmp_path / "layout", image("release-ok")), "--watch"))

    assert res.code == 0, (res.error, res.stdout, res.stderr)
    release = head(app.root)
    new_image = f"{app.image}:{tag}"
    # git: one commit on the remote, the one-line edit keeping the image-policy marker
    assert app.remote_head() == release
    assert git(app.root, "log", "-1", "--format=%s").startswith(f"release app {tag} (sha256:")
    after = git(app.root, "show", f"{release}:apps/deployment.yaml")
    assert f'          image: {new_image} # {{"$imagepolicy": "flux-system:app"}}\n' in after
    assert [ln for ln in after.splitlines() if ln not in before.splitlines()] == \
           [f'          image: {new_image} # {{"$imagepolicy": "flux-system:app"}}']
    # Flux reports the release commit applied; the cluster runs it; Flux, not kubeshape, set the image
    ks = app.kustomization()
    assert ks["status"]["lastAppliedRevision"] == flux_revision("main", release)
    dep = app.deployment()
    assert app.live_image() == new_image and rolled_out(dep)
    assert image_managers(dep) == {"kustomize-controller"}
    assert "kubeshape-release" not in {m.get("manager") for m in dep["metadata"].get("managedFields") or []}
    assert "reconcile.fluxcd.io/requestedAt" in (app.source.git_repository() or {})["metadata"]["annotations"]
    # what the user is told
    assert f"released and rolled out {new_image} (sha256:" in res.stdout
    assert f"  commit {release[:12]} pushed to origin/main" in res.stdout
    assert f"  applied by Flux: Kustomization {app.namespace}/app at main@sha1:{release}" in res.stdout
    assert "flux [" in res.stderr and "rollout [" in res.stderr
    assert "1 local commit not yet on origin/main will be pushed with the release" in res.stderr
    assert git(app.root, "status", "--porcelain") == "" and no_journal(app.root)


def test_a_release_whose_image_vanished_is_reverted_through_flux(make_app: MakeApp, checked: Registry,
                                                                 tmp_path: Path) -> None:
    """The tag is in the registry when kubeshape verifies it; a retention job deletes it when the commit lands
    (as a cleanup policy can): the new pods cannot pull it, the rollout stalls, the revert goes through Flux."""
    app = make_app(kustomize=True)
    original = app.file.read_text()
    good = f"{app.image}:1.0.0"
    feature_commit(app, "v = 3\n")
    tag = next_tag(app.root)
    delete_tag_on_push(app.bare, checked.host, app.repository, tag)

    res = run_cli(*release_args(app, layout(tmp_path / "layout", image("release-gone")), "--watch",
                                "--rollback-on-failure", "--stall-after", "10"))

    assert res.code == 1, (res.error, res.stdout, res.stderr)
    assert f"RELEASE FAILED: {app.image}:{tag} on Deployment {app.namespace}/app: rollout of deployment app " \
           "stalled: new pods cannot pull their image (ImagePullBackOff for " in res.stdout
    assert f": ImagePullBackOff ({app.image}:{tag})" in res.stdout
    with RegistryClient(checked.host, insecure=True) as client, pytest.raises(ManifestNotFound):
        client.head_manifest(app.repository, tag, suggest=False)
    # git: the release commit and its revert, both on the remote
    revert = app.remote_head()
    assert revert == head(app.root)
    release = git(app.root, "rev-parse", "HEAD~1").strip()
    assert git(app.root, "log", "-1", "--format=%s", release).startswith(f"release app {tag} ")
    assert git(app.root, "log", "-1", "--format=%s").strip() == f"rollback app to 1.0.0 after failed release {tag}"
    assert f"This reverts commit {release}." in git(app.root, "log", "-1", "--format=%b")
    # the markers survive both edits; the revert restores the file byte for byte
    released = git(app.root, "show", f"{release}:apps/kustomization.yaml")
    assert f'    newTag: {tag} # {{"$imagepolicy": "flux-system:app:tag"}}\n' in released
    assert f'    newName: {app.image} # {{"$imagepolicy": "flux-system:app:name"}}\n' in released
    assert app.file.read_text() == original
    # Flux is at the revert; the workload is back on the old image, healthy, set by Flux
    assert app.kustomization()["status"]["lastAppliedRevision"] == flux_revision("main", revert)
    dep = app.deployment()
    assert app.live_image() == good and rolled_out(dep)
    assert image_managers(dep) == {"kustomize-controller"}
    rolled = next(ln for ln in res.stdout.splitlines() if ln.startswith("ROLLED BACK"))
    assert rolled.startswith(f"ROLLED BACK to {good}: ")  # no digest: Flux applied 1.0.0, nothing recorded it
    assert f"git {revert[:12]} reverts {release[:12]}, pushed to origin/main and applied by Flux (Kustomization " \
           f"{app.namespace}/app at main@sha1:{revert})" in rolled
    assert rolled.endswith(f"Deployment {app.namespace}/app rollout complete")
    assert git(app.root, "status", "--porcelain") == "" and no_journal(app.root)


def only_released_versions(cluster: Cluster, app: FluxApp) -> None:
    """An admission policy of the app's namespace refusing branch builds (``:main-…`` tags), as clusters that
    run only released versions have; returns once the API server enforces it."""
    name = f"released-only-{app.namespace}"
    api = "/apis/admissionregistration.k8s.io/v1"
    cluster.api("POST", f"{api}/validatingadmissionpolicies", {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {"failurePolicy": "Fail",
                 "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                                                         "operations": ["CREATE", "UPDATE"],
                                                         "resources": ["deployments"]}]},
                 "validations": [{"expression": "object.spec.template.spec.containers.all(c, "
                                                "!c.image.contains(':main-'))",
                                  "message": "only released versions run here, not branch builds"}]}})
    cluster.api("POST", f"{api}/validatingadmissionpolicybindings", {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"],
                 "matchResources": {"namespaceSelector": {"matchLabels": {
                     "kubernetes.io/metadata.name": app.namespace}}}}})

    def enforced() -> bool:
        try:
            cluster.api("PATCH", f"/apis/apps/v1/namespaces/{app.namespace}/deployments/app?dryRun=All",
                        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "x:main-1"}]}}}},
                        content_type="application/strategic-merge-patch+json")
        except urllib.error.HTTPError:
            return True
        return False

    wait_for(enforced, 60, "the admission policy enforced")


def test_flux_refusing_the_release_stops_with_its_reason_and_the_revert_goes_through(
        make_app: MakeApp, cluster: Cluster, tmp_path: Path) -> None:
    app = make_app()
    good = app.live_image()
    feature_commit(app, "v = 7\n")
    tag = next_tag(app.root)
    only_released_versions(cluster, app)
    try:
        res = run_cli(*release_args(app, layout(tmp_path / "layout", image("refused-by-policy")), "--watch",
                                    "--rollback-on-failure"))
    finally:
        for kind in ("validatingadmissionpolicybindings", "validatingadmissionpolicies"):
            cluster.kubectl("delete", f"{kind}.admissionregistration.k8s.io", f"released-only-{app.namespace}",
                            check=False)

    assert res.code == 1, (res.error, res.stdout, res.stderr)
    release = git(app.root, "rev-parse", "HEAD~1").strip()
    failed = next(ln for ln in res.stdout.splitlines() if ln.startswith("RELEASE FAILED"))
    assert failed.startswith(f"RELEASE FAILED: {app.image}:{tag}: Kustomization {app.namespace}/app failed to apply "
                             f"main@sha1:{release}: ReconciliationFailed: ")
    assert "only released versions run here, not branch builds" in failed
    revert = app.remote_head()
    assert revert == head(app.root) and f"This reverts commit {release}." in git(app.root, "log", "-1",
                                                                                  "--format=%b")
    assert app.kustomization()["status"]["lastAppliedRevision"] == flux_revision("main", revert)
    assert f"ROLLED BACK to {good}: git {revert[:12]} reverts {release[:12]}, pushed to origin/main and applied by " \
           f"Flux" in res.stdout
    assert app.live_image() == good and rolled_out(app.deployment())
    assert no_journal(app.root)


# -- interrupted after the push, before Flux applied it: the journal knows -----------------------------------


def interrupted_after_push(app: FluxApp, layout_dir: Path, tmp_path: Path) -> tuple[str, str]:
    """Run the release in a process, hold its push on the server (the branch is updated, the client waits),
    interrupt it there; its stdout and the release commit."""
    gate = tmp_path / "let-the-push-finish"
    hook = hold_pushes(app.bare, gate)
    proc = subprocess.Popen([sys.executable, "-m", "kubeshape", *release_args(app, layout_dir, "--watch")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "400", "NO_COLOR": "1"})
    try:
        wait_for(lambda: bool(_committed(app)) and app.remote_head() == head(app.root), WAIT,
                 "the release commit on the server")
        release = head(app.root)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT)
    finally:
        gate.touch()
        if proc.poll() is None:
            proc.kill()
    hook.unlink()
    assert proc.returncode == 1, (out, err)
    return out, release


def _committed(app: FluxApp) -> str:
    subject = git(app.root, "log", "-1", "--format=%s")
    return head(app.root) if subject.startswith("release app ") else ""


def test_interrupted_after_the_push_resume_waits_for_flux_and_watches(make_app: MakeApp, tmp_path: Path) -> None:
    app = make_app()
    feature_commit(app, "v = 4\n")
    tag = next_tag(app.root)

    out, release = interrupted_after_push(app, layout(tmp_path / "layout", image("resume")), tmp_path)

    assert "RELEASE FAILED" in out and "interrupted by SIGINT" in out
    assert f"  left: git: {release[:12]} pushed to origin/main: Flux (GitRepository {app.namespace}/app) " \
           "applies it" in out
    assert "`kubeshape release --resume` continues it" in out
    journal = orjson.loads((app.root / ".git" / "kubeshape" / "release.json").read_bytes())
    assert [(s["name"], s["state"]) for s in journal["steps"]][-1] == ("git-push", "started")

    res = run_cli("release", str(app.root), "--resume")

    assert res.code == 0, (res.error, res.stdout, res.stderr)
    assert f"released and rolled out {app.image}:{tag}" in res.stdout
    assert app.remote_head() == release == head(app.root)
    assert app.kustomization()["status"]["lastAppliedRevision"] == flux_revision("main", release)
    assert app.live_image() == f"{app.image}:{tag}" and rolled_out(app.deployment())
    assert image_managers(app.deployment()) == {"kustomize-controller"}
    assert no_journal(app.root)


def test_interrupted_after_the_push_abort_reverts_through_flux(make_app: MakeApp, tmp_path: Path) -> None:
    app = make_app()
    good = app.live_image()
    feature_commit(app, "v = 5\n")

    out, release = interrupted_after_push(app, layout(tmp_path / "layout", image("abort")), tmp_path)
    assert "`kubeshape release --abort` undoes it" in out

    res = run_cli("release", str(app.root), "--abort")

    assert res.code == 0, (res.error, res.stdout, res.stderr)
    revert = app.remote_head()
    assert revert == head(app.root) and git(app.root, "rev-parse", "HEAD~1").strip() == release
    assert f"This reverts commit {release}." in git(app.root, "log", "-1", "--format=%b")
    assert f"ROLLED BACK to {good}" in res.stdout and "applied by Flux" in res.stdout
    assert app.kustomization()["status"]["lastAppliedRevision"] == flux_revision("main", revert)
    wait_for(lambda: rolled_out(app.deployment()), 60, "the rollback rolled out")
    assert app.live_image() == good
    assert no_journal(app.root)


# -- refused, or stopped with nothing left behind -------------------------------------------------------------


def test_a_push_the_server_refuses_leaves_git_and_the_cluster_as_they_were(make_app: MakeApp, tmp_path: Path) -> None:
    app = make_app()
    good, before_remote = app.live_image(), app.remote_head()
    applied = app.kustomization()["status"]["lastAppliedRevision"]
    feature = feature_commit(app, "v = 6\n")
    refuse_pushes(app.bare, "GitLab: You are not allowed to push code to protected branches on this project.")

    res = run_cli(*release_args(app, layout(tmp_path / "layout", image("refused")), "--watch"))

    assert res.code == 1, (res.error, res.stdout, res.stderr)
    assert "RELEASE FAILED" in res.stdout
    assert "branch main was rejected: [remote rejected] (pre-receive hook declined) -- the server said: GitLab: " \
           "You are not allowed to push code to protected branches on this project." in res.stdout
    assert "release commit " in res.stdout and "removed again (never pushed to origin/main); cluster untouched" \
        in res.stdout
    assert head(app.root) == feature and git(app.root, "status", "--porcelain") == "" and no_journal(app.root)
    assert app.remote_head() == before_remote
    assert app.kustomization()["status"]["lastAppliedRevision"] == applied
    assert app.live_image() == good


def test_no_git_repository_following_the_checkout_is_refused_with_the_fix(
        cluster: Cluster, flux: Flux, git_server: GitServer, registry: Registry, tmp_path: Path) -> None:
    url = git_server.create_repo(unique("lonely-"))
    root = make_repo(tmp_path / "repo", {"apps/deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\n"
                                         "metadata: {name: app}\nspec:\n  template:\n    spec:\n      containers:\n"
                                         f"        - name: app\n          image: {registry.host}/lonely/app:1.0.0\n"})
    git(root, "remote", "add", "origin", url)
    git(root, "push", "-q", "origin", "main")
    sha = head(root)
    args = ("release", str(root), "--image", f"{registry.host}/lonely/app", "--oci-layout",
            str(layout(tmp_path / "layout", image("lonely"))), "--manifest", str(root / "apps" / "deployment.yaml"),
            "--kubeconfig", str(cluster.kubeconfig), "--gitops", "flux")

    res = run_cli(*args)
    assert res.code == 2, (res.error, res.stdout)
    assert f"no Flux GitRepository follows branch main of this checkout's remotes (origin {url}): none of the " \
           in str(res.error) and "GitRepositories in context 'testbed' names one of these URLs" in str(res.error)
    assert "-- give --flux-source NAMESPACE/NAME" in str(res.error)

    ns = unique("gx-")
    cluster.api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    try:  # one that follows the URL (written as ssh would, .git dropped) but another branch
        cluster.api("POST", f"/apis/source.toolkit.fluxcd.io/v1/namespaces/{ns}/gitrepositories", {
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "prod", "namespace": ns},
            "spec": {"url": url.removesuffix(".git") + "/", "interval": "10m", "ref": {"branch": "production"}}})
        res = run_cli(*args)
        assert res.code == 2 and f"GitRepository {ns}/prod follows branch production" in str(res.error), res.error
        res = run_cli(*args, "--flux-source", f"{ns}/prod")
        assert res.code == 2 and f"GitRepository {ns}/prod follows branch production, but the checkout is on " \
                                  "branch main" in str(res.error), res.error
        res = run_cli(*args, "--flux-source", f"{ns}/nothing")
        assert res.code == 2 and f"GitRepository {ns}/nothing not found" in str(res.error), res.error
    finally:
        remove_flux_app(cluster, ns)
    assert head(root) == sha and git(root, "status", "--porcelain") == "" and no_journal(root)
    with RegistryClient(registry.host, insecure=True) as client:
        assert "lonely/app" not in client.catalog()


def test_a_cluster_without_flux_is_refused_with_exit_3(tmp_path: Path, registry: Registry) -> None:
    bare = start_cluster(tmp_path / "no-flux")
    try:
        root = make_repo(tmp_path / "repo", {"deploy.yaml": "apiVersion: apps/v1\nkind: Deployment\n"
                                             "metadata: {name: app}\nspec:\n  template:\n    spec:\n"
                                             "      containers:\n        - name: app\n"
                                             f"          image: {registry.host}/noflux/app:1.0.0\n"})
        res = run_cli("release", str(root), "--image", f"{registry.host}/noflux/app", "--oci-layout",
                      str(layout(tmp_path / "layout", image("noflux"))), "--manifest", str(root / "deploy.yaml"),
                      "--kubeconfig", str(bare.kubeconfig), "--gitops", "flux")
    finally:
        bare.stop()
    assert res.code == 3, (res.error, res.stdout)
    with RegistryClient(registry.host, insecure=True) as client:
        assert "noflux/app" not in client.catalog()
    assert str(res.error) == ("Flux is not installed in context 'testbed': the API server serves no "
                              "source.toolkit.fluxcd.io (GitRepository CRD missing) -- install Flux (`flux install`) "
                              "or drop --gitops flux")
    assert no_journal(root) and git(root, "status", "--porcelain") == ""

