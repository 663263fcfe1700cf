"""``kubeshape init ci`` (CI files that lint every change and release from the default branch) and ``kubeshape init
gitops`` (one kustomize base per service, applied by Flux)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kubeshape import __version__
from kubeshape.cli.app import ConfigOpt, ContextOpt, KubeconfigOpt, RequestTimeoutOpt
from kubeshape.cli.subapp import sub_app
from kubeshape.cli.timeouts import parse_request_timeout
from kubeshape.errors import InputError
from kubeshape.scaffold.detect import RepoFacts, inspect
from kubeshape.scaffold.render import GITHUB, GITLAB, CiFile, Settings, render
from kubeshape.scaffold.write import apply, plan

if TYPE_CHECKING:
    from kubeshape.inventory import ClusterSource

app = sub_app(
    "init",
    "Set a repository up for kubeshape.",
)


@app.callback()
def _group() -> None:
    """Set a repository up for kubeshape."""


def _choose(facts: RepoFacts, github: bool | None, gitlab: bool | None) -> list[CiFile]:
    """The platforms to write for: as asked, else from the git remote (GitHub when it names neither)."""
    if github is None and gitlab is None:
        gitlab = facts.on_gitlab
        github = facts.on_github or not facts.on_gitlab
    elif github is None:
        github = not gitlab
    elif gitlab is None:
        gitlab = not github
    chosen = [f for f, on in ((GITHUB, github), (GITLAB, gitlab)) if on]
    if not chosen:
        raise InputError("--no-github and --no-gitlab leave nothing to write -- drop one of them")
    return chosen


def _next_steps(chosen: list[CiFile], facts: RepoFacts) -> list[str]:
    steps = ["Run `kubeshape lint` here and fix or suppress what it reports: CI fails on warnings and errors."]
    if GITHUB in chosen:
        steps += [f"Commit {GITHUB.path}. Findings also appear in Security > Code scanning (public repositories, "
                  "or GitHub Advanced Security).",
                  f"Releases from {facts.branch}: set the repository variable KUBESHAPE_IMAGE (REGISTRY/REPO) and "
                  "KUBESHAPE_KUSTOMIZATION or KUBESHAPE_MANIFEST, and the secrets REGISTRY_USERNAME and "
                  "REGISTRY_PASSWORD (the file's header lists the optional ones)."]
    if GITLAB in chosen:
        steps += [f"Commit {GITLAB.path}. The SARIF report is kept as an artifact of the kubeshape-lint job.",
                  "Releases from the default branch: set the CI/CD variables KUBESHAPE_IMAGE (REGISTRY/REPO), "
                  "KUBESHAPE_KUSTOMIZATION or KUBESHAPE_MANIFEST, REGISTRY_USERNAME, REGISTRY_PASSWORD and "
                  "KUBESHAPE_PUSH_TOKEN (masked; a project access token with write_repository)."]
    steps.append("Catch findings before they are committed: the pre-commit hook `kubeshape-lint`.")
    return steps


@app.command("ci")
def ci(
    directory: Annotated[Path, typer.Option("--dir", help="Root of the repository to write into.")] = Path("."),
    github: Annotated[bool | None, typer.Option("--github/--no-github", help=f"Write {GITHUB.path} (default: "
                                                "unless the git remote is on GitLab only).")] = None,
    gitlab: Annotated[bool | None, typer.Option("--gitlab/--no-gitlab", help=f"Write {GITLAB.path} (default: "
                                                "when the git remote is on GitLab).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist with other content.")] = False,
) -> None:
    """Write CI files that lint and release.

    The GitHub workflow and GitLab pipeline lint every change (a SARIF report for code scanning) and release
    from the default branch. Files that already hold the same content are left unchanged; files with other
    content are only replaced with --force."""
    if not directory.is_dir():
        what = "not a directory" if directory.exists() else "no such directory"
        raise InputError(f"{directory}: {what} -- pass --dir with the repository's root")
    facts = inspect(directory)
    if facts.git_root is not None and facts.git_root.resolve() != directory.resolve():
        raise InputError(f"{directory} is inside the git repository {facts.git_root}: CI files live at its root "
                         f"-- run with --dir {facts.git_root}")
    chosen = _choose(facts, github, gitlab)
    settings = Settings(version=__version__, branch=facts.branch)
    done = apply(plan({directory / f.path: render(f, settings) for f in chosen}), force)
    for path, what in done:
        typer.echo(f"{what}: {path}")
    if facts.config is not None:
        typer.echo(f"{facts.config.name} found: CI lints with its registries, manifest_roots and suppressions.")
    else:
        where = "this directory" if directory == Path(".") else str(directory)
        typer.echo(f"no kubeshape.yaml in {where}: CI lints every manifest below it with the defaults; add one "
                   "to name your registries (registries: {private: [HOST:PORT]}).")
    typer.echo("Next steps:")
    for i, step in enumerate(_next_steps(chosen, facts), 1):
        typer.echo(f"  {i}. {step}")


@app.command("gitops")
def gitops(
    directory: Annotated[Path, typer.Option("--dir", help="Root of the git repository to reorganise.")] = Path("."),
    path: Annotated[str, typer.Option("--path", help="Directory of the service bases: <path>/<namespace>/<service>/."
                                      )] = "apps",
    cluster: Annotated[str | None, typer.Option("--cluster", help="Name of the directory under clusters/ for the Flux "
                                                "objects (default: the only one there, else 'default').")] = None,
    url: Annotated[str | None, typer.Option("--url", help="URL Flux clones the repository from (default: the git "
                                            "remote).")] = None,
    branch: Annotated[str | None, typer.Option("--branch", help="Branch Flux follows (default: the current one)."
                                               )] = None,
    interval: Annotated[str, typer.Option("--interval", help="How often Flux looks for new commits.")] = "1m0s",
    flux_namespace: Annotated[str | None, typer.Option("--flux-namespace", help="Namespace of the Flux objects "
                                                       "(default: flux-system).")] = None,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    bundle: Annotated[Path | None, typer.Option("--bundle", "-b", help="Cluster bundle to take what runs from "
                                                "(instead of a live cluster).")] = None,
    request_timeout: RequestTimeoutOpt = "30s",
    prefer: Annotated[list[str] | None, typer.Option("--prefer", metavar="FILE", help="Keep the definitions in this "
                                                     "file when there are several (repeatable).")] = None,
    keep_variants: Annotated[bool, typer.Option("--keep-variants", help="Keep every variant of a service (same "
                                                "image, names with a common prefix) instead of one.")] = False,
    apply: Annotated[bool, typer.Option("--apply", help="Make the changes (default: print the plan only).")] = False,
    commit: Annotated[bool, typer.Option("--commit", help="Commit the changes (with --apply).")] = False,
    allow_dirty: Annotated[bool, typer.Option("--allow-dirty", help="Apply even when the files involved have "
                                              "uncommitted changes.")] = False,
    config: ConfigOpt = None,
) -> None:
    """One kustomize base per service, applied by Flux.

    Manifests applied as plain files (kubectl apply -f) move into <path>/<namespace>/<service>/ with a
    kustomization.yaml; clusters/<cluster>/ gets the Flux GitRepository and one Flux Kustomization per service.
    When an object is defined several times, the definition closest to the live cluster wins (--kubeconfig/--context
    or --bundle), set to what runs; without a cluster, the most recently committed one. Prints the plan; --apply
    makes it (git mv, git rm; staged), --commit commits it. What kustomize, Flux, Argo CD or Helm renders is left
    alone."""
    from kubeshape.redact import redact_text
    from kubeshape.scaffold.gitops import execute, text
    from kubeshape.scaffold.gitops.plan import Options, build

    if commit and not apply:
        raise InputError("--commit commits what --apply changes: add --apply")
    if bundle is not None and (kubeconfig is not None or context is not None):
        raise InputError("--context/--kubeconfig read a live cluster; drop them or --bundle")
    timeout = parse_request_timeout(request_timeout)
    read = None
    if bundle is not None:
        read = _bundle_reader(bundle)
    elif kubeconfig is not None or context is not None:
        read = _live_reader(kubeconfig, context, timeout)
    opts = Options(directory=directory, apps=path, cluster=cluster, flux_namespace=flux_namespace, url=url,
                   branch=branch, interval=interval, prefer=list(prefer or []), keep_variants=keep_variants,
                   config=config)
    plan = build(opts, read)
    for line in text.render(plan, apply=apply):
        typer.echo(redact_text(line))
    if plan.empty:
        return
    if not apply:
        typer.echo("\nDry run: nothing was changed. Run again with --apply to make these changes (and --commit to "
                   "commit them).")
        return
    done = execute.apply(plan, commit=commit, allow_dirty=allow_dirty)
    summary = (f"{done.moved} moved (git mv), {done.edited} edited, {done.created} new, {done.removed} removed "
               "(git rm)")
    if done.commit:
        typer.echo(f"\nDone: {summary}; committed {done.commit[:12]}.")
    else:
        typer.echo(f"\nDone: {summary}; staged, not committed -- review with 'git diff --cached -M', then commit.")
    if plan.writes_sync:
        sync = f"clusters/{plan.settings.cluster}/flux-system/gotk-sync.yaml"
        typer.echo(f"Then push, install Flux (flux install) and apply {sync} (kubectl apply -f {sync}), or "
                   f"bootstrap Flux with --path=clusters/{plan.settings.cluster}.")


def _bundle_reader(bundle: Path) -> Callable[[list[str]], tuple[ClusterSource, str]]:
    def read(namespaces: list[str]) -> tuple[ClusterSource, str]:
        from kubeshape.sources.bundle import load_bundle

        cluster, _ = load_bundle(bundle)
        return cluster, (f"the cluster bundle {bundle}: the definition closest to what runs there is kept and set to "
                         "what runs")
    return read


def _live_reader(kubeconfig: Path | None, context: str | None,
                 timeout: float | None) -> Callable[[list[str]], tuple[ClusterSource, str]]:
    def read(namespaces: list[str]) -> tuple[ClusterSource, str]:
        from kubeshape.cli.live import LiveOptions, read_live

        [cluster] = read_live(LiveOptions(kubeconfig, [context] if context else None, namespaces or None, 20.0, 0,
                                          False, timeout))
        where = f" (namespaces {', '.join(namespaces)})" if namespaces else ""
        return cluster, (f"the live cluster, context {cluster.name}{where}: the definition closest to what runs is "
                         "kept and set to what runs")
    return read
