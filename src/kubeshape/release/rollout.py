"""Follow a Deployment's rollout by ``kubectl rollout status`` rules until it completes or exceeds its
``progressDeadlineSeconds`` (the controller's verdict; kubeshape adds only a grace period in case the
controller is not running) -- or until new pods have failed to pull their image for ``stall_after`` seconds:
a tag that does not exist will not appear by waiting out a 600 s deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubeshape.metrics import CRASHING, PULL_FAILURES
from kubeshape.registry.models import format_created
from kubeshape.release.kube import REVISION, Kube

DEFAULT_DEADLINE = 600
GRACE = 30.0
STALL_AFTER = 30.0  # seconds of failed pulls on new pods (a kubelet has retried twice by then)
PERMANENT_PULL = {"InvalidImageName", "ErrImageNeverPull"}  # no retry can succeed


@dataclass(frozen=True, slots=True)
class RolloutState:
    """``done``: True rolled out, False failed (progress deadline exceeded), None still in progress."""

    done: bool | None
    message: str


def rollout_state(dep: dict[str, Any]) -> RolloutState:
    """kubectl's DeploymentStatusViewer, verbatim in substance."""
    meta, spec, status = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
    name = meta.get("name", "")
    if int(meta.get("generation") or 0) > int(status.get("observedGeneration") or 0):
        return RolloutState(None, "waiting for the deployment spec update to be observed")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return RolloutState(False, f"deployment {name} exceeded its progress deadline "
                                       f"({progress_deadline(dep)}s)")
    replicas = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < replicas:
        return RolloutState(None, f"{updated} of {replicas} new replicas updated")
    if total > updated:
        return RolloutState(None, f"{total - updated} old replicas pending termination")
    if available < updated:
        return RolloutState(None, f"{available} of {updated} updated replicas available")
    return RolloutState(True, f"deployment {name} successfully rolled out")


def progress_deadline(dep: dict[str, Any]) -> int:
    return int((dep.get("spec") or {}).get("progressDeadlineSeconds") or DEFAULT_DEADLINE)


def revision_of(obj: dict[str, Any]) -> int:
    try:
        return int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def current_replicaset(dep: dict[str, Any], replicasets: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The ReplicaSet of the Deployment's current revision."""
    want = revision_of(dep)
    return next((rs for rs in replicasets if revision_of(rs) == want), None)


def _owned_by(pods: list[dict[str, Any]], rs: dict[str, Any] | None) -> list[dict[str, Any]]:
    uid = ((rs or {}).get("metadata") or {}).get("uid")
    return [p for p in pods if not uid or any(o.get("uid") == uid for o in (p.get("metadata") or {})
                                              .get("ownerReferences") or [])]


def _waiting(pod: dict[str, Any]) -> list[tuple[str, str]]:
    """(reason, image) of the pod's containers waiting to pull or restart."""
    out = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
        if reason in PULL_FAILURES or reason in CRASHING:
            out.append((str(reason), str(cs.get("image"))))
    return out


def pod_problems(pods: list[dict[str, Any]], rs: dict[str, Any] | None) -> list[str]:
    """``pod NAME: ImagePullBackOff (image)`` for pods of ``rs`` stuck pulling or crashing."""
    out = []
    for pod in _owned_by(pods, rs):
        name = (pod.get("metadata") or {}).get("name")
        out += [f"pod {name}: {reason} ({image})" for reason, image in _waiting(pod)]
        if (why := unschedulable(pod)) is not None:
            out.append(f"pod {name}: FailedScheduling ({why})")
    return sorted(out)


def pull_failures(pods: list[dict[str, Any]], rs: dict[str, Any] | None) -> set[str]:
    """The pull-failure reasons (ErrImagePull, ImagePullBackOff, …) shown by pods of ``rs``."""
    return {reason for pod in _owned_by(pods, rs) for reason, _ in _waiting(pod) if reason in PULL_FAILURES}


def unschedulable(pod: dict[str, Any]) -> str | None:
    """The scheduler's message for a pod it cannot place (the text of its ``FailedScheduling`` event)."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" \
                and cond.get("reason") == "Unschedulable":
            return " ".join(str(cond.get("message") or "no node fits").split())
    return None


@dataclass
class Outcome:
    """How a watched rollout ended."""

    ok: bool
    message: str
    seconds: float
    deployment: dict[str, Any]
    replicaset: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)


def watch(kube: Kube, namespace: str, name: str, progress: Callable[[str], None], *, poll: float = 1.0,
          grace: float = GRACE, timeout: float | None = None, stall_after: float | None = STALL_AFTER) -> Outcome:
    """Poll until the rollout completes or fails (or ``timeout`` seconds pass, or new pods fail to pull their
    image for ``stall_after`` seconds; None: only the progress deadline); ``progress`` gets each new status
    line."""
    start = time.monotonic()
    last = ""
    pulls_failing: float | None = None  # since when new pods keep failing to pull
    while True:
        dep = kube.deployment(namespace, name)
        if (dep.get("spec") or {}).get("paused"):
            return Outcome(False, f"deployment {name} is paused (spec.paused): nothing rolls out until "
                                  f"`kubectl rollout resume deployment/{name} -n {namespace}`", 0.0, dep)
        state = rollout_state(dep)
        rs = current_replicaset(dep, kube.replicasets(dep))
        pods = kube.pods(dep) if state.done is not True else []
        problems = pod_problems(pods, rs) if state.done is not True else []
        elapsed = time.monotonic() - start
        failing = pull_failures(pods, rs) if state.done is None and rs is not None else set()
        pulls_failing = (pulls_failing if pulls_failing is not None else elapsed) if failing else None
        line = state.message + (f" -- {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1
                                                          else "") if problems else "")
        if line != last:
            progress(f"[{elapsed:4.0f}s] {line}")
            last = line
        if state.done is not None:
            return Outcome(state.done, state.message, elapsed, dep, rs, problems)
        if pulls_failing is not None and stall_after is not None and (
                failing & PERMANENT_PULL or elapsed - pulls_failing >= stall_after):
            held = f"for {elapsed - pulls_failing:.0f}s" if not failing & PERMANENT_PULL else "for good"
            return Outcome(False, f"rollout of deployment {name} stalled: new pods cannot pull their image "
                                  f"({', '.join(sorted(failing))} {held})", elapsed, dep, rs, problems)
        if timeout is not None and elapsed > timeout:
            return Outcome(False, f"no verdict within --timeout {timeout:g}s", elapsed, dep, rs, problems)
        if elapsed > progress_deadline(dep) + grace:
            return Outcome(False, f"no verdict from the deployment controller {progress_deadline(dep) + grace:.0f}s "
                                  f"after the rollout started (is kube-controller-manager running?)", elapsed, dep,
                           rs, problems)
        time.sleep(poll)


def record(kube: Kube, outcome: Outcome, digest: str | None = None) -> None:
    """Write the verdict (and digest) on the revision's ReplicaSet, so ``history`` knows them after the pods
    are gone."""
    if outcome.replicaset is not None:
        when = format_created(datetime.now(UTC).replace(microsecond=0)) or ""
        kube.record_result(outcome.replicaset, "available" if outcome.ok else "failed", when, digest)
