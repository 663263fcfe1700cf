"""Load a manifests repository: YAML files (multi-document, List kinds) and rendered kustomizations."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from kubeshape.errors import InputError
from kubeshape.inventory import K8sObject, RepoSource
from kubeshape.sources._gc import bulk_load
from kubeshape.sources.yamlio import Document, YamlSyntaxError, load_yaml_file, load_yaml_text

YAML_SUFFIXES = (".yaml", ".yml")
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SKIP_DIRS = {".git", "node_modules", ".venv", "venv", "__pycache__", ".tox", "vendor"}
CI_GLOBS = (
    ".github/workflows/*.yml", ".github/workflows/*.yaml", ".gitlab-ci.yml", ".gitea/workflows/*.y*ml",
    ".forgejo/workflows/*.y*ml", ".woodpecker.yml", ".woodpecker/*.y*ml", ".drone.yml", "Jenkinsfile",
    ".circleci/config.yml", "azure-pipelines.yml", "bitbucket-pipelines.yml", ".tekton/*.y*ml",
)
CLUSTER_SCOPED = {
    "Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass",
    "CustomResourceDefinition", "PriorityClass", "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration", "APIService", "IngressClass", "RuntimeClass", "CSIDriver",
    "ClusterIssuer", "VolumeSnapshotClass",
}


def _objects_from_doc(doc: Document, rel: str) -> list[K8sObject]:
    data = doc.data
    if not isinstance(data, dict) or "kind" not in data:
        return []
    if str(data.get("kind", "")).endswith("List") and isinstance(data.get("items"), list):
        out = []
        for i, item in enumerate(data["items"]):
            if isinstance(item, dict) and item.get("kind"):
                prefix = f"items[{i}]."
                lines = {k[len(prefix):]: v for k, v in doc.lines.items() if k.startswith(prefix)}
                out.append(_make(item, rel, doc.lines.get(f"items[{i}]", doc.line), lines))
        return out
    return [_make(data, rel, doc.line, doc.lines)]


def _make(raw: dict[str, Any], rel: str, line: int, lines: dict[str, int]) -> K8sObject:
    kind = str(raw.get("kind", ""))
    default_ns = "" if kind in CLUSTER_SCOPED else "default"
    return K8sObject.from_raw(raw, "repo", file=rel, line=line, lines=lines, default_namespace=default_ns)


def _excluded(rel: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(rel, p.rstrip("/") + "/*") for p in patterns)


def _kustomize_refs(kdir: Path, docs: list[Document]) -> set[Path]:
    """Directories a kustomization pulls in (resources, bases, components)."""
    refs: set[Path] = set()
    for d in docs:
        if not isinstance(d.data, dict):
            continue
        for key in ("resources", "bases", "components"):
            for entry in d.data.get(key) or []:
                if isinstance(entry, str) and "://" not in entry:
                    target = (kdir / entry).resolve()
                    if target.is_dir():
                        refs.add(target)
    return refs


def _render_kustomization(kdir: Path, root: Path) -> tuple[list[Document], str | None]:
    kubectl = shutil.which("kubectl")
    kustomize = shutil.which("kustomize")
    if kustomize:
        cmd = [kustomize, "build", str(kdir)]
    elif kubectl:
        cmd = [kubectl, "kustomize", str(kdir)]
    else:
        return [], "neither kustomize nor kubectl is installed"
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        return [], "kustomize build timed out after 120s"
    if proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return [], msg
    rel = str(kdir.relative_to(root)) if kdir != root else "."
    return load_yaml_text(proc.stdout, f"{rel}/kustomization.yaml", with_lines=False), None


def load_repo(roots: list[Path], base: Path, exclude: list[str] | None = None) -> RepoSource:
    """Walk ``roots`` (paths relative to or under ``base``) and load every manifest."""
    with bulk_load():
        return _load_repo(roots, base, exclude)


def _load_repo(roots: list[Path], base: Path, exclude: list[str] | None) -> RepoSource:
    base = base.resolve()
    exclude = exclude or []
    source = RepoSource(root=str(base))
    yaml_files: list[Path] = []
    kustomize_dirs: dict[Path, list[Document]] = {}
    for root in roots:
        root = (base / root).resolve() if not root.is_absolute() else root.resolve()
        if not root.exists():
            raise InputError(f"{root}: no such file or directory -- pass a manifests directory or file")
        if root.is_file():
            yaml_files.append(root)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            helm_chart = "Chart.yaml" in filenames  # Helm templates are not YAML until rendered
            dirnames[:] = sorted(
                d for d in dirnames
                if d not in SKIP_DIRS and not d.startswith(".") and not (helm_chart and d in ("templates", "charts"))
            )
            for fn in sorted(filenames):
                path = here / fn
                rel = _rel(path, base)
                if _excluded(rel, exclude):
                    continue
                if fn == "Dockerfile" or fn.endswith(".Dockerfile") or fn.startswith("Dockerfile."):
                    source.dockerfiles.append(rel)
                elif fn in KUSTOMIZATION_NAMES:
                    try:
                        kustomize_dirs[here.resolve()] = load_yaml_file(path, rel)
                    except YamlSyntaxError as exc:
                        source.errors.append((exc.file, exc.line, f"invalid YAML: {exc.problem}"))
                elif fn.endswith(YAML_SUFFIXES):
                    yaml_files.append(path)
    _load_ci(base, source)

    # Render only top-level kustomizations; files they include are attributed to their own lines.
    referenced: set[Path] = set()
    for kdir, docs in kustomize_dirs.items():
        referenced |= _kustomize_refs(kdir, docs)
    top = sorted(k for k in kustomize_dirs if k not in referenced)
    covered = [k for k in kustomize_dirs]

    plain: list[K8sObject] = []
    by_dir: dict[Path, list[K8sObject]] = {}
    for path in sorted(set(yaml_files)):
        rel = _rel(path, base)
        source.yaml_files.append(rel)
        try:
            docs = load_yaml_file(path, rel)
        except YamlSyntaxError as exc:
            source.errors.append((exc.file, exc.line, f"invalid YAML: {exc.problem}"))
            continue
        objs = [o for d in docs for o in _objects_from_doc(d, rel)]
        owner = next((k for k in covered if path.resolve().is_relative_to(k)), None)
        if owner is None:
            plain.extend(objs)
        else:
            by_dir.setdefault(owner, []).extend(objs)

    for kdir in top:
        docs, err = _render_kustomization(kdir, base)
        if err:
            source.notes.append(f"{_rel(kdir, base)}: kustomization not rendered ({err}); read its files as-is")
            for k, objs in by_dir.items():
                if k.is_relative_to(kdir):
                    plain.extend(objs)
            continue
        originals = {(o.kind, o.name): o for k, objs in by_dir.items() for o in objs}
        for d in docs:
            for o in _objects_from_doc(d, f"{_rel(kdir, base)}/kustomization.yaml"):
                src = originals.get((o.kind, o.name)) or _strip_affixes(o, originals)
                if src is not None:
                    o.file, o.line, o.lines = src.file, src.line, src.lines
                plain.append(o)
    source.objects = plain
    return source


def _strip_affixes(obj: K8sObject, originals: dict[tuple[str, str], K8sObject]) -> K8sObject | None:
    # namePrefix/nameSuffix renames: fall back to the longest original name contained in the new one.
    best = None
    for (kind, name), o in originals.items():
        if kind == obj.kind and name in obj.name and (best is None or len(name) > len(best.name)):
            best = o
    return best


def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base))
    except ValueError:
        return str(path)


def _git_top(base: Path) -> Path | None:
    for d in [base, *base.parents]:
        if (d / ".git").exists():
            return d
    return None


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
                    source.ci_files[_rel(path, base)] = path.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue
