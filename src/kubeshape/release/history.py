"""A Deployment's revisions (one per ReplicaSet) with image, digest, commit, change-cause and result, and the
last known good: the newest revision whose pods became available.

Evidence for "became available", strongest first: the current revision's rollout status (kubectl rules); a
``kubeshape.io/rollout-result`` annotation written by ``kubeshape release --watch``; pods of the revision
available now. A revision scaled to zero without any of these is ``superseded-unknown``: Kubernetes keeps no
record of whether it ever ran.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kubeshape.errors import InputError
from kubeshape.imageref import InvalidReference, parse
from kubeshape.release.kube import CHANGE_CAUSE, DIGEST, RESULT, Kube
from kubeshape.release.rollout import pod_problems, revision_of, rollout_state
from kubeshape.release.tagging import parse_tag
from kubeshape.timeutil import format_time, parse_time

AVAILABLE, FAILED, PROGRESSING, UNKNOWN = "available", "failed", "progressing", "superseded-unknown"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_FROM_COMMIT = re.compile(r"\bfrom ([0-9a-f]{7,40})\b")


@dataclass
class Revision:
    revision: int
    replicaset: str
    images: list[str]
    result: str
    evidence: str
    digest: str | None = None
    commit: str | None = None
    change_cause: str | None = None
    created: datetime | None = None
    replicas: int = 0
    available: int = 0
    containers: dict[str, str] = field(default_factory=dict)  # container name → image

    def to_json(self) -> dict[str, Any]:
        return {"revision": self.revision, "replicaset": self.replicaset, "images": self.images,
                "digest": self.digest, "commit": self.commit, "change_cause": self.change_cause,
                "result": self.result, "evidence": self.evidence, "created": format_time(self.created) or None,
                "replicas": self.replicas, "available": self.available}


@dataclass
class History:
    namespace: str
    deployment: str
    current: int
    revisions: list[Revision] = field(default_factory=list)  # oldest first

    @property
    def last_known_good(self) -> Revision | None:
        return next((r for r in reversed(self.revisions) if r.result == AVAILABLE), None)

    def to_json(self) -> dict[str, Any]:
        lkg = self.last_known_good
        return {"namespace": self.namespace, "deployment": self.deployment, "current_revision": self.current,
                "last_known_good": lkg.revision if lkg else None,
                "revisions": [r.to_json() for r in self.revisions]}


def _record(rs: dict[str, Any]) -> tuple[str, str] | None:
    """(result, when) from kubeshape's annotation, if it was written on this very ReplicaSet."""
    meta = rs.get("metadata") or {}
    parts = str((meta.get("annotations") or {}).get(RESULT, "")).split()
    if len(parts) == 3 and parts[1] == meta.get("name") and parts[0] in (AVAILABLE, FAILED):
        return parts[0], parts[2]
    return None


def _owned(pods: list[dict[str, Any]], rs: dict[str, Any]) -> list[dict[str, Any]]:
    uid = (rs.get("metadata") or {}).get("uid")
    return [p for p in pods if any(o.get("uid") == uid for o in (p.get("metadata") or {}).get("ownerReferences")
                                   or [])]


def _result(dep: dict[str, Any], rs: dict[str, Any], pods: list[dict[str, Any]], current: bool) -> tuple[str, str]:
    status = rs.get("status") or {}
    problems = pod_problems(pods, rs)
    if current:
        state = rollout_state(dep)
        if state.done is True:
            return AVAILABLE, "current revision, rollout complete"
        if state.done is False:
            return FAILED, state.message
        return PROGRESSING, state.message + (f" -- {problems[0]}" if problems else "")
    record = _record(rs)
    if record is not None:
        return record[0], f"recorded by kubeshape release at {record[1]}"
    n = int(status.get("availableReplicas") or 0)
    if n > 0:
        return AVAILABLE, f"{n} pod{'s' if n != 1 else ''} available now"
    if problems:
        return FAILED, problems[0]
    return UNKNOWN, "scaled down; nothing records whether its pods became available"


