"""Find and read a repository's YAML once: manifests, kustomizations, and files that are not manifests."""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeshape.config import CONFIG_NAMES
from kubeshape.sources.kustomize import KUSTOMIZATION_FILES
from kubeshape.sources.yamlio import Document, LocalTagError, YamlSyntaxError, load_yaml_file, template_marker

YAML_SUFFIXES = (".yaml", ".yml")
KUSTOMIZATION_NAMES = KUSTOMIZATION_FILES
CHART_FILES = ("Chart.yaml", "Chart.lock")
# Never manifests: version control, dependencies, virtual environments and build output.
SKIP_DIRS = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__", ".tox", "vendor", "build", "dist",
                       "site-packages"})
SKIP_DIR_SUFFIXES = (".egg-info",)  # setuptools metadata (src/kubeshape.egg-info)
VENV_MARKER = "pyvenv.cfg"  # a virtualenv under any name (env/, py311/, …): its directory holds this file
# A top-level apiVersion or kind line: a manifest, even when it does not parse.
_LOOKS_LIKE_MANIFEST = re.compile(r"^(?:apiVersion|kind):[ \t]*\S", re.M)


@dataclass(slots=True)
class YamlFile:
    """One YAML file: its parsed documents, or why it is not read as Kubernetes manifests."""

    rel: str
    path: Path
    docs: list[Document] = field(default_factory=list)
    error: YamlSyntaxError | None = None  # does not parse
    skipped: str = ""  # not a Kubernetes manifest: why
    looks_like_manifest: bool = False  # a top-level apiVersion or kind line (for files that do not parse)

    @property
    def manifests(self) -> list[Document]:
        """Documents that are Kubernetes objects (a mapping with apiVersion and kind)."""
        return [d for d in self.docs if is_manifest(d.data)]


def is_manifest(data: Any) -> bool:
    """A Kubernetes object or List: a mapping with string ``apiVersion`` and ``kind``."""
    return isinstance(data, dict) and isinstance(data.get("kind"), str) and isinstance(data.get("apiVersion"), str) \
        and bool(data["kind"]) and bool(data["apiVersion"])


@dataclass(slots=True)
class RepoFiles:
    """Everything found under the roots: YAML files by resolved path, kustomization dirs, Dockerfiles."""

    base: Path
    yaml: dict[Path, YamlFile] = field(default_factory=dict)
    kustomizations: dict[Path, YamlFile] = field(default_factory=dict)  # directory → its kustomization file
    dockerfiles: list[str] = field(default_factory=list)
    special: list[str] = field(default_factory=list)  # FIFOs, devices, sockets: never opened
    charts: list[Path] = field(default_factory=list)  # directories with a Chart.yaml (Helm charts)

    def rel(self, path: Path) -> str:
        """``path`` relative to the repository root (as every report prints it)."""
        return relpath(path, self.base)


def relpath(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix() or "."
    except ValueError:
        return str(path)


def excluded(rel: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(rel, p.rstrip("/") + "/*") for p in patterns)


def read_yaml(path: Path, rel: str) -> YamlFile:
    """Parse one file; a file that is not a Kubernetes manifest is marked skipped with the reason."""
    out = YamlFile(rel=rel, path=path)
    try:
        out.docs = load_yaml_file(path, rel)
    except LocalTagError as exc:
        out.skipped = exc.problem
        return out
    except YamlSyntaxError as exc:
        text = _text(path)
        marker = template_marker(text) if text is not None else None
        if marker:
            out.skipped = f"a template ({marker}), not a manifest"
            return out
        out.error = exc
        out.looks_like_manifest = bool(text is not None and _LOOKS_LIKE_MANIFEST.search(text))
        return out
    if not out.manifests and path.name not in KUSTOMIZATION_NAMES:
        out.skipped = "no apiVersion and kind: not a Kubernetes manifest"
    return out


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def collect(roots: list[Path], base: Path, exclude: list[str]) -> RepoFiles:
    """Walk ``roots`` (files or directories under ``base``) and read every YAML file once."""
    files = RepoFiles(base=base)
    for root in roots:
        if root.is_file():
            _add_file(files, root, exclude, explicit=True)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            helm_chart = "Chart.yaml" in filenames  # chart templates are Go templates, not YAML
            if helm_chart:
                files.charts.append(here)
            dirnames[:] = sorted(
                d for d in dirnames
                if d not in SKIP_DIRS and not d.startswith(".") and not d.endswith(SKIP_DIR_SUFFIXES)
                and not (here / d / VENV_MARKER).is_file()
                and not (helm_chart and d in ("templates", "charts"))
                and not excluded(relpath(here / d, base), exclude)
            )
            for fn in sorted(filenames):
                if fn in CONFIG_NAMES or (helm_chart and (fn in CHART_FILES or fn.startswith("values"))):
                    continue
                _add_file(files, here / fn, exclude, explicit=False)
    return files


def _add_file(files: RepoFiles, path: Path, exclude: list[str], explicit: bool) -> None:
    rel = files.rel(path)
    if excluded(rel, exclude):
        return
    name = path.name
    if name == "Dockerfile" or name.endswith(".Dockerfile") or name.startswith("Dockerfile."):
        files.dockerfiles.append(rel)
        return
    is_kustomization = name in KUSTOMIZATION_NAMES
    if not (is_kustomization or name.endswith(YAML_SUFFIXES) or explicit):
        return
    try:
        mode = path.lstat().st_mode
    except OSError:
        return
    if stat.S_ISLNK(mode):
        try:
            target = path.resolve(strict=True)
            mode = target.stat().st_mode
        except (OSError, RuntimeError):
            return
        if not target.is_relative_to(files.base):
            files.special.append(f"{rel}: a symlink that leaves the repository, not followed")
            return
    if not stat.S_ISREG(mode):
        files.special.append(f"{rel}: not a regular file (FIFO, device or socket), not read")
        return
    yf = read_yaml(path, rel)
    if is_kustomization:
        files.kustomizations[path.parent] = yf
    else:
        files.yaml[path] = yf
