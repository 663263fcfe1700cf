"""Which registry tags the cluster and the repo use, each Deployment's last known good image and its
rollback targets (the images of the old revisions it retains).

Tag and digest references come from the registry rules' index (``kubeshape.usage.registry_uses``: repo
workloads, live workloads, ReplicaSets with replicas, pods and the digests they run), so ``registry tags``,
``registry prune`` and KS403 agree. On top of it, prune is conservative: an unqualified reference
(``family-assistant:x``) also counts for every snapshotted repository with that name.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from kubeshape.config import Config
from kubeshape.imageref import ImageRef, parse_or_none
from kubeshape.inventory import Inventory, K8sObject, RegistrySnapshot, TagInfo, containers
from kubeshape.usage import image_uses, registry_uses

REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
_DIGEST = re.compile(r"\bsha256:[0-9a-f]{64}\b")
# Kinds whose images decide usage: a cluster source that could not list one of them hides references.
USAGE_KINDS = ("Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob")


@dataclass(frozen=True, slots=True)
class LastGood:
    """A Deployment revision whose image must survive a prune.

    ``proven``: the revision's ReplicaSet is fully available now. Otherwise no revision is, and every
    retained older revision is kept because the good one cannot be told apart.
    """

    workload: str
    revision: int
    images: tuple[str, ...]
    proven: bool

    @property
    def label(self) -> str:
        if self.proven:
            return f"last known good of {self.workload} (revision {self.revision})"
        return f"possible last known good of {self.workload} (revision {self.revision}; none is available now)"


@dataclass(frozen=True, slots=True)
class RollbackTarget:
    """A retained old revision of a Deployment: ``kubectl rollout undo`` brings its images back.

    ``digests``: what its pods ran (``imageID``) or its change-cause names, where known.
    """

    namespace: str
    deployment: str
    revision: int
    images: tuple[str, ...]
    digests: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"rollback target of {self.namespace}/{self.deployment} rev {self.revision}"

    def as_dict(self) -> dict[str, object]:
        return {"namespace": self.namespace, "deployment": self.deployment, "revision": self.revision,
                "images": list(self.images), "digests": list(self.digests)}


@dataclass(slots=True)
class RepoUsage:
    """References to one repository: by tag, by digest, as a last known good and as a rollback target (tag
    or digest)."""

    tags: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    digests: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    last_good: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    rollback: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def used_by(self, t: TagInfo) -> list[str]:
        where = set(self.tags.get(t.tag, ())) | (set(self.digests.get(t.digest, ())) if t.digest else set())
        return sorted(where)

    def good_for(self, t: TagInfo) -> list[str]:
        where = set(self.last_good.get(t.tag, ())) | (set(self.last_good.get(t.digest, ())) if t.digest else set())
        return sorted(where)

    def rollback_for(self, t: TagInfo) -> list[str]:
        where = set(self.rollback.get(t.tag, ())) | (set(self.rollback.get(t.digest, ())) if t.digest else set())
        return sorted(where, key=_by_revision)

    def everything_for(self, t: TagInfo) -> list[str]:
        """Every reason ``t`` is used: references, last known good, rollback targets."""
        return self.used_by(t) + self.good_for(t) + self.rollback_for(t)


def _by_revision(label: str) -> tuple[str, int]:
    """Rollback labels by Deployment, newest revision first."""
    where, _, rev = label.rpartition(" rev ")
    return (where, -int(rev) if rev.isdigit() else 0)


@dataclass(slots=True)
class Usage:
    """Usage per repository (keyed by the host name images use), what was checked, and what may be missing."""

    repos: dict[tuple[str, str], RepoUsage] = field(default_factory=dict)
    checked: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    last_good: list[LastGood] = field(default_factory=list)
    rollback: list[RollbackTarget] = field(default_factory=list)
    keep_rollback: int = 0  # scaled-down old revisions kept per Deployment (fewer if revisionHistoryLimit is)

    def of(self, host: str, name: str) -> RepoUsage:
        return self.repos.get((host, name)) or RepoUsage()

    @property
    def complete(self) -> bool:
        """True when a cluster or repo was checked and nothing hid references."""
        return bool(self.checked) and not self.gaps


def repo_keys(ref: ImageRef, snap: RegistrySnapshot) -> list[tuple[str, str]]:
    """Snapshotted repositories ``ref`` may mean: its own, or (unqualified) any with the same name."""
    keys = {(ref.domain, ref.path)} if ref.domain is not None else set()
    domain, _, path = ref.normalized_name.partition("/")
    keys.add((domain, path))
    found = {k for k in keys if k in snap.repos}
    if ref.domain is None:
        found |= {(r.host, r.name) for r in snap.repos_named(ref.path)}
    return sorted(found)


def _revision(rs: K8sObject) -> int:
    try:
        return int(rs.annotations.get(REVISION, "0"))
    except ValueError:
        return 0


def _replicas(rs: K8sObject) -> int:
    return int(rs.spec.get("replicas", 1) or 0)


def _fully_available(rs: K8sObject) -> bool:
    """Its pods run Ready: at least one replica wanted and all wanted replicas available."""
    want = _replicas(rs)
    return want >= 1 and int(rs.status.get("availableReplicas") or 0) >= want


def _images(obj: K8sObject) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c.image for c in containers(obj) if c.image))


def last_known_good(inv: Inventory) -> list[LastGood]:
    """Per live Deployment: the newest revision whose ReplicaSet is fully available (pods Ready); when none
    is, every older retained revision (the good one cannot be told apart from status)."""
    out: list[LastGood] = []
    for dep in inv.live("Deployment"):
        sets = sorted((o for o in inv.children.get(dep.uid, []) if o.kind == "ReplicaSet"),
                      key=_revision, reverse=True)
        good = next((rs for rs in sets if _fully_available(rs)), None)
        if good is not None:
            out.append(LastGood(str(dep.ref), _revision(good), _images(good), True))
            continue
        out += [LastGood(str(dep.ref), _revision(rs), _images(rs), False) for rs in sets[1:]]
    return out


def _history_keep(dep: K8sObject, keep: int) -> int:
    """``keep``, or the Deployment's ``revisionHistoryLimit`` when that is lower: no more are retained."""
    limit = dep.spec.get("revisionHistoryLimit")
    return min(keep, limit) if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0 else keep


