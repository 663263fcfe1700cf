"""One plan for ``init gitops``: read the repository (and the cluster), decide, lay out the files."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeshape.errors import InputError
from kubeshape.inventory import ClusterSource, K8sObject
from kubeshape.scaffold.gitops import gitinfo
from kubeshape.scaffold.gitops.layout import Fate, Gone, Layout, Placed, Settings, plan_files
from kubeshape.scaffold.gitops.overlay import FieldChange, clean, overlay, show, to_plain
from kubeshape.scaffold.gitops.services import (
    LIVE_CONTENT,
    Choice,
    Grouping,
    Key,
    World,
    group,
    is_candidate,
)
from kubeshape.scaffold.gitops.sourcefiles import (
    SourceFile,
    check_text,
    dump_roundtrip,
    load_roundtrip,
    read_source,
    unit_text,
)

DEFAULT_INTERVAL = "1m0s"
URL_MISSING = "<pass --url>"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
ReadCluster = Callable[[list[str]], tuple[ClusterSource, str]]


@dataclass(slots=True)
class Options:
    """What ``init gitops`` was asked to do."""

    directory: Path
    apps: str = "apps"
    cluster: str | None = None
    flux_namespace: str | None = None
    url: str | None = None
    branch: str | None = None
    interval: str = DEFAULT_INTERVAL
    prefer: list[str] = field(default_factory=list)
    keep_variants: bool = False
    config: Path | None = None


@dataclass(slots=True)
class DocChanges:
    """How a moving document's text changes: cluster-only fields removed, live values set, secrets not copied."""

    cleaned: list[FieldChange] = field(default_factory=list)
    live: list[FieldChange] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    not_compared: str = ""


@dataclass(slots=True)
class Plan:
    root: Path
    reference: str  # what decided between definitions: the cluster, a bundle, or git history
    settings: Settings
    grouping: Grouping
    layout: Layout
    changes: dict[tuple[str, int], DocChanges] = field(default_factory=dict)
    left_alone: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    uncommitted: list[str] = field(default_factory=list)
    cleanup: list[str] = field(default_factory=list)  # commands for the cluster (not run)
    url_note: str = ""

    @property
    def empty(self) -> bool:
        return not self.layout.ops

    @property
    def writes_sync(self) -> bool:
        """The plan writes the GitRepository (and so needs a URL)."""
        return any(op.path.endswith("/flux-system/gotk-sync.yaml") for op in self.layout.ops if op.op == "create")


def _validate(opts: Options) -> None:
    if opts.cluster is not None and not _NAME.match(opts.cluster):
        raise InputError(f"--cluster {opts.cluster!r}: use lower-case letters, digits and '-' (a directory under "
                         "clusters/)")
    if opts.flux_namespace is not None and not _NAME.match(opts.flux_namespace):
        raise InputError(f"--flux-namespace {opts.flux_namespace!r} is not a valid namespace name")
    if not _DURATION.match(opts.interval):
        raise InputError(f"--interval {opts.interval!r}: a duration such as 1m, 30s or 1h30m")
    apps = posixpath.normpath(opts.apps.replace("\\", "/")).strip("/")
    if opts.apps.startswith("/") or apps.startswith("..") or apps in ("", ".") or apps.split("/")[0] == "clusters":
        raise InputError(f"--path {opts.apps!r}: a directory inside the repository, other than clusters/")
    opts.apps = apps


def _root(directory: Path) -> Path:
    if not directory.is_dir():
        what = "not a directory" if directory.exists() else "no such directory"
        raise InputError(f"{directory}: {what} -- pass --dir with the repository's root")
    top = gitinfo.toplevel(directory)
    if top is None:
        raise InputError(f"{directory} is not in a git repository: init gitops moves files with git mv so that "
                         "their history follows them -- run 'git init' and commit the manifests first")
    if top.resolve() != directory.resolve():
        raise InputError(f"{directory} is inside the git repository {top}: the new tree starts at its root -- run "
                         f"with --dir {top}")
    return top


def _kustomize_inputs(root: Path, exclude: list[str]) -> set[str]:
    """Files that a kustomization names (resources outside its directory, patches, generator inputs)."""
    from kubeshape.sources.repofiles import collect, relpath

    files = collect([root], root, exclude)
    out: set[str] = set()
    for kdir, yf in files.kustomizations.items():
        stack: list[Any] = [d.data for d in yf.docs]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, str) and "\n" not in node and len(node) < 4096:
                name = node.rpartition("=")[2]
                if name.endswith((".yaml", ".yml", ".json")):
                    path = (kdir / name).resolve()
                    if path.is_relative_to(root.resolve()):
                        out.add(relpath(path, root.resolve()))
    return out


