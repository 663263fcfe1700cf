"""Render kustomizations: in process for what real repos use, the kustomize binary for the rest.

Every directory is rendered at most once per run (a base or a Flux path shared by many roots is cached), and
renders that need the binary run concurrently, bounded by the CPU count.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeshape.sources import kustomize
from kubeshape.sources.flux import mapping
from kubeshape.sources.kustomize import KustomizeError, Rendered, Unsupported, find_kustomization
from kubeshape.sources.repofiles import RepoFiles, YamlFile, is_manifest, relpath
from kubeshape.sources.yamlio import YamlSyntaxError, load_yaml_text

BINARY_TIMEOUT = 120
# Fields of a Flux Kustomization that Flux writes into the kustomization it builds.
FLUX_FIELDS = ("components", "patches", "images", "namePrefix", "nameSuffix")


@dataclass(slots=True)
class RenderResult:
    """Rendered objects with provenance, or why the root could not be rendered."""

    items: list[Rendered] = field(default_factory=list)
    error: str = ""
    not_analysed: list[str] = field(default_factory=list)


def from_file(yf: YamlFile) -> list[Rendered]:
    """The manifests of one plain file, as they stand."""
    return [Rendered(data=d.data, file=yf.rel, line=d.line, lines=d.lines) for d in yf.manifests]


def binary() -> list[str] | None:
    """The command that renders a kustomization: ``kustomize build`` (faster), else ``kubectl kustomize``."""
    if exe := shutil.which("kustomize"):
        return [exe, "build"]
    if exe := shutil.which("kubectl"):
        return [exe, "kustomize"]
    return None


class Renderer:
    """Renders directories of one repository, caching per directory and per Flux overlay."""

    def __init__(self, files: RepoFiles) -> None:
        self.files = files
        self.base = files.base
        self.cache: dict[Any, Any] = {}
        kustomize.seed_cache(self.cache, [(p, yf.docs) for p, yf in [*files.yaml.items(),
                                          *((yf.path, yf) for yf in files.kustomizations.values())]
                                          if yf.error is None and not yf.skipped])
        self._done: dict[Any, RenderResult] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[Any, Future[RenderResult]] = {}

    # -- public ---------------------------------------------------------------------------------------
    def kustomization(self, kdir: Path) -> RenderResult:
        """``kustomize build kdir``."""
        return self._memo(("k", kdir), lambda: self._kustomize(kdir, None))

    def directory(self, path: Path, recurse: bool) -> RenderResult:
        """A directory applied as it is (Argo CD directory source): its kustomization, else its manifests."""
        if find_kustomization(path) is not None:
            return self.kustomization(path)
        return self._memo(("d", path, recurse), lambda: RenderResult(items=self._plain(path, recurse)))

    def flux(self, path: Path, spec: dict[str, Any]) -> RenderResult:
        """What Flux's kustomize-controller builds for a Kustomization with ``spec`` at ``path``."""
        extra = _flux_overlay(spec)
        key = ("f", path, repr(sorted(extra.items())))
        return self._memo(key, lambda: self._kustomize(path, extra))

    def prefetch(self, dirs: list[Path]) -> None:
        """Start binary renders for directories the in-process renderer cannot handle, concurrently."""
        for d in dirs:
            key = ("k", d)
            if key in self._done or key in self._pending or find_kustomization(d) is None:
                continue
            try:
                items = kustomize.render(d, self.base, cache=self.cache)
            except Unsupported as exc:
                self._pending[key] = self._submit(d, None, str(exc))
            except KustomizeError as exc:
                self._done[key] = RenderResult(error=str(exc))
            else:
                self._done[key] = RenderResult(items=items)

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    # -- internals ------------------------------------------------------------------------------------
    def _memo(self, key: Any, build: Any) -> RenderResult:
        if key in self._pending:
            self._done[key] = self._pending.pop(key).result()
        if key not in self._done:
            self._done[key] = build()
        return self._done[key]

    def _kustomize(self, path: Path, extra: dict[str, Any] | None) -> RenderResult:
        try:
            items = kustomize.render(path, self.base, cache=self.cache, extra=extra,
                                     generate=self._generated_resources)
        except Unsupported as exc:
            return self._submit(path, extra, str(exc)).result()
        except KustomizeError as exc:
            return RenderResult(error=str(exc))
        return RenderResult(items=items)

    def _generated_resources(self, path: Path) -> list[str]:
        """The resources of the kustomization Flux generates for a path that has none: every manifest file and
        every sub-directory that has a kustomization (not descended), recursively."""
        out: list[str] = []
        for dirpath, dirnames, filenames in os.walk(path):
            here = Path(dirpath)
            keep = []
            for d in sorted(dirnames):
                sub = here / d
                if d.startswith("."):
                    continue
                if find_kustomization(sub) is not None:
                    out.append(os.path.relpath(sub, path))
                else:
                    keep.append(d)
            dirnames[:] = keep
            for fn in sorted(filenames):
                yf = self.files.yaml.get(here / fn)
                if yf is not None and yf.manifests:
                    out.append(os.path.relpath(here / fn, path))
        return out

    def _plain(self, path: Path, recurse: bool) -> list[Rendered]:
        out: list[Rendered] = []
        for p, yf in sorted(self.files.yaml.items()):
            if (p.parent == path or (recurse and p.is_relative_to(path))) and yf.manifests:
                out.extend(from_file(yf))
        return out

    def _submit(self, path: Path, extra: dict[str, Any] | None, why: str) -> Future[RenderResult]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1))
        return self._pool.submit(self._run_binary, path, extra, why)

    def _run_binary(self, path: Path, extra: dict[str, Any] | None, why: str) -> RenderResult:
        cmd = binary()
        if cmd is None:
            return RenderResult(error=f"uses {why}, which needs the kustomize or kubectl binary (neither is "
                                      "installed)")
        with tempfile.TemporaryDirectory(prefix="kubeshape-") as tmp:
            target = path
            args = [str(target)]
            if extra or find_kustomization(path) is None:
                # What Flux builds: a kustomization around the path. kustomize wants relative paths, and files
                # outside the wrapper's own directory need the load restrictor off.
                target = Path(tmp)
                wrapper: dict[str, Any] = {"resources": [_relative(path, target)] if find_kustomization(path) else
                                           [_relative(path / r, target) for r in self._generated_resources(path)]}
                wrapper.update({k: _relocated(k, v, path, target) for k, v in (extra or {}).items()})
                (target / "kustomization.yaml").write_text(_dump(wrapper), encoding="utf-8")
                args = [str(target), "--load-restrictor", "LoadRestrictionsNone"]
            try:
                proc = subprocess.run([*cmd, *args], capture_output=True, text=True,
                                      timeout=BINARY_TIMEOUT, check=False)
            except subprocess.TimeoutExpired:
                return RenderResult(error=f"kustomize build timed out after {BINARY_TIMEOUT}s")
            except OSError as exc:
                return RenderResult(error=f"could not run {cmd[0]}: {exc.strerror}")
        if proc.returncode != 0:
            return RenderResult(error=_error_line(proc.stderr, self.base))
        rel = relpath(path, self.base)
        try:
            docs = load_yaml_text(proc.stdout, f"{rel} (rendered)", with_lines=False)
        except YamlSyntaxError as exc:
            return RenderResult(error=f"kustomize output does not parse: {exc.problem}")
        return RenderResult(items=self._attribute([d.data for d in docs if is_manifest(d.data)], path))

    def _attribute(self, rendered: list[dict[str, Any]], path: Path) -> list[Rendered]:
        """Point binary-rendered objects back at the files that define them (by kind and name)."""
        originals: dict[tuple[str, str], Rendered] = {}
        for p, yf in self.files.yaml.items():
            if p.is_relative_to(path) or p.is_relative_to(path.parent):
                for r in from_file(yf):
                    meta = mapping(r.data.get("metadata"))
                    originals.setdefault((str(r.data.get("kind")), str(meta.get("name") or "")), r)
        rel = f"{relpath(path, self.base)}/kustomization.yaml"
        out = []
        for data in rendered:
            name = str((data.get("metadata") or {}).get("name") or "")
            src = originals.get((str(data.get("kind")), name)) or _by_affix(data, name, originals)
            out.append(Rendered(data=data, file=src.file, line=src.line, lines=src.lines) if src
                       else Rendered(data=data, file=rel, line=1, lines={}))
        return out


