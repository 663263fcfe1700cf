"""``registry prune``: the pure retention decision (examples and a property test), usage and last known good,
the apply loop against a REAL registry (moved, gone, interrupted, failing), and the CLI acceptance run on the
homelab's 45 family-assistant tags."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeshape.actions.prune import apply_plan, build_plan
from kubeshape.actions.registries import Target, read_registries
from kubeshape.actions.retention import Decision, plan_prune
from kubeshape.actions.usage import Usage, compute_usage, last_known_good
from kubeshape.config import Config, Retention, parse_config
from kubeshape.inventory import Inventory
from kubeshape.registry.client import RegistryClient
from kubeshape.registry.image import build_image, push_image
from kubeshape.registry.models import OCI_MANIFEST
from testbed.registry import Registry, start_registry
from tests.helpers import cluster as cluster_source

HOMELAB = Path(__file__).resolve().parents[1] / "testbed" / "scenarios" / "homelab.yaml"
ALIAS = "100.81.76.55:30500"  # the registry address the homelab's images use
NOW = datetime(2025, 11, 17, 10, 0, tzinfo=UTC)


# -- helpers shared with test_registry_cmd -------------------------------------------------------------------


def homelab_repositories() -> dict[str, dict[str, Any]]:
    """The registry section of the homelab scenario: repository → {tags, same_digest}."""
    header = next(d for d in yaml.safe_load_all(HOMELAB.read_text()) if d)
    return dict(header["registry"]["repositories"])


@dataclass
class Seeded:
    registry: Registry
    digests: dict[str, dict[str, str]]  # repository → tag → digest
    created: dict[str, dict[str, datetime]]

    @property
    def spec(self) -> str:
        return f"{self.registry.host}={ALIAS}"


def seed(registry: Registry, now: datetime, extra: dict[str, list[str]] | None = None) -> Seeded:
    """Push one tiny real image per homelab tag: created 45 days ago + 20 h per position in the list (twins in
    ``same_digest`` share their twin's manifest); ``extra`` adds tags after them, newest last."""
    digests: dict[str, dict[str, str]] = {}
    created: dict[str, dict[str, datetime]] = {}
    with RegistryClient(registry.host, insecure=True) as client:
        for repo, spec in homelab_repositories().items():
            base = build_image({"app/requirements.txt": f"{repo}\n".encode()}, created=now - timedelta(days=60))
            twins: dict[str, str] = dict(spec.get("same_digest") or {})
            own = [t for t in spec["tags"] if t not in twins] + list((extra or {}).get(repo, []))
            digests[repo], created[repo] = {}, {}
            for i, tag in enumerate(own):
                when = now - timedelta(days=45) + timedelta(hours=20 * i)
                image = build_image({"app/version.txt": f"{repo} {tag}\n".encode()}, created=when, base=base)
                digests[repo][tag], created[repo][tag] = push_image(client, repo, tag, image), when
            for tag, twin in twins.items():
                m = client.get_manifest(repo, twin)
                digests[repo][tag] = client.put_manifest(repo, tag, m.body, m.media_type)
                created[repo][tag] = created[repo][twin]
    return Seeded(registry, digests, created)


def registry_tags(registry: Registry, repo: str) -> dict[str, str]:
    """tag → digest, straight from the registry."""
    with RegistryClient(registry.host, insecure=True) as client:
        return {t: r.digest for t, r in client.resolve_tags(repo).items()}


def ks_registry(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``kubeshape registry ...`` in a real process."""
    return subprocess.run([sys.executable, "-m", "kubeshape", "registry", *args],
                          capture_output=True, text=True, timeout=300, check=False, cwd=cwd)


def workload(kind: str, name: str, image: str, **extra: Any) -> dict[str, Any]:
    """A live object of ``kind`` with one container running ``image``."""
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": image}]}
    obj: dict[str, Any] = {"apiVersion": "v1" if kind == "Pod" else "apps/v1", "kind": kind,
                           "metadata": {"name": name, "namespace": "homelab", "uid": f"uid-{kind}-{name}"}}
    obj["spec"] = spec if kind == "Pod" else {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                                              "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}
    for key, value in extra.items():
        obj.setdefault(key, {}).update(value)
    return obj


def replicaset(dep: dict[str, Any], revision: int, image: str, replicas: int, available: int) -> dict[str, Any]:
    name = dep["metadata"]["name"]
    return workload("ReplicaSet", f"{name}-r{revision}", image, metadata={
        "annotations": {"deployment.kubernetes.io/revision": str(revision)},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                             "uid": dep["metadata"]["uid"], "controller": True}],
    }, spec={"replicas": replicas}, status={"replicas": replicas, "availableReplicas": available,
                                            "readyReplicas": available})


def write_bundle(root: Path, objects: list[dict[str, Any]], collected: datetime = NOW) -> Path:
    """A minimal bundle directory (docs/bundle-format.md) listing every kind prune needs."""
    files = {"Pod": "pods.json", "Deployment": "deployments.apps.json", "ReplicaSet": "replicasets.apps.json",
             "StatefulSet": "statefulsets.apps.json", "DaemonSet": "daemonsets.apps.json",
             "Job": "jobs.batch.json", "CronJob": "cronjobs.batch.json", "Node": "nodes.json"}
    (root / "resources").mkdir(parents=True)
    for kind, file in files.items():
        items = [o for o in objects if o["kind"] == kind]
        (root / "resources" / file).write_bytes(orjson.dumps({"kind": f"{kind}List", "items": items}))
    (root / "kubeshape-bundle.json").write_bytes(orjson.dumps({
        "apiVersion": "kubeshape.io/v1", "kind": "Bundle", "formatVersion": 1,
        "collectedAt": collected.strftime("%Y-%m-%dT%H:%M:%SZ"), "cluster": {"name": "homelab"}}))
    return root


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[Registry]:
    """A real registry of its own (deletes enabled): prune tests delete tags."""
    reg = start_registry(tmp_path / "registry")
    yield reg
    reg.stop()


# -- plan_prune: examples -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class T:
    tag: str
    digest: str | None
    created: datetime | None


def d(n: int) -> str:
    return f"sha256:{n:064x}"


def by_tag(decisions: list[Decision]) -> dict[str, Decision]:
    return {x.tag: x for x in decisions}


def test_keep_last_counts_images_newest_first_and_every_tag_of_a_kept_image_stays() -> None:
    tags = [T(f"b{i}", d(i), NOW - timedelta(days=10 - i)) for i in range(6)]
    tags.append(T("alias", d(5), NOW - timedelta(days=5)))
    out = plan_prune(tags, Retention(keep_last=2), set(), set(), NOW)
    assert [x.tag for x in out][:3] == ["b5", "alias", "b4"]  # newest first; a tie keeps the registry's order
    kept = {x.tag for x in out if x.keep}
    assert kept == {"b5", "alias", "b4"}
    assert by_tag(out)["b4"].reason == "one of the newest 2 images (#2)"
    assert by_tag(out)["b0"].code == "expired"


def test_in_use_by_tag_digest_or_twin_and_last_known_good_are_never_dropped() -> None:
    old = NOW - timedelta(days=300)
    tags = [T("used", d(1), old), T("twin", d(1), old), T("pinned", d(2), old), T("good", d(3), old),
            T("good-twin", d(3), old), T("gone", d(4), old)]
    out = by_tag(plan_prune(tags, Retention(keep_last=0), {"used"}, {d(2)}, NOW, last_known_good=["good"]))
    assert (out["used"].code, out["twin"].reason) == ("in-use", "same image as in-use tag used")
    assert out["pinned"].reason == "in use by digest"
    assert out["good"].code == out["good-twin"].code == "last-known-good"
    assert not out["gone"].keep


def test_keep_tags_keep_days_unknown_age_and_interrupted() -> None:
    tags = [T("v1.2.3", d(1), NOW - timedelta(days=400)), T("fresh", d(2), NOW - timedelta(days=2)),
            T("ko", d(3), datetime(1970, 1, 1, tzinfo=UTC)), T("nodate", d(4), None), T("nodigest", None, None),
            T("leftover", d(5), None), T("old", d(6), NOW - timedelta(days=40))]
    policy = Retention(keep_last=0, keep_tags=[r"^v\d+\.\d+\.\d+$"], keep_days=7)
    out = by_tag(plan_prune(tags, policy, set(), set(), NOW, interrupted=["leftover"]))
    assert out["v1.2.3"].code == "keep-tags"
    assert out["fresh"].code == "keep-days"
    assert out["ko"].code == out["nodate"].code == "age-unknown"  # a 1970 stamp says nothing about age
    assert out["nodigest"].code == "digest-unknown"
    assert (out["leftover"].keep, out["leftover"].code) == (False, "interrupted")
    assert (out["old"].keep, out["old"].reason) == (False, "not used, not among the newest 0 images, older than 7 days")


# -- plan_prune: property tests ------------------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NAMES = st.from_regex(r"[a-z][a-z0-9.-]{0,5}", fullmatch=True)
PATTERNS = st.sampled_from([r"^v\d", r"fixed$", r"^a", r"\.", r"^zz", r"^main-"])
HOURS = st.integers(0, 24 * 400)
# kubeshape's own tags: builds carry their commit time, releases are ordered by SemVer precedence
BUILD_NAMES = st.builds(lambda sha, h: f"main-{sha:07x}-{int((NOW - timedelta(hours=h)).timestamp()):010d}",
                        st.integers(0, 0xFFFFFFF), HOURS)
RELEASE_NAMES = st.builds(lambda a, b, c: f"{a}.{b}.{c}", st.integers(0, 3), st.integers(0, 3), st.integers(0, 3))
RELEASE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
BUILD = re.compile(r"main-[0-9a-f]{7}-(\d{10})")


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[T], Retention, set[str], set[str], set[str], set[str], set[str]]:
    size = draw(st.integers(0, 30))
    pool = st.one_of(NAMES, NAMES, NAMES, BUILD_NAMES, RELEASE_NAMES)
    names = draw(st.lists(pool, min_size=size, max_size=size, unique=True))
    images = [d(i) for i in range(draw(st.integers(1, max(1, len(names)))))]
    known = HOURS.map(lambda h: NOW - timedelta(hours=h))
    unknown = st.sampled_from([None, EPOCH])
    ages = st.integers(0, 9).flatmap(lambda n: known if n else unknown)  # mostly a real time
    created = {dg: draw(ages) for dg in images}  # one created time per image, as a registry has it
    tags = []
    for name in names:
        dg = images[draw(st.integers(0, len(images) - 1))] if draw(st.integers(0, 9)) else None  # mostly resolved
        tags.append(T(name, dg, created[dg] if dg else None))
    others = st.sampled_from([*names, "not-in-repo"]) if names else st.just("not-in-repo")
    in_use = draw(st.sets(others, max_size=4))
    in_use_digests = draw(st.sets(st.sampled_from([*images, d(10_000)]), max_size=2))
    lkg = draw(st.sets(st.one_of(others, st.sampled_from(images)), max_size=2))
    rollback = draw(st.sets(st.one_of(others, st.sampled_from(images)), max_size=3))
    interrupted = draw(st.sets(st.sampled_from(names), max_size=2)) if names else set()
    policy = Retention(keep_last=draw(st.integers(0, 6)), keep_tags=draw(st.lists(PATTERNS, max_size=2)),
                       keep_days=draw(st.sampled_from([0, 0, 7, 30, 90])))
    return tags, policy, in_use, in_use_digests, lkg, rollback, interrupted


def _meaningful(when: datetime | None) -> datetime | None:
    return when if when is not None and when.year >= 1980 else None


def _order_times(tags: list[T]) -> dict[str, datetime]:
    """Oracle: digest → ordering time. A build tag's commit time beats created."""
    build: dict[str, datetime] = {}
    plain: dict[str, datetime] = {}
    for t in tags:
        if not t.digest:
            continue
        if (m := BUILD.fullmatch(t.tag)) and (when := _meaningful(datetime.fromtimestamp(int(m.group(1)), UTC))):
            build[t.digest] = max(when, build.get(t.digest, when))
        elif (when := _meaningful(t.created)) is not None:
            plain[t.digest] = max(when, plain.get(t.digest, when))
    return {**plain, **build}


def _newest(tags: list[T], n: int, skip: set[str]) -> set[str]:
    """Oracle: digests of the ``n`` newest images with a meaningful time (ties: the highest release, then the
    first listed)."""
    kept = [t for t in tags if t.tag not in skip]
    when = _order_times(kept)
    first = {t.digest: i for i, t in reversed(list(enumerate(kept))) if t.digest}
    release = {t.digest: max(tuple(int(x) for x in m.groups()), (-1,)) for t in kept
               if t.digest and (m := RELEASE.fullmatch(t.tag))}
    for t in kept:
        if t.digest and (m := RELEASE.fullmatch(t.tag)):
            release[t.digest] = max(release[t.digest], tuple(int(x) for x in m.groups()))
    return set(sorted(when, key=lambda x: (-when[x].timestamp(), tuple(-v for v in release.get(x, (-1,))),
                                           first[x]))[:n])


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_plan_prune_properties(
        case: tuple[list[T], Retention, set[str], set[str], set[str], set[str], set[str]]) -> None:
    tags, policy, in_use, in_use_digests, lkg, rollback, interrupted = case
    out = plan_prune(tags, policy, in_use, in_use_digests, NOW, last_known_good=lkg, rollback_targets=rollback,
                     interrupted=interrupted)
    assert sorted(x.tag for x in out) == sorted(t.tag for t in tags)  # one decision per tag
    protected = in_use_digests | {x for x in lkg | rollback if ":" in x} | {
        t.digest for t in tags if t.digest and (t.tag in in_use or t.tag in lkg or t.tag in rollback)}
    newest = _newest(tags, policy.keep_last, interrupted)
    times = _order_times([t for t in tags if t.tag not in interrupted])
    for t, x in zip(sorted(tags, key=lambda t: t.tag), sorted(out, key=lambda x: x.tag), strict=True):
        if x.keep:
            continue
        # never an in-use tag, a tag on an in-use digest (twins included), a last known good or a rollback target
        assert t.tag not in in_use | lkg | rollback and t.digest not in protected
        assert t.digest not in newest or t.tag in interrupted  # the keep_last newest images all stay
        if x.code == "expired":
            assert t.digest and t.digest in times
            assert not (BUILD.fullmatch(t.tag) and any(y.keep and y.digest == t.digest for y in out))
            assert not any(re.search(p, t.tag) for p in policy.keep_tags)
            youngest = max(w for w in (times[t.digest], _meaningful(t.created)) if w)
            assert not policy.keep_days or NOW - youngest >= timedelta(days=policy.keep_days)
        else:
            assert x.code == "interrupted" and t.tag in interrupted
    # newest first: the decisions follow the ordering times
    every = _order_times(tags)
    ranked = [every[x.digest] for x in out if x.digest in every]
    assert ranked == sorted(ranked, reverse=True)
    # idempotent: planning again over what stays drops nothing
    kept = [t for t in tags if by_tag(out)[t.tag].keep]
    again = plan_prune(kept, policy, in_use, in_use_digests, NOW, last_known_good=lkg, rollback_targets=rollback,
                       interrupted=interrupted)
    assert all(x.keep for x in again)


REVISION = "deployment.kubernetes.io/revision"


@dataclass(frozen=True)
class Revision:
    deployment: str
    number: int
    image: str  # by tag, by digest, or unqualified
    ran: str | None  # the digest its pods ran (imageID)
    cause: str | None  # a digest its change-cause names
    replicas: int  # an old revision still running during a rollout has some


@dataclass(frozen=True)
class History:
    tags: list[T]
    revisions: list[Revision]
    current: dict[str, int]
    limits: dict[str, int | None]
    keep: int
    keep_last: int


@st.composite
def histories(draw: st.DrawFn) -> History:
    """Deployments with a ReplicaSet history whose images are tags or digests of one repository."""
    names = draw(st.lists(NAMES, min_size=1, max_size=12, unique=True))
    images = [d(i) for i in range(1, draw(st.integers(1, len(names))) + 1)]
    known = HOURS.map(lambda h: NOW - timedelta(hours=h))
    created = {dg: draw(st.one_of(known, known, st.just(None))) for dg in images}
    tags = [T(n, dg, created[dg]) for n in names for dg in [images[draw(st.integers(0, len(images) - 1))]]]
    digests = st.sampled_from([*images, d(10_001)])
    image = st.one_of(st.sampled_from([*names, "gone"]).map(lambda n: f"{ALIAS}/app:{n}"),
                      digests.map(lambda x: f"{ALIAS}/app@{x}"), st.sampled_from(names).map(lambda n: f"app:{n}"))
    revisions: list[Revision] = []
    current: dict[str, int] = {}
    limits: dict[str, int | None] = {}
    for dep in ("api", "worker")[:draw(st.integers(1, 2))]:
        current[dep] = draw(st.integers(1, 12))
        limits[dep] = draw(st.one_of(st.none(), st.integers(0, 6)))
        retained = draw(st.sets(st.integers(1, current[dep] - 1), max_size=8)) if current[dep] > 1 else set()
        for n in sorted(retained | {current[dep]}):
            replicas = 1 if n == current[dep] else draw(st.sampled_from([0, 0, 0, 1]))
            revisions.append(Revision(dep, n, draw(image), draw(st.one_of(st.none(), digests)),
                                      draw(st.one_of(st.none(), digests)), replicas))
    return History(tags, revisions, current, limits, draw(st.integers(0, 5)), draw(st.integers(0, 3)))


def history_objects(h: History) -> list[dict[str, Any]]:
    """The live Deployments, their ReplicaSets (the current one runs) and the pods that record a digest."""
    objects: list[dict[str, Any]] = []
    deps: dict[str, dict[str, Any]] = {}
    for name, rev in h.current.items():
        spec: dict[str, Any] = {} if h.limits[name] is None else {"revisionHistoryLimit": h.limits[name]}
        deps[name] = workload("Deployment", name, "unused:x", spec=spec,
                              metadata={"annotations": {REVISION: str(rev)}})
        objects.append(deps[name])
    for r in h.revisions:
        rs = replicaset(deps[r.deployment], r.number, r.image, r.replicas, r.replicas)
        if r.cause:
            rs["metadata"]["annotations"]["kubernetes.io/change-cause"] = f"release app x ({r.cause}) from abc1234"
        objects.append(rs)
        if r.ran:
            objects.append(workload("Pod", f"{rs['metadata']['name']}-pod", r.image, metadata={"ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs["metadata"]["name"],
                 "uid": rs["metadata"]["uid"], "controller": True}]}, status={"containerStatuses": [
                    {"name": "app", "imageID": f"{ALIAS}/app@{r.ran}"}]}))
    return objects


