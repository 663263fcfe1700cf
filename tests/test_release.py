"""kubeshape release: the tag scheme, in-place edits, pushing to a real registry, registry failures, a fake
builder, and a failed rollout rolled back in git and in a real cluster."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeshape.config import DEFAULT_TAG_SCHEME
from kubeshape.imageref import is_valid_tag
from kubeshape.registry import RegistryClient
from kubeshape.registry.image import push_image
from kubeshape.release import builders
from kubeshape.release.edit import plan_kustomization, plan_manifest
from kubeshape.release.kube import CHANGE_CAUSE
from kubeshape.release.tagging import BUILD_TAG, DirtyWorkTree, GitState, compute_tag, parse_tag, slugify
from kubeshape.release.workflow import ReleaseAborted, ReleaseOptions, run_release
from kubeshape.release.yamltext import EditError
from kubeshape.rules.registry import EXAMPLE_TAG, TAG_RECIPE
from testbed.cluster import Cluster
from testbed.registry import Registry
from tests.release_helpers import (
    DEPLOYMENT,
    Collect,
    apply_yaml,
    create_namespace,
    deployment,
    flux_automation,
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

SHA = "abc1234def5678901234567890abcdef12345678"
TS = 1763373600
SCHEME = re.compile(DEFAULT_TAG_SCHEME)
FLUX_PATTERN = re.compile(r"^main-[a-f0-9]{7}-(?P<ts>[0-9]{10})$")  # docs/tag-scheme.md ImagePolicy

# -- the tag scheme -----------------------------------------------------------------------------------------


def test_a_commit_without_release_tag_gets_branch_sha_and_commit_time() -> None:
    tag = compute_tag(GitState(SHA, "main", TS))
    assert (tag.tag, tag.version, tag.traceable) == ("main-abc1234-1763373600", None, True)
    assert compute_tag(GitState(SHA, "feature/Login_v2", TS)).tag == "feature-login-v2-abc1234-1763373600"
    assert compute_tag(GitState(SHA, None, TS)).tag == "detached-abc1234-1763373600"


def test_a_release_tag_gives_plain_semver_without_v_and_the_highest_wins() -> None:
    assert compute_tag(GitState(SHA, "main", TS, ("v1.4.2",))).tag == "1.4.2"
    assert compute_tag(GitState(SHA, "main", TS, ("1.4.2",))).tag == "1.4.2"
    assert compute_tag(GitState(SHA, "main", TS, ("v1.5.0-rc.1", "v1.5.0", "latest-ok"))).tag == "1.5.0"
    assert compute_tag(GitState(SHA, "main", TS, ("v1.5.0-rc.2", "v1.5.0-rc.10"))).tag == "1.5.0-rc.10"
    assert compute_tag(GitState(SHA, "main", TS, ("deploy-2025",))).tag == "main-abc1234-1763373600"


def test_a_dirty_tree_is_refused_unless_allowed_and_then_never_traceable() -> None:
    state = GitState(SHA, "main", TS, (), ("app/main.py",))
    with pytest.raises(DirtyWorkTree, match=r"uncommitted changes \(app/main.py\).*--allow-dirty"):
        compute_tag(state)
    tag = compute_tag(state, allow_dirty=True)
    assert (tag.tag, tag.traceable) == ("main-abc1234-1763373600-dirty", False)
    assert not SCHEME.search(tag.tag)
    assert not SCHEME.search(compute_tag(GitState(SHA, "main", TS, ("v1.4.2",), ("x",)), allow_dirty=True).tag)


def test_the_seed_scheme_problems_do_not_occur() -> None:
    tag = compute_tag(GitState(SHA, "main", TS, ("v1.2.3",))).tag
    assert tag == "1.2.3" and not tag.startswith("v") and tag.count("abc1234") == 0
    build = compute_tag(GitState(SHA, "main", TS)).tag
    assert build.count("abc1234") == 1  # once, not twice
    assert "." not in build  # not a SemVer pre-release that sorts below its release
    assert parse_tag(build).timestamp == TS and parse_tag(build).commit == "abc1234"


@given(branch=st.text(min_size=0, max_size=300), sha=st.text("0123456789abcdef", min_size=40, max_size=40),
       ts=st.integers(min_value=1_000_000_000, max_value=9_999_999_999))
def test_every_build_tag_is_valid_matches_the_scheme_and_parses_back(branch: str, sha: str, ts: int) -> None:
    tag = compute_tag(GitState(sha, branch or None, ts)).tag
    assert is_valid_tag(tag) and len(tag) <= 128
    assert SCHEME.search(tag), tag
    m = BUILD_TAG.match(tag)
    assert m and m.group("sha") == sha[:7] and int(m.group("ts")) == ts


def test_slugs() -> None:
    assert slugify("Feature/JIRA-12_fix..it") == "feature-jira-12-fix-it"
    assert slugify("___") == "branch"
    assert len(slugify("x" * 200)) == 63


def test_default_scheme_accepts_exactly_scheme_semver_and_sha_tags() -> None:
    good = ["1.4.2", "v2.0.0", "1.5.0-rc.1", EXAMPLE_TAG, "feature-login-v2-0123abc-1763373600", "sha-abc1234f",
            "0123abcdef"]
    bad = ["latest", "fixed-final", "fixed-v5", "me-fixed", "phase2-mcp-logging-fix", "vv1.2.3-4-gabc1234-abc1234",
           "main-abc1234-1763373600-dirty", "1.4.2-dirty", "main-abc1234", "1.2", "12345678"]
    assert [t for t in good if not SCHEME.search(t)] == []
    assert [t for t in bad if SCHEME.search(t)] == []


def test_flux_numerical_policy_orders_builds_by_commit_time() -> None:
    tags = [compute_tag(GitState(f"{i:x}" * 40, "main", TS + 10 * i)).tag for i in (3, 1, 2)]
    picked = max(tags, key=lambda t: int(FLUX_PATTERN.match(t).group("ts")))  # type: ignore[union-attr]
    assert picked == tags[0]
    assert FLUX_PATTERN.match("main-abc1234-1763373600-dirty") is None


def _recipe(root: Path) -> str:
    out = subprocess.run(["bash", "-c", TAG_RECIPE + '\necho "$TAG"'], cwd=root, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_the_shell_recipe_in_the_rules_computes_the_same_tag(tmp_path: Path) -> None:
    from kubeshape.release.gitrepo import GitRepo

    root = make_repo(tmp_path / "r", {"a.txt": "1\n"}, branch="Feature/Login_v2")
    assert _recipe(root) == compute_tag(GitRepo(root).state()).tag
    git(root, "tag", "v0.3.1")
    assert _recipe(root) == compute_tag(GitRepo(root).state()).tag == "0.3.1"


# -- rollout status ------------------------------------------------------------------------------------------


def _dep(gen: int = 2, observed: int = 2, replicas: int = 2, updated: int = 2, total: int = 2, available: int = 2,
         reason: str | None = None) -> dict[str, object]:
    conds = [{"type": "Progressing", "status": "False", "reason": reason}] if reason else []
    return {"metadata": {"name": "app", "namespace": "ns", "generation": gen},
            "spec": {"replicas": replicas, "progressDeadlineSeconds": 8},
            "status": {"observedGeneration": observed, "updatedReplicas": updated, "replicas": total,
                       "availableReplicas": available, "conditions": conds}}


@pytest.mark.parametrize(("dep", "done", "message"), [
    (_dep(gen=3), None, "waiting for the deployment spec update to be observed"),
    (_dep(updated=1, reason="ProgressDeadlineExceeded"), False, "deployment app exceeded its progress deadline (8s)"),
    (_dep(updated=1, total=3), None, "1 of 2 new replicas updated"),
    (_dep(total=3), None, "1 old replicas pending termination"),
    (_dep(available=1), None, "1 of 2 updated replicas available"),
    (_dep(), True, "deployment app successfully rolled out"),
])
def test_rollout_state_follows_kubectl_rollout_status(dep: dict[str, object], done: bool | None,
                                                      message: str) -> None:
    from kubeshape.inventory import ClusterSource, Inventory, K8sObject
    from kubeshape.metrics import rollout_outcome
    from kubeshape.release.rollout import rollout_state

    state = rollout_state(dep)
    assert (state.done, state.message) == (done, message)
    inv = Inventory(cluster=ClusterSource(name="t"))
    assert rollout_outcome(inv, K8sObject.from_raw(dep, "cluster", "Deployment")) is done


# -- in-place edits -----------------------------------------------------------------------------------------


def test_manifest_edit_is_one_line_and_keeps_indentation_quotes_and_flux_marker(tmp_path: Path) -> None:
    text = ("# the backend\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n    name: fa   # name\n"
            "spec:\n    template:\n        spec:\n            containers:\n"
            "            -   name: backend\n"
            "                image: 'family-assistant:fixed'   # {\"$imagepolicy\": \"flux-system:fa\"}\n"
            "            -   name: sidecar\n                image: \"busybox:1.36\"\n")
    (tmp_path / "d.yaml").write_text(text)
    edit = plan_manifest(tmp_path / "d.yaml", "reg.example:5000/family-assistant",
                         "reg.example:5000/family-assistant:1.4.2")
    assert edit.diff().splitlines()[2:] == [
        "@@ -11 +11 @@",
        "-                image: 'family-assistant:fixed'   # {\"$imagepolicy\": \"flux-system:fa\"}",
        "+                image: 'reg.example:5000/family-assistant:1.4.2'   # {\"$imagepolicy\": \"flux-system:fa\"}",
    ]
    assert edit.markers == ["flux-system:fa"] and edit.image_before == "family-assistant:fixed"
    assert [str(w) for w in edit.workloads] == ["Deployment/fa"]


def test_kustomization_entry_gains_newname_and_newtag_indented_like_its_siblings(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "resources:\n  - deploy.yaml\nimages:\n    -   name: family-assistant  # the app\n"
        "        digest: sha256:" + "1" * 64 + "\nnamespace: homelab\n")
    (tmp_path / "deploy.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: fa}\nspec:\n  template:\n    spec:\n"
        "      containers:\n      - {name: app, image: 'family-assistant:old'}\n")
    edit = plan_kustomization(tmp_path / "kustomization.yaml", "reg:5000/family-assistant", "1.0.0",
                              "sha256:" + "2" * 64)
    assert edit.after == (
        "resources:\n  - deploy.yaml\nimages:\n    -   name: family-assistant  # the app\n"
        "        digest: sha256:" + "2" * 64 + "\n        newName: reg:5000/family-assistant\n        newTag: 1.0.0\n"
        "namespace: homelab\n")
    assert [str(w) for w in edit.workloads] == ["homelab/Deployment/fa"]
    assert edit.workloads[0].containers == ("app",)


def test_kustomization_without_images_gets_a_block_in_the_files_style(tmp_path: Path) -> None:
    (tmp_path / "deploy.yaml").write_text(
        "kind: Deployment\nmetadata: {name: fa}\nspec: {template: {spec: {containers: [{name: a, image: fa:1}]}}}\n")
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - deploy.yaml\nlabels:\n  - pairs:\n      a: b\n")
    edit = plan_kustomization(tmp_path / "kustomization.yaml", "reg:5000/fa", "2.0.0", None)
    assert edit.after.endswith("images:\n  - name: fa\n    newName: reg:5000/fa\n    newTag: 2.0.0\n")
    with pytest.raises(EditError, match="none of its resources runs reg:5000/other"):
        plan_kustomization(tmp_path / "kustomization.yaml", "reg:5000/other", "2.0.0", None)


def test_crlf_files_stay_crlf_and_numbers_get_quoted(tmp_path: Path) -> None:
    (tmp_path / "k.yaml").write_bytes(b"images:\r\n- name: fa\r\n  newTag: old # keep\r\n")
    edit = plan_kustomization(tmp_path / "k.yaml", "fa", "1234567", None)
    assert edit.after == "images:\r\n- name: fa\r\n  newTag: \"1234567\" # keep\r\n"


def test_ambiguous_or_unmatched_containers_are_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text("kind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n"
                                     "      containers:\n      - name: a\n        image: x/app:1\n"
                                     "      - name: b\n        image: y/app:1\n")
    with pytest.raises(EditError, match=r"several containers match .* --container NAME"):
        plan_manifest(tmp_path / "d.yaml", "reg/app", "reg/app:2")
    with pytest.raises(EditError, match=r"no container runs reg/other .* --container NAME"):
        plan_manifest(tmp_path / "d.yaml", "reg/other", "reg/other:2")
    assert plan_manifest(tmp_path / "d.yaml", "reg/app", "reg/app:2", "b").diff().splitlines()[3:] == [
        "-        image: y/app:1", "+        image: reg/app:2"]
    (tmp_path / "e.yaml").write_text("kind: Pod\nspec:\n  containers:\n  - name: a\n    image: &img x/app:1\n")
    with pytest.raises(EditError, match=r"e.yaml:5: .*edit it by hand"):
        plan_manifest(tmp_path / "e.yaml", "x/app", "x/app:2")


# -- releasing against a real registry ----------------------------------------------------------------------

KUSTOMIZATION = """\
# family-assistant: production overlay
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: homelab
resources:
  - deployment.yaml   # the single source of truth
