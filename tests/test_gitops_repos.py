"""Real GitOps repository shapes: render roots, deploy targets, Flux substitution, files that are not manifests.

Each test runs ``kubeshape lint`` as a user would (a real process, from another working directory) on a small
repository written here, and checks what the user sees: the exit code, the findings, the notes.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from testbed.binaries import binary
from tests.helpers import write_repo


def lint(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeshape", "lint", *args], capture_output=True, text=True,
                          cwd=cwd or "/", timeout=120, check=False)


def lint_json(*args: str, cwd: Path | None = None) -> tuple[int, dict[str, Any]]:
    proc = lint(*args, "-o", "json", cwd=cwd)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def rules_of(report: dict[str, Any]) -> list[str]:
    return sorted(f["rule"] for f in report["findings"])


DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: ghcr.io/example/web:1.2.3
"""


# -- the reproducers ---------------------------------------------------------------------------------
def test_plain_equals_sign_in_a_kustomization_is_a_string(tmp_path: Path) -> None:
    write_repo(tmp_path / "r1", {
        "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  op: =\n",
        "kustomization.yaml": "resources:\n- cm.yaml\n",
    })
    for target in ("r1", "r1/cm.yaml"):
        proc = lint(str(tmp_path / target))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr


def test_redefined_anchors_are_allowed(tmp_path: Path) -> None:
    write_repo(tmp_path / "r3", {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n"
                                            "  k1: &v one\n  k2: *v\n  k3: &v two\n  k4: *v\n"})
    proc = lint(str(tmp_path / "r3"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_overlays_of_one_base_are_not_duplicates(tmp_path: Path) -> None:
    write_repo(tmp_path / "r4", {
        "base/deploy.yaml": DEPLOY,
        "base/kustomization.yaml": "resources:\n- deploy.yaml\n",
        "overlays/a/kustomization.yaml": "resources:\n- ../../base\n",
        "overlays/b/kustomization.yaml": "resources:\n- ../../base\nreplicas:\n- name: web\n  count: 3\n",
    })
    code, report = lint_json(".", "--select", "KS201", cwd=tmp_path / "r4")
    assert code == 0 and report["findings"] == []
    # Both overlays were rendered: the base's Deployment is there once per overlay, located in the base file.
    code, report = lint_json(str(tmp_path / "r4"))
    assert "2 render roots" in report["sources"]["repo"]


def test_a_custom_kind_named_like_a_core_kind_is_another_object(tmp_path: Path) -> None:
    write_repo(tmp_path / "r5", {"sa.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: runner\n"
                                            "---\napiVersion: talos.dev/v1alpha1\nkind: ServiceAccount\n"
                                            "metadata:\n  name: runner\nspec:\n  roles: [\"os:admin\"]\n"})
    code, report = lint_json(str(tmp_path / "r5"), "--select", "KS201")
    assert code == 0 and report["findings"] == []


def test_the_same_object_twice_in_plain_files_is_still_a_duplicate(tmp_path: Path) -> None:
    write_repo(tmp_path / "r", {"a.yaml": DEPLOY, "old/b.yaml": DEPLOY.replace("1.2.3", "1.2.2")})
    code, report = lint_json(str(tmp_path / "r"), "--select", "KS201")
    assert code == 1
    [f] = report["findings"]
    assert f["rule"] == "KS201" and "2 files" in f["message"] and "disagree on web.image" in f["message"]
    assert any(e.startswith("a.yaml:1:") for e in f["evidence"])
    assert any(e.startswith("old/b.yaml:1:") for e in f["evidence"])


def test_unresolved_variable_is_not_guessed(tmp_path: Path) -> None:
    write_repo(tmp_path / "r6", {"hpa.yaml": "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\n"
                                             "metadata:\n  name: ${APP}\nspec:\n  scaleTargetRef:\n"
                                             "    apiVersion: apps/v1\n    kind: Deployment\n    name: ${APP}\n"
                                             "  minReplicas: 1\n  maxReplicas: 1\n"})
    code, report = lint_json(str(tmp_path / "r6"), "--select", "KS601")
    assert code == 0 and report["findings"] == []
    assert any("${APP}" in s and "not defined" in s for s in report["blindSpots"]), report["blindSpots"]


def test_yaml_that_is_not_kubernetes_is_skipped_with_a_note(tmp_path: Path) -> None:
    write_repo(tmp_path / "r7", {"recyclarr.yml": "sonarr:\n  main:\n    api_key: !env_var SONARR_API_KEY\n"})
    proc = lint(str(tmp_path / "r7"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "recyclarr.yml" in proc.stdout and "skipped" in proc.stdout
    assert "No problems found" in proc.stdout


def test_lint_from_another_directory_prints_paths_relative_to_the_repository(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"k8s/app.yaml": DEPLOY.replace("ghcr.io/example/web:1.2.3", "web:1"),
                                          "kubeshape.yaml": "registries:\n  private: [\"registry.lan:5000\"]\n"})
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    code, report = lint_json(str(repo / "k8s"), "--select", "KS101")
    assert code == 1
    [f] = report["findings"]
    assert f["file"] == "k8s/app.yaml" and f["line"] == 12
    # kubeshape.yaml was found above the linted directory: the fix names the private registry
    assert "registry.lan:5000/web:1" in f["fix"]


def test_build_and_dependency_directories_are_never_read(tmp_path: Path) -> None:
    junk = DEPLOY.replace("ghcr.io/example/web:1.2.3", "junk:latest")
    write_repo(tmp_path / "r", {"k8s/app.yaml": DEPLOY, "build/lib/app.yaml": junk, "dist/app.yaml": junk,
                                ".venv/lib/app.yaml": junk, "node_modules/x/app.yaml": junk})
    _, report = lint_json(str(tmp_path / "r"))
    assert not any("junk" in json.dumps(f) for f in report["findings"]), report["findings"]
    assert "1 YAML files" in report["sources"]["repo"]


def test_alias_bomb_ends_quickly_with_one_line(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    write_repo(tmp_path / "bomb", {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\n"
                                              "data:\n  " + "\n  ".join(lines) + "\n"})

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "kubeshape", "lint", str(tmp_path / "bomb")], capture_output=True,
                          text=True, timeout=60, check=False, preexec_fn=cap, cwd="/")
    assert time.monotonic() - start < 30  # a hang guard, not a speed test
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "cm.yaml" in errors[0] and "alias" in errors[0], proc.stderr


# -- Flux ------------------------------------------------------------------------------------------------
FLUX_KS = """apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: &app {app}
  namespace: flux-system
spec:
  path: ./apps/template
  targetNamespace: {ns}
  prune: true
  sourceRef: {{kind: GitRepository, name: flux-system}}
  postBuild:
    substitute:
      APP: *app
      IMAGE_TAG: "{tag}"
    substituteFrom:
      - kind: ConfigMap
        name: cluster-settings
"""


def _flux_repo(root: Path, extra: dict[str, str] | None = None) -> Path:
    files = {
        "clusters/lab/apps.yaml": "---\n".join(FLUX_KS.format(app=a, ns=ns, tag=t) for a, ns, t in
                                               (("blog", "web", "1.0.0"), ("wiki", "web", "2.3.4"),
                                                ("notes", "tools", "0.9.1"))),
        "clusters/lab/settings.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cluster-settings\n"
                                      "  namespace: flux-system\ndata:\n  REGISTRY: ghcr.io/example\n",
        "apps/template/kustomization.yaml": "resources:\n- deployment.yaml\n- hpa.yaml\n",
        "apps/template/deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ${APP}\n"
                                         "spec:\n  replicas: ${REPLICAS:=2}\n  selector:\n    matchLabels:\n"
                                         "      app: ${APP}\n"
                                         "  template:\n    metadata:\n      labels:\n        app: ${APP}\n"
                                         "    spec:\n"
                                         "      containers:\n      - name: app\n"
                                         "        image: ${REGISTRY}/${APP}:${IMAGE_TAG}\n",
        "apps/template/hpa.yaml": "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n"
                                  "  name: ${APP}\nspec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n"
                                  "    kind: Deployment\n    name: ${APP}\n  minReplicas: 1\n  maxReplicas: 3\n",
    }
    return write_repo(root, {**files, **(extra or {})})


def test_flux_template_reused_by_many_apps_is_one_definition_per_app(tmp_path: Path) -> None:
    repo = _flux_repo(tmp_path / "flux")
    code, report = lint_json(str(repo), "--select", "KS1,KS2,KS6")
    assert code == 0, report["findings"]
    assert report["blindSpots"] == []
    assert "4 render roots" in report["sources"]["repo"]  # the plain files and three Flux Kustomizations


def test_flux_substitution_reaches_the_rules(tmp_path: Path) -> None:
    repo = _flux_repo(tmp_path / "flux", {
        "clusters/lab/settings.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cluster-settings\n"
                                      "  namespace: flux-system\ndata:\n  REGISTRY: example\n",
    })
    code, report = lint_json(str(repo), "--select", "KS101")
    assert code == 1
    messages = sorted(f["message"] for f in report["findings"])
    # ${REGISTRY} resolved to an unqualified name: one finding per rendered app, at the template's line
    assert messages == [f"container app uses unqualified image example/{a}:{t}"
                        for a, t in (("blog", "1.0.0"), ("notes", "0.9.1"), ("wiki", "2.3.4"))]
    assert {(f["file"], f["line"]) for f in report["findings"]} == {("apps/template/deployment.yaml", 17)}
    assert {f["object"]["namespace"] for f in report["findings"]} == {"web", "tools"}


def test_flux_variable_from_a_source_we_cannot_see_is_reported_not_guessed(tmp_path: Path) -> None:
    repo = _flux_repo(tmp_path / "flux")
    (repo / "clusters/lab/settings.yaml").unlink()
    code, report = lint_json(str(repo), "--select", "KS1,KS2,KS6")
    assert code == 0, report["findings"]
    assert any("${REGISTRY}" in s for s in report["blindSpots"]), report["blindSpots"]
    assert any("cluster-settings" in n for n in report["notes"]), report["notes"]


def test_two_flux_kustomizations_applying_the_same_object_are_duplicates(tmp_path: Path) -> None:
    second = FLUX_KS.format(app="blog", ns="web", tag="1.0.1").replace("name: &app blog", "name: blog-v2")
    second = second.replace("APP: *app", "APP: blog")
    repo = _flux_repo(tmp_path / "flux", {"clusters/lab/more.yaml": second})
    code, report = lint_json(str(repo), "--select", "KS201")
    assert code == 1
    assert {(f["object"]["kind"], f["object"]["name"]) for f in report["findings"]} == {
        ("Deployment", "blog"), ("HorizontalPodAutoscaler", "blog")}
    deploy = next(f for f in report["findings"] if f["object"]["kind"] == "Deployment")
    assert "disagree on app.image" in deploy["message"]


def test_separate_clusters_may_define_the_same_object(tmp_path: Path) -> None:
    ks = FLUX_KS.format(app="blog", ns="web", tag="1.0.0")
    repo = _flux_repo(tmp_path / "flux", {"clusters/lab/apps.yaml": ks, "clusters/prod/apps.yaml": ks})
    code, report = lint_json(str(repo), "--select", "KS201")
    assert code == 0, report["findings"]


def test_argo_application_deploys_its_path_into_its_destination_namespace(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "argo", {
        "apps/guestbook.yaml": "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: guestbook\n"
                               "  namespace: argocd\nspec:\n  project: default\n  source:\n"
                               "    repoURL: https://git.example/gitops.git\n    path: guestbook\n"
                               "  destination:\n    server: https://kubernetes.default.svc\n"
                               "    namespace: guestbook\n",
        "guestbook/deployment.yaml": DEPLOY.replace("ghcr.io/example/web:1.2.3", "guestbook-ui:0.2"),
    })
    code, report = lint_json(str(repo), "--select", "KS101")
    [f] = report["findings"]
    assert code == 1 and f["object"] == {"kind": "Deployment", "namespace": "guestbook", "name": "web"}
    assert f["file"] == "guestbook/deployment.yaml"


def test_broken_manifest_is_still_an_error(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "r", {"bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n",
                                       "notes.yaml": "title: [unclosed\n"})
    proc = lint(str(repo))
    assert proc.returncode == 2
    assert "bad.yaml:4" in proc.stderr and "notes.yaml" not in proc.stderr


@pytest.mark.parametrize("name", ["kustomization.yaml"])
def test_kustomization_that_cannot_be_rendered_is_listed_as_not_analysed(tmp_path: Path, name: str) -> None:
    repo = write_repo(tmp_path / "r", {f"app/{name}": "resources:\n- missing.yaml\n", "app/ok.yaml": DEPLOY})
    code, report = lint_json(str(repo))
    assert code == 0
    assert any("app" in s and "not rendered" in s for s in report["blindSpots"]), report["blindSpots"]
    proc = lint(str(repo))
    assert "No problems found" in proc.stdout and "not analysed" in proc.stdout.lower()


def test_environment_is_unchanged_by_lint(tmp_path: Path) -> None:
    repo = _flux_repo(tmp_path / "flux")
    before = sorted(str(p) for p in repo.rglob("*"))
    lint(str(repo))
    assert sorted(str(p) for p in repo.rglob("*")) == before
    assert os.listdir(repo)


# -- Helm charts kept in the repository ---------------------------------------------------------------------
CHART = {
    "charts/web/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\nappVersion: \"1.0\"\n",
    "charts/web/values.yaml": "image:\n  repository: ghcr.io/example/web\n  tag: \"1.0\"\n",
    "charts/web/templates/deployment.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n"
        "  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n"
        "    spec:\n      containers:\n      - name: web\n"
        "        image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"\n"),
    "apps/web.yaml": "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: web\n"
                     "  namespace: apps\nspec:\n  chart:\n    spec:\n      chart: ./charts/web\n"
                     "      sourceRef: {kind: GitRepository, name: flux-system, namespace: flux-system}\n"
                     "  values:\n    image:\n      repository: web\n      tag: \"2.0\"\n",
}


def test_local_chart_is_rendered_with_the_helmrelease_values(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "r", CHART)
    helm_dir = str(binary("helm").parent)
    proc = subprocess.run([sys.executable, "-m", "kubeshape", "lint", str(repo), "-o", "json", "--select", "KS101"],
                          capture_output=True, text=True, cwd="/", timeout=120, check=False,
                          env={**os.environ, "PATH": f"{helm_dir}{os.pathsep}{os.environ['PATH']}"})
    report = json.loads(proc.stdout)
    located = {(f["file"], f["object"]["kind"], f["object"]["namespace"]) for f in report["findings"]}
    # the values' unqualified image: once in the HelmRelease (the line to edit), once in the rendered chart
    assert located == {("apps/web.yaml", "HelmRelease.helm.toolkit.fluxcd.io", "apps"),
                       ("charts/web/templates/deployment.yaml", "Deployment", "apps")}, report["findings"]
    assert report["blindSpots"] == []


def test_local_chart_without_helm_is_listed_as_not_analysed(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "r", CHART)
    proc = subprocess.run([sys.executable, "-m", "kubeshape", "lint", str(repo), "-o", "json"], capture_output=True,
                          text=True, cwd="/", timeout=120, check=False,
                          env={**os.environ, "PATH": os.path.dirname(sys.executable)})
    report = json.loads(proc.stdout)
    assert any("helm is not installed" in s for s in report["blindSpots"]), report["blindSpots"]


# -- shapes found on public repositories ------------------------------------------------------------------
FLUX_APP_KS = """apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: cert-manager
  namespace: flux-system
spec:
  targetNamespace: cert-manager
  path: ./apps/cert-manager/app
  sourceRef: {kind: GitRepository, name: flux-system}
"""


def test_flux_app_with_kustomize_configurations_is_rendered_by_the_binary(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "r", {
        "clusters/lab/ks.yaml": FLUX_APP_KS,
        "apps/cert-manager/app/kustomization.yaml": "resources:\n- deploy.yaml\n"
                                                    "configurations:\n- kustomizeconfig.yaml\n",
        "apps/cert-manager/app/kustomizeconfig.yaml": "nameReference:\n- kind: ConfigMap\n  fieldSpecs: []\n",
        "apps/cert-manager/app/deploy.yaml": DEPLOY.replace("ghcr.io/example/web:1.2.3", "webhook:1.0"),
    })
    code, report = lint_json(str(repo), "--select", "KS101")
    assert code == 1
    assert report["blindSpots"] == [] and report["notes"] == [], (report["blindSpots"], report["notes"])
    [f] = report["findings"]
    assert f["object"]["namespace"] == "cert-manager" and f["file"] == "apps/cert-manager/app/deploy.yaml"


def test_patch_files_are_kustomize_inputs_not_orphans(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "r", {
        "base/deploy.yaml": DEPLOY, "base/kustomization.yaml": "resources:\n- deploy.yaml\n",
        "staging/kustomization.yaml": "resources:\n- ../base\npatches:\n- path: replicas.yaml\n",
        "staging/replicas.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
                                 "spec:\n  replicas: 2\n",
        "staging/values.yaml": "not: a manifest\n",
    })
    _, report = lint_json(str(repo), "--select", "KS1")
    assert report["blindSpots"] == []
    assert report["notes"] == ["skipped 1 YAML file(s) that are not Kubernetes manifests (no apiVersion and kind): "
                               "staging/values.yaml"]


def test_helmrelease_charts_and_values_not_read_are_listed(tmp_path: Path) -> None:
    hr = ("apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: podinfo\n  namespace: apps\n"
          "spec:\n  chart:\n    spec:\n      chart: podinfo\n      sourceRef: {kind: HelmRepository, name: podinfo}\n"
          "  valuesFrom:\n  - kind: ConfigMap\n    name: podinfo-values\n")
    repo = write_repo(tmp_path / "r", {"podinfo.yaml": hr})
    _, report = lint_json(str(repo))
    assert sorted(report["blindSpots"]) == [
        "1 HelmRelease(s) install charts from Helm or OCI repositories, which are not fetched: only the images in "
        "their values were checked (apps/podinfo)",
        "1 HelmRelease(s) take values from ConfigMaps/Secrets (valuesFrom), which were not read: images set there "
        "were not checked (apps/podinfo)"]


def test_app_of_apps_chart_that_nothing_installs_is_rendered_with_its_defaults(tmp_path: Path) -> None:
    app = ("apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: guestbook\n  namespace: argocd\n"
           "spec:\n  source:\n    repoURL: {{ .Values.repoURL }}\n    path: guestbook\n"
           "  destination:\n    server: https://kubernetes.default.svc\n    namespace: {{ .Values.namespace }}\n")
    repo = write_repo(tmp_path / "r", {
        "apps/Chart.yaml": "apiVersion: v2\nname: apps\nversion: 0.1.0\n",
        "apps/values.yaml": "repoURL: https://git.example/apps.git\nnamespace: guestbook\n",
        "apps/templates/guestbook.yaml": app,
        "guestbook/deployment.yaml": DEPLOY.replace("ghcr.io/example/web:1.2.3", "guestbook-ui:0.2"),
    })
    helm_dir = str(binary("helm").parent)
    proc = subprocess.run([sys.executable, "-m", "kubeshape", "lint", str(repo), "-o", "json", "--select", "KS101"],
                          capture_output=True, text=True, cwd="/", timeout=120, check=False,
                          env={**os.environ, "PATH": f"{helm_dir}{os.pathsep}{os.environ['PATH']}"})
    report = json.loads(proc.stdout)
    assert report["blindSpots"] == []
    [f] = report["findings"]
    assert f["object"]["namespace"] == "guestbook"  # the Application's destination, from the rendered chart


def test_documents_nested_up_to_the_reader_limit_are_analysed_without_a_traceback(tmp_path: Path) -> None:
    deep = "[" * 990 + "]" * 990
    repo = write_repo(tmp_path / "r", {
        "k/cm.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata:\n  x: {deep}\n",
        "k/kustomization.yaml": "resources:\n- cm.yaml\nnamespace: x\n",
        "hr.yaml": f"apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: d\nspec:\n"
                   f"  values:\n    a: {deep}\n"})
    for fmt in ("json", "text"):
        proc = lint(str(repo), "-o", fmt)
        assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr


def test_containers_given_as_a_mapping_is_an_error_not_silence(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "r", {"d.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: w\n"
                                                 "spec:\n  template:\n    spec:\n      containers:\n"
                                                 "        name: w\n        image: nginx:1\n"})
    proc = lint(str(repo))
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("kubeshape: error: d.yaml:8: spec.template.spec.containers must be a list of "
                                   "containers (`- name: …`), not a mapping: kubectl rejects it")


def test_a_suppression_naming_no_rule_is_a_config_error(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "r", {"kubeshape.yaml": "suppressions:\n- rule: KS999\n  reason: legacy\n",
                                       "d.yaml": DEPLOY})
    proc = lint(str(repo))
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("kubeshape.yaml: 'suppressions[0].rule': unknown rule 'KS999' -- see "
                                        "'kubeshape rules'")
