"""``kubeshape fix`` against the REAL control plane (the session cluster) and a real git repository: a reviewed
plan applied later, plans that no longer hold (a file or an object changed since), --interactive, bad input."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kubeshape.registry.client import RegistryClient
from kubeshape.registry.image import build_image, push_image
from testbed.cluster import Cluster
from testbed.registry import Registry, start_registry

HPA = """\
# autoscaling for the old worker (the worker itself was retired)
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: worker-hpa
  namespace: {ns}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: worker}}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 80}}}}
"""

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: {ns}
spec:
  selector: {{app: api}}
  ports: [{{port: 80}}]
"""


@dataclass
class Env:
    cluster: Cluster
    repo: Path
    ns: str

    def args(self) -> list[str]:
        return ["--repo", str(self.repo), "--kubeconfig", str(self.cluster.kubeconfig), "-n", self.ns]

    def hpa(self) -> dict[str, Any] | None:
        try:
            return dict(self.cluster.api("GET", f"/apis/autoscaling/v2/namespaces/{self.ns}/"
                                         "horizontalpodautoscalers/worker-hpa"))
        except Exception:
            return None


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=Ops", "-c", "user.email=ops@example.lan",
                           *args], check=True, capture_output=True, text=True).stdout


def ks(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeshape", *args], capture_output=True, text=True, timeout=300,
                          check=False, input=stdin)


@pytest.fixture
def env(cluster: Cluster, tmp_path: Path) -> Iterator[Env]:
    """A namespace with an HPA whose target does not exist, applied from a file of a git repository; the
    controller has had time to report FailedGetScale."""
    ns = f"fix-{secrets.token_hex(3)}"
    repo = tmp_path / "ops"
    (repo / "apps").mkdir(parents=True)
    (repo / "apps" / "worker-hpa.yaml").write_text(HPA.format(ns=ns))
    (repo / "apps" / "api-service.yaml").write_text(SERVICE.format(ns=ns))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ops: worker autoscaling")
    cluster.api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    try:
        for f in ("worker-hpa.yaml", "api-service.yaml"):
            subprocess.run(["kubectl", f"--kubeconfig={cluster.kubeconfig}", "apply", "-f", str(repo / "apps" / f)],
                           check=True, capture_output=True, timeout=60)
        yield Env(cluster, repo, ns)
    finally:
        subprocess.run(["kubectl", f"--kubeconfig={cluster.kubeconfig}", "delete", "namespace", ns, "--wait=false"],
                       capture_output=True, timeout=60, check=False)


