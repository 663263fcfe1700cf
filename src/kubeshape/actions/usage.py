"""Which registry tags the cluster and the repo use, and each Deployment's last known good image.

Tag and digest references come from the registry rules' index (``kubeshape.usage.registry_uses``: repo
workloads, live workloads, ReplicaSets with replicas, pods and the digests they run), so ``registry tags``,
``registry prune`` and KS403 agree. On top of it, prune is conservative: an unqualified reference
(``family-assistant:x``) also counts for every snapshotted repository with that name.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from kubeshape.config import Config
from kubeshape.imageref import ImageRef, parse_or_none
from kubeshape.inventory import Inventory, K8sObject, RegistrySnapshot, TagInfo, containers
from kubeshape.usage import image_uses, registry_uses

REVISION = "deployment.kubernetes.io/revision"
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


@dataclass(slots=True)
class RepoUsage:
    """References to one repository: by tag, by digest, and as a last known good (tag or digest)."""

    tags: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    digests: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    last_good: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def used_by(self, t: TagInfo) -> list[str]:
        where = set(self.tags.get(t.tag, ())) | (set(self.digests.get(t.digest, ())) if t.digest else set())
        return sorted(where)

    def good_for(self, t: TagInfo) -> list[str]:
        where = set(self.last_good.get(t.tag, ())) | (set(self.last_good.get(t.digest, ())) if t.digest else set())
        return sorted(where)


@dataclass(slots=True)
class Usage:
    """Usage per repository (keyed by the host name images use), what was checked, and what may be missing."""

    repos: dict[tuple[str, str], RepoUsage] = field(default_factory=dict)
    checked: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    last_good: list[LastGood] = field(default_factory=list)

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


def _fully_available(rs: K8sObject) -> bool:
    """Its pods run Ready: at least one replica wanted and all wanted replicas available."""
    want = int(rs.spec.get("replicas", 1) or 0)
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


def compute_usage(inv: Inventory, cfg: Config) -> Usage:
    """Usage of every repository in ``inv.registry`` by ``inv``'s cluster and repo."""
    usage = Usage()
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
        for image in good.images:
            ref = parse_or_none(image)
            if ref is None:
                continue
            for key in repo_keys(ref, snap):
                repo = usage.repos.setdefault(key, RepoUsage())
                for what in (ref.digest, ref.effective_tag):
                    if what:
                        repo.last_good[what].add(good.label)
    return usage
