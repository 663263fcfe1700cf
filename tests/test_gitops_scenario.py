"""`python -m testbed up --scenario gitops`: the homelab applied by real Flux controllers from a repository on
the loopback git server, plus what was done behind Flux's back."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.gitops_bed import Bed, gitops_bed


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
