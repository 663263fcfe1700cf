"""Which workloads a manifest or a kustomization deploys, and with which container images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml.error import YAMLError

from kubeshape.imageref import InvalidReference, parse
from kubeshape.release.yamltext import load_plain

POD_SPEC: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template", "spec"), "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"), "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"), "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Workload:
    """A workload the edited file deploys; ``containers`` run the released image."""

    kind: str
    namespace: str | None
    name: str
    containers: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.namespace + '/' if self.namespace else ''}{self.kind}/{self.name}"


def find_kustomization(directory: Path) -> Path | None:
    """``kustomization.yaml`` (or ``.yml``/``Kustomization``) in ``directory``."""
    return next((directory / n for n in KUSTOMIZATION_NAMES if (directory / n).is_file()), None)


def image_name(ref: str) -> str | None:
    """``reg/app`` of ``reg/app:tag@sha256:…``; None when not a valid reference."""
    try:
        return parse(ref).name
    except InvalidReference:
        return None


def get_in(doc: Any, path: tuple[str, ...]) -> Any:
    node = doc
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def containers_of(doc: Any) -> list[dict[str, Any]]:
    """The containers of a workload document (empty for anything else)."""
    if not isinstance(doc, dict) or str(doc.get("kind")) not in POD_SPEC:
        return []
    found = get_in(doc, (*POD_SPEC[str(doc["kind"])], "containers"))
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def workload(doc: Any, containers: list[str], namespace: str | None = None) -> Workload:
    meta = doc.get("metadata") or {}
    return Workload(str(doc.get("kind")), namespace or meta.get("namespace"), str(meta.get("name", "")),
                    tuple(containers))


def _resource_docs(path: Path, doc: dict[str, Any], depth: int = 0) -> list[dict[str, Any]]:
    """Workload documents a kustomization renders (local resources only), with its namespace/prefix/suffix."""
    base = path.parent
    out: list[dict[str, Any]] = []
    for res in [*(doc.get("resources") or []), *(doc.get("bases") or [])]:
        res = str(res)
        if "://" in res or res.startswith(("git@", "github.com/")) or depth >= MAX_DEPTH:
            continue
        target = base / res
        if target.is_dir() and (inner := find_kustomization(target)) is not None:
            try:
                inner_doc = load_plain(inner.read_text())[0] or {}
            except (OSError, YAMLError, IndexError):
                continue
            out.extend(_resource_docs(inner, inner_doc, depth + 1))
        elif target.is_file():
            try:
                out.extend(d for d in load_plain(target.read_text()) if isinstance(d, dict) and containers_of(d))
            except (OSError, YAMLError):
                continue
    ns, prefix, suffix = doc.get("namespace"), str(doc.get("namePrefix") or ""), str(doc.get("nameSuffix") or "")
    for d in out:
        meta = d.setdefault("metadata", {})
        meta["name"] = f"{prefix}{meta.get('name', '')}{suffix}"
        if ns:
            meta["namespace"] = ns
    return out


def kustomization_workloads(path: Path, doc: Any, name: str) -> list[Workload]:
    """Workloads of the kustomization whose containers run the image named ``name``."""
    out = []
    for d in _resource_docs(path, _to_plain(doc)):
        names = [str(c.get("name")) for c in containers_of(d) if image_name(str(c.get("image", ""))) == name]
        if names:
            out.append(workload(d, names))
    return out


def kustomization_image_names(path: Path, doc: Any) -> list[str]:
    """Every image name the kustomization's local resources use."""
    return sorted({n for d in _resource_docs(path, _to_plain(doc)) for c in containers_of(d)
                   if (n := image_name(str(c.get("image", ""))))})


def _to_plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_to_plain(v) for v in node]
    return node
