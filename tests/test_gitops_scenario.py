"""`python -m testbed up --scenario gitops`: the homelab applied by real Flux controllers from a repository on
the loopback git server, plus what was done behind Flux's back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.gitops_bed import HOMELAB_REGISTRY, Bed, gitops_bed


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    yield from gitops_bed(tmp_path_factory.mktemp("gitops-up"))


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def test_flux_applied_the_head_of_the_served_repository(bed: Bed) -> None:
    head = subprocess.run(["git", "ls-remote", bed.git_url, "refs/heads/main"], capture_output=True, text=True,
                          check=True).stdout.split()[0]
    assert subprocess.run(["git", "-C", str(bed.checkout), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip() == head
    source = bed.get("gitrepositories.source.toolkit.fluxcd.io", "-n", "flux-system", "flux-system")
    assert source["status"]["artifact"]["revision"] == f"main@sha1:{head}"
    for name in ("flux-system", "apps"):
        ks = bed.get("kustomizations.kustomize.toolkit.fluxcd.io", "-n", "flux-system", name)
        assert ready(ks)["status"] == "True", ks["status"]
        assert ks["status"]["lastAppliedRevision"] == f"main@sha1:{head}"
    apps = bed.get("kustomizations.kustomize.toolkit.fluxcd.io", "-n", "flux-system", "apps")
    entries = {e["id"] for e in apps["status"]["inventory"]["entries"]}
    assert {"homelab_family-assistant-backend_apps_Deployment", "homelab_loki_apps_StatefulSet",
            "_homelab__Namespace"} <= entries


def test_the_collector_kustomization_fails_to_build_with_fluxs_message(bed: Bed) -> None:
    ks = bed.get("kustomizations.kustomize.toolkit.fluxcd.io", "-n", "flux-system", "observability")
    cond = ready(ks)
    assert (cond["status"], cond["reason"]) == ("False", "BuildFailed")
    assert "otel-collector.yaml" in cond["message"]


def test_what_was_done_behind_fluxs_back(bed: Bed) -> None:
    dep = bed.get("deployment", "-n", "homelab", "family-assistant-backend", "--show-managed-fields")
    assert dep["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"] == "apps"
    managers = {(m["manager"], m["operation"]) for m in dep["metadata"]["managedFields"]}
    assert {("kustomize-controller", "Apply"), ("kubectl-set", "Update")} <= managers
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "family-assistant:phase2-mcp-logging-fix"
    committed = (bed.checkout / "apps/homelab/family-assistant-backend.yaml").read_text()
    assert "100.81.76.55:30500/family-assistant:fixed" in committed
    hpas = bed.get("hpa", "-n", "homelab")["items"]
    assert {h["metadata"]["name"] for h in hpas} == {"family-assistant-enhanced-hpa", "whisper-hpa"}
    assert not any("kustomize.toolkit.fluxcd.io/name" in (h["metadata"].get("labels") or {}) for h in hpas)


def test_doctor_reads_flux_and_names_what_was_done_behind_its_back(bed: Bed) -> None:
    findings = bed.doctor("--repo", ".", expect=(1,))["findings"]
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        by_rule.setdefault(f["rule"], []).append(f)
    not_ready = {f["object"]["name"] for f in by_rule.get("KS206", [])}
    assert not_ready == {"observability"}, by_rule.get("KS206")
    assert "otel-collector.yaml" in json.dumps(by_rule["KS206"])
    by_hand = {f["object"]["name"] for f in by_rule.get("KS210", [])}
    assert by_hand == {"family-assistant-enhanced-hpa", "whisper-hpa"}, by_rule.get("KS210")
    changed = by_rule.get("KS211", [])
    assert [f["object"]["name"] for f in changed] == ["family-assistant-backend"], changed
    text = json.dumps(changed[0])
    assert "kubectl-set" in text and "apps/homelab/family-assistant-backend.yaml:" in text
    # the HPAs still scale Deployments that do not exist; Flux-applied objects are not "live, not in the repo"
    assert {"family-assistant-enhanced-hpa", "whisper-hpa"} <= {f["object"]["name"] for f in by_rule["KS601"]}
    assert "KS204" not in by_rule and "KS203" not in by_rule


def _fix(bed: Bed, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeshape", "fix", "--repo", ".", "--kubeconfig",
                           str(bed.kubeconfig), "-n", "homelab", "--registry", f"{bed.registry}={HOMELAB_REGISTRY}",
                           "--insecure-registry", *args], cwd=bed.checkout, capture_output=True, text=True,
                          timeout=300, check=False)


def test_fix_under_flux_changes_git_and_asks_flux_not_the_objects(bed: Bed) -> None:
    """Runs last: it changes the bed. What Flux applies is changed by the commit (and a reconcile request when
    git is already right); only what was applied by hand is changed in the cluster."""
    plan = json.loads(_fix(bed, "-o", "json").stdout)
    changes = [c for s in plan["steps"] for c in s["cluster"]]
    flux_owned = {"family-assistant-backend", "homelab-dashboard", "prometheus", "loki"}
    assert not [c for c in changes if c["object"]["name"] in flux_owned], changes
    assert {(c["action"], c["object"]["kind"], c["object"]["name"]) for c in changes} >= {
        ("delete", "HorizontalPodAutoscaler", "whisper-hpa"),
        ("delete", "HorizontalPodAutoscaler", "family-assistant-enhanced-hpa"),
        ("apply", "Kustomization", "apps")}
    reconcile = next(c for c in changes if c["object"]["kind"] == "Kustomization")
    assert "reconcile.fluxcd.io/requestedAt" in reconcile["body"]["metadata"]["annotations"]
    files = {f["path"] for s in plan["steps"] for f in s["files"]}
    assert "apps/homelab/family-assistant-backend.yaml" in files  # OTEL_SDK_DISABLED, through git

    done = _fix(bed, "--apply")
    assert done.returncode == 0, done.stderr
    assert "Flux applies the commit once it is pushed: git push" in done.stderr
    # Flux puts back what git says (the kubectl-set image is gone) once asked, without a push.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        dep = bed.get("deployment", "-n", "homelab", "family-assistant-backend")
        if dep["spec"]["template"]["spec"]["containers"][0]["image"] == f"{HOMELAB_REGISTRY}/family-assistant:fixed":
            break
        time.sleep(1)
    else:
        raise AssertionError("Flux did not restore the committed image")
    assert bed.get("hpa", "-n", "homelab")["items"] == []
    # The commit carries the file changes; pushed, Flux applies them.
    subprocess.run(["git", "-C", str(bed.checkout), "push", "-q", "origin", "HEAD:main"], check=True,
                   capture_output=True, timeout=60)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        env = bed.get("deployment", "-n", "homelab", "family-assistant-backend")["spec"]["template"]["spec"][
            "containers"][0].get("env") or []
        if {"name": "OTEL_SDK_DISABLED", "value": "true"} in env:
            break
        subprocess.run(["kubectl", f"--kubeconfig={bed.kubeconfig}", "annotate", "--overwrite", "-n", "flux-system",
                        "kustomization/apps", f"reconcile.fluxcd.io/requestedAt={time.time()}"],
                       capture_output=True, timeout=60, check=False)
        time.sleep(3)
    else:
        raise AssertionError("Flux did not apply the pushed fix")
