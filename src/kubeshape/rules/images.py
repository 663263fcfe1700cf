"""KS1xx images: references that only some nodes can pull, never-pull policies, mutable tags."""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from kubeshape.findings import Finding, Severity
from kubeshape.imageref import ImageRef, InvalidReference, parse, parse_or_none
from kubeshape.inventory import Container, Inventory, K8sObject, containers, event_count
from kubeshape.metrics import PULL_FAILURES
from kubeshape.rules import _gitops
from kubeshape.rules._common import (
    dedupe_key,
    kubectl_set_image,
    node_images,
    private_registry_for,
    registry_index,
    set_image_patch,
    workload_containers,
)
from kubeshape.rules.base import Context, rule
from kubeshape.timeutil import format_time, human_duration, parse_time


def _where_present(ctx: Context, image: str) -> list[str]:
    """Evidence lines: which nodes hold the image locally and which do not."""
    ref = parse_or_none(image)
    if ref is None or ctx.inv.cluster is None:
        return []
    idx = node_images(ctx.inv)
    if not idx.nodes:
        return []
    have = sorted(idx.holders(ref))
    missing = sorted(set(idx.nodes) - set(have))
    if not have:
        return [f"no node has {image} in its local image store"]
    out = [f"present only in the local image store of: {', '.join(have)}" if missing
           else f"present in the local image store of every node ({', '.join(have)})"]
    if missing:
        out.append(f"missing on: {', '.join(missing)} (pods scheduled there cannot start)")
    return out


def _registry_evidence(ctx: Context, path: str, tag: str | None) -> tuple[list[str], str | None, bool]:
    """Evidence from the registry snapshot about repository ``path``: (lines, host holding it, tag pushed)."""
    inv = ctx.inv
    if inv.registry is None:
        return [], None, False
    for repo in registry_index(inv).named(path):
        lines = [f"registry {repo.host} has repository {path} with {len(repo.tags)} tags"]
        pushed = bool(tag and tag in repo.tags)
        if pushed:
            lines.append(f"tag {tag} exists there: {repo.host}/{path}:{tag}")
        elif tag:
            lines.append(f"tag {tag} is NOT in {repo.host}/{path} (it was never pushed)")
        return lines, repo.host, pushed
    return [], None, False


@rule("KS101", "unqualified-image", severity=Severity.WARNING)
def unqualified_image(ctx: Context) -> Iterator[Finding]:
    """Image reference without a registry domain.

    ## What it does
    Flags container images written without an explicit registry (`family-assistant:tag` instead of
    `registry.example:5000/family-assistant:tag`). It is an error when the repository exists in one of
    your private registries or the pull policy is `Never`: then the image can only come from a node's
    local store.

    ## Why is this bad?
    The kubelet expands an unqualified name to `docker.io/library/<name>`. An image built on one node
    with `docker build -t family-assistant:tag` runs there and fails with `ImagePullBackOff` on every
    other node — in a real homelab incident half of all deployments failed this way.

    ## Example
    ```yaml
    containers:
    - name: family-assistant
      image: family-assistant:phase2-mcp-logging-fix   # only on the node that built it
    ```

    ## Fix
    Push the image to your registry and reference it by its full name:
    ```yaml
      image: 100.81.76.55:30500/family-assistant:1.4.2-20251117T100000Z.gabc1234
    ```
    For a Docker Hub image, write the registry out: `docker.io/library/redis:7.4`. Prevent it with
    `kubeshape lint` in CI and the admission policy.
    """
    for obj, c in workload_containers(ctx.inv):
        ref = parse_or_none(c.image)
        if ref is None or ref.qualified:
            continue
        evidence = [f"container {c.name}: image {c.image} (resolves to {ref.normalized_name})",
                    f"imagePullPolicy: {c.pull_policy or 'default'}"]
        reg_lines, host, pushed = _registry_evidence(ctx, ref.path, ref.effective_tag)
        evidence += reg_lines
        evidence += _where_present(ctx, c.image) if obj.source == "cluster" else []
        host = host or private_registry_for(ref, ctx.inv, ctx.cfg)
        severe = host is not None and (host in ctx.cfg.registries.private or bool(reg_lines))
        severe = severe or c.pull_policy == "Never"
        yield ctx.finding(
            obj, f"container {c.name} uses unqualified image {c.image}", path=c.image_path,
            severity=Severity.ERROR if severe else Severity.WARNING, evidence=evidence,
            fix=_qualify_fix(ctx.inv, obj, c, ref, host, pushed),
            root_cause=("The image was built or tagged without a registry prefix, so only nodes that built it "
                        "locally can run it; every other node tries docker.io and fails." if host else
                        "The reference relies on the implicit docker.io default."),
            dedupe=dedupe_key(obj, c, c.image), data={"image": c.image, "container": c.name})


