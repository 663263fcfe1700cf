"""Family 4 -- no image tagging strategy: tag sprawl, untraceable tags, unused tags, local-only images."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kubeshape.findings import Finding, ObjectRef, Severity
from kubeshape.imageref import ImageRef, parse_or_none
from kubeshape.inventory import Inventory, K8sObject, RegistryRepo, RegistrySnapshot, TagInfo, containers
from kubeshape.rules import _gitops
from kubeshape.rules._common import RegistryIndex, registry_index
from kubeshape.rules.base import Context, rule
from kubeshape.timeutil import format_time, human_duration
from kubeshape.usage import ImageUse, RepoUses, human_bytes, image_uses, reclaimable, registry_uses

if TYPE_CHECKING:
    from kubeshape.config import Config

SAMPLE = 8
# An example of the default tag scheme (config.DEFAULT_TAG_SCHEME, docs/tag-scheme.md): a commit without a
# release tag gets <branch-slug>-<sha7>-<unix commit time>; a commit tagged vX.Y.Z gets X.Y.Z.
EXAMPLE_TAG = "main-abc1234-1763373600"
TAG_RECIPE = (
    "test -z \"$(git status --porcelain)\" || { echo 'commit first: a dirty tree is not traceable'; exit 1; }\n"
    "if V=$(git describe --tags --exact-match --match 'v[0-9]*.[0-9]*.[0-9]*' HEAD 2>/dev/null); then\n"
    "  TAG=${V#v}\n"
    "else\n"
    "  BRANCH=$(git rev-parse --abbrev-ref HEAD | tr 'A-Z' 'a-z' | sed -E 's/[^a-z0-9]+/-/g; s/^-+|-+$//g')\n"
    '  TAG="$BRANCH-$(git rev-parse --short=7 HEAD | cut -c1-7)-$(git log -1 --format=%ct HEAD)"\n'
    "fi"
)
GC_NOTE = ("Deleting tags frees no disk space by itself: space comes back only after the registry's "
           "garbage-collect (offline: stop the registry or make it read-only first), e.g. "
           "`registry garbage-collect --delete-untagged --dry-run /etc/docker/registry/config.yml`, "
           "then without --dry-run.")
PULL_FAILURES = ("ImagePullBackOff", "ErrImagePull", "ErrImageNeverPull")
HEX_SHA = re.compile(r"[0-9a-f]{7,40}")


def _sample(items: list[str], n: int = SAMPLE) -> str:
    more = len(items) - n
    return ", ".join(items[:n]) + (f" (+{more} more)" if more > 0 else "")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _label(repo: RegistryRepo) -> str:
    return f"{repo.host}/{repo.name}"


def _by_age(repo: RegistryRepo) -> list[TagInfo]:
    """Tags oldest first; tags without a creation time last, by name."""
    return sorted(repo.tags.values(),
                  key=lambda t: (t.created is None, t.created.timestamp() if t.created else 0.0, t.tag))


def _repos(inv: Inventory) -> list[RegistryRepo]:
    snap = inv.registry
    return sorted(snap.repos.values(), key=_label) if snap else []


def _repo_ref(repo: RegistryRepo) -> ObjectRef:
    return ObjectRef("Repository", repo.host, repo.name)


# -- who references which image -------------------------------------------------


def _checked_against(inv: Inventory) -> str:
    parts = []
    if "cluster" in inv.sources:
        parts.append("no live pod or workload")
    if "repo" in inv.sources:
        parts.append("no manifest in the repo")
    return " and ".join(parts)


# -- KS401 ------------------------------------------------------------------------


def _prune_fix(repo: RegistryRepo, keep: int) -> str:
    name = _label(repo)
    return (
        f"Keep the newest {keep} tags with a retention policy in kubeshape.yaml (tags in use and the last "
        f"known good of each workload are always kept):\n\n"
        f"  retention:\n"
        f"    - repository: {name}\n"
        f"      keep_last: {keep}\n"
        f"      keep_tags: ['^v?\\d+\\.\\d+\\.\\d+$']\n\n"
        f"Preview what would go, then prune (usage from your repo and cluster keeps deployed tags safe):\n\n"
        f"  kubeshape registry prune --repository {name} --repo . --kubeconfig ~/.kube/config\n"
        f"  kubeshape registry prune --repository {name} --repo . --kubeconfig ~/.kube/config --apply\n\n"
        f"{GC_NOTE}"
    )


def _age_line(inv: Inventory, what: str, t: TagInfo) -> str:
    assert t.created is not None
    return f"{what}: {t.tag}, created {format_time(t.created)} ({human_duration(inv.now - t.created)} ago)"


@rule("KS401", "tag-sprawl", severity=Severity.WARNING, requires=("registry",))
def tag_sprawl(ctx: Context) -> Iterator[Finding]:
    """A registry repository holds more tags than the configured limit.

    ## What it does
    Counts the tags of every snapshotted registry repository and reports those with more than
    `thresholds.max_tags_per_repository` (default 10).

    ## Why is this bad?
    Nobody prunes, so every hand-made build stays forever: disk fills up (45 tags × 1.5 GB), and
    nobody can tell which of `fixed`, `fixed-final` and `fixed-v5` is the one to roll back to.

    ## Example
    ```shell
    $ curl -s http://100.81.76.55:30500/v2/family-assistant/tags/list | jq '.tags | length'
    45
    ```

    ## Fix
    Add a retention policy to kubeshape.yaml, run `kubeshape registry prune --repository ... --dry-run`,
    then without `--dry-run`, then the registry's garbage-collect to get the space back.
    """
    limit = ctx.cfg.thresholds.max_tags_per_repository
    for repo in _repos(ctx.inv):
        if len(repo.tags) <= limit:
            continue
        tags = _by_age(repo)
        dated = [t for t in tags if t.created is not None]
        evidence = [f"{len(repo.tags)} tags in {_label(repo)}; the limit is {limit} "
                    "(thresholds.max_tags_per_repository)"]
        if dated:
            evidence += [_age_line(ctx.inv, "oldest", dated[0]), _age_line(ctx.inv, "newest", dated[-1])]
        digests = {t.digest for t in tags if t.digest}
        if digests:
            evidence.append(f"the tags point at {len(digests)} distinct images")
        evidence.append(f"tags (oldest first): {_sample([t.tag for t in tags])}")
        yield ctx.finding(
            _repo_ref(repo), f"{_label(repo)} has {len(repo.tags)} tags (limit {limit})",
            evidence=evidence, fix=_prune_fix(repo, limit), source="registry",
            root_cause="No retention policy: every build pushes a new tag and nothing ever removes old ones.",
            data={"tags": len(repo.tags), "limit": limit})


# -- KS402 ------------------------------------------------------------------------


def _retag(repo: RegistryRepo, t: TagInfo, uses: set[str]) -> str:
    """How to give a deployed untraceable tag a traceable name (or why it has to be rebuilt)."""
    name = _label(repo)
    users = ", ".join(sorted(uses))
    if not t.revision or not HEX_SHA.fullmatch(t.revision):
        return (f"  {t.tag} (used by {users}): its commit is unknown -- rebuild it from the commit you "
                f"run with `kubeshape release` and point the manifests at the new tag")
    sha = t.revision[:7]
    new_tag = f"sha-{sha}"  # the scheme's name for an image known only by its commit
    return (f"  {t.tag} (built from commit {sha}; used by {users}):\n"
            f"    NEW={new_tag}\n"
            f"    docker pull {name}:{t.tag}\n"
            f"    docker tag {name}:{t.tag} {name}:$NEW\n"
            f"    docker push {name}:$NEW\n"
            f"    then point the manifests at {name}:$NEW")


def _scheme_fix(repo: RegistryRepo, cfg: Config, deployed: list[tuple[TagInfo, set[str]]]) -> str:
    name = _label(repo)
    if cfg.tag_pattern.search(EXAMPLE_TAG):
        how = (f"Tag every build with a tag that names its commit, e.g. {EXAMPLE_TAG} "
               f"(<branch>-<sha7>-<unix commit time>, or X.Y.Z on a release tag):\n\n{_indent(TAG_RECIPE)}\n"
               f"  docker build -t {name}:$TAG . && docker push {name}:$TAG\n\n"
               "or let `kubeshape release` build, tag and push it that way.")
    else:
        how = (f"Tag every build so the tag matches tag_scheme `{cfg.tag_scheme}` and names its commit "
               "(`kubeshape release` does this).")
    if deployed:
        how += ("\n\nRetag the deployed ones first, so nothing running uses an untraceable tag:\n"
                + "\n".join(_retag(repo, t, uses) for t, uses in deployed[:SAMPLE]))
    return how + "\n\nThen prune the rest (see KS401/KS403)."


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


@rule("KS402", "meaningless-tags", severity=Severity.WARNING, requires=("registry",))
def meaningless_tags(ctx: Context) -> Iterator[Finding]:
    """Registry tags that follow no scheme and cannot be traced to a commit.

    ## What it does
    Checks every tag of every snapshotted repository against `tag_scheme` in kubeshape.yaml (by default
    SemVer, `<branch>-<sha7>-<unix time>`, `sha-<sha>`) and reports
    the repositories with tags that do not match, naming those that are deployed.

    ## Why is this bad?
    A tag like `fixed-v5` says nothing about the code inside: nobody can tell which commit runs,
    which tag was the last good one, or roll back with confidence.

    ## Example
    ```shell
    docker build -t 100.81.76.55:30500/family-assistant:fixed-final .   # which commit is this?
    ```

    ## Fix
    Tag from git, e.g. `main-abc1234-1763373600` (or `1.4.2` on a release tag), with `kubeshape release`;
    retag the deployed untraceable tags first, then prune the rest.
    """
    pattern = ctx.cfg.tag_pattern
    loaded = bool({"repo", "cluster"} & ctx.inv.sources)
    uses = registry_uses(ctx.inv, ctx.cfg) if loaded else {}
    for repo in _repos(ctx.inv):
        bad = [t for t in _by_age(repo) if not pattern.search(t.tag)]
        if not bad:
            continue
        repo_uses = uses.get((repo.host, repo.name), RepoUses())
        deployed = [(t, w) for t in bad if (w := repo_uses.of(t))]
        evidence = [f"{len(bad)} of {len(repo.tags)} tags of {_label(repo)} do not match the configured "
                    "tag_scheme", f"examples: {_sample([t.tag for t in bad])}"]
        if not loaded:
            evidence.append("which of them are deployed was not checked: load the repo or the cluster")
        for t, where in deployed[:SAMPLE]:
            evidence.append(f"deployed, retag first: {t.tag} used by {', '.join(sorted(where))}")
        yield ctx.finding(
            _repo_ref(repo), f"{_count(len(bad), 'tag')} of {_label(repo)} cannot be traced to a commit",
            evidence=evidence, fix=_scheme_fix(repo, ctx.cfg, deployed), source="registry",
            root_cause="Images are tagged by hand with whatever name seems descriptive at the moment, "
                       "not from the commit they were built from.",
            data={"untraceable": len(bad), "tags": len(repo.tags), "deployed": [t.tag for t, _ in deployed]})


# -- KS403 ------------------------------------------------------------------------


@rule("KS403", "unused-tags", severity=Severity.INFO, requires=("registry",))
def unused_tags(ctx: Context) -> Iterator[Finding]:
    """Registry tags that nothing deploys, and the space deleting them would free.

    ## What it does
    Matches each tag (by registry host, repository path and tag, and by digest for `@sha256:`
    references) against the images of live pods and workloads and of the repo's manifests, and sums the
    layer blobs only unused images hold (shared layers counted once). An unqualified `family-assistant:x`
    counts for a private registry's `family-assistant` only when exactly one private registry has it.
    Needs the repo or the cluster.

    ## Why is this bad?
    Unused tags are dead weight: they fill the registry's disk and hide the few tags that matter.

    ## Example
    ```yaml
    # only 100.81.76.55:30500/family-assistant:me-fixed is referenced; 44 more tags sit in the registry
    image: 100.81.76.55:30500/family-assistant:me-fixed
    ```

    ## Fix
    Prune with `kubeshape registry prune --repository ... --dry-run` first, then run the registry's
    garbage-collect: deleting tags alone frees nothing.
    """
    if not {"repo", "cluster"} & ctx.inv.sources:
        return
    uses = registry_uses(ctx.inv, ctx.cfg)
    checked = _checked_against(ctx.inv)
    for repo in _repos(ctx.inv):
        repo_uses = uses.get((repo.host, repo.name), RepoUses())
        tags = _by_age(repo)
        kept = [t for t in tags if repo_uses.of(t)]
        unused = [t for t in tags if not repo_uses.of(t)]
        if not unused:
            continue
        size, blobs = reclaimable(unused, kept)
        evidence = [f"{len(unused)} of {len(repo.tags)} tags are referenced by {checked}",
                    f"unused: {_sample([t.tag for t in unused])}"]
        if size:
            how = f"{blobs} layer blobs only unused images hold, shared layers counted once" if blobs else \
                "image sizes, no layer data"
            evidence.append(f"reclaimable: {human_bytes(size)} ({how})")
        evidence += [f"in use: {t.tag} by {', '.join(sorted(repo_uses.of(t)))}" for t in kept[:SAMPLE]]
        evidence.append("space is only reclaimed by the registry's garbage-collect")
        size_note = f" ({human_bytes(size)} reclaimable)" if size else ""
        yield ctx.finding(
            _repo_ref(repo), f"{len(unused)} of {len(repo.tags)} tags of {_label(repo)} are not used{size_note}",
            evidence=evidence, fix=_prune_fix(repo, ctx.cfg.thresholds.max_tags_per_repository),
            source="registry", root_cause="Every build is pushed under a new tag and old tags are never "
                                          "deleted once a newer one is deployed.",
            data={"unused": len(unused), "tags": len(repo.tags), "reclaimable_bytes": size})


# -- KS404 ------------------------------------------------------------------------


@dataclass(slots=True)
class _LocalImage:
    """A tag found on nodes but not in the registry repository it belongs to."""

    repo: RegistryRepo
    local_name: str  # the name as it was built, e.g. family-assistant:phase2-mcp-logging-fix
    tag: str
    normalized: tuple[str, str]
    nodes: dict[str, int] = field(default_factory=dict)  # node → size in bytes

    @property
    def target(self) -> str:
        return f"{_label(self.repo)}:{self.tag}"


def _short_name(ref: ImageRef) -> str:
    """The name as `docker build -t` wrote it: docker.io/library/x → x."""
    name = ref.normalized_name
    for prefix in ("docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _home_repo(ref: ImageRef, snap: RegistrySnapshot, index: RegistryIndex, private: set[str]) -> list[RegistryRepo]:
    """Registry repositories a node image belongs to: its own, or one with the same path."""
    if ref.domain is not None and (own := snap.repo(ref.domain, ref.path)):
        return [own]
    if ref.registry not in ("docker.io", "index.docker.io"):
        return []
    found = [r for r in index.named(_short_name(ref)) if r.host not in ("docker.io", "index.docker.io")]
    preferred = [r for r in found if r.host in private]
    return sorted(preferred or found, key=_label)


def _local_images(inv: Inventory, cfg: Config) -> list[_LocalImage]:
    snap = inv.registry
    assert snap is not None
    private = set(cfg.registries.private)
    index = registry_index(inv)
    found: dict[tuple[str, str, str], _LocalImage] = {}
    for node in inv.live("Node"):
        for entry in node.status.get("images") or []:
            refs = [r for n in entry.get("names") or [] if (r := parse_or_none(str(n))) is not None]
            digested = {r.normalized_name for r in refs if r.digest}
            for ref in refs:
                if ref.digest or not ref.tag or ref.normalized_name in digested:
                    continue  # a repo digest means it was pulled from a registry, not built here
                homes = _home_repo(ref, snap, index, private)
                if not homes or any(ref.tag in h.tags for h in homes):
                    continue
                key = (homes[0].host, homes[0].name, ref.tag)
                img = found.setdefault(key, _LocalImage(homes[0], f"{_short_name(ref)}:{ref.tag}", ref.tag,
                                                        (ref.normalized_name, ref.tag)))
                img.nodes[node.name] = int(entry.get("sizeBytes") or 0)
    return [found[k] for k in sorted(found)]


def _workload_uses(inv: Inventory) -> dict[tuple[str, str], list[ImageUse]]:
    """Image uses by (normalized name, tag); built once per inventory."""
    return inv.memo("registry.workload_uses", lambda: _build_workload_uses(inv))


def _build_workload_uses(inv: Inventory) -> dict[tuple[str, str], list[ImageUse]]:
    """Image uses by (normalized name, tag), one per workload container (and per pod of an unseen owner)."""
    out: dict[tuple[str, str], list[ImageUse]] = defaultdict(list)
    seen: set[tuple[str, str, str, str, str]] = set()
    names: dict[str, tuple[str, str | None]] = {}  # by reference text: pods repeat their workload's images
    wheres: dict[int, str] = {}
    for use in image_uses(inv):
        name_tag = names.get(use.ref.raw)
        if name_tag is None:
            name_tag = names[use.ref.raw] = (use.ref.normalized_name, use.ref.effective_tag)
        name, tag = name_tag
        if not tag:
            continue
        where = wheres.get(id(use.obj))
        if where is None:
            where = wheres[id(use.obj)] = use.where
        key = (where, use.container, use.path, name, tag)
        if key not in seen:
            seen.add(key)
            out[(name, tag)].append(use)
    return out


def _pull_failures(inv: Inventory) -> dict[tuple[str, str], list[str]]:
    """Pods failing to pull an image, by (normalized name, tag)."""
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for pod in inv.live("Pod"):
        images: dict[str, str] | None = None
        for st in (pod.status.get("initContainerStatuses") or []) + (pod.status.get("containerStatuses") or []):
            reason = str(((st.get("state") or {}).get("waiting") or {}).get("reason") or "")
            if reason not in PULL_FAILURES:
                continue
            if images is None:
                images = {c.name: c.image for c in containers(pod)}
            ref = parse_or_none(images.get(str(st.get("name")), ""))
            if ref is not None and ref.effective_tag:
                node = pod.spec.get("nodeName") or "no node"
                out[(ref.normalized_name, ref.effective_tag)].append(
                    f"pod {pod.namespace}/{pod.name} on {node}: {reason}")
    return out


def _file_edits(inv: Inventory, use: ImageUse, target: str) -> dict[tuple[str, int], str]:
    """Lines to change in the repo: the use's own file, or the files defining the live workload."""
    copies = [use.obj] if use.obj.file else inv.repo_by_key.get(use.obj.key, [])
    edits: dict[tuple[str, int], str] = {}
    for o in copies:
        for c in containers(o):
            if c.name == use.container and o.file:
                line = o.line_of(f"{c.path}.image") or 0
                edits[(o.file, line)] = (f"  {o.file}{f':{line}' if line else ''}: image: {target}"
                                         f"   # container {c.name} of {o.ref}")
    return edits