def expected_targets(h: History) -> list[Revision]:
    """Oracle: per Deployment, the old revisions still running and the newest min(keep, revisionHistoryLimit)
    scaled to zero; never the current one."""
    out = []
    for dep, current in h.current.items():
        old = sorted((r for r in h.revisions if r.deployment == dep and r.number != current),
                     key=lambda r: r.number, reverse=True)
        limit = h.limits[dep]
        out += [r for r in old if r.replicas]
        out += [r for r in old if not r.replicas][:h.keep if limit is None else min(h.keep, limit)]
    return out


@settings(max_examples=200, deadline=None)
@given(histories())
def test_no_image_of_a_retained_rollback_target_is_ever_planned_for_deletion(h: History) -> None:
    from kubeshape.actions.registries import RegistryState
    from kubeshape.actions.usage import USAGE_KINDS
    from kubeshape.inventory import RegistryRepo, RegistrySnapshot, TagInfo

    repo = RegistryRepo(ALIAS, "app", {t.tag: TagInfo(t.tag, t.digest, 1, t.created) for t in h.tags})
    snap = RegistrySnapshot({(ALIAS, "app"): repo}, NOW)
    inv = Inventory(cluster=cluster_source(history_objects(h), listed=list(USAGE_KINDS)), registry=snap, now=NOW)
    cfg = parse_config({"retention": [{"repository": "*", "keep_last": h.keep_last}]}, "test")
    usage = compute_usage(inv, cfg, keep_rollback=h.keep)
    [plan] = build_plan(RegistryState(snap, {}, [Target(ALIAS, ALIAS)]), usage, cfg, NOW).repos
    targets = expected_targets(h)
    names: set[str] = set()
    pinned: set[str] = set()
    for r in targets:
        ref = r.image.rpartition("@")[2] if "@" in r.image else r.image.rpartition(":")[2]
        (pinned if "@" in r.image else names).add(ref)
        pinned |= {x for x in (r.ran, r.cause) if x}
    named = {t.tag for t in h.tags if t.tag in names or t.digest in pinned}
    pinned |= {t.digest for t in h.tags if t.tag in names and t.digest}  # and every tag on the same image
    for x in plan.drops:
        assert x.tag not in names and x.digest not in pinned, (x, targets)
    labels = {w for where in plan.used_by.values() for w in where if w.startswith("rollback target of")}
    assert labels <= {f"rollback target of homelab/{r.deployment} rev {r.number}" for r in targets}
    for tag in named:  # a tag a target names by tag or digest says whose rollback target it is
        assert any(w.startswith("rollback target of") for w in plan.used_by[tag]), (tag, plan.used_by)


