"""The steps of a release after the push, each with its compensation: one table that both ``run`` and
``compensate`` walk, driven by the journal (what was begun or done, with the data its undo needs). A GitOps
release replaces ``deploy`` by the steps of ``gitops``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kubeshape.errors import KubeshapeError
from kubeshape.imageref import parse
from kubeshape.release.edit import Edit, plan_kustomization, plan_manifest
from kubeshape.release.gitrepo import GitRepo
from kubeshape.release.journal import Journal
from kubeshape.release.kube import Kube
from kubeshape.release.plan import Plan, tag_of
from kubeshape.release.rollout import Outcome, record, watch


class Reporter(Protocol):
    """Where a release tells what it does: steps, warnings, rollout progress."""

    def step(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def progress(self, message: str) -> None: ...


class RolloutFailed(KubeshapeError):
    """A watched rollout failed (progress deadline, paused, --timeout)."""

    exit_code = 1


@dataclass
class Txn:
    """One release in progress: its plan, where it acts, its journal."""

    plan: Plan
    repo: GitRepo
    kube: Kube | None
    journal: Journal
    reporter: Reporter
    outcomes: list[Outcome] = field(default_factory=list)
    reverted: list[str] = field(default_factory=list)  # commits reverted in the index, not yet committed
    notes: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # release commits removed again: never pushed
    applied: list[str] = field(default_factory=list)  # "Kustomization ns/name at REVISION" (GitOps)
    pushed: bool | None = None  # GitOps: did the release commit reach the remote (None: not asked yet)

    @property
    def path(self) -> Path | None:
        return Path(self.plan.file) if self.plan.file else None

    def edit(self) -> Edit | None:
        """The release's edit as the journal recorded it."""
        e = self.journal.entry("edit")
        if e is None or self.path is None or "after" not in e:
            return None
        return Edit(self.path, str(self.plan.kind), e["before"], e["after"], e["image_before"], e["image_after"],
                    list(e.get("markers") or []))


def release_pushed(txn: Txn) -> bool:
    """GitOps: whether the commits of the release reached the remote (asked of the remote when the journal
    cannot tell; when the remote cannot be asked either, assume they did)."""
    if txn.pushed is None:
        entry = txn.journal.entry("git-push")
        if entry is None or entry.get("rejected"):
            txn.pushed = False
        elif entry["state"] == "done":
            txn.pushed = True
        else:
            try:
                txn.pushed = txn.repo.remote_contains(str(txn.plan.git_remote), str(txn.plan.git_branch),
                                                      str(entry.get("sha")))
            except KubeshapeError:
                txn.pushed = True
    return txn.pushed


def rollout_progress(reporter: Reporter) -> Callable[[str], None]:
    return lambda line: reporter.progress(f"rollout {line}")


def plan_file(plan: Plan, image: str) -> Edit:
    """The file's container (or kustomization entry) set to ``image``."""
    path = Path(str(plan.file))
    if plan.kind == "kustomization":
        ref = parse(image)
        return plan_kustomization(path, plan.ref_name, ref.tag or "latest", ref.digest)
    return plan_manifest(path, plan.ref_name, image, plan.container)


def _commit(txn: Txn, step: str, message: str) -> None:
    rel = txn.repo.rel(Path(str(txn.plan.file)))
    base = txn.repo.head()
    txn.journal.begin(step, base=base)
    txn.repo.commit_file(Path(str(txn.plan.file)), message)
    txn.journal.finish(step, sha=txn.repo.head(), base=base, path=rel)


# -- run ----------------------------------------------------------------------------------------------------


def run_adopt(txn: Txn) -> None:
    plan = txn.plan
    if plan.adopt is None or plan.file is None:
        txn.journal.finish("adopt")
        return
    edit = plan_file(plan, plan.adopt)
    txn.journal.begin("adopt", before=edit.before)
    edit.write()
    _commit(txn, "adopt", f"adopt the live image {plan.adopt} into {edit.path.name}\n\nThe starting point of "
                          f"release {plan.tag}: the cluster ran {plan.adopt}, the file named {edit.image_before}.\n")
    txn.reporter.step(f"adopted the live image into {edit.path}: {edit.image_before} -> {plan.adopt}")


def run_edit(txn: Txn) -> None:
    plan = txn.plan
    if plan.file is None:
        txn.journal.finish("edit")
        return
    edit = plan_file(plan, plan.image)
    txn.journal.begin("edit", before=edit.before, after=edit.after, image_before=edit.image_before,
                      image_after=edit.image_after, markers=edit.markers)
    if not edit.changed:
        txn.reporter.step(f"{edit.path} already points at {edit.image_after}: nothing to edit")
    else:
        edit.write()
        txn.reporter.step(f"edited {edit.path}: {edit.image_before or '(new entry)'} -> {edit.image_after}")
    for m in edit.markers:
        txn.notes.append(f"{edit.path} line carries a Flux image-policy marker ({m}): kept; if Flux image "
                         "automation runs, make its ImagePolicy select this scheme's tags")
    txn.journal.finish("edit")


def commit_message(plan: Plan, edit: Edit) -> str:
    """The subject, then the image, digest, full commit SHA and the file's change."""
    body = [f"image: {plan.image}", f"digest: {plan.digest or 'unknown (not checked in a registry)'}",
            f"commit: {plan.tag_commit}",
            f"file: {edit.path.name} ({edit.image_before or 'new entry'} -> {edit.image_after})"]
    return plan.subject + "\n\n" + "\n".join(body) + "\n"


