"""Failure paths of `kubeshape release` on the test bed: drift, a refusing pre-commit hook, read-only
credentials, a 403 and SIGINT during the watch, and a rollback to the last known good when live ≠ file. Each
ends with git and the cluster fully released or fully on the last known good, and the output says which."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubeshape.registry import RegistryClient
from kubeshape.registry.image import push_image
from kubeshape.release.kube import CHANGE_CAUSE
from testbed.cluster import Cluster
from testbed.registry import Registry
from tests.release_helpers import (
    DEPLOYMENT,
    apply_yaml,
    create_namespace,
    deployment,
    git,
    head,
    image,
    layout,
    make_repo,
    rolled_out,
    run_cli,
    unique,
    wait_for,
)
from tests.servers import silent_server

LIVE_BAD = "family-assistant:phase2-mcp-logging-fix"  # the seed's live image (never pulls on the test bed)


def live_image(cluster: Cluster, ns: str, name: str) -> str:
    return str(deployment(cluster, ns, name)["spec"]["template"]["spec"]["containers"][0]["image"])


def set_live(cluster: Cluster, ns: str, name: str, img: str) -> None:
    cluster.api("PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/{name}",
                {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": img}]}}}},
                content_type="application/strategic-merge-patch+json")


def deadline_exceeded(dep: dict[str, Any]) -> bool:
    return any(c.get("reason") == "ProgressDeadlineExceeded" for c in (dep.get("status") or {}).get("conditions")
               or [])


def no_journal(root: Path) -> bool:
    return not (root / ".git" / "kubeshape" / "release.json").exists()


def deploy(cluster: Cluster, ns: str, name: str, img: str, deadline: int = 6) -> str:
    text = DEPLOYMENT.format(name=name, namespace=ns, deadline=deadline, image=img)
    create_namespace(cluster, ns)
    apply_yaml(cluster, text)
    wait_for(lambda: bool(deployment(cluster, ns, name).get("status")), 30, "deployment status")
    return text


RULES_FULL = [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch", "patch"]},
              {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list", "watch", "patch"]},
              {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
RULES_READ = [{"apiGroups": ["apps"], "resources": ["deployments", "replicasets"], "verbs": ["get", "list", "watch"]},
              {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]


def role(cluster: Cluster, ns: str, rules: list[dict[str, Any]]) -> None:
    apply_yaml(cluster, json.dumps({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                                    "metadata": {"name": "releaser", "namespace": ns}, "rules": rules}))


def sa_kubeconfig(cluster: Cluster, ns: str, rules: list[dict[str, Any]], path: Path) -> Path:
    """A kubeconfig for a ServiceAccount of ``ns`` (a token from `kubectl create token`) bound to ``rules``."""
    cluster.kubectl("create", "serviceaccount", "releaser", "-n", ns)
    role(cluster, ns, rules)
    cluster.kubectl("create", "rolebinding", "releaser", "-n", ns, "--role=releaser", f"--serviceaccount={ns}:releaser")
    token = cluster.kubectl("create", "token", "releaser", "-n", ns, "--duration=1h").stdout.strip()
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "bed", "cluster": {"server": cluster.server,
                                                 "certificate-authority": str(cluster.ca_file)}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "bed", "user": "sa", "namespace": ns}}]}))
    return path


# -- drift ------------------------------------------------------------------------------------------------


def test_drift_is_refused_and_adopt_live_or_from_file_proceed(tmp_path: Path, cluster: Cluster) -> None:
    for choice in ("--from-file", "--adopt-live"):
        ns, name = unique("drift-"), "app"
        text = deploy(cluster, ns, name, "app:me-fixed")
        set_live(cluster, ns, name, "app:phase2-mcp-logging-fix")
        root = make_repo(tmp_path / choice.strip("-"), {"deploy.yaml": text})
        args = ("release", str(root), "--image", "app", "--allow-unqualified", "--container", "app", "--manifest",
                str(root / "deploy.yaml"), "--kubeconfig", str(cluster.kubeconfig))
        sha = head(root)

        refused = run_cli(*args)
        assert refused.code == 2, (refused.error, refused.stdout)
        assert f"drift: Deployment {ns}/{name} container app runs app:phase2-mcp-logging-fix, but" in str(refused.error)
        assert "names app:me-fixed -- pass --adopt-live" in str(refused.error) and "--from-file" in str(refused.error)
        assert head(root) == sha and git(root, "status", "--porcelain") == "" and no_journal(root)
        assert live_image(cluster, ns, name) == "app:phase2-mcp-logging-fix"

        done = run_cli(*args, choice)
        assert done.code == 0, (done.error, done.stdout, done.stderr)
        released = live_image(cluster, ns, name)
        assert released.startswith("app:main-") and f"released {released}" in done.stdout
        assert f"image: {released}" in (root / "deploy.yaml").read_text()
        subjects = git(root, "log", "--format=%s").splitlines()
        adopted = [s for s in subjects if s.startswith("adopt the live image app:phase2-mcp-logging-fix")]
        assert len(adopted) == (1 if choice == "--adopt-live" else 0)
        assert subjects[0].startswith("release app ") and git(root, "status", "--porcelain") == ""
        assert no_journal(root)


# -- a pre-commit hook refuses the commit --------------------------------------------------------------------


def test_a_failing_pre_commit_hook_leaves_the_file_restored_and_nothing_staged(tmp_path: Path) -> None:
    text = DEPLOYMENT.format(name="app", namespace="default", deadline=6, image="app:1.0.0")
    root = make_repo(tmp_path / "repo", {"deploy.yaml": text})
    hook = root / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'yamllint: line too long' >&2\nexit 1\n")
    hook.chmod(0o755)
    sha = head(root)

    res = run_cli("release", str(root), "--image", "app", "--allow-unqualified", "--manifest",
                  str(root / "deploy.yaml"))

    assert res.code == 1, (res.error, res.stdout)
    assert "RELEASE FAILED: app:main-" in res.stdout and "git commit of deploy.yaml failed" in res.stdout
    assert "yamllint: line too long" in res.stdout
    assert "ROLLED BACK to app:1.0.0: deploy.yaml restored, nothing committed or staged" in res.stdout
    assert (root / "deploy.yaml").read_text() == text
    assert git(root, "status", "--porcelain") == "" and git(root, "diff", "--cached", "--name-only") == ""
    assert head(root) == sha and no_journal(root)


# -- credentials -------------------------------------------------------------------------------------------


def test_a_read_only_token_is_refused_before_any_push_or_commit(tmp_path: Path, cluster: Cluster,
                                                                registry: Registry) -> None:
    ns, name, repo = unique("ro-"), "app", unique() + "/app"
    with RegistryClient(registry.host, insecure=True) as client:
        push_image(client, repo, "1.0.0", image("ro"))
    text = deploy(cluster, ns, name, f"{registry.host}/{repo}:1.0.0")
    root = make_repo(tmp_path / "repo", {"deploy.yaml": text})
    kubeconfig = sa_kubeconfig(cluster, ns, RULES_READ, tmp_path / "ro.kubeconfig")
    sha = head(root)

    res = run_cli("release", str(root), "--image", f"{registry.host}/{repo}", "--from-image",
                  f"{registry.host}/{repo}:1.0.0", "--manifest", str(root / "deploy.yaml"), "--kubeconfig",
                  str(kubeconfig), "--watch", "--rollback-on-failure")

    assert res.code == 2, (res.error, res.stdout)
    assert f"may not patch deployments/{name} in namespace {ns}" in str(res.error)
    assert "nothing was pushed or committed" in str(res.error)
    with RegistryClient(registry.host, insecure=True) as client:
        assert client.tags(repo) == ["1.0.0"]
    assert head(root) == sha and git(root, "status", "--porcelain") == "" and no_journal(root)
    assert live_image(cluster, ns, name) == f"{registry.host}/{repo}:1.0.0"


@dataclass
class Released:
    """A Deployment released once by kubeshape from a git repository: the last known good to come back to."""

    ns: str
    name: str
    repo: str
    root: Path
    manifest: str
    kube: tuple[str, str]
    good_image: str
    good_digest: str


def released_once(tmp_path: Path, cluster: Cluster, registry: Registry, prefix: str, name: str) -> Released:
    ns, repo = unique(prefix), unique() + f"/{name}"
    with RegistryClient(registry.host, insecure=True) as client:
        push_image(client, repo, "1.0.0", image(prefix))
    text = deploy(cluster, ns, name, f"{registry.host}/{repo}:1.0.0")
    wait_for(lambda: rolled_out(deployment(cluster, ns, name)), 60, "first rollout")
    root = make_repo(tmp_path / "repo", {"deploy.yaml": text, "app/main.py": "v = 1\n"})
    manifest, kube = str(root / "deploy.yaml"), ("--kubeconfig", str(cluster.kubeconfig))
    good = run_cli("release", str(root), "--image", f"{registry.host}/{repo}", "--from-image",
                   f"{registry.host}/{repo}:1.0.0", "--manifest", manifest, *kube, "--watch")
    assert good.code == 0, (good.error, good.stdout)
    digest = git(root, "log", "-1", "--format=%s").split("(")[1].split(")")[0]
    return Released(ns, name, repo, root, manifest, kube, live_image(cluster, ns, name), digest)


# -- the seed: live ≠ file, a failed release goes back to the last known good ---------------------------------


def test_rollback_goes_to_the_last_known_good_and_history_keeps_its_digest(tmp_path: Path, cluster: Cluster,
                                                                           registry: Registry) -> None:
    bed = released_once(tmp_path, cluster, registry, "lkg-", "family-assistant")
    ns, name, repo, root, manifest, kube = bed.ns, bed.name, bed.repo, bed.root, bed.manifest, bed.kube
    good_image, good_digest = bed.good_image, bed.good_digest
    # the seed's situation: the file says me-fixed, the cluster runs a broken image
    Path(manifest).write_text(Path(manifest).read_text().replace(good_image, f"{registry.host}/{repo}:me-fixed"))
    (root / "app" / "main.py").write_text("v = 2\n")
    git(root, "commit", "-qam", "me-fixed")
    set_live(cluster, ns, name, LIVE_BAD)
    wait_for(lambda: deadline_exceeded(deployment(cluster, ns, name)), 60, "the live image past its deadline")

    args = ("release", str(root), "--image", "family-assistant", "--allow-unqualified", "--container", "app",
            "--manifest", manifest, *kube, "--watch", "--rollback-on-failure")
    assert "drift:" in str(run_cli(*args).error)
    bad = run_cli(*args, "--from-file")

    assert bad.code == 1, (bad.error, bad.stdout, bad.stderr)
    rolled = [ln for ln in bad.stdout.splitlines() if ln.startswith("ROLLED BACK")]
    assert rolled == [next(ln for ln in rolled if ln.startswith(f"ROLLED BACK to {good_image} ({good_digest}): "))]
    assert rolled[0].endswith(f"Deployment {ns}/{name} rollout complete")
    dep = deployment(cluster, ns, name)
    assert live_image(cluster, ns, name) == good_image and rolled_out(dep)  # not the broken live image
    assert f"image: {good_image}" in Path(manifest).read_text()  # git ends on the same image
    assert git(root, "status", "--porcelain") == "" and no_journal(root)
    assert git(root, "log", "-1", "--format=%s").startswith("rollback family-assistant to ")
    assert good_digest in dep["metadata"]["annotations"][CHANGE_CAUSE]

    doc = orjson.loads(run_cli("history", name, "-n", ns, *kube, "-o", "json").stdout)
    current = next(r for r in doc["revisions"] if r["revision"] == doc["current_revision"])
    assert doc["last_known_good"] == doc["current_revision"]
    assert current["images"] == [good_image] and current["digest"] == good_digest  # kept across the reuse


# -- interrupted or refused while watching ---------------------------------------------------------------------


@pytest.fixture
def slow_bed(tmp_path: Path, cluster: Cluster, registry: Registry) -> Iterator[tuple[str, str, str, Path]]:
    """A Deployment on a good image with a long progress deadline, and its repo: a failing release is watched
    until something stops it."""
    ns, name, repo = unique("stop-"), "app", unique() + "/app"
    good = f"{registry.host}/{repo}:1.0.0"
    with RegistryClient(registry.host, insecure=True) as client:
        push_image(client, repo, "1.0.0", image("slow"))
    text = deploy(cluster, ns, name, good, deadline=600)
    wait_for(lambda: rolled_out(deployment(cluster, ns, name)), 60, "first rollout")
    root = make_repo(tmp_path / "repo", {"deploy.yaml": text})
    yield ns, name, good, root


def start_release(root: Path, kubeconfig: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubeshape", "release", str(root), "--image", "app", "--allow-unqualified",
         "--container", "app", "--manifest", str(root / "deploy.yaml"), "--kubeconfig", str(kubeconfig), "--watch",
         "--rollback-on-failure"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "400", "NO_COLOR": "1"})
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # until the release watches its rollout
        seen.append(line)
        if "release: watching Deployment" in line:
            return proc
    raise AssertionError("the release never started watching: " + "".join(seen))


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=180)
    return proc.returncode, out


def assert_back_on(cluster: Cluster, ns: str, name: str, good: str, root: Path, text: str, out: str) -> None:
    assert f"ROLLED BACK to {good}" in out, out
    assert live_image(cluster, ns, name) == good
    assert (root / "deploy.yaml").read_text() == text and git(root, "status", "--porcelain") == ""
    assert git(root, "log", "-1", "--format=%s").startswith("rollback app to 1.0.0 after failed release ")
    assert no_journal(root)


def test_sigint_during_the_watch_rolls_back(slow_bed: tuple[str, str, str, Path], cluster: Cluster) -> None:
    ns, name, good, root = slow_bed
    text = (root / "deploy.yaml").read_text()
    proc = start_release(root, cluster.kubeconfig)
    proc.send_signal(signal.SIGINT)
    code, out = finish(proc)
    assert code == 1, out
    assert "RELEASE FAILED: app:main-" in out and "interrupted by SIGINT" in out
    assert_back_on(cluster, ns, name, good, root, text, out)


def test_a_403_during_the_watch_rolls_back(slow_bed: tuple[str, str, str, Path], cluster: Cluster,
                                           tmp_path: Path) -> None:
    ns, name, good, root = slow_bed
    text = (root / "deploy.yaml").read_text()
    kubeconfig = sa_kubeconfig(cluster, ns, RULES_FULL, tmp_path / "sa.kubeconfig")
    proc = start_release(root, kubeconfig)
    role(cluster, ns, [r for r in RULES_FULL if r["resources"] != ["replicasets"]])  # list on ReplicaSets revoked
    code, out = finish(proc)
    assert code == 1, out
    assert "RELEASE FAILED: app:main-" in out and "cannot read ReplicaSets (403" in out
    assert_back_on(cluster, ns, name, good, root, text, out)
    assert "the rollback of Deployment" in out and "was not watched" in out


# -- pushing through a port-forward ----------------------------------------------------------------------------


def test_registry_reach_name_pushes_to_reach_and_writes_name(tmp_path: Path, registry: Registry) -> None:
    from tests.release_helpers import layout

    name, repo = "registry.homelab.invalid:5000", unique() + "/app"
    text = DEPLOYMENT.format(name="app", namespace="default", deadline=6, image=f"{name}/{repo}:1.0.0")
    root = make_repo(tmp_path / "repo", {"deploy.yaml": text})
    args = ("release", str(root), "--image", f"{name}/{repo}", "--push", "--oci-layout",
            str(layout(tmp_path / "l", image("reach"))), "--manifest", str(root / "deploy.yaml"))

    wrong = run_cli(*args, "--registry", f"{registry.host}=other.invalid:5000")
    assert wrong.code == 2 and f"give REACH={name}" in str(wrong.error)
    res = run_cli(*args, "--registry", f"{registry.host}={name}", "--timeout", "20")
    assert res.code == 0, (res.error, res.stdout)
    tag = git(root, "log", "-1", "--format=%s").split()[2]
    assert f"image: {name}/{repo}:{tag}" in (root / "deploy.yaml").read_text()
    assert registry.host not in (root / "deploy.yaml").read_text()
    with RegistryClient(registry.host, insecure=True) as client:
        assert tag in client.tags(repo)


# -- endpoints that are not registries, hung registries, pods nobody can schedule ---------------------------


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[str]:
    """A plain web server on loopback (a wrong port, a dashboard): it answers /v2/ with an HTML 404."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("<html>dashboard</html>")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_endpoint_that_is_not_a_registry_is_refused_before_any_change(tmp_path: Path, web_server: str) -> None:
    root = make_repo(tmp_path / "repo", {"deploy.yaml": DEPLOYMENT.format(
        name="app", namespace="web", deadline=6, image=f"{web_server}/team/app:1.0.0")})
    sha = head(root)
    res = run_cli("release", str(root), "--image", f"{web_server}/team/app", "--insecure-registry", "--push",
                  "--oci-layout", str(layout(tmp_path / "l", image("x"))), "--manifest", str(root / "deploy.yaml"))
    assert res.code == 3, (res.error, res.stdout)
    assert "not a registry" in str(res.error) and "\n" not in str(res.error)
    assert head(root) == sha and git(root, "status", "--porcelain") == "" and no_journal(root)