images:
  # managed by kubeshape release -- do not edit by hand
  - name: family-assistant
    newName: {registry}/{repo}   # registry-qualified
    newTag: "0.1.0"  # {{"$imagepolicy": "flux-system:family-assistant:tag"}}
"""

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
    name: family-assistant-backend
spec:
    template:
        spec:
            containers:
                -   name: backend
                    image: family-assistant:phase2-mcp-logging-fix  # {"$imagepolicy": "flux-system:fa"}
"""


def files(host: str, repo: str) -> dict[str, str]:
    return {"deploy/kustomization.yaml": KUSTOMIZATION.format(registry=host, repo=repo),
            "deploy/deployment.yaml": DEPLOY, "app/Dockerfile": "FROM scratch\n"}


def last_diff(root: Path) -> list[str]:
    """Hunk headers (without git's function context) and changed lines of HEAD~1..HEAD."""
    lines = git(root, "diff", "-U0", "HEAD~1", "HEAD").splitlines()
    return [ln.split(" @@")[0] + " @@" if ln.startswith("@@") else ln for ln in lines
            if ln.startswith(("@@", "-", "+")) and not ln.startswith(("---", "+++"))]


def build_tag(root: Path) -> str:
    sha = head(root)
    return f"main-{sha[:7]}-{git(root, 'log', '-1', '--format=%ct').strip()}"


