"""``kubeshape release`` and ``kubeshape history`` (plain functions; ``cli/app.py`` registers them)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.status import Status

from kubeshape.errors import InputError
from kubeshape.release import history as hist
from kubeshape.release.kube import Kube
from kubeshape.release.plan import Target
from kubeshape.release.rollout import STALL_AFTER
from kubeshape.release.transaction import ABORT, RESUME
from kubeshape.release.workflow import (
    EXIT_ROLLOUT_FAILED,
    ReleaseOptions,
    ReleaseResult,
    abort_release,
    resume_release,
    run_release,
)
from kubeshape.ui import err_console


class _Reporter:
    """Steps and warnings on stderr; rollout and Flux progress as a spinner on terminals, as lines elsewhere."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live: Status | None = None

    def _stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def step(self, message: str) -> None:
        self._stop()
        self.console.print(f"[bold cyan]release:[/] {message}", highlight=False, soft_wrap=True)

    def warn(self, message: str) -> None:
        self._stop()
        self.console.print(f"[bold yellow]release: warning:[/] {message}", highlight=False, soft_wrap=True)

    def progress(self, message: str) -> None:
        if not self.console.is_terminal:
            self.console.print(f"  {message}", highlight=False, soft_wrap=True, markup=False)
            return
        if self.live is None:
            self.live = self.console.status(message)
            self.live.start()
        else:
            self.live.update(message)


def _summary(result: ReleaseResult, out: Console) -> None:
    """What happened, on stdout: released, rolled back to the last known good, or what was left."""

    def say(text: str) -> None:
        out.print(text, highlight=False, soft_wrap=True, markup=False)

    digest = f" ({result.digest})" if result.digest else ""
    if result.ok:
        say(f"{'released and rolled out' if result.outcomes else 'released'} {result.image}{digest}")
    else:
        sep = " " if result.failure and result.failure.startswith("on Deployment") else ": "
        say(f"RELEASE FAILED: {result.image}{sep}{result.failure}")
    if result.commit and not result.rolled_back:
        pushed = f" pushed to {result.plan.git_remote}/{result.plan.git_branch}" if result.plan.gitops and \
            result.ok else ""
        say(f"  commit {result.commit[:12]}{pushed}")
    if result.ok:
        for line in result.applied:
            say(f"  applied by Flux: {line}")
    if result.ok:
        for t in result.targets:
            watched = "" if result.outcomes else " (not watched: `kubectl rollout status` follows it)"
            say(f"  Deployment {t.namespace}/{t.name}: {', '.join(f'{c}={i}' for c, i in t.after.items())}"
                f"{watched}")
        if result.edit is not None and result.edit.changed:
            for line in result.edit.diff().splitlines():
                if line.startswith(("+", "-")) and not line.startswith(("+++", "---")):
                    say(f"  {line}")
    elif result.rolled_back:
        say(_rolled_back(result))
    else:
        for line in result.left:
            say(f"  left: {line}")
        say(f"  not rolled back: `{ABORT}` undoes it (back to "
            f"{result.plan.lkg_image or 'the previous images'}), `{RESUME}` continues it")
    for note in result.notes:
        say(f"  note: {note}")


def _rolled_back(result: ReleaseResult) -> str:
    """One line naming the image git and the cluster are back on, once."""
    plan = result.plan
    image = plan.lkg_image or (result.edit.image_before if result.edit else "the previous image")
    digest = f" ({plan.lkg_digest})" if plan.lkg_digest else ""
    manifest = result.edit.path.name if result.edit else "the manifest"
    if result.revert_commit:
        git = f"git {result.revert_commit[:12]} reverts {result.commit[:12] if result.commit else 'the release'}"
        if plan.gitops and result.applied:
            git += f", pushed to {plan.git_remote}/{plan.git_branch} and applied by Flux ({'; '.join(result.applied)})"
    elif result.dropped:
        git = (f"release commit {', '.join(sha[:12] for sha in result.dropped)} removed again (never pushed to "
               f"{plan.git_remote}/{plan.git_branch})")
    elif result.commit:
        git = "git NOT reverted (see the note below)"
    elif result.edit is not None and result.edit.changed:
        git = f"{manifest} restored, nothing committed or staged"
    else:
        git = "git untouched"
    if plan.gitops and not result.revert_commit:
        cluster = "cluster untouched (Flux never saw the release)" if result.dropped else ""
    else:
        cluster = "; ".join(f"Deployment {t.namespace}/{t.name} {_rollback_state(t)}" for t in result.targets)
    return f"ROLLED BACK to {image}{digest}: {git}" + (f"; {cluster}" if cluster else "")