@pytest.fixture
def hung_registry() -> Iterator[str]:
    """A registry host that accepts connections and never answers."""
    with silent_server() as host:
        yield host


def test_timeout_bounds_a_hung_registry_and_says_so(tmp_path: Path, hung_registry: str) -> None:
    root = make_repo(tmp_path / "repo", {"deploy.yaml": DEPLOYMENT.format(
        name="app", namespace="web", deadline=6, image=f"{hung_registry}/team/app:1.0.0")})
    sha = head(root)
    res = run_cli("release", str(root), "--image", f"{hung_registry}/team/app", "--insecure-registry", "--push",
                  "--oci-layout", str(layout(tmp_path / "l", image("x"))), "--manifest", str(root / "deploy.yaml"),
                  "--timeout", "1")
    assert res.code == 3, (res.error, res.stdout)
    assert "1s" in str(res.error) and "\n" not in str(res.error), res.error
    assert head(root) == sha and git(root, "status", "--porcelain") == "" and no_journal(root)


def test_a_rollout_stuck_on_unschedulable_pods_names_them_and_rolls_back(tmp_path: Path, cluster: Cluster,
                                                                         registry: Registry) -> None:
    bed = released_once(tmp_path, cluster, registry, "sched-", "app")
    ns, name, repo, root, manifest, kube = bed.ns, bed.name, bed.repo, bed.root, bed.manifest, bed.kube
    good_image = bed.good_image
    # the next revision asks for a node that does not exist: its pods stay Pending
    Path(manifest).write_text(Path(manifest).read_text().replace(
        "    spec:\n      containers:", "    spec:\n      nodeSelector: {pool: gpu}\n      containers:"))
    (root / "app" / "main.py").write_text("v = 2\n")
    git(root, "commit", "-qam", "needs a gpu node")
    cluster.kubectl("apply", "-f", manifest)
    wait_for(lambda: deadline_exceeded(deployment(cluster, ns, name)), 60, "the unschedulable revision's deadline")
    set_live(cluster, ns, name, good_image)  # live = file again apart from the node selector
    wait_for(lambda: live_image(cluster, ns, name) == good_image, 30, "live image")

    bad = run_cli("release", str(root), "--image", f"{registry.host}/{repo}", "--from-image",
                  f"{registry.host}/{repo}:1.0.0", "--manifest", manifest, *kube, "--watch", "--rollback-on-failure",
                  "--from-file")
    assert bad.code == 1, (bad.error, bad.stdout, bad.stderr)
    said = f"{bad.stdout}\n{bad.error}\n{bad.stderr}"
    assert "FailedScheduling" in said and "node" in said, said
    assert git(root, "status", "--porcelain") == "" and no_journal(root)


