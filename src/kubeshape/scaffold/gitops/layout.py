"""Where every document goes: one directory per service, a kustomization listing its files, and the Flux objects.

    <apps>/<namespace>/<service>/kustomization.yaml     the base: lists the files below
    <apps>/<namespace>/<service>/deployment.yaml ...    the service's manifests
    clusters/<cluster>/flux-system/gotk-sync.yaml       GitRepository and Kustomization "flux-system", which
                                                        applies ./clusters/<cluster>
    clusters/<cluster>/apps/<namespace>/<service>.yaml  a Flux Kustomization per service, applying its base

A source file whose documents all stay in one service moves whole (``git mv``): named after its kind when it holds
one object (``deployment.yaml``), else it keeps its name. Documents that go to other services are cut out into new
files; a file left with nothing is removed (``git rm``); a file that also holds what is left alone (a Flux object,
text that is not a manifest) stays where it is, without the documents that moved.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from kubeshape.errors import InputError
from kubeshape.scaffold.gitops.services import CLUSTER_DIR, Service
from kubeshape.scaffold.gitops.sourcefiles import SourceFile, assemble, check_text, expected_docs

KUSTOMIZATION = "kustomization.yaml"


@dataclass(frozen=True, slots=True)
class Gone:
    """A document that leaves the repository, and why."""

    what: str
    why: str


@dataclass(slots=True)
class Placed:
    """A document that moves into a service: what it is and its (possibly new) text."""

    service: Service
    what: str
    text: str
    needs_namespace: bool = False  # the document names no namespace (plain files applied to "default")


Fate = Placed | Gone | None  # None: the document stays where it is (left alone)


@dataclass(slots=True)
class FileOp:
    """One change of the working tree."""

    op: str  # "move" | "edit" | "create" | "remove"
    path: str  # the file written (move, edit, create) or removed
    text: str = ""  # its new content (move, edit, create)
    source: str = ""  # what a move starts from
    before: str = ""  # the source's content (move, edit, remove)
    kept: str = ""  # the source with only the documents this file keeps, unchanged (what its diff starts from)
    what: list[str] = field(default_factory=list)  # the objects it holds (or held, for remove)
    why: str = ""


@dataclass(slots=True)
class Settings:
    """Where the tree goes and what the Flux objects say."""

    apps: str  # directory of the service bases, relative to the repository root
    cluster: str  # clusters/<cluster>
    flux_namespace: str
    url: str
    branch: str
    interval: str
    source_name: str = "flux-system"  # the GitRepository the new Kustomizations use
    source_namespace: str = ""  # when it lives in another namespace than the Kustomizations
    write_sync: bool = True  # False: a Flux Kustomization in the repository already applies clusters/<cluster>


@dataclass(slots=True)
class Layout:
    ops: list[FileOp] = field(default_factory=list)
    bases: dict[str, str] = field(default_factory=dict)  # service id -> its directory
    flux_names: dict[str, str] = field(default_factory=dict)  # service id -> its Flux Kustomization name


def base_dir(settings: Settings, svc: Service) -> str:
    return posixpath.join(settings.apps, svc.namespace, svc.name)


def _name(src: SourceFile, placed: list[Placed], whole: bool) -> str:
    """``deployment.yaml`` for one object; the file's own name when it moves whole; else the service's name."""
    if len(placed) == 1 and not placed[0].what.startswith("List "):
        return placed[0].what.split(" ", 1)[0].lower() + ".yaml"
    if whole:
        return posixpath.basename(src.rel)
    return f"{placed[0].service.name}.yaml"


def _free(name: str, taken: set[str], hint: str) -> str:
    if name not in taken:
        return name
    stem, _, ext = name.rpartition(".")
    for candidate in (f"{stem}-{hint}.{ext}", *(f"{stem}-{n}.{ext}" for n in range(2, 1000))):
        if candidate not in taken:
            return candidate
    raise InputError(f"no free file name for {name}")


@dataclass(slots=True)
class _Bases:
    """What the new bases hold so far: file names per directory, resources, and which need a namespace."""

    settings: Settings
    layout: Layout
    taken: dict[str, set[str]] = field(default_factory=dict)
    contents: dict[str, list[str]] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    needs_ns: dict[str, bool] = field(default_factory=dict)
    moving_from: set[str] = field(default_factory=set)

    def name(self, svc: Service, src: SourceFile, pieces: list[Placed], whole: bool) -> str:
        base = base_dir(self.settings, svc)
        self.layout.bases[svc.id] = base
        used = self.taken.setdefault(base, set())
        name = _free(_name(src, pieces, whole), used, pieces[0].what.split(" ", 1)[-1])
        used.add(name)
        self.contents.setdefault(base, []).append(name)
        self.needs_ns[svc.id] = self.needs_ns.get(svc.id, False) or any(p.needs_namespace for p in pieces)
        return posixpath.join(base, name)


def _place(src: SourceFile, fates: dict[tuple[str, int], Fate], bases: _Bases) -> None:
    """The operations for one source file: move it, cut documents out of it, edit or remove it."""
    rel, layout = src.rel, bases.layout
    by_service: dict[str, list[Placed]] = {}
    indexes: dict[str, list[int]] = {}
    stay: list[int] = []
    gone: list[Gone] = []
    for d in src.docs:
        fate = fates.get((rel, d.index))
        if isinstance(fate, Placed):
            by_service.setdefault(fate.service.id, []).append(fate)
            indexes.setdefault(fate.service.id, []).append(d.index)
            bases.services[fate.service.id] = fate.service
        elif isinstance(fate, Gone):
            gone.append(fate)
        else:
            stay.append(d.index)
    if not by_service and not gone:
        return
    if not by_service and not stay:
        layout.ops.append(FileOp("remove", rel, before=src.text, what=[g.what for g in gone],
                                 why="; ".join(sorted({g.why for g in gone}))))
        return
    order = sorted(by_service, key=lambda sid: (-len(by_service[sid]), sid))
    main = None if stay else order[0]
    for sid in order:
        pieces, idx = by_service[sid], indexes[sid]
        dest = bases.name(bases.services[sid], src, pieces, whole=len(order) == 1 and not stay)
        text = assemble(src, {i: p.text for i, p in zip(idx, pieces, strict=True)})
        unchanged = assemble(src, {i: src.units[src.docs[i].unit] for i in idx})
        _verify(text, [p.text for p in pieces], rel)
        what = [p.what for p in pieces]
        if sid != main:
            layout.ops.append(FileOp("create", dest, text=text, kept=unchanged, what=what, why=f"cut out of {rel}"))
            continue
        bases.moving_from.add(rel)
        why = [f"drops {', '.join(g.what for g in gone)}"] if gone else []
        if len(order) > 1:
            why.append("its other documents go to " + ", ".join(
                base_dir(bases.settings, bases.services[s]) for s in order[1:]))
        if dest != rel:
            layout.ops.append(FileOp("move", dest, text=text, source=rel, before=src.text, kept=unchanged,
                                     what=what, why="; ".join(why)))
        elif text != src.text:
            layout.ops.append(FileOp("edit", rel, text=text, before=src.text, kept=unchanged, what=what,
                                     why="; ".join(why)))
    if stay:
        moved = [p.what for sid in order for p in by_service[sid]] + [g.what for g in gone]
        kept = {i: src.units[src.docs[i].unit] for i in stay}
        text = assemble(src, kept)
        _verify(text, list(kept.values()), rel)
        layout.ops.append(FileOp("edit", rel, text=text, before=src.text,
                                 what=[f"{len(stay)} document(s) left alone"],
                                 why=f"keeps what is left alone; {', '.join(moved)} moved out or dropped"))


def plan_files(sources: dict[str, SourceFile], fates: dict[tuple[str, int], Fate], settings: Settings,
               root: Path, existing_flux_names: set[str]) -> Layout:
    """The file operations that give every service its base, and the Flux objects that apply them."""
    layout = Layout()
    bases = _Bases(settings, layout)
    for _, src in sorted(sources.items()):
        _place(src, fates, bases)
    for sid, svc in sorted(bases.services.items()):
        base = layout.bases[sid]
        layout.ops.append(FileOp("create", posixpath.join(base, KUSTOMIZATION),
                                 text=kustomization(svc, sorted(bases.contents[base]), bases.needs_ns[sid]),
                                 what=["kustomize base"], why=f"lists the files of {svc.id}"))
    _flux(layout, bases.services, settings, existing_flux_names)
    _check_free(layout, root, bases.moving_from)
    return layout


def _verify(text: str, pieces: list[str], where: str) -> None:
    """The assembled ``text`` must read back as exactly its documents (when they can be read to compare)."""
    expected = expected_docs(pieces)
    if expected is not None:
        check_text(text, expected, where)


def _check_free(layout: Layout, root: Path, moving: set[str]) -> None:
    """A path written must not hold a file nothing moves away, nor be written twice."""
    seen: set[str] = set()
    clashes: list[str] = []
    for op in layout.ops:
        if op.op not in ("move", "create"):
            continue
        if op.path in seen:
            clashes.append(f"{op.path} (written twice)")
        seen.add(op.path)
        target = root / op.path
        if (target.exists() or target.is_symlink()) and op.path not in moving:
            clashes.append(op.path)
    if clashes:
        raise InputError(f"{', '.join(sorted(set(clashes)))} already exist(s) -- move them away or pass --path/"
                         "--cluster to put the new tree elsewhere (nothing was changed)")


def kustomization(svc: Service, resources: list[str], namespace: bool) -> str:
    """The kustomization.yaml of a service's base."""
    lines = [f"# {svc.id}: the one definition of this service; Flux applies this directory.",
             "apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization"]
    if namespace and svc.namespace != CLUSTER_DIR:
        lines.append(f"namespace: {svc.namespace}")
    lines.append("resources:")
    lines += [f"  - {r}" for r in resources]
    return "\n".join(lines) + "\n"


