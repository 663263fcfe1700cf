"""``kubeshape init gitops``: a fragmented repository becomes one kustomize base per service, applied by Flux.

Fast tests run the command (a real process) on git copies of the demo repository and of a fixture shaped like a
fragmented homelab repository (tests/fixtures/fragmented_homelab), with a history whose commit dates decide
between definitions. The test-bed test applies the demo's definitions to the real apiserver, changes one
imperatively, lets ``init gitops`` take the cluster as reference, pushes the result to the loopback git server and
hands it to the real Flux controllers: Flux must apply it without changing what runs.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.cluster import Cluster
from testbed.flux import Flux
from testbed.gitops import KUSTOMIZE_API, SOURCE_API, GitOpsSource, WorkingCopy, ensure_namespace, wait_for
from testbed.gitserver import GitServer

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "src" / "kubeshape" / "demo" / "repo"
DEMO_BUNDLE = ROOT / "src" / "kubeshape" / "demo" / "bundle"
FIXTURE = ROOT / "tests" / "fixtures" / "fragmented_homelab"
ROOT_COPY = "family-assistant-backend.yaml"  # the demo's registry copy, committed after the others
INFRA = "infrastructure/kubernetes"
FA_BASE = "apps/homelab/family-assistant"
WAIT = 180.0
# The fixture's history: what was committed when (the newest definition wins without a cluster).
FIXTURE_HISTORY = [
    ("2024-01-10T09:00:00Z", ["README.md", "docker-compose.yml", "k8s/namespaces.yaml", "k8s/media/jellyfin.yaml",
                              "k8s/media/arr-stack.yaml", "k8s/tools/whoami-service.yaml", "k8s/tools/whoami-v2.yaml",
                              "monitoring", "flux"]),
    ("2024-02-10T09:00:00Z", ["k8s/tools/whoami.yaml"]),
    ("2024-03-10T09:00:00Z", ["k8s/media/jellyfin-gpu.yaml", "k8s/tools/backup-cronjob.yaml"]),
]
SECRETS = ("hunter2-secret", "plain-secret-value")  # values in the fixture that must never be printed


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=60,
                          env={**os.environ, **(env or {})}).stdout


def commit(repo: Path, paths: list[str], when: str, message: str | None = None) -> None:
    git(repo, "add", "--", *paths)
    git(repo, "commit", "--quiet", "-m", message or f"manifests of {when[:10]}", f"--date={when}",
        env={"GIT_COMMITTER_DATE": when})


def new_repo(path: Path, remote: str | None = "https://github.com/pesuga/homelab.git") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    for key, value in (("user.name", "Homelab Owner"), ("user.email", "owner@home.invalid"),
                       ("commit.gpgsign", "false")):
        git(path, "config", key, value)
    if remote:
        git(path, "remote", "add", "origin", remote)
    return path


def demo_repo(dest: Path, namespace: str = "homelab", without: tuple[str, ...] = ()) -> Path:
    """A git copy of the demo repository (less the files ``without``): everything committed in January, the
    registry copy in March."""
    shutil.copytree(DEMO, dest)
    for rel in without:
        (dest / rel).unlink()
    if namespace != "homelab":
        for p in dest.rglob("*.yaml"):
            p.write_text(p.read_text().replace("namespace: homelab", f"namespace: {namespace}"))
    new_repo(dest)
    first = [p for p in sorted(os.listdir(dest)) if p not in (".git", ROOT_COPY)]
    commit(dest, first, "2024-01-15T10:00:00Z", "homelab manifests")
    commit(dest, [ROOT_COPY], "2024-03-01T10:00:00Z", "family-assistant: registry version")
    return dest


def fixture_repo(dest: Path) -> Path:
    shutil.copytree(FIXTURE, dest)
    new_repo(dest, "git@github.com:someone/home.git")
    for when, paths in FIXTURE_HISTORY:
        commit(dest, paths, when)
    return dest


def ks(*args: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``kubeshape ...`` in a real process."""
    return subprocess.run([sys.executable, "-m", "kubeshape", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=cwd)


def gitops(repo: Path, *args: str, code: int = 0) -> str:
    proc = ks("init", "gitops", "--dir", str(repo), *args)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout + proc.stderr


def lint_rules(repo: Path) -> set[str]:
    proc = ks("lint", str(repo), "-o", "json", "--fail-on", "never")
    assert proc.returncode == 0, proc.stderr
    return {f["rule"] for f in json.loads(proc.stdout)["findings"]}


def snapshot(repo: Path) -> dict[str, bytes]:
    """Every file of the working tree (not .git), by path."""
    return {p.relative_to(repo).as_posix(): p.read_bytes() for p in sorted(repo.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(repo).parts}


def status(repo: Path) -> str:
    return git(repo, "status", "--porcelain")


def kustomize_build(base: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` of a generated base: it must build."""
    out = subprocess.run(["kubectl", "kustomize", str(base)], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    return [d for d in yaml.safe_load_all(out) if d]


# -- the demo repository ------------------------------------------------------------------------------------


def test_demo_dry_run_plans_one_base_per_service_and_says_which_definition_wins(tmp_path: Path) -> None:
    repo = demo_repo(tmp_path / "homelab")
    before = snapshot(repo)
    out = gitops(repo)

    assert "init gitops (dry run): 6 services" in out
    assert "Which definition wins: git history (no cluster was given" in out
    # the duplicate: the registry copy was committed last and wins; the differing fields are named, per file
    assert (f"Deployment family-assistant-backend: 2 definitions; kept {ROOT_COPY}:6: the most recently committed "
            "(last committed 2024-03-01 10:00 UTC)") in out
    assert f"dropped {INFRA}/family-assistant-backend.yaml:4, which differs in 8 fields" in out
    assert ("spec.template.spec.containers[family-assistant].image: 100.81.76.55:30500/family-assistant:fixed-final "
            "-> family-assistant:fixed") in out
    assert "spec.template.spec.containers[family-assistant].imagePullPolicy: Always -> Never" in out
    # the variants (rule KS202) are one service; the older ones go with what only they use
    assert "family-assistant-backend is kept, the most recently committed" in out
    assert re.search(r"Deployment homelab/family-assistant-enhanced \(.*\): a variant of family-assistant-backend "
                     r"\(same image family-assistant in homelab\): not the newest", out)
    assert "HorizontalPodAutoscaler family-assistant-enhanced-hpa" in out
    assert "ConfigMap family-assistant-enhancement-config" in out
    # the files
    assert f"git mv {ROOT_COPY} -> {FA_BASE}/deployment.yaml" in out
    assert (f"git mv {INFRA}/family-assistant-backend.yaml -> {FA_BASE}/service.yaml -- drops Deployment "
            "family-assistant-backend") in out
    assert f"git rm {INFRA}/family-assistant-enhanced-deployment.yaml" in out
    assert f"git rm {INFRA}/family-assistant-enhancement.yaml" in out
    assert "git mv infrastructure/kubernetes/observability/prometheus.yaml -> apps/homelab/prometheus/prometheus.yaml" \
        in out
    assert f"new    {FA_BASE}/kustomization.yaml" in out
    assert "new    clusters/homelab/flux-system/gotk-sync.yaml" in out
    assert "url: https://github.com/pesuga/homelab.git" in out and "branch: main" in out
    assert "path: ./apps/homelab/family-assistant" in out
    assert "Dry run: nothing was changed." in out
    # a dry run changes nothing
    assert snapshot(repo) == before and status(repo) == ""


def test_demo_apply_moves_with_history_and_comments_and_leaves_no_duplicates(tmp_path: Path) -> None:
    repo = demo_repo(tmp_path / "homelab")
    assert {"KS201", "KS202"} <= lint_rules(repo)
    head = git(repo, "rev-parse", "HEAD").strip()

    out = gitops(repo, "--apply", "--commit")
    assert re.search(r"Done: 7 moved \(git mv\), 0 edited, 13 new, 2 removed \(git rm\); committed [0-9a-f]{12}",
                     out)
    assert git(repo, "rev-parse", "HEAD~1").strip() == head and status(repo) == ""

    deployment = (repo / FA_BASE / "deployment.yaml").read_text()
    assert deployment == (DEMO / ROOT_COPY).read_text()  # moved whole, byte for byte: comments and all
    assert "# not enough memory on the nodes to run a 3rd copy during rollouts" in deployment
    service = yaml.safe_load((repo / FA_BASE / "service.yaml").read_text())
    assert service["kind"] == "Service" and service["metadata"]["name"] == "family-assistant-backend"
    for gone in (ROOT_COPY, f"{INFRA}/family-assistant-backend.yaml", f"{INFRA}/family-assistant-enhancement.yaml",
                 f"{INFRA}/family-assistant-enhanced-deployment.yaml", f"{INFRA}/homelab-dashboard.yaml"):
        assert not (repo / gone).exists(), gone
    # git records moves: the history of the new file goes back to the original commits
    log = git(repo, "log", "--follow", "--format=%s", "--", f"{FA_BASE}/deployment.yaml").splitlines()
    assert log[1:] == ["family-assistant: registry version"]
    renames = git(repo, "show", "--name-status", "-M", "--format=", "HEAD")
    assert f"R100\t{ROOT_COPY}\t{FA_BASE}/deployment.yaml" in renames
    assert "R100\tinfrastructure/kubernetes/observability/loki.yaml\tapps/homelab/loki/loki.yaml" in renames

    # every base builds, and together they hold each object once
    objects = []
    for k in sorted(repo.glob("apps/*/*/kustomization.yaml")):
        objects += [(d["kind"], d["metadata"]["name"]) for d in kustomize_build(k.parent)]
    assert len(objects) == len(set(objects))
    assert ("Deployment", "family-assistant-backend") in objects and ("Service", "family-assistant-backend") in objects
    assert not any(name.startswith("family-assistant-enhanc") for _, name in objects)
    rules = lint_rules(repo)
    assert not {"KS201", "KS202"} & rules, rules

    # running it again finds nothing to do and changes nothing
    tree = snapshot(repo)
    again = gitops(repo, "--apply", "--commit")
    assert again.startswith("Nothing to do:")
    assert "objects that 7 Flux Kustomizations render" in again
    assert snapshot(repo) == tree and status(repo) == "" and git(repo, "rev-parse", "HEAD~1").strip() == head


def test_demo_bundle_as_reference_writes_what_runs_without_cluster_fields_or_secrets(tmp_path: Path) -> None:
    repo = demo_repo(tmp_path / "homelab")
    out = gitops(repo, "--bundle", str(DEMO_BUNDLE), "--apply")
    assert "Which definition wins: the cluster bundle" in out
    assert "kept family-assistant-backend.yaml:6: the closest to the live object" in out
    assert ("spec.template.spec.containers[family-assistant].image: 100.81.76.55:30500/family-assistant:fixed-final "
            "-> family-assistant:phase2-mcp-logging-fix") in out
    # the live value of ADMIN_TOKEN is redacted in the bundle: never written, and said so
    assert re.search(r"NOT written, the cluster's value is secret .*\.env\[ADMIN_TOKEN\]", out)
    # the variants are not in the cluster: they go
    assert re.search(r"Deployment homelab/family-assistant-enhanced \(.*\): .*: not in the cluster", out)
    assert "kubectl delete horizontalpodautoscaler family-assistant-enhanced-hpa -n homelab" in out  # live orphan

    dep = yaml.safe_load((repo / FA_BASE / "deployment.yaml").read_text())
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "family-assistant:phase2-mcp-logging-fix"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert {e["name"] for e in container["env"]} == {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME",
                                                     "DATABASE_PASSWORD"}
    assert "<redacted>" not in "\n".join(p.read_text() for p in repo.glob("apps/**/*.yaml"))
    text = "\n".join(p.read_text() for p in (repo / FA_BASE).glob("*.yaml"))
    for cluster_only in ("deployment.kubernetes.io/revision", "managedFields", "resourceVersion", "uid:",
                         "creationTimestamp", "terminationMessagePath", "dnsPolicy", "clusterIP", "status:"):
        assert cluster_only not in text, cluster_only
    assert "# family-assistant-backend -- registry version" in (repo / FA_BASE / "deployment.yaml").read_text()
    assert not {"KS201", "KS202"} & lint_rules(repo)


# -- a fragmented homelab repository --------------------------------------------------------------------------


def test_fragmented_homelab_plan_apply_and_rerun(tmp_path: Path) -> None:
    repo = fixture_repo(tmp_path / "home")
    assert {"KS201", "KS202"} <= lint_rules(repo)
    untouched = {k: v for k, v in snapshot(repo).items()
                 if k.startswith(("monitoring/", "flux/")) or k in ("docker-compose.yml", "README.md")}

    plan = gitops(repo, "--cluster", "home")
    assert "init gitops (dry run): 6 services" in plan
    assert ("Deployment jellyfin: 2 definitions; kept k8s/media/jellyfin-gpu.yaml:2: the most recently committed "
            "(last committed 2024-03-10 09:00 UTC)") in plan
    assert "spec.template.spec.containers[jellyfin].image: jellyfin/jellyfin:10.9.11 -> jellyfin/jellyfin:10.8.13" \
        in plan
    assert "spec.template.spec.containers[jellyfin].env[JELLYFIN_API_KEY]: <redacted> (added)" in plan
    assert "dropped k8s/tools/whoami-service.yaml:1 (the same)" in plan
    assert "Deployment tools/whoami-v2 (k8s/tools/whoami-v2.yaml:2): a variant of whoami" in plan
    assert ("Service tools/whoami-v2 (k8s/tools/whoami-v2.yaml:20): used only by Deployment whoami-v2, which "
            "goes") in plan
    # one file with two services is cut in two; the ConfigMap both use goes with the first
    assert "git mv k8s/media/arr-stack.yaml -> apps/media/radarr/radarr.yaml" in plan
    assert ("new    apps/media/sonarr/sonarr.yaml (Deployment sonarr, Service sonarr) -- cut out of "
            "k8s/media/arr-stack.yaml") in plan
    assert "note: ConfigMap arr-common is also used by media/sonarr" in plan
    # objects follow the workload that uses them: RBAC through the ServiceAccount, the Ingress through the Service
    assert "CronJob restic-backup, Role restic, RoleBinding restic, Secret restic-creds, ServiceAccount restic" in plan
    assert "Deployment whoami, Ingress whoami, Service whoami" in plan
    assert "git mv k8s/namespaces.yaml -> apps/_cluster/namespaces/namespaces.yaml" in plan
    assert "dependsOn:\n        - name: namespaces" in plan  # services wait for the namespace they live in
    assert "url: ssh://git@github.com/someone/home.git" in plan
    assert "1 object that 1 kustomization renders" in plan
    assert "Flux and Argo CD objects in flux/traefik.yaml" in plan
    assert "1 YAML file that is not a Kubernetes manifest: docker-compose.yml" in plan
    for value in SECRETS:
        assert value not in plan

    applied = gitops(repo, "--cluster", "home", "--apply")
    assert "staged, not committed" in applied
    for value in SECRETS:
        assert value not in applied
    staged = git(repo, "diff", "--cached", "-M", "--name-status")
    assert "R100\tk8s/tools/whoami.yaml\tapps/tools/whoami/whoami.yaml" in staged
    assert "D\tk8s/tools/whoami-v2.yaml" in staged and "D\tk8s/tools/whoami-service.yaml" in staged
    assert not (repo / "k8s").exists()  # emptied directories are removed
    assert {k: v for k, v in snapshot(repo).items() if k in untouched} == untouched
    radarr = (repo / "apps/media/radarr/radarr.yaml").read_text()
    assert radarr.startswith("# sonarr + radarr, they share the same settings")
    assert "name: radarr   # 7878 is radarr's default" in radarr and "sonarr" not in radarr.split("\n", 1)[1]
    sonarr = yaml.safe_load_all((repo / "apps/media/sonarr/sonarr.yaml").read_text())
    assert [(d["kind"], d["metadata"]["name"]) for d in sonarr] == [("Deployment", "sonarr"), ("Service", "sonarr")]
    assert "# 20Gi was too small for the metadata cache" in (repo / "apps/media/jellyfin/jellyfin.yaml").read_text()
    for base in sorted(repo.glob("apps/*/*/kustomization.yaml")):
        kustomize_build(base.parent)
    git(repo, "commit", "--quiet", "-m", "one base per service")
    assert git(repo, "log", "--follow", "--format=%ad", "--date=short", "--",
               "apps/tools/whoami/whoami.yaml").split()[1:] == ["2024-02-10"]
    rules = lint_rules(repo)
    assert not {"KS201", "KS202"} & rules, rules
    tree = snapshot(repo)
    assert gitops(repo, "--cluster", "home", "--apply").startswith("Nothing to do:")
    assert snapshot(repo) == tree and status(repo) == ""


def test_prefer_and_keep_variants_override_the_history(tmp_path: Path) -> None:
    repo = fixture_repo(tmp_path / "home")
    out = gitops(repo, "--prefer", "k8s/media/jellyfin.yaml", "--keep-variants")
    assert "Deployment jellyfin: 2 definitions; kept k8s/media/jellyfin.yaml:3: chosen with --prefer" in out
    assert "whoami, whoami-v2: kept as variants (--keep-variants); rule KS202 still reports them" in out
    assert "Deployment whoami, Deployment whoami-v2, Ingress whoami, Service whoami, Service whoami-v2" in out
    assert "git rm k8s/tools/whoami-v2.yaml" not in out


def test_already_one_base_per_service_has_nothing_to_do(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "tidy")
    files = {
        "apps/web/site/kustomization.yaml": "resources: [deployment.yaml]\n",
        "apps/web/site/deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: site, namespace: "
                                         "web}\nspec:\n  selector: {matchLabels: {app: site}}\n  template:\n    "
                                         "metadata: {labels: {app: site}}\n    spec:\n      containers: [{name: site, "
                                         "image: nginx:1.27}]\n",
        "clusters/home/apps.yaml": "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: "
                                   "{name: site, namespace: flux-system}\nspec:\n  interval: 10m\n  path: "
                                   "./apps/web/site\n  prune: true\n  sourceRef: {kind: GitRepository, name: "
                                   "flux-system}\n",
        "overlays/staging/kustomization.yaml": "resources: [../../apps/web/site]\nnamespace: staging\n",
        "charts/tool/Chart.yaml": "apiVersion: v2\nname: tool\nversion: 0.1.0\n",
        "charts/tool/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n",
        ".github/workflows/ci.yml": "on: push\njobs: {}\n",
    }
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    commit(repo, ["."], "2024-05-01T00:00:00Z")
    tree = snapshot(repo)
    out = gitops(repo, "--apply", "--commit")
    assert out.startswith("Nothing to do: no manifests are applied as plain files")
    assert snapshot(repo) == tree and status(repo) == ""


def test_a_plain_copy_of_what_flux_deploys_goes_and_flux_s_definition_stays(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "tidy")
    deployment = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: site, namespace: web}\nspec:\n  selector: "
                  "{matchLabels: {app: site}}\n  template:\n    metadata: {labels: {app: site}}\n    spec:\n      "
                  "containers: [{name: site, image: nginx:1.27}]\n")
    files = {
        "apps/web/site/kustomization.yaml": "resources: [deployment.yaml]\n",
        "apps/web/site/deployment.yaml": deployment,
        "clusters/home/site.yaml": "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: "
                                   "{name: site, namespace: flux-system}\nspec:\n  interval: 10m\n  path: "
                                   "./apps/web/site\n  prune: true\n  sourceRef: {kind: GitRepository, name: "
                                   "flux-system}\n",
        "old/site.yaml": deployment.replace("nginx:1.27", "nginx:1.25"),
    }
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    commit(repo, ["."], "2024-05-01T00:00:00Z")
    out = gitops(repo, "--apply", "--commit")
    assert out.startswith("init gitops: no service to move")
    assert ("git rm old/site.yaml (Deployment site) -- already defined in apps/web/site/deployment.yaml:1, which "
            "Flux Kustomization flux-system/site deploys (left alone)") in out
    assert "Done: 0 moved (git mv), 0 edited, 0 new, 1 removed (git rm); committed" in out
    assert sorted(snapshot(repo)) == sorted(set(files) - {"old/site.yaml"}) and status(repo) == ""
    assert (repo / "apps/web/site/deployment.yaml").read_text() == deployment
    assert gitops(repo).startswith("Nothing to do:")


def test_unreachable_cluster_is_exit_3(tmp_path: Path) -> None:
    repo = fixture_repo(tmp_path / "home")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "me"}}],
        "users": [{"name": "me", "user": {"token": "not-a-real-token"}}]}))
    tree = snapshot(repo)
    proc = ks("init", "gitops", "--dir", str(repo), "--kubeconfig", str(kubeconfig), "--request-timeout", "5s",
              "--apply")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stderr.startswith("kubeshape: error: cannot reach the API server of context 'gone' at "
                                  "https://127.0.0.1:1") and "Traceback" not in proc.stderr
    assert snapshot(repo) == tree


def test_cluster_only_fields_go_and_what_is_left_alone_stays_in_its_file(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "exported")
    exported = """\
# exported with kubectl get -o yaml, then edited
apiVersion: apps/v1
kind: Deployment
metadata:
  annotations:
    deployment.kubernetes.io/revision: "7"
    kubectl.kubernetes.io/last-applied-configuration: |
      {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"paperless"}}
    team: docs   # who to ask
  creationTimestamp: "2024-04-01T10:00:00Z"
  generation: 7
  name: paperless
  resourceVersion: "123456"
  uid: 0b4c1f6e-0d0c-4a43-9d1e-6f1d1b0d1a2b
spec:
  replicas: 1
  selector:
    matchLabels: {app: paperless}
  template:
    metadata:
      creationTimestamp: null
      labels: {app: paperless}
    spec:
      containers:
        - name: paperless
          image: ghcr.io/paperless-ngx/paperless-ngx:2.12.1   # pinned: 2.13 breaks the OCR
status:
  availableReplicas: 1
  observedGeneration: 7
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: redis
  namespace: default
spec:
  interval: 1h
  chart:
    spec:
      chart: redis
      sourceRef: {kind: HelmRepository, name: bitnami}
"""
    (repo / "paperless.yaml").write_text(exported)
    commit(repo, ["paperless.yaml"], "2024-04-02T00:00:00Z")
    out = gitops(repo, "--apply")
    assert ("Deployment paperless: cluster-only fields removed: metadata.annotations.deployment.kubernetes.io/revision,"
            " metadata.annotations.kubectl.kubernetes.io/last-applied-configuration, metadata.creationTimestamp, "
            "metadata.generation, metadata.resourceVersion, metadata.uid, spec.template.metadata.creationTimestamp, "
            "status") in out
    assert "edit   paperless.yaml -- keeps what is left alone" in out
    moved = (repo / "apps/default/paperless/deployment.yaml").read_text()
    assert "# exported with kubectl get -o yaml, then edited" in moved
    assert "image: ghcr.io/paperless-ngx/paperless-ngx:2.12.1   # pinned: 2.13 breaks the OCR" in moved
    assert "team: docs   # who to ask" in moved
    doc = yaml.safe_load(moved)
    assert doc["metadata"] == {"annotations": {"team": "docs"}, "name": "paperless"}
    assert "status" not in doc and "creationTimestamp" not in doc["spec"]["template"]["metadata"]
    # the file applied "default": the base says so, since the document does not
    assert "namespace: default" in (repo / "apps/default/paperless/kustomization.yaml").read_text()
    assert [d["kind"] for d in kustomize_build(repo / "apps/default/paperless")] == ["Deployment"]
    left = list(yaml.safe_load_all((repo / "paperless.yaml").read_text()))
    assert [d["kind"] for d in left] == ["HelmRelease"]


def test_uncommitted_changes_are_refused_unless_allowed(tmp_path: Path) -> None:
    repo = fixture_repo(tmp_path / "home")
    path = repo / "k8s/tools/whoami.yaml"
    path.write_text(path.read_text().replace("replicas: 2", "replicas: 3"))
    dry = gitops(repo)
    assert "Uncommitted changes in k8s/tools/whoami.yaml: --apply refuses unless --allow-dirty" in dry
    tree = snapshot(repo)
    proc = ks("init", "gitops", "--dir", str(repo), "--apply")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("kubeshape: error: uncommitted changes in k8s/tools/whoami.yaml: commit or stash "
                                   "them first, or pass --allow-dirty (nothing was changed)")
    assert snapshot(repo) == tree
    gitops(repo, "--apply", "--allow-dirty")
    assert "replicas: 3" in (repo / "apps/tools/whoami/whoami.yaml").read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["--dir", "{tmp}"], "{tmp} is not in a git repository: init gitops moves files with git mv"),
    (["--dir", "{repo}/k8s"], "{repo}/k8s is inside the git repository {repo}: the new tree starts at its root"),
    (["--dir", "{repo}", "--commit"], "--commit commits what --apply changes: add --apply"),
    (["--dir", "{repo}", "--interval", "often"], "--interval 'often': a duration such as 1m, 30s or 1h30m"),
    (["--dir", "{repo}", "--cluster", "Home_Lab"], "--cluster 'Home_Lab': use lower-case letters, digits and '-'"),
    (["--dir", "{repo}", "--path", "../elsewhere"], "--path '../elsewhere': a directory inside the repository"),
    (["--dir", "{repo}", "--prefer", "k8s/nope.yaml"], "--prefer k8s/nope.yaml: not a manifest file applied as it"),
    (["--dir", "{repo}", "--bundle", "{tmp}", "--context", "x"], "--context/--kubeconfig read a live cluster; drop"),
    (["--dir", "{repo}", "--bundle", "{tmp}/missing"], "{tmp}/missing"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    repo = fixture_repo(tmp_path / "home")
    tree = snapshot(repo)
    fill = {"tmp": str(tmp_path), "repo": str(repo)}
    proc = ks("init", "gitops", *(a.format(**fill) for a in args))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("kubeshape: error: " + message.format(**fill)), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert snapshot(repo) == tree


def test_apply_without_a_remote_needs_url(tmp_path: Path) -> None:
    repo = fixture_repo(tmp_path / "home")
    git(repo, "remote", "remove", "origin")
    assert "Flux: no git remote: pass --url" in gitops(repo)
    proc = ks("init", "gitops", "--dir", str(repo), "--apply")
    assert proc.returncode == 2 and "pass --url with the URL Flux clones this repository from" in proc.stderr
    out = gitops(repo, "--apply", "--url", "https://git.home.arpa/me/home.git", "--branch", "live",
                 "--interval", "30s", "--flux-namespace", "gitops", "--path", "k8s-apps")
    sync = list(yaml.safe_load_all((repo / "clusters/default/flux-system/gotk-sync.yaml").read_text()))
    source = next(d for d in sync if d and d["kind"] == "GitRepository")
    assert source["spec"] == {"interval": "30s", "ref": {"branch": "live"}, "url": "https://git.home.arpa/me/home.git"}
    assert source["metadata"]["namespace"] == "gitops"
    ks_doc = yaml.safe_load((repo / "clusters/default/apps/tools/whoami.yaml").read_text())
    assert ks_doc["spec"]["path"] == "./k8s-apps/tools/whoami" and ks_doc["metadata"]["namespace"] == "gitops"
    assert "Done:" in out


# -- the test bed: the live cluster decides, Flux takes over ----------------------------------------------------


def _state(obj: dict[str, Any]) -> dict[str, Any]:
    """What must not change when Flux takes an object over: spec, labels and annotations that matter."""
    meta = obj["metadata"]
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if not k.startswith("kustomize.toolkit.fluxcd.io/")}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k not in ("deployment.kubernetes.io/revision",)}
    return {"spec": obj.get("spec"), "data": obj.get("data"), "labels": labels, "annotations": annotations}


def test_live_cluster_reference_then_flux_applies_without_changing_what_runs(
        cluster: Cluster, flux: Flux, git_server: GitServer, tmp_path: Path) -> None:
    ns = f"gitops-{secrets.token_hex(3)}"
    ensure_namespace(cluster, ns)
    try:
        _live_reference_then_flux(cluster, flux, git_server, tmp_path, ns)
    finally:
        for kind in ("kustomizations.kustomize.toolkit.fluxcd.io", "gitrepositories.source.toolkit.fluxcd.io"):
            cluster.kubectl("delete", kind, "--all", "-n", ns, "--timeout=60s", check=False, timeout=90)
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


# Demo files whose objects run on the test bed next to family-assistant (all namespaced; prometheus.yaml and
# docker-registry.yaml are left out: a ClusterRole and a claim are not per test).
ALSO_RUNNING = (f"{INFRA}/homelab-dashboard.yaml", f"{INFRA}/observability/loki.yaml",
                f"{INFRA}/observability/node-exporter.yaml")


def _api_path(ns: str, kind: str, name: str) -> str:
    group = {"Deployment": "apis/apps/v1", "StatefulSet": "apis/apps/v1", "DaemonSet": "apis/apps/v1"}
    return f"/{group.get(kind, 'api/v1')}/namespaces/{ns}/{kind.lower()}s/{name}"


def _live_reference_then_flux(cluster: Cluster, flux: Flux, git_server: GitServer, tmp_path: Path, ns: str) -> None:
    url = git_server.create_repo(ns)
    repo = demo_repo(tmp_path / "homelab", namespace=ns, without=(f"{INFRA}/observability/prometheus.yaml",
                                                                  f"{INFRA}/registry/docker-registry.yaml"))
    git(repo, "remote", "set-url", "origin", url)
    git(repo, "push", "--quiet", "origin", "HEAD:main")

    # What runs: the definitions people applied by hand (the registry copy's Deployment, the infrastructure
    # file's Service, the other services' files), then an image changed imperatively that no file records.
    docs = [*yaml.safe_load_all((repo / ROOT_COPY).read_text()),
            *yaml.safe_load_all((repo / INFRA / "family-assistant-backend.yaml").read_text())]
    applied = [docs[0], next(d for d in docs[1:] if d["kind"] == "Service")]
    for rel in ALSO_RUNNING:
        applied += [d for d in yaml.safe_load_all((repo / rel).read_text()) if d]
    cluster.kubectl("apply", "--server-side", "--field-manager=kubectl-client-side-apply", "-f", "-",
                    input=yaml.safe_dump_all(applied))
    cluster.kubectl("set", "image", "deployment/family-assistant-backend",
                    "family-assistant=family-assistant:phase2-mcp-logging-fix", "-n", ns)
    paths = [_api_path(ns, d["kind"], d["metadata"]["name"]) for d in applied]
    dep_path = _api_path(ns, "Deployment", "family-assistant-backend")
    wait_for(lambda: cluster.api("GET", dep_path).get("status", {}).get("observedGeneration") ==
             cluster.api("GET", dep_path)["metadata"]["generation"], 60, "the Deployment controller saw the change")
    before = {p: cluster.api("GET", p) for p in paths}

    out = gitops(repo, "--kubeconfig", str(cluster.kubeconfig), "--url", url, "--cluster", "testbed",
                 "--flux-namespace", ns, "--interval", "10s", "--apply", "--commit")
    assert "Which definition wins: the live cluster, context" in out and f"(namespaces {ns})" in out
    assert "kept family-assistant-backend.yaml:6: the closest to the live object (1 field differs)" in out
    assert ("Deployment family-assistant-backend: set to what runs in the cluster (1 field):\n"
            "    spec.template.spec.containers[family-assistant].image: 100.81.76.55:30500/family-assistant:"
            "fixed-final -> family-assistant:phase2-mcp-logging-fix") in out
    # what the API server defaults or adds (StatefulSet claim templates, DaemonSet annotations...) is no change
    assert out.count("set to what runs in the cluster") == 1, out
    assert re.search(rf"Deployment {ns}/family-assistant-enhanced \(.*\): .*: not in the cluster", out)
    base = repo / "apps" / ns / "family-assistant"
    deployment = (base / "deployment.yaml").read_text()
    assert "image: family-assistant:phase2-mcp-logging-fix" in deployment
    assert "maxSurge: 0        # not enough memory on the nodes to run a 3rd copy during rollouts" in deployment
    for field in ("terminationMessagePath", "dnsPolicy", "clusterIP", "resourceVersion", "managedFields"):
        assert field not in deployment + (base / "service.yaml").read_text(), field
    sha = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "push", "--quiet", "origin", "HEAD:main")

    # Server-side dry run of every new base against what runs: nothing to change. (The same check on the
    # definition that lost shows what a change looks like.)
    for kustomization in sorted((repo / "apps" / ns).glob("*/kustomization.yaml")):
        diff = cluster.kubectl("diff", "--server-side", "--force-conflicts", "--field-manager=kustomize-controller",
                               "-k", str(kustomization.parent), check=False)
        assert diff.returncode == 0, diff.stdout + diff.stderr
    loser = git(repo, "show", f"HEAD~1:{INFRA}/family-assistant-backend.yaml")
    diff = cluster.kubectl("diff", "--server-side", "--force-conflicts", "-f", "-", input=loser, check=False)
    assert diff.returncode == 1 and re.search(r"^\+\s+image: family-assistant:fixed$", diff.stdout, re.M), diff

    # Hand the repository to Flux with the objects the command generated (their URL is the loopback server's).
    cluster.kubectl("apply", "-f", str(repo / "clusters/testbed/flux-system/gotk-sync.yaml"))
    source = GitOpsSource(cluster, WorkingCopy(repo, url), name="flux-system", namespace=ns, interval="10s")
    source.wait_applied("flux-system", sha, flux, timeout=WAIT)
    for name in ("family-assistant", "homelab-dashboard", "loki", "node-exporter"):
        source.wait_applied(name, sha, flux, timeout=WAIT)
    ks_obj = cluster.api("GET", f"{KUSTOMIZE_API}/namespaces/{ns}/kustomizations/family-assistant")
    inventory = {e["id"] for e in ks_obj["status"]["inventory"]["entries"]}
    assert inventory == {f"{ns}_family-assistant-backend_apps_Deployment", f"{ns}_family-assistant-backend__Service"}
    assert cluster.api("GET", f"{SOURCE_API}/namespaces/{ns}/gitrepositories/flux-system")["spec"]["url"] == url

    after = {p: cluster.api("GET", p) for p in paths}
    for path in paths:
        assert _state(after[path]) == _state(before[path]), path
        assert "kustomize.toolkit.fluxcd.io/name" in after[path]["metadata"]["labels"], path
        assert after[path]["metadata"].get("generation") == before[path]["metadata"].get("generation"), path
        assert "kustomize-controller" in {m["manager"] for m in after[path]["metadata"]["managedFields"]}, path

    doctor = ks("doctor", "--repo", str(repo), "--kubeconfig", str(cluster.kubeconfig), "-n", ns, "-o", "json",
                "--fail-on", "never")
    assert doctor.returncode == 0, doctor.stderr
    rules = {f["rule"] for f in json.loads(doctor.stdout)["findings"]}
    assert not {"KS201", "KS202", "KS203"} & rules, rules