# Docker Hub official images people commonly run; an unqualified name from this list is that image.
DOCKER_OFFICIAL = frozenset({
    "adminer", "alpine", "busybox", "caddy", "cassandra", "couchdb", "debian", "eclipse-mosquitto",
    "eclipse-temurin", "elasticsearch", "fedora", "ghost", "golang", "haproxy", "httpd", "influxdb", "kibana",
    "mariadb", "memcached", "mongo", "mysql", "nats", "neo4j", "nextcloud", "nginx", "node", "openjdk", "php",
    "postgres", "python", "rabbitmq", "redis", "registry", "ruby", "rust", "telegraf", "tomcat", "traefik",
    "ubuntu", "wordpress", "zookeeper",
})

_PIN = "\nThe image has no tag, so each pull gets whatever `latest` is at the time: pin the version you mean."


def _in_registry(ref: ImageRef, host: str) -> str:
    """``ref`` moved to ``host``, keeping its tag and digest; a ``<version>`` placeholder when it has neither."""
    text = f"{host}/{ref.path}"
    if ref.tag or not ref.digest:
        text += f":{ref.tag or '<version>'}"
    return text + (f"@{ref.digest}" if ref.digest else "")


def _image_patch(inv: Inventory, obj: K8sObject, c: Container, new_image: str,
                 extra: dict[str, str] | None = None) -> str:
    """The image change as a diff of the file that sets it; for a live object Flux applies, the change of the
    repository's copy, committed and pushed (a kubectl change would be reverted)."""
    if obj.source == "cluster":
        edits = [_gitops.Edit(_gitops.container_path(c, "image"), new_image)]
        edits += [_gitops.Edit(_gitops.container_path(c, k), v) for k, v in (extra or {}).items()]
        flux = _gitops.change(inv, obj, edits)
        if flux is not None:
            return flux
    return set_image_patch(obj, c, new_image, extra)


def _qualify_fix(inv: Inventory, obj: K8sObject, c: Container, ref: ImageRef, host: str | None,
                 pushed: bool) -> str:
    """KS101's fix: the registry that has (or should have) the image, or Docker Hub for an official image."""
    pin = _PIN if ref.tag is None and ref.digest is None else ""
    if host is None and "/" not in ref.path and ref.path in DOCKER_OFFICIAL:
        full = f"docker.io/library/{ref}"
        return (f"`{ref.path}` is a Docker Hub official image; name it in full:\n"
                f"{_image_patch(inv, obj, c, full)}{pin}")
    new = _in_registry(ref, host or "<your-registry>")
    patch = _image_patch(inv, obj, c, new)
    if host is not None and pushed:
        return patch + pin
    push = f"```bash\n{_push_commands(c.image, new, pull=False)}\n```"
    if host is not None:
        return f"Push the image to the registry:\n{push}\n{patch}{pin}"
    text = f"Push the image to your registry and reference it by its full name:\n{push}\n{patch}{pin}"
    if "/" in ref.path:
        text += f"\nIf it is the Docker Hub image, name it in full instead: `docker.io/{ref}`."
    return text


@rule("KS102", "pull-policy-never", severity=Severity.ERROR)
def pull_policy_never(ctx: Context) -> Iterator[Finding]:
    """Container with `imagePullPolicy: Never`.

    ## What it does
    Flags containers whose `imagePullPolicy` is `Never`.

    ## Why is this bad?
    The kubelet will never pull the image: a pod only starts on a node that already has it in its local
    store, and fails with `ErrImageNeverPull` everywhere else. It hides a missing `docker push`.

    ## Example
    ```yaml
      image: family-assistant:fixed
      imagePullPolicy: Never
    ```

    ## Fix
    Push the image to a registry, reference it fully qualified with an immutable tag, and use
    `imagePullPolicy: IfNotPresent`.
    """
    for obj, c in workload_containers(ctx.inv):
        if c.pull_policy != "Never":
            continue
        ref = parse_or_none(c.image)
        evidence = [f"container {c.name}: image {c.image}, imagePullPolicy: Never"]
        evidence += _where_present(ctx, c.image) if obj.source == "cluster" else []
        new = c.image
        if ref is not None and not ref.qualified:
            host = private_registry_for(ref, ctx.inv, ctx.cfg)
            if host:
                new = _in_registry(ref, host)
        policy = "pullPolicy" if c.values is not None else "imagePullPolicy"
        yield ctx.finding(
            obj, f"container {c.name} never pulls its image ({c.image})", path=f"{c.path}.{policy}",
            evidence=evidence, fix=_image_patch(ctx.inv, obj, c, new, {"imagePullPolicy": "IfNotPresent"}),
            root_cause="The image exists only in a node's local store, so the pod can only run on that node.",
            dedupe=dedupe_key(obj, c), data={"image": c.image, "container": c.name})