def _flux(layout: Layout, services: dict[str, Service], settings: Settings, existing: set[str]) -> None:
    cluster_dir = posixpath.join("clusters", settings.cluster)
    if settings.write_sync and services:
        layout.ops.append(FileOp("create", posixpath.join(cluster_dir, "flux-system", "gotk-sync.yaml"),
                                 text=sync(settings), what=[f"GitRepository {settings.source_name}",
                                                            f"Kustomization {settings.source_name}"],
                                 why=f"Flux follows {settings.url} ({settings.branch}) and applies ./{cluster_dir}"))
    used = set(existing) | {settings.source_name}
    for sid, svc in sorted(services.items()):
        name = svc.name if svc.name not in used else f"{svc.namespace.strip('_')}-{svc.name}"
        used.add(name)
        layout.flux_names[sid] = name
    creates = {k[2]: sid for sid, svc in services.items() for k in svc.keys if k[0] == "Namespace"}
    for sid, svc in sorted(services.items()):
        name = layout.flux_names[sid]
        after = creates.get(svc.namespace)
        depends = [layout.flux_names[after]] if after is not None and after != sid else []
        layout.ops.append(FileOp("create", posixpath.join(cluster_dir, "apps", svc.namespace, f"{svc.name}.yaml"),
                                 text=flux_kustomization(name, layout.bases[sid], settings, depends),
                                 what=[f"Kustomization {name}"], why=f"Flux applies ./{layout.bases[sid]}"
                                 + (f" once {depends[0]} created its namespace" if depends else "")))