def test_release_pushes_edits_one_line_of_the_kustomization_and_commits(tmp_path: Path, registry: Registry) -> None:
    repo = unique() + "/family-assistant"
    root = make_repo(tmp_path / "repo", files(registry.host, repo))
    git(root, "remote", "add", "origin", "https://bot:s3cret@git.example.invalid/home/family-assistant.git")
    sha, tag = head(root), build_tag(root)
    oci = layout(tmp_path / "layout", image("v1"))

    res = run_cli("release", str(root / "app"), "--image", f"{registry.host}/{repo}", "--push", "--oci-layout",
                  str(oci), "--kustomization", str(root / "deploy" / "kustomization.yaml"))

    assert res.code == 0, (res.error, res.stderr)
    with RegistryClient(registry.host, insecure=True) as client:
        digest = client.head_manifest(repo, tag).digest
        info = client.image_info(repo, tag)
    assert info.revision == sha  # kubeshape labelled the layout it pushed
    assert info.labels["org.opencontainers.image.version"] == tag
    assert info.labels["org.opencontainers.image.source"] == "https://git.example.invalid/home/family-assistant.git"
    assert git(root, "log", "-1", "--format=%s").strip() == f"release family-assistant {tag} ({digest}) from {sha[:7]}"
    assert f"commit: {sha}" in git(root, "log", "-1", "--format=%b")
    assert git(root, "diff", "--numstat", "HEAD~1", "HEAD").split() == ["1", "1", "deploy/kustomization.yaml"]
    assert last_diff(root) == [
        "@@ -11 +11 @@",
        '-    newTag: "0.1.0"  # {"$imagepolicy": "flux-system:family-assistant:tag"}',
        f'+    newTag: "{tag}"  # {{"$imagepolicy": "flux-system:family-assistant:tag"}}',
    ]
    assert git(root, "status", "--porcelain") == ""
    assert f"released {registry.host}/{repo}:{tag} ({digest})" in res.stdout
    assert "a Flux image-policy marker (flux-system:family-assistant:tag): kept" in res.stdout
    assert "labelled the image config with org.opencontainers.image.revision" in res.stdout