def _rollback_state(t: Target) -> str:
    if t.rollback is None:
        return "rollback not watched"
    return "rollout complete" if t.rollback.ok else f"ROLLBACK ROLLOUT FAILED: {t.rollback.message}"


class GitOps(StrEnum):
    flux = "flux"


def release(
    image: Annotated[str | None, typer.Option("--image", metavar="REGISTRY/REPO",
                                              help="Repository to release to, without a tag (the tag comes from "
                                                   "git).")] = None,
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Build context inside the git repository.")] = Path("."),
    push: Annotated[bool, typer.Option("--push", help="Build (or copy) and push the image under the tag.")] = False,
    from_image: Annotated[str | None, typer.Option("--from-image", metavar="REF",
                                                   help="Push this existing image (registry copy) instead of "
                                                        "building.")] = None,
    oci_layout: Annotated[Path | None, typer.Option("--oci-layout", metavar="DIR", file_okay=False,
                                                    help="Push the image in this OCI image layout.")] = None,
    manifest: Annotated[Path | None, typer.Option("--manifest", dir_okay=False,
                                                  help="Manifest whose container image to update.")] = None,
    kustomization: Annotated[Path | None, typer.Option("--kustomization", dir_okay=False,
                                                       help="kustomization.yaml whose images: entry to "
                                                            "update.")] = None,
    container: Annotated[str | None, typer.Option("--container", help="Container to update (default: the one "
                                                                      "running --image).")] = None,
    commit: Annotated[bool, typer.Option("--commit/--no-commit", help="Commit the edited file.")] = True,
    watch: Annotated[bool, typer.Option("--watch", help="Follow the rollout (kubectl rules, progress "
                                                        "deadline).")] = False,
    rollback_on_failure: Annotated[bool, typer.Option("--rollback-on-failure",
                                                      help="On any failure after a change (rollout, 403, "
                                                           "--timeout, SIGINT): git revert and set the cluster "
                                                           "back, both to the last known good.")] = False,
    kubeconfig: Annotated[Path | None, typer.Option("--kubeconfig", dir_okay=False,
                                                    help="Update the live Deployment through this "
                                                         "kubeconfig.")] = None,
    context: Annotated[str | None, typer.Option("--context", help="kubeconfig context.")] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Namespace of the Deployment "
                                                                            "(default: the file's).")] = None,
    insecure_registry: Annotated[bool, typer.Option("--insecure-registry", help="Plain HTTP to the "
                                                                                "registry.")] = False,
    allow_dirty: Annotated[bool, typer.Option("--allow-dirty", help="Release a dirty work tree (tag ends in "
                                                                    "-dirty, not traceable).")] = False,
    allow_unqualified: Annotated[bool, typer.Option("--allow-unqualified",
                                                    help="Accept an --image without registry (not "
                                                         "recommended).")] = False,
    timeout: Annotated[float | None, typer.Option("--timeout", metavar="SECONDS",
                                                  help="Bound each registry operation (retries included), the "
                                                       "rollout watch and each wait for Flux (default 300).")] = None,
    registry: Annotated[str | None, typer.Option("--registry", metavar="REACH=NAME",
                                                 help="Push through REACH (e.g. a port-forward) to the registry "
                                                      "--image names NAME; NAME goes into the manifest.")] = None,
    adopt_live: Annotated[bool, typer.Option("--adopt-live", help="Live image differs from the file's: commit the "
                                                                  "live one into the file first, then "
                                                                  "release.")] = False,
    from_file: Annotated[bool, typer.Option("--from-file", help="Live image differs from the file's: the file is "
                                                                "the truth, release from it.")] = False,
    gitops: Annotated[GitOps | None, typer.Option("--gitops",
                                                  help="Release through Flux: push the commit to the branch a "
                                                    "GitRepository follows and wait until Flux applied it (the "
                                                    "Deployment is never patched).")] = None,
    flux_source: Annotated[str | None, typer.Option("--flux-source", metavar="NAMESPACE/NAME",
                                                    help="The GitRepository (default: the one following this "
                                                         "checkout's remote and branch).")] = None,
    flux_kustomization: Annotated[str | None, typer.Option("--flux-kustomization", metavar="NAMESPACE/NAME",
                                                           help="The Kustomization (default: those whose inventory "
                                                                "holds the Deployment).")] = None,
    stall_after: Annotated[float, typer.Option("--stall-after", metavar="SECONDS",
                                               help="Fail the watched rollout when new pods have failed to pull "
                                                    "their image this long (0: wait for the progress "
                                                    "deadline).")] = STALL_AFTER,
    abort: Annotated[bool, typer.Option("--abort", help="Undo the unfinished release recorded in the repository "
                                                        "at PATH (back to the last known good).")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the unfinished release recorded in the "
                                                          "repository at PATH.")] = False,
) -> None:
    """Release from git: tag, push, update the manifest, deploy. In order: preflight (permissions, registry,
    clean file, drift), push, verify, update the manifest, commit, deploy, watch the rollout. With --gitops flux
    the commit is pushed and Flux deploys it (a rollback is a pushed revert Flux applies). Every step is
    journaled under .git/kubeshape/; a failure after a change is rolled back to the last known good
    (--rollback-on-failure) or left as printed, undone by --abort or continued by --resume.

    Exit codes: 0 released (or --abort completed), 1 release failed (rolled back, or left as printed),
    2 input or state error (nothing changed), 3 a cluster or registry unreachable (nothing changed)."""
    reporter = _Reporter(err_console())
    try:
        if abort or resume:
            if abort and resume:
                raise InputError("--abort and --resume: give one")
            if image is not None:
                raise InputError("--abort/--resume act on the release the journal records: drop --image")
            result = (abort_release if abort else resume_release)(path, reporter)
        else:
            if image is None:
                raise InputError("--image REGISTRY/REPO is required (or --abort/--resume an unfinished release)")
            opts = ReleaseOptions(image=image, path=path, push=push, from_image=from_image, oci_layout=oci_layout,
                                  manifest=manifest, kustomization=kustomization, container=container,
                                  commit=commit, watch=watch, rollback_on_failure=rollback_on_failure,
                                  kubeconfig=kubeconfig, context=context, namespace=namespace,
                                  insecure_registry=insecure_registry, allow_dirty=allow_dirty,
                                  allow_unqualified=allow_unqualified, timeout=timeout, registry=registry,
                                  adopt_live=adopt_live, from_file=from_file,
                                  gitops=gitops.value if gitops else None,
                                  flux_source=flux_source, flux_kustomization=flux_kustomization,
                                  stall_after=stall_after or None)
            result = run_release(opts, reporter)
    finally:
        reporter._stop()
    if abort and result.rolled_back:
        _summary(result, Console(soft_wrap=True))
        raise typer.Exit(0)
    _summary(result, Console(soft_wrap=True))
    raise typer.Exit(0 if result.ok else EXIT_ROLLOUT_FAILED)


