"""Field-level provenance: a field an overlay sets is reported where the overlay sets it.

A strategic-merge or JSON 6902 patch (a file or inline), an ``images`` or a ``replicas`` entry of an overlay's
kustomization changes fields of a base object; findings about those fields, and the fixes they suggest, must
point at the overlay's line, not at the base line that no longer holds the value.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from kubeshape.inventory import Inventory, K8sObject
from kubeshape.rules.base import Context, get_rule
from kubeshape.sources.kustomize import Rendered, render
from kubeshape.sources.repo import load_repo
from kubeshape.sources.yamlio import load_yaml_text
from tests.helpers import config, write_repo

CONTAINERS = "spec.template.spec.containers"

BASE_DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: ghcr.io/x/web:1.0.0
          args:
            - --port=8080
            - --verbose
          resources:
            limits: {memory: 128Mi}
        - name: log
          image: ghcr.io/x/log:2.0.0
"""

PATCH = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          # pinned by the overlay
          image: nginx:latest
"""


def files(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The base (a Deployment with two containers) plus ``extra`` (path → text, dedented)."""
    return {"base/deploy.yaml": BASE_DEPLOY, "base/kustomization.yaml": "resources:\n  - deploy.yaml\n",
            **{k: dedent(v) for k, v in (extra or {}).items()}}


def line(text: str, needle: str, after: str = "") -> int:
    """1-based line of the first line holding ``needle`` (after the first holding ``after``)."""
    lines = dedent(text).splitlines()
    start = next(i for i, t in enumerate(lines) if after in t) if after else 0
    return next(i for i, t in enumerate(lines) if i >= start and needle in t) + 1


def rendered(root: Path, overlay: str = "overlay") -> Rendered:
    [obj] = [r for r in render(root / overlay, root) if r.data["kind"] == "Deployment"]
    return obj


def repo_objects(root: Path) -> list[K8sObject]:
    return load_repo([Path(".")], root).objects


def deployment(root: Path) -> K8sObject:
    [obj] = [o for o in repo_objects(root) if o.kind == "Deployment"]
    return obj


def lint_json(repo: Path, *args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "kubeshape", "lint", str(repo), "-o", "json", *args],
                          capture_output=True, text=True, cwd="/", timeout=120, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def mutable_tag_findings(repo: Path) -> list[dict[str, Any]]:
    return [f for f in lint_json(repo, "--select", "KS1")["findings"] if f["rule"] == "KS103"]


