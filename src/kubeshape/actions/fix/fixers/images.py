"""KS101/KS102 in files, KS105/KS106/KS404 (and KS101/KS102 seen live): images a node cannot pull.

In a file: the unqualified image gets the private registry's name (and ``IfNotPresent`` instead of ``Never``),
once the registry snapshot shows the tag there. Live: the workload is pointed at an image every node can pull --
the same tag in the registry, else the image of its one definition in the repository (as this plan leaves it).
"""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from typing import Any

from kubeshape.actions.fix import yamledit as ye
from kubeshape.actions.fix.context import FixContext, Refuse
from kubeshape.actions.fix.fixers._where import (
    container,
    container_keys,
    keys,
    locate,
    repo_copies,
    repo_object,
)
from kubeshape.findings import Finding
from kubeshape.imageref import ImageRef, parse_or_none
from kubeshape.inventory import Container, K8sObject, containers
from kubeshape.rules._common import private_registry_for

FILE_RULES = ("KS101", "KS102")
REPO_CHOICE = "the repository's definition"
LIVE_RULES = ("KS101", "KS102", "KS105", "KS106", "KS404")


def _in_registry(ctx: FixContext, host: str, ref: ImageRef) -> bool | None:
    """Whether ``host`` has ``ref``'s tag (or digest), or a step of this plan pushes it there; None when that
    registry was not read."""
    if ref.tag and f"{host}/{ref.path}:{ref.tag}" in ctx.pushed:
        return True
    snap = ctx.inv.registry
    if snap is None or host not in snap.hosts:
        return None
    repo = snap.repo(host, ref.path)
    if repo is None:
        return False
    if ref.digest:
        return any(t.digest == ref.digest for t in repo.tags.values())
    return ref.effective_tag in repo.tags


def qualified(ctx: FixContext, image: str) -> tuple[str, str]:
    """The registry-qualified name for unqualified ``image`` and its registry host; Refuse when no private
    registry is known or the registry lacks the tag."""
    ref = parse_or_none(image)
    if ref is None:
        raise Refuse(f"{image!r} is not a valid image reference")
    if ref.qualified:
        return image, ref.domain or ""
    host = private_registry_for(ref, ctx.inv, ctx.cfg)
    if host is None:
        raise Refuse("no private registry is known: list it under registries.private in kubeshape.yaml or pass "
                     "--registry")
    new = f"{host}/{ref.path}" + (f":{ref.tag}" if ref.tag else "") + (f"@{ref.digest}" if ref.digest else "")
    if not ref.tag and not ref.digest:
        raise Refuse(f"{image} has no tag: pick the version to deploy, then qualify it as {host}/{ref.path}:<tag>")
    there = _in_registry(ctx, host, ref)
    if there is None:
        raise Refuse(f"registry {host} was not read, so the tag is not checked: pass --registry {host}")
    if not there:
        if not ctx.options.push_missing or not ref.tag:
            raise Refuse(f"{host}/{ref.path} has no tag {ref.effective_tag}: push it first "
                         f"(docker tag {image} {new} && docker push {new}), or let --push-missing copy it from "
                         f"{ctx.options.push_from}")
        ctx.push(f"{ctx.options.push_from}/{_source_path(ctx, ref)}:{ref.tag}", new)
    return new, host


def _source_path(ctx: FixContext, ref: ImageRef) -> str:
    """The repository an unqualified name means at ``--push-from``: Docker Hub's ``library/`` for one word."""
    if ctx.options.push_from in ("docker.io", "index.docker.io", "registry-1.docker.io") and "/" not in ref.path:
        return f"library/{ref.path}"
    return ref.path


def _pull_policy(c: Container) -> str | None:
    """The policy to write: IfNotPresent instead of Never; None to leave it."""
    return "IfNotPresent" if c.pull_policy == "Never" else None


def _values_edit(ctx: FixContext, obj: K8sObject, c: Container, host: str | None, policy: str | None) -> None:
    """Qualify an image given as chart values (``registry``/``repository``/``tag``) in the HelmRelease's file:
    the ``registry`` piece when the chart has one, else the repository gets the registry in front."""
    assert c.values is not None
    spot = locate(ctx, obj)
    if spot is None:
        raise Refuse(f"{obj.file}: HelmRelease {obj.name} is not found in the file (its values may come from "
                     "valuesFrom): set the image there by hand")
    path = keys(c.path)
    edits: list[tuple[str, str, str | None]] = []
    if host is not None:
        if "registry" in c.values:
            edits.append(("registry", host, c.values.get("registry")))
        else:
            edits.append(("repository", f"{host}/{c.values['repository']}", c.values.get("repository")))
    if policy is not None and c.values.get("pullPolicy") == "Never":
        edits.append(("pullPolicy", policy, "Never"))
    for key, value, old in edits:
        ctx.edit(spot.file, partial(_set, file=spot.file, doc=spot.doc, path=(*path, key), value=value, expect=old,
                                    near="repository"))


