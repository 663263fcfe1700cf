"""``kubeshape init ci``: CI files that lint every change and release from the default branch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubeshape import __version__
from kubeshape.cli.subapp import sub_app
from kubeshape.errors import InputError
from kubeshape.scaffold.detect import RepoFacts, inspect
from kubeshape.scaffold.render import GITHUB, GITLAB, CiFile, Settings, render
from kubeshape.scaffold.write import apply, plan

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