class HistoryFormat(StrEnum):
    text = "text"
    json = "json"


def history(
    service: Annotated[str, typer.Argument(metavar="SERVICE", help="Deployment name.")],
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Namespace (default: the "
                                                                            "context's).")] = None,
    kubeconfig: Annotated[Path | None, typer.Option("--kubeconfig", dir_okay=False, help="kubeconfig file.")] = None,
    context: Annotated[str | None, typer.Option("--context", help="kubeconfig context.")] = None,
    bundle: Annotated[Path | None, typer.Option("--bundle", "-b", help="Read a bundle instead of a "
                                                                       "cluster.")] = None,
    output: Annotated[HistoryFormat, typer.Option("--output", "-o", help="text or json.")] = HistoryFormat.text,
) -> None:
    """Show the revisions of a Deployment and the last known good. Per revision: image, digest, commit,
    change-cause and result."""
    if bundle is not None:
        if kubeconfig is not None or context is not None:
            raise InputError("--bundle reads a snapshot; drop --kubeconfig/--context")
        found = hist.from_bundle(bundle, namespace, service)
    else:
        kube = Kube.connect(kubeconfig, context)
        try:
            found = hist.from_live(kube, namespace or kube.default_namespace, service)
        finally:
            kube.close()
    if output is HistoryFormat.json:
        sys.stdout.write(orjson.dumps(found.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(hist.render_text(found) + "\n")