def _flux_change(inv: Inventory, use: ImageUse, target: str) -> str | None:
    """The image change of a live workload Flux applies: in the repository's copy, committed and pushed."""
    c = next((c for c in containers(use.obj) if c.name == use.container), None)
    if use.obj.source != "cluster" or c is None:
        return None
    return _gitops.change(inv, use.obj, [_gitops.Edit(_gitops.container_path(c, "image"), target)])


def _update_steps(inv: Inventory, uses: list[ImageUse], target: str) -> tuple[list[str], list[str]]:
    """Edit the manifests (and apply, or under Flux commit and push), or ``kubectl set image`` a live workload no
    file defines; the second list holds the steps for live workloads Flux applies."""
    edits: dict[tuple[str, int], str] = {}
    edited: list[K8sObject] = []
    commands: set[str] = set()
    flux: dict[str, None] = {}
    for use in uses:
        if not use.path:
            continue
        flux_step = _flux_change(inv, use, target)
        if flux_step is not None:
            flux[flux_step] = None
            continue
        found = _file_edits(inv, use, target)
        edits.update(found)
        if found:
            edited.append(use.obj)
        else:
            o = use.obj
            commands.add(f"  kubectl set image {o.kind.lower()}/{o.name} {use.container}={target} -n {o.namespace}")
    steps = [edits[k] for k in sorted(edits)]
    files = sorted({f for f, _ in edits})
    published = _gitops.publish(inv, edited) if files else None
    if published is not None:
        flux[published] = None
    elif len(files) == 1:
        steps.append(f"  then `kubectl apply -f {files[0]}`")
    elif files:
        steps.append(f"  then apply the one you deploy from ({len(files)} files define it: see KS2xx)")
    return steps + sorted(commands), list(flux)


