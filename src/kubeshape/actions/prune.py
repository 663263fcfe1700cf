"""``registry prune``: plan every repository with the retention policy, then (``--apply``) delete tag by tag.

The plan is recomputed from the registry's current state on every run, so an interrupted prune resumes by
running it again: deleted tags are gone from the plan, a tag left on a throw-away manifest by an interrupted
delete is dropped (``interrupted``), and the rest is planned as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from kubeshape.actions.registries import RegistryState
from kubeshape.actions.retention import Decision, plan_prune
from kubeshape.actions.usage import Usage
from kubeshape.config import Config, Retention
from kubeshape.inventory import RegistryRepo, TagInfo
from kubeshape.registry.client import RegistryClient
from kubeshape.registry.errors import ManifestNotFound, RegistryError
from kubeshape.usage import reclaimable

GC_COMMAND = "registry garbage-collect --delete-untagged /etc/docker/registry/config.yml"


@dataclass(slots=True)
class RepoPlan:
    """The decisions for one repository, with what each tag is used by and the bytes dropping frees."""

    host: str  # as images name the registry
    reach: str  # where kubeshape connects
    name: str
    policy: Retention
    decisions: list[Decision]
    tags: dict[str, TagInfo]
    used_by: dict[str, list[str]]
    untagged_in_use: list[str]  # digests in use that no tag holds: --delete-untagged would remove them
    freed: int = 0
    freed_blobs: int = 0

    @property
    def drops(self) -> list[Decision]:
        return [d for d in self.decisions if not d.keep]

    @property
    def keeps(self) -> list[Decision]:
        return [d for d in self.decisions if d.keep]


@dataclass(slots=True)
class PrunePlan:
    repos: list[RepoPlan]
    usage: Usage
    now: datetime
    freed: dict[str, int] = field(default_factory=dict)  # per registry host, shared blobs counted once

    @property
    def drops(self) -> int:
        return sum(len(r.drops) for r in self.repos)


def _repo_plan(repo: RegistryRepo, reach: str, cfg: Config, usage: Usage, interrupted: set[str],
               now: datetime) -> RepoPlan:
    uses = usage.of(repo.host, repo.name)
    tags = list(repo.tags.values())
    policy = cfg.retention_for(repo.host, repo.name)
    decisions = plan_prune(tags, policy, {t for t, w in uses.tags.items() if w},
                           {d for d, w in uses.digests.items() if w}, now, last_known_good=set(uses.last_good),
                           rollback_targets=set(uses.rollback), interrupted=interrupted)
    used_by = {t.tag: uses.everything_for(t) for t in tags}
    held = {t.digest for t in tags}
    pinned = [d for d, w in uses.digests.items() if w] + [x for x in (*uses.last_good, *uses.rollback) if ":" in x]
    untagged = sorted({d for d in pinned if d not in held})
    return RepoPlan(repo.host, reach, repo.name, policy, decisions, repo.tags, used_by, untagged)


def build_plan(state: RegistryState, usage: Usage, cfg: Config, now: datetime) -> PrunePlan:
    """Plan every repository of ``state``; bytes freed count blobs no kept image of the same host holds."""
    plans = [_repo_plan(repo, state.reach(host), cfg, usage, state.interrupted.get((host, name), set()), now)
             for (host, name), repo in sorted(state.snapshot.repos.items())]
    plan = PrunePlan(plans, usage, now)
    for host in sorted({p.host for p in plans}):
        mine = [p for p in plans if p.host == host]
        kept = [p.tags[d.tag] for p in mine for d in p.keeps]
        for p in mine:
            p.freed, p.freed_blobs = reclaimable([p.tags[d.tag] for d in p.drops], kept)
        plan.freed[host] = reclaimable([p.tags[d.tag] for p in mine for d in p.drops], kept)[0]
    return plan


# -- apply --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one planned tag: ``deleted``, ``gone`` (already deleted), ``moved`` (skipped)."""

    host: str
    repository: str
    tag: str
    digest: str | None
    status: str
    detail: str = ""


@dataclass(slots=True)
class ApplyResult:
    outcomes: list[Outcome] = field(default_factory=list)
    error: RegistryError | None = None
    failed_tag: str | None = None  # host/repository:tag the error happened on
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


def _refresh(client: RegistryClient, repo: str, known: dict[str, str]) -> None:
    """Bring ``known`` (tag → digest) up to date with tags pushed or deleted since the plan."""
    names = set(client.tags(repo))
    for gone in set(known) - names:
        del known[gone]
    for tag, ref in client.resolve_tags(repo, sorted(names - set(known))).items():
        known[tag] = ref.digest


def _delete_one(client: RegistryClient, p: RepoPlan, d: Decision, known: dict[str, str]) -> Outcome:
    """Re-check that ``d.tag`` still points at the planned digest, then delete it alone."""
    try:
        current = client.head_manifest(p.name, d.tag, suggest=False).digest
    except ManifestNotFound:
        known.pop(d.tag, None)
        return Outcome(p.host, p.name, d.tag, d.digest, "gone", "already deleted")
    if current != d.digest:
        known[d.tag] = current
        return Outcome(p.host, p.name, d.tag, d.digest, "moved", f"now points at {current}: skipped")
    known[d.tag] = current
    if not any(t != d.tag and dg == current for t, dg in known.items()):
        _refresh(client, p.name, known)  # deleting by digest: be sure no new tag shares it
    result = client.delete_tag(p.name, d.tag, tag_digests=known)
    known.pop(d.tag, None)
    detail = f"kept {', '.join(result.siblings)} on the same image" if result.siblings else ""
    return Outcome(p.host, p.name, d.tag, d.digest, "deleted", detail)


def apply_plan(plan: PrunePlan, clients: dict[str, RegistryClient],
               report: Callable[[Outcome], None] | None = None) -> ApplyResult:
    """Delete every dropped tag, oldest first, one at a time; stop at the first registry error.

    Idempotent: a tag already gone counts as done; a tag that moved since the plan is skipped.
    """
    result = ApplyResult()
    for p in plan.repos:
        if not p.drops:
            continue
        client = clients[p.host]
        known = {t.tag: t.digest for t in p.tags.values() if t.digest}
        for d in reversed(p.drops):
            try:
                outcome = _delete_one(client, p, d, known)
            except RegistryError as exc:
                result.error, result.failed_tag = exc, f"{p.host}/{p.name}:{d.tag}"
                return result
            except KeyboardInterrupt:
                result.interrupted, result.failed_tag = True, f"{p.host}/{p.name}:{d.tag}"
                return result
            result.outcomes.append(outcome)
            if report is not None:
                report(outcome)
    return result
