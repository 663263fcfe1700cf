"""The steps of a release through Flux (``--gitops flux``): push the release commit to the branch the
GitRepository follows, wait until Flux applied it; on failure push a revert and wait until Flux applied that,
then watch the workload come back. The workload itself is never patched: git is the only way in."""

from __future__ import annotations

from typing import Any

from kubeshape.errors import KubeshapeError
from kubeshape.release.flux import FluxApi, Ref
from kubeshape.release.fluxwait import DEFAULT_TIMEOUT, FluxFailed, FluxWait
from kubeshape.release.gitrepo import PushRejected
from kubeshape.release.kube import Kube
from kubeshape.release.plan import Target
from kubeshape.release.rollout import record, watch
from kubeshape.release.steps import Txn, release_pushed, rollout_progress


def _refs(txn: Txn) -> tuple[Ref, list[Ref]]:
    plan = txn.plan
    source = Ref.parse("GitRepository", str(plan.flux_source), "flux source")
    return source, [Ref.parse("Kustomization", k, "flux kustomization") for k in plan.flux_kustomizations]


def _runs(kube: Kube, t: Target, images: dict[str, str]) -> bool:
    dep = kube.deployment(t.namespace, t.name)
    live = {str(c.get("name")): str(c.get("image")) for c in dep["spec"]["template"]["spec"]["containers"]}
    return all(live.get(c) == i for c, i in images.items())


def wait_applied(txn: Txn, sha: str, images: dict[str, dict[str, str]]) -> list[str]:
    """Wait until Flux applied commit ``sha`` (``images``: Deployment key → the container images it must then
    run); the Kustomizations with the revision they applied."""
    kube, plan = txn.kube, txn.plan
    if kube is None:
        raise KubeshapeError("a GitOps release needs the cluster (--kubeconfig/--context)")
    targets = {f"{t.namespace}/{t.name}": t for t in plan.targets}
    waiter = FluxWait(FluxApi.discover(kube), txn.repo, str(plan.git_remote), str(plan.git_branch),
                      txn.reporter.progress, plan.poll, plan.timeout or DEFAULT_TIMEOUT,
                      lambda: all(_runs(kube, targets[k], v) for k, v in images.items()))
    source, kustomizations = _refs(txn)
    applied = waiter.until_applied(source, kustomizations, sha)
    txn.notes.extend(n for n in waiter.notes if n not in txn.notes)
    for key, want in images.items():
        t = targets[key]
        dep = kube.deployment(t.namespace, t.name)
        live = {str(c.get("name")): str(c.get("image")) for c in dep["spec"]["template"]["spec"]["containers"]}
        wrong = {c: live.get(c) for c, i in want.items() if live.get(c) != i}
        if wrong:
            c, got = next(iter(wrong.items()))
            raise FluxFailed(f"Flux applied {plan.git_branch}@sha1:{sha[:12]}, but Deployment {key} container {c} "
                             f"runs {got}, not {want[c]}: {', '.join(str(k) for k in kustomizations)} renders "
                             "another image (an images: override or a postBuild substitution?)")
    return applied


# -- run ----------------------------------------------------------------------------------------------------


def run_git_push(txn: Txn) -> None:
    plan = txn.plan
    remote, branch = str(plan.git_remote), str(plan.git_branch)
    entry = txn.journal.entry("git-push") or {}
    sha = str(entry.get("sha") or txn.repo.head())  # on --resume: what the release had to push
    txn.journal.begin("git-push", sha=sha, remote=remote, branch=branch)
    try:
        txn.repo.push(remote, sha, branch)
    except PushRejected:
        if not txn.repo.remote_contains(remote, branch, sha):
            txn.journal.begin("git-push", sha=sha, remote=remote, branch=branch, rejected=True)
            raise
    txn.pushed = True
    txn.journal.finish("git-push", sha=sha)
    txn.reporter.step(f"pushed {sha[:12]} to {remote}/{branch} (followed by GitRepository {plan.flux_source})")


def run_flux_apply(txn: Txn) -> None:
    sha = str((txn.journal.entry("git-push") or {}).get("sha") or txn.repo.head())
    txn.journal.begin("flux-apply", sha=sha)
    txn.reporter.step(f"waiting for Flux to apply {txn.plan.git_branch}@sha1:{sha[:12]} "
                      f"(Kustomization {', '.join(txn.plan.flux_kustomizations)})")
    txn.applied = wait_applied(txn, sha, {f"{t.namespace}/{t.name}": t.after for t in txn.plan.targets})
    for line in txn.applied:
        txn.reporter.step(f"Flux: {line}")
    txn.journal.finish("flux-apply", applied=txn.applied)


def undo_git_push(txn: Txn, entry: dict[str, Any]) -> None:
    release_pushed(txn)  # ask the remote now, while the journal still tells what was pushed


# -- after the revert commit --------------------------------------------------------------------------------


def settle_revert(txn: Txn, revert: str | None) -> None:
    """Push the revert commit and wait until Flux applied it, then watch each Deployment come back; whatever
    fails is said in a note (the failure being answered is already the release's)."""
    plan, kube = txn.plan, txn.kube
    if revert is None or not release_pushed(txn):
        if revert is not None:
            txn.notes.append(f"the revert {revert[:12]} is only in this checkout (the release never reached "
                             f"{plan.git_remote}/{plan.git_branch})")
        return
    remote, branch = str(plan.git_remote), str(plan.git_branch)
    txn.reporter.step(f"rollback through Flux: pushing {revert[:12]}, which reverts "
                      f"{', '.join(sha[:12] for sha in txn.reverted)}")
    try:
        txn.repo.push(remote, revert, branch)
    except KubeshapeError as exc:
        txn.notes.append(f"the revert {revert[:12]} was NOT pushed ({exc}): Flux keeps the failed release until "
                         f"`git pull --rebase {remote} {branch} && git push {remote} HEAD:{branch}`")
        return
    txn.reporter.step(f"pushed the revert {revert[:12]} to {remote}/{branch}")
    try:
        txn.applied = wait_applied(txn, revert, {f"{t.namespace}/{t.name}": t.restore for t in plan.targets})
    except KubeshapeError as exc:
        txn.notes.append(f"the revert {revert[:12]} is pushed, but Flux did not apply it: {exc}")
        return
    for line in txn.applied:
        txn.reporter.step(f"Flux: {line}")
    if kube is None:
        return
    for t in plan.targets:
        try:
            t.rollback = watch(kube, t.namespace, t.name, rollout_progress(txn.reporter), poll=plan.poll,
                               timeout=plan.timeout, stall_after=plan.stall_after)
            record(kube, t.rollback, t.lkg_digest)
        except KubeshapeError as exc:
            txn.notes.append(f"the rollback of Deployment {t.namespace}/{t.name} was not watched ({exc}): "
                             f"`kubectl rollout status deployment/{t.name} -n {t.namespace}` follows it")


def leftovers(txn: Txn, entry: dict[str, Any]) -> list[str]:
    """What a GitOps step left behind."""
    plan = txn.plan
    if entry["name"] == "git-push" and release_pushed(txn):
        return [f"git: {str(entry.get('sha'))[:12]} pushed to {plan.git_remote}/{plan.git_branch}: Flux "
                f"(GitRepository {plan.flux_source}) applies it"]
    if entry["name"] == "flux-apply" and entry["state"] == "done":
        return [f"cluster: Deployment {t.namespace}/{t.name} set to {', '.join(sorted(set(t.after.values())))} by "
                f"Flux (was {', '.join(sorted(set(t.before.values())))})" for t in plan.targets]
    return []
