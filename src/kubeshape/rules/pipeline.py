"""KS3xx pipeline: images nobody can trace to a commit, services no CI builds."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator

from kubeshape.findings import Finding, Severity
from kubeshape.imageref import ImageRef, parse_or_none
from kubeshape.inventory import containers
from kubeshape.rules._common import dedupe_key, registry_index, workload_containers
from kubeshape.rules.base import Context, rule

_SHA_TOKEN = re.compile(r"(?:^|[^0-9a-f])g?([0-9a-f]{7,40})(?:$|[^0-9a-f])")
# CI lines that run an image rather than build it (a job or service container, a pull).
_RUNS_IMAGE = re.compile(r"^\s*(?:-\s*)?(?:image|container)\s*:|\b(?:docker|podman)\s+(?:run|pull)\b")

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
    """Deployed image tag of your own that cannot be traced to a commit.

    ## What it does
    For images you build -- on a registry listed in `registries.private`, or an image repository that
    this repository builds (a CI workflow names it, or builds a Dockerfile in a directory of that name) --
    checks that deployed tags follow the tag scheme (`tag_scheme` in kubeshape.yaml; by default a SemVer
    release or a tag containing the commit SHA). With a git repository loaded, a SHA in the tag must be a
    commit of that repository. Third-party images and images pinned by digest are never flagged; with no
    private registry configured and no CI workflow, nothing is.

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
        if ref is None or ref.mutable or ref.tag is None or ref.digest or not _own_image(ctx, ref):
            continue  # KS103 covers latest/no tag; a digest names exactly one build
        if pattern.search(ref.tag):
            token = _commit_token(ref.tag)
            if git is None or token is None or any(sha.startswith(token) for sha in git.commits):
                continue
            yield ctx.finding(
                obj, f"image tag {ref.tag} names commit {token}, which is not in this repository",
                path=c.image_path, evidence=[f"container {c.name}: image {c.image}",
                                             f"git repository {git.root} has no commit {token}…"],
                root_cause="The image was built from a commit that was never pushed (a local branch or a "
                           "rebased history).", fix="Rebuild from a pushed commit with `kubeshape release`.",
                dedupe=dedupe_key(obj, c, c.image))
            continue
        yield ctx.finding(
            obj, f"image tag {ref.tag!r} does not name a commit or release", path=c.image_path,
            evidence=[f"container {c.name}: image {c.image}", f"tag scheme: {ctx.cfg.tag_scheme}"],
            root_cause="Images are built and tagged by hand with descriptive names instead of by CI from a commit.",
            data={"image": c.image, "tag": ref.tag},
            fix=f"kubeshape release --image {ref.name} --push   # tags X.Y.Z on a vX.Y.Z git tag, else "
                "<branch>-<sha7>-<unix commit time>; pushes, verifies, updates the manifest and commits",
            dedupe=dedupe_key(obj, c, c.image))


def _own_image(ctx: Context, ref: ImageRef) -> bool:
    """An image this team builds: on one of its private registries, or built by this repository's CI."""
    private = _private_hosts(ctx)
    if ref.qualified and ref.registry in private:
        return True
    if not ref.qualified and ctx.inv.registry is not None and \
            any(r.host in private for r in registry_index(ctx.inv).named(ref.path)):
        return True
    if not ref.qualified and ref.path in ctx.inv.memo("pipeline.private_paths", lambda: _private_paths(ctx)):
        return True  # `family-assistant:fixed` where `<private>/family-assistant:…` is deployed too
    repo = ctx.inv.repo
    if repo is None or not repo.ci_files:
        return False
    built: dict[str, bool] = ctx.inv.memo("pipeline.ci_built", dict)
    if ref.name not in built:
        built[ref.name] = _ci_builds(repo.ci_files, repo.dockerfiles, ref)
    return built[ref.name]


def _has_dockerfile(ctx: Context, dockerfiles: list[str], ref: ImageRef) -> bool:
    """A Dockerfile in a directory named like the image (``services/family-assistant/Dockerfile``)."""
    dirs = ctx.inv.memo("pipeline.dockerfile_dirs",
                        lambda: {posixpath.basename(posixpath.dirname(d)) for d in dockerfiles})
    return posixpath.basename(ref.path) in dirs


def _private_hosts(ctx: Context) -> set[str]:
    """The team's registries: ``registries.private``, else the registries kubeshape was given to read."""
    if ctx.cfg.registries.private:
        return set(ctx.cfg.registries.private)
    return set(registry_index(ctx.inv).hosts) if ctx.inv.registry is not None else set()


def _private_paths(ctx: Context) -> set[str]:
    """Repository paths that some workload pulls from one of the team's private registries."""
    private = _private_hosts(ctx)
    out: set[str] = set()
    for _, c in workload_containers(ctx.inv):
        ref = parse_or_none(c.image)
        if ref is not None and ref.qualified and ref.registry in private:
            out.add(ref.path)
    return out


def _ci_builds(ci_files: dict[str, str], dockerfiles: list[str], ref: ImageRef) -> bool:
    """A CI workflow names the image (not as one it runs), or builds a Dockerfile directory of its name."""
    path = re.escape(ref.path)
    # Qualified: the whole name. Unqualified: ``path:tag``/``path@digest``, or ``host/path`` as a word.
    named = re.compile(rf"(?<![\w.-]){re.escape(ref.name)}(?![\w./-])" if ref.qualified
                       else rf"(?<![\w.-]){path}(?=[:@][\w$])|/{path}(?![\w./-])")
    base = posixpath.basename(ref.path)
    for text in ci_files.values():
        if any(posixpath.basename(d) == base for d in _built_dirs(text, dockerfiles)):
            return True
        if any(named.search(line) and not _RUNS_IMAGE.search(line) for line in text.splitlines()):
            return True
    return False


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
        image = f"{private[0] if private else '<your-registry>'}/{name}"
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
    For live workloads running images of your own (from your private registries, or unqualified images
    whose repository your registry holds or a Dockerfile of this repository builds), checks that some CI
    workflow in the repo names that image repository.

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
            if ref is None or not (_own_image(ctx, ref) or _has_dockerfile(ctx, repo.dockerfiles, ref)):
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
                                             image=(ctx.cfg.registries.private or ["<your-registry>"])[0]
                                             + "/" + ref.path),
                source="cluster")

