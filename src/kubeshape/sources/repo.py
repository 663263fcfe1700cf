"""Load a manifests repository as it is deployed: every render root rendered once, with provenance.

A *render root* is what a deploy tool applies: a Flux ``Kustomization`` (its ``path``, ``targetNamespace``,
``components``, ``patches``, ``images``, name affixes and ``postBuild`` substitution), an Argo CD ``Application``
(its source path and destination namespace), a top-level ``kustomization.yaml`` that nothing else includes, and
the plain YAML files that nothing renders (applied with ``kubectl apply -f``). Each root belongs to a *target* —
one cluster as far as the repository tells: the Flux tree or Argo destination it hangs from, an overlay of its own,
or the plain files — so that a base reused by overlays is one definition, not several.
"""

from __future__ import annotations

import os
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeshape.errors import InputError
from kubeshape.inventory import K8sObject, RepoSource, pod_spec, pod_template_path
from kubeshape.sources import flux, helmchart
from kubeshape.sources._gc import paused
from kubeshape.sources.render import Renderer, RenderResult, from_file
from kubeshape.sources.repofiles import (
    KUSTOMIZATION_NAMES,
    SKIP_DIRS,
    YAML_SUFFIXES,
    RepoFiles,
    YamlFile,
    collect,
    is_manifest,
    relpath,
)
from kubeshape.sources.yamlio import Document

CI_GLOBS = (
    ".github/workflows/*.yml", ".github/workflows/*.yaml", ".gitlab-ci.yml", ".gitea/workflows/*.y*ml",
    ".forgejo/workflows/*.y*ml", ".woodpecker.yml", ".woodpecker/*.y*ml", ".drone.yml", "Jenkinsfile",
    ".circleci/config.yml", "azure-pipelines.yml", "bitbucket-pipelines.yml", ".tekton/*.y*ml",
)
CLUSTER_SCOPED = {
    "Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass",
    "CustomResourceDefinition", "PriorityClass", "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration", "APIService", "IngressClass", "RuntimeClass", "CSIDriver",
    "ClusterIssuer", "VolumeSnapshotClass", "ClusterPolicy", "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding", "GatewayClass", "ClusterSecretStore",
}
_MAX_ROOTS = 10_000  # a Flux tree that keeps producing new roots is broken input, not a reason to hang


@dataclass(slots=True)
class Root:
    """One render root and the deploy target it belongs to."""

    id: str
    kind: str  # "flux" | "argo" | "kustomize" | "helm" (a HelmRelease's chart) | "chart" (unused chart) | "files"
    target: str
    path: Path | None = None
    spec: dict[str, Any] = field(default_factory=dict)  # the Flux Kustomization / Argo Application spec
    namespace: str = ""  # the root object's own namespace (Flux looks up substituteFrom there)
    defined_at: str = ""


def load_repo(roots: list[Path], base: Path, exclude: list[str] | None = None) -> RepoSource:
    """Read the manifests under ``roots`` (paths under the repository root ``base``) as they are deployed."""
    with paused():
        return _Loader(roots, base, exclude or []).load()