def sync(settings: Settings) -> str:
    """The GitRepository and the Kustomization that applies ``clusters/<cluster>`` (what ``flux bootstrap``
    writes to gotk-sync.yaml)."""
    ns = settings.flux_namespace
    return (f"# What Flux follows, and the Kustomization that applies clusters/{settings.cluster} (flux bootstrap "
            "writes the same objects).\n"
            "---\n"
            "apiVersion: source.toolkit.fluxcd.io/v1\n"
            "kind: GitRepository\n"
            "metadata:\n"
            f"  name: {settings.source_name}\n"
            f"  namespace: {ns}\n"
            "spec:\n"
            f"  interval: {settings.interval}\n"
            "  ref:\n"
            f"    branch: {settings.branch}\n"
            f"  url: {settings.url}\n"
            "---\n"
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\n"
            "kind: Kustomization\n"
            "metadata:\n"
            f"  name: {settings.source_name}\n"
            f"  namespace: {ns}\n"
            "spec:\n"
            "  interval: 10m0s\n"
            f"  path: ./clusters/{settings.cluster}\n"
            "  prune: true\n"
            "  sourceRef:\n"
            "    kind: GitRepository\n"
            f"    name: {settings.source_name}\n")


def flux_kustomization(name: str, base: str, settings: Settings, depends: list[str] | None = None) -> str:
    """The Flux Kustomization that applies one service's base (after the ones in ``depends``)."""
    source_ns = (f"    namespace: {settings.source_namespace}\n"
                 if settings.source_namespace and settings.source_namespace != settings.flux_namespace else "")
    after = "".join(f"  dependsOn:\n    - name: {d}\n" for d in (depends or [])[:1])
    return ("apiVersion: kustomize.toolkit.fluxcd.io/v1\n"
            "kind: Kustomization\n"
            "metadata:\n"
            f"  name: {name}\n"
            f"  namespace: {settings.flux_namespace}\n"
            "spec:\n"
            f"{after}"
            "  interval: 10m0s\n"
            f"  path: ./{base}\n"
            "  prune: true\n"
            "  sourceRef:\n"
            "    kind: GitRepository\n"
            f"    name: {settings.source_name}\n"
            f"{source_ns}")
