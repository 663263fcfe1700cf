"""`python -m testbed up --scenario gitops`: the homelab applied by real Flux controllers from a repository on
the loopback git server, plus what was done behind Flux's back."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testbed.cluster import kill_recorded

ROOT = Path(__file__).resolve().parents[1]
UP_TIMEOUT = 420  # seconds: control plane, Flux (built on first use elsewhere), images, first reconcile


@dataclass
class Bed:
    workdir: Path
    kubeconfig: Path
    git_url: str
    checkout: Path

    def kubectl(self, *args: str) -> Any:
        out = subprocess.run(["kubectl", f"--kubeconfig={self.kubeconfig}", *args, "-o", "json"],
                             capture_output=True, text=True, check=True, timeout=60).stdout
        return json.loads(out)


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    workdir = tmp_path_factory.mktemp("gitops-up")
    up = subprocess.Popen([sys.executable, "-m", "testbed", "up", "--dir", str(workdir), "--scenario", "gitops"],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert up.stdout is not None
        lines: list[str] = []
        for line in iter(up.stdout.readline, ""):
            lines.append(line)
            if line.startswith("stop with"):
                break
        banner = "".join(lines)
        git = re.search(r"^git:\s+(\S+) \(Flux follows main; a checkout: (\S+)\)$", banner, re.M)
        assert git, banner
        yield Bed(workdir, workdir / "kubeconfig", git.group(1), Path(git.group(2)))
        subprocess.run([sys.executable, "-m", "testbed", "down", "--dir", str(workdir)], cwd=ROOT,
                       capture_output=True, check=True, timeout=60)
        assert up.wait(30) == 0
    finally:
        up.kill()
        up.wait()
        kill_recorded(workdir)


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def test_flux_applied_the_head_of_the_served_repository(bed: Bed) -> None:
    head = subprocess.run(["git", "ls-remote", bed.git_url, "refs/heads/main"], capture_output=True, text=True,
                          check=True).stdout.split()[0]
    assert subprocess.run(["git", "-C", str(bed.checkout), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip() == head
    source = bed.kubectl("get", "gitrepositories.source.toolkit.fluxcd.io", "-n", "flux-system", "flux-system")
    assert source["status"]["artifact"]["revision"] == f"main@sha1:{head}"
    for name in ("flux-system", "apps"):
        ks = bed.kubectl("get", "kustomizations.kustomize.toolkit.fluxcd.io", "-n", "flux-system", name)
        assert ready(ks)["status"] == "True", ks["status"]
        assert ks["status"]["lastAppliedRevision"] == f"main@sha1:{head}"
    apps = bed.kubectl("get", "kustomizations.kustomize.toolkit.fluxcd.io", "-n", "flux-system", "apps")
    entries = {e["id"] for e in apps["status"]["inventory"]["entries"]}
    assert {"homelab_family-assistant-backend_apps_Deployment", "homelab_loki_apps_StatefulSet",
            "_homelab__Namespace"} <= entries


def test_the_collector_kustomization_fails_to_build_with_fluxs_message(bed: Bed) -> None:
    ks = bed.kubectl("get", "kustomizations.kustomize.toolkit.fluxcd.io", "-n", "flux-system", "observability")
    cond = ready(ks)
    assert (cond["status"], cond["reason"]) == ("False", "BuildFailed")
    assert "otel-collector.yaml" in cond["message"]


def test_what_was_done_behind_fluxs_back(bed: Bed) -> None:
    dep = bed.kubectl("get", "deployment", "-n", "homelab", "family-assistant-backend", "--show-managed-fields")
    assert dep["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"] == "apps"
    managers = {(m["manager"], m["operation"]) for m in dep["metadata"]["managedFields"]}
    assert {("kustomize-controller", "Apply"), ("kubectl-set", "Update")} <= managers
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "family-assistant:phase2-mcp-logging-fix"
    committed = (bed.checkout / "apps/homelab/family-assistant-backend.yaml").read_text()
    assert "100.81.76.55:30500/family-assistant:fixed" in committed
    hpas = bed.kubectl("get", "hpa", "-n", "homelab")["items"]
    assert {h["metadata"]["name"] for h in hpas} == {"family-assistant-enhanced-hpa", "whisper-hpa"}
    assert not any("kustomize.toolkit.fluxcd.io/name" in (h["metadata"].get("labels") or {}) for h in hpas)


def doctor(bed: Bed, *args: str) -> list[dict[str, Any]]:
    proc = subprocess.run([sys.executable, "-m", "kubeshape", "doctor", "--kubeconfig", str(bed.kubeconfig),
                           "-o", "json", *args], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1, proc.stderr
    return list(json.loads(proc.stdout)["findings"])


def test_doctor_reads_flux_and_names_what_was_done_behind_its_back(bed: Bed) -> None:
    findings = doctor(bed, "--repo", str(bed.checkout))
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