# -- usage and last known good -------------------------------------------------------------------------------


def test_last_known_good_is_the_newest_fully_available_revision() -> None:
    dep = workload("Deployment", "api", f"{ALIAS}/app:broken")
    sets = [replicaset(dep, 3, f"{ALIAS}/app:broken", 1, 0),  # rolling out, not available
            replicaset(dep, 2, f"{ALIAS}/app:good", 1, 1),  # still serving: fully available at its size
            replicaset(dep, 1, f"{ALIAS}/app:older", 0, 0)]
    [good] = last_known_good(Inventory(cluster=cluster_source([dep, *sets])))
    assert (good.workload, good.revision, good.images, good.proven) == (
        "homelab/Deployment/api", 2, (f"{ALIAS}/app:good",), True)


def test_without_an_available_revision_every_older_revision_is_kept() -> None:
    dep = workload("Deployment", "api", f"{ALIAS}/app:broken", spec={"strategy": {"type": "Recreate"}})
    sets = [replicaset(dep, 3, f"{ALIAS}/app:broken", 1, 0), replicaset(dep, 2, f"{ALIAS}/app:b", 0, 0),
            replicaset(dep, 1, f"{ALIAS}/app:a", 0, 0)]
    goods = last_known_good(Inventory(cluster=cluster_source([dep, *sets])))
    assert [(g.revision, g.proven) for g in goods] == [(2, False), (1, False)]


