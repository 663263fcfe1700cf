"""Undo a failed release in both places GitOps cares about: a ``git revert`` of the release commit (or the
file restored when it was not committed), and the previous images patched back onto the live Deployments with
change-cause ``rollback to <tag> after failed release <tag>``, watched until that rollout completes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubeshape.errors import KubeshapeError
from kubeshape.imageref import InvalidReference, parse
from kubeshape.release.gitrepo import GitRepo
from kubeshape.release.kube import Kube
from kubeshape.release.rollout import Outcome, record, watch

if TYPE_CHECKING:
    from kubeshape.release.workflow import ReleaseResult, Reporter


@dataclass
class Target:
    """A live Deployment a release updates: container → image before and after."""

    namespace: str
    name: str
    before: dict[str, str]
    after: dict[str, str]
    rollback: Outcome | None = None


def tag_of(image: str) -> str:
    """The tag (or digest) of an image reference, for messages."""
    try:
        ref = parse(image)
    except InvalidReference:
        return image
    return ref.tag or ref.digest or image


def rollback(kube: Kube, repo: GitRepo, result: ReleaseResult, failed: list[tuple[Target, Outcome]],
             reporter: Reporter, poll: float) -> None:
    """Revert in git, then restore every target's previous images and watch them roll out."""
    bad = result.tag.tag
    previous = tag_of(next(iter(result.targets[0].before.values()))) if result.targets else "the previous image"
    service = result.image.rsplit(":", 1)[0].rsplit("/", 1)[-1]
    reasons = "; ".join(f"{t.namespace}/{t.name}: {o.message}" + (f" ({o.problems[0]})" if o.problems else "")
                        for t, o in failed)
    cause = f"rollback to {previous} after failed release {bad}"
    if result.commit is not None:
        message = (f"rollback {service} to {previous} after failed release {bad}\n\nThis reverts commit "
                   f"{result.commit}.\n\nWhy: {reasons}\n")
        try:
            result.revert_commit = repo.revert(result.commit, message)
        except KubeshapeError as exc:  # still roll the cluster back; say what to do in git
            reporter.warn(f"git revert of {result.commit[:12]} failed ({exc}): revert it by hand")
            result.notes.append(f"git revert of {result.commit[:12]} FAILED: run `git revert {result.commit}` -- "
                                "until then the next GitOps sync re-applies the failed image")
        else:
            reporter.step(f"git: reverted {result.commit[:12]} in {result.revert_commit[:12]} "
                          f"({result.edit.path if result.edit else 'manifest'} holds {previous} again)")
    elif result.edit is not None and result.edit.changed:
        result.edit.restore()
        reporter.step(f"git: nothing was committed; restored {result.edit.path}")
    for t in result.targets:
        kube.set_images(t.namespace, t.name, t.before, cause)
        reporter.step(f"cluster: Deployment {t.namespace}/{t.name} back to "
                      f"{', '.join(sorted(set(t.before.values())))} (change-cause {cause!r})")
        t.rollback = watch(kube, t.namespace, t.name, reporter.progress, poll=poll)
        record(kube, t.rollback)
    result.rolled_back = True
    flux = kube.flux_image_automation()
    markers = result.edit.markers if result.edit else []
    if flux or markers:
        where = ", ".join(flux) or f"setter marker {markers[0]} in {result.edit.path if result.edit else 'the file'}"
        result.notes.append(f"Flux image automation is active ({where}): it will promote {bad} again unless "
                            "paused -- run `flux suspend image update <name> -n <namespace>` until a fixed build "
                            f"exists, or exclude {bad} in the ImagePolicy's filterTags")
