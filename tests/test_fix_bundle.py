"""The plan for the bundled homelab (its repository in a real git work tree, its cluster from the bundle): the
fixes that change the cluster, checked on what they would send."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kubeshape.actions.fix.apply import apply_plan
from kubeshape.actions.fix.build import build_plan
from kubeshape.actions.fix.plan import Plan, Step
from kubeshape.analysis import analyse
from kubeshape.cli.app import load_sources
from kubeshape.errors import InputError

DEMO = Path(__file__).resolve().parents[1] / "src" / "kubeshape" / "demo"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=Pesu", "-c", "user.email=pesu@homelab.lan",
                           *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    repo = tmp_path_factory.mktemp("demo") / "homelab"
    shutil.copytree(DEMO / "repo", repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "homelab: backend 2 replicas, registry image")
    src = load_sources(repo, DEMO / "bundle", None, None)
    inv = src.inventories[0]
    report, _ = analyse(inv, src.cfg, command="fix")
    return build_plan(inv, src.cfg, report.findings, repo)


def step(plan: Plan, rule: str) -> Step:
    [found] = [s for s in plan.steps if rule in s.rules and any(f.startswith(rule) for f in s.findings)][:1]
    return found


def test_old_replicasets_get_a_history_limit_in_the_kept_file_and_live(plan: Plan) -> None:
    s = step(plan, "KS602")
    [fc] = s.files
    assert fc.path == "family-assistant-backend.yaml"
    assert "+  revisionHistoryLimit: 3\n" in fc.diff and " spec:\n   replicas: 2\n" in fc.diff
    [limit] = [c for c in s.cluster if c.action == "apply"]
    assert limit.body is not None and limit.body["spec"] == {"revisionHistoryLimit": 3}
    deleted = [c.object.name for c in s.cluster if c.action == "delete"]
    assert len(deleted) == 7 and all(c.generation is not None for c in s.cluster if c.action == "delete")
    # the newest three old revisions stay for `kubectl rollout undo`, the current one is never touched
    assert "family-assistant-backend-6cc87b75cc" not in deleted  # revision 61, the last known good


def test_the_unpullable_live_image_is_replaced_by_the_repositorys(plan: Plan) -> None:
    s = step(plan, "KS105")
    assert {f.split("-")[0] for f in s.findings} >= {"KS101", "KS105", "KS106", "KS404"}
    [change] = s.cluster
    assert change.action == "apply" and change.object.name == "family-assistant-backend"
    assert change.body is not None
    [container] = change.body["spec"]["template"]["spec"]["containers"]
    assert container == {"name": "family-assistant", "image": "100.81.76.55:30500/family-assistant:fixed-final",
                         "imagePullPolicy": "Always",
                         }
    # the change-cause of the new revision rides on this rollout, from the manifest's last commit
    cause = change.body["metadata"]["annotations"]["kubernetes.io/change-cause"]
    assert cause.startswith("kubeshape fix KS101, KS105, KS106, KS404, KS701 of homelab: backend 2 replicas")


def test_revisions_without_a_cause_are_marked_as_not_recorded(plan: Plan) -> None:
    s = step(plan, "KS205")
    causes = {c.object.name: (c.body or {})["metadata"]["annotations"]["kubernetes.io/change-cause"]
              for c in s.cluster}
    assert causes["family-assistant-backend-678dd66c88"] == \
        "not recorded: revision 62 ran family-assistant:phase2-mcp-logging-fix"
    assert all(c.if_exists and c.generation is None for c in s.cluster)  # pruned meanwhile: nothing to do


def test_both_orphaned_hpas_go_from_the_cluster_and_the_one_file(plan: Plan) -> None:
    names = {c.object.name for s in plan.steps if "KS601" in s.rules for c in s.cluster if c.action == "delete"}
    assert names == {"family-assistant-enhanced-hpa", "whisper-hpa"}
    files = [fc.path for s in plan.steps if "KS601" in s.rules for fc in s.files]
    assert files == ["infrastructure/kubernetes/family-assistant-enhanced-deployment.yaml"]


def test_a_plan_with_cluster_changes_needs_a_cluster(plan: Plan) -> None:
    with pytest.raises(InputError, match="no cluster was given"):
        apply_plan(plan, Path(plan.repo or "."), None)