def _ran_digests(inv: Inventory, rs: K8sObject) -> tuple[str, ...]:
    """Digests the ReplicaSet's pods ran (``imageID``) and those its change-cause names."""
    found: list[str] = []
    for pod in inv.children.get(rs.uid, []):
        if pod.kind != "Pod":
            continue
        for key in ("initContainerStatuses", "containerStatuses"):
            for st in pod.status.get(key) or []:
                found += _DIGEST.findall(str(st.get("imageID") or ""))
    found += _DIGEST.findall(rs.annotations.get(CHANGE_CAUSE, ""))
    return tuple(dict.fromkeys(found))


def rollback_targets(inv: Inventory, keep: int) -> list[RollbackTarget]:
    """Per live Deployment, its old revisions (never the current one) that ``kubectl rollout undo`` can go
    back to: every one that still has replicas, and the newest ``keep`` scaled to zero -- at most
    ``revisionHistoryLimit``, which counts those alone, as KS602 does."""
    out: list[RollbackTarget] = []
    for dep in inv.live("Deployment"):
        sets = [o for o in inv.children.get(dep.uid, []) if o.kind == "ReplicaSet"]
        if not sets:
            continue
        current = _revision(dep) or max(_revision(rs) for rs in sets)
        old = sorted((rs for rs in sets if _revision(rs) != current),
                     key=lambda rs: (_revision(rs), rs.metadata.get("creationTimestamp") or ""), reverse=True)
        idle = [rs for rs in old if not _replicas(rs)][:_history_keep(dep, keep)]
        out += [RollbackTarget(dep.namespace, dep.name, _revision(rs), _images(rs), _ran_digests(inv, rs))
                for rs in old if _replicas(rs) or rs in idle]
    return out


def _gaps(inv: Inventory) -> list[str]:
    gaps: list[str] = []
    if inv.cluster is not None:
        blind = dict(inv.cluster.blind_spots)
        for kind in USAGE_KINDS:
            if kind in blind:
                gaps.append(f"cluster {inv.cluster.name}: {kind}: {blind[kind]}")
            elif kind not in inv.cluster.listed_kinds:
                gaps.append(f"cluster {inv.cluster.name}: {kind} objects were not collected")
    if inv.repo is not None:
        gaps += [f"repo: {f}:{line}: {msg}" for f, line, msg in inv.repo.errors]
        gaps += [f"repo: {n}" for n in inv.repo.notes if "not rendered" in n]
    return gaps


def _mark(usage: Usage, snap: RegistrySnapshot, images: tuple[str, ...], digests: tuple[str, ...],
          label: str, last_good: bool) -> None:
    """Record ``label`` on the tags and digests of ``images`` (and on ``digests``, in the same repositories)."""
    for image in images:
        ref = parse_or_none(image)
        if ref is None:
            continue
        for key in repo_keys(ref, snap):
            repo = usage.repos.setdefault(key, RepoUsage())
            marks = repo.last_good if last_good else repo.rollback
            for what in (ref.digest, ref.effective_tag, *digests):
                if what:
                    marks[what].add(label)


def compute_usage(inv: Inventory, cfg: Config, *, keep_rollback: int | None = None) -> Usage:
    """Usage of every repository in ``inv.registry`` by ``inv``'s cluster and repo.

    ``keep_rollback``: old revisions per Deployment whose images count as rollback targets (default
    ``thresholds.keep_replicasets``, what KS602 recommends keeping).
    """
    keep = cfg.thresholds.keep_replicasets if keep_rollback is None else keep_rollback
    usage = Usage(keep_rollback=keep)
    snap = inv.registry
    if inv.cluster is not None:
        usage.checked.append(f"cluster {inv.cluster.name}")
    if inv.repo is not None:
        usage.checked.append(f"repo {inv.repo.root}")
    usage.gaps = _gaps(inv)
    if snap is None:
        return usage
    for key, uses in registry_uses(inv, cfg).items():
        repo = usage.repos.setdefault(key, RepoUsage())
        for tag, where in uses.tags.items():
            repo.tags[tag] |= where
        for digest, where in uses.digests.items():
            repo.digests[digest] |= where
    for use in image_uses(inv):
        if use.ref.domain is not None:
            continue
        for key in repo_keys(use.ref, snap):
            repo = usage.repos.setdefault(key, RepoUsage())
            note = f"{use.where} (unqualified name)"
            if use.ref.digest and use.where not in repo.digests[use.ref.digest]:
                repo.digests[use.ref.digest].add(note)
            if (name := use.ref.effective_tag) and use.where not in repo.tags[name]:
                repo.tags[name].add(note)
    usage.last_good = last_known_good(inv)
    for good in usage.last_good:
        _mark(usage, snap, good.images, (), good.label, True)
    usage.rollback = rollback_targets(inv, keep)
    for target in usage.rollback:
        _mark(usage, snap, target.images, target.digests, target.label, False)
    return usage