def test_release_on_a_version_tag_copies_the_ci_image_into_a_one_line_manifest_diff(
        tmp_path: Path, registry: Registry) -> None:
    repo = unique() + "/family-assistant"
    root = make_repo(tmp_path / "repo", files(registry.host, repo))
    sha = head(root)
    git(root, "tag", "v1.4.2")
    built = image("ci", labels={"org.opencontainers.image.revision": sha})
    with RegistryClient(registry.host, insecure=True) as client:
        push_image(client, repo, "ci-build", built)

    res = run_cli("release", str(root), "--image", f"{registry.host}/{repo}", "--from-image",
                  f"{registry.host}/{repo}:ci-build", "--manifest", str(root / "deploy" / "deployment.yaml"))

    assert res.code == 0, (res.error, res.stderr)
    subject = f"release family-assistant 1.4.2 ({built.digest}) from {sha[:7]}"
    assert git(root, "log", "-1", "--format=%s").strip() == subject
    assert last_diff(root) == [
        "@@ -10 +10 @@",
        '-                    image: family-assistant:phase2-mcp-logging-fix  # {"$imagepolicy": "flux-system:fa"}',
        f'+                    image: {registry.host}/{repo}:1.4.2  # {{"$imagepolicy": "flux-system:fa"}}',
    ]
    with RegistryClient(registry.host, insecure=True) as client:
        assert client.head_manifest(repo, "1.4.2").digest == built.digest  # copied as is
    assert "no org.opencontainers.image.revision label" not in res.stdout


def test_copying_an_image_without_revision_label_says_so(tmp_path: Path, registry: Registry) -> None:
    repo = unique() + "/family-assistant"
    root = make_repo(tmp_path / "repo", files(registry.host, repo))
    with RegistryClient(registry.host, insecure=True) as client:
        push_image(client, f"{repo}-ci", "latest-build", image("unlabelled"))
    res = run_cli("release", str(root), "--image", f"{registry.host}/{repo}", "--from-image",
                  f"{registry.host}/{repo}-ci:latest-build", "--kustomization",
                  str(root / "deploy" / "kustomization.yaml"))
    assert res.code == 0, (res.error, res.stderr)
    assert "has no org.opencontainers.image.revision label in its config" in res.stdout
    assert "copied as is, digest unchanged" in res.stdout


def _untouched(root: Path, before_head: str, before_text: str) -> None:
    assert head(root) == before_head
    assert (root / "deploy" / "kustomization.yaml").read_text() == before_text
    assert git(root, "status", "--porcelain") == ""


