"""Fixes that hold under Flux: for an object a Flux Kustomization or HelmRelease applies, every fix that changes or
deletes it names the repository's file and line, says commit and push and how Flux applies it (never `kubectl set
image`/`kubectl patch`, which Flux reverts at its next reconcile); objects Flux does not apply keep their kubectl
fixes. A change made behind Flux that broke a workload joins that incident, and the plan's first step lets Flux
restore what git commits. Fast tests on inventories shaped like the real controllers' objects (builders shared with
tests/test_flux_doctor.py), then the gitops scenario of the test bed, with the printed fix followed for real."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kubeshape.config import Config
from kubeshape.engine import run
from kubeshape.findings import Finding
from kubeshape.inventory import Inventory
from kubeshape.report.incidents import build_incidents
from kubeshape.report.plan import RESTORE, Step, build_plan
from kubeshape.sources.bundle import parse_registry_snapshot
from kubeshape.sources.repo import load_repo
from kubeshape.timeutil import parse_time
from tests.gitops_bed import Bed, gitops_bed
from tests.test_flux_doctor import (
    FLUX_APPLY,
    FLUX_LISTED,
    IMAGE_FIELDS,
    KCM_STATUS,
    NOW,
    by_rule,
    cluster_of,
    flux_labels,
    git_repository,
    kustomization,
    meta,
    mf,
)

ROOT = Path(__file__).resolve().parents[1]
RECONCILE = "flux reconcile kustomization apps -n flux-system --with-source"
COMMITTED = "registry.example/web:1"
BROKEN = "web:debug"  # built on node-a, never pushed: what someone set with kubectl behind Flux
QUALIFIED = "registry.example/web:debug"
WEB_YAML = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: homelab
spec:
  replicas: 1
  revisionHistoryLimit: 10
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: app
          image: registry.example/web:1
          ports:
            - {name: http, containerPort: 8080}
          livenessProbe:
            httpGet: {path: /api/status, port: 8080}
          readinessProbe:
            httpGet: {path: /api/status, port: 8080}
"""
LINES = {text.strip().split(":")[0]: n for n, text in enumerate(WEB_YAML.splitlines(), 1)}
IMAGE_LINE = LINES["image"]
LIVENESS_LINE = LINES["livenessProbe"]
SPEC_LINE = next(n for n, text in enumerate(WEB_YAML.splitlines(), 1) if text == "spec:")
SERVICE_YAML = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: homelab
spec:
  selector:
    app: webapp
  ports:
    - {port: 80, targetPort: 8080}