class _Loader:
    def __init__(self, roots: list[Path], base: Path, exclude: list[str]) -> None:
        self.base = base.resolve()
        self.roots = []
        for r in roots:
            path = (self.base / r).resolve() if not r.is_absolute() else r.resolve()
            if not path.exists():
                raise InputError(f"{path}: no such file or directory -- pass a manifests directory or file")
            self.roots.append(path)
        self.exclude = exclude
        self.source = RepoSource(root=str(self.base))
        self.charts_used: set[Path] = set()
        self.failed: set[Path] = set()  # directories whose render failed (reported once, as that failure)
        self.inputs: set[Path] = set()  # files kustomizations read besides resources (patches, generators, …)

    def load(self) -> RepoSource:
        files = collect(self.roots, self.base, self.exclude)
        src = self.source
        src.dockerfiles = files.dockerfiles
        src.yaml_files = sorted(yf.rel for yf in files.yaml.values())
        _load_ci(self.base, src)
        with Renderer(files) as renderer:
            return self._load(files, renderer)

    def _load(self, files: RepoFiles, renderer: Renderer) -> RepoSource:
        src = self.source
        self._read_problems(files)
        claimed, tops = self._claimed_dirs(files)
        included = _included_dirs(files)
        var_sources = _variable_sources(files)
        kdirs = set(files.kustomizations)

        queue: deque[Root] = deque()
        for kdir in sorted(files.kustomizations):
            if _is_component(files.kustomizations[kdir]):
                continue  # a Component is only ever applied by the kustomization that names it
            if kdir not in included and not _under(kdir, claimed):
                rel = files.rel(kdir)
                queue.append(Root(id=f"kustomization {rel}", kind="kustomize", target=f"kustomize:{rel}",
                                  path=kdir))
        plain = [yf for path, yf in sorted(files.yaml.items())
                 if not _under(path, kdirs) and not _under(path, claimed)]
        files_root = Root(id="plain files", kind="files", target="files")
        if plain:
            queue.appendleft(files_root)
        for obj in tops:
            child = self._child_root(obj, files_root)
            if child is not None:
                queue.append(child)
        renderer.prefetch([r.path for r in queue if r.path is not None and r.kind == "kustomize"])

        self.seen_roots: set[tuple[str, str]] = set()
        self.rendered_files: set[str] = set()
        self.objects: list[K8sObject] = []
        self._drain(queue, renderer, files, plain, var_sources)
        unused = [c for c in files.charts if c not in self.charts_used]
        queue.extend(Root(id=f"Helm chart {files.rel(c)}", kind="chart", target=f"chart:{files.rel(c)}", path=c,
                          spec={"metadata": {"name": c.name, "namespace": "default"}}) for c in unused)
        self._drain(queue, renderer, files, plain, var_sources)
        objects = self.objects
        src.objects = objects
        src.roots = len(self.seen_roots)
        self._summarise(files, self.rendered_files, claimed)
        return src

    def _drain(self, queue: deque[Root], renderer: Renderer, files: RepoFiles, plain: list[YamlFile],
               var_sources: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
        """Render roots until none is left; roots found in rendered objects join the queue."""
        src = self.source
        while queue:
            root = queue.popleft()
            if (root.defined_at or root.id, root.target) in self.seen_roots:
                continue
            self.seen_roots.add((root.defined_at or root.id, root.target))
            if len(self.seen_roots) > _MAX_ROOTS:
                src.not_analysed.append(f"more than {_MAX_ROOTS} render roots: the rest was not rendered")
                break
            if root.kind == "files":
                result = RenderResult(items=[r for yf in plain for r in from_file(yf)])
            else:
                result = self._render(renderer, root, files)
            if result.error:
                if root.path is not None:
                    self.failed.add(root.path)
                src.not_analysed.append(f"{root.id} ({root.defined_at or files.rel(root.path or self.base)}): "
                                        f"not rendered: {result.error}")
                continue
            src.not_analysed.extend(f"{root.id}: {n}" for n in result.not_analysed)
            values = flux.Variables()
            if root.kind == "flux":
                values = flux.variables(root.spec, root.namespace, var_sources)
                for why in values.unreadable:
                    src.notes.append(f"{root.id}: substitution variables from {why} could not be read")
            for item in result.items:
                data = flux.substitute(item.data, values.values) if root.kind == "flux" else item.data
                self.rendered_files.add(item.file)
                for obj in _objects(data, item.file, item.line, item.lines, item.origins):
                    obj.root, obj.target = root.id, root.target
                    if root.kind == "files" and obj.group.endswith(".fluxcd.io"):
                        obj.target = _target_for(obj, "flux")  # each cluster directory is bootstrapped apart
                    elif root.kind == "files" and obj.group == flux.ARGO_GROUP:
                        obj.target = _target_for(obj, "argo")
                    if root.kind == "argo" and not obj.namespace and obj.kind not in CLUSTER_SCOPED:
                        obj.namespace = str(flux.mapping(root.spec.get("destination")).get("namespace") or "")
                    if root.kind in ("helm", "chart") and not obj.namespace and obj.kind not in CLUSTER_SCOPED:
                        obj.namespace = helmchart.release_name(root.spec)[1]
                    if not obj.namespace and obj.kind not in CLUSTER_SCOPED:
                        obj.namespace = "default"
                    obj.unresolved = flux.unresolved(obj.raw)
                    self._check_containers(obj)
                    self.objects.append(obj)
                    child = self._child_root(obj, root) or self._chart_root(obj, root)
                    if child is not None:
                        queue.append(child)
                        if root.kind == "chart" and child.path is not None:
                            self._reclaim(child.path)

    def _check_containers(self, obj: K8sObject) -> None:
        """``containers: {name: …}`` (a mapping) is rejected by kubectl; rules would silently see no container."""
        spec, base = pod_spec(obj), pod_template_path(obj.kind)
        if spec is None or base is None or not obj.builtin:
            return
        for name in ("initContainers", "containers"):
            value = spec.get(name)
            if value is not None and not isinstance(value, list):
                path = f"{base}.{name}"
                line = obj.line_of(path) or obj.line or 1
                what = {"dict": "mapping", "str": "string", "bool": "boolean"}.get(type(value).__name__, "number")
                self.source.errors.append((obj.file or "?", line, f"{path} must be a list of containers (`- name: "
                                           f"…`), not a {what}: kubectl rejects it"))

    def _reclaim(self, path: Path) -> None:
        """A root found late (an Application a chart renders) deploys files first read as plain files: those
        plain copies were not what gets deployed, so they go."""
        rel = relpath(path, self.base)
        self.objects = [o for o in self.objects
                        if not (o.root == "plain files" and (o.file or "").startswith(rel + "/"))]

    # -- roots ------------------------------------------------------------------------------------------
    def _claimed_dirs(self, files: RepoFiles) -> tuple[set[Path], list[K8sObject]]:
        """Directories a Flux Kustomization or Argo CD Application anywhere in the repo deploys, and the root
        objects that no other root deploys (the tops of the Flux trees and Argo apps-of-apps)."""
        found: list[tuple[K8sObject, Path]] = []
        for yf in files.yaml.values():
            for d in yf.manifests:
                path = _root_path(d.data)
                if path is not None:
                    target = (self.base / path).resolve()
                    if target.is_dir() and target.is_relative_to(self.base):
                        found.append((K8sObject.from_raw(d.data, "repo", file=yf.rel, line=d.line), target))
        claimed: dict[Path, int] = defaultdict(int)
        for _, t in found:
            claimed[t] += 1
        tops = []
        for obj, own in found:
            # a top is deployed by no root but (maybe) itself: Flux's own flux-system Kustomization covers its file
            where = (self.base / str(obj.file)).parent
            covering = [d for d in (where, *where.parents) if d in claimed]
            if all(d == own and claimed[d] == 1 for d in covering):
                tops.append(obj)
        return set(claimed), tops

    def _child_root(self, obj: K8sObject, parent: Root) -> Root | None:
        raw = obj.raw
        path = _root_path(raw)
        if path is None:
            return None
        where = f"{obj.file}:{obj.line}" if obj.file else ""
        spec = flux.mapping(raw.get("spec"))
        if flux.is_flux_kustomization(raw):
            rid = f"Flux Kustomization {obj.namespace}/{obj.name}"
            kind = "flux"
        else:
            rid = f"Argo CD Application {obj.namespace}/{obj.name}"
            kind = "argo"
            spec = {**spec, "source": flux.mapping(spec.get("source"))}
        target = parent.target if parent.kind != "files" else _target_for(obj, kind)
        root = Root(id=rid, kind=kind, target=target, spec=spec, namespace=obj.namespace, defined_at=where)
        if "${" in path:
            self.source.not_analysed.append(f"{rid} ({where}): path {path} has unresolved variables; not rendered")
            root.path = None
            return None
        resolved = (self.base / path).resolve()
        if not resolved.is_relative_to(self.base) or not resolved.is_dir():
            self.source.not_analysed.append(
                f"{rid} ({where}): path {path} is not under {self.base} (lint the repository's root, where Flux and "
                "Argo CD paths start, to include it); not rendered")
            return None
        root.path = resolved
        return root

    def _chart_root(self, obj: K8sObject, parent: Root) -> Root | None:
        """A HelmRelease that installs a chart from this repository: rendered with ``helm template``."""
        if obj.kind != "HelmRelease" or obj.group != "helm.toolkit.fluxcd.io":
            return None
        chart = helmchart.local_chart(obj.raw, self.base)
        if chart is None:
            return None
        self.charts_used.add(chart)
        return Root(id=f"HelmRelease {obj.namespace}/{obj.name}", kind="helm", target=parent.target, path=chart,
                    spec=obj.raw, namespace=obj.namespace, defined_at=f"{obj.file}:{obj.line}")

    def _render(self, renderer: Renderer, root: Root, files: RepoFiles) -> RenderResult:
        assert root.path is not None
        if root.kind in ("helm", "chart"):
            items, error = helmchart.template(root.path, root.spec, self.base)
            if error and root.kind == "chart":
                error = f"{error} (nothing in the repository installs it; rendered with its default values)"
            return RenderResult(items=items, error=error)
        if root.kind == "kustomize":
            return renderer.kustomization(root.path)
        if root.kind == "argo":
            source = root.spec.get("source") or {}
            if source.get("chart"):
                return RenderResult(error="a chart from a Helm repository (only charts in this repository are "
                                          "rendered)")
            if (root.path / "Chart.yaml").is_file():  # Argo CD renders a chart directory with helm
                self.charts_used.add(root.path)
                dest = flux.mapping(root.spec.get("destination"))
                helm_spec = flux.mapping(source.get("helm"))
                release = {"metadata": {"name": helm_spec.get("releaseName") or root.id.rsplit("/", 1)[-1],
                                        "namespace": dest.get("namespace") or "default"},
                           "spec": {"values": flux.mapping(helm_spec.get("valuesObject"))}}
                items, error = helmchart.template(root.path, release, self.base)
                return RenderResult(items=items, error=error)
            recurse = bool((source.get("directory") or {}).get("recurse"))
            return renderer.directory(root.path, recurse=recurse)
        return renderer.flux(root.path, root.spec)

    # -- what was not read ------------------------------------------------------------------------------
    def _read_problems(self, files: RepoFiles) -> None:
        src = self.source
        skipped: dict[str, list[str]] = defaultdict(list)
        inputs = self.inputs = _kustomize_inputs(files)
        for yf in [*files.yaml.values(), *files.kustomizations.values()]:
            if yf.path in inputs:
                continue  # a patch, a generator's file, a kustomize configuration: read by kustomize, not by us
            if yf.error is not None:
                if yf.looks_like_manifest or yf.path.name in KUSTOMIZATION_NAMES:
                    src.errors.append((yf.error.file, yf.error.line, f"invalid YAML: {yf.error.problem}"))
                else:
                    skipped["not valid YAML and not a manifest"].append(yf.rel)
            elif yf.skipped:
                skipped[_reason_group(yf.skipped)].append(yf.rel)
            for d in yf.docs:
                src.notes.extend(f"{yf.rel}: {w}" for w in getattr(d, "warnings", ()))
        for reason, rels in sorted(skipped.items()):
            src.skipped_files.extend(rels)
            shown = ", ".join(rels[:3]) + (f" and {len(rels) - 3} more" if len(rels) > 3 else "")
            src.notes.append(f"skipped {len(rels)} YAML file(s) that are not Kubernetes manifests ({reason}): "
                             f"{shown}")
        src.notes.extend(files.special)

    def _summarise(self, files: RepoFiles, rendered: set[str], claimed: set[Path]) -> None:
        src = self.source
        remote, values_from = [], []
        for o in src.objects:
            if o.kind == "HelmRelease" and o.group == "helm.toolkit.fluxcd.io":
                spec = flux.mapping(o.raw.get("spec"))
                if helmchart.local_chart(o.raw, self.base) is None:
                    remote.append(f"{o.namespace}/{o.name}")
                if spec.get("valuesFrom"):
                    values_from.append(f"{o.namespace}/{o.name}")
        for names, what in ((remote, "install charts from Helm or OCI repositories, which are not fetched: only the "
                                     "images in their values were checked"),
                            (values_from, "take values from ConfigMaps/Secrets (valuesFrom), which were not read: "
                                          "images set there were not checked")):
            if names:
                shown = ", ".join(sorted(set(names))[:3]) + (f" and {len(set(names)) - 3} more"
                                                             if len(set(names)) > 3 else "")
                src.not_analysed.append(f"{len(set(names))} HelmRelease(s) {what} ({shown})")
        unresolved: dict[str, list[str]] = defaultdict(list)
        for o in src.objects:
            for var in o.unresolved:
                unresolved[var].append(f"{o.kind}/{o.name}")
        for var, objs in sorted(unresolved.items()):
            shown = ", ".join(sorted(set(objs))[:3]) + (f" and {len(set(objs)) - 3} more" if len(set(objs)) > 3
                                                        else "")
            src.not_analysed.append(f"variable ${{{var}}} is not defined in the repository: checks that need its "
                                    f"value were skipped on {shown}")
        inputs = self.inputs
        orphans = sorted(yf.rel for yf in files.yaml.values()
                         if yf.manifests and yf.rel not in rendered and yf.path not in inputs
                         and not _under(yf.path, self.failed)
                         and (_under(yf.path, set(files.kustomizations)) or _under(yf.path, claimed)))
        if orphans:
            shown = ", ".join(orphans[:3]) + (f" and {len(orphans) - 3} more" if len(orphans) > 3 else "")
            src.notes.append(f"{len(orphans)} manifest file(s) inside kustomization directories are not included "
                             f"by any kustomization, so nothing deploys them: {shown}")


def _under(path: Path, dirs: set[Path] | dict[Path, YamlFile]) -> bool:
    """``path`` is one of ``dirs`` or inside one (a walk up its parents: no scan of ``dirs``)."""
    return bool(dirs) and (path in dirs or any(p in dirs for p in path.parents))


def _reason_group(reason: str) -> str:
    if "tag" in reason:
        return "YAML tags of other programs such as !env_var"
    if "template" in reason:
        return "Jinja or Go templates"
    return "no apiVersion and kind"


def _root_path(data: Any) -> str | None:
    """The repository path a Flux Kustomization or Argo CD Application deploys, if any."""
    if not isinstance(data, dict):
        return None
    spec = data.get("spec")
    if not isinstance(spec, dict):
        return None
    if flux.is_flux_kustomization(data):
        path = spec.get("path")
        return str(path or "./").lstrip("/") or "." if isinstance(path, str | type(None)) else None
    if flux.is_argo_application(data):
        source = spec.get("source")
        if isinstance(source, dict) and isinstance(source.get("path"), str) and source["path"]:
            return str(source["path"]).lstrip("/")
    return None


def _target_for(obj: K8sObject, kind: str) -> str:
    """The deploy target of a root object found among the plain files."""
    if kind == "argo":
        dest = (obj.raw.get("spec") or {}).get("destination") or {}
        where = dest.get("server") or dest.get("name") or "in-cluster"
        return f"argo:{where}"
    return f"flux:{os.path.dirname(obj.file or '')}"


def _kustomize_inputs(files: RepoFiles) -> set[Path]:
    """Files a kustomization names outside ``resources`` (patches, generator files, configurations, …)."""
    out: set[Path] = set()
    for kdir, yf in files.kustomizations.items():
        for d in yf.docs:
            stack: list[Any] = [d.data.get(k) for k in d.data if k not in ("resources", "bases", "components")] \
                if isinstance(d.data, dict) else []
            while stack:
                node = stack.pop()
                if isinstance(node, str) and len(node) < 4096 and "\n" not in node:
                    name = node.rpartition("=")[2]
                    if name.endswith((".yaml", ".yml", ".json")):
                        out.add(Path(os.path.normpath(kdir / name)))
                elif isinstance(node, dict):
                    stack.extend(node.values())
                elif isinstance(node, list):
                    stack.extend(node)
    return out


def _is_component(yf: YamlFile) -> bool:
    return any(isinstance(d.data, dict) and d.data.get("kind") == "Component" for d in yf.docs)


def _included_dirs(files: RepoFiles) -> set[Path]:
    """Directories that some kustomization pulls in (resources, bases, components)."""
    out: set[Path] = set()
    for kdir, yf in files.kustomizations.items():
        for d in yf.docs:
            if not isinstance(d.data, dict):
                continue
            for key in ("resources", "bases", "components"):
                entries = d.data.get(key)
                for entry in entries if isinstance(entries, list) else []:
                    if isinstance(entry, str) and "://" not in entry:
                        target = (kdir / entry).resolve()
                        if target.is_dir():
                            out.add(target)
    return out


def _variable_sources(files: RepoFiles) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """ConfigMaps and Secrets anywhere in the repo, by (kind, name): where ``substituteFrom`` looks."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for yf in files.yaml.values():
        for d in yf.manifests:
            if d.data.get("kind") in ("ConfigMap", "Secret") and isinstance(d.data.get("metadata"), dict):
                out[(d.data["kind"], str(d.data["metadata"].get("name") or ""))].append(d.data)
    return out


def _objects(data: Any, file: str, line: int, lines: dict[str, int],
             origins: dict[str, tuple[str, int]] | None = None) -> Iterable[K8sObject]:
    """The objects of one rendered document (``kind: *List`` documents give their items).

    ``origins`` maps fields an overlay set to the file and line that set them (see ``Rendered.origins``).
    """
    if not is_manifest(data):
        return []
    if str(data["kind"]).endswith("List") and isinstance(data.get("items"), list):
        out = []
        for i, item in enumerate(data["items"]):
            if is_manifest(item):
                prefix = f"items[{i}]."
                sub = {k[len(prefix):]: v for k, v in lines.items() if k.startswith(prefix)}
                obj = K8sObject.from_raw(item, "repo", file=file, line=lines.get(f"items[{i}]", line), lines=sub)
                if origins:
                    obj.origins = {k[len(prefix):]: v for k, v in origins.items() if k.startswith(prefix)} or None
                out.append(obj)
        return out
    obj = K8sObject.from_raw(data, "repo", file=file, line=line, lines=lines)
    obj.origins = origins or None
    return [obj]


def _git_top(base: Path) -> Path | None:
    for d in [base, *base.parents]:
        if (d / ".git").exists():
            return d
    return None


def repository_root(path: Path) -> Path:
    """The repository a path belongs to: the git top level, else the nearest directory with a kubeshape.yaml,
    else the path itself (its directory for a file)."""
    from kubeshape.config import CONFIG_NAMES

    start = path.resolve()
    start = start if start.is_dir() else start.parent
    top = _git_top(start)
    if top is not None:
        return top
    for d in [start, *start.parents]:
        if any((d / n).is_file() for n in CONFIG_NAMES):
            return d
    return start


def _load_ci(base: Path, source: RepoSource) -> None:
    """CI files of the repository holding ``base`` (up to its git top level; else ``base`` alone)."""
    top = _git_top(base)
    dirs = [base]
    if top is not None and top != base:
        dirs += [d for d in base.parents if d.is_relative_to(top)]
    seen: set[Path] = set()
    for start in dirs:
        for pattern in CI_GLOBS:
            for path in sorted(start.glob(pattern)):
                if path in seen or not path.is_file():
                    continue
                seen.add(path)
                try:
                    source.ci_files[relpath(path.resolve(), base)] = path.read_text(encoding="utf-8",
                                                                                   errors="replace")
                except OSError:
                    continue


__all__ = ["CLUSTER_SCOPED", "SKIP_DIRS", "YAML_SUFFIXES", "Document", "load_repo", "repository_root"]