def test_an_image_built_from_another_commit_is_refused(tmp_path: Path, registry: Registry) -> None:
    repo = unique() + "/family-assistant"
    root = make_repo(tmp_path / "repo", files(registry.host, repo))
    before = (head(root), (root / "deploy" / "kustomization.yaml").read_text())
    with RegistryClient(registry.host, insecure=True) as client:
        push_image(client, repo, "old", image("old", labels={"org.opencontainers.image.revision": "f" * 40}))
    res = run_cli("release", str(root), "--image", f"{registry.host}/{repo}", "--from-image",
                  f"{registry.host}/{repo}:old", "--kustomization", str(root / "deploy" / "kustomization.yaml"))
    assert res.code == 2 and "was built from commit ffffffffffff, but HEAD is" in str(res.error)
    _untouched(root, *before)


def test_a_tag_that_names_another_digest_is_never_overwritten(tmp_path: Path, registry: Registry) -> None:
    repo = unique() + "/family-assistant"
    root = make_repo(tmp_path / "repo", files(registry.host, repo))
    before = (head(root), (root / "deploy" / "kustomization.yaml").read_text())
    with RegistryClient(registry.host, insecure=True) as client:
        push_image(client, repo, build_tag(root), image("someone else"))
    res = run_cli("release", str(root), "--image", f"{registry.host}/{repo}", "--push", "--oci-layout",
                  str(layout(tmp_path / "l", image("mine"))), "--kustomization",
                  str(root / "deploy" / "kustomization.yaml"))
    assert res.code == 2 and "already exists with digest" in str(res.error)
    assert "release tags are never overwritten" in str(res.error)
    _untouched(root, *before)


def test_without_push_the_tag_must_exist_and_its_digest_is_used(tmp_path: Path, registry: Registry) -> None:
    repo = unique() + "/family-assistant"
    root = make_repo(tmp_path / "repo", files(registry.host, repo))
    before = (head(root), (root / "deploy" / "kustomization.yaml").read_text())
    args = ("release", str(root), "--image", f"{registry.host}/{repo}", "--kustomization",
            str(root / "deploy" / "kustomization.yaml"))
    res = run_cli(*args)
    assert res.code == 2 and f"{registry.host}/{repo}:{build_tag(root)} does not exist: pass --push" in str(res.error)
    _untouched(root, *before)
    with RegistryClient(registry.host, insecure=True) as client:
        digest = push_image(client, repo, build_tag(root), image("from ci"))
    res = run_cli(*args)
    assert res.code == 0 and f"({digest})" in git(root, "log", "-1", "--format=%s")


def test_pushing_the_same_layout_for_the_same_commit_again_is_a_no_op(tmp_path: Path, registry: Registry) -> None:
    repo = unique() + "/family-assistant"
    root = make_repo(tmp_path / "repo", files(registry.host, repo))
    opts = ReleaseOptions(image=f"{registry.host}/{repo}", path=root, push=True,
                          oci_layout=layout(tmp_path / "l", image("same")))
    first, second = Collect(), Collect()
    assert run_release(opts, first).digest == run_release(opts, second).digest
    assert any(s.startswith("pushing ") for s in first.steps)
    assert any("nothing to push" in s for s in second.steps) and not any(s.startswith("pushing ") for s in second.steps)
    assert head(root) == git(root, "rev-list", "--max-parents=0", "HEAD").strip()  # no file: nothing committed


def test_dirty_trees_unqualified_images_and_bad_option_combinations_are_refused(
        tmp_path: Path, registry: Registry) -> None:
    repo = unique() + "/family-assistant"
    root = make_repo(tmp_path / "repo", files(registry.host, repo))
    kust = str(root / "deploy" / "kustomization.yaml")
    (root / "app" / "main.py").write_text("print('wip')\n")
    base = ("release", str(root), "--kustomization", kust)
    res = run_cli(*base, "--image", f"{registry.host}/{repo}", "--push", "--oci-layout",
                  str(layout(tmp_path / "l", image("x"))))
    assert res.code == 2 and "uncommitted changes (app/main.py)" in str(res.error)
    assert "\n" not in str(res.error)
    cases = {("--image", "family-assistant"): "names no registry",
             ("--image", f"{registry.host}/{repo}:1.0"): "the tag comes from git",
             ("--image", f"{registry.host}/{repo}", "--watch"): "--watch follows the rollout in a cluster",
             ("--image", f"{registry.host}/{repo}", "--from-image", "a/b:c", "--oci-layout", "x"): "give one"}
    for extra, message in cases.items():
        res = run_cli(*base, *extra)
        assert res.code == 2 and message in str(res.error), (extra, res.error)