def kubectl_data(kdir: Path) -> list[Any]:
    exe = shutil.which("kubectl")
    if exe is None:
        pytest.fail("kubectl is not installed: the native renderer is cross-checked against `kubectl kustomize`")
    proc = subprocess.run([exe, "kustomize", str(kdir)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return [d.data for d in load_yaml_text(proc.stdout, "kubectl output", with_lines=False) if d.data is not None]


# --------------------------------------------------------------------------- strategic-merge patch files


def test_patch_file_sets_the_image_and_the_origin_is_the_patch_line(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "r", files({"overlay/patch.yaml": PATCH,
                                            "overlay/kustomization.yaml": "resources: [../base]\n"
                                                                        "patches:\n  - path: patch.yaml\n"}))
    obj = rendered(repo)
    assert obj.data["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:latest"
    assert obj.origins[f"{CONTAINERS}[0].image"] == ("overlay/patch.yaml", line(PATCH, "image: nginx:latest"))
    # the object itself, and what the patch does not set, stay where they were
    assert (obj.file, obj.line) == ("base/deploy.yaml", 1)
    assert f"{CONTAINERS}[0].name" not in obj.origins  # a merge key selects the container, it sets nothing
    assert "metadata.name" not in obj.origins and "kind" not in obj.origins
    assert not any(p.startswith(f"{CONTAINERS}[1]") for p in obj.origins)

    dep = deployment(repo)
    assert dep.where(f"{CONTAINERS}[0].image") == ("overlay/patch.yaml", 11)
    assert dep.where(f"{CONTAINERS}[0].resources.limits.memory") == ("base/deploy.yaml", line(BASE_DEPLOY, "limits:"))
    assert dep.where(f"{CONTAINERS}[1].image") == ("base/deploy.yaml", line(BASE_DEPLOY, "ghcr.io/x/log"))
    assert dep.where("spec.replicas") == ("base/deploy.yaml", 6)
    assert dep.where("") == ("base/deploy.yaml", 1)


def test_lint_reports_the_mutable_tag_at_the_patch_file_and_line(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "r", files({"overlay/patch.yaml": PATCH,
                                            "overlay/kustomization.yaml": "resources: [../base]\n"
                                                                        "patches:\n  - path: patch.yaml\n"}))
    [f] = mutable_tag_findings(repo)
    assert (f["file"], f["line"]) == ("overlay/patch.yaml", line(PATCH, "image: nginx:latest"))
    assert f"In overlay/patch.yaml:{line(PATCH, 'image: nginx:latest')}:" in f["fix"]


def test_patches_strategic_merge_file_with_several_documents(tmp_path: Path) -> None:
    service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n    - port: 80\n"
    patches = ("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: NodePort\n---\n" + PATCH)
    repo = write_repo(tmp_path / "r", files({
        "base/svc.yaml": service, "base/kustomization.yaml": "resources: [deploy.yaml, svc.yaml]\n",
        "overlay/patches.yaml": patches,
        "overlay/kustomization.yaml": "resources: [../base]\npatchesStrategicMerge:\n  - patches.yaml\n"}))
    out = {r.data["kind"]: r for r in render(repo / "overlay", repo)}
    assert out["Service"].origins == {"spec.type": ("overlay/patches.yaml", 6)}
    assert out["Deployment"].origins[f"{CONTAINERS}[0].image"] == ("overlay/patches.yaml", 7 + 11)


def test_a_container_the_patch_adds_and_the_base_containers_it_moves(tmp_path: Path) -> None:
    patch = """\
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: web
    spec:
      template:
        spec:
          containers:
            - name: proxy
              image: envoyproxy/envoy:v1.31.0
              ports:
                - containerPort: 9901
    """
    repo = write_repo(tmp_path / "r", files({"overlay/patch.yaml": patch,
                                            "overlay/kustomization.yaml": "resources: [../base]\n"
                                                                        "patches:\n  - path: patch.yaml\n"}))
    obj = rendered(repo)
    names = [c["name"] for c in obj.data["spec"]["template"]["spec"]["containers"]]
    assert names == ["proxy", "web", "log"]  # kustomize puts the patch's items first
    assert obj.origins[f"{CONTAINERS}[0]"] == ("overlay/patch.yaml", line(patch, "- name: proxy"))
    assert obj.origins[f"{CONTAINERS}[0].ports[0].containerPort"] == ("overlay/patch.yaml", 12)
    dep = deployment(repo)
    # a field of the added container the patch does not set: the container's own line in the patch
    assert dep.where(f"{CONTAINERS}[0].resources") == ("overlay/patch.yaml", 9)
    # the base containers moved down one place: their fields are still found at their own lines in the base
    assert dep.where(f"{CONTAINERS}[1].image") == ("base/deploy.yaml", line(BASE_DEPLOY, "ghcr.io/x/web"))
    assert dep.where(f"{CONTAINERS}[1].resources.limits.memory") == ("base/deploy.yaml", line(BASE_DEPLOY, "limits:"))
    assert dep.where(f"{CONTAINERS}[1].args[1]") == ("base/deploy.yaml", line(BASE_DEPLOY, "args:"))
    assert dep.where(f"{CONTAINERS}[2].image") == ("base/deploy.yaml", line(BASE_DEPLOY, "ghcr.io/x/log"))
    assert dep.where(f"{CONTAINERS}[2].securityContext") == ("base/deploy.yaml", line(BASE_DEPLOY, "name: log"))


def test_nested_overlays_each_field_at_the_overlay_that_set_it_last(tmp_path: Path) -> None:
    replicas = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n"
    repo = write_repo(tmp_path / "r", files({
        "mid/patch.yaml": PATCH, "mid/replicas.yaml": replicas,
        "mid/kustomization.yaml": "resources: [../base]\npatches:\n  - path: patch.yaml\n  - path: replicas.yaml\n",
        "top/kustomization.yaml": "resources: [../mid]\nimages:\n  - name: nginx\n    newTag: '1.27'\n"}))
    obj = rendered(repo, "top")
    assert obj.origins["spec.replicas"] == ("mid/replicas.yaml", 6)
    assert obj.origins[f"{CONTAINERS}[0].image"] == ("top/kustomization.yaml", 4)


def test_helmrelease_values_set_by_an_overlay_patch(tmp_path: Path) -> None:
    """The shape of fluxcd/flux2-kustomize-helm-example: apps/staging patches the base HelmRelease's values."""
    release = """\
    apiVersion: helm.toolkit.fluxcd.io/v2
    kind: HelmRelease
    metadata:
      name: podinfo
      namespace: podinfo
    spec:
      chart:
        spec:
          chart: podinfo
          sourceRef: {kind: HelmRepository, name: podinfo, namespace: flux-system}
      interval: 5m
      values:
        ingress:
          enabled: true
    """
    values = """\
    apiVersion: helm.toolkit.fluxcd.io/v2
    kind: HelmRelease
    metadata:
      name: podinfo
      namespace: podinfo
    spec:
      chart:
        spec:
          version: ">=1.0.0-alpha"
      values:
        ingress:
          hosts:
            - host: podinfo.staging
        image:
          repository: ghcr.io/stefanprodan/podinfo
          tag: latest
    """
    flux = """\
    apiVersion: kustomize.toolkit.fluxcd.io/v1
    kind: Kustomization
    metadata:
      name: apps
      namespace: flux-system
    spec:
      interval: 10m
      sourceRef: {kind: GitRepository, name: flux-system}
      path: ./apps/staging
      prune: true
    """
    repo = write_repo(tmp_path / "r", {k: dedent(v) for k, v in {
        "apps/base/podinfo/release.yaml": release,
        "apps/base/podinfo/kustomization.yaml": "resources:\n  - release.yaml\n",
        "apps/staging/podinfo-values.yaml": values,
        "apps/staging/kustomization.yaml": "namespace: podinfo\nresources:\n  - ../base/podinfo\n"
                                           "patches:\n  - path: podinfo-values.yaml\n    target:\n"
                                           "      kind: HelmRelease\n",
        "clusters/staging/apps.yaml": flux,
    }.items()})
    [hr] = [o for o in repo_objects(repo) if o.kind == "HelmRelease"]
    assert hr.where("spec.values.ingress.hosts[0].host") == ("apps/staging/podinfo-values.yaml", 13)
    assert hr.where("spec.chart.spec.version") == ("apps/staging/podinfo-values.yaml", 9)
    assert hr.where("spec.values.ingress.enabled") == ("apps/base/podinfo/release.yaml", 14)
    assert hr.where("spec.chart.spec.chart") == ("apps/base/podinfo/release.yaml", 9)
    [f] = mutable_tag_findings(repo)
    assert f["file"] == "apps/staging/podinfo-values.yaml" and f["line"] in (15, 16)
    assert "In apps/staging/podinfo-values.yaml:14:" in f["fix"]


# --------------------------------------------------------------------------- inline patches


def test_inline_patch_lines_inside_the_kustomization(tmp_path: Path) -> None:
    kustomization = """\
    resources:
      - ../base
    patches:
      - patch: |-

          apiVersion: apps/v1
          kind: Deployment
          metadata:
            name: web
          spec:
            template:
              spec:
                containers:
                  - name: log
                    image: ghcr.io/x/log:latest
    """
    repo = write_repo(tmp_path / "r", files({"overlay/kustomization.yaml": kustomization}))
    obj = rendered(repo)
    assert obj.origins[f"{CONTAINERS}[0].image"] == ("overlay/kustomization.yaml",
                                                     line(kustomization, "ghcr.io/x/log:latest"))
    [f] = mutable_tag_findings(repo)
    assert (f["file"], f["line"]) == ("overlay/kustomization.yaml", line(kustomization, "ghcr.io/x/log:latest"))


def test_inline_patch_in_a_quoted_string_is_located_at_its_entry(tmp_path: Path) -> None:
    kustomization = ('resources: [../base]\npatches:\n  - target: {kind: Deployment}\n'
                     '    patch: "[{\\"op\\": \\"replace\\", \\"path\\": \\"/spec/replicas\\", \\"value\\": 4}]"\n')
    repo = write_repo(tmp_path / "r", {**files(), "overlay/kustomization.yaml": kustomization})
    assert rendered(repo).origins == {"spec.replicas": ("overlay/kustomization.yaml", 4)}


def test_inline_patches_strategic_merge_entry(tmp_path: Path) -> None:
    kustomization = """\
    resources: [../base]
    patchesStrategicMerge:
      - |-
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          replicas: 3
    """
    repo = write_repo(tmp_path / "r", files({"overlay/kustomization.yaml": kustomization}))
    at = line(kustomization, "replicas: 3")
    assert rendered(repo).origins == {"spec.replicas": ("overlay/kustomization.yaml", at)}


# --------------------------------------------------------------------------- JSON 6902


def test_json6902_replace_of_the_image_is_located_at_the_operation(tmp_path: Path) -> None:
    kustomization = """\
    resources:
      - ../base
    patches:
      - target:
          kind: Deployment
          name: web
        patch: |-
          - op: replace
            path: /spec/template/spec/containers/1/image
            value: ghcr.io/x/log:latest
          - op: add
            path: /spec/template/spec/containers/0/args/0
            value: --debug
    """
    repo = write_repo(tmp_path / "r", files({"overlay/kustomization.yaml": kustomization}))
    obj = rendered(repo)
    value_line = line(kustomization, "value: ghcr.io/x/log:latest")
    assert obj.origins[f"{CONTAINERS}[1].image"] == ("overlay/kustomization.yaml", value_line)
    assert obj.origins[f"{CONTAINERS}[0].args[0]"] == ("overlay/kustomization.yaml", line(kustomization, "--debug"))
    assert f"{CONTAINERS}[0].image" not in obj.origins
    [f] = mutable_tag_findings(repo)
    assert (f["file"], f["line"]) == ("overlay/kustomization.yaml", value_line)
    assert f"In overlay/kustomization.yaml:{value_line}:" in f["fix"]


def test_json6902_patch_file_and_structured_values(tmp_path: Path) -> None:
    ops = """\
    - op: add
      path: /spec/template/spec/containers/-
      value:
        name: debug
        image: busybox
    - op: remove
      path: /spec/template/spec/containers/0/args/1
    - op: replace
      path: /spec/replicas
      value: 2
    """
    repo = write_repo(tmp_path / "r", files({
        "overlay/ops.yaml": ops,
        "overlay/kustomization.yaml": "resources: [../base]\npatchesJson6902:\n  - path: ops.yaml\n"
                                      "    target: {group: apps, version: v1, kind: Deployment, name: web}\n"}))
    obj = rendered(repo)
    assert obj.origins[f"{CONTAINERS}[2]"] == ("overlay/ops.yaml", 3)
    assert obj.origins[f"{CONTAINERS}[2].image"] == ("overlay/ops.yaml", 5)
    assert obj.origins["spec.replicas"] == ("overlay/ops.yaml", 10)
    assert not any(p.startswith(f"{CONTAINERS}[0]") for p in obj.origins)
    [f] = mutable_tag_findings(repo)  # busybox: no tag
    assert (f["file"], f["line"]) == ("overlay/ops.yaml", 5)


def test_json_operations_written_as_json(tmp_path: Path) -> None:
    ops = '[\n  {"op": "replace",\n   "path": "/spec/template/spec/containers/0/image",\n   "value": "web"}\n]\n'
    kustomization = "resources: [../base]\npatches:\n  - path: ops.json\n    target: {kind: Deployment}\n"
    repo = write_repo(tmp_path / "r", {**files(), "overlay/ops.json": ops, "overlay/kustomization.yaml": kustomization})
    assert rendered(repo).origins == {f"{CONTAINERS}[0].image": ("overlay/ops.json", 4)}


# --------------------------------------------------------------------------- images and replicas


def test_images_new_tag_is_located_at_the_entry(tmp_path: Path) -> None:
    kustomization = """\
    resources:
      - ../base
    images:
      - name: ghcr.io/x/web
        newTag: latest
      - name: ghcr.io/x/log
        newName: registry.example/log
    replicas:
      - name: web
        count: 3
    """
    repo = write_repo(tmp_path / "r", files({"overlay/kustomization.yaml": kustomization}))
    obj = rendered(repo)
    assert obj.origins == {
        f"{CONTAINERS}[0].image": ("overlay/kustomization.yaml", 5),
        f"{CONTAINERS}[1].image": ("overlay/kustomization.yaml", 7),
        "spec.replicas": ("overlay/kustomization.yaml", 10),
    }
    [f] = mutable_tag_findings(repo)
    assert (f["file"], f["line"]) == ("overlay/kustomization.yaml", 5)


def test_an_images_entry_that_matches_nothing_records_nothing(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "r", files(
        {"overlay/kustomization.yaml": "resources: [../base]\nimages:\n  - name: other\n    newTag: '2'\n"}))
    assert rendered(repo).origins == {}
    assert render(repo / "base", repo)[0].origins == {}


def test_flux_overlay_fields_have_no_file_and_keep_the_base_location(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "r", files())
    [obj] = render(repo / "base", repo, extra={"images": [{"name": "ghcr.io/x/web", "newTag": "2.0.0"}]})
    assert obj.data["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/x/web:2.0.0"
    assert obj.origins == {}


# --------------------------------------------------------------------------- the data is what kustomize makes


def test_rendering_with_provenance_matches_kubectl(tmp_path: Path) -> None:
    kustomization = """\
    resources: [../base]
    patches:
      - path: patch.yaml
      - target: {kind: Deployment}
        patch: |-
          - op: add
            path: /spec/template/spec/containers/1/args
            value: [--json]
          - op: move
            from: /spec/template/spec/containers/0/args/0
            path: /spec/template/spec/containers/0/args/1
    images:
      - name: nginx
        digest: sha256:0123456789012345678901234567890123456789012345678901234567890123
    """
    repo = write_repo(tmp_path / "r", files({"overlay/patch.yaml": PATCH,
                                             "overlay/kustomization.yaml": kustomization}))
    assert [r.data for r in render(repo / "overlay", repo)] == kubectl_data(repo / "overlay")
    obj = rendered(repo)
    assert obj.origins[f"{CONTAINERS}[0].image"] == ("overlay/kustomization.yaml", 14)
    assert obj.origins[f"{CONTAINERS}[1].args"] == ("overlay/kustomization.yaml", 8)
    assert obj.origins[f"{CONTAINERS}[0].args[1]"] == ("overlay/kustomization.yaml", 9)


# --------------------------------------------------------------------------- K8sObject.where and findings


def test_where_takes_the_longest_recorded_prefix() -> None:
    obj = K8sObject.from_raw({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}, "repo",
                             file="base/pod.yaml", line=1, lines={"spec": 5, "spec.containers[0].image": 8})
    obj.origins = {"spec.containers[0]": ("o/patch.yaml", 3), "spec.containers[0].image": ("o/k.yaml", 9)}
    assert obj.where("spec.containers[0].image") == ("o/k.yaml", 9)
    assert obj.where("spec.containers[0].ports[2].containerPort") == ("o/patch.yaml", 3)
    assert obj.where("spec.containers[1].image") == ("base/pod.yaml", 5)
    assert obj.where("spec.containers") == ("base/pod.yaml", 5)
    live = K8sObject.from_raw({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}, "cluster")
    assert live.where("spec.containers[0].image") == (None, None)


def test_findings_are_located_at_the_origin(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "r", files({"overlay/patch.yaml": PATCH,
                                            "overlay/kustomization.yaml": "resources: [../base]\n"
                                                                        "patches:\n  - path: patch.yaml\n"}))
    rule = get_rule("KS103")
    assert rule is not None
    ctx = Context(Inventory(repo=load_repo([Path(".")], repo)), config(), rule)
    dep = deployment(repo)
    f = ctx.finding(dep, "x", path=f"{CONTAINERS}[0].image")
    assert (f.file, f.line) == ("overlay/patch.yaml", 11)
    f = ctx.finding(dep, "x", path=f"{CONTAINERS}[1].image")
    assert (f.file, f.line) == ("base/deploy.yaml", line(BASE_DEPLOY, "ghcr.io/x/log"))
    f = ctx.finding(dep, "x")
    assert (f.file, f.line) == ("base/deploy.yaml", 1)


def test_ignore_annotation_of_the_base_object_still_applies_to_a_finding_in_the_overlay(tmp_path: Path) -> None:
    annotated = BASE_DEPLOY.replace("  name: web\n", "  name: web\n  annotations:\n    kubeshape.io/ignore: KS103\n", 1)
    repo = write_repo(tmp_path / "r", {**files({"overlay/patch.yaml": PATCH,
                                                "overlay/kustomization.yaml": "resources: [../base]\n"
                                                                              "patches:\n  - path: patch.yaml\n"}),
                                       "base/deploy.yaml": annotated})
    report = lint_json(repo, "--select", "KS103")
    assert report["findings"] == [] and report["summary"]["suppressed"] == 1
