"""Render prune plans and their outcome: aligned plain text (pipe-friendly) or one JSON document."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubeshape.actions.prune import GC_COMMAND, ApplyResult, Outcome, PrunePlan, RepoPlan
from kubeshape.actions.retention import Decision
from kubeshape.actions.usage import Usage
from kubeshape.registry.models import format_created
from kubeshape.timeutil import format_time
from kubeshape.usage import human_bytes

GC_STEPS = [
    "Deleting tags frees no disk space by itself. Reclaim it with the registry's garbage-collect, with the",
    "registry stopped or read-only (storage.maintenance.readonly.enabled: true) so no push races it:",
    f"  {GC_COMMAND.replace('garbage-collect', 'garbage-collect --dry-run')}   # preview",
    f"  {GC_COMMAND}",
    "then restart it (in a container: docker exec <registry> " + GC_COMMAND + ").",
]


def short(digest: str | None) -> str:
    """``sha256:0123456789ab`` (12 hex digits), ``-`` when unknown."""
    if not digest:
        return "-"
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}"


def table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [indent + "  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]).rstrip()
            for r in rows]


def _policy(p: RepoPlan) -> str:
    pol = p.policy
    entry = f"retention entry {pol.repository!r}" if pol.repository != "*" else "default or '*' entry"
    patterns = ", ".join(f"'{t}'" for t in pol.keep_tags)
    return (f"keep_last {pol.keep_last}, keep_tags [{patterns}], keep_days {pol.keep_days} "
            f"({entry})")


def _rows(p: RepoPlan, decisions: list[Decision], with_usage: bool) -> list[list[str]]:
    rows = [["TAG", "DIGEST", "CREATED", "WHY"]]
    for d in decisions:
        why = d.reason
        if with_usage and p.used_by.get(d.tag):
            why += ": " + "; ".join(p.used_by[d.tag])
        rows.append([d.tag, short(d.digest), format_time(d.created) or "-", why])
    return rows


def usage_json(u: Usage) -> dict[str, Any]:
    """What usage was checked against, its gaps, last known good images and rollback targets."""
    return {"checked": u.checked, "gaps": u.gaps,
            "last_known_good": [{"workload": g.workload, "revision": g.revision, "images": list(g.images),
                                 "proven": g.proven} for g in u.last_good],
            "keep_rollback_targets": u.keep_rollback,
            "rollback_targets": [t.as_dict() for t in u.rollback]}


def rollback_lines(u: Usage) -> list[str]:
    """How many old revisions per Deployment stay as rollback targets (when a cluster was read)."""
    if not any(c.startswith("cluster ") for c in u.checked):
        return []
    if not u.keep_rollback:
        return ["Rollback targets: none kept (--keep-rollback-targets 0): only what runs and last known good "
                "images stay"]
    found = len(u.rollback)
    return [f"Rollback targets: the images of the newest {u.keep_rollback} old revisions of each Deployment "
            f"(fewer if its revisionHistoryLimit is lower) stay: {found} revision{'' if found == 1 else 's'} "
            "(--keep-rollback-targets N)"]


def _usage_lines(plan: PrunePlan) -> list[str]:
    u = plan.usage
    if not u.checked:
        return ["Usage NOT checked: no cluster (--kubeconfig/--context/--bundle) or repo (--repo) was given, so",
                "nothing is known to be in use (--apply then needs --no-usage-check)."]
    lines = [f"Usage checked against: {', '.join(u.checked)}"]
    lines += [f"  incomplete: {g}" for g in u.gaps]
    return [*lines, *rollback_lines(u)]


def plan_text(plan: PrunePlan, *, apply: bool) -> list[str]:
    """The plan: per repository, what goes and what stays, with reasons."""
    tags = sum(len(p.decisions) for p in plan.repos)
    freed = sum(plan.freed.values())
    repos = f"{len(plan.repos)} repositor{'y' if len(plan.repos) == 1 else 'ies'}"
    lines = [f"Prune plan{'' if apply else ' (dry run)'}: {plan.drops} of {tags} tags in {repos} go; "
             f"{human_bytes(freed)} freed once the registry garbage-collects",
             *_usage_lines(plan)]
    for p in plan.repos:
        via = f" (via {p.reach})" if p.reach != p.host else ""
        lines += ["", f"{p.host}/{p.name}{via}", f"  policy: {_policy(p)}",
                  f"  {len(p.decisions)} tags: {len(p.drops)} go, {len(p.keeps)} stay; "
                  f"{human_bytes(p.freed)} ({p.freed_blobs} layer blobs) freed after garbage-collect"]
        if p.drops:
            lines += ["", f"  Goes ({len(p.drops)}):", *table(_rows(p, p.drops, False), "    ")]
        if p.keeps:
            lines += ["", f"  Stays ({len(p.keeps)}):", *table(_rows(p, p.keeps, True), "    ")]
        if p.untagged_in_use:
            lines += ["", "  WARNING: in use by digest but held by no tag (garbage-collect --delete-untagged "
                      "would delete them; tag them first): " + ", ".join(p.untagged_in_use)]
    return lines


def outcome_line(o: Outcome) -> str:
    verb = {"deleted": "deleted", "gone": "already gone", "moved": "SKIPPED (moved)"}[o.status]
    detail = f" -- {o.detail}" if o.detail else ""
    return f"{verb} {o.host}/{o.repository}:{o.tag} ({short(o.digest)}){detail}"


def result_text(plan: PrunePlan, result: ApplyResult | None) -> list[str]:
    """Summary and the garbage-collect step (dry run: how to apply)."""
    if result is None:
        if not plan.drops:
            return ["", "Nothing to prune."]
        return ["", f"Dry run: nothing was deleted. Re-run with --apply to delete these {plan.drops} tags.", "",
                *GC_STEPS]
    if not result.outcomes and result.error is None and not result.interrupted:
        return ["", "Nothing to prune."]
    deleted = result.count("deleted")
    lines = ["", f"Deleted {deleted} tags; {result.count('gone')} were already gone; "
                 f"{result.count('moved')} skipped because they moved since the plan."]
    if result.error is not None or result.interrupted:
        why = str(result.error) if result.error is not None else "interrupted"
        done = [f"{o.repository}:{o.tag}" for o in result.outcomes if o.status == "deleted"]
        lines += [f"STOPPED at {result.failed_tag}: {why}",
                  f"Deleted before that ({len(done)}): {', '.join(done) or 'nothing'}. Nothing after it was "
                  "touched; run the same command again to resume."]
    if deleted:
        lines += ["", *GC_STEPS]
    return lines


def _decision(p: RepoPlan, d: Decision) -> dict[str, Any]:
    t = p.tags[d.tag]
    return {"tag": d.tag, "digest": d.digest, "created": format_created(d.created), "size": t.size,
            "keep": d.keep, "code": d.code, "reason": d.reason, "used_by": p.used_by.get(d.tag, [])}


def plan_json(plan: PrunePlan, result: ApplyResult | None, *, apply: bool) -> dict[str, Any]:
    """The machine-readable plan (and outcome with ``--apply``)."""
    doc: dict[str, Any] = {
        "version": 1,
        "command": "registry prune",
        "mode": "apply" if apply else "dry-run",
        "generatedAt": format_created(plan.now.replace(microsecond=0)),
        "usage": usage_json(plan.usage),
        "repositories": [{
            "host": p.host, "reach": p.reach, "name": p.name, "policy": p.policy.model_dump(),
            "drop": [d.tag for d in p.drops], "keep": [d.tag for d in p.keeps],
            "tags": [_decision(p, d) for d in p.decisions],
            "reclaimable_bytes": p.freed, "reclaimable_blobs": p.freed_blobs,
            "untagged_in_use": p.untagged_in_use,
        } for p in plan.repos],
        "reclaimable_bytes": sum(plan.freed.values()),
        "garbage_collect": GC_COMMAND,
    }
    if result is not None:
        doc["result"] = {
            "outcomes": [{"host": o.host, "repository": o.repository, "tag": o.tag, "digest": o.digest,
                          "status": o.status, "detail": o.detail} for o in result.outcomes],
            "deleted": result.count("deleted"), "gone": result.count("gone"), "moved": result.count("moved"),
            "error": str(result.error) if result.error is not None else None,
            "stopped_at": result.failed_tag, "interrupted": result.interrupted,
        }
    return doc