@rule("KS103", "mutable-tag", severity=Severity.WARNING)
def mutable_tag(ctx: Context) -> Iterator[Finding]:
    """Image without a tag or with `latest`.

    ## What it does
    Flags images with no tag and no digest (an implicit `latest`) or with the tag `latest`.

    ## Why is this bad?
    `latest` moves: two nodes can run different code under the same name, a restart can silently
    upgrade, and there is no way to roll back to a known revision.

    ## Example
    ```yaml
      image: ghcr.io/pesuga/homelab/homelab-dashboard:latest
    ```

    ## Fix
    Use a tag that names a commit (see `kubeshape release`), or pin the digest that runs today:
    ```yaml
      image: ghcr.io/pesuga/homelab/homelab-dashboard@sha256:…
    ```
    """
    for obj, c in workload_containers(ctx.inv):
        ref = parse_or_none(c.image)
        if ref is None or not ref.mutable:
            continue
        evidence = [f"container {c.name}: image {c.image} "
                    f"({'no tag: implicit latest' if ref.tag is None else 'tag latest'})"]
        pinned = _running_digest(ctx.inv, obj, c) if obj.source == "cluster" else None
        if pinned is None and ctx.inv.registry is not None:
            repo = ctx.inv.registry.repo(ref.registry, ref.path)
            info = repo.tags.get("latest") if repo else None
            if repo and info and info.digest:
                twins = sorted(t for t, i in repo.tags.items() if i.digest == info.digest and t != "latest")
                evidence.append(f"latest currently points to {info.digest}"
                                + (f" (also tagged {', '.join(twins)})" if twins else ""))
                pinned = f"{ref.name}@{info.digest}"
        if pinned:
            evidence.append(f"running digest: {pinned.split('@', 1)[1]}")
        if pinned:
            fix = f"Pin the digest that runs now, until you deploy a version:\n{_image_patch(ctx.inv, obj, c, pinned)}"
        else:
            fix = ("Deploy a tag that names one build (a release version or a commit):\n"
                   + _image_patch(ctx.inv, obj, c, f"{ref.name}:<version>"))
        yield ctx.finding(
            obj, f"container {c.name} uses mutable tag {ref.effective_tag!r} ({c.image})", path=c.image_path,
            evidence=evidence, fix=fix,
            root_cause="No tagging policy: the image is published under a moving name instead of one per build.",
            dedupe=dedupe_key(obj, c, c.image))


def _running_digest(inv: Inventory, obj: K8sObject, c: Container) -> str | None:
    for pod in inv.pods_of(obj):
        for cs in pod.status.get("containerStatuses") or []:
            image_id = str(cs.get("imageID") or "")
            if cs.get("name") == c.name and "@sha256:" in image_id:
                ref = parse_or_none(c.image)
                return f"{ref.name if ref else c.image}@{image_id.split('@', 1)[1]}"
    return None


