"""doctor and snapshot against a REAL control plane running the homelab scenario (kwok nodes, real HPA
controller, real registry). Nothing here is mocked."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubeshape.analysis import analyse
from kubeshape.config import Config
from kubeshape.inventory import Inventory
from kubeshape.rbac import render as render_rbac
from kubeshape.sources.bundle import load_bundle
from kubeshape.sources.bundle_writer import bundle_members, write_bundle
from kubeshape.sources.live import collect, connect, to_cluster
from testbed.cluster import Cluster, start_cluster
from testbed.registry import Registry
from testbed.scenarios.loader import Scenario, load

CANARIES = ("S3CR3T-CANARY-do-not-leak", "S3CR3T-CANARY-env-value")
HOMELAB_REGISTRY = "100.81.76.55:30500"


@dataclass
class Homelab:
    cluster: Cluster
    registry: Registry
    scenario: Scenario

    @property
    def registry_spec(self) -> str:
        return f"{self.registry.host}={HOMELAB_REGISTRY}"


@pytest.fixture(scope="module")
def homelab(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Iterator[Homelab]:
    cluster = start_cluster(tmp_path_factory.mktemp("homelab"))
    try:
        scenario = load(cluster, registry.host)
        yield Homelab(cluster, registry, scenario)
    finally:
        cluster.stop()


def ks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeshape", *args], capture_output=True, text=True, timeout=300,
                          check=False)


def doctor_json(homelab: Homelab, *extra: str, kubeconfig: Path | None = None) -> dict[str, Any]:
    proc = ks("doctor", "--kubeconfig", str(kubeconfig or homelab.cluster.kubeconfig), "-o", "json",
              "--registry", homelab.registry_spec, "--insecure-registry", *extra)
    assert proc.returncode in (0, 1), proc.stderr
    return dict(json.loads(proc.stdout))


def normalized(findings: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Findings without the counters that keep moving while chaos runs (restarts, event counts, ages)."""
    return sorted((f["rule"], json.dumps(f["object"], sort_keys=True), re.sub(r"\d+", "N", f["message"]))
                  for f in findings)


def test_live_doctor_reports_all_seven_families(homelab: Homelab) -> None:
    report = doctor_json(homelab, "-n", "homelab")
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for f in report["findings"]:
        by_rule.setdefault(f["rule"], []).append(f)
    assert {f["family"] for f in report["findings"]} == {1, 2, 3, 4, 5, 6, 7}
    # ImagePullBackOff on asuna only (the image exists only on pesubuntu).
    [pull] = by_rule["KS105"]
    assert pull["data"]["nodes"] == ["asuna"]
    assert "present only in the local image store of: pesubuntu" in "\n".join(pull["evidence"])
    # FailedGetScale written by the real HPA controller.
    hpas = {f["object"]["name"]: "\n".join(f["evidence"]) for f in by_rule["KS601"]}
    assert set(hpas) == {"family-assistant-enhanced-hpa", "whisper-hpa"}
    assert all("FailedGetScale" in ev for ev in hpas.values())
    # Revisions made by kubectl-set patches, without change-cause.
    [history] = [f for f in by_rule["KS205"] if f["object"]["name"] == "family-assistant-backend"]
    assert "revision 62" in history["message"]
    assert "changed imperatively by 'kubectl set'" in "\n".join(history["evidence"])
    # Probes answered 429, the missing collector, the sprawling registry.
    assert "429" in "\n".join(by_rule["KS502"][0]["evidence"])
    assert any("otel-collector" in f["message"] for f in by_rule["KS701"])
    assert "45 tags" in "\n".join(by_rule["KS401"][0]["evidence"])
    assert report["blindSpots"] == []


def test_snapshot_gives_the_same_findings_as_live(homelab: Homelab, tmp_path: Path) -> None:
    # Exact: one collection, analysed directly and through a written and re-read bundle.
    api, _ = connect(homelab.cluster.kubeconfig, None)
    with api.http:
        col = collect(api)
    live_report, _ = analyse(Inventory(cluster=to_cluster(col)), Config())
    bundle = write_bundle(tmp_path / "exact.tar.gz", bundle_members(col))
    cluster, _ = load_bundle(bundle)
    bundle_report, _ = analyse(Inventory(cluster=cluster), Config())
    assert [f.as_dict() for f in live_report.findings] == [f.as_dict() for f in bundle_report.findings]
    # Through the CLI: `snapshot` then `doctor --bundle`, against `doctor` live a moment earlier.
    live = doctor_json(homelab)
    out = tmp_path / "homelab.tar.gz"
    proc = ks("snapshot", "--kubeconfig", str(homelab.cluster.kubeconfig), "-o", str(out),
              "--registry", homelab.registry_spec, "--insecure-registry")
    assert proc.returncode == 0, proc.stderr
    offline = json.loads(ks("doctor", "--bundle", str(out), "-o", "json").stdout)
    assert normalized(offline["findings"]) == normalized(live["findings"])