def test_allow_dirty_releases_a_dirty_tag_that_is_flagged_untraceable(tmp_path: Path, registry: Registry) -> None:
    repo = unique() + "/family-assistant"
    root = make_repo(tmp_path / "repo", files(registry.host, repo))
    (root / "app" / "main.py").write_text("print('wip')\n")
    tag = build_tag(root) + "-dirty"
    reporter = Collect()
    result = run_release(ReleaseOptions(image=f"{registry.host}/{repo}", path=root, push=True,
                                        oci_layout=layout(tmp_path / "l", image("dirty")),
                                        kustomization=root / "deploy" / "kustomization.yaml", allow_dirty=True),
                         reporter)
    assert result.plan.tag == tag and result.ok
    assert any("is NOT traceable" in w for w in reporter.warnings)
    assert "(dirty work tree, not traceable)" in git(root, "log", "-1", "--format=%s")
    assert git(root, "status", "--porcelain").strip() == "?? app/main.py"  # only the manifest was committed


# -- registry failures: one line, nothing changed -----------------------------------------------------------


class _Fake(BaseHTTPRequestHandler):
    mode = "401"

    def _answer(self) -> None:
        if self.mode == "hang":
            time.sleep(3)
            return
        status = int(self.mode)
        body = orjson.dumps({"errors": [{"code": "UNAUTHORIZED" if status == 401 else "UNKNOWN",
                                         "message": "authentication required" if status == 401 else "boom"}]})
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="fake"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_registry() -> Iterator[tuple[str, type[_Fake]]]:
    handler = type("Handler", (_Fake,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("mode", "expected", "exit_code"), [
    ("401", "authentication required (HTTP 401)", 2),
    ("500", "server error HTTP 500", 3),
    ("hang", "timed out after 0.5s", 3),
])
def test_registry_errors_abort_in_one_line_and_leave_git_untouched(
        tmp_path: Path, fake_registry: tuple[str, type[_Fake]], mode: str, expected: str, exit_code: int) -> None:
    host, handler = fake_registry
    handler.mode = mode
    root = make_repo(tmp_path / "repo", files(host, "team/family-assistant"))
    before = (head(root), (root / "deploy" / "kustomization.yaml").read_text())
    opts = ReleaseOptions(image=f"{host}/team/family-assistant", path=root, push=True,
                          oci_layout=layout(tmp_path / "l", image("x")), insecure_registry=True,
                          kustomization=root / "deploy" / "kustomization.yaml", registry_timeout=0.5,
                          registry_retries=1)
    with pytest.raises(ReleaseAborted) as info:
        run_release(opts, Collect())
    message = str(info.value)
    assert "\n" not in message and expected in message, message
    assert message.startswith("release aborted, git and manifests untouched: ")
    assert info.value.exit_code == exit_code
    _untouched(root, *before)


def test_a_401_through_the_cli_is_one_line(tmp_path: Path, fake_registry: tuple[str, type[_Fake]]) -> None:
    host, _ = fake_registry
    root = make_repo(tmp_path / "repo", files(host, "team/family-assistant"))
    before = (head(root), (root / "deploy" / "kustomization.yaml").read_text())
    res = run_cli("release", str(root), "--image", f"{host}/team/family-assistant", "--insecure-registry", "--push",
                  "--oci-layout", str(layout(tmp_path / "l", image("x"))), "--kustomization",
                  str(root / "deploy" / "kustomization.yaml"))
    assert res.code == 2 and res.error is not None and "\n" not in res.error
    assert "HTTP 401" in res.error and "docker login" in res.error
    _untouched(root, *before)


def test_a_missing_source_image_404_aborts_with_the_close_tags(tmp_path: Path, registry: Registry) -> None:
    repo = unique() + "/family-assistant"
    root = make_repo(tmp_path / "repo", files(registry.host, repo))
    before = (head(root), (root / "deploy" / "kustomization.yaml").read_text())
    with RegistryClient(registry.host, insecure=True) as client:
        push_image(client, repo, "ci-1234", image("ci"))
    res = run_cli("release", str(root), "--image", f"{registry.host}/{repo}", "--from-image",
                  f"{registry.host}/{repo}:ci-1235", "--kustomization", str(root / "deploy" / "kustomization.yaml"))
    assert res.code == 2 and res.error is not None and "\n" not in res.error
    assert "tag not found (HTTP 404)" in res.error and "close tags: ci-1234" in res.error
    _untouched(root, *before)


# -- builders -----------------------------------------------------------------------------------------------

FAKE_BUILDAH = """#!{python}
import json, sys
from datetime import datetime, timezone
from pathlib import Path
sys.path[:0] = {paths!r}
from kubeshape.registry.image import build_image
from kubeshape.release.artifact import write_layout
args = sys.argv[1:]
state = Path({state!r})
if args[0] == "version":
    print("fake buildah 1.0")
elif args[0] == "bud":
    labels = dict(a.split("=", 1) for a in args[args.index("--label") + 1::2] if "=" in a)
    state.write_text(json.dumps({{"labels": labels, "context": args[-1]}}))
elif args[0] == "push":
    labels = json.loads(state.read_text())["labels"]
    img = build_image({{"app/x": b"built"}}, created=datetime(2025, 1, 1, tzinfo=timezone.utc), labels=labels)
    write_layout(Path(args[2].removeprefix("oci:")), img.manifest, img.media_type, [b.data for b in img.blobs])
"""


def test_a_detected_builder_builds_into_a_layout_that_kubeshape_pushes(
        tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "buildah"
    fake.parent.mkdir()
    fake.write_text(FAKE_BUILDAH.format(python=sys.executable, paths=sys.path, state=str(tmp_path / "state.json")))
    fake.chmod(0o755)
    found = builders.detect(lambda name: str(fake) if name == "buildah" else None)
    assert found == builders.Builder("buildah", str(fake))
    assert builders.detect(lambda name: None) is None
    monkeypatch.setattr(builders, "detect", lambda: found)
    repo = unique() + "/family-assistant"
    root = make_repo(tmp_path / "repo", files(registry.host, repo))
    sha, tag = head(root), build_tag(root)
    res = run_cli("release", str(root / "app"), "--image", f"{registry.host}/{repo}", "--push", "--kustomization",
                  str(root / "deploy" / "kustomization.yaml"))
    assert res.code == 0, (res.error, res.stderr)
    assert f"building {root / 'app'} with buildah" in res.stderr
    assert orjson.loads((tmp_path / "state.json").read_text())["context"] == str(root / "app")
    with RegistryClient(registry.host, insecure=True) as client:
        assert client.image_info(repo, tag).revision == sha
    assert "labelled the image config" not in res.stdout  # the builder put the labels in


def test_without_a_builder_the_message_names_the_alternatives(tmp_path: Path, registry: Registry,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builders, "detect", lambda: None)
    root = make_repo(tmp_path / "repo", files(registry.host, "x/family-assistant"))
    res = run_cli("release", str(root), "--image", f"{registry.host}/x/family-assistant", "--push",
                  "--kustomization", str(root / "deploy" / "kustomization.yaml"))
    assert res.code == 2 and "no image builder found" in str(res.error) and "--from-image REF" in str(res.error)


# -- on the test bed: a failed rollout rolled back in git and in the cluster --------------------------------


def test_failed_release_is_rolled_back_in_git_and_in_the_cluster(tmp_path: Path, cluster: Cluster,
                                                                 registry: Registry) -> None:
    ns, name = unique("rel-"), "family-assistant-backend"
    repo = unique() + "/family-assistant"
    with RegistryClient(registry.host, insecure=True) as client:
        push_image(client, repo, "0.1.0", image("first"))
    manifest_text = DEPLOYMENT.format(name=name, namespace=ns, deadline=8, image=f"{registry.host}/{repo}:0.1.0")
    root = make_repo(tmp_path / "repo", {"deploy/deployment.yaml": manifest_text, "app/main.py": "v = 1\n"})
    create_namespace(cluster, ns)
    apply_yaml(cluster, manifest_text)
    wait_for(lambda: rolled_out(deployment(cluster, ns, name)), 60, "first rollout")
    manifest = str(root / "deploy" / "deployment.yaml")
    kube = ("--kubeconfig", str(cluster.kubeconfig))

    good = run_cli("release", str(root), "--image", f"{registry.host}/{repo}", "--from-image",
                   f"{registry.host}/{repo}:0.1.0", "--manifest", manifest, *kube, "--watch")
    assert good.code == 0, (good.error, good.stderr, good.stdout)
    good_tag = git(root, "log", "-1", "--format=%s").split()[2]
    good_image = f"{registry.host}/{repo}:{good_tag}"
    dep = deployment(cluster, ns, name)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == good_image
    assert dep["metadata"]["annotations"][CHANGE_CAUSE] == git(root, "log", "-1", "--format=%s").strip()
    assert "released and rolled out" in good.stdout
    assert f"Deployment {ns}/{name}: app={good_image}" in good.stdout
    after_good = Path(manifest).read_text()

    (root / "app" / "main.py").write_text("v = 2\n")
    git(root, "commit", "-qam", "feature: v2")
    flux_automation(cluster, ns, "family-assistant")
    started = time.monotonic()
    bad = run_cli("release", str(root), "--image", "family-assistant", "--allow-unqualified", "--container", "app",
                  "--manifest", manifest, *kube, "--watch", "--rollback-on-failure")
    took = time.monotonic() - started

    assert bad.code == 1, (bad.error, bad.stderr, bad.stdout)
    bad_tag = build_tag_of(root, "HEAD~2")
    assert took < 8 + 45, took
    assert f"RELEASE FAILED: family-assistant:{bad_tag} on Deployment {ns}/{name}: deployment {name} exceeded its " \
           "progress deadline (8s)" in bad.stdout
    assert "ImagePullBackOff (family-assistant:" in bad.stdout
    revert = git(root, "rev-parse", "HEAD").strip()
    assert f"ROLLED BACK to {good_image} (sha256:" in bad.stdout
    rolled = next(ln for ln in bad.stdout.splitlines() if ln.startswith("ROLLED BACK"))
    assert rolled.count(good_image) == 1 and "ROLLED BACK" not in bad.stderr  # stated once, on one stream
    assert f": git {revert[:12]} reverts " in rolled and f"Deployment {ns}/{name} rollout complete" in rolled
    assert "rollout [" in bad.stderr  # the progress display
    assert f"Flux image automation is active (ImageUpdateAutomation {ns}/family-assistant): it will promote " \
           f"{bad_tag} again unless paused" in bad.stdout
    # git: the release commit and its revert; the manifest holds the previous image again
    subjects = git(root, "log", "-3", "--format=%s").splitlines()
    assert subjects[0] == f"rollback family-assistant to {good_tag} after failed release {bad_tag}"
    assert subjects[1].startswith(f"release family-assistant {bad_tag} (digest unknown) from ")
    assert f"This reverts commit {git(root, 'rev-parse', 'HEAD~1').strip()}." in git(root, "log", "-1", "--format=%b")
    assert Path(manifest).read_text() == after_good
    assert git(root, "status", "--porcelain") == ""
    # cluster: previous image, rollout complete, the rollback explains itself
    dep = deployment(cluster, ns, name)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == good_image
    assert rolled_out(dep)
    assert re.fullmatch(rf"rollback to {good_tag} \(sha256:[0-9a-f]{{64}}\) after failed release {bad_tag}",
                        dep["metadata"]["annotations"][CHANGE_CAUSE])

    hist = run_cli("history", name, "-n", ns, *kube, "-o", "json")
    doc = orjson.loads(hist.stdout)
    results = {r["revision"]: r["result"] for r in doc["revisions"]}
    assert doc["last_known_good"] == doc["current_revision"] == max(results)
    assert sorted(results.values()) == ["available", "failed", "superseded-unknown"]


def build_tag_of(root: Path, rev: str) -> str:
    sha = git(root, "rev-parse", rev).strip()
    return f"main-{sha[:7]}-{git(root, 'log', '-1', '--format=%ct', rev).strip()}"


def test_without_commit_the_file_is_restored_and_without_rollback_the_fix_is_printed(
        tmp_path: Path, cluster: Cluster, registry: Registry) -> None:
    ns, name = unique("rel-"), "app"
    repo = unique() + "/app"
    with RegistryClient(registry.host, insecure=True) as client:
        push_image(client, repo, "1.0.0", image("one"))
    text = DEPLOYMENT.format(name=name, namespace=ns, deadline=6, image=f"{registry.host}/{repo}:1.0.0")
    root = make_repo(tmp_path / "repo", {"deploy.yaml": text})
    create_namespace(cluster, ns)
    apply_yaml(cluster, text)
    wait_for(lambda: rolled_out(deployment(cluster, ns, name)), 60, "first rollout")
    args = ("release", str(root), "--image", "app", "--allow-unqualified", "--container", "app", "--manifest",
            str(root / "deploy.yaml"), "--kubeconfig", str(cluster.kubeconfig), "--watch")

    res = run_cli(*args, "--no-commit", "--rollback-on-failure")
    assert res.code == 1, (res.error, res.stdout)
    assert f"ROLLED BACK to {registry.host}/{repo}:1.0.0: deploy.yaml restored, nothing committed or staged; " \
           f"Deployment {ns}/{name} rollout complete" in res.stdout
    assert (root / "deploy.yaml").read_text() == text and git(root, "status", "--porcelain") == ""
    assert git(root, "rev-list", "--count", "HEAD").strip() == "1"
    wait_for(lambda: rolled_out(deployment(cluster, ns, name)), 30, "rolled back")

    res = run_cli(*args)
    assert res.code == 1, (res.error, res.stdout)
    release_commit = head(root)
    assert f"  left: git: commit {release_commit[:12]} (release app " in res.stdout
    assert f"  left: cluster: Deployment {ns}/{name} set to app:" in res.stdout
    assert f"not rolled back: `kubeshape release --abort` undoes it (back to {registry.host}/{repo}:1.0.0), " \
           "`kubeshape release --resume` continues it" in res.stdout
    dep = deployment(cluster, ns, name)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"].startswith("app:")

    again = run_cli(*args)  # the journal stands until the release is resumed or aborted
    assert again.code == 2 and "kubeshape release --abort" in str(again.error)
    aborted = run_cli("release", str(root), "--abort")
    assert aborted.code == 0, (aborted.error, aborted.stdout)
    assert f"ROLLED BACK to {registry.host}/{repo}:1.0.0" in aborted.stdout
    assert (root / "deploy.yaml").read_text() == text and git(root, "status", "--porcelain") == ""
    assert f"This reverts commit {release_commit}." in git(root, "log", "-1", "--format=%b")
    dep = deployment(cluster, ns, name)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == f"{registry.host}/{repo}:1.0.0"
    assert rolled_out(dep)