@rule("KS104", "tag-not-in-registry", severity=Severity.ERROR, requires=("registry",))
def tag_not__in_registry(ctx: Context) -> Iterator[Finding]:
    """Image tag that the registry does not have.

    ## What it does
    For images on a registry in the registry snapshot, checks that the repository and tag exist.

    ## Why is this bad?
    The next pod that needs the image fails with `ErrImagePull`/`ImagePullBackOff`: the problem is
    predictable before you deploy.

    ## Example
    ```yaml
      image: 100.81.76.55:30500/family-assistant:phase2-mcp-logging-fix   # never pushed
    ```

    ## Fix
    Push the tag (`docker push …`) or point the manifest at a tag that exists.
    """
    reg = ctx.inv.registry
    assert reg is not None
    hosts = reg.hosts
    for obj, c in workload_containers(ctx.inv):
        ref = parse_or_none(c.image)
        if ref is None or not ref.qualified or ref.registry not in hosts:
            continue
        repo = reg.repo(ref.registry, ref.path)
        if repo is None:
            msg, ev = f"repository {ref.name} does not exist in the registry", [
                f"{ref.registry} has no repository {ref.path}"]
        elif ref.digest:
            if any(t.digest == ref.digest for t in repo.tags.values()):
                continue
            msg, ev = f"digest {ref.digest[:19]}… is not in {ref.name}", [f"no tag of {ref.name} has that digest"]
        elif ref.effective_tag in repo.tags:
            continue
        else:
            near = sorted(repo.tags, key=lambda t: repo.tags[t].created or reg.collected_at or ctx.inv.now)[-3:]
            msg = f"tag {ref.effective_tag} does not exist in {ref.name}"
            ev = [f"{ref.name} has {len(repo.tags)} tags, not {ref.effective_tag}",
                  f"newest tags: {', '.join(near)}" if near else "the repository has no tags"]
        yield ctx.finding(
            obj, f"container {c.name}: {msg} -- pulls will fail", path=c.image_path,
            evidence=[f"container {c.name}: image {c.image}", *ev],
            fix=f"docker push {c.image}\n# or point the manifest at an existing tag",
            root_cause="The manifest was updated before (or instead of) pushing the image.",
            dedupe=dedupe_key(obj, c, c.image), data={"image": c.image, "container": c.name})


def _pull_waiting(pod: K8sObject) -> Iterator[tuple[dict[str, Any], str]]:
    status = pod.status
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(key) or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in PULL_FAILURES:
                yield cs, str(waiting.get("reason"))


@rule("KS105", "image-pull-failing", severity=Severity.ERROR, requires=("cluster",))
def image_pull_failing(ctx: Context) -> Iterator[Finding]:
    """Pods that cannot pull their image.

    ## What it does
    Finds containers waiting in `ImagePullBackOff`, `ErrImagePull`, `ErrImageNeverPull` or
    `InvalidImageName`, with the node, the back-off count and since when, and explains why from the
    image reference, the nodes' image stores and the registry.

    ## Why is this bad?
    The pod never starts; the rollout stalls at its progress deadline and the service runs degraded.

    ## Example
    ```text
    family-assistant-backend-7fccb9956b-9g4wb  0/1  ImagePullBackOff  asuna
    ```

    ## Fix
    Push the image to the registry every node uses and reference it fully qualified; then restart the
    rollout.
    Under Flux the fix changes the repository's file and line instead (commit, push, `flux reconcile`):
    a kubectl change would be reverted at the next reconcile.
    """
    inv = ctx.inv
    failing: dict[tuple[str, str, str], list[tuple[K8sObject, dict[str, Any], str]]] = defaultdict(list)
    owners: dict[tuple[str, str, str], K8sObject] = {}
    for pod in inv.live("Pod"):
        for cs, reason in _pull_waiting(pod):
            top = inv.top_workload(pod)
            failing[top.key].append((pod, cs, reason))
            owners[top.key] = top
    for key, items in failing.items():
        top = owners[key]
        evidence: list[str] = []
        images: set[str] = set()
        for pod, cs, reason in items:
            image = str(cs.get("image") or "")
            images.add(image)
            node = pod.spec.get("nodeName") or "(unscheduled)"
            backoffs = inv.events_for("Pod", pod.namespace, pod.name, "BackOff")
            failed = inv.events_for("Pod", pod.namespace, pod.name, "Failed")
            count = sum(event_count(e) for e in backoffs)
            first = min((t for e in backoffs if (t := parse_time(e.get("firstTimestamp") or e.get("eventTime")))),
                        default=None)
            last = max((t for e in backoffs if (t := parse_time(e.get("lastTimestamp") or e.get("eventTime")))),
                       default=None)
            line = f"pod {pod.name} on node {node}: {reason} pulling {image}"
            if count:
                line += f"; {count} back-offs"
                if first and last:
                    line += f" over {human_duration(last - first)} (since {format_time(first)})"
            evidence.append(line)
            detail = next((str(e.get("message")) for e in reversed(failed) if "pull" in str(e.get("message"))),
                          str(((cs.get("state") or {}).get("waiting") or {}).get("message") or ""))
            if detail:
                evidence.append(f"kubelet: {detail}")
        root, fix = _pull_root_cause(ctx, top, sorted(images), evidence)
        nodes = sorted({str(p.spec.get("nodeName") or "") for p, _, _ in items} - {""})
        yield ctx.finding(
            top, f"{len(items)} pod(s){' on ' + ', '.join(nodes) if nodes else ''} cannot pull "
                 f"{', '.join(sorted(images))}",
            evidence=evidence, root_cause=root, fix=fix, source="cluster",
            data={"images": sorted(images), "pods": [p.name for p, _, _ in items],
                  "nodes": sorted({str(p.spec.get('nodeName') or '') for p, _, _ in items})})