def _live_api_version(kind: str, group: str) -> str:
    """The apiVersion the cluster source reads ``kind`` of ``group`` as ("" when it does not read it)."""
    from kubeshape.sources.live import KINDS

    spec = next((k for k in KINDS if k.kind == kind and k.group == group), None)
    if spec is None:
        return ""
    return f"{spec.group}/{spec.version}" if spec.group else spec.version


def _scaled(world_objects: list[K8sObject], live: dict[Key, K8sObject] | None) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of workloads an autoscaler sets the replicas of."""
    out: set[tuple[str, str, str]] = set()
    hpas = [o for o in world_objects if o.kind == "HorizontalPodAutoscaler"]
    hpas += [o for o in (live or {}).values() if o.kind == "HorizontalPodAutoscaler"]
    for h in hpas:
        ref = h.spec.get("scaleTargetRef") or {}
        if isinstance(ref, dict):
            out.add((str(ref.get("kind")), h.namespace, str(ref.get("name"))))
    return out


def _what(obj: K8sObject) -> str:
    return f"{obj.kind} {obj.name}"


def _doc_text(src: SourceFile, index: int, obj: K8sObject, choice: Choice, scaled: set[tuple[str, str, str]],
              plan_changes: DocChanges) -> str:
    """The text a kept document moves with: cluster-only fields removed, live values laid over it."""
    text = unit_text(src, index)
    where = f"{src.rel}:{src.docs[index].line}"
    try:
        doc = load_roundtrip(text, where)
    except InputError as exc:
        plan_changes.not_compared = f"moved as it is: it cannot be edited ({exc})"
        return text
    if not isinstance(doc, dict):
        return text
    plan_changes.cleaned = clean(doc, obj.kind)
    live = choice.live
    if live is not None and obj.kind in LIVE_CONTENT:
        want = _live_api_version(obj.kind, obj.group)
        have = str(doc.get("apiVersion") or "")
        if want and have != want:
            plan_changes.not_compared = (f"the cluster was read as {want}, the file says {have}: its fields were "
                                         "not compared with the cluster")
        else:
            skip = {"spec.replicas"} if (obj.kind, obj.namespace, obj.name) in scaled else set()
            result = overlay(doc, live.raw, obj.kind, skip)
            plan_changes.live, plan_changes.secrets = result.changes, result.secrets
    if not plan_changes.cleaned and not plan_changes.live:
        return text
    new = dump_roundtrip(doc, text)
    check_text(new, [to_plain(doc)], where)
    return new


def build(opts: Options, read_cluster: ReadCluster | None = None) -> Plan:
    """Read the repository (and, through ``read_cluster``, the cluster) and lay the new tree out."""
    from kubeshape.config import load_config
    from kubeshape.sources.repo import load_repo
    from kubeshape.ui import status

    _validate(opts)
    root = _root(opts.directory)
    cfg, cfg_path = load_config(opts.config, root, stop=root)
    base = cfg_path.parent if cfg_path else root
    with status(f"Reading manifests in {root}"):
        repo = load_repo([base / p for p in cfg.manifest_roots], root, cfg.exclude)
        inputs = _kustomize_inputs(root, cfg.exclude)
    objects = repo.objects
    for o in objects:
        if is_candidate(o) and o.file in inputs:
            o.root = "a kustomization's input"  # read by kustomize from another directory: left alone
    candidate_files = sorted({o.file for o in objects if is_candidate(o) and o.file})
    prefer = set()
    for given in opts.prefer:
        rel = _rel(root, given)
        if rel not in candidate_files:
            raise InputError(f"--prefer {given}: not a manifest file applied as it is (kubectl apply -f) in {root}")
        prefer.add(rel)
    sources = {rel: read_source(root / rel, rel) for rel in candidate_files}

    cluster: ClusterSource | None = None
    reference = "git history (no cluster was given: the most recently committed definition wins)"
    if read_cluster is not None and candidate_files:
        namespaces = sorted({o.namespace for o in objects if is_candidate(o) and o.namespace})
        cluster, reference = read_cluster(namespaces)
    live = None
    if cluster is not None:
        live = {o.key: o for objs in cluster.objects.values() for o in objs}
    world = World(objects=objects, files=sources, live=live, listed=set(cluster.listed_kinds) if cluster else set(),
                  times=gitinfo.commit_times(root, candidate_files), prefer=prefer,
                  keep_variants=opts.keep_variants)
    grouping = group(world)

    scaled = _scaled(objects, live)
    changes: dict[tuple[str, int], DocChanges] = {}
    fates: dict[tuple[str, int], Fate] = {}
    by_doc: dict[tuple[str, int], list[K8sObject]] = {}
    for d in grouping.candidates:
        by_doc.setdefault((d.doc.file, d.doc.index), []).append(d.obj)
    for (rel, index), objs in sorted(by_doc.items()):
        obj = objs[0]
        choice = grouping.choices[obj.key]
        what = _what(obj) if len(objs) == 1 else f"List of {len(objs)} ({', '.join(_what(o) for o in objs[:3])})"
        if choice.kept is None:
            fates[(rel, index)] = Gone(what, choice.reason)
        elif (choice.kept.doc.file, choice.kept.doc.index) != (rel, index):
            fates[(rel, index)] = Gone(what, f"another definition of it is kept ({choice.kept.where})")
        elif obj.key in grouping.gone:
            fates[(rel, index)] = Gone(what, grouping.gone[obj.key])
        else:
            dc = changes.setdefault((rel, index), DocChanges())
            text = _doc_text(sources[rel], index, obj, choice, scaled, dc)
            meta = sources[rel].docs[index].data.get("metadata") if isinstance(sources[rel].docs[index].data,
                                                                                   dict) else None
            no_ns = bool(obj.namespace) and not (isinstance(meta, dict) and meta.get("namespace"))
            fates[(rel, index)] = Placed(grouping.service_of[obj.key], what, text, no_ns)

    settings, existing_names, notes = _settings(opts, root, repo.objects)
    url_note = ""
    if settings.url == URL_MISSING:
        url_note = "no git remote: pass --url with the URL Flux clones this repository from"
    elif opts.url is None:
        url, dropped = gitinfo.flux_url(settings.url)
        settings.url = url
        if dropped:
            url_note = "the credentials in the git remote's URL were not copied: give Flux a secretRef instead"
    layout = plan_files(sources, fates, settings, root, existing_names)
    _check_not_deployed(layout, repo.objects)
    plan = Plan(root=root, reference=reference, settings=settings, grouping=grouping, layout=layout,
                changes=changes, notes=[*grouping.variants, *notes], url_note=url_note)
    plan.left_alone = _left_alone(repo, objects)
    plan.notes += [f"{f}:{line}: {msg} -- not read" for f, line, msg in repo.errors]
    involved = sorted({p for op in layout.ops for p in (op.source or op.path,) if op.op != "create"})
    plan.uncommitted = gitinfo.uncommitted(root, involved)
    if live is not None:
        for svc in grouping.services:
            absent = [f"{k[0]} {k[2]}" for k in svc.keys if k[0] in world.listed and k not in live]
            if absent:
                svc.notes.append(f"not in the cluster now, Flux will create: {', '.join(absent)}")
            unread = [f"{k[0]} {k[2]}" for k in svc.keys if k[0] not in LIVE_CONTENT]
            if unread:
                svc.notes.append(f"kept as the file has it, not compared with the cluster (kubeshape does not read "
                                 f"their content): {', '.join(unread)}")
        for key in sorted(grouping.gone):
            if key in live and key[0] in world.listed:
                plan.cleanup.append(f"kubectl delete {key[0].lower()} {key[2]} -n {key[1]} --ignore-not-found")
    return plan


def _rel(root: Path, given: str) -> str:
    """``given`` (relative to the repository root, or to the current directory) relative to the root."""
    from kubeshape.sources.repofiles import relpath

    path = Path(given)
    if not path.is_absolute():
        path = root / given if (root / given).exists() else Path.cwd() / given
    return relpath(path.resolve(), root.resolve())


def _settings(opts: Options, root: Path, objects: list[K8sObject]) -> tuple[Settings, set[str], list[str]]:
    notes: list[str] = []
    clusters = sorted(p.name for p in (root / "clusters").iterdir() if p.is_dir()) \
        if (root / "clusters").is_dir() else []
    cluster = opts.cluster or (clusters[0] if len(clusters) == 1 else "default")
    cluster_dir = f"clusters/{cluster}"
    flux_ks = [o for o in objects if o.kind == "Kustomization" and o.group == "kustomize.toolkit.fluxcd.io"]
    covering = [o for o in flux_ks if _covers(_flux_path(o), cluster_dir)]
    source_name, source_ns, write_sync = "flux-system", "", True
    flux_namespace = opts.flux_namespace or "flux-system"
    if covering:
        ks = covering[0]
        ref = ks.spec.get("sourceRef") or {}
        source_name = str(ref.get("name") or "flux-system")
        source_ns = str(ref.get("namespace") or ks.namespace)
        flux_namespace = opts.flux_namespace or ks.namespace or "flux-system"
        write_sync = False
        notes.append(f"Flux Kustomization {ks.namespace}/{ks.name} ({ks.file}) already applies ./{cluster_dir}: the "
                     f"new Kustomizations use its source, GitRepository {source_name}")
    url = opts.url or gitinfo.remote_url(root) or URL_MISSING
    branch = opts.branch or gitinfo.current_branch(root) or "main"
    names = {o.name for o in flux_ks if o.namespace == flux_namespace}
    return (Settings(apps=opts.apps, cluster=cluster, flux_namespace=flux_namespace, url=url, branch=branch,
                     interval=opts.interval, source_name=source_name, source_namespace=source_ns,
                     write_sync=write_sync), names, notes)


def _flux_path(obj: K8sObject) -> str:
    """A Flux Kustomization's path relative to the repository root ("" for the root itself)."""
    path = posixpath.normpath(str(obj.spec.get("path") or ".").lstrip("/"))
    return "" if path == "." else path