def test_no_secret_value_in_bundle_or_reports(homelab: Homelab, tmp_path: Path) -> None:
    out = tmp_path / "bundle.tar.gz"
    assert ks("snapshot", "--kubeconfig", str(homelab.cluster.kubeconfig), "-o", str(out)).returncode == 0
    with tarfile.open(out) as tar:
        blob = b"".join(f.read() for m in tar if m.isfile() and (f := tar.extractfile(m)) is not None)
    for canary in CANARIES:
        assert canary.encode() not in blob
    for fmt in ("text", "json", "markdown", "sarif", "html"):
        proc = ks("doctor", "--kubeconfig", str(homelab.cluster.kubeconfig), "-o", fmt, "--verbose")
        assert not any(c in proc.stdout + proc.stderr for c in CANARIES), fmt


def _service_account_kubeconfig(homelab: Homelab, tmp_path: Path, rbac_yaml: str, name: str) -> Path:
    c = homelab.cluster
    c.kubectl("create", "namespace", "kubeshape", check=False)
    c.kubectl("apply", "-f", "-", input=rbac_yaml)
    token = c.api("POST", f"/api/v1/namespaces/kubeshape/serviceaccounts/{name}/token",
                  {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                   "spec": {"expirationSeconds": 3600}})["status"]["token"]
    kubeconfig = tmp_path / f"{name}.kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "testbed",  # same name as the admin's
        "clusters": [{"name": "homelab", "cluster": {"server": c.server, "certificate-authority": str(c.ca_file)}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": "testbed", "context": {"cluster": "homelab", "user": name}}]}))
    return kubeconfig


def test_doctor_runs_with_exactly_the_shipped_read_only_role(homelab: Homelab, tmp_path: Path) -> None:
    kubeconfig = _service_account_kubeconfig(homelab, tmp_path, render_rbac(), "kubeshape-reader")
    as_reader = doctor_json(homelab, kubeconfig=kubeconfig)
    as_admin = doctor_json(homelab)
    assert as_reader["blindSpots"] == []
    assert normalized(as_reader["findings"]) == normalized(as_admin["findings"])
    # The role is read-only: the ServiceAccount can list but not delete.
    denied = homelab.cluster.kubectl("--kubeconfig", str(kubeconfig), "delete", "hpa", "whisper-hpa", "-n",
                                     "homelab", "--dry-run=server", check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()


def test_missing_permission_is_a_blind_spot_not_a_crash(homelab: Homelab, tmp_path: Path) -> None:
    narrow = render_rbac().replace("kubeshape-reader", "kubeshape-narrow").replace("  - events\n", "")
    kubeconfig = _service_account_kubeconfig(homelab, tmp_path, narrow, "kubeshape-narrow")
    report = doctor_json(homelab, kubeconfig=kubeconfig)
    assert any(b.startswith("Event: forbidden") for b in report["blindSpots"])
    assert {f["family"] for f in report["findings"]} >= {1, 6}


def test_all_contexts_gives_one_report_naming_each_cluster(homelab: Homelab, tmp_path: Path) -> None:
    import yaml

    config = yaml.safe_load(homelab.cluster.kubeconfig.read_text())
    [ctx] = config["contexts"]
    config["contexts"] = [{"name": name, "context": ctx["context"]} for name in ("lab-a", "lab-b")]
    config["current-context"] = "lab-a"
    kubeconfig = tmp_path / "two.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    proc = ks("doctor", "--kubeconfig", str(kubeconfig), "--all-contexts", "-o", "json", "--select", "KS6xx")
    report = json.loads(proc.stdout)
    assert proc.returncode == 1, proc.stderr
    clusters = {f["data"]["cluster"] for f in report["findings"]}
    assert clusters == {"lab-a", "lab-b"}
    assert {"cluster lab-a", "cluster lab-b"} <= set(report["sources"])
    per_cluster = [f for f in report["findings"] if f["data"]["cluster"] == "lab-a"]
    assert {f["object"]["name"] for f in per_cluster if f["rule"] == "KS601"} == {"family-assistant-enhanced-hpa",
                                                                                  "whisper-hpa"}
