"""KS3xx pipeline: images nobody can trace to a commit, services no CI builds."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator

from kubeshape.findings import Finding, Severity
from kubeshape.imageref import ImageRef, parse_or_none
from kubeshape.inventory import Inventory, containers
from kubeshape.rules._common import dedupe_key, workload_containers
from kubeshape.rules.base import Context, rule

_SHA_TOKEN = re.compile(r"(?:^|[^0-9a-f])g?([0-9a-f]{7,40})(?:$|[^0-9a-f])")

WORKFLOW_TEMPLATE = """\
# .github/workflows/{name}.yml
name: build {name}
on:
  push:
    branches: [main]
    paths: ["{context}/**"]
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with: {{fetch-depth: 0}}
      - run: pip install kubeshape
      - run: kubeshape release {context} --image {image} --push
"""


def _commit_token(tag: str) -> str | None:
    m = _SHA_TOKEN.search(tag)
    if m and any(ch.isalpha() for ch in m.group(1)) and any(ch.isdigit() for ch in m.group(1)):
        return m.group(1)
    return None


@rule("KS301", "untraceable-tag", severity=Severity.WARNING)
def untraceable_tag(ctx: Context) -> Iterator[Finding]:
    """Deployed image tag that cannot be traced to a commit.

    ## What it does
    Checks that deployed image tags follow the tag scheme (`tag_scheme` in kubeshape.yaml; by default a
    SemVer release or a tag containing the commit SHA). With a git repository loaded, a SHA in the tag
    must be a commit of that repository.

    ## Why is this bad?
    Tags like `fixed-final` or `phase2-mcp-logging-fix` say nothing about the code inside. Nobody can
    tell what runs, reproduce it, or roll back to "last known good".

    ## Example
    ```yaml
      image: 100.81.76.55:30500/family-assistant:me-fixed
    ```

    ## Fix
    Build and push from CI with a tag that names the commit, e.g. `main-abc1234-1763373600`
    (`<branch>-<sha7>-<unix commit time>`; `1.4.2` on a `v1.4.2` git tag -- `kubeshape release` computes it),
    and deploy that tag.
    """
    pattern = ctx.cfg.tag_pattern
    git = ctx.inv.git
    for obj, c in workload_containers(ctx.inv):
        ref = parse_or_none(c.image)
        if ref is None or ref.mutable or ref.tag is None:
            continue  # KS103 covers latest/no tag; digest-only is traceable enough to run
        if pattern.search(ref.tag):
            token = _commit_token(ref.tag)
            if git is None or token is None or not _own_image(ctx.inv, ref) or \
                    any(sha.startswith(token) for sha in git.commits):
                continue
            yield ctx.finding(
                obj, f"image tag {ref.tag} names commit {token}, which is not in this repository",
                path=f"{c.path}.image", evidence=[f"container {c.name}: image {c.image}",
                                                  f"git repository {git.root} has no commit {token}…"],
                root_cause="The image was built from a commit that was never pushed (a local branch or a "
                           "rebased history).", fix="Rebuild from a pushed commit with `kubeshape release`.",
                dedupe=dedupe_key(obj, c, c.image))
            continue
        yield ctx.finding(
            obj, f"image tag {ref.tag!r} does not name a commit or release", path=f"{c.path}.image",
            evidence=[f"container {c.name}: image {c.image}", f"tag scheme: {ctx.cfg.tag_scheme}"],
            root_cause="Images are built and tagged by hand with descriptive names instead of by CI from a commit.",
            fix=f"kubeshape release --image {ref.name} --push   # tags X.Y.Z on a vX.Y.Z git tag, else "
                "<branch>-<sha7>-<unix commit time>; pushes, verifies, updates the manifest and commits",
            dedupe=dedupe_key(obj, c, c.image))


def _own_image(inv: Inventory, ref: ImageRef) -> bool:
    """True for images this team builds (on a snapshotted registry or unqualified)."""
    if not ref.qualified:
        return True
    return inv.registry is not None and ref.registry in inv.registry.hosts


def _ci_mentions(ci_files: dict[str, str], *needles: str) -> list[str]:
    return sorted(f for f, text in ci_files.items() if any(n and n in text for n in needles))


@rule("KS302", "dockerfile-without-ci", severity=Severity.WARNING, requires=("repo",))
def dockerfile_without_ci(ctx: Context) -> Iterator[Finding]:
    """Service with a Dockerfile that no CI workflow builds.

    ## What it does
    For every Dockerfile in the repository, looks for a CI workflow (GitHub Actions, GitLab CI, Gitea/
    Forgejo, Woodpecker, Drone, Jenkins, Tekton…) that mentions its directory.

    ## Why is this bad?
    Its images are built by hand (`docker build -t …:some-tag`): untested, untraceable, sometimes never
    pushed — the source of tag sprawl and node-local images.

    ## Example
    ```text
    services/family-assistant-enhanced/Dockerfile  — no workflow builds it
    ```

    ## Fix
    Add a workflow that builds it on push and tags it by commit (see the fix text for a complete one).
    """
    repo = ctx.inv.repo
    assert repo is not None
    private = ctx.cfg.registries.private
    for df in repo.dockerfiles:
        context = posixpath.dirname(df) or "."
        if _ci_mentions(repo.ci_files, f"{context}/", f"{context}\"", f"{context}'", df) and context != ".":
            continue
        if context == "." and repo.ci_files:
            continue
        name = posixpath.basename(context) if context != "." else posixpath.basename(repo.root)
        image = f"{private[0]}/{name}" if private else name
        builders = [f"{f} builds {', '.join(_built_dirs(t, repo.dockerfiles)) or 'something else'}"
                    for f, t in repo.ci_files.items()]
        yield ctx.finding(
            None, f"{df}: no CI workflow builds this image", file=df, line=1, source="repo",
            evidence=[f"Dockerfile {df}", *(builders or ["the repository has no CI workflow at all"])],
            root_cause="Images for this service are built manually, so nothing ties them to a commit or "
                       "guarantees they are pushed.",
            fix=WORKFLOW_TEMPLATE.format(name=name, context=context, image=image))


def _built_dirs(text: str, dockerfiles: list[str]) -> list[str]:
    return sorted({posixpath.dirname(d) for d in dockerfiles if posixpath.dirname(d) and
                   posixpath.dirname(d) + "/" in text})


@rule("KS303", "image-not-built-by-ci", severity=Severity.WARNING, requires=("repo", "cluster"))
def image_not_built_by_ci(ctx: Context) -> Iterator[Finding]:
    """Deployed image of your own that no CI workflow produces.

    ## What it does
    For live workloads running images of your own (from your private registries, or unqualified), checks
    that some CI workflow in the repo names that image repository.

    ## Why is this bad?
    The running image was built and pushed by hand: nobody can say from which commit, with which tests.

    ## Example
    ```text
    family-assistant-backend runs family-assistant:phase2-mcp-logging-fix; no workflow builds family-assistant
    ```

    ## Fix
    Add a CI workflow that builds and pushes the image with a traceable tag, and deploy only its output.
    """
    repo = ctx.inv.repo
    assert repo is not None
    seen: set[tuple[str, str, str]] = set()
    for obj in ctx.inv.live_workloads:
        for c in containers(obj):
            ref = parse_or_none(c.image)
            if ref is None or not (not ref.qualified or ref.registry in ctx.cfg.registries.private):
                continue
            key = (obj.namespace, obj.name, ref.path)
            if key in seen or _ci_mentions(repo.ci_files, ref.path, posixpath.basename(ref.path) + ":",
                                           posixpath.basename(ref.path) + "/"):
                continue
            seen.add(key)
            yield ctx.finding(
                obj, f"{obj.name} runs {c.image}, which no CI workflow builds",
                evidence=[f"container {c.name}: image {c.image}",
                          f"CI workflows: {', '.join(repo.ci_files) or 'none'} — none mentions {ref.path}"],
                root_cause="The image was built and deployed by hand (docker build / push / kubectl set image).",
                fix=WORKFLOW_TEMPLATE.format(name=posixpath.basename(ref.path),
                                             context=f"services/{posixpath.basename(ref.path)}",
                                             image=(ctx.cfg.registries.private or ["<registry>"])[0]
                                             + "/" + ref.path),
                source="cluster")

