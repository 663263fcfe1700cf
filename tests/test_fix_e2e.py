"""doctor -> fix --apply -> doctor on the homelab scenario, against a REAL control plane (kwok nodes, the real
deployment and HPA controllers), a real registry and a real git repository holding the homelab's manifests."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testbed.cluster import Cluster, start_cluster
from testbed.registry import Registry
from testbed.scenarios.loader import Scenario, load

DEMO_REPO = Path(__file__).resolve().parents[1] / "src" / "kubeshape" / "demo" / "repo"
HOMELAB_REGISTRY = "100.81.76.55:30500"
BACKEND = "/apis/apps/v1/namespaces/homelab/deployments/family-assistant-backend"


@dataclass
class Bed:
    cluster: Cluster
    registry: Registry
    scenario: Scenario
    repo: Path

    def args(self) -> list[str]:
        return ["--repo", str(self.repo), "--kubeconfig", str(self.cluster.kubeconfig), "-n", "homelab",
                "--registry", f"{self.registry.host}={HOMELAB_REGISTRY}", "--insecure-registry"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def ks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeshape", *args], capture_output=True, text=True, timeout=600,
                          check=False)


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Iterator[Bed]:
    cluster = start_cluster(tmp_path_factory.mktemp("fix-homelab"))
    try:
        scenario = load(cluster, registry.host)
        repo = tmp_path_factory.mktemp("homelab-repo") / "homelab"
        shutil.copytree(DEMO_REPO, repo)
        git(repo, "init", "-q", "-b", "main")
        git(repo, "-c", "user.name=Pesu", "-c", "user.email=pesu@homelab.lan", "add", "-A")
        git(repo, "-c", "user.name=Pesu", "-c", "user.email=pesu@homelab.lan", "commit", "-q", "-m",
            "homelab manifests as deployed by hand")
        yield Bed(cluster, registry, scenario, repo)
    finally:
        cluster.stop()


def doctor(bed: Bed) -> dict[str, Any]:
    proc = ks("doctor", *bed.args(), "-o", "json")
    assert proc.returncode in (0, 1) and proc.stdout, proc.stderr
    return dict(json.loads(proc.stdout))


def metric(report: dict[str, Any], name: str) -> float | None:
    value = report["metrics"][name]["value"]
    return None if value is None else float(value)


def identity(f: dict[str, Any]) -> tuple[str, str, str]:
    """What a finding is about. KS404 is about a registry repository's tags that live only on nodes: in use it
    names the image, once nothing runs it the repository -- the same problem (the fix cannot push from a node)."""
    if f["rule"] == "KS404":
        return f["rule"], str(f["data"].get("registry")), ""
    return f["rule"], json.dumps(f["object"], sort_keys=True), f["file"] or ""


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _rolled_out(cluster: Cluster) -> bool:
    dep = cluster.api("GET", BACKEND)
    st, spec = dep.get("status") or {}, dep["spec"]
    if st.get("observedGeneration", 0) < dep["metadata"]["generation"]:
        return False
    pods = cluster.api("GET", "/api/v1/namespaces/homelab/pods?labelSelector=app=family-assistant-backend")["items"]
    return bool(st.get("updatedReplicas") == spec["replicas"] == st.get("availableReplicas") == st.get("replicas")
                and len(pods) == spec["replicas"] and all(_ready(p) for p in pods))


def wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} not reached after {timeout:.0f}s")


def test_doctor_fix_apply_doctor_on_the_homelab(bed: Bed) -> None:
    before = doctor(bed)
    assert metric(before, "deployment_success_rate") == 50.0
    pods = bed.cluster.api("GET", "/api/v1/namespaces/homelab/pods?labelSelector=app=family-assistant-backend")
    assert any(p["spec"].get("nodeName") == "asuna" and not _ready(p) for p in pods["items"])

    # The dry run changes nothing and names every step; -o json is the same plan.
    head = git(bed.repo, "rev-parse", "HEAD")
    dry = ks("fix", *bed.args())
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout and "delete horizontalpodautoscaler/whisper-hpa -n homelab" in dry.stdout
    assert git(bed.repo, "rev-parse", "HEAD") == head and not git(bed.repo, "status", "--porcelain")
    plan = json.loads(ks("fix", *bed.args(), "-o", "json").stdout)
    fixed = {fid for step in plan["steps"] for fid in step["findings"]}
    assert {fid.split("-")[0] for fid in fixed} >= {"KS101", "KS102", "KS105", "KS201", "KS205", "KS502", "KS601",
                                                     "KS602", "KS701"}

    done = ks("fix", *bed.args(), "--apply")
    assert done.returncode == 0, done.stderr
    assert f"applied {len(plan['steps'])} of {len(plan['steps'])} steps" in done.stderr
    # One commit, naming the rules; the copy that was not applied is gone, comments elsewhere kept.
    log = git(bed.repo, "log", "--format=%s%n%b", "-1")
    assert log.startswith("kubeshape fix: ") and "KS201" in log and "KS701" in log
    assert not (bed.repo / "infrastructure/kubernetes/family-assistant-backend.yaml").read_text().count(
        "kind: Deployment")
    kept = (bed.repo / "family-assistant-backend.yaml").read_text()
    assert "maxSurge: 0        # not enough memory on the nodes" in kept and "OTEL_SDK_DISABLED" in kept
    assert "revisionHistoryLimit: 3" in kept
    assert not git(bed.repo, "status", "--porcelain")

    # The cluster: HPAs deleted, the backend rolled out to an image every node can pull.
    hpas = bed.cluster.api("GET", "/apis/autoscaling/v2/namespaces/homelab/horizontalpodautoscalers")["items"]
    assert hpas == []
    wait(lambda: _rolled_out(bed.cluster), 120, "family-assistant-backend rolled out")
    dep = bed.cluster.api("GET", BACKEND)
    [container] = dep["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{HOMELAB_REGISTRY}/family-assistant:fixed-final"
    pods = bed.cluster.api("GET", "/api/v1/namespaces/homelab/pods?labelSelector=app=family-assistant-backend")
    assert all(_ready(p) for p in pods["items"])
    assert any(p["spec"].get("nodeName") == "asuna" for p in pods["items"])

    after = doctor(bed)
    assert metric(after, "deployment_success_rate") == 100.0
    # None of the fixed findings is left, and nothing new appeared. KS502 is fixed in the file only (the app must
    # serve the new probe paths first): the live probes still answer 429 until it is deployed.
    left = {f["id"] for f in after["findings"]} & fixed
    assert {fid.split("-")[0] for fid in left} <= {"KS502"}, left
    new = {identity(f) for f in after["findings"]} - {identity(f) for f in before["findings"]}
    assert new == set(), new
    assert {f["rule"] for f in after["findings"]} & {"KS105", "KS106", "KS201", "KS205", "KS601", "KS602"} == set()

    # Re-running is a no-op: nothing left to apply, no commit, no cluster change.
    head = git(bed.repo, "rev-parse", "HEAD")
    generation = bed.cluster.api("GET", BACKEND)["metadata"]["generation"]
    again = ks("fix", *bed.args(), "--apply")
    assert again.returncode == 0, again.stderr
    assert "Nothing to apply." in again.stdout
    assert git(bed.repo, "rev-parse", "HEAD") == head
    assert bed.cluster.api("GET", BACKEND)["metadata"]["generation"] == generation
