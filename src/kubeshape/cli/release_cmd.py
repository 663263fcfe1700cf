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
from kubeshape.release.rollback import Target
from kubeshape.release.workflow import EXIT_ROLLOUT_FAILED, ReleaseOptions, ReleaseResult, run_release
from kubeshape.ui import err_console


class _Reporter:
    """Steps and warnings on stderr; rollout progress as a spinner on terminals, as lines elsewhere."""

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
            self.console.print(f"  rollout {message}", highlight=False, soft_wrap=True)
            return
        if self.live is None:
            self.live = self.console.status(message)
            self.live.start()
        else:
            self.live.update(message)


def _summary(result: ReleaseResult, out: Console) -> None:
    def say(text: str) -> None:
        out.print(text, highlight=False, soft_wrap=True, markup=False)

    digest = f" ({result.digest})" if result.digest else ""
    failed = [(t, o) for t, o in zip(result.targets, result.outcomes, strict=False) if not o.ok]
    if failed:
        for t, o in failed:
            problem = f" -- {o.problems[0]}" if o.problems else ""
            say(f"RELEASE FAILED: {result.image} on Deployment {t.namespace}/{t.name}: {o.message}{problem}")
    else:
        verb = "released and rolled out" if result.outcomes else "released"
        say(f"{verb} {result.image}{digest}")
    if result.commit:
        say(f"  commit {result.commit[:12]}")
    for t in result.targets:
        watched = "" if result.outcomes else " (not watched: `kubectl rollout status` follows it)"
        say(f"  Deployment {t.namespace}/{t.name}: {', '.join(f'{c}={i}' for c, i in t.after.items())}{watched}")
    if result.edit is not None and result.edit.changed:
        for line in result.edit.diff().splitlines():
            if line.startswith(("+", "-")) and not line.startswith(("+++", "---")):
                say(f"  {line}")
    if result.rolled_back:
        manifest = result.edit.path.name if result.edit else "the manifest"
        if result.revert_commit:
            git = (f"git revert {result.revert_commit[:12]} undoes {result.commit[:12] if result.commit else ''} "
                   f"({manifest} holds {result.edit.image_before if result.edit else 'the previous image'} again)")
        elif result.commit:
            git = "git NOT reverted (see the note below)"
        else:
            git = f"{manifest} restored (nothing had been committed)"
        cluster = "; ".join(f"Deployment {t.namespace}/{t.name} back to {', '.join(sorted(set(t.before.values())))}"
                            f" ({_rollback_state(t)})" for t in result.targets)
        say(f"ROLLED BACK: {git}; {cluster}")
    elif failed:
        t = failed[0][0]
        say("  not rolled back: re-run with --rollback-on-failure, or `git revert "
            f"{result.commit[:12] if result.commit else '<commit>'}` and set {t.namespace}/{t.name} back to "
            f"{', '.join(sorted(set(t.before.values())))}")
    for note in result.notes:
        say(f"  note: {note}")


def _rollback_state(t: Target) -> str:
    if t.rollback is None:
        return "not watched"
    return "rollout complete" if t.rollback.ok else f"ROLLBACK ROLLOUT FAILED: {t.rollback.message}"


def release(
    image: Annotated[str, typer.Option("--image", metavar="REGISTRY/REPO",
                                       help="Repository to release to, without a tag (the tag comes from git).")],
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
                                                      help="On a failed rollout: git revert and restore the "
                                                           "previous image in the cluster.")] = False,
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
) -> None:
    """Release from git: tag, push, update the manifest, deploy. In order: tag from git, push, verify, update the
    manifest, commit, deploy, watch the rollout, roll back on failure."""
    opts = ReleaseOptions(image=image, path=path, push=push, from_image=from_image, oci_layout=oci_layout,
                          manifest=manifest, kustomization=kustomization, container=container, commit=commit,
                          watch=watch, rollback_on_failure=rollback_on_failure, kubeconfig=kubeconfig,
                          context=context, namespace=namespace, insecure_registry=insecure_registry,
                          allow_dirty=allow_dirty, allow_unqualified=allow_unqualified)
    reporter = _Reporter(err_console())
    try:
        result = run_release(opts, reporter)
    finally:
        reporter._stop()
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