def _push_fix(inv: Inventory, img: _LocalImage, uses: list[ImageUse]) -> str:
    nodes = ", ".join(sorted(img.nodes))
    commands = [f"docker tag {img.local_name} {img.target}"] if img.local_name != img.target else []
    commands.append(f"docker push {img.target}")
    text = f"On {nodes}, push the image to the registry:\n\n" + "\n".join(f"  {c}" for c in commands)
    steps, flux = _update_steps(inv, uses, img.target)
    if steps:
        text += "\n\nThen reference it by its registry-qualified name:" + "".join(f"\n{s}" for s in steps)
    text += "".join(f"\n\n{f}" for f in flux)
    return text


@rule("KS404", "local-only-image", severity=Severity.ERROR, requires=("cluster", "registry"))
def local_only_image(ctx: Context) -> Iterator[Finding]:
    """An image tag exists only in a node's local image store, never pushed to the registry.

    ## What it does
    Reads the images each node holds (`status.images`), finds tags of repositories that also exist in
    a snapshotted registry (`docker.io/library/family-assistant` ↔ `100.81.76.55:30500/family-assistant`)
    and reports tags the registry does not have and that no node pulled (no repo digest), with the
    workloads that use them (error) or, grouped per repository, that nothing uses yet (warning).

    ## Why is this bad?
    The image was built by hand on one node. Pods scheduled there start; pods scheduled anywhere else
    end in ImagePullBackOff -- every deployment becomes a gamble on the scheduler.

    ## Example
    ```yaml
    image: family-assistant:phase2-mcp-logging-fix   # exists only on node pesubuntu
    ```

    ## Fix
    Tag and push it from that node (`docker tag family-assistant:x 100.81.76.55:30500/family-assistant:x`,
    `docker push 100.81.76.55:30500/family-assistant:x`) and use the registry-qualified name in the manifest.
    """
    images = _local_images(ctx.inv, ctx.cfg)
    if not images:
        return
    uses = _workload_uses(ctx.inv)
    failures = _pull_failures(ctx.inv)
    unused: dict[tuple[str, str], list[_LocalImage]] = defaultdict(list)
    for img in images:
        img_uses = uses.get(img.normalized, [])
        if img_uses:
            yield _local_finding(ctx, img, img_uses, failures.get(img.normalized, []))
        else:
            unused[(img.repo.host, img.repo.name)].append(img)
    for group in unused.values():
        yield _unused_local_finding(ctx, group)