def _by_affix(data: dict[str, Any], name: str, originals: dict[tuple[str, str], Rendered]) -> Rendered | None:
    # namePrefix/nameSuffix renames: the longest original name contained in the new one.
    best: tuple[int, Rendered] | None = None
    for (kind, orig), r in originals.items():
        if kind == data.get("kind") and orig and orig in name and (best is None or len(orig) > best[0]):
            best = (len(orig), r)
    return best[1] if best else None


def _flux_overlay(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: spec[k] for k in FLUX_FIELDS if spec.get(k)}
    if spec.get("targetNamespace"):
        out["namespace"] = spec["targetNamespace"]
    meta = spec.get("commonMetadata")
    if isinstance(meta, dict):
        if meta.get("labels"):
            out["labels"] = [{"pairs": meta["labels"]}]
        if meta.get("annotations"):
            out["commonAnnotations"] = meta["annotations"]
    return out


def _relative(target: Path, start: Path) -> str:
    return os.path.relpath(target, start)


def _relocated(key: str, value: Any, path: Path, wrapper: Path) -> Any:
    """A Flux field for the wrapper kustomization: component paths made relative to the wrapper."""
    if key == "components" and isinstance(value, list):
        return [_relative((path / v).resolve(), wrapper) if isinstance(v, str) else v for v in value]
    return value


def _error_line(stderr: str, base: Path) -> str:
    """kustomize's last error line without the logger's prefix (``E1201 … run.go:72] "command failed" err=``)."""
    line = (stderr.strip().splitlines() or ["kustomize build failed"])[-1]
    m = re.search(r'err="(.*)"\s*$', line)
    if m:
        line = m.group(1).replace('\\"', '"')
    return line.replace(str(base) + "/", "").replace("Error: ", "", 1)


def _dump(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data)  # JSON is YAML: no quoting surprises