def test_usage_by_tag_digest_unqualified_name_and_gaps() -> None:
    from kubeshape.sources.bundle import parse_registry_snapshot

    snap = parse_registry_snapshot({"registries": [{"host": ALIAS, "repositories": [{"name": "app", "tags": [
        {"tag": "a", "digest": d(1)}, {"tag": "b", "digest": d(2)}, {"tag": "c", "digest": d(3)}]}]}]}, "t")
    objs = [workload("Pod", "p1", f"{ALIAS}/app:a"), workload("Pod", "p2", f"{ALIAS}/app@{d(2)}"),
            workload("Pod", "p3", "app:c")]
    usage = compute_usage(Inventory(cluster=cluster_source(objs), registry=snap), Config())
    repo = usage.of(ALIAS, "app")
    assert set(repo.tags["a"]) == {"homelab/Pod/p1 (live)"}
    assert set(repo.digests[d(2)]) == {"homelab/Pod/p2 (live)"}
    assert set(repo.tags["c"]) == {"homelab/Pod/p3 (live) (unqualified name)"}  # conservative
    assert usage.checked == ["cluster test"]
    assert any("ReplicaSet objects were not collected" in g for g in usage.gaps) and not usage.complete


# -- the apply loop against a real registry ------------------------------------------------------------------


