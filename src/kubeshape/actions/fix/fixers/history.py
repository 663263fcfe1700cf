"""KS205: rollout revisions without a change-cause -- record what git knows, and say what nobody recorded."""

from __future__ import annotations

from kubeshape.actions.fix.context import FixContext, Refuse
from kubeshape.actions.fix.fixers._where import locate
from kubeshape.findings import Finding
from kubeshape.inventory import K8sObject, containers
from kubeshape.release.gitrepo import GitError, GitRepo

CHANGE_CAUSE = "kubernetes.io/change-cause"
REVISION = "deployment.kubernetes.io/revision"


def last_commit(ctx: FixContext, path: str) -> str | None:
    """``<subject> (<short sha>)`` of the last commit that touched ``path``; None outside git or untracked."""
    if ctx.root is None or not ctx.options.use_git:
        return None
    try:
        out = GitRepo(ctx.root).git("log", "-1", "--format=%h%x00%s", "--", path)
    except GitError:
        return None
    if "\x00" not in out:
        return None
    sha, _, subject = out.strip().partition("\x00")
    return f"{subject[:200]} ({sha})"


def _unrecorded(rs: K8sObject) -> str:
    images = ", ".join(dict.fromkeys(c.image for c in containers(rs) if c.image))
    return f"not recorded: revision {rs.annotations.get(REVISION, '?')} ran {images or 'no image'}"


def fix_change_cause(ctx: FixContext, findings: list[Finding]) -> None:
    """The Deployment's change-cause from the last commit of the file that defines it (the controller copies it
    onto the current revision), and each older retained revision annotated as unrecorded with its image."""
    for f in findings:
        if f.object is None:
            continue
        dep = ctx.live(f.object.kind, f.object.namespace, f.object.name)
        if dep is None:
            ctx.refuse([f], "the Deployment is not in the cluster snapshot")
            continue
        with ctx.step(f"Record change-causes of Deployment {dep.namespace}/{dep.name}", [f]):
            copies = [o for o in ctx.inv.repo_by_key.get(dep.key, []) if locate(ctx, o) is not None]
            if len(copies) != 1:
                raise Refuse(f"{len(copies)} files define it, so no one commit explains it" if copies else
                             "no file in the repository defines it, so no commit explains it")
            cause = last_commit(ctx, str(copies[0].file))
            if cause is None:
                raise Refuse(f"{copies[0].file}: no commit touched it (not in a git repository, or untracked)")
            rollers = ctx.rollout_rules(dep)
            current = dep.annotations.get(REVISION)
            if rollers:
                # This plan rolls it out: the new revisions are the fix's. The cause rides on the first rollout
                # (annotating the Deployment first would also stamp it on today's revision, which it does not
                # explain; after it, on the revision in between).
                cause = f"kubeshape fix {', '.join(rollers)} of {cause}"
                carrier = ctx.annotate_first_rollout(dep, {CHANGE_CAUSE: cause})
                ctx.note(f"the new revisions get {CHANGE_CAUSE}={cause!r} with '{carrier}'")
            elif dep.annotations.get(CHANGE_CAUSE) != cause:
                ctx.apply(dep, {"metadata": {"annotations": {CHANGE_CAUSE: cause}}},
                          f"annotate {CHANGE_CAUSE}={cause!r}")
            for rs in ctx.inv.children.get(dep.uid, []):
                if rs.kind != "ReplicaSet" or rs.annotations.get(CHANGE_CAUSE):
                    continue
                if (rs.annotations.get(REVISION) == current and not ctx.rolls_out(dep)) or ctx.deletes(rs):
                    continue  # the controller copies the Deployment's cause onto it; or an earlier step deletes it
                ctx.apply(rs, {"metadata": {"annotations": {CHANGE_CAUSE: _unrecorded(rs)}}},
                          f"annotate {CHANGE_CAUSE}={_unrecorded(rs)!r}", if_exists=True)