"""
SELECTOR_LINE = 7
REGISTRY: dict[str, Any] = {"collectedAt": NOW, "registries": [{"host": "registry.example", "repositories": [
    {"name": "web", "tags": [{"tag": "1", "digest": "sha256:" + "a" * 64, "size": 100}]}]}]}
IMAGE_LIKE = re.compile(r"kubectl (set image|patch|set env|set resources|edit|label)\b")


# -- live objects as the API server returns them --------------------------------------------------------------------
def web(image: str = BROKEN, *, labels: dict[str, str] | None = None, changed: bool = True,
        probes: bool = True) -> dict[str, Any]:
    managed = [FLUX_APPLY, KCM_STATUS]
    if changed:
        managed.append(mf("kubectl-set", "Update", "2025-11-17T09:30:00Z", IMAGE_FIELDS))
    container: dict[str, Any] = {"name": "app", "image": image, "ports": [{"name": "http", "containerPort": 8080}]}
    if probes:
        container |= {"livenessProbe": {"httpGet": {"path": "/api/status", "port": 8080}},
                      "readinessProbe": {"httpGet": {"path": "/api/status", "port": 8080}}}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": meta("web", "homelab", labels=labels if labels is not None else flux_labels(),
                             annotations={"deployment.kubernetes.io/revision": "12"}, managedFields=managed),
            "spec": {"replicas": 1, "revisionHistoryLimit": 10, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container]}}},
            "status": {"replicas": 1, "observedGeneration": 1}}


def replicaset(name: str, revision: int, replicas: int, image: str = BROKEN) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": meta(name, "homelab", created=f"2025-11-{revision + 1:02d}T08:00:00Z",
                             labels={"app": "web", "pod-template-hash": name.rsplit("-", 1)[1]},
                             annotations={"deployment.kubernetes.io/revision": str(revision)},
                             ownerReferences=[{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                               "uid": "uid-homelab-web", "controller": True}]),
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
            "status": {"replicas": replicas}}


def pull_failing_pod(image: str = BROKEN, node: str = "node-b") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": meta("web-7d9c-x2x4q", "homelab", labels={"app": "web"},
                             ownerReferences=[{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9c",
                                               "uid": "uid-homelab-web-7d9c", "controller": True}]),
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": image}]},
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": "app", "image": image, "ready": False, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff",
                                      "message": f'Back-off pulling image "{image}"'}}}]}}


def node(name: str, images: list[str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "uid": f"uid-{name}"},
            "status": {"images": [{"names": [i], "sizeBytes": 1000} for i in images]}}


def nodes() -> list[dict[str, Any]]:
    return [node("node-a", [f"docker.io/library/{BROKEN}"]), node("node-b", [])]


def flux_objects(*, prune: bool = True) -> list[dict[str, Any]]:
    ks = kustomization(inventory=["homelab_web_apps_Deployment"])
    ks["spec"]["prune"] = prune
    return [git_repository(), ks]


def world(tmp_path: Path | None, objects: list[dict[str, Any]], *, registry: dict[str, Any] | None = REGISTRY,
          files: dict[str, str] | None = None, listed: tuple[tuple[str, str], ...] = FLUX_LISTED) -> Inventory:
    """Live ``objects`` (through the collection path), the repository of ``files`` under ``tmp_path``."""
    repo = None
    if tmp_path is not None:
        for rel, text in (files if files is not None else {"apps/web.yaml": WEB_YAML}).items():
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text(text)
        repo = load_repo([Path(".")], tmp_path)
    reg = parse_registry_snapshot(registry, "test") if registry is not None else None
    return Inventory(cluster=cluster_of(objects, listed=listed), repo=repo, registry=reg, now=parse_time(NOW))


def pull_world(tmp_path: Path | None, *, labels: dict[str, str] | None = None,
               registry: dict[str, Any] | None = REGISTRY, flux: bool = True) -> Inventory:
    rs = replicaset("web-7d9c", 12, 1)
    rs["metadata"]["uid"] = "uid-homelab-web-7d9c"
    objects = [*(flux_objects() if flux else []), web(labels=labels, changed=flux), rs, pull_failing_pod(),
               *nodes()]
    return world(tmp_path, objects, registry=registry)


def findings(inv: Inventory) -> dict[str, list[Finding]]:
    return by_rule(run(inv, Config()).findings)


def plan(inv: Inventory) -> tuple[list[Any], list[Step]]:
    incidents = build_incidents(run(inv, Config()).findings)
    return incidents, build_plan(incidents)


def flux_fix(fix: str, line: int = IMAGE_LINE) -> None:
    """A fix that keeps the change under Flux: the file and line, commit and push, the reconcile; no kubectl."""
    assert f"apps/web.yaml:{line}" in fix, fix
    assert "commit and push" in fix and RECONCILE in fix, fix
    assert not IMAGE_LIKE.search(fix), fix


# == fast: fix texts ===============================================================================================
def test_image_fixes_of_a_flux_deployment_change_the_repository_line(tmp_path: Path) -> None:
    found = findings(pull_world(tmp_path))
    for rule in ("KS101", "KS105", "KS106", "KS404"):
        [f] = found[rule]
        flux_fix(f.fix)
        assert f"set `image: {QUALIFIED}`" in f.fix, (rule, f.fix)
        assert "is applied by Flux (Kustomization flux-system/apps): a kubectl change would be reverted" in f.fix
        assert f"git commit -m 'web: image {QUALIFIED}' apps/web.yaml && git push" in f.fix
    [ks105] = found["KS105"]
    assert f"docker push {QUALIFIED}" in ks105.fix  # pushing stays: it is what makes the image pullable


def test_objects_flux_does_not_apply_keep_their_kubectl_fixes(tmp_path: Path) -> None:
    found = findings(pull_world(tmp_path, labels={}, flux=False))
    assert "KS211" not in found
    for rule in ("KS105", "KS106"):
        [f] = found[rule]
        assert f"kubectl set image deployment/web app={QUALIFIED} -n homelab" in f.fix, f.fix
        assert "flux reconcile" not in f.fix and "commit and push" not in f.fix
    [ks101] = [f for f in found["KS101"] if f.source == "cluster"]
    assert "(live; change it in the file you apply it from)" in ks101.fix


def test_without_the_repository_the_fix_names_the_kustomization_its_path_and_the_revert(tmp_path: Path) -> None:
    [f] = findings(pull_world(None))["KS106"]
    assert ("Deployment homelab/web is applied by Flux (Kustomization flux-system/apps, path ./apps of "
            "GitRepository flux-system/homelab): a kubectl change would be reverted at its next reconcile, and the "
            "repository was not loaded") in f.fix
    assert f"`image: {QUALIFIED}` (spec.template.spec.containers[name=app].image)" in f.fix
    assert RECONCILE in f.fix and "kubectl set image" not in f.fix


def test_a_copy_without_the_container_is_not_given_a_line_for_it(tmp_path: Path) -> None:
    renamed = WEB_YAML.replace("- name: app", "- name: main")
    [f] = findings(world(
        tmp_path, [*flux_objects(), web(labels=flux_labels(), changed=False), *nodes()],
        files={"apps/web.yaml": renamed}))["KS106"]
    assert "its copy in apps/web.yaml:1 does not hold the container or item to change" in f.fix
    assert f"apps/web.yaml:{IMAGE_LINE}" not in f.fix and RECONCILE in f.fix and "kubectl set image" not in f.fix


def test_an_object_only_the_kustomization_inventory_names_is_flux_applied(tmp_path: Path) -> None:
    inv = pull_world(tmp_path, labels={})  # no Flux labels: the Kustomization's status.inventory holds it
    [f] = findings(inv)["KS106"]
    flux_fix(f.fix)


def test_helmrelease_installed_deployment_is_changed_through_its_values(tmp_path: Path) -> None:
    labels = {"helm.toolkit.fluxcd.io/name": "web", "helm.toolkit.fluxcd.io/namespace": "homelab"}
    inv = world(None, [web(labels=labels, changed=False), *nodes()])
    [f] = findings(inv)["KS106"]
    assert "is installed by Flux (HelmRelease homelab/web): a kubectl change is lost at the next Helm upgrade" in f.fix
    assert "the HelmRelease's spec.values" in f.fix
    assert "flux reconcile helmrelease web -n homelab --with-source" in f.fix
    assert "kubectl set image" not in f.fix


def test_probe_fix_of_a_flux_deployment_edits_the_probes_in_the_file(tmp_path: Path) -> None:
    events = [{"apiVersion": "v1", "kind": "Event", "type": "Warning", "reason": "Unhealthy", "count": 40,
               "message": "Liveness probe failed: HTTP probe failed with statuscode: 429",
               "firstTimestamp": "2025-11-17T09:00:00Z", "lastTimestamp": "2025-11-17T09:59:00Z",
               "metadata": meta("web-7d9c-x2x4q.1", "homelab"),
               "involvedObject": {"kind": "Pod", "namespace": "homelab", "name": "web-7d9c-x2x4q"}}]
    rs = replicaset("web-7d9c", 12, 1)
    rs["metadata"]["uid"] = "uid-homelab-web-7d9c"
    running = pull_failing_pod(COMMITTED, "node-a")
    running["status"] = {"phase": "Running", "containerStatuses": [{"name": "app", "restartCount": 3,
                                                                    "state": {"running": {}}}]}
    flux = world(tmp_path, [*flux_objects(), web(COMMITTED, changed=False), rs, running, *nodes()])
    flux.cluster.events = events  # type: ignore[union-attr]
    [f] = findings(flux)["KS502"]
    flux_fix(f.fix, LIVENESS_LINE)
    assert f"In apps/web.yaml:{LIVENESS_LINE} set `livenessProbe` as above" in f.fix
    assert "--patch-file" not in f.fix

    plain = world(None, [web(COMMITTED, labels={}, changed=False), rs, running, *nodes()])
    plain.cluster.events = events  # type: ignore[union-attr]
    [g] = findings(plain)["KS502"]
    assert "kubectl patch deployment/web -n homelab --patch-file web-app-probes.yaml" in g.fix


def test_revision_history_limit_is_set_in_the_file_and_old_replicasets_still_go(tmp_path: Path) -> None:
    old = [replicaset(f"web-{i:04x}", i, 0) for i in range(1, 9)]
    inv = world(tmp_path, [*flux_objects(), web(COMMITTED, changed=False), *old])
    [f] = findings(inv)["KS602"]
    assert f"In apps/web.yaml:{LINES['revisionHistoryLimit']} set `revisionHistoryLimit: 3`" in f.fix
    assert "kubectl patch" not in f.fix and RECONCILE in f.fix
    # the ReplicaSets are the Deployment's, not Flux's: deleting them stays a kubectl command
    assert "kubectl delete rs web-0005 web-0004 web-0003 web-0002 web-0001 -n homelab" in f.fix

    plain = world(None, [web(COMMITTED, labels={}, changed=False), *old])
    [g] = findings(plain)["KS602"]
    assert g.fix.startswith("kubectl patch deployment web -n homelab -p '{\"spec\":{\"revisionHistoryLimit\":3}}'")


def test_revision_history_limit_missing_from_the_file_is_added_under_spec(tmp_path: Path) -> None:
    text = WEB_YAML.replace("  revisionHistoryLimit: 10\n", "")
    old = [replicaset(f"web-{i:04x}", i, 0) for i in range(1, 9)]
    inv = world(tmp_path, [*flux_objects(), web(COMMITTED, changed=False), *old], files={"apps/web.yaml": text})
    [f] = findings(inv)["KS602"]
    assert f"Under `spec` at apps/web.yaml:{SPEC_LINE} add `revisionHistoryLimit: 3`" in f.fix


def hpa(labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": meta("whisper-hpa", "homelab", labels=labels),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "whisper"},
                     "maxReplicas": 3}}


HPA_YAML = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: whisper-hpa
  namespace: homelab
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: whisper}
  maxReplicas: 3
"""