def plan_json(env: Env, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    proc = ks("fix", *env.args(), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    out = tmp_path / "plan.json"
    out.write_text(proc.stdout)
    return out, plan


def test_a_reviewed_plan_is_applied_later_and_once(env: Env, tmp_path: Path) -> None:
    path, plan = plan_json(env, tmp_path)
    [step] = plan["steps"]
    assert step["rules"] == ["KS601"]
    assert [f["path"] for f in step["files"]] == ["apps/worker-hpa.yaml"] and step["files"][0]["deletes"]
    assert [(c["action"], c["object"]["name"]) for c in step["cluster"]] == [("delete", "worker-hpa")]
    assert env.hpa() is not None  # -o json is a dry run

    done = ks("fix", "--apply", "--plan", str(path), "--kubeconfig", str(env.cluster.kubeconfig))
    assert done.returncode == 0, done.stderr
    assert env.hpa() is None
    assert not (env.repo / "apps" / "worker-hpa.yaml").exists()
    assert (env.repo / "apps" / "api-service.yaml").exists()
    log = git(env.repo, "log", "-1", "--format=%B")
    assert log.startswith("kubeshape fix: KS601") and step["findings"][0] in log
    assert git(env.repo, "status", "--porcelain") == ""

    # Once is enough: the same plan again finds the file gone and stops without touching anything; a new plan
    # has nothing to do.
    head = git(env.repo, "rev-parse", "HEAD")
    again = ks("fix", "--apply", "--plan", str(path), "--kubeconfig", str(env.cluster.kubeconfig))
    assert again.returncode == 2 and "no longer exists: make a new plan" in again.stderr
    assert "Traceback" not in again.stderr
    fresh = ks("fix", *env.args(), "--apply")
    assert fresh.returncode == 0 and "Nothing to apply." in fresh.stdout, fresh.stderr
    assert git(env.repo, "rev-parse", "HEAD") == head


def test_a_file_changed_since_the_plan_stops_before_anything_changes(env: Env, tmp_path: Path) -> None:
    path, _ = plan_json(env, tmp_path)
    hpa_file = env.repo / "apps" / "worker-hpa.yaml"
    edited = hpa_file.read_text().replace("maxReplicas: 3", "maxReplicas: 5")
    hpa_file.write_text(edited)
    git(env.repo, "commit", "-qam", "ops: more workers")
    head = git(env.repo, "rev-parse", "HEAD")

    proc = ks("fix", "--apply", "--plan", str(path), "--kubeconfig", str(env.cluster.kubeconfig))
    assert proc.returncode == 2
    [line] = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert "step 1: apps/worker-hpa.yaml changed since the plan was made: make a new plan" in line
    assert hpa_file.read_text() == edited and git(env.repo, "rev-parse", "HEAD") == head
    assert env.hpa() is not None


def test_an_object_changed_in_the_cluster_stops_that_step(env: Env, tmp_path: Path) -> None:
    path, _ = plan_json(env, tmp_path)
    env.cluster.api("PATCH", f"/apis/autoscaling/v2/namespaces/{env.ns}/horizontalpodautoscalers/worker-hpa",
                    {"spec": {"maxReplicas": 7}}, content_type="application/merge-patch+json")
    proc = ks("fix", "--apply", "--plan", str(path), "--kubeconfig", str(env.cluster.kubeconfig))
    assert proc.returncode == 2, proc.stderr
    assert "horizontalpodautoscaler/worker-hpa -n " in proc.stderr and "changed in the cluster since the plan" \
        in proc.stderr
    hpa = env.hpa()
    assert hpa is not None and hpa["spec"]["maxReplicas"] == 7
    assert (env.repo / "apps" / "worker-hpa.yaml").exists()  # the step's file edit was not made either
    assert git(env.repo, "log", "--format=%s") == "ops: worker autoscaling\n"


def test_interactive_asks_per_step_and_a_no_changes_nothing(env: Env, tmp_path: Path) -> None:
    proc = ks("fix", *env.args(), "--apply", "--interactive", stdin="n\n")
    assert proc.returncode == 0, proc.stderr
    assert "Apply step 1?" in proc.stdout and "applied 0 of 1 steps, 1 declined" in proc.stderr
    assert env.hpa() is not None and (env.repo / "apps" / "worker-hpa.yaml").exists()
    proc = ks("fix", *env.args(), "--apply", "--interactive", stdin="y\n")
    assert proc.returncode == 0, proc.stderr
    deadline = time.monotonic() + 10
    while env.hpa() is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert env.hpa() is None and not (env.repo / "apps" / "worker-hpa.yaml").exists()


def test_uncommitted_edits_are_never_overwritten(env: Env) -> None:
    hpa_file = env.repo / "apps" / "worker-hpa.yaml"
    hpa_file.write_text(hpa_file.read_text() + "# keep an eye on this\n")
    proc = ks("fix", *env.args(), "--apply")
    assert proc.returncode == 2
    assert "apps/worker-hpa.yaml: uncommitted changes -- commit or stash them" in proc.stderr
    assert hpa_file.read_text().endswith("# keep an eye on this\n") and env.hpa() is not None


@pytest.mark.parametrize("content,message", [
    ("{not json", "not JSON"),
    ('{"version": 1, "steps": [{"id": 1}]}', "not a kubeshape plan (steps.0.title: Field required)"),
    ('{"version": 9}', "plan version 9"),
    ('{"version": 1, "steps": [{"id": 1, "title": "x", "rules": [], "findings": [], "files": [{"path": '
     '"../../etc/passwd", "before": "' + "0" * 64 + '", "deletes": true}]}]}', "names a file outside the repository"),
])
def test_a_bad_plan_file_is_one_line_and_exit_2(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "plan.json"
    path.write_text(content)
    proc = ks("fix", "--apply", "--plan", str(path))
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


SHOP = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop-api
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: shop-api}
  template:
    metadata:
      labels: {app: shop-api}
    spec:
      containers:
        - name: api
          image: shop-api:1.4.2   # built on the laptop
          imagePullPolicy: Never
"""


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Registry]:
    reg = start_registry(tmp_path / "mirror")
    yield reg
    reg.stop()


def test_push_missing_copies_the_tag_into_the_private_registry_first(registry: Registry, mirror: Registry,
                                                                     tmp_path: Path) -> None:
    repo = tmp_path / "shop"
    (repo / "deploy").mkdir(parents=True)
    (repo / "deploy" / "api.yaml").write_text(SHOP)
    (repo / "kubeshape.yaml").write_text(f"registries:\n  private: [\"{registry.host}\"]\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "shop: api")
    with RegistryClient(mirror.host, insecure=True) as client:
        digest = push_image(client, "shop-api", "1.4.2", build_image({"app/v": b"1.4.2\n"},
                                                                      created=datetime(2026, 11, 30, tzinfo=UTC)))
    with RegistryClient(registry.host, insecure=True) as client:  # the private registry knows the repository
        push_image(client, "shop-api", "1.4.1", build_image({"app/v": b"1.4.1\n"},
                                                            created=datetime(2026, 11, 20, tzinfo=UTC)))
    args = ["fix", "--repo", str(repo), "--repo-only", "--registry", registry.host, "--insecure-registry"]

    refused = ks(*args)
    assert refused.returncode == 0, refused.stderr
    assert f"{registry.host}/shop-api has no tag 1.4.2: push it first" in refused.stdout

    done = ks(*args, "--push-missing", "--push-from", mirror.host, "--apply")
    assert done.returncode == 0, done.stderr
    with RegistryClient(registry.host, insecure=True) as client:
        assert client.head_manifest("shop-api", "1.4.2").digest == digest
    text = (repo / "deploy" / "api.yaml").read_text()
    assert f"image: {registry.host}/shop-api:1.4.2   # built on the laptop" in text
    assert "imagePullPolicy: IfNotPresent" in text, (done.stdout, done.stderr, git(repo, "log", "-p"))
    assert "KS101" in git(repo, "log", "-1", "--format=%s")
    again = ks(*args, "--push-missing", "--push-from", mirror.host, "--apply")
    assert again.returncode == 0 and "Nothing to apply." in again.stdout, again.stderr


def test_the_readme_shows_what_fix_demo_prints() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    shown = readme.split("<!-- fix-demo:start -->\n```text\n")[1].split("```\n<!-- fix-demo:end -->")[0]
    proc = ks("fix", "--demo")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == shown
    assert ks("fix", "--demo", "--apply").returncode == 2  # the demo is a dry run only


def test_select_and_ignore_choose_the_findings_as_in_doctor(env: Env) -> None:
    only_other = ks("fix", *env.args(), "--select", "KS7xx")
    assert only_other.returncode == 0 and only_other.stdout.startswith("Nothing to fix automatically."), \
        only_other.stderr
    ignored = ks("fix", *env.args(), "--ignore", "KS601", "--apply")
    assert ignored.returncode == 0 and "Nothing to apply." in ignored.stdout
    assert env.hpa() is not None
    chosen = ks("fix", *env.args(), "--select", "KS601")
    assert "Step 1: Delete HorizontalPodAutoscaler" in chosen.stdout