def _set(text: str, *, file: str, doc: int, path: ye.Path_, value: Any, expect: Any, near: str) -> str:
    return ye.set_value(text, file, doc, path, value, near=near, expect=expect)


def _overlay_image(ctx: FixContext, c: Container, overlay: tuple[str, int], new_image: str) -> None:
    """Qualify an image that a kustomization's ``images:`` entry sets: its ``newName`` (added next to ``name``)."""
    file, line = overlay
    text = ctx.read(file)
    if text is None:
        raise Refuse(f"image of container {c.name} is set by {file}:{line}, which cannot be read")
    rendered = parse_or_none(c.image)
    target = parse_or_none(new_image)
    if rendered is None or target is None:
        raise Refuse(f"{c.image!r} is not a valid image reference")
    written = c.image.split("@")[0].rsplit(":", 1)[0] if ":" in c.image.split("/")[-1] else c.image.split("@")[0]
    for di, doc in enumerate(ye.documents(text, file)):
        entries = doc.get("images") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            continue
        for i, entry in enumerate(entries):
            if isinstance(entry, dict) and (entry.get("newName") or entry.get("name")) == written:
                new_name = f"{target.domain}/{target.path}"
                ctx.edit(file, partial(_set, file=file, doc=di, path=("images", i, "newName"), value=new_name,
                                       expect=entry.get("newName"), near="name"))
                return
    raise Refuse(f"image of container {c.name} is set by {file}:{line}: change it there")


def _edit_container(ctx: FixContext, obj: K8sObject, c: Container, image: str | None, policy: str | None,
                    host: str | None = None) -> None:
    """Write ``image``/``policy`` where the repository sets them: the container in the object's file, the
    ``images:`` entry of the overlay that sets the image, or the chart values of a HelmRelease."""
    if c.values is not None:
        _values_edit(ctx, obj, c, host if image is not None else None, policy)
        return
    spot = locate(ctx, obj)
    if spot is None:
        raise Refuse(f"{obj.kind} {obj.name} is not found in {obj.file} under that name (renamed by a "
                     "kustomization?): edit it by hand")
    base = container_keys(c)
    for field, value in (("image", image), ("imagePullPolicy", policy)):
        if value is None:
            continue
        overlay = obj.origin(f"{c.path}.{field}")
        if overlay is not None and field == "image" and overlay[0] != obj.file:
            _overlay_image(ctx, c, overlay, value)
            continue
        if overlay is not None:
            raise Refuse(f"{field} of container {c.name} is set by {overlay[0]}:{overlay[1]}: change it there")
        old = c.spec.get(field)

        def change(text: str, f: str = field, v: str = value, o: Any = old) -> str:
            return ye.set_value(text, spot.file, spot.doc, (*base, f), v, near="image", expect=o)

        ctx.edit(spot.file, change)


def _fix_files(ctx: FixContext, findings: list[Finding]) -> None:
    groups: dict[tuple[str, str, str], list[Finding]] = defaultdict(list)
    objs: dict[tuple[str, str, str], K8sObject] = {}
    for f in findings:
        obj = repo_object(ctx, f)
        name = str(f.data.get("container") or "")
        if obj is None or not name:
            ctx.refuse([f], "the finding does not name a container of a file's object")
            continue
        key = (str(obj.file), str(obj.ref), name)
        groups[key].append(f)
        objs[key] = obj
    for key, group in groups.items():
        obj = objs[key]
        c = container(obj, key[2])
        if c is None:
            ctx.refuse(group, f"container {key[2]} not found in {obj.file}")
            continue
        if locate(ctx, obj) is None:  # an earlier step removed this copy (KS201): that step fixes them
            if not ctx.attach(group, str(obj.file)):
                ctx.refuse(group, f"{obj.kind} {obj.name} is not found in {obj.file} under that name (renamed by "
                                  "a kustomization?): edit it by hand")
            continue
        rules = {f.rule for f in group}
        with ctx.step(f"Qualify the image of container {c.name} in {obj.file}" if "KS101" in rules else
                      f"Let container {c.name} in {obj.file} pull its image", group):
            new, host = qualified(ctx, c.image)
            policy = _pull_policy(c)
            if policy and new == c.image:  # Never on a qualified image: pull only what the registry has
                ref = parse_or_none(c.image)
                if ref is not None and ref.domain and _in_registry(ctx, ref.domain, ref) is False:
                    raise Refuse(f"{c.image} is not in its registry: push it before letting nodes pull it")
            _edit_container(ctx, obj, c, new if new != c.image else None, policy, host)


def _live_containers(live: K8sObject, group: list[Finding]) -> list[Container]:
    images: set[str] = set()
    names: set[str] = set()
    for f in group:
        images.update(str(i) for i in f.data.get("images") or [])
        if f.data.get("image"):
            images.add(str(f.data["image"]))
        if f.data.get("container"):
            names.add(str(f.data["container"]))
    return [c for c in containers(live) if c.name in names or c.image in images]