def _pull_root_cause(ctx: Context, top: K8sObject, images: list[str], evidence: list[str]) -> tuple[str, str]:
    image = images[0]
    ref = parse_or_none(image)
    if ref is None:
        return f"{image!r} is not a valid image reference.", "Fix the image reference in the manifest."
    evidence += _where_present(ctx, image)
    c = next((c for c in containers(top) if c.image == image), None)
    if not ref.qualified:
        reg_lines, host, _ = _registry_evidence(ctx, ref.path, ref.effective_tag)
        evidence += reg_lines
        host = host or private_registry_for(ref, ctx.inv, ctx.cfg)
        new = _in_registry(ref, host or "<your-registry>")
        fix = _push_commands(image, new, pull=False)
        flux = _gitops.change(ctx.inv, top, [_gitops.Edit(_gitops.container_path(c, "image"), new)]) \
            if c is not None else None
        if flux is not None:
            fix += "\n\n" + flux
        elif c is not None:
            fix += ("\n" + kubectl_set_image(top, c, new) + "\n"
                    "# then write the same image into the manifest you apply from, so the next apply keeps it "
                    "(`kubeshape release` does all of this)")
        return ("The image is unqualified and was built on a node instead of pushed to a registry, so only "
                "nodes that built it can start the pod; the kubelet elsewhere tries docker.io and is denied."), fix
    if ctx.inv.registry is not None and ref.registry in registry_index(ctx.inv).hosts:
        repo = ctx.inv.registry.repo(ref.registry, ref.path)
        if repo is None or (ref.effective_tag not in repo.tags and not ref.digest):
            evidence.append(f"the registry has no {ref.name}:{ref.effective_tag}")
            return "The tag was never pushed to the registry.", f"docker push {image}"
    pods = " ".join(p.name for p in ctx.inv.pods_of(top)[:3])
    return ("The registry refused or could not serve the image (see the kubelet message): check the tag, "
            "the node's access to the registry and imagePullSecrets."), \
        f"kubectl describe pod {pods} -n {top.namespace}\ndocker manifest inspect {image}"


@rule("KS106", "image-on-some-nodes-only", severity=Severity.WARNING, requires=("cluster",))
def image_on_some_nodes(ctx: Context) -> Iterator[Finding]:
    """Image that exists only in some nodes' local stores and cannot be pulled.

    ## What it does
    For live workloads whose image cannot come from a registry (unqualified, or `imagePullPolicy:
    Never`), lists the nodes that hold it and those that do not.

    ## Why is this bad?
    Today's pods may run, but the next reschedule (a drain, a crash, a scale-up) can land on a node
    without the image and fail.

    ## Example
    ```text
    family-assistant:me-fixed  present on pesubuntu, missing on asuna
    ```

    ## Fix
    Push the image to a registry and reference it by its full name; until then pin the workload with a
    nodeSelector only as a stop-gap.
    Under Flux the fix changes the repository's file and line instead (commit, push, `flux reconcile`):
    a kubectl change would be reverted at the next reconcile.
    """
    idx = node_images(ctx.inv)
    if len(idx.nodes) < 2:
        return
    for obj in ctx.inv.live_workloads:
        for c in containers(obj):
            ref = parse_or_none(c.image)
            if ref is None or (ref.qualified and c.pull_policy != "Never"):
                continue
            have = idx.holders(ref)
            missing = sorted(set(idx.nodes) - have)
            if not have or not missing:
                continue
            new = _in_registry(ref, private_registry_for(ref, ctx.inv, ctx.cfg) or "<your-registry>")
            yield ctx.finding(
                obj, f"image {c.image} exists on {', '.join(sorted(have))} only",
                evidence=[f"container {c.name}: image {c.image}, imagePullPolicy: {c.pull_policy or 'default'}",
                          f"in the local store of: {', '.join(sorted(have))}", f"missing on: {', '.join(missing)}"],
                root_cause="The image was built on a node and never pushed; the scheduler does not know that.",
                fix=_some_nodes_fix(ctx.inv, obj, c, new),
                source="cluster", dedupe=dedupe_key(obj, c, c.image),
                data={"image": c.image, "container": c.name, "nodes": sorted(have), "missing_on": missing})