def run_commit(txn: Txn) -> None:
    edit = txn.edit()
    if edit is None or not edit.changed:
        txn.journal.finish("commit")
        return
    if not txn.plan.commit:
        txn.notes.append(f"--no-commit: {edit.path} is edited but not committed")
        txn.journal.finish("commit")
        return
    _commit(txn, "commit", commit_message(txn.plan, edit))
    sha = str((txn.journal.entry("commit") or {}).get("sha"))
    txn.reporter.step(f"committed {sha[:12]}: {txn.plan.subject}")


def run_deploy(txn: Txn) -> None:
    if txn.kube is None:
        txn.journal.finish("deploy")
        return
    txn.journal.begin("deploy")
    for t in txn.plan.targets:
        txn.kube.set_images(t.namespace, t.name, t.after, txn.plan.subject)
        txn.reporter.step(f"Deployment {t.namespace}/{t.name}: image {', '.join(sorted(set(t.after.values())))}, "
                          f"change-cause {txn.plan.subject!r}")
    txn.journal.finish("deploy")


def run_watch(txn: Txn) -> None:
    if txn.kube is None or not txn.plan.watch:
        txn.journal.finish("watch")
        return
    txn.journal.begin("watch")
    txn.outcomes.clear()
    for t in txn.plan.targets:
        txn.reporter.step(f"watching Deployment {t.namespace}/{t.name} (progress deadline from its spec)")
        outcome = watch(txn.kube, t.namespace, t.name, rollout_progress(txn.reporter), poll=txn.plan.poll,
                        timeout=txn.plan.timeout, stall_after=txn.plan.stall_after)
        txn.outcomes.append(outcome)
        record(txn.kube, outcome, txn.plan.digest)
        if not outcome.ok:
            problem = f" -- {outcome.problems[0]}" if outcome.problems else ""
            raise RolloutFailed(f"on Deployment {t.namespace}/{t.name}: {outcome.message}{problem}")
    txn.journal.finish("watch")


# -- undo ---------------------------------------------------------------------------------------------------


def _undo_commit(txn: Txn, entry: dict[str, Any]) -> None:
    sha = entry.get("sha")
    if sha is None and entry.get("base") and txn.repo.head() != entry["base"]:
        sha = txn.repo.head()  # stopped between the commit and the journal's note of it
    if sha is None:
        return
    if txn.plan.gitops and not release_pushed(txn) and txn.repo.head() == sha and entry.get("base"):
        try:
            txn.repo.reset_keep(str(entry["base"]))  # never left this checkout: no revert needed
        except KubeshapeError as exc:
            txn.notes.append(f"the unpushed commit {str(sha)[:12]} could not be removed ({exc}): run `git reset "
                             f"--keep {str(entry['base'])[:12]}` once your local changes are saved")
            return
        txn.dropped.append(str(sha))
        return
    try:
        txn.repo.git("revert", "--no-commit", str(sha))
    except KubeshapeError as exc:
        txn.repo.git_quiet("revert", "--abort")
        txn.notes.append(f"git revert of {str(sha)[:12]} FAILED ({exc}): run `git revert {sha}` -- until then "
                         "the next GitOps sync re-applies the failed image")
        return
    txn.reverted.append(str(sha))


def _undo_edit(txn: Txn, entry: dict[str, Any]) -> None:
    if txn.path is None or "before" not in entry or (txn.journal.entry("commit") or {}).get("sha"):
        return  # nothing written, or committed (the revert restores it)
    if txn.path.read_bytes().decode("utf-8", "replace") != entry["before"]:
        txn.path.write_bytes(str(entry["before"]).encode("utf-8"))
    txn.repo.git("restore", "--staged", "--", txn.repo.rel(txn.path))


def _undo_deploy(txn: Txn, entry: dict[str, Any]) -> None:
    if txn.kube is None:
        return
    plan = txn.plan
    for t in plan.targets:
        image = ", ".join(sorted(set(t.restore.values())))
        digest = t.lkg_digest or "digest unknown"
        cause = f"rollback to {tag_of(image)} ({digest}) after failed release {plan.tag}"
        txn.kube.set_images(t.namespace, t.name, t.restore, cause)
        txn.reporter.step(f"cluster: Deployment {t.namespace}/{t.name} set back (change-cause {cause!r})")
        try:
            t.rollback = watch(txn.kube, t.namespace, t.name, rollout_progress(txn.reporter), poll=plan.poll,
                               timeout=plan.timeout, stall_after=plan.stall_after)
            record(txn.kube, t.rollback, t.lkg_digest)
        except KubeshapeError as exc:
            txn.notes.append(f"the rollback of Deployment {t.namespace}/{t.name} was not watched ({exc}): "
                             f"`kubectl rollout status deployment/{t.name} -n {t.namespace}` follows it")


Step = tuple[str, Callable[[Txn], None], Callable[[Txn, dict[str, Any]], None] | None]
STEPS: list[Step] = [("adopt", run_adopt, _undo_commit), ("edit", run_edit, _undo_edit),
                     ("commit", run_commit, _undo_commit), ("deploy", run_deploy, _undo_deploy),
                     ("watch", run_watch, None)]
UNDO = {name: undo for name, _, undo in STEPS}

