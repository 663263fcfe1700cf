"""Where a fix goes: the document of a repository object in the file as the plan leaves it, and field paths."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import PurePosixPath

from kubeshape.actions.fix import yamledit as ye
from kubeshape.actions.fix.context import FixContext, Refuse
from kubeshape.findings import Finding
from kubeshape.inventory import Container, K8sObject, containers
from kubeshape.release.yamltext import EditError

_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class Spot:
    """One repository object's document: file and index in the file's current text."""

    file: str
    doc: int
    obj: K8sObject


def keys(path: str) -> tuple[str | int, ...]:
    """``spec.template.spec.containers[0]`` as ``("spec", "template", "spec", "containers", 0)``."""
    return tuple(name if name else int(index) for name, index in _PART.findall(path))


def container_keys(c: Container) -> ye.Path_:
    """The container's path with its list index replaced by its name (stable while earlier steps edit)."""
    parts = keys(c.path)
    if parts and isinstance(parts[-1], int) and c.name:
        return (*parts[:-1], {"name": c.name})
    return parts


def container(obj: K8sObject, name: str) -> Container | None:
    return next((c for c in containers(obj) if c.name == name), None)


def locate(ctx: FixContext, obj: K8sObject) -> Spot | None:
    """The document that defines repository object ``obj`` in its file as earlier steps left it; None when the
    file or the document is gone (a step deleted it). Refuse when the file cannot be read as YAML."""
    if not obj.file:
        return None
    text = ctx.read(obj.file)
    if text is None:
        return None
    try:
        found = ye.find_documents(text, obj.file, obj.kind, obj.name, obj.namespace)
    except EditError as exc:
        raise Refuse(str(exc)) from None
    if not found:
        return None
    if len(found) > 1:
        raise Refuse(f"{obj.file}: {obj.kind} {obj.name} is defined {len(found)} times in this file; "
                     "fix the copy you apply by hand")
    return Spot(obj.file, found[0], obj)


def repo_copies(ctx: FixContext, live: K8sObject) -> list[K8sObject]:
    """Repository definitions of the live object ``live`` that still exist in the plan's files."""
    out = []
    for o in ctx.inv.repo_by_key.get(live.key, []):
        try:
            if locate(ctx, o) is not None:
                out.append(o)
        except Refuse:
            out.append(o)
    return out


def repo_object(ctx: FixContext, f: Finding) -> K8sObject | None:
    """The repository object a file finding is about (its file and kind/namespace/name): the object defined in
    the finding's file, else the one whose field an overlay in that file sets (a kustomize ``images:`` entry)."""
    if f.object is None or not f.file:
        return None
    same = ctx.inv.repo_by_key.get((f.object.kind, f.object.namespace, f.object.name), [])
    for o in same:
        if o.file == f.file:
            return o
    for o in same:
        if any(origin[0] == f.file for origin in (o.origins or {}).values()):
            return o
    return None


KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def _listed_by(ctx: FixContext, path: str) -> str | None:
    """A kustomization in the file's directory or above that names the file (a ``resources:`` entry would break
    if the file went away)."""
    parts = PurePosixPath(path).parts
    for depth in range(len(parts) - 1, -1, -1):
        folder = PurePosixPath(*parts[:depth]) if depth else PurePosixPath(".")
        rel = PurePosixPath(*parts[depth:]).as_posix()
        for name in KUSTOMIZATION_FILES:
            kpath = (folder / name).as_posix() if depth else name
            text = ctx.read(kpath)
            if text is not None and re.search(rf"(^|[\s'\"/-]){re.escape(rel)}(['\"]?\s*$|['\"]?\s*#)", text, re.M):
                return kpath
    return None


def _drop(text: str, *, file: str, doc: int) -> str:
    return ye.delete_document(text, file, doc)


def remove_document(ctx: FixContext, obj: K8sObject) -> None:
    """Delete ``obj``'s document from its file, and the file when nothing is left in it -- unless a kustomization
    lists the file, which would then fail to build (Refuse, naming it)."""
    spot = locate(ctx, obj)
    if spot is None:
        return
    ctx.edit(spot.file, partial(_drop, file=spot.file, doc=spot.doc))
    remaining = ctx.read(spot.file)
    if remaining is not None and not ye.has_documents(remaining, spot.file):
        listed = _listed_by(ctx, spot.file)
        if listed is not None:
            raise Refuse(f"removing {obj.kind} {obj.name} leaves {spot.file} empty and {listed} lists it: remove "
                         "the file and its resources entry by hand")
        ctx.delete_file(spot.file)
