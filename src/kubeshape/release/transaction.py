"""Run the journaled steps of a release; on any failure compensate every step taken (with
``--rollback-on-failure``, or always while nothing left the work tree -- for a GitOps release: while nothing was
pushed), else say exactly what was left and the one command that undoes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kubeshape.errors import KubeshapeError
from kubeshape.release import gitops
from kubeshape.release.edit import Edit
from kubeshape.release.interrupt import abort_on_signals
from kubeshape.release.plan import Plan, Target, tag_of
from kubeshape.release.rollout import Outcome
from kubeshape.release.steps import STEPS, UNDO, Step, Txn, plan_file, release_pushed
from kubeshape.release.yamltext import EditError

ABORT = "kubeshape release --abort"
RESUME = "kubeshape release --resume"


@dataclass
class ReleaseResult:
    """How a release (or --resume/--abort) ended; ``failure`` is None when it released."""

    plan: Plan
    edit: Edit | None = None
    commit: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    failure: str | None = None
    rolled_back: bool = False
    revert_commit: str | None = None
    left: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # release commits removed again (never pushed)
    applied: list[str] = field(default_factory=list)  # GitOps: "Kustomization ns/name at REVISION"

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def image(self) -> str:
        return self.plan.image

    @property
    def digest(self) -> str | None:
        return self.plan.digest

    @property
    def targets(self) -> list[Target]:
        return self.plan.targets


GITOPS_STEPS: list[Step] = [*STEPS[:3], ("git-push", gitops.run_git_push, gitops.undo_git_push),
                             ("flux-apply", gitops.run_flux_apply, None), STEPS[-1]]
ALL_UNDO = {**UNDO, **{name: undo for name, _, undo in GITOPS_STEPS}}


def steps_of(txn: Txn) -> list[Step]:
    """A GitOps release pushes and lets Flux apply where a direct one patches the Deployment."""
    return GITOPS_STEPS if txn.plan.gitops else STEPS


def execute(txn: Txn) -> ReleaseResult:
    """Run the steps not yet done; a failure (SIGINT/SIGTERM included) ends in compensation or a report."""
    try:
        with abort_on_signals():
            for name, run, _ in steps_of(txn):
                if not txn.journal.done(name):
                    run(txn)
    except Exception as exc:  # every failure after a side effect must be answered
        message = str(exc) if isinstance(exc, KubeshapeError) else f"{type(exc).__name__}: {exc}"
        txn.journal.fail(message)
        return _failed(txn, " ".join(message.split()))
    txn.applied = txn.applied or list((txn.journal.entry("flux-apply") or {}).get("applied") or [])
    txn.journal.close()
    return _result(txn)


def _result(txn: Txn, failure: str | None = None) -> ReleaseResult:
    commit = (txn.journal.entry("commit") or {}).get("sha")
    return ReleaseResult(txn.plan, txn.edit(), commit, list(txn.outcomes), failure,
                         notes=[*txn.plan.notes, *txn.notes], dropped=list(txn.dropped), applied=list(txn.applied))


def _changed_beyond_work_tree(txn: Txn) -> bool:
    """Whether git's history elsewhere, or the cluster, changed. A GitOps release's local commits do not count
    until they were pushed: undoing them leaves no trace."""
    if txn.plan.gitops:
        return release_pushed(txn)
    return any((s["name"] in ("adopt", "commit") and s.get("sha")) or (s["name"] == "deploy")
               for s in txn.journal.steps)


def _failed(txn: Txn, failure: str) -> ReleaseResult:
    if txn.plan.rollback_on_failure or not _changed_beyond_work_tree(txn):
        with abort_on_signals(second_kills=True):
            return compensate(txn, failure)
    result = _result(txn, failure)
    result.left = leftovers(txn)
    return result


def compensate(txn: Txn, failure: str | None) -> ReleaseResult:
    """Undo every step the journal records, newest first, then commit the git side of it once."""
    for entry in reversed(txn.journal.steps):
        undo = ALL_UNDO.get(entry["name"])
        if undo is not None:
            undo(txn, entry)
    why = failure or txn.journal.data.get("failure") or "aborted"
    revert = _commit_reverts(txn, why)
    if txn.plan.gitops:
        txn.applied = []
        gitops.settle_revert(txn, revert)
    result = _result(txn, why)
    result.revert_commit = revert
    result.rolled_back = True
    _flux_note(txn, result)
    txn.journal.close()
    return result


def _commit_reverts(txn: Txn, why: str) -> str | None:
    """One commit for the staged reverts, with the file on the last known good image."""
    if not txn.reverted or txn.path is None:
        return None
    plan = txn.plan
    lkg = plan.lkg_image
    if lkg is not None and plan.targets:
        try:
            edit = plan_file(plan, lkg)
        except EditError as exc:
            txn.notes.append(f"{txn.path} could not be set to {lkg} ({exc}): it holds what the revert restored")
        else:
            if edit.changed:
                edit.write()
                txn.repo.git("add", "--", txn.repo.rel(txn.path))
    target = tag_of(lkg) if lkg else "the previous image"
    reverts = "\n".join(f"This reverts commit {sha}." for sha in txn.reverted)
    message = f"rollback {plan.service} to {target} after failed release {plan.tag}\n\n{reverts}\n\nWhy: {why}\n"
    try:
        txn.repo.git("commit", "--quiet", "--no-verify", "-m", message)
    except KubeshapeError as exc:
        txn.notes.append(f"the rollback commit failed ({exc}): the revert is staged -- commit it by hand")
        return None
    return txn.repo.head()


def _flux_note(txn: Txn, result: ReleaseResult) -> None:
    flux = txn.kube.flux_image_automation() if txn.kube is not None else []
    bad = txn.plan.tag
    if flux:
        result.notes.append(f"Flux image automation is active ({', '.join(flux)}): it will promote {bad} again "
                            "unless paused -- run `flux suspend image update <name> -n <namespace>` until a fixed "
                            f"build exists, or exclude {bad} in the ImagePolicy's filterTags")
    elif result.edit is not None and result.edit.markers:
        result.notes.append(f"a Flux image-policy marker is present in {result.edit.path} "
                            f"({result.edit.markers[0]}); no Flux image automation was seen in the cluster")


def leftovers(txn: Txn) -> list[str]:
    """What the steps taken left in git, the work tree and the cluster."""
    plan, out = txn.plan, []
    for s in txn.journal.steps:
        name = s["name"]
        if name == "push" and s["state"] == "done":
            out.append(f"registry: {plan.image} ({plan.digest or 'digest unknown'}) was pushed; tags are never "
                       "overwritten")
        elif name == "adopt" and s.get("sha"):
            out.append(f"git: commit {str(s['sha'])[:12]} writes the live image {plan.adopt} into "
                       f"{Path(str(plan.file)).name}")
        elif name == "commit" and s.get("sha"):
            out.append(f"git: commit {str(s['sha'])[:12]} ({plan.subject})")
        elif name == "edit" and "after" in s and not (txn.journal.entry("commit") or {}).get("sha"):
            out.append(f"work tree: {plan.file} edited, not committed")
        elif name in ("git-push", "flux-apply"):
            out.extend(gitops.leftovers(txn, s))
        elif name == "deploy":
            out.extend(f"cluster: Deployment {t.namespace}/{t.name} set to {', '.join(sorted(set(t.after.values())))}"
                       f" (was {', '.join(sorted(set(t.before.values())))})" for t in plan.targets)
    return out
