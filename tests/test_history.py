"""kubeshape history: revisions, results and the last known good, from the demo bundle, from hand-made objects,
and from a real cluster (live and through a snapshot bundle)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubeshape.release.history import build
from kubeshape.release.kube import CHANGE_CAUSE, RESULT
from kubeshape.sources.bundle_writer import bundle_members, write_bundle
from kubeshape.sources.live import collect, connect
from testbed.cluster import Cluster
from tests.release_helpers import (
    DEPLOYMENT,
    apply_yaml,
    create_namespace,
    deployment,
    rolled_out,
    run_cli,
    unique,
    wait_for,
)

DEMO = Path(str(resources.files("kubeshape") / "demo" / "bundle"))
DIGEST = "sha256:" + "ab" * 32
REG = "127.0.0.1:5000/app"  # never pulled: kwok runs any registry-qualified image


def test_demo_bundle_last_known_good_is_the_revision_still_serving() -> None:
    res = run_cli("history", "family-assistant-backend", "-n", "homelab", "--bundle", str(DEMO), "-o", "json")
    assert res.code == 0, res.error
    doc = orjson.loads(res.stdout)
    results = {r["revision"]: r["result"] for r in doc["revisions"]}
    assert doc["current_revision"] == 62 and doc["last_known_good"] == 61
    assert results[62] == "failed" and results[61] == "available"
    assert {results[r] for r in results if r < 61} == {"superseded-unknown"}
    lkg = next(r for r in doc["revisions"] if r["revision"] == 61)
    assert lkg["images"] == ["100.81.76.55:30500/family-assistant:me-fixed"]
    text = run_cli("history", "family-assistant-backend", "--bundle", str(DEMO)).stdout
    assert "62*  failed" in text
    assert "last known good: revision 61 (100.81.76.55:30500/family-assistant:me-fixed) -- 1 pod available now" \
        in text


def test_unknown_or_ambiguous_deployments_in_a_bundle_are_clear_errors() -> None:
    res = run_cli("history", "whisper", "--bundle", str(DEMO))
    assert res.code == 2 and "no Deployment whisper in the bundle" in str(res.error)
    res = run_cli("history", "x", "--bundle", str(DEMO), "--context", "prod")
    assert res.code == 2 and "drop --kubeconfig/--context" in str(res.error)


def _rs(rev: int, name: str, image: str, *, available: int = 0, annotations: dict[str, str] | None = None,
        uid: str = "dep-uid") -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": f"uid-{name}", "creationTimestamp": f"2025-11-1{rev}T10:00:00Z",
                         "ownerReferences": [{"kind": "Deployment", "uid": uid, "controller": True}],
                         "annotations": {"deployment.kubernetes.io/revision": str(rev), **(annotations or {})}},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
            "status": {"replicas": available, "availableReplicas": available}}


def test_results_come_from_rollout_status_records_and_available_pods() -> None:
    dep = {"metadata": {"name": "app", "namespace": "ns", "uid": "dep-uid", "generation": 5,
                        "annotations": {"deployment.kubernetes.io/revision": "5"}},
           "spec": {"replicas": 2}, "status": {"observedGeneration": 5, "replicas": 2, "updatedReplicas": 2,
                                                "availableReplicas": 0}}
    cause = f"release app main-abc1234-1763373600 ({DIGEST}) from abc1234"
    rss = [
        _rs(1, "app-1", f"{REG}:1.0.0"),
        _rs(2, "app-2", f"{REG}:main-abc1234-1763373600",
            annotations={CHANGE_CAUSE: cause, RESULT: "available app-2 2025-11-12T10:01:00Z"}),
        _rs(3, "app-3", f"{REG}:main-fff0000-1763380000", annotations={RESULT: "available app-2 2025-11-12T10:01:00Z"}),
        _rs(4, "app-4", f"{REG}:main-0a0a0a0-1763390000", annotations={RESULT: "failed app-4 2025-11-14T10:01:00Z"}),
        _rs(5, "app-5", "app:bad"),
    ]
    pods = [{"metadata": {"name": "app-5-x", "ownerReferences": [{"uid": "uid-app-5"}]},
             "status": {"containerStatuses": [{"image": "app:bad", "state": {"waiting": {"reason": "ErrImagePull"}}}]}}]
    h = build(dep, rss, pods)
    got = {r.revision: (r.result, r.commit) for r in h.revisions}
    assert got == {1: ("superseded-unknown", None), 2: ("available", "abc1234"),
                   3: ("superseded-unknown", "fff0000"),  # a record copied from another ReplicaSet is ignored
                   4: ("failed", "0a0a0a0"), 5: ("progressing", None)}
    assert h.revisions[1].digest == DIGEST and h.last_known_good is not None and h.last_known_good.revision == 2
    assert h.revisions[4].evidence == "0 of 2 updated replicas available -- pod app-5-x: ErrImagePull (app:bad)"


# -- on the test bed --------------------------------------------------------------------------------------------


@dataclass
class Bed:
    cluster: Cluster
    namespace: str
    name: str

    def history(self, *extra: str) -> dict[str, Any]:
        res = run_cli("history", self.name, "-n", self.namespace, "--kubeconfig", str(self.cluster.kubeconfig),
                      "-o", "json", *extra)
        assert res.code == 0, res.error
        return dict(orjson.loads(res.stdout))

    def set_image(self, image: str, cause: str) -> None:
        body = {"metadata": {"annotations": {CHANGE_CAUSE: cause}},
                "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
        self.cluster.api("PATCH", f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{self.name}", body,
                         content_type="application/strategic-merge-patch+json")

    def deployment(self) -> dict[str, Any]:
        return deployment(self.cluster, self.namespace, self.name)


def _deadline_exceeded(dep: dict[str, Any]) -> bool:
    return any(c.get("reason") == "ProgressDeadlineExceeded" for c in (dep.get("status") or {}).get("conditions")
               or [])


@pytest.fixture(scope="module")
def bed(cluster: Cluster) -> Iterator[Bed]:
    """Revision 1 (1.0.0, available), 2 (a kubeshape release, available), 3 (unqualified image: ImagePullBackOff,
    progress deadline exceeded)."""
    b = Bed(cluster, unique("hist-"), "app")
    create_namespace(cluster, b.namespace)
    apply_yaml(cluster, DEPLOYMENT.format(name=b.name, namespace=b.namespace, deadline=5, image=f"{REG}:1.0.0"))
    wait_for(lambda: rolled_out(b.deployment()), 60, "revision 1")
    b.set_image(f"{REG}:main-abc1234-1763373600", f"release app main-abc1234-1763373600 ({DIGEST}) from abc1234")
    wait_for(lambda: rolled_out(b.deployment()), 60, "revision 2")
    b.set_image("app:main-bad0000-1763380000", "release app main-bad0000-1763380000 (digest unknown) from bad0000")
    wait_for(lambda: _deadline_exceeded(b.deployment()), 60, "revision 3 past its deadline")
    yield b


def _results(doc: dict[str, Any]) -> dict[int, str]:
    return {r["revision"]: r["result"] for r in doc["revisions"]}


def test_live_history_names_the_revision_still_serving_as_last_known_good(bed: Bed) -> None:
    doc = bed.history()
    assert _results(doc) == {1: "superseded-unknown", 2: "available", 3: "failed"}
    assert doc["current_revision"] == 3 and doc["last_known_good"] == 2
    rev2 = doc["revisions"][1]
    assert (rev2["digest"], rev2["commit"]) == (DIGEST, "abc1234")
    assert rev2["change_cause"].startswith("release app main-abc1234-1763373600")
    assert doc["revisions"][2]["evidence"].endswith("exceeded its progress deadline (5s)")


def test_after_a_recorded_failure_and_a_rollback_the_rollback_is_last_known_good(bed: Bed, tmp_path: Path) -> None:
    from kubeshape.release.kube import Kube

    kube = Kube.connect(bed.cluster.kubeconfig, None)
    try:
        dep = bed.deployment()
        bad = next(rs for rs in kube.replicasets(dep)
                   if rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3")
        kube.record_result(bad, "failed", "2025-11-17T10:00:00Z")  # what release --watch writes
    finally:
        kube.close()
    bed.set_image(f"{REG}:main-abc1234-1763373600",
                  "rollback to main-abc1234-1763373600 after failed release main-bad0000-1763380000")
    wait_for(lambda: rolled_out(bed.deployment()), 60, "rollback")
    live = bed.history()
    assert _results(live) == {1: "superseded-unknown", 3: "failed", 4: "available"}
    assert live["last_known_good"] == live["current_revision"] == 4
    text = run_cli("history", bed.name, "-n", bed.namespace, "--kubeconfig", str(bed.cluster.kubeconfig)).stdout
    assert f"last known good: revision 4 ({REG}:main-abc1234-1763373600) -- current revision, rollout complete" \
        in text

    api, _ = connect(bed.cluster.kubeconfig, None)
    with api.http:
        col = collect(api, namespaces=[bed.namespace], max_logs=0)
    bundle = write_bundle(tmp_path / "snap.tar.gz", bundle_members(col))
    assert bed.history() == orjson.loads(run_cli("history", bed.name, "--bundle", str(bundle), "-o", "json").stdout)