def test_deleting_a_flux_applied_hpa_means_removing_it_from_git(tmp_path: Path) -> None:
    objects = [*flux_objects(), hpa(flux_labels()), web(COMMITTED, changed=False)]
    files = {"apps/web.yaml": WEB_YAML, "apps/whisper-hpa.yaml": HPA_YAML}
    [f] = findings(world(tmp_path, objects, files=files))["KS601"]
    assert ("HorizontalPodAutoscaler homelab/whisper-hpa is applied by Flux (Kustomization flux-system/apps): "
            "deleted with kubectl, it is re-created at its next reconcile") in f.fix
    assert "Remove its document from apps/whisper-hpa.yaml:1" in f.fix
    assert "Flux prunes it (prune: true) at its next reconcile (≤ 10m), or now:" in f.fix
    assert "kubectl delete hpa" not in f.fix and RECONCILE in f.fix

    no_prune = [*flux_objects(prune=False), hpa(flux_labels()), web(COMMITTED, changed=False)]
    [g] = findings(world(tmp_path, no_prune, files=files))["KS601"]
    assert "Kustomization flux-system/apps has prune off, so Flux leaves it in the cluster" in g.fix
    assert g.fix.rstrip("`\n").endswith("kubectl delete hpa whisper-hpa -n homelab")

    unread = world(None, [hpa(flux_labels()), web(COMMITTED, changed=False)], listed=())
    [h] = findings(unread)["KS601"]
    assert "whether Kustomization flux-system/apps prunes was not checked (it was not read)" in h.fix
    assert "kubectl delete hpa whisper-hpa -n homelab" in h.fix

    by_hand = world(None, [*flux_objects(), hpa({}), web(COMMITTED, changed=False)])
    [k] = findings(by_hand)["KS601"]
    assert k.fix == "kubectl delete hpa whisper-hpa -n homelab"