def test_a_release_killed_while_watching_is_finished_by_resume(tmp_path: Path, cluster: Cluster,
                                                               registry: Registry) -> None:
    ns, name, repo = unique("resume-"), "app", unique() + "/app"
    with RegistryClient(registry.host, insecure=True) as client:
        push_image(client, repo, "1.0.0", image("resume"))
    text = deploy(cluster, ns, name, f"{registry.host}/{repo}:1.0.0", deadline=600)
    wait_for(lambda: rolled_out(deployment(cluster, ns, name)), 60, "first rollout")
    root = make_repo(tmp_path / "repo", {"deploy.yaml": text})
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubeshape", "release", str(root), "--image", f"{registry.host}/{repo}",
         "--from-image", f"{registry.host}/{repo}:1.0.0", "--manifest", str(root / "deploy.yaml"),
         "--kubeconfig", str(cluster.kubeconfig), "--watch"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "COLUMNS": "400", "NO_COLOR": "1"})
    assert proc.stderr is not None
    for line in proc.stderr:
        if "release: watching Deployment" in line:
            break
    proc.kill()  # no handler runs: a crash, a closed laptop
    proc.communicate(timeout=30)
    assert not no_journal(root)
    released = git(root, "log", "-1", "--format=%s")
    assert released.startswith("release app ")

    again = run_cli("release", str(root), "--image", f"{registry.host}/{repo}", "--manifest",
                    str(root / "deploy.yaml"), "--kubeconfig", str(cluster.kubeconfig))
    assert again.code == 2 and "--resume" in str(again.error)  # the journal stands until resumed or aborted

    done = run_cli("release", str(root), "--resume")
    assert done.code == 0, (done.error, done.stdout, done.stderr)
    tag_image = live_image(cluster, ns, name)
    assert tag_image.startswith(f"{registry.host}/{repo}:main-")
    assert f"released and rolled out {tag_image}" in done.stdout
    assert rolled_out(deployment(cluster, ns, name))
    assert f"image: {tag_image}" in (root / "deploy.yaml").read_text()
    assert git(root, "log", "-1", "--format=%s") == released and git(root, "status", "--porcelain") == ""
    assert no_journal(root)
