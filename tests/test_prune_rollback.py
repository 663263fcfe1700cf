"""``registry prune|tags`` keep rollback targets (the images of the old revisions each Deployment retains)
and order kubeshape's own build tags by the commit time in the tag, on a real registry and a real control
plane running the homelab scenario (62 revisions of family-assistant-backend)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from kubeshape.registry.client import RegistryClient
from kubeshape.registry.image import build_image, push_image
from testbed.cluster import Cluster, start_cluster
from testbed.registry import Registry, start_registry
from testbed.scenarios.loader import Scenario, load
from tests.release_helpers import usable_namespace, wait_for
from tests.test_prune import ALIAS, ks_registry, registry_tags, workload

REVISION = "deployment.kubernetes.io/revision"
BACKEND = "family-assistant-backend"


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[Registry]:
    """A real registry of its own (deletes enabled): these tests delete tags."""
    reg = start_registry(tmp_path / "registry")
    yield reg
    reg.stop()


# -- ordering: the time in the tag beats the image's created ------------------------------------------------


def _build_tag(sha: str, when: datetime) -> str:
    return f"main-{sha}-{int(when.timestamp()):010d}"


def test_commit_time_in_the_tag_beats_created_for_a_rebuilt_image(fresh_registry: Registry,
                                                                   tmp_path: Path) -> None:
    """``aaaaaaa`` is the oldest commit but was rebuilt today: by ``created`` it is the newest image, by the
    tag it is the oldest build, so keep_last 2 keeps the two newest commits and drops the rebuild."""
    now = datetime.now(UTC)
    rebuilt = _build_tag("aaaaaaa", now - timedelta(days=10))
    middle = _build_tag("bbbbbbb", now - timedelta(days=5))
    newest = _build_tag("ccccccc", now - timedelta(days=1))
    reproducible = _build_tag("ddddddd", now - timedelta(days=20))  # ko stamps 1970: only the tag dates it
    created = {rebuilt: now - timedelta(hours=1), middle: now - timedelta(days=20),
               newest: now - timedelta(days=30), reproducible: datetime(1970, 1, 1, tzinfo=UTC),
               "1.0.0": now - timedelta(days=40), "1.1.0": now - timedelta(days=40)}
    with RegistryClient(fresh_registry.host, insecure=True) as client:
        digests = {t: push_image(client, "svc", t, build_image({"v": t.encode()}, created=when))
                   for t, when in created.items()}
    assert max(created, key=lambda t: created[t]) == rebuilt  # created alone would call the rebuild newest

    listing = ks_registry("tags", "--registry", fresh_registry.host, "-o", "json")
    assert listing.returncode == 0, listing.stderr
    order = [t["tag"] for t in json.loads(listing.stdout)["repositories"][0]["tags"]]
    assert order == [newest, middle, rebuilt, reproducible, "1.1.0", "1.0.0"]  # equal created: higher release

    cfg = tmp_path / "kubeshape.yaml"
    cfg.write_text("retention:\n  - keep_last: 2\n")
    args = ["prune", "--registry", fresh_registry.host, "--config", str(cfg), "--no-usage-check"]
    plan = json.loads(ks_registry(*args, "-o", "json").stdout)["repositories"][0]
    decisions = {t["tag"]: t for t in plan["tags"]}
    assert set(plan["keep"]) == {newest, middle}
    assert (decisions[rebuilt]["code"], decisions[reproducible]["code"]) == ("expired", "expired")
    applied = ks_registry(*args, "--apply")
    assert applied.returncode == 0, applied.stderr
    assert registry_tags(fresh_registry, "svc") == {newest: digests[newest], middle: digests[middle]}


# -- a real rollout history referencing an image by digest --------------------------------------------------


@pytest.fixture
def live_ns(cluster: Cluster) -> Iterator[str]:
    with usable_namespace(cluster, "rollback-") as name:
        yield name


def test_a_revision_pinned_by_digest_keeps_its_image_and_every_tag_on_it(
        cluster: Cluster, live_ns: str, fresh_registry: Registry, tmp_path: Path) -> None:
    """Revisions v1, @digest-of-v2, v3, v4 with revisionHistoryLimit 2: the controller keeps revisions 2 and
    3, so v2 (by digest, with its alias ``stable``) and v3 stay; v1 and the unused v5 go."""
    now = datetime.now(UTC)
    with RegistryClient(fresh_registry.host, insecure=True) as client:
        digests = {t: push_image(client, "web", t, build_image({"v": t.encode()}, created=now - timedelta(days=9 - i)))
                   for i, t in enumerate(["v1", "v2", "v3", "v4", "v5"])}
        m = client.get_manifest("web", "v2")
        client.put_manifest("web", "stable", m.body, m.media_type)
    path = f"/apis/apps/v1/namespaces/{live_ns}/deployments"
    dep = workload("Deployment", "api", f"{ALIAS}/web:v1", spec={"revisionHistoryLimit": 2})
    dep["metadata"] = {"name": "api"}
    cluster.api("POST", path, dep)

    def rolled_out(revision: int) -> bool:
        d = cluster.api("GET", f"{path}/api")
        st = d.get("status") or {}
        return bool(d["metadata"].get("annotations", {}).get(REVISION) == str(revision)
                    and st.get("observedGeneration") == d["metadata"]["generation"]
                    and st.get("updatedReplicas") == st.get("availableReplicas") == st.get("replicas") == 1)

    wait_for(lambda: rolled_out(1), 30, "revision 1 available")
    for revision, image in enumerate([f"{ALIAS}/web@{digests['v2']}", f"{ALIAS}/web:v3", f"{ALIAS}/web:v4"], 2):
        cluster.kubectl("set", "image", "-n", live_ns, "deployment/api", f"app={image}")
        wait_for(partial(rolled_out, revision), 30, f"revision {revision} available")
    sets = f"/apis/apps/v1/namespaces/{live_ns}/replicasets"
    wait_for(lambda: len(cluster.api("GET", sets)["items"]) == 3, 30, "revision 1 cleaned up (limit 2)")

    cfg = tmp_path / "kubeshape.yaml"
    cfg.write_text("retention:\n  - keep_last: 0\n")
    args = ["prune", "--registry", f"{fresh_registry.host}={ALIAS}", "--kubeconfig", str(cluster.kubeconfig),
            "--config", str(cfg), "-o", "json"]
    proc = ks_registry(*args, "--apply")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    targets = [t for t in doc["usage"]["rollback_targets"] if t["namespace"] == live_ns]
    assert [(t["revision"], t["images"]) for t in targets] == [(3, [f"{ALIAS}/web:v3"]),
                                                                (2, [f"{ALIAS}/web@{digests['v2']}"])]
    codes = {t["tag"]: t["code"] for t in doc["repositories"][0]["tags"]}
    assert codes == {"v1": "expired", "v2": "rollback-target", "stable": "rollback-target",
                     "v3": "rollback-target", "v4": "in-use", "v5": "expired"}
    assert registry_tags(fresh_registry, "web") == {t: digests[t] for t in ("v2", "v3", "v4")} | {
        "stable": digests["v2"]}


# -- the homelab: 62 revisions, 10 retained, the newest 3 old ones are rollback targets ------------------------


@dataclass
class Homelab:
    cluster: Cluster
    registry: Registry
    scenario: Scenario

    @property
    def registry_spec(self) -> str:
        return f"{self.registry.host}={ALIAS}"


@pytest.fixture(scope="module")
def homelab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homelab]:
    """The homelab scenario on a control plane and a registry of its own (prune deletes its tags)."""
    root = tmp_path_factory.mktemp("homelab-prune")
    registry = start_registry(root / "registry")
    try:
        cluster = start_cluster(root / "cluster")
        try:
            yield Homelab(cluster, registry, load(cluster, registry.host, wait=False))
        finally:
            cluster.stop()
    finally:
        registry.stop()


def _revisions(homelab: Homelab) -> tuple[int, dict[int, str]]:
    """The backend's current revision and revision → tag of every ReplicaSet it retains (from the apiserver)."""
    ns = homelab.scenario.namespace
    dep = homelab.cluster.api("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{BACKEND}")
    sets = homelab.cluster.api("GET", f"/apis/apps/v1/namespaces/{ns}/replicasets?labelSelector=app%3D{BACKEND}")
    images: dict[int, str] = {}
    for rs in sets["items"]:
        image = rs["spec"]["template"]["spec"]["containers"][0]["image"]
        images[int(rs["metadata"]["annotations"][REVISION])] = image.rpartition(":")[2]
    return int(dep["metadata"]["annotations"][REVISION]), images