def _covers(path: str, target: str) -> bool:
    return path in ("", ".") or target == path or target.startswith(path + "/")


def _check_not_deployed(layout: Layout, objects: list[K8sObject]) -> None:
    """A new base inside a directory that Flux or Argo CD already applies would be applied twice."""
    from kubeshape.sources.flux import is_argo_application, is_flux_kustomization

    for o in objects:
        if not (is_flux_kustomization(o.raw) or is_argo_application(o.raw)):
            continue
        path = _flux_path(o) if is_flux_kustomization(o.raw) else posixpath.normpath(
            str(((o.spec.get("source") or {}).get("path")) or "")).strip("/")
        if path == ".":
            path = ""
        for base in sorted(layout.bases.values()):
            if _covers(path, base):
                raise InputError(f"{base} would be inside ./{path or '.'}, which {o.kind} {o.namespace}/{o.name} "
                                 f"({o.file}) already applies: pass --path to put the services elsewhere")


_ROOT_KINDS = (("Flux Kustomization", "Flux Kustomization"), ("Argo CD Application", "Argo CD Application"),
               ("kustomization ", "kustomization"), ("HelmRelease", "HelmRelease"), ("Helm chart", "Helm chart"))


def _left_alone(repo: Any, objects: list[K8sObject]) -> list[str]:
    out: list[str] = []
    roots: dict[str, set[str]] = {}
    count = 0
    for o in objects:
        if o.root in ("plain files", ""):
            continue
        count += 1
        kind = next((name for prefix, name in _ROOT_KINDS if o.root.startswith(prefix)), o.root)
        roots.setdefault(kind, set()).add(o.root)
    if count:
        by = ", ".join(f"{len(r)} {k}{'s' if len(r) != 1 and not k.endswith('input') else ''}"
                       for k, r in sorted(roots.items()))
        out.append(f"{count} object{'s' if count != 1 else ''} that {by} render"
                   + ("s" if len(roots) == 1 and len(next(iter(roots.values()))) == 1 else ""))
    gitops = sorted({f"{o.file}" for o in objects if o.root == "plain files" and not is_candidate(o)})
    if gitops:
        out.append(f"Flux and Argo CD objects in {', '.join(gitops[:4])}" + (" and more" if len(gitops) > 4 else ""))
    if repo.skipped_files:
        shown = ", ".join(repo.skipped_files[:4]) + (f" and {len(repo.skipped_files) - 4} more"
                                                     if len(repo.skipped_files) > 4 else "")
        n = len(repo.skipped_files)
        out.append(f"{n} YAML file{' that is not a' if n == 1 else 's that are not'} Kubernetes manifest"
                   f"{'' if n == 1 else 's'}: {shown}")
    return out


def describe_change(c: FieldChange, kind: str) -> str:
    """One plan line for a field change, secret values masked."""
    if c.what == "added":
        return f"{c.path}: {show(c.after, c.path, kind)} (added)"
    if c.what == "removed":
        return f"{c.path}: {show(c.before, c.path, kind)} (removed)"
    return f"{c.path}: {show(c.before, c.path, kind)} -> {show(c.after, c.path, kind)}"