def _digest(pods: list[dict[str, Any]], rs: dict[str, Any], cause: str, images: list[str]) -> str | None:
    """From a pod's imageID, else kubeshape's digest annotation (kept when a rollback reuses the ReplicaSet),
    else the change-cause or a pinned image."""
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if m := _DIGEST.search(str(cs.get("imageID") or "")):
                return m.group(0)
    noted = str(((rs.get("metadata") or {}).get("annotations") or {}).get(DIGEST) or "")
    for text in (noted, cause, *images):
        if m := _DIGEST.search(text):
            return m.group(0)
    return None


def _commit(cause: str, images: list[str]) -> str | None:
    if m := _FROM_COMMIT.search(cause):
        return m.group(1)
    for image in images:
        try:
            tag = parse(image).tag
        except InvalidReference:
            continue
        if tag and (parsed := parse_tag(tag)).commit:
            return parsed.commit
    return None


def build(dep: dict[str, Any], replicasets: list[dict[str, Any]], pods: list[dict[str, Any]]) -> History:
    """The history of ``dep`` from its ReplicaSets (and their pods, for digests and stuck pulls)."""
    meta = dep.get("metadata") or {}
    current = revision_of(dep)
    out = History(str(meta.get("namespace", "")), str(meta.get("name", "")), current)
    for rs in sorted(replicasets, key=revision_of):
        rs_meta = rs.get("metadata") or {}
        containers = (((rs.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        images = [str(c.get("image")) for c in containers]
        cause = str((rs_meta.get("annotations") or {}).get(CHANGE_CAUSE) or "")
        owned = _owned(pods, rs)
        result, evidence = _result(dep, rs, owned, revision_of(rs) == current)
        status = rs.get("status") or {}
        out.revisions.append(Revision(
            revision_of(rs), str(rs_meta.get("name", "")), images, result, evidence, _digest(owned, rs, cause, images),
            _commit(cause, images), cause or None, parse_time(rs_meta.get("creationTimestamp")),
            int(status.get("replicas") or 0), int(status.get("availableReplicas") or 0),
            {str(c.get("name")): str(c.get("image")) for c in containers}))
    return out


def from_live(kube: Kube, namespace: str, name: str) -> History:
    dep = kube.deployment(namespace, name)
    return build(dep, kube.replicasets(dep), kube.pods(dep))


def from_bundle(path: Path, namespace: str | None, name: str) -> History:
    """The history as a bundle (``kubeshape snapshot``) recorded it."""
    from kubeshape.sources.bundle import load_bundle

    cluster, _ = load_bundle(path)
    deps = [d for d in cluster.objects.get("Deployment", []) if d.name == name
            and (namespace is None or d.namespace == namespace)]
    if not deps:
        raise InputError(f"{path}: no Deployment {namespace + '/' if namespace else ''}{name} in the bundle")
    if len(deps) > 1:
        raise InputError(f"{path}: Deployment {name} exists in namespaces "
                         f"{', '.join(sorted(d.namespace for d in deps))}: pass -n")
    dep = deps[0]
    replicasets = [rs.raw for rs in cluster.objects.get("ReplicaSet", [])
                   if (owner := rs.owner("Deployment")) is not None and owner.get("uid") == dep.uid]
    pods = [p.raw for p in cluster.objects.get("Pod", []) if p.namespace == dep.namespace]
    return build(dep.raw, replicasets, pods)


def render_text(history: History) -> str:
    """A table, oldest revision first, and the last known good."""
    rows = [("REV", "RESULT", "CREATED", "IMAGE", "DIGEST", "COMMIT", "CHANGE-CAUSE")]
    for r in history.revisions:
        mark = "*" if r.revision == history.current else " "
        rows.append((f"{r.revision}{mark}", r.result, format_time(r.created) or "-", ", ".join(r.images) or "-",
                     r.digest[:19] + "…" if r.digest else "-", (r.commit or "-")[:12], r.change_cause or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [f"Deployment {history.namespace}/{history.deployment}: {len(history.revisions)} revisions "
             f"(* = current, revision {history.current})"]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
              for row in rows]
    lkg = history.last_known_good
    if lkg is None:
        lines.append("last known good: none -- no revision is known to have become available")
    else:
        lines.append(f"last known good: revision {lkg.revision} ({', '.join(lkg.images)}) -- {lkg.evidence}")
    return "\n".join(lines)