def _plan(reg: Registry, repo: str, policy: dict[str, Any], client: RegistryClient | None = None) -> Any:
    cfg = parse_config({"retention": [{"repository": "*", **policy}]}, "test")
    state = read_registries([Target(reg.host, ALIAS)], insecure=True, repositories=[repo])
    if client is not None:
        state.clients[ALIAS].close()
        state.clients[ALIAS] = client
    usage = Usage(checked=["test"])
    return build_plan(state, usage, cfg, datetime.now(UTC)), state


def _push(client: RegistryClient, repo: str, tags: list[str], now: datetime) -> dict[str, str]:
    return {t: push_image(client, repo, t, build_image({"f": t.encode()}, created=now - timedelta(days=10 - i)))
            for i, t in enumerate(tags)}


def test_apply_skips_moved_counts_gone_and_keeps_new_siblings(fresh_registry: Registry) -> None:
    now = datetime.now(UTC)
    with RegistryClient(fresh_registry.host, insecure=True) as client:
        digests = _push(client, "app", ["a", "b", "c", "d", "e"], now)
        plan, state = _plan(fresh_registry, "app", {"keep_last": 1})
        assert [x.tag for x in plan.repos[0].drops] == ["d", "c", "b", "a"]
        moved = push_image(client, "app", "a", build_image({"f": b"moved"}, created=now))  # pushed since the plan
        client.delete_tag("app", "b")  # deleted since (another prune)
        m = client.get_manifest("app", "c")
        client.put_manifest("app", "c-copy", m.body, m.media_type)  # a new tag on an image the plan drops
        result = apply_plan(plan, state.clients)
        state.close()
    assert [(o.tag, o.status) for o in result.outcomes] == [("a", "moved"), ("b", "gone"), ("c", "deleted"),
                                                             ("d", "deleted")]
    assert result.error is None
    left = registry_tags(fresh_registry, "app")
    assert left == {"a": moved, "c-copy": digests["c"], "e": digests["e"]}