def test_service_selector_of_a_flux_service_is_fixed_in_the_file(tmp_path: Path) -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": meta("web", "homelab", labels=flux_labels()),
           "spec": {"selector": {"app": "webapp"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    running = pull_failing_pod(COMMITTED, "node-a")
    running["status"] = {"phase": "Running"}
    # the live Service was changed by hand; the repository's copy is where the selector is set
    files = {"apps/web.yaml": WEB_YAML, "apps/svc.yaml": SERVICE_YAML.replace("app: webapp", "app: web")}
    inv = world(tmp_path, [*flux_objects(), svc, web(COMMITTED, changed=False), running], files=files)
    [f] = [f for f in findings(inv)["KS604"] if f.source == "cluster"]
    assert f"In apps/svc.yaml:{SELECTOR_LINE} set `selector: {{\"app\": \"web\"}}`" in f.fix
    assert "kubectl patch" not in f.fix and "kubectl delete service" not in f.fix and RECONCILE in f.fix
    assert "Remove its document from apps/svc.yaml:1" in f.fix

    in_file = world(tmp_path, [*flux_objects(), svc, web(COMMITTED, changed=False), running],
                    files={"apps/web.yaml": WEB_YAML, "apps/svc.yaml": SERVICE_YAML})
    [g] = findings(in_file)["KS604"]
    assert g.fix.startswith(f"To select homelab/Deployment/web: set in apps/svc.yaml:{SELECTOR_LINE}:")
    assert "Commit and push; Flux (Kustomization flux-system/apps) applies it" in g.fix
    assert not IMAGE_LIKE.search(g.fix) and "kubectl apply" not in g.fix and "kubectl delete" not in g.fix


def test_repository_files_flux_renders_are_committed_not_kubectl_applied(tmp_path: Path) -> None:
    files = {"clusters/lab/apps.yaml": (
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n"
        "  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./apps\n  prune: true\n"
        "  sourceRef: {kind: GitRepository, name: homelab}\n"),
        "apps/web.yaml": WEB_YAML, "apps/svc.yaml": SERVICE_YAML}
    inv = world(tmp_path, [], files=files, registry=None)
    [f] = findings(inv)["KS604"]
    assert f"apps/svc.yaml:{SELECTOR_LINE}" in f.fix
    assert "kubectl apply" not in f.fix and "kubectl delete" not in f.fix
    assert "Commit and push; Flux (Kustomization flux-system/apps) applies it at its next reconcile (≤ 10m)" in f.fix
    assert "Flux prunes it (prune: true)" in f.fix


def test_variants_flux_applies_are_removed_from_git_and_pruned(tmp_path: Path) -> None:
    variant = WEB_YAML.replace("name: web\n", "name: web-enhanced\n").replace("{app: web}", "{app: web-enhanced}")
    files = {"clusters/lab/apps.yaml": (
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n"
        "  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./apps\n  prune: true\n"
        "  sourceRef: {kind: GitRepository, name: homelab}\n"),
        "apps/web.yaml": WEB_YAML, "apps/web-enhanced.yaml": variant}
    [f] = findings(world(tmp_path, [], files=files, registry=None))["KS202"]
    assert "kubectl delete" not in f.fix
    assert "Remove its document from apps/web-enhanced.yaml:1" in f.fix and "Flux prunes it" in f.fix


OTEL = "http://otel-collector.homelab.svc.cluster.local:4317"


def test_telemetry_env_of_a_flux_deployment_is_turned_off_in_the_file(tmp_path: Path) -> None:
    dep = web(COMMITTED, changed=False, probes=False)
    dep["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT",
                                                                "value": OTEL}]
    text = WEB_YAML.replace("          livenessProbe:", f"          env:\n            - name: "
                            f"OTEL_EXPORTER_OTLP_ENDPOINT\n              value: {OTEL}\n          livenessProbe:")
    env_line = text.splitlines().index("          env:") + 1
    listed = (*FLUX_LISTED, ("Service", ""))
    [f] = findings(world(tmp_path, [*flux_objects(), dep], files={"apps/web.yaml": text}, listed=listed))["KS701"]
    assert "kubectl set env" not in f.fix
    assert f"In apps/web.yaml:{env_line}:" in f.fix and '+    - name: OTEL_SDK_DISABLED' in f.fix
    assert "Commit and push; Flux (Kustomization flux-system/apps) applies it" in f.fix and RECONCILE in f.fix

    [g] = findings(world(None, [*flux_objects(), dep], listed=listed))["KS701"]
    assert "kubectl set env" not in g.fix
    assert ('Set `- {name: OTEL_SDK_DISABLED, value: "true"}` in the file it applies, commit and push' in g.fix)

    plain = web(COMMITTED, labels={}, changed=False, probes=False)
    plain["spec"]["template"]["spec"]["containers"][0]["env"] = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    [h] = findings(world(None, [plain], listed=listed))["KS701"]
    assert "kubectl set env deployment/web -n homelab -c app OTEL_SDK_DISABLED=true" in h.fix


# == fast: a change behind Flux in the incident it caused, and the restore step ==================================
def test_change_behind_flux_is_a_cause_of_the_pull_failure_and_flux_restores_the_committed_image(
        tmp_path: Path) -> None:
    incidents, steps = plan(pull_world(tmp_path))
    [inc] = [i for i in incidents if any(f.rule == "KS105" for f in i.findings)]
    assert {"KS105", "KS211", "KS101", "KS106", "KS404"} <= {f.rule for f in inc.findings}
    assert "changed behind Flux (KS211)" in inc.chain[-1]
    [ks211] = [f for f in inc.findings if f.rule == "KS211"]
    assert ks211.data["restorable"] is True
    assert ks211.data["committed"] == [{"field": "spec.template.spec.containers[name=app].image",
                                        "value": COMMITTED, "file": "apps/web.yaml", "line": IMAGE_LINE}]
    first = steps[0]
    assert (first.title, first.phase, first.incidents) == (RESTORE, "stop", [inc.id])
    assert first.commands == [RECONCILE]
    text = first.fix_markdown()
    assert (f"The repository sets spec.template.spec.containers[name=app].image = {COMMITTED} at "
            f"apps/web.yaml:{IMAGE_LINE}: Flux restores it at the next reconcile of Kustomization flux-system/apps "
            "(≤ 10m), or now:") in text
    second = steps[1]
    assert inc.id in second.incidents and second.phase == "stop"
    assert f"git commit -m 'web: image {QUALIFIED}' apps/web.yaml && git push" in second.commands
    assert RECONCILE in second.commands  # the new commit needs its own reconcile
    for step in steps:
        assert not any(IMAGE_LIKE.search(c) for c in step.commands), step.commands
    # KS211's own fix leads with the restore, since the image it set cannot start
    assert ks211.fix.startswith(f"The repository sets spec.template.spec.containers[name=app].image = {COMMITTED}")
    assert "The live image web:debug is unqualified and missing from the local image store of node-b" in ks211.fix


def test_no_restore_step_when_the_committed_image_is_broken_too(tmp_path: Path) -> None:
    empty: dict[str, Any] = {"collectedAt": NOW, "registries": [{"host": "registry.example", "repositories": [
        {"name": "web", "tags": [{"tag": "2", "digest": "sha256:" + "b" * 64, "size": 100}]}]}]}
    incidents, steps = plan(pull_world(tmp_path, registry=empty))
    [inc] = [i for i in incidents if any(f.rule == "KS105" for f in i.findings)]
    [ks211] = [f for f in inc.findings if f.rule == "KS211"]
    assert ks211.data["restorable"] is False
    assert "# the committed image tag 1 is not in registry.example/web: restoring it does not help" in ks211.fix
    assert "to restore what git says now" not in ks211.fix
    assert RESTORE not in [s.title for s in steps]
    [main] = [s for s in steps if inc.id in s.incidents and s.phase == "stop"]
    assert "restoring it does not help" in main.fix_markdown()


def test_a_change_behind_flux_on_a_healthy_workload_stays_its_own_incident(tmp_path: Path) -> None:
    inv = world(tmp_path, [*flux_objects(), web(COMMITTED.replace(":1", ":2")), *nodes()],
                registry={"collectedAt": NOW, "registries": [{"host": "registry.example", "repositories": [
                    {"name": "web", "tags": [{"tag": "1", "digest": "sha256:" + "a" * 64, "size": 1},
                                             {"tag": "2", "digest": "sha256:" + "c" * 64, "size": 1}]}]}]})
    incidents, steps = plan(inv)
    [inc] = [i for i in incidents if any(f.rule == "KS211" for f in i.findings)]
    assert [f.rule for f in inc.findings] == ["KS211"]
    assert RESTORE not in [s.title for s in steps]
    [f] = inc.findings
    assert f.fix.startswith(f"commit this change to apps/web.yaml:{IMAGE_LINE}")  # a working hotfix: keep it


# == live: the gitops scenario on a test bed of its own, and the printed fix followed ==============================
BACKEND = "family-assistant-backend"
BACKEND_FILE = f"apps/homelab/{BACKEND}.yaml"


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    yield from gitops_bed(tmp_path_factory.mktemp("flux-fixes"))


def _doctor(bed: Bed) -> dict[str, Any]:
    return bed.doctor("--repo", ".", "--fail-on", "never", registry=True, expect=(0,))


def _image(bed: Bed) -> str:
    dep = bed.get("deployment", "-n", "homelab", BACKEND)
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


def test_live_plan_under_flux_and_the_restore_it_prints_works(bed: Bed) -> None:
    committed = next(line.split("image:", 1)[1].strip() for line in (bed.checkout / BACKEND_FILE).read_text()
                     .splitlines() if "image:" in line)
    image_line = next(n for n, line in enumerate((bed.checkout / BACKEND_FILE).read_text().splitlines(), 1)
                      if "image:" in line)
    assert _image(bed) != committed  # the scenario's kubectl set image behind Flux

    report = _doctor(bed)
    findings = report["findings"]
    flux_applied = {f["object"]["name"] for f in findings if f["rule"] == "KS211"}
    assert flux_applied == {BACKEND}
    for step in report["plan"]:
        for command in step["commands"]:
            assert not re.search(r"kubectl (set image|patch)\b", command), (step["title"], command)
    pull = next(i for i in report["incidents"]
                if any(findings[n]["rule"] == "KS105" and findings[n]["object"]["name"] == BACKEND
                       for n in i["findingIndexes"]))
    rules = {findings[n]["rule"] for n in pull["findingIndexes"]}
    assert {"KS105", "KS211"} <= rules, pull["chain"]
    steps = [s for s in report["plan"] if pull["id"] in s["closes"]]
    assert steps[0]["title"] == RESTORE and steps[0]["phase"] == "stop"
    assert steps[0]["commands"] == [RECONCILE]
    assert f"= {committed} at {BACKEND_FILE}:{image_line}: Flux restores it" in steps[0]["fix"]
    image_steps = [s for s in steps[1:] if "git commit" in "\n".join(s["commands"])]
    assert image_steps and f"In {BACKEND_FILE}:{image_line} set `image: " in image_steps[0]["fix"]
    probes = next(f for f in findings if f["rule"] == "KS502")
    assert "homelab-dashboard.yaml:" in probes["fix"] and "--patch-file" not in probes["fix"]

    # follow step 1: what `flux reconcile kustomization apps -n flux-system --with-source` does (the flux CLI is
    # not installed): request a reconcile of the source and of the Kustomization through the API
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for resource in ("gitrepositories.source.toolkit.fluxcd.io/flux-system",
                     "kustomizations.kustomize.toolkit.fluxcd.io/apps"):
        bed.kubectl("annotate", "--overwrite", "-n", "flux-system", resource, f"reconcile.fluxcd.io/requestedAt={now}")
    deadline = time.monotonic() + 180
    while _image(bed) != committed and time.monotonic() < deadline:
        time.sleep(1)
    assert _image(bed) == committed  # the advice was true: Flux put back what git commits
    assert "KS211" not in {f["rule"] for f in _doctor(bed)["findings"]}