def _some_nodes_fix(inv: Inventory, obj: K8sObject, c: Container, new: str) -> str:
    flux = _gitops.change(inv, obj, [_gitops.Edit(_gitops.container_path(c, "image"), new)])
    if flux is not None:
        return f"{_push_commands(c.image, new, pull=False)}\n\n{flux}"
    return f"{_push_commands(c.image, new, pull=False)}\n{kubectl_set_image(obj, c, new)}"


@rule("KS107", "registry-not-allowed", severity=Severity.ERROR)
def registry_not_allowed(ctx: Context) -> Iterator[Finding]:
    """Image from a registry that is not in `registries.allowed`.

    ## What it does
    When `registries.allowed` is set in kubeshape.yaml, flags images from any other registry
    (unqualified images count as `docker.io`). Entries may be globs (`*.example.com`).

    ## Why is this bad?
    Images from unapproved registries escape your retention, scanning and availability guarantees.

    ## Example
    ```yaml
    registries:
      allowed: ["100.81.76.55:30500", "ghcr.io"]
    ```

    ## Fix
    Mirror the image into an allowed registry and reference it there, or add the registry to
    `registries.allowed` deliberately.
    """
    allowed = ctx.cfg.registries.allowed
    if not allowed:
        return
    for obj, c in workload_containers(ctx.inv):
        ref = parse_or_none(c.image)
        if ref is None or any(fnmatch.fnmatchcase(ref.registry, p) for p in allowed):
            continue
        yield ctx.finding(
            obj, f"container {c.name} pulls from {ref.registry}, which is not allowed", path=c.image_path,
            evidence=[f"image {c.image} → registry {ref.registry}", f"allowed: {', '.join(allowed)}"],
            fix=_mirror_fix(c.image, _in_registry(ref, allowed[0])),
            root_cause="No policy checks image sources before deploy.", dedupe=dedupe_key(obj, c, c.image))


def _mirror_fix(image: str, target: str) -> str:
    return _push_commands(image, target, pull=True)


def _push_commands(image: str, target: str, *, pull: bool) -> str:
    """Commands that copy ``image`` to ``target``; docker pushes tags, so a digest target becomes a tag."""
    name = target.split("@", 1)[0]
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":<version>"
    lines = [f"docker pull {image}"] if pull else []
    lines += [f"docker tag {image} {name}", f"docker push {name}"]
    if "@" in target:
        lines.append(f"# the digest stays the same: reference it as {target}")
    return "\n".join(lines)


@rule("KS108", "invalid-image-reference", severity=Severity.ERROR)
def invalid_reference(ctx: Context) -> Iterator[Finding]:
    """Image reference that does not follow the reference grammar.

    ## What it does
    Parses every image by the distribution reference grammar (registry domain, lowercase path, tag of
    at most 128 characters, valid digest).

    ## Why is this bad?
    The kubelet rejects it with `InvalidImageName`; the pod never starts.

    ## Example
    ```yaml
      image: Family-Assistant:fixed     # uppercase repository
    ```

    ## Fix
    Write the image as `registry[:port]/path:tag` or `…@sha256:<64 hex>` with a lowercase path.
    """
    for obj, c in workload_containers(ctx.inv):
        if not c.image:
            yield ctx.finding(obj, f"container {c.name} has no image", path=c.path,
                              evidence=[f"container {c.name} has no image field"],
                              fix="Set image: to a fully qualified reference.", dedupe=dedupe_key(obj, c))
            continue
        try:
            parse(c.image)
        except InvalidReference as exc:
            yield ctx.finding(obj, f"container {c.name}: {exc}", path=c.image_path,
                              evidence=[f"image: {c.image!r}", exc.reason],
                              fix="Write the image as registry[:port]/path:tag with a lowercase path.",
                              dedupe=dedupe_key(obj, c, c.image))