def test_an_interrupted_delete_is_resumed(fresh_registry: Registry) -> None:
    """delete_tag pushes a throw-away manifest to the tag, then deletes it: stop in between, run again."""
    now = datetime.now(UTC)
    with RegistryClient(fresh_registry.host, insecure=True) as client:
        digests = _push(client, "app", ["old", "new"], now)
        m = client.get_manifest("app", "old")
        client.put_manifest("app", "old-twin", m.body, m.media_type)
        empty = client.push_blob("app", b"{}")
        placeholder = orjson.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
            "annotations": {"io.kubeshape.delete-tag": "old", "io.kubeshape.nonce": "x"}})
        client.put_manifest("app", "old", placeholder, OCI_MANIFEST)  # ... and then the process died
    plan, state = _plan(fresh_registry, "app", {"keep_last": 5})
    [drop] = plan.repos[0].drops
    assert (drop.tag, drop.code) == ("old", "interrupted")
    result = apply_plan(plan, state.clients)
    state.close()
    assert [o.status for o in result.outcomes] == ["deleted"]
    assert registry_tags(fresh_registry, "app") == {"new": digests["new"], "old-twin": digests["old"]}


class FailDeletes(httpx.BaseTransport):
    """The real registry, except that every DELETE after the first ``allowed`` answers 500."""

    def __init__(self, allowed: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.allowed = allowed

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            if self.allowed <= 0:
                return httpx.Response(500, json={"errors": [{"code": "UNKNOWN", "message": "disk on fire"}]})
            self.allowed -= 1
        return self.inner.handle_request(request)


def test_apply_stops_at_the_first_failure_and_loses_nothing(fresh_registry: Registry) -> None:
    now = datetime.now(UTC)
    with RegistryClient(fresh_registry.host, insecure=True) as client:
        digests = _push(client, "app", ["a", "b", "c", "d", "e"], now)
    failing = RegistryClient(fresh_registry.host, insecure=True, transport=FailDeletes(2), backoff=0.01)
    plan, state = _plan(fresh_registry, "app", {"keep_last": 1}, client=failing)
    result = apply_plan(plan, state.clients)
    state.close()
    assert [(o.tag, o.status) for o in result.outcomes] == [("a", "deleted"), ("b", "deleted")]
    assert result.failed_tag == f"{ALIAS}/app:c" and "HTTP 500" in str(result.error)
    assert registry_tags(fresh_registry, "app") == {t: digests[t] for t in ("c", "d", "e")}


# -- acceptance: the homelab's 45 tags, CLI in a real process -------------------------------------------------

POLICY = """\
retention:
  - repository: "*/family-assistant"
    keep_last: 5
    keep_tags: ['^v\\d']
"""


def homelab_usage(tmp_path: Path, seeded: Seeded, extra: list[dict[str, Any]] | None = None) -> tuple[Path, Path]:
    """A repo (uses fixed and fixed-final by tag, me-fixed pinned by digest) and a bundle: family-assistant
    is a Recreate Deployment whose current revision (hotfix) never became available, so revisions working and
    final are kept as possible last known good; whisper:v1 runs and is fully available."""
    fa = seeded.digests["family-assistant"]
    repo = tmp_path / "repo"
    (repo / "apps").mkdir(parents=True)
    (repo / "kubeshape.yaml").write_text(POLICY)
    (repo / "apps" / "backend.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: family-assistant-backend, namespace: homelab}\n"
        "spec:\n  selector: {matchLabels: {app: fa}}\n  template:\n    metadata: {labels: {app: fa}}\n"
        "    spec:\n      containers:\n"
        f"      - {{name: app, image: {ALIAS}/family-assistant:fixed}}\n"
        f"      - {{name: worker, image: {ALIAS}/family-assistant:fixed-final}}\n"
        f"      - {{name: sidecar, image: '{ALIAS}/family-assistant@{fa['me-fixed']}'}}\n")
    dep = workload("Deployment", "family-assistant", f"{ALIAS}/family-assistant:hotfix",
                   spec={"strategy": {"type": "Recreate"}})
    whisper = workload("Deployment", "whisper", f"{ALIAS}/whisper:v1")
    pod = workload("Pod", "whisper-1", f"{ALIAS}/whisper:v1", status={"containerStatuses": [
        {"name": "app", "ready": True, "imageID": f"{ALIAS}/whisper@{seeded.digests['whisper']['v1']}"}]})
    objects = [dep, replicaset(dep, 3, f"{ALIAS}/family-assistant:hotfix", 1, 0),
               replicaset(dep, 2, f"{ALIAS}/family-assistant:working", 0, 0),
               replicaset(dep, 1, f"{ALIAS}/family-assistant:final", 0, 0),
               whisper, replicaset(whisper, 1, f"{ALIAS}/whisper:v1", 1, 1), pod, *(extra or [])]
    return repo, write_bundle(tmp_path / "bundle", objects)


IN_USE = {"fixed", "fixed-final", "latest", "me-fixed", "hotfix"}
LAST_GOOD = {"working", "final"}
NEWEST_5 = {"v2-fixed", "new-fixed", "new", "redis-fixed", "api-fixed"}


def test_homelab_prune_dry_run_then_apply(fresh_registry: Registry, tmp_path: Path) -> None:
    seeded = seed(fresh_registry, datetime.now(UTC))
    before = registry_tags(fresh_registry, "family-assistant")
    assert len(before) == 45 and before["latest"] == before["fixed-final"]
    repo, bundle = homelab_usage(tmp_path, seeded)
    args = ["prune", "--registry", seeded.spec, "--repo", str(repo), "--bundle", str(bundle)]
    expected_drop = set(before) - IN_USE - LAST_GOOD - NEWEST_5

    dry = ks_registry(*args, "-o", "json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    fa = next(r for r in plan["repositories"] if r["name"] == "family-assistant")
    assert set(fa["drop"]) == expected_drop and len(expected_drop) == 33
    reasons = {t["tag"]: t for t in fa["tags"]}
    assert {t for t in IN_USE if reasons[t]["code"].startswith("in-use")} == IN_USE
    assert reasons["latest"]["reason"] == "same image as in-use tag fixed-final"
    assert reasons["working"]["code"] == reasons["final"]["code"] == "last-known-good"
    assert any("possible last known good of homelab/Deployment/family-assistant" in w
               for w in reasons["working"]["used_by"])
    assert fa["reclaimable_bytes"] > 0 and plan["garbage_collect"].startswith("registry garbage-collect")
    whisper = next(r for r in plan["repositories"] if r["name"] == "whisper")
    assert whisper["drop"] == [] and {t["code"] for t in whisper["tags"]} >= {"in-use"}
    assert registry_tags(fresh_registry, "family-assistant") == before  # a dry run deletes nothing

    text = ks_registry(*args)
    assert text.returncode == 0, text.stderr
    goes = text.stdout.split("Goes (33):")[1].split("Stays (12):")[0]
    listed = {line.split()[0] for line in goes.splitlines()[2:] if line.strip()}
    assert listed == expected_drop
    assert text.stdout.rstrip().splitlines()[-1].startswith("then restart it")
    assert "registry garbage-collect --delete-untagged /etc/docker/registry/config.yml" in text.stdout

    applied = ks_registry(*args, "--apply", "-o", "json")
    assert applied.returncode == 0, applied.stderr
    result = json.loads(applied.stdout)["result"]
    assert result["deleted"] == 33 and result["error"] is None
    after = registry_tags(fresh_registry, "family-assistant")
    assert after == {t: before[t] for t in set(before) - expected_drop}  # every kept tag: same digest
    with RegistryClient(fresh_registry.host, insecure=True) as client:
        for tag in after:
            assert client.head_manifest("family-assistant", tag).digest == before[tag]

    again = ks_registry(*args, "--apply")
    assert again.returncode == 0, again.stderr
    assert "0 of 15 tags in 2 repositories go" in again.stdout and "Nothing to prune." in again.stdout