def _repo_image(ctx: FixContext, live: K8sObject, c: Container) -> tuple[str, str | None] | None:
    """The image (and pull policy) that the one remaining repository definition of ``live`` gives container
    ``c``, as this plan leaves the file; None without exactly one definition."""
    copies = repo_copies(ctx, live)
    if len(copies) != 1:
        return None
    spot = locate(ctx, copies[0])
    if spot is None:
        return None
    text = ctx.read(spot.file)
    assert text is not None
    doc = ye.documents(text, spot.file)[spot.doc]
    node: Any = doc
    try:
        for k in container_keys(container(copies[0], c.name) or c):
            node = node[ye._resolve(node, k, spot.file)]
    except (KeyError, IndexError, TypeError, Refuse):
        return None
    image = node.get("image") if isinstance(node, dict) else None
    if not isinstance(image, str):
        return None
    policy = node.get("imagePullPolicy")
    return image, policy if isinstance(policy, str) else None


def _fix_live(ctx: FixContext, findings: list[Finding]) -> None:
    by_workload: dict[tuple[str, str, str], list[Finding]] = defaultdict(list)
    for f in findings:
        if f.object is None:
            continue
        if f.rule == "KS404":  # about the image; the workloads that run it are in the evidence
            for user in f.data.get("users") or _users(ctx, f):
                by_workload[user].append(f)
            continue
        by_workload[(f.object.kind, f.object.namespace, f.object.name)].append(f)
    for key, group in by_workload.items():
        live = ctx.live(*key)
        if live is None:
            ctx.refuse(group, f"{key[0]} {key[1]}/{key[2]} is not in the cluster snapshot")
            continue
        targets = _live_containers(live, group)
        if not targets:
            ctx.refuse(group, f"no container of {key[0]} {key[1]}/{key[2]} runs the image the findings name")
            continue
        with ctx.step(f"Run pullable images in {key[0]} {key[1]}/{key[2]}", group):
            patch: list[dict[str, Any]] = []
            said: list[str] = []
            restores = True
            for c in targets:
                new, policy, why = _live_choice(ctx, live, c)
                restores = restores and why == REPO_CHOICE
                item: dict[str, Any] = {"name": c.name, "image": new}
                if policy:
                    item["imagePullPolicy"] = policy
                patch.append(item)
                said.append(f"{c.name}={new}{f' ({why})' if why else ''}")
            field = "initContainers" if all(c.init for c in targets) else "containers"
            if any(c.init for c in targets) and not all(c.init for c in targets):
                raise Refuse("init and app containers in one fix: run 'kubeshape fix' for each")
            body = _template_patch(live, {field: patch})
            ctx.apply(live, body, f"set image {', '.join(said)}", restores=restores)


def _live_choice(ctx: FixContext, live: K8sObject, c: Container) -> tuple[str, str | None, str]:
    """(image, pull policy, why) for live container ``c``."""
    ref = parse_or_none(c.image)
    if ref is not None and not ref.qualified:
        try:
            new, _ = qualified(ctx, c.image)
            return new, _pull_policy(c), "the same tag in the registry"
        except Refuse as exc:
            missing = str(exc)
    elif ref is not None and ref.domain and c.pull_policy == "Never" and _in_registry(ctx, ref.domain, ref):
        return c.image, "IfNotPresent", "the registry has it"
    else:
        missing = f"{c.image} cannot be pulled on every node"
    from_repo = _repo_image(ctx, live, c)
    if from_repo is not None:
        image, policy = from_repo
        r = parse_or_none(image)
        if r is not None and r.qualified and r.domain and _in_registry(ctx, r.domain, r):
            return image, policy if policy != "Never" else "IfNotPresent", REPO_CHOICE
    raise Refuse(f"{missing}; and the repository has no single definition whose image the registry holds")


def _template_patch(live: K8sObject, spec: dict[str, Any]) -> dict[str, Any]:
    if live.kind == "CronJob":
        return {"spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}
    if live.kind == "Pod":
        raise Refuse("a bare Pod cannot change its image: recreate it from its manifest")
    return {"spec": {"template": {"spec": spec}}}


def _users(ctx: FixContext, f: Finding) -> list[tuple[str, str, str]]:
    """Live workloads whose containers run the image a KS404 finding names."""
    image = str(f.data.get("image") or "")
    return [(w.kind, w.namespace, w.name) for w in ctx.inv.live_workloads
            if any(c.image == image for c in containers(w))]


def fix_images(ctx: FixContext, findings: list[Finding]) -> None:
    """Files first (so a live fix can take the repository's corrected image), then live workloads."""
    _fix_files(ctx, [f for f in findings if f.rule in FILE_RULES and f.file and "repo" in f.source])
    _fix_live(ctx, [f for f in findings if f.rule in LIVE_RULES and "cluster" in f.source])