def _node_lines(img: _LocalImage) -> list[str]:
    return [f"node {node} has {img.local_name} ({human_bytes(size)}) in its local image store"
            for node, size in sorted(img.nodes.items())]


def _local_finding(ctx: Context, img: _LocalImage, uses: list[ImageUse], failures: list[str]) -> Finding:
    nodes = ", ".join(sorted(img.nodes))
    evidence = [*_node_lines(img), f"{_label(img.repo)} has {len(img.repo.tags)} tags, not {img.tag}",
                "no node records a repo digest for it: it was built or loaded there, never pulled"]
    evidence += [f"used by {w}" for w in sorted({u.where for u in uses})]
    evidence += failures[:SAMPLE]
    return ctx.finding(
        ObjectRef("Image", img.repo.host, f"{img.repo.name}:{img.tag}"),
        f"{img.local_name} exists only on {nodes}; it was never pushed to {_label(img.repo)}",
        evidence=evidence, fix=_push_fix(ctx.inv, img, uses), source="cluster+registry",
        root_cause=f"The image was built by hand on {nodes} and never pushed, so pods scheduled on any other "
                   "node cannot pull it.",
        data={"image": img.local_name, "nodes": sorted(img.nodes), "registry": _label(img.repo)})


def _unused_local_finding(ctx: Context, group: list[_LocalImage]) -> Finding:
    repo = group[0].repo
    nodes = sorted({n for img in group for n in img.nodes})
    tags = [img.tag for img in group]
    evidence = [f"{_count(len(tags), 'tag')} of {_label(repo)} exist only on {', '.join(nodes)}: {_sample(tags)}",
                *[line for img in group[:SAMPLE] for line in _node_lines(img)],
                "no repo workload or live workload uses them yet"]
    fix = "\n\n".join(_push_fix(ctx.inv, img, []) for img in group[:SAMPLE])
    return ctx.finding(
        _repo_ref(repo), f"{_count(len(tags), 'tag')} of {_label(repo)} only exist in node-local image stores",
        severity=Severity.WARNING, evidence=evidence, source="cluster+registry",
        fix=fix + "\n\nor, if they are stale builds, remove them from the node (`docker rmi ...`).",
        root_cause="Images were built by hand on the nodes and never pushed to the registry.",
        data={"tags": tags, "nodes": nodes, "registry": _label(repo)})