def _uses(doc: dict[str, Any]) -> dict[str, list[str]]:
    repo = next(r for r in doc["repositories"] if r["name"] == "family-assistant")
    return {t["tag"]: t["used_by"] for t in repo["tags"]}


def test_homelab_rollback_targets_are_listed_and_survive_prune_apply(homelab: Homelab, tmp_path: Path) -> None:
    current, retained = _revisions(homelab)
    assert current == 62 and sorted(retained) == list(range(51, 63))  # revisionHistoryLimit 10 + 61 + 62
    # 61 still runs (the broken 62 never became available); then min(3, revisionHistoryLimit 10) scaled to zero
    targets = {rev: retained[rev] for rev in (61, 60, 59, 58)}
    live = ["--registry", homelab.registry_spec, "--kubeconfig", str(homelab.cluster.kubeconfig)]

    listing = ks_registry("tags", *live, "-o", "json")
    assert listing.returncode == 0, listing.stderr
    doc = json.loads(listing.stdout)
    uses = _uses(doc)
    for rev, tag in targets.items():
        assert f"rollback target of homelab/{BACKEND} rev {rev}" in uses[tag], (rev, tag, uses[tag])
    beyond = {tag for rev, tag in retained.items() if rev <= 57} - set(targets.values())
    assert beyond and not any("rollback target" in w for tag in beyond for w in uses[tag])
    assert doc["usage"]["keep_rollback_targets"] == 3
    assert sorted(t["revision"] for t in doc["usage"]["rollback_targets"] if t["deployment"] == BACKEND) == [
        58, 59, 60, 61]
    text = ks_registry("tags", *live, "--repository", "family-assistant")
    assert text.returncode == 0, text.stderr
    assert f"rollback target of homelab/{BACKEND} rev 60" in text.stdout
    assert "Rollback targets: the images of the newest 3 old revisions" in text.stdout

    cfg = tmp_path / "kubeshape.yaml"
    cfg.write_text("retention:\n  - keep_last: 1\n")
    args = ["prune", *live, "--config", str(cfg), "--repository", "family-assistant"]
    wide = json.loads(ks_registry(*args, "--keep-rollback-targets", "10", "-o", "json").stdout)
    wide_drop = set(wide["repositories"][0]["drop"])
    assert not wide_drop & {tag for rev, tag in retained.items() if rev >= 51}  # revisions 51-60 (and 61) stay

    before = registry_tags(homelab.registry, "family-assistant")
    applied = ks_registry(*args, "--apply", "-o", "json")
    assert applied.returncode == 0, applied.stderr
    result = json.loads(applied.stdout)
    assert result["usage"]["gaps"] == [] and result["result"]["error"] is None
    dropped = set(result["repositories"][0]["drop"])
    assert dropped > wide_drop and dropped & beyond  # the default keeps fewer revisions than 10 ...
    after = registry_tags(homelab.registry, "family-assistant")
    for rev, tag in targets.items():  # ... but never an image of a retained rollback target
        assert after.get(tag) == before[tag], (rev, tag)
        with RegistryClient(homelab.registry.host, insecure=True) as client:
            assert client.head_manifest("family-assistant", f"{before[tag]}").digest == before[tag]
    assert set(after) == set(before) - dropped
    decisions = {t["tag"]: t for t in result["repositories"][0]["tags"]}
    assert decisions[targets[60]]["code"] == "rollback-target"
    assert decisions[targets[60]]["reason"] == "rollback target of a Deployment"


def test_keep_rollback_targets_must_not_be_negative() -> None:
    proc = ks_registry("prune", "--registry", "127.0.0.1:9", "--keep-rollback-targets", "-1")
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--keep-rollback-targets -1" in lines[0], proc.stderr
