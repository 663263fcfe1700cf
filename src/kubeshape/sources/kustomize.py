"""Native, in-process renderer for the subset of kustomize that GitOps repositories use.

``render`` reproduces ``kubectl kustomize`` (kustomize v5.5) for kustomizations built from local
files: resources/bases, components, namespace, name prefix/suffix, commonLabels/labels,
commonAnnotations, images, replicas, strategic-merge and JSON 6902 patches, ConfigMap/Secret
generators (with kustomize's name-suffix hash) and the rewrite of references to renamed objects.
Anything outside that subset raises ``Unsupported`` (the caller then runs the real binary); a
kustomization that kustomize itself rejects raises ``KustomizeError``.

The semantics follow kustomize's own code, including its quirks (strategic-merge patches put the
patch's list items first, the hash ignores the object name, ``namespace`` renames Namespace
objects, ...).  Each quirk is pinned by a cross-check against ``kubectl kustomize`` in the tests.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

from kubeshape.inventory import lookup_line, selector_matches
from kubeshape.sources.yamlio import Document, YamlSyntaxError, load_yaml_file, load_yaml_text

__all__ = ["KUSTOMIZATION_FILES", "KustomizeError", "Rendered", "Unsupported", "find_kustomization", "render"]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


@dataclass(slots=True)
class Rendered:
    """One object of the rendered output and where it came from.

    ``file``, ``line`` and ``lines`` locate the object's source document (its resource file).  ``origins``
    maps the field paths (``lines`` syntax, list indices as in ``data``) that an overlay set or changed — a
    strategic-merge or JSON 6902 patch, an ``images`` or ``replicas`` entry — to the file (relative to the
    repository) and line that set them.  It also maps the fields of the source document that a patch moved
    (the base's containers after a sidecar a patch put first) to their lines in ``file``.  A path neither in
    ``origins`` nor under one of its paths is where ``lines`` says.  Fields set by Flux's overlay of a
    Kustomization (``extra``) have no file of their own and are not in ``origins``.
    """

    data: dict[str, Any]
    file: str
    line: int
    lines: dict[str, int]
    origins: dict[str, tuple[str, int]] = dataclass_field(default_factory=dict)


class Unsupported(Exception):
    """The kustomization uses something outside the native subset; ``str()`` is a short reason."""


class KustomizeError(Exception):
    """The kustomization is broken in a way kustomize itself rejects; ``str()`` names the file."""


def find_kustomization(directory: Path) -> Path | None:
    """The kustomization file of ``directory`` (None if there is none)."""
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def render(
    kdir: Path,
    base: Path,
    *,
    cache: dict[Any, Any] | None = None,
    extra: dict[str, Any] | None = None,
    generate: Callable[[Path], list[str]] | None = None,
) -> list[Rendered]:
    """Render the kustomization in ``kdir`` like ``kubectl kustomize kdir``.

    ``base`` is the repository root: paths are reported relative to it and no path may leave it.
    Pass the same ``cache`` dict to every call of a run so shared bases are parsed once.

    For Flux Kustomizations: ``extra`` holds kustomization fields applied on top of ``kdir``'s build
    (as a kustomization whose only resource is ``kdir``; relative paths in it resolve against
    ``kdir``), and ``generate(kdir)`` lists the resources (relative to ``kdir``) of the
    kustomization Flux generates when ``kdir`` has none.
    """
    base_real = Path(os.path.realpath(base))
    kdir_real = Path(os.path.realpath(kdir))
    if not _is_within(kdir_real, base_real):
        raise Unsupported(f"kustomization outside the repository: {kdir}")
    ctx = _Context(base_real, cache if cache is not None else {})
    has_file = find_kustomization(kdir_real) is not None
    if has_file and not extra:
        kust = ctx.kustomization(kdir_real)
        if kust.kind == "Component":
            raise KustomizeError(f"{kust.display}: a Component cannot be built on its own")
        resources = ctx.accumulate(kdir_real, (kdir_real,), [])
    else:
        raw: dict[str, Any] = dict(extra or {})
        if not has_file:
            if generate is None:
                ctx.kustomization(kdir_real)  # raises the missing-kustomization error
            raw["resources"] = list(generate(kdir_real) if generate is not None else [])
        kust = _virtual_kustomization(ctx, kdir_real, raw)
        inner = ctx.accumulate(kdir_real, (kdir_real,), []) if has_file else []
        resources = ctx.accumulate_kust(kust, (kdir_real,), inner)
    _add_hash_suffixes(resources)
    _fix_name_references(resources)
    resources = [r for r in resources if not _is_local_config(r)]
    resources = _sort(resources, kust.sort_options, kust.display)
    out = []
    for res in resources:
        origins = res.marks.paths(res.data) if res.marks is not None else {}
        _finalize_annotations(res)
        out.append(Rendered(res.data, res.file, res.line, res.lines, origins))
    return out


def _virtual_kustomization(ctx: _Context, kdir: Path, raw: dict[str, Any]) -> _Kust:
    for key in raw:
        if key in _UNSUPPORTED_FIELDS or key not in _SUPPORTED_FIELDS or key in ("bases", "sortOptions"):
            raise Unsupported(f"Flux overlay field {key}")
    display = f"{ctx.display(kdir / 'kustomization.yaml')} (generated)"
    return _Kust(kdir / "kustomization.yaml", display, "Kustomization", raw, {}, virtual=True)


# --------------------------------------------------------------------------- resources and ids

_Id = tuple[str, str, str, str, str]  # group, version, kind, name, namespace
_NOT_NAMESPACED = "_non_namespaceable_"


class _Res:
    """A resource plus the build-time bookkeeping kustomize keeps in internal annotations."""

    __slots__ = ("behavior", "data", "file", "line", "lines", "marks", "needs_hash", "prefixes", "prev", "suffixes")

    def __init__(self, data: dict[str, Any], file: str, line: int, lines: dict[str, int]) -> None:
        self.data = data
        self.file = file
        self.line = line
        self.lines = lines
        self.prev: list[tuple[str, str, str]] = []  # (kind, name, effective namespace), oldest first
        self.prefixes: list[str] = []
        self.suffixes: list[str] = []
        self.behavior = ""
        self.needs_hash = False
        self.marks: _Marks | None = None  # fields an overlay set, once one did

    def marked(self) -> _Marks:
        """The resource's marks; the first call (before a patch changes the resource) records its layout."""
        if self.marks is None:
            self.marks = _Marks(self)
        return self.marks

    @property
    def meta(self) -> dict[str, Any]:
        md = self.data.get("metadata")
        if not isinstance(md, dict):
            md = {}
            self.data["metadata"] = md
        return md

    @property
    def api_version(self) -> str:
        return _text(self.data.get("apiVersion"))

    @property
    def kind(self) -> str:
        return _text(self.data.get("kind"))

    @property
    def name(self) -> str:
        return _text(self.meta.get("name"))

    @property
    def namespace(self) -> str:
        return _text(self.meta.get("namespace"))

    def gvk(self) -> tuple[str, str, str]:
        group, version = _group_version(self.api_version)
        return group, version, self.kind

    def cur_id(self) -> _Id:
        group, version = _group_version(self.api_version)
        return group, version, self.kind, self.name, self.namespace

    def prev_ids(self) -> list[_Id]:
        group, version = _group_version(self.api_version)
        return [(group, version, kind, name, ns) for kind, name, ns in self.prev]

    def org_id(self) -> _Id:
        if self.prev:
            kind, name, ns = self.prev[0]
            group, version = _group_version(self.api_version)
            return group, version, kind, name, ns
        return self.cur_id()

    def any_ids(self) -> list[_Id]:
        return [*self.prev_ids(), self.cur_id()]

    def store_previous_id(self) -> None:
        cur = self.cur_id()
        self.prev.append((cur[2], cur[3], _effective_ns(cur)))

    def set_name(self, name: str) -> None:
        self.meta["name"] = name

    def set_namespace(self, ns: str) -> None:
        if ns:
            self.meta["namespace"] = ns
        else:
            self.meta.pop("namespace", None)

    def describe(self) -> str:
        ns = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{self.kind} {self.name}{ns}"


def _text(value: Any) -> str:
    """The YAML text of a scalar as kustomize sees it (best effort for non-strings)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return ""


def _group_version(api_version: str) -> tuple[str, str]:
    if "/" in api_version:
        group, version = api_version.split("/", 1)
        return group, version
    if api_version == "builtin":
        return "builtin", ""
    return "", api_version


def _api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def _is_cluster_scoped(group: str, version: str, kind: str) -> bool:
    return (_api_version(group, version), kind) in _CLUSTER_SCOPED


def _effective_ns(rid: _Id) -> str:
    if _is_cluster_scoped(rid[0], rid[1], rid[2]):
        return _NOT_NAMESPACED
    if rid[4] in ("", "default"):
        return "default"
    return rid[4]


def _ids_equal(a: _Id, b: _Id) -> bool:
    return a[:4] == b[:4] and _effective_ns(a) == _effective_ns(b)


def _gvk_selected(gvk: tuple[str, str, str], selector: tuple[str, str, str]) -> bool:
    return all(not want or want == have for have, want in zip(gvk, selector, strict=True))


def _copy(value: Any) -> Any:
    """Deep copy of parsed YAML; also breaks aliasing from YAML anchors, as kustomize does."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


# --------------------------------------------------------------------------- field provenance

_Origin = tuple[str, int]  # file relative to the repository, line


class _Marks:
    """The fields of one resource that overlays set, tied to the objects that hold them.

    Patches reorder lists and later patches rebuild them, so a field is recorded by the identity of its
    container, not by its path: ``keys`` holds scalar fields (a map and key, or a list and index) and ``nodes``
    maps and lists an overlay put there as a whole.  ``home`` is where each map and list of the resource was
    when the first overlay touched it, so that ``paths`` can also point the fields a patch moved (a container
    after the sidecar a patch put first) back at their own lines.  The entries keep their objects alive, so an
    ``id`` is never reused while it is recorded.
    """

    __slots__ = ("file", "home", "keys", "lines", "nodes")

    def __init__(self, res: _Res) -> None:
        self.keys: dict[int, tuple[Any, dict[Any, _Origin]]] = {}
        self.nodes: dict[int, tuple[Any, _Origin]] = {}
        self.file, self.lines = res.file, res.lines
        self.home: dict[int, tuple[Any, str]] = {}
        stack: list[tuple[Any, str]] = [(res.data, "")]
        while stack:
            node, path = stack.pop()
            self.home[id(node)] = (node, path)
            if isinstance(node, dict):
                stack.extend((v, f"{path}.{k}" if path else str(k))
                             for k, v in node.items() if isinstance(v, dict | list))
            else:
                stack.extend((v, f"{path}[{i}]") for i, v in enumerate(node) if isinstance(v, dict | list))

    def key(self, parent: dict[Any, Any] | list[Any], key: Any, origin: _Origin) -> None:
        entry = self.keys.get(id(parent))
        if entry is None:
            entry = self.keys[id(parent)] = (parent, {})
        entry[1][key] = origin

    def node(self, node: Any, origin: _Origin) -> None:
        self.nodes[id(node)] = (node, origin)

    def shift(self, items: list[Any], index: int, delta: int) -> None:
        """An item was inserted at (``delta`` 1) or removed from (-1) ``index`` of ``items``."""
        entry = self.keys.get(id(items))
        if entry is None:
            return
        moved = {}
        for i, origin in entry[1].items():
            if i < index:
                moved[i] = origin
            elif delta > 0 or i > index:
                moved[i + delta] = origin
        self.keys[id(items)] = (items, moved)

    def rekey(self, old: Any, new: Any) -> None:
        """``new`` replaced ``old`` with the same keys."""
        entry = self.keys.pop(id(old), None)
        if entry is not None:
            self.keys[id(new)] = (new, entry[1])
        hit = self.nodes.pop(id(old), None)
        if hit is not None:
            self.nodes[id(new)] = (new, hit[1])
        home = self.home.pop(id(old), None)
        if home is not None:
            self.home[id(new)] = (new, home[1])

    def paths(self, data: dict[str, Any]) -> dict[str, _Origin]:
        """Field path (in ``data``, the final object) → origin, for the recorded fields still in ``data``
        and the fields of the resource's own file that are no longer at their path there."""
        out: dict[str, _Origin] = {}
        lines, file = self.lines, self.file
        stack: list[tuple[Any, str]] = [(data, "")]
        while stack:
            node, path = stack.pop()
            nid = id(node)
            home = self.home.get(nid)
            moved = home[1] if home is not None and home[1] != path else None
            if moved is not None and moved in lines:
                out[path] = file, lines[moved]
            hit = self.nodes.get(nid)
            if hit is not None and path:
                out[path] = hit[1]
            entry = self.keys.get(nid)
            keyed = entry[1] if entry is not None else None
            if isinstance(node, dict):
                for key, value in node.items():
                    sub = f"{path}.{key}" if path else str(key)
                    if moved is not None:
                        was = f"{moved}.{key}" if moved else str(key)
                        if was in lines:
                            out[sub] = file, lines[was]
                    if keyed and key in keyed:
                        out[sub] = keyed[key]
                    if isinstance(value, dict | list):
                        stack.append((value, sub))
            else:
                for i, value in enumerate(node):
                    sub = f"{path}[{i}]"
                    if keyed and i in keyed:
                        out[sub] = keyed[i]
                    if isinstance(value, dict | list):
                        stack.append((value, sub))
        return out


@dataclass(slots=True)
class _Source:
    """Where the text of a patch is: its file and how the lines of the parsed text map to the file's lines."""

    file: str
    lines: dict[str, int] = dataclass_field(default_factory=dict)  # of the patch document (or the JSON operations)
    start: int = 1  # text line of the document
    offset: int = 0  # file line = text line + offset
    fixed: int = 0  # every field is at this line (inline text whose own lines cannot be told)

    def at(self, path: str) -> _Origin:
        if self.fixed:
            return self.file, self.fixed
        return self.file, lookup_line(self.lines, path, self.start) + self.offset

    def document(self, doc: Document) -> _Source:
        return _Source(self.file, doc.lines, doc.line, self.offset, self.fixed)


# A YAML literal block scalar starts on the line after its indicator (``patch: |-``, ``- |``).
_LITERAL_BLOCK = re.compile(r"(?:^|[\s:-])\|[1-9+-]{0,2}\s*(?:#.*)?$")
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _mark_patch(marks: _Marks, out: Any, src: Any, path: str, at: _Source, schema: dict[str, Any] | None) -> None:
    """Record the fields of ``out`` that the applied patch value ``src`` set (``path``: its path in the patch).

    ``out`` is where ``src`` landed in the patched object: ``src`` itself when the patch brought the whole
    map or list, else the object's own, merged one (keyed list items are matched by their merge keys).
    """
    if out is src and path:
        marks.node(out, at.at(path))
    if isinstance(src, dict):
        if not isinstance(out, dict):
            return
        fields = schema.get("f", {}) if schema else {}
        for key, value in src.items():
            if key not in out:
                continue
            sub = f"{path}.{key}" if path else str(key)
            if isinstance(value, dict | list):
                _mark_patch(marks, out[key], value, sub, at, fields.get(key))
            elif value is not None:
                marks.key(out, key, at.at(sub))
        return
    if not isinstance(src, list) or not isinstance(out, list):
        return
    keys = schema.get("k") if schema else None
    item_schema = schema.get("i") if schema else None
    for i, value in enumerate(src):
        sub = f"{path}[{i}]"
        if out is src or keys is None:
            if i >= len(out):
                break
            if isinstance(value, dict | list):
                _mark_patch(marks, out[i], value, sub, at, item_schema)
            else:
                marks.key(out, i, at.at(sub))
        elif not keys:
            text = _text(value)
            for j, item in enumerate(out):
                if _text(item) == text:
                    marks.key(out, j, at.at(sub))
                    break
        elif isinstance(value, dict):
            wanted = [(k, _text(value[k])) for k in keys if k in value]
            for item in out:
                if isinstance(item, dict) and all(k in item and _text(item[k]) == v for k, v in wanted):
                    if item is not value:  # merged into the object's own item: its merge keys only select it
                        value = {k: v for k, v in value.items() if k not in keys}
                    _mark_patch(marks, item, value, sub, at, item_schema)
                    break


def _mark_sm_patch(res: _Res, patch: dict[str, Any], at: _Source, renamed: bool) -> None:
    """Record what an applied strategic-merge patch set, but not the fields that only select the target."""
    marks = res.marked()
    schema = _schema_of(res.data)
    fields = schema.get("f", {}) if schema else {}
    for key, value in patch.items():
        if key in ("apiVersion", "kind") or key not in res.data:
            continue
        if key == "metadata" and isinstance(value, dict) and not renamed:
            value = {k: v for k, v in value.items() if k not in ("name", "namespace")}
        if isinstance(value, dict | list):
            _mark_patch(marks, res.data[key], value, key, at, fields.get(key))
        elif value is not None:
            marks.key(res.data, key, at.at(key))


# --------------------------------------------------------------------------- kustomization files

_SUPPORTED_FIELDS = frozenset(
    {
        "apiVersion", "kind", "metadata", "resources", "bases", "components", "namespace", "namePrefix",
        "nameSuffix", "commonLabels", "labels", "commonAnnotations", "images", "imageTags", "replicas",
        "patches", "patchesStrategicMerge", "patchesJson6902", "configMapGenerator", "secretGenerator",
        "generatorOptions", "sortOptions",
    }
)
_UNSUPPORTED_FIELDS = frozenset(
    {
        "openapi", "replacements", "vars", "crds", "helmGlobals", "helmCharts", "helmChartInflationGenerator",
        "configurations", "generators", "transformers", "validators", "buildMetadata",
    }
)


@dataclass(slots=True)
class _Kust:
    """A parsed kustomization file."""

    path: Path
    display: str
    kind: str
    raw: dict[str, Any]
    lines: dict[str, int]
    virtual: bool = False  # Flux's overlay of a Kustomization's spec: no file of its own

    @property
    def directory(self) -> Path:
        return self.path.parent

    def list_of(self, field: str, item_type: type | tuple[type, ...]) -> list[Any]:
        value = self.raw.get(field)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, item_type) for v in value):
            raise Unsupported(f"{field} with unexpected value types")
        return value

    def str_map(self, field: str) -> dict[str, str]:
        return _str_map(self.raw.get(field), field)

    def string(self, field: str) -> str:
        value = self.raw.get(field)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise Unsupported(f"{field} is not a string")
        return value

    def line_of(self, path: str) -> int:
        return self.lines.get(path, 1)

    @property
    def sort_options(self) -> Any:
        return self.raw.get("sortOptions")


def _str_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise Unsupported(f"{field} with non-string keys or values")
    return value


def _parse_kustomization(path: Path, display: str, docs: list[Document]) -> _Kust:
    docs = [d for d in docs if d.data is not None]
    if len(docs) > 1:
        raise Unsupported(f"{display}: several YAML documents in a kustomization")
    raw = docs[0].data if docs else {}
    lines = docs[0].lines if docs else {}
    if not isinstance(raw, dict):
        raise KustomizeError(f"{display}: kustomization is not a YAML mapping")
    for key in raw:
        if not isinstance(key, str):
            raise Unsupported(f"{display}: non-string field name")
        if key in _UNSUPPORTED_FIELDS:
            if raw[key] not in (None, [], {}, ""):
                raise Unsupported(key)
        elif key not in _SUPPORTED_FIELDS:
            raise Unsupported(f"unknown kustomization field {key}")
    kind = raw.get("kind") or "Kustomization"
    api_version = raw.get("apiVersion") or ""
    if kind not in ("Kustomization", "Component"):
        raise KustomizeError(f"{display}: kind should be Kustomization or Component")
    required = "kustomize.config.k8s.io/v1alpha1" if kind == "Component" else "kustomize.config.k8s.io/v1beta1"
    if api_version and api_version != required:
        raise KustomizeError(f"{display}: apiVersion for {kind} should be {required}")
    if all(raw[k] is None for k in raw if k not in ("apiVersion", "kind", "metadata")):
        raise KustomizeError(f"{display}: kustomization is empty")
    if _has_match(raw, _YAML_CONTROL):
        # kustomize re-marshals its settings as YAML, which cannot carry these characters
        raise KustomizeError(f"{display}: control characters are not allowed")
    if _has_match(raw, _NEXT_LINE):
        raise Unsupported(f"{display}: NEL (U+0085) character, which kustomize's YAML parser folds")
    return _Kust(path, display, kind, raw, lines)


_YAML_CONTROL = re.compile("[\\x7f-\\x84\\x86-\\x9f\\ufffe\\uffff]")
_NEXT_LINE = re.compile("\\x85")


def _has_match(value: Any, pattern: re.Pattern[str]) -> bool:
    if isinstance(value, str):
        return pattern.search(value) is not None
    if isinstance(value, dict):
        return any(_has_match(k, pattern) or _has_match(v, pattern) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_match(v, pattern) for v in value)
    return False


# --------------------------------------------------------------------------- accumulation

_REMOTE_PREFIXES = ("git@", "git::", "github.com", "gitlab.com", "bitbucket.org", "ssh:", "http:", "https:")


def _looks_remote(ref: str) -> bool:
    return "://" in ref or ref.startswith(_REMOTE_PREFIXES) or "?ref=" in ref or "?version=" in ref


class _Context:
    """State of one ``render`` call: the repository root and the per-run cache."""

    def __init__(self, base: Path, cache: dict[Any, Any]) -> None:
        self.base = base
        self.cache = cache

    # ---- files

    def display(self, path: Path) -> str:
        try:
            return path.relative_to(self.base).as_posix()
        except ValueError:
            return str(path)

    def _stamp(self, path: Path) -> tuple[int, int]:
        st = path.stat()
        return st.st_mtime_ns, st.st_size

    def read_docs(self, path: Path) -> list[Document]:
        key = ("kubeshape.kustomize.yaml", str(path))
        stamp = self._stamp(path)
        hit = self.cache.get(key)
        if hit is not None and hit[0] == stamp:
            docs: list[Document] = hit[1]
            return docs
        try:
            docs = load_yaml_file(path, self.display(path))
        except YamlSyntaxError as exc:
            raise KustomizeError(str(exc)) from None
        self.cache[key] = (stamp, docs)
        return docs

    def text_lines(self, path: Path) -> list[str]:
        """The lines of a file as YAML counts them (for the lines of patches written inline)."""
        key = ("kubeshape.kustomize.lines", str(path))
        stamp = self._stamp(path)
        hit = self.cache.get(key)
        if hit is not None and hit[0] == stamp:
            lines: list[str] = hit[1]
            return lines
        lines = _LINE_BREAK.split(path.read_text(encoding="utf-8", errors="replace"))
        self.cache[key] = (stamp, lines)
        return lines

    def inline_source(self, kust: _Kust, path: str, stripped: int) -> _Source | None:
        """Where the text of an inline patch at ``path`` of ``kust`` lies (None in Flux's virtual overlay).

        ``stripped`` is how many line breaks were cut from the start of the text before it was parsed.
        """
        if kust.virtual:
            return None
        line = lookup_line(kust.lines, path, 1)
        try:
            here = self.text_lines(kust.path)[line - 1] if path in kust.lines else ""
        except (OSError, IndexError):
            here = ""
        if _LITERAL_BLOCK.search(here):
            return _Source(kust.display, offset=line + stripped)
        return _Source(kust.display, fixed=line)

    def kustomization(self, directory: Path) -> _Kust:
        found = [directory / n for n in KUSTOMIZATION_FILES if (directory / n).is_file()]
        if not found:
            raise KustomizeError(
                f"{self.display(directory) or '.'}: unable to find one of 'kustomization.yaml', "
                "'kustomization.yml' or 'Kustomization' in directory"
            )
        if len(found) > 1:
            raise KustomizeError(f"{self.display(directory) or '.'}: found multiple kustomization files")
        path = found[0]
        key = ("kubeshape.kustomize.kustomization", str(path))
        stamp = self._stamp(path)
        hit = self.cache.get(key)
        if hit is not None and hit[0] == stamp:
            kust: _Kust = hit[1]
            return kust
        kust = _parse_kustomization(path, self.display(path), self.read_docs(path))
        self.cache[key] = (stamp, kust)
        return kust

    def realpath(self, path: Path) -> Path:
        """``os.path.realpath`` once per path and run (every overlay resolves the same bases again)."""
        key = ("kubeshape.kustomize.realpath", str(path))
        hit = self.cache.get(key)
        if hit is None:
            hit = self.cache[key] = Path(os.path.realpath(path))
        return hit

    def resolve(self, kust: _Kust, ref: Any, what: str) -> Path:
        """Resolve a path written in a kustomization; remote or escaping paths are Unsupported."""
        if not isinstance(ref, str) or not ref:
            raise Unsupported(f"{what} with a non-string or empty path")
        if _looks_remote(ref):
            raise Unsupported(f"remote {what} {ref}")
        if os.path.isabs(ref):
            raise Unsupported(f"absolute {what} path {ref}")
        target = self.realpath(kust.directory / ref)
        if not _is_within(target, self.base):
            raise Unsupported(f"{what} {ref} outside the repository")
        return target

    def load_file(self, kust: _Kust, ref: Any, what: str) -> Path:
        """A file the kustomization reads: it must exist inside the kustomization directory."""
        target = self.resolve(kust, ref, what)
        if not target.is_file():
            raise KustomizeError(f"{kust.display}: {what} '{ref}' not found")
        if not _is_within(target, self.realpath(kust.directory)):
            raise KustomizeError(f"{kust.display}: {what} '{ref}' is not in or below the kustomization directory")
        return target

    # ---- the build

    def accumulate(self, directory: Path, stack: tuple[Path, ...], ra: list[_Res]) -> list[_Res]:
        """kustomize's accumulateTarget for the kustomization in ``directory``."""
        return self.accumulate_kust(self.kustomization(directory), stack, ra)

    def accumulate_kust(self, kust: _Kust, stack: tuple[Path, ...], ra: list[_Res]) -> list[_Res]:
        """Resources, generators, components, then transformers (kustomize's order)."""
        refs = kust.list_of("resources", str) + kust.list_of("bases", str)
        for ref in refs:
            self._accumulate_resource(kust, ref, stack, ra)
        _run_generators(self, kust, ra)
        for ref in kust.list_of("components", str):
            sub = self._sub_directory(kust, ref, stack, "component")
            sub_kust = self.kustomization(sub)
            if sub_kust.kind != "Component":
                raise KustomizeError(f"{sub_kust.display}: expected kind 'Component' for a component")
            self.accumulate(sub, (*stack, sub), ra)
        _run_transformers(self, kust, ra)
        return ra

    def _sub_directory(self, kust: _Kust, ref: str, stack: tuple[Path, ...], what: str) -> Path:
        target = self.resolve(kust, ref, what)
        if not target.is_dir():
            raise KustomizeError(f"{kust.display}: {what} '{ref}' not found")
        for visited in stack:
            if _is_within(visited, target):
                raise KustomizeError(f"{kust.display}: cycle detected: '{ref}' contains a kustomization being built")
        return target

    def _accumulate_resource(self, kust: _Kust, ref: str, stack: tuple[Path, ...], ra: list[_Res]) -> None:
        target = self.resolve(kust, ref, "resource")
        if target.is_file():
            if not _is_within(target, self.realpath(kust.directory)):
                raise KustomizeError(
                    f"{kust.display}: resource '{ref}' is not in or below the kustomization directory"
                )
            _append_all(ra, self.resources_from_file(target), kust.display)
            return
        if not target.exists():
            raise KustomizeError(f"{kust.display}: resource '{ref}' not found")
        sub = self._sub_directory(kust, ref, stack, "resource")
        sub_kust = self.kustomization(sub)
        if sub_kust.kind == "Component":
            raise KustomizeError(f"{sub_kust.display}: a Component cannot be listed in resources of {kust.display}")
        _append_all(ra, self.accumulate(sub, (*stack, sub), []), kust.display)

    def resources_from_file(self, path: Path) -> list[_Res]:
        display = self.display(path)
        pending = deque((d.data, d.line, d.lines) for d in self.read_docs(path))
        out: list[_Res] = []
        while pending:
            data, line, lines = pending.popleft()
            if data is None or data == {}:
                continue
            if not isinstance(data, dict):
                raise KustomizeError(f"{display}:{line}: missing Resource metadata")
            kind = data.get("kind")
            if isinstance(kind, str) and kind.endswith("List") and "items" in data:
                pending.extend(_list_items(data, kind, display, line, lines))
                continue
            if not kind:
                raise KustomizeError(f"{display}:{line}: missing kind in object")
            md = data.get("metadata")
            if not isinstance(md, dict) or not md.get("name"):
                raise KustomizeError(f"{display}:{line}: missing metadata.name in object")
            out.append(_Res(_copy(data), display, line, lines))
        return out


def _list_items(
    data: dict[str, Any], kind: str, display: str, line: int, lines: dict[str, int]
) -> list[tuple[Any, int, dict[str, int]]]:
    items = data["items"]
    if items is None:
        return []
    if not isinstance(items, list):
        raise KustomizeError(f"{display}:{line}: expected array in {kind}/items")
    out = []
    for i, item in enumerate(items):
        prefix = f"items[{i}]"
        sub_lines = {k[len(prefix) + 1 :]: v for k, v in lines.items() if k.startswith(prefix + ".")}
        out.append((item, lines.get(prefix, line), sub_lines))
    return out


def _append_all(ra: list[_Res], new: Iterable[_Res], display: str) -> None:
    seen = {_id_key(r.cur_id()) for r in ra}
    for res in new:
        key = _id_key(res.cur_id())
        if key in seen:
            raise KustomizeError(f"{display}: may not add resource with an already registered id: {res.describe()}")
        seen.add(key)
        ra.append(res)


def _id_key(rid: _Id) -> tuple[str, ...]:
    return (*rid[:4], _effective_ns(rid))


# --------------------------------------------------------------------------- generators


def _run_generators(ctx: _Context, kust: _Kust, ra: list[_Res]) -> None:
    global_opts = kust.raw.get("generatorOptions")
    if global_opts is not None and not isinstance(global_opts, dict):
        raise Unsupported("generatorOptions with unexpected value")
    for field, kind in (("configMapGenerator", "ConfigMap"), ("secretGenerator", "Secret")):
        for i, args in enumerate(kust.list_of(field, dict)):
            res = _generate(ctx, kust, field, i, args, kind, global_opts)
            _absorb(ra, res, kust.display)


_GENERATOR_KEYS = frozenset({"name", "namespace", "behavior", "literals", "files", "envs", "env", "options", "type"})
_OPTION_KEYS = frozenset({"labels", "annotations", "disableNameSuffixHash", "immutable"})


def _options(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or set(value) - _OPTION_KEYS:
        raise Unsupported(f"{where} options")
    for flag in ("disableNameSuffixHash", "immutable"):
        if flag in value and not isinstance(value[flag], bool):
            raise Unsupported(f"{where} options.{flag}")
    return value


def _generate(
    ctx: _Context, kust: _Kust, field: str, index: int, args: dict[str, Any], kind: str, global_opts: Any
) -> _Res:
    where = f"{kust.display}: {field}[{index}]"
    unknown = set(args) - _GENERATOR_KEYS - ({"type"} if kind == "Secret" else set())
    if unknown or (kind == "ConfigMap" and "type" in args):
        raise Unsupported(f"{field} field {sorted(unknown or {'type'})[0]}")
    name = args.get("name")
    if not name:
        raise KustomizeError(f"{where}: a {kind.lower()} must have a name")
    if not isinstance(name, str):
        raise Unsupported(f"{field} with a non-string name")
    behavior = args.get("behavior") or "create"
    if behavior not in ("create", "merge", "replace"):
        raise Unsupported(f"{field} behavior {behavior}")
    local = _options(args.get("options"), field)
    glob = _options(global_opts, "generatorOptions")
    labels = dict(_str_map(local.get("labels"), f"{field} options.labels"))
    for k, v in _str_map(glob.get("labels"), "generatorOptions.labels").items():
        labels.setdefault(k, v)
    annotations = dict(_str_map(local.get("annotations"), f"{field} options.annotations"))
    for k, v in _str_map(glob.get("annotations"), "generatorOptions.annotations").items():
        annotations.setdefault(k, v)
    disable_hash = bool(local.get("disableNameSuffixHash")) or bool(glob.get("disableNameSuffixHash"))
    immutable = bool(local.get("immutable")) or bool(glob.get("immutable"))

    pairs = _kv_pairs(ctx, kust, args, field, where)
    data: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}
    namespace = args.get("namespace")
    if namespace:
        if not isinstance(namespace, str):
            raise Unsupported(f"{field} with a non-string namespace")
        data["metadata"]["namespace"] = namespace
    if kind == "Secret":
        secret_type = args.get("type") or "Opaque"
        if not isinstance(secret_type, str):
            raise Unsupported("secretGenerator type")
        data["type"] = secret_type
        data["data"] = {key: base64.b64encode(raw).decode() for key, raw in sorted(pairs.items())}
    else:
        text: dict[str, str] = {}
        binary: dict[str, str] = {}
        for key, raw in sorted(pairs.items()):
            try:
                text[key] = raw.decode("utf-8")
            except UnicodeDecodeError:
                binary[key] = base64.b64encode(raw).decode()
        if text:
            data["data"] = text
        if binary:
            data["binaryData"] = binary
    if labels:
        data["metadata"]["labels"] = dict(sorted(labels.items()))
    if annotations:
        data["metadata"]["annotations"] = dict(sorted(annotations.items()))
    if immutable:
        data["immutable"] = True
    lines_key = f"{field}[{index}]"
    res = _Res(data, kust.display, kust.line_of(lines_key), {})
    res.behavior = behavior
    res.needs_hash = not disable_hash
    return res


def _kv_pairs(ctx: _Context, kust: _Kust, args: dict[str, Any], field: str, where: str) -> dict[str, bytes]:
    """Key/value pairs of a generator in kustomize's order: env files, literals, then files."""
    ordered: list[tuple[str, bytes]] = []
    envs = args.get("envs") or []
    if not isinstance(envs, list):
        raise Unsupported(f"{field} envs")
    if args.get("env"):
        envs = [*envs, args["env"]]
    for ref in envs:
        path = ctx.load_file(kust, ref, "env file")
        ordered.extend(_env_pairs(path.read_bytes(), ctx.display(path)))
    literals = args.get("literals") or []
    if not isinstance(literals, list) or not all(isinstance(s, str) for s in literals):
        raise Unsupported(f"{field} literals")
    for number, source in enumerate(literals):
        if source.startswith("=") or "=" not in source:
            # never echo the literal: it may be a secret value
            raise KustomizeError(f"{where}: literals[{number}] is not key=value")
        key, value = source.split("=", 1)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        ordered.append((key, value.encode()))
    files = args.get("files") or []
    if not isinstance(files, list) or not all(isinstance(s, str) for s in files):
        raise Unsupported(f"{field} files")
    for source in files:
        if "=" in source:
            key, ref = source.split("=", 1)
            if not key:
                raise KustomizeError(f"{where}: missing key name for file path in source {source!r}")
            if "=" in ref or not ref:
                raise KustomizeError(f"{where}: bad file source {source!r}")
        else:
            key, ref = source.rsplit("/", 1)[-1], source
        ordered.append((key, ctx.load_file(kust, ref, "file").read_bytes()))
    pairs: dict[str, bytes] = {}
    for key, value in ordered:
        if key in pairs:
            raise KustomizeError(f"{where}: {field} {args.get('name')} illegally repeats the key `{key}`")
        pairs[key] = value
    return pairs


def _env_pairs(content: bytes, display: str) -> list[tuple[str, bytes]]:
    out = []
    lines = content.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, raw in enumerate(lines):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise KustomizeError(f"{display}:{number + 1}: invalid utf8 bytes") from None
        if number == 0:
            text = text.removeprefix("\ufeff")
        text = text.lstrip()
        if not text or text.startswith("#"):
            continue
        key, _, value = text.partition("=")
        if not key:
            continue
        out.append((key, value.encode()))
    return out


def _absorb(ra: list[_Res], res: _Res, display: str) -> None:
    """kustomize's appendReplaceOrMerge for a generated object."""
    cur = res.cur_id()
    matches = [r for r in ra if any(_ids_equal(cur, i) for i in r.any_ids())]
    if not matches:
        if res.behavior in ("merge", "replace"):
            raise KustomizeError(f"{display}: {res.describe()} does not exist; cannot merge or replace")
        _append_all(ra, [res], display)
        return
    if len(matches) > 1:
        raise KustomizeError(f"{display}: found multiple objects that could accept merge of {res.describe()}")
    old = matches[0]
    mode = res.behavior
    if mode == "create":
        raise KustomizeError(f"{display}: {res.describe()} exists; behavior must be merge or replace")
    # CopyMergeMetaDataFieldsFrom: metadata maps merged, identity and build state from the old object.
    meta = res.meta
    for key in ("labels", "annotations"):
        merged = {**_stringify(old.meta.get(key)), **_stringify(meta.get(key))}
        if merged:
            meta[key] = dict(sorted(merged.items()))
        else:
            meta.pop(key, None)
    res.set_name(old.name)
    res.set_namespace(old.namespace)
    res.prev = list(old.prev)
    res.prefixes = list(old.prefixes)
    res.suffixes = list(old.suffixes)
    res.needs_hash = res.needs_hash and old.needs_hash
    res.behavior = old.behavior
    if mode == "merge":
        for field in ("data", "binaryData"):
            merged = {**_stringify(old.data.get(field)), **_stringify(res.data.get(field))}
            res.data.pop(field, None)
            if merged:
                res.data[field] = dict(sorted(merged.items()))
    ra[ra.index(old)] = res


def _stringify(value: Any) -> dict[str, str]:
    """A label/annotation/data map as the strings kustomize reads from it."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Unsupported("map field with a non-map value")
    out = {}
    for k, v in value.items():
        if isinstance(v, str):
            out[str(k)] = v
        elif isinstance(v, int) and not isinstance(v, bool):
            out[str(k)] = str(v)
        else:
            raise Unsupported(f"non-string value for {k}")
    return out


# --------------------------------------------------------------------------- field specs

_FieldSpec = tuple[str, str, str, tuple[str, ...], bool]  # group, version, kind, path, create


def _split_path(path: str) -> tuple[str, ...]:
    parts: list[str] = []
    for piece in path.split("/"):
        if parts and parts[-1].endswith("\\"):
            parts[-1] = parts[-1][:-1] + "/" + piece
        else:
            parts.append(piece)
    return tuple(parts)


def _spec(path: str, create: bool = False, group: str = "", version: str = "", kind: str = "") -> _FieldSpec:
    return group, version, kind, _split_path(path), create


class _FieldError(Exception):
    pass


_Setter = Callable[[dict[Any, Any], str], None]


def _apply_spec(res: _Res, spec: _FieldSpec, create_kind: str | None, setter: _Setter) -> None:
    """kustomize's fieldspec filter: walk ``spec``'s path in ``res`` and call ``setter`` at the end."""
    group, version, kind, parts, create = spec
    if not _gvk_selected(res.gvk(), (group, version, kind)):
        return
    try:
        _walk_spec(res.data, parts, create and create_kind is not None, create_kind, setter)
    except _FieldError:
        raise KustomizeError(f"{res.file}: {res.describe()}: unexpected value at '{'/'.join(parts)}'") from None


def _walk_spec(node: Any, parts: tuple[str, ...], create: bool, create_kind: str | None, setter: _Setter) -> None:
    if isinstance(node, list):
        for item in node:
            _walk_spec(item, parts, create, create_kind, setter)
        return
    if not isinstance(node, dict):
        raise _FieldError
    name = parts[0]
    is_seq = name.endswith("[]")
    if is_seq:
        name = name[:-2]
    last = len(parts) == 1
    if not create or is_seq:
        if node.get(name) is None:
            return
    elif node.get(name) is None:
        node[name] = ({} if create_kind == "map" else "") if last else {}
    if last:
        setter(node, name)
    else:
        _walk_spec(node[name], parts[1:], create, create_kind, setter)


def _set_scalar(value: Any, marks: _Marks | None = None, origin: _Origin | None = None) -> _Setter:
    def setter(parent: dict[Any, Any], key: str) -> None:
        if isinstance(parent[key], dict | list):
            raise _FieldError
        parent[key] = value
        if marks is not None and origin is not None:
            marks.key(parent, key, origin)

    return setter


def _set_entry(entry: str, value: str) -> _Setter:
    def setter(parent: dict[Any, Any], key: str) -> None:
        target = parent[key]
        if not isinstance(target, dict):
            raise _FieldError
        target[entry] = value

    return setter


def _pod_specs(paths: Iterable[str], pod_version: str = "") -> list[_FieldSpec]:
    specs = [_spec(f"spec/{p}", version=pod_version, kind="Pod") for p in paths]
    specs += [_spec(f"template/spec/{p}", kind="PodTemplate") for p in paths]
    for kind in ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job"):
        specs += [_spec(f"spec/template/spec/{p}", kind=kind) for p in paths]
    specs += [_spec(f"spec/jobTemplate/spec/template/spec/{p}", kind="CronJob") for p in paths]
    return specs


def _workload_specs(path: str) -> list[_FieldSpec]:
    specs = [_spec(f"spec/{path}", kind="Pod")]
    for kind in ("StatefulSet", "Deployment", "ReplicationController", "Job", "DaemonSet"):
        specs.append(_spec(f"spec/template/spec/{path}", kind=kind))
    specs.append(_spec(f"spec/jobTemplate/spec/template/spec/{path}", kind="CronJob"))
    return specs


_AFFINITY_PATHS = (
    "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/"
    "labelSelector/matchLabels",
    "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/"
    "labelSelector/matchLabels",
    "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/"
    "matchLabels",
    "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels",
)

_TEMPLATE_LABEL_SPECS = [
    _spec("spec/template/metadata/labels", True, version="v1", kind="ReplicationController"),
    _spec("spec/template/metadata/labels", True, kind="Deployment"),
    _spec("spec/template/metadata/labels", True, kind="ReplicaSet"),
    _spec("spec/template/metadata/labels", True, kind="DaemonSet"),
    _spec("spec/template/metadata/labels", True, group="apps", kind="StatefulSet"),
    _spec("spec/volumeClaimTemplates[]/metadata/labels", True, group="apps", kind="StatefulSet"),
    _spec("spec/template/metadata/labels", True, group="batch", kind="Job"),
    _spec("spec/jobTemplate/metadata/labels", True, group="batch", kind="CronJob"),
    _spec("spec/jobTemplate/spec/template/metadata/labels", True, group="batch", kind="CronJob"),
]
_METADATA_LABELS = _spec("metadata/labels", True)
_COMMON_LABEL_SPECS = [
    _spec("spec/selector", True, version="v1", kind="Service"),
    _spec("spec/selector", True, version="v1", kind="ReplicationController"),
    _spec("spec/selector/matchLabels", True, kind="Deployment"),
    *[_spec(p, group="apps", kind="Deployment") for p in _AFFINITY_PATHS],
    _spec("spec/selector/matchLabels", True, kind="ReplicaSet"),
    _spec("spec/selector/matchLabels", True, kind="DaemonSet"),
    _spec("spec/selector/matchLabels", True, group="apps", kind="StatefulSet"),
    *[_spec(p, group="apps", kind="StatefulSet") for p in _AFFINITY_PATHS],
    _spec("spec/selector/matchLabels", group="batch", kind="Job"),
    _spec("spec/jobTemplate/spec/selector/matchLabels", group="batch", kind="CronJob"),
    _spec("spec/selector/matchLabels", group="policy", kind="PodDisruptionBudget"),
    _spec("spec/podSelector/matchLabels", group="networking.k8s.io", kind="NetworkPolicy"),
    _spec("spec/ingress/from/podSelector/matchLabels", group="networking.k8s.io", kind="NetworkPolicy"),
    _spec("spec/egress/to/podSelector/matchLabels", group="networking.k8s.io", kind="NetworkPolicy"),
    _METADATA_LABELS,
    *_TEMPLATE_LABEL_SPECS,
]
_COMMON_ANNOTATION_SPECS = [
    _spec("metadata/annotations", True),
    _spec("spec/template/metadata/annotations", True, version="v1", kind="ReplicationController"),
    _spec("spec/template/metadata/annotations", True, kind="Deployment"),
    _spec("spec/template/metadata/annotations", True, kind="ReplicaSet"),
    _spec("spec/template/metadata/annotations", True, kind="DaemonSet"),
    _spec("spec/template/metadata/annotations", True, kind="StatefulSet"),
    _spec("spec/template/metadata/annotations", True, group="batch", kind="Job"),
    _spec("spec/jobTemplate/metadata/annotations", True, group="batch", kind="CronJob"),
    _spec("spec/jobTemplate/spec/template/metadata/annotations", True, group="batch", kind="CronJob"),
]
_NAMESPACE_SPECS = [
    _spec("metadata/name", True, kind="Namespace"),
    _spec("spec/service/namespace", True, group="apiregistration.k8s.io", kind="APIService"),
    _spec(
        "spec/conversion/webhook/clientConfig/service/namespace",
        group="apiextensions.k8s.io",
        kind="CustomResourceDefinition",
    ),
]
_REPLICA_SPECS = [
    _spec("spec/replicas", True, kind=kind)
    for kind in ("Deployment", "ReplicationController", "ReplicaSet", "StatefulSet")
]
_CRD_IMAGE_SPECS = [
    _spec(p)
    for p in (
        "spec/containers[]/image",
        "spec/initContainers[]/image",
        "spec/template/spec/containers[]/image",
        "spec/template/spec/initContainers[]/image",
    )
]


# --------------------------------------------------------------------------- transformers


def _run_transformers(ctx: _Context, kust: _Kust, ra: list[_Res]) -> None:
    """kustomize's builtin transformers, in kustomize's fixed order."""
    _patches_strategic_merge(ctx, kust, ra)
    _patches(ctx, kust, ra)
    namespace = kust.string("namespace")
    if namespace:
        _namespace(ra, namespace, kust.display)
    prefix = kust.string("namePrefix")
    if prefix:
        _affix(ra, prefix, "")
    suffix = kust.string("nameSuffix")
    if suffix:
        _affix(ra, "", suffix)
    _labels(kust, ra)
    annotations = kust.str_map("commonAnnotations")
    if annotations:
        _set_map_entries(ra, annotations, _COMMON_ANNOTATION_SPECS)
    _patches_json6902(ctx, kust, ra)
    _replicas(kust, ra)
    _images(kust, ra)


def _namespace(ra: list[_Res], namespace: str, display: str) -> None:
    for res in ra:
        res.store_previous_id()
        group, version, kind = res.gvk()
        if not _is_cluster_scoped(group, version, kind):
            res.meta["namespace"] = namespace
        if kind in ("RoleBinding", "ClusterRoleBinding"):
            subjects = res.data.get("subjects")
            for subject in subjects if isinstance(subjects, list) else []:
                if isinstance(subject, dict) and _text(subject.get("name")) == "default":
                    subject["namespace"] = namespace
        for spec in _NAMESPACE_SPECS:
            _apply_spec(res, spec, "scalar", _set_scalar(namespace))
    seen: set[tuple[str, ...]] = set()
    for res in ra:
        key = _id_key(res.cur_id())
        if key in seen:
            raise KustomizeError(f"{display}: namespace transformation produces ID conflict for {res.describe()}")
        seen.add(key)


_AFFIX_SKIP = (("", "CustomResourceDefinition"), ("apiregistration.k8s.io", "APIService"), ("", "Namespace"))


def _affix(ra: list[_Res], prefix: str, suffix: str) -> None:
    for res in ra:
        org = res.org_id()
        if any(_gvk_selected(org[:3], (group, "", kind)) for group, kind in _AFFIX_SKIP):
            continue
        if prefix:
            res.prefixes.append(prefix)
        else:
            res.suffixes.append(suffix)
        res.store_previous_id()
        res.set_name(f"{prefix}{_text(res.meta.get('name'))}{suffix}")


def _labels(kust: _Kust, ra: list[_Res]) -> None:
    for entry in kust.list_of("labels", dict):
        unknown = set(entry) - {"pairs", "includeSelectors", "includeTemplates"}
        if unknown:
            raise Unsupported(f"labels.{sorted(unknown)[0]}")
        flags = [entry.get("includeSelectors"), entry.get("includeTemplates")]
        if not all(f is None or isinstance(f, bool) for f in flags):
            raise Unsupported("labels with non-boolean include flags")
        if entry.get("includeSelectors"):
            specs = _COMMON_LABEL_SPECS
        else:
            specs = [_METADATA_LABELS, *(_TEMPLATE_LABEL_SPECS if entry.get("includeTemplates") else [])]
        _set_map_entries(ra, _str_map(entry.get("pairs"), "labels.pairs"), specs)
    common = kust.str_map("commonLabels")
    if common:
        _set_map_entries(ra, common, _COMMON_LABEL_SPECS)


def _set_map_entries(ra: list[_Res], entries: dict[str, str], specs: list[_FieldSpec]) -> None:
    for res in ra:
        for key in sorted(entries):
            for spec in specs:
                _apply_spec(res, spec, "map", _set_entry(key, entries[key]))


def _replicas(kust: _Kust, ra: list[_Res]) -> None:
    for index, entry in enumerate(kust.list_of("replicas", dict)):
        name, count = entry.get("name"), entry.get("count")
        if set(entry) - {"name", "count"} or not isinstance(name, str):
            raise Unsupported("replicas entry")
        if not isinstance(count, int) or isinstance(count, bool):
            raise Unsupported("replicas with a non-integer count")
        found = False
        origin = None if kust.virtual else (kust.display, lookup_line(kust.lines, f"replicas[{index}].count", 1))
        for spec in _REPLICA_SPECS:
            matches = [r for r in ra if any(i[3] == name and _gvk_selected(i[:3], spec[:3]) for i in r.any_ids())]
            for res in matches:
                found = True
                _apply_spec(res, spec, "scalar", _set_scalar(count, res.marked(), origin) if origin else
                            _set_scalar(count))
        if not found:
            raise KustomizeError(f"{kust.display}: replicas: no Deployment, ReplicationController, ReplicaSet "
                                 f"or StatefulSet named {name}")


# --------------------------------------------------------------------------- images

_TAG_CHARS = "[a-zA-Z0-9_.{}-]"


def _images(kust: _Kust, ra: list[_Res]) -> None:
    images = kust.list_of("images", dict)
    for i, entry in enumerate(images + kust.list_of("imageTags", dict)):
        unknown = set(entry) - {"name", "newName", "newTag", "digest"}
        if unknown:
            raise Unsupported(f"images field {sorted(unknown)[0]}")
        values = [entry.get(k) for k in ("name", "newName", "newTag", "digest")]
        if not all(v is None or isinstance(v, str) for v in values) or not values[0]:
            raise Unsupported("images entry with a missing name or non-string values")
        update = _image_updater(kust.display, *(v or "" for v in values))
        origin = None
        if not kust.virtual:
            item = f"images[{i}]" if i < len(images) else f"imageTags[{i - len(images)}]"
            setting = next((k for k in ("newTag", "digest", "newName") if entry.get(k)), "")
            origin = kust.display, lookup_line(kust.lines, f"{item}.{setting}" if setting else item, 1)
        hits: list[dict[Any, Any]] = []

        def set_image(parent: dict[Any, Any], key: str, update: _Updater = update, hits: list[Any] = hits) -> None:
            if update(parent):
                hits.append(parent)

        for res in ra:
            if res.kind == "CustomResourceDefinition":
                for spec in _CRD_IMAGE_SPECS:
                    _apply_spec(res, spec, None, set_image)
            else:
                _walk_containers(res.data, update, hits)
            if hits:
                if origin is not None:
                    marks = res.marked()
                    for container in hits:
                        marks.key(container, "image", origin)
                hits.clear()


_Updater = Callable[[dict[Any, Any]], bool]


def _image_updater(display: str, name: str, new_name: str, new_tag: str, digest: str) -> _Updater:
    """kustomize's image tag updater for one ``images`` entry, applied to a container (True: it matched)."""
    try:
        # kustomize concatenates the name into the regexp unescaped; reproduce that.
        pattern = re.compile(f"^{name}(:{_TAG_CHARS}*)?(@sha256:{_TAG_CHARS}*)?\\Z")
    except re.error:
        raise Unsupported(f"image name {name!r} is not a valid regular expression") from None

    def update(container: dict[Any, Any]) -> bool:
        value = container.get("image")
        if value is None:
            return False
        if isinstance(value, dict | list):
            raise KustomizeError(f"{display}: image field that is not a string")
        text = _text(value)
        if not pattern.search(text):
            return False
        img, tag, dig = _split_image(text)
        if new_name:
            img = new_name
        if new_tag and digest:
            tag, dig = new_tag, digest
        elif new_tag:
            tag, dig = new_tag, ""
        elif digest:
            tag, dig = "", digest
        container["image"] = img + (f":{tag}" if tag else "") + (f"@{dig}" if dig else "")
        return bool(new_name or new_tag or digest)

    return update


def _walk_containers(node: Any, update: _Updater, hits: list[dict[Any, Any]]) -> None:
    """Apply ``update`` to every container (and init container) below ``node``; ``hits`` gets those it set."""
    if isinstance(node, dict):
        for key, value in node.items():
            _walk_containers(value, update, hits)
            if key in ("containers", "initContainers") and isinstance(value, list):
                for item in value:
                    if isinstance(item, dict) and update(item):
                        hits.append(item)
    elif isinstance(node, list):
        for item in node:
            _walk_containers(item, update, hits)


def _split_image(image: str) -> tuple[str, str, str]:
    """kustomize's image.Split: name, tag, digest."""
    slash = image.find("/")
    offset = slash if slash > 0 else 0
    search = image[offset:]
    at, colon = search.find("@"), search.find(":")
    if colon < 0 and at < 0:
        return image, "", ""
    if at >= 0 and (at < colon or colon < 0):
        return image[: offset + at], "", image[offset + at + 1 :]
    if at >= 0 and colon >= 0:
        return image[: offset + colon], image[offset + colon + 1 : offset + at], image[offset + at + 1 :]
    return image[: offset + colon], image[offset + colon + 1 :], ""


# --------------------------------------------------------------------------- patches

_PATCH_OPTIONS = frozenset({"allowNameChange", "allowKindChange", "allowNoTargetMatch"})


def _patch_text(
    ctx: _Context, kust: _Kust, entry: dict[str, Any], field: str, index: int
) -> tuple[str, _Source | None]:
    """The text of a patch entry and where it lies (None: nowhere a user can edit)."""
    path, raw = entry.get("path"), entry.get("patch")
    if raw is not None and not isinstance(raw, str):
        raise Unsupported(f"{field} with a non-string patch")
    inline = (raw or "").strip()
    if inline and path:
        raise KustomizeError(f"{kust.display}: {field}: patch and path can't be set at the same time")
    if path:
        file = ctx.load_file(kust, path, "patch file")
        try:
            return file.read_text(encoding="utf-8"), _Source(ctx.display(file))
        except UnicodeDecodeError:
            raise KustomizeError(f"{ctx.display(file)}: not UTF-8 text") from None
    if not inline:
        raise KustomizeError(f"{kust.display}: {field}: must specify one of patch and path")
    text = raw or ""
    stripped = text[: len(text) - len(text.lstrip())].count("\n")  # line breaks before the patch's first line
    return inline, ctx.inline_source(kust, f"{field}[{index}].patch", stripped)


def _classify_patch(text: str, display: str) -> tuple[str, Any, Document | None]:
    """('sm', patch object) or ('json', operations), decided like kustomize's PatchTransformer.

    The third item is the parsed document, for the lines of the patch's fields (None if there is none).
    """
    try:
        docs: list[Document] | None = load_yaml_text(text, display)
    except YamlSyntaxError:
        docs = None
    nonempty = [d for d in docs or [] if d.data is not None and d.data != {}]
    if len(nonempty) == 1 and isinstance(nonempty[0].data, dict):
        doc = nonempty[0].data
        md = doc.get("metadata")
        if doc.get("kind") and isinstance(md, dict) and md.get("name"):
            return "sm", doc, nonempty[0]
    ops: Any = None
    if text.startswith("["):
        try:
            ops = json.loads(text)
        except ValueError:
            ops = None
    elif docs:
        ops = docs[0].data
    if isinstance(ops, list) and all(isinstance(op, dict) for op in ops):
        return "json", ops, docs[0] if docs else None
    raise KustomizeError(f"{display}: unable to parse SM or JSON patch")


def _patch_options(entry: dict[str, Any]) -> dict[str, bool]:
    options = entry.get("options") or {}
    if not isinstance(options, dict) or set(options) - _PATCH_OPTIONS:
        raise Unsupported("patches options")
    if not all(isinstance(v, bool) for v in options.values()):
        raise Unsupported("patches options")
    return options


def _patches(ctx: _Context, kust: _Kust, ra: list[_Res]) -> None:
    for i, entry in enumerate(kust.list_of("patches", dict)):
        if set(entry) - {"path", "patch", "target", "options"}:
            raise Unsupported(f"patches field {sorted(set(entry) - {'path', 'patch', 'target', 'options'})[0]}")
        options = _patch_options(entry)
        where = f"{kust.display}: patches[{i}]"
        text, source = _patch_text(ctx, kust, entry, "patches", i)
        kind, patch, doc = _classify_patch(text, where)
        at = source.document(doc) if source is not None and doc is not None else source
        target = entry.get("target")
        if kind == "sm":
            targets = _select(ra, target) if target is not None else [_get_by_id(ra, patch, where)]
            _apply_sm_patch(ra, targets, patch, options, where, at)
        else:
            if target is None:
                raise KustomizeError(f"{where}: must specify a target for a JSON patch")
            for res in _select(ra, target):
                res.store_previous_id()
                _apply_json_patch(res, patch, where, at)


def _patches_strategic_merge(ctx: _Context, kust: _Kust, ra: list[_Res]) -> None:
    entries = kust.list_of("patchesStrategicMerge", str)
    patches: list[tuple[str, Document, _Source | None]] = []
    for i, entry in enumerate(entries):
        where = f"{kust.display}: patchesStrategicMerge[{i}]"
        inline = _inline_patches(entry, where)
        if inline is not None:
            source = ctx.inline_source(kust, f"patchesStrategicMerge[{i}]", 0)
        else:
            file = ctx.load_file(kust, entry, "patch file")
            inline = [d for d in ctx.read_docs(file) if d.data is not None]
            where = ctx.display(file)
            source = _Source(where)
            for d in inline:
                doc = d.data
                md = doc.get("metadata") if isinstance(doc, dict) else None
                if not isinstance(doc, dict) or not doc.get("kind") or not isinstance(md, dict) or not md.get("name"):
                    raise KustomizeError(f"{where}: patch without kind or metadata.name")
                if isinstance(doc.get("kind"), str) and doc["kind"].endswith("List") and "items" in doc:
                    raise Unsupported(f"{where}: List in a patch")
        patches.extend((where, d, source) for d in inline)
    for where, d, source in patches:
        at = source.document(d) if source is not None else None
        _apply_sm_patch(ra, [_get_by_id(ra, d.data, where)], d.data, {}, where, at)


def _inline_patches(entry: str, where: str) -> list[Document] | None:
    """patchesStrategicMerge entries may hold the patch itself instead of a file name."""
    if "\n" not in entry and ":" not in entry:
        return None
    try:
        docs = [d for d in load_yaml_text(entry, where) if d.data is not None]
    except YamlSyntaxError:
        return None
    if not docs or not all(isinstance(d.data, dict) and d.data.get("kind") and isinstance(d.data.get("metadata"), dict)
                           and d.data["metadata"].get("name") for d in docs):
        return None
    return docs


def _patch_id(patch: dict[str, Any]) -> _Id:
    group, version = _group_version(_text(patch.get("apiVersion")))
    md = patch.get("metadata") or {}
    return group, version, _text(patch.get("kind")), _text(md.get("name")), _text(md.get("namespace"))


def _get_by_id(ra: list[_Res], patch: dict[str, Any], where: str) -> _Res:
    pid = _patch_id(patch)
    matches = [r for r in ra if any(_ids_equal(i, pid) for i in r.any_ids())]
    if len(matches) != 1:
        what = "no matches" if not matches else "multiple matches"
        raise KustomizeError(f"{where}: {what} for patch target {pid[2]} {pid[3]}")
    return matches[0]


def _apply_sm_patch(
    ra: list[_Res],
    targets: list[_Res],
    patch: dict[str, Any],
    options: dict[str, bool],
    where: str,
    at: _Source | None = None,
) -> None:
    removed: list[_Res] = []
    for res in targets:
        if not res.api_version:
            raise Unsupported(f"patch of {res.describe()}, which has no apiVersion")
        copy = _copy(patch)
        copy["apiVersion"] = res.api_version
        copy["kind"] = patch.get("kind")
        name, namespace, kind = res.name, res.namespace, res.kind
        if options.get("allowNameChange") or options.get("allowKindChange"):
            res.store_previous_id()
        res.marked()
        result = _smp(res.data, copy, where)
        if not isinstance(result, dict) or not result:
            removed.append(res)
            continue
        res.data = result
        if not options.get("allowKindChange"):
            res.data["kind"] = kind
        if not options.get("allowNameChange"):
            res.set_name(name)
        res.set_namespace(namespace)
        if at is not None:
            with contextlib.suppress(RecursionError):  # nested too deep: only the patch's lines are lost
                _mark_sm_patch(res, copy, at, bool(options.get("allowNameChange")))
    if removed:
        ra[:] = [r for r in ra if all(r is not x for x in removed)]


def _patches_json6902(ctx: _Context, kust: _Kust, ra: list[_Res]) -> None:
    for i, entry in enumerate(kust.list_of("patchesJson6902", dict)):
        if set(entry) - {"path", "patch", "target"}:
            raise Unsupported("patchesJson6902 field")
        where = f"{kust.display}: patchesJson6902[{i}]"
        target = entry.get("target")
        if not isinstance(target, dict) or not target.get("name"):
            raise KustomizeError(f"{where}: must specify the target name")
        text, source = _patch_text(ctx, kust, entry, "patchesJson6902", i)
        doc: Document | None = None
        if text.startswith("["):
            try:
                ops = json.loads(text)
            except ValueError:
                raise KustomizeError(f"{where}: cannot decode the JSON patch") from None
        else:
            try:
                docs = [d for d in load_yaml_text(text, where) if d.data is not None]
            except YamlSyntaxError as exc:
                raise KustomizeError(str(exc)) from None
            doc = docs[0] if len(docs) == 1 else None
            ops = doc.data if doc is not None else None
        if not isinstance(ops, list) or not ops or not all(isinstance(op, dict) for op in ops):
            raise KustomizeError(f"{where}: not a JSON 6902 patch")
        targets = _select(ra, target)
        at = source
        if source is not None and targets:
            at = source.document(doc or _json_lines(text, where))
        for res in targets:
            _apply_json_patch(res, ops, where, at)


# --------------------------------------------------------------------------- target selection

_SELECTOR_KEYS = frozenset({"group", "version", "kind", "name", "namespace", "labelSelector", "annotationSelector"})


def _regex(value: Any, field: str) -> re.Pattern[str] | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Unsupported(f"patch target {field} is not a string")
    try:
        return re.compile(f"(?:{value})\\Z")
    except re.error:
        raise Unsupported(f"patch target {field} {value!r} is not a supported regular expression") from None


def _select(ra: list[_Res], selector: Any) -> list[_Res]:
    """kustomize's ResMap.Select: regexes on ids (original or current), then label/annotation selectors."""
    if not isinstance(selector, dict) or set(selector) - _SELECTOR_KEYS:
        raise Unsupported("patch target")
    group, version, kind, name, namespace = (
        _regex(selector.get(k), k) for k in ("group", "version", "kind", "name", "namespace")
    )
    labels = _label_selector(selector.get("labelSelector"))
    annotations = _label_selector(selector.get("annotationSelector"))
    out = []
    for res in ra:
        cur, org = res.cur_id(), res.org_id()
        if namespace and not (namespace.match(_effective_ns(org)) or namespace.match(_effective_ns(cur))):
            continue
        if name and not (name.match(org[3]) or name.match(cur[3])):
            continue
        gvk = res.gvk()
        if any(rx and not rx.match(have) for rx, have in zip((group, version, kind), gvk, strict=True)):
            continue
        if labels and not labels(_stringify(res.meta.get("labels"))):
            continue
        if annotations and not annotations(_stringify(res.meta.get("annotations"))):
            continue
        out.append(res)
    return out


_LABEL_TOKEN = r"[A-Za-z0-9][-A-Za-z0-9_./]*"


def _label_selector(text: Any) -> Callable[[dict[str, str]], bool] | None:
    """A Kubernetes label selector (equality and set based) as a predicate."""
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise Unsupported("label selector is not a string")
    exprs: list[dict[str, Any]] = []  # the text as matchExpressions
    for part in re.split(r",(?![^()]*\))", text):
        part = part.strip()
        if m := re.fullmatch(rf"({_LABEL_TOKEN})\s+(in|notin)\s+\(([^()]*)\)", part):
            exprs.append({"key": m.group(1), "operator": "In" if m.group(2) == "in" else "NotIn",
                          "values": [v.strip() for v in m.group(3).split(",")]})
        elif m := re.fullmatch(rf"({_LABEL_TOKEN})\s*(==|!=|=)\s*([-A-Za-z0-9_.]*)", part):
            exprs.append({"key": m.group(1), "operator": "NotIn" if m.group(2) == "!=" else "In",
                          "values": [m.group(3)]})
        elif m := re.fullmatch(rf"(!?)\s*({_LABEL_TOKEN})", part):
            exprs.append({"key": m.group(2), "operator": "DoesNotExist" if m.group(1) else "Exists"})
        else:
            raise Unsupported(f"label selector {text!r}")
    selector = {"matchExpressions": exprs}
    return lambda labels: selector_matches(selector, labels)


# --------------------------------------------------------------------------- strategic merge patch


class _Missing:
    """A field that is absent (as opposed to present with a null value)."""

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def _smp(dest: dict[str, Any], patch: dict[str, Any], where: str) -> Any:
    """kyaml's merge2.Merge with list items from the patch first (kustomize's MergeOptionsListPrepend)."""
    try:
        return _walk(dest, patch, None)
    except _MergeError as exc:
        raise KustomizeError(f"{where}: {exc}") from None
    except RecursionError:
        raise KustomizeError(f"{where}: patch nests too deeply") from None


class _MergeError(Exception):
    pass


def _node_kind(value: Any) -> str | None:
    if value is _MISSING or value is None:
        return None
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    return "scalar"


def _walk(dest: Any, origin: Any, schema: dict[str, Any] | None) -> Any:
    """Merge ``origin`` (patch) into ``dest``; returns the new value or _MISSING to drop the field."""
    if schema is None:
        schema = _schema_of(dest) or _schema_of(origin)
    kind = _node_kind(dest) or _node_kind(origin)
    if kind is None:
        # null in the object and absent from the patch survives; any other null combination clears
        return dest if origin is _MISSING else _MISSING
    for value in (dest, origin):
        if _node_kind(value) not in (None, kind):
            raise _MergeError(f"cannot merge a {_node_kind(value)} with a {kind}")
    if kind == "map":
        return _walk_map(dest, origin, schema)
    if kind == "list":
        return _walk_list(dest, origin, schema)
    if origin is _MISSING:
        return dest
    if origin is None:
        return _MISSING
    return origin


def _schema_of(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        av, kind = value.get("apiVersion"), value.get("kind")
        if isinstance(av, str) and isinstance(kind, str) and av and kind:
            return _SCHEMAS.get((av, kind))
    return None


def _directive(patch: dict[str, Any]) -> str:
    for key in patch:
        if isinstance(key, str) and key.startswith("$") and key != "$patch":
            raise Unsupported(f"strategic merge directive {key}")
    if "$patch" not in patch:
        return "merge"
    value = patch.pop("$patch")
    if value not in ("delete", "replace", "merge"):
        raise Unsupported(f"strategic merge directive $patch: {value}")
    return str(value)


def _walk_map(dest: Any, origin: Any, schema: dict[str, Any] | None) -> Any:
    if dest is _MISSING or dest is None:
        if _directive(origin) == "delete":
            return _MISSING
        dest = origin
    elif origin is None:
        return _MISSING
    elif origin is not _MISSING:
        directive = _directive(origin)
        if directive == "delete":
            return _MISSING
        if directive == "replace":
            dest = origin
    source = origin if isinstance(origin, dict) else {}
    fields = schema.get("f", {}) if schema else {}
    for key in sorted({*dest, *source}, key=str):
        value = _walk(dest.get(key, _MISSING), source.get(key, _MISSING), fields.get(key))
        if value is _MISSING:
            dest.pop(key, None)
        else:
            dest[key] = value
    return dest


def _walk_list(dest: Any, origin: Any, schema: dict[str, Any] | None) -> Any:
    keys = schema.get("k") if schema else None
    if keys is None:
        if origin is _MISSING:
            return dest
        return _MISSING if origin is None else origin
    if dest is _MISSING or dest is None:
        dest = origin
    elif origin is None:
        return _MISSING
    if not keys:
        return _merge_primitive_list(dest, origin)
    return _merge_keyed_list(dest, origin, keys, schema.get("i") if schema else None)


def _merge_primitive_list(dest: list[Any], origin: Any) -> list[Any]:
    seen: dict[str, Any] = {}
    for source in (origin, dest):
        for item in source if isinstance(source, list) else []:
            if item is None or isinstance(item, dict | list) or _text(item) == "":
                raise Unsupported("strategic merge of a list with null, empty or nested items")
            seen.setdefault(_text(item), item)
    return list(seen.values())


def _merge_keyed_list(dest: list[Any], origin: Any, keys: tuple[str, ...], item_schema: Any) -> list[Any]:
    """kyaml's associative-list merge (setAssociativeSequenceElements), ported with its quirks.

    Patch items come first.  Items are identified by their merge-key values; with several merge keys
    (ports: containerPort + protocol) a missing secondary key is filled in from an item that agrees
    on the other keys (kyaml's mergeValues), and keys missing everywhere are ignored.
    """
    for source in (dest, origin):
        for item in source if isinstance(source, list) else []:
            if not isinstance(item, dict):
                raise Unsupported("strategic merge of a keyed list with non-map items")
            if keys[0] not in item:
                raise Unsupported(f"strategic merge of list items without '{keys[0]}'")
            if any(k in item and (item[k] is None or isinstance(item[k], dict | list)) for k in keys):
                raise Unsupported("strategic merge of list items with null or structured merge keys")
    values_list: list[list[str]] = []
    for source in (origin, dest):
        for item in source if isinstance(source, list) else []:
            key_values = [_text(item[k]) if k in item else "" for k in keys]
            if key_values not in values_list:
                values_list.append(key_values)
    if len(keys) > 1:
        values_list = _merge_values(values_list)
    items: list[Any] = []
    valid_keys: list[str] = list(keys)
    for values in values_list:
        valid_keys, valid_values = _validate_keys(values_list, values, list(keys))
        lookup_keys, lookup_values = _validate_keys([valid_values], valid_values, valid_keys)
        merged = _walk(
            _element(dest, lookup_keys, lookup_values), _element(origin, lookup_keys, lookup_values), item_schema
        )
        if merged is _MISSING or merged is None or merged == {}:
            _element_setter(dest, _MISSING, valid_keys, valid_values)
            continue
        for key, value in zip(valid_keys, valid_values, strict=True):
            if key not in merged and value:
                merged[key] = value
        _element_setter(items, merged, valid_keys, valid_values)
    if values_list:
        _append_list(items, dest, valid_keys)
    return items


def _validate_keys(values_list: list[list[str]], values: list[str], keys: list[str]) -> tuple[list[str], list[str]]:
    present = {keys[i] for vs in values_list for i, v in enumerate(vs) if v}
    if not present:
        return keys, values
    return [k for k in keys if k in present], [v for i, v in enumerate(values) if v or keys[i] in present]


def _merge_values(values_list: list[list[str]]) -> list[list[str]]:
    for i, first in enumerate(values_list):
        for j, second in enumerate(values_list):
            merged = _match_values(first, second)
            if merged is not None:
                values_list[i] = merged
                values_list[j] = merged
    return values_list


def _match_values(first: list[str], second: list[str]) -> list[str] | None:
    if len(first) != len(second):
        return None
    common, out = False, []
    for a, b in zip(first, second, strict=True):
        if a == b:
            common = True
            out.append(a)
        elif a and b:
            return None
        else:
            out.append(a or b)
    return out if common else None


def _append_list(items: list[Any], dest: list[Any], keys: list[str]) -> None:
    """kyaml's appendListNode: put every item of ``dest`` into ``items``."""
    for item in list(dest):
        values = []
        for key in keys:
            if key not in item:
                items.append(item)
                continue
            values.append(_text(item[key]))
        if len(keys) > 1:
            _element_setter(items, _MISSING, keys, values)
        _element_setter(items, item, keys, values)


def _element(items: Any, keys: list[str], values: list[str]) -> Any:
    """kyaml's ElementList: the first item whose merge keys equal ``values``."""
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and all(
                k in item and _text(item[k]) == v for k, v in zip(keys, values, strict=True)
            ):
                return item
    return _MISSING


def _field_matches(item: Any, key: str, value: str) -> bool:
    if not isinstance(item, dict) or value == "":
        return False
    return key in item and not isinstance(item[key], dict | list) and _text(item[key]) == value


def _element_setter(items: list[Any], element: Any, keys: list[str], values: list[str]) -> None:
    """kyaml's ElementSetter: replace (or delete, for _MISSING) the matching items, else append."""
    is_map = isinstance(element, dict)
    kept: list[Any] = []
    found_any = False
    for item in items:
        if item is None or item == {}:
            continue
        if not isinstance(item, dict) and is_map:
            kept.append(item)
            continue
        found, matched = True, False
        for j, key in enumerate(keys):
            if j < len(values):
                matched = _field_matches(item, key, values[j])
            if not matched:
                found = False
                break
        if not found:
            if values:
                kept.append(item)
            continue
        found_any = True
        if element is not _MISSING:
            kept.append(element)
    items[:] = kept
    if element is not _MISSING and not found_any:
        items.append(element)


# --------------------------------------------------------------------------- JSON 6902 patches


class _PatchError(Exception):
    pass


def _apply_json_patch(res: _Res, ops: list[dict[str, Any]], where: str, at: _Source | None = None) -> None:
    # kustomize keeps its build state in annotations, so whenever there is some the map exists.
    if res.meta.get("annotations") is None and (res.prev or res.prefixes or res.suffixes or res.behavior):
        res.meta["annotations"] = {}
    doc = res.data
    marks = res.marked()
    for number, op in enumerate(ops):
        removed = _list_slot(doc, op.get("from") if op.get("op") == "move" else op.get("path")) \
            if at is not None and op.get("op") in ("remove", "move") else None
        try:
            _json_op(doc, op)
        except _PatchError as exc:
            raise KustomizeError(f"{where}: operation {number} ({op.get('op')} {op.get('path')}): {exc}") from None
        if at is not None:
            if removed is not None:
                marks.shift(removed[0], removed[1], -1)
            with contextlib.suppress(RecursionError):  # nested too deep: only the value's lines are lost
                _mark_json_op(marks, doc, op, number, at)
    if not isinstance(doc.get("metadata"), dict):
        raise KustomizeError(f"{where}: the patch removed metadata from {res.describe()}")
    # kustomize round-trips the object through JSON and rewrites its annotations as strings.
    annotations = res.meta.get("annotations")
    if isinstance(annotations, dict):
        res.meta["annotations"] = {
            k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in annotations.items()
        }
        marks.rekey(annotations, res.meta["annotations"])


def _list_slot(doc: Any, path: Any) -> tuple[list[Any], int] | None:
    """The list and index ``path`` points into, if it points into a list (before an operation removes it)."""
    try:
        tokens = _pointer(path)
        parent = _parent(doc, tokens)
        if isinstance(parent, list):
            return parent, _index(tokens[-1], len(parent), False)
    except (_PatchError, Unsupported):
        pass
    return None


def _mark_json_op(marks: _Marks, doc: Any, op: dict[str, Any], number: int, at: _Source) -> None:
    """Record the field a JSON 6902 operation set, at the line of its value (of the operation for move/copy)."""
    kind = op.get("op")
    if kind not in ("add", "replace", "move", "copy"):
        return
    tokens = _pointer(op.get("path"))
    parent, last = _parent(doc, tokens), tokens[-1]
    key: Any = last
    if isinstance(parent, list):
        key = len(parent) - 1 if last == "-" else int(last)
        if kind != "replace":
            marks.shift(parent, key, 1)
    source = f"[{number}].value" if kind in ("add", "replace") else f"[{number}]"
    value = parent[key]
    if isinstance(value, dict | list):
        if isinstance(parent, dict):
            entry = marks.keys.get(id(parent))
            if entry is not None:
                entry[1].pop(key, None)
        if kind in ("add", "replace"):
            _mark_patch(marks, value, value, source, at, None)
        else:
            marks.node(value, at.at(source))
    else:
        marks.key(parent, key, at.at(source))


def _json_lines(text: str, where: str) -> Document:
    """The JSON operations parsed as YAML, for their lines (no lines when YAML cannot read them)."""
    try:
        docs = [d for d in load_yaml_text(text, where) if d.data is not None]
    except YamlSyntaxError:
        docs = []
    return docs[0] if docs else Document(None, 1)


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str):
        raise _PatchError("path is not a string")
    if path == "":
        raise Unsupported("JSON patch on the whole document")
    if not path.startswith("/"):
        raise _PatchError('JSON pointer must be empty or start with a "/"')
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _index(token: str, size: int, allow_end: bool) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", token):
        raise _PatchError(f"invalid array index {token!r}")
    index = int(token)
    if index < 0:
        raise Unsupported("JSON patch with a negative array index")
    if index > size or (index == size and not allow_end):
        raise _PatchError(f"array index {index} out of bounds")
    return index


def _parent(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise _PatchError("doc is missing path")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(token, len(node), False)]
        else:
            raise _PatchError("doc is missing path")
    if not isinstance(node, dict | list):
        raise _PatchError("doc is missing path")
    return node


def _get(doc: Any, path: Any) -> Any:
    tokens = _pointer(path)
    parent, last = _parent(doc, tokens), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _PatchError("doc is missing key")
        return parent[last]
    return parent[_index(last, len(parent), False)]


def _add(doc: Any, path: Any, value: Any) -> None:
    tokens = _pointer(path)
    parent, last = _parent(doc, tokens), tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif last == "-":
        parent.append(value)
    else:
        parent.insert(_index(last, len(parent), True), value)


def _remove(doc: Any, path: Any) -> None:
    tokens = _pointer(path)
    parent, last = _parent(doc, tokens), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _PatchError("unable to remove nonexistent key")
        del parent[last]
    else:
        del parent[_index(last, len(parent), False)]


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and (isinstance(a, str) == isinstance(b, str))


def _json_op(doc: dict[str, Any], op: dict[str, Any]) -> None:
    kind = op.get("op")
    if kind in ("add", "replace", "test") and "value" not in op:
        raise Unsupported(f"JSON patch {kind} without a value")
    if kind == "add":
        _add(doc, op.get("path"), _copy(op["value"]))
    elif kind == "remove":
        _remove(doc, op.get("path"))
    elif kind == "replace":
        _get(doc, op.get("path"))
        tokens = _pointer(op.get("path"))
        parent, last = _parent(doc, tokens), tokens[-1]
        if isinstance(parent, dict):
            parent[last] = _copy(op["value"])
        else:
            parent[_index(last, len(parent), False)] = _copy(op["value"])
    elif kind == "move":
        value = _get(doc, op.get("from"))
        _remove(doc, op.get("from"))
        _add(doc, op.get("path"), value)
    elif kind == "copy":
        _add(doc, op.get("path"), _copy(_get(doc, op.get("from"))))
    elif kind == "test":
        try:
            actual = _get(doc, op.get("path"))
        except _PatchError:
            if op["value"] is None:
                return
            raise
        if not _json_equal(actual, op["value"]):
            raise _PatchError("testing value failed")
    else:
        raise _PatchError(f"unexpected operation {kind!r}")


# --------------------------------------------------------------------------- name references


def _fix_name_references(ra: list[_Res]) -> None:
    """kustomize's nameref transformer: point references at the renamed (prefixed, hashed, ...) objects."""
    for referrer in ra:
        org = referrer.org_id()
        candidates_specs = _NAMEREF_BY_KIND.get(org[2], ())
        specs = [(target, spec) for target, spec in candidates_specs if _gvk_selected(org[:3], spec[:3])]
        if not specs:
            continue
        candidates = _referable(referrer, ra)
        for target, spec in specs:
            setter = _reference_setter(referrer, candidates, target, spec[3])
            try:
                _walk_spec(referrer.data, spec[3], False, None, setter)
            except _FieldError:
                raise KustomizeError(
                    f"{referrer.file}: {referrer.describe()}: unexpected value at '{'/'.join(spec[3])}'"
                ) from None


def _referable(referrer: _Res, ra: list[_Res]) -> list[_Res]:
    cur = referrer.cur_id()
    if _is_cluster_scoped(*cur[:3]):
        return ra
    sa_namespaces: set[str] = set()
    if referrer.kind == "RoleBinding":
        subjects = referrer.data.get("subjects")
        for s in subjects if isinstance(subjects, list) else []:
            if isinstance(s, dict) and s.get("kind") == "ServiceAccount" and isinstance(s.get("namespace"), str):
                sa_namespaces.add(s["namespace"])
    ns = _effective_ns(cur)
    out = []
    for res in ra:
        rid = res.cur_id()
        if _is_cluster_scoped(*rid[:3]) or _effective_ns(rid) == ns or res.namespace in sa_namespaces:
            out.append(res)
    return out


def _reference_setter(
    referrer: _Res, candidates: list[_Res], target: tuple[str, str, str], path: tuple[str, ...]
) -> _Setter:
    role_ref: tuple[str, str, str] | None = None
    if path[-2:] == ("roleRef", "name"):
        rr = referrer.data.get("roleRef")
        if isinstance(rr, dict) and rr.get("apiGroup") is not None and rr.get("kind") is not None:
            role_ref = (_text(rr.get("apiGroup")), "", _text(rr.get("kind")))
    ref_cur = referrer.cur_id()
    ref_cluster = _is_cluster_scoped(*ref_cur[:3])
    ref_ns = _effective_ns(ref_cur)

    def select(old: str, pool: list[_Res], same_namespace_too: bool) -> _Res | None:
        found = []
        for res in pool:
            prev = res.prev_ids()
            if not any(p[3] == old for p in prev) or not any(_gvk_selected(p[:3], target) for p in prev):
                continue
            if role_ref is not None and not any(_gvk_selected(p[:3], role_ref) for p in prev):
                continue
            if not ref_cluster:
                rid = res.cur_id()
                if not (_is_cluster_scoped(*rid[:3]) or res.kind == "ServiceAccount" or _effective_ns(rid) == ref_ns):
                    continue
            found.append(res)
        if len(found) > 1:
            found = [r for r in found if _same_ending(r.prefixes, referrer.prefixes)
                     and _same_ending(r.suffixes, referrer.suffixes)]
        if not found:
            return None
        if len(found) > 1:
            first = found[0]
            same = all(r.name == first.name and (not same_namespace_too or r.namespace == first.namespace)
                       for r in found)
            if not same:
                raise KustomizeError(
                    f"{referrer.file}: {referrer.describe()}: found multiple possible referrals for '{old}'"
                )
        return found[0]

    def scalar(value: Any) -> Any:
        referral = select(_text(value), candidates, False)
        if referral is None or referral.name == _text(value):
            return value
        return referral.name

    def mapping(node: dict[Any, Any]) -> None:
        if "name" not in node:
            raise KustomizeError(f"{referrer.file}: {referrer.describe()}: reference without a 'name' field")
        pool = candidates
        if "namespace" in node:
            ns = _text(node["namespace"])
            by_org = [r for r in candidates if _effective_ns(r.org_id()) == ns and not _cluster(r.org_id())]
            pool = by_org or [r for r in candidates if _effective_ns(r.cur_id()) == ns and not _cluster(r.cur_id())]
        old = _text(node["name"])
        referral = select(old, pool, True)
        if referral is None or (referral.name == old and referral.namespace == ""):
            return
        node["name"] = referral.name
        if referral.namespace:
            node["namespace"] = referral.namespace

    def setter(parent: dict[Any, Any], key: str) -> None:
        node = parent[key]
        if node is None:
            return
        if isinstance(node, dict):
            mapping(node)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, dict):
                    mapping(item)
                elif isinstance(item, list):
                    raise _FieldError
                else:
                    node[i] = scalar(item)
        else:
            parent[key] = scalar(node)

    return setter


def _cluster(rid: _Id) -> bool:
    return _is_cluster_scoped(*rid[:3])


def _same_ending(a: list[str], b: list[str]) -> bool:
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    if not short:
        return not long
    return long[len(long) - len(short) :] == short


# --------------------------------------------------------------------------- hash, sort, output


def _add_hash_suffixes(ra: list[_Res]) -> None:
    for res in ra:
        if res.needs_hash:
            res.store_previous_id()
            res.set_name(f"{res.name}-{_content_hash(res)}")


def _content_hash(res: _Res) -> str:
    """kustomize's hasher: the name is (by a kustomize quirk) never part of the hashed text."""
    data = res.data
    if res.kind == "ConfigMap":
        obj: dict[str, Any] = {"kind": "ConfigMap", "name": "", "data": _hash_map(data, "data")}
        if isinstance(data.get("binaryData"), dict):
            obj["binaryData"] = _hash_map(data, "binaryData")
    elif res.kind == "Secret":
        secret_type = data.get("type", "")
        if not isinstance(secret_type, str):
            raise Unsupported("hash of a Secret with a non-string type")
        obj = {"kind": "Secret", "type": secret_type, "name": "", "data": _hash_map(data, "data")}
        if isinstance(data.get("stringData"), dict):
            obj["stringData"] = _hash_map(data, "stringData")
    else:
        raise Unsupported(f"name hash of a generated {res.kind}")
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                          ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    return digest.translate(_HASH_TRANSLATION)


_HASH_TRANSLATION = str.maketrans({"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"})


def _hash_map(data: dict[str, Any], field: str) -> Any:
    if field not in data:
        return ""
    value = data[field]
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise Unsupported(f"name hash of a {field} field with non-string values")
    return value


_ORDER_FIRST = (
    "Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition", "ServiceAccount", "PodSecurityPolicy",
    "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ConfigMap", "Secret", "Endpoints", "Service",
    "LimitRange", "PriorityClass", "PersistentVolume", "PersistentVolumeClaim", "Deployment", "StatefulSet",
    "CronJob", "PodDisruptionBudget",
)
_ORDER_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


def _sort(ra: list[_Res], options: Any, display: str) -> list[_Res]:
    """kustomize's output order: 'legacy' by default, or the top kustomization's sortOptions."""
    first: Any = _ORDER_FIRST
    last: Any = _ORDER_LAST
    if options is not None:
        if not isinstance(options, dict) or set(options) - {"order", "legacySortOptions"}:
            raise Unsupported("sortOptions")
        order, legacy = options.get("order"), options.get("legacySortOptions")
        if order == "fifo":
            if legacy is not None:
                raise KustomizeError(f"{display}: sortOptions.legacySortOptions is set but the order is fifo")
            return ra
        if order != "legacy":
            raise KustomizeError(f"{display}: the field 'sortOptions.order' must be one of [fifo, legacy]")
        if legacy is not None:
            if not isinstance(legacy, dict) or set(legacy) - {"orderFirst", "orderLast"}:
                raise Unsupported("sortOptions.legacySortOptions")
            first, last = legacy.get("orderFirst") or [], legacy.get("orderLast") or []
            if not all(isinstance(k, str) for k in [*first, *last]):
                raise Unsupported("sortOptions.legacySortOptions")
    type_orders = {kind: i - len(first) for i, kind in enumerate(first)}
    type_orders.update({kind: 1 + i for i, kind in enumerate(last)})

    def key(res: _Res) -> tuple[int, str, str]:
        group, version, kind = res.gvk()
        gvk = f"{group or '~G'}_{version or '~V'}_{kind or '~K'}"
        return type_orders.get(kind, 0), gvk, f"{res.namespace or '~X'}|{res.name or '~N'}"

    return sorted(ra, key=key)


def _is_local_config(res: _Res) -> bool:
    annotations = res.meta.get("annotations")
    if not isinstance(annotations, dict) or "config.kubernetes.io/local-config" not in annotations:
        return False
    return _text(annotations["config.kubernetes.io/local-config"]) != "false"


def _finalize_annotations(res: _Res) -> None:
    """kustomize rewrites annotations when it strips its build annotations: strings only, no empty map."""
    md = res.data.get("metadata")
    if not isinstance(md, dict) or "annotations" not in md:
        return
    if not md["annotations"]:
        del md["annotations"]
        return
    md["annotations"] = _stringify(md["annotations"])


# --------------------------------------------------------------------------- tables

# Kinds kustomize's built-in OpenAPI data (Kubernetes 1.21) knows to be cluster-scoped.
_CLUSTER_SCOPED = frozenset(
    [("v1", k) for k in ("ComponentStatus", "Namespace", "Node", "NodeProxyOptions", "PersistentVolume")]
    + [
        (f"admissionregistration.k8s.io/{v}", k)
        for v in ("v1", "v1beta1")
        for k in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
    ]
    + [(f"apiextensions.k8s.io/{v}", "CustomResourceDefinition") for v in ("v1", "v1beta1")]
    + [(f"apiregistration.k8s.io/{v}", "APIService") for v in ("v1", "v1beta1")]
    + [(f"certificates.k8s.io/{v}", "CertificateSigningRequest") for v in ("v1", "v1beta1")]
    + [
        (f"flowcontrol.apiserver.k8s.io/{v}", k)
        for v in ("v1alpha1", "v1beta1")
        for k in ("FlowSchema", "PriorityLevelConfiguration")
    ]
    + [(f"networking.k8s.io/{v}", "IngressClass") for v in ("v1", "v1beta1")]
    + [(f"node.k8s.io/{v}", "RuntimeClass") for v in ("v1", "v1beta1", "v1alpha1")]
    + [("policy/v1beta1", "PodSecurityPolicy")]
    + [
        (f"rbac.authorization.k8s.io/{v}", k)
        for v in ("v1", "v1beta1", "v1alpha1")
        for k in ("ClusterRole", "ClusterRoleBinding")
    ]
    + [(f"scheduling.k8s.io/{v}", "PriorityClass") for v in ("v1", "v1beta1", "v1alpha1")]
    + [
        (f"storage.k8s.io/{v}", k)
        for v in ("v1", "v1beta1")
        for k in ("CSIDriver", "CSINode", "StorageClass", "VolumeAttachment")
    ]
    + [("storage.k8s.io/v1alpha1", "VolumeAttachment")]
    + [(f"authentication.k8s.io/{v}", "TokenReview") for v in ("v1", "v1beta1")]
    + [
        (f"authorization.k8s.io/{v}", k)
        for v in ("v1", "v1beta1")
        for k in ("SelfSubjectAccessReview", "SelfSubjectRulesReview", "SubjectAccessReview")
    ]
    + [("internal.apiserver.k8s.io/v1alpha1", "StorageVersion")]
)

_NAMESPACED_KNOWN = (
    [("apps/v1", k) for k in ("ControllerRevision", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet")]
    + [(f"autoscaling/{v}", "HorizontalPodAutoscaler") for v in ("v1", "v2beta1", "v2beta2")]
    + [("autoscaling/v1", "Scale"), ("batch/v1", "CronJob"), ("batch/v1", "Job"), ("batch/v1beta1", "CronJob")]
    + [(f"coordination.k8s.io/{v}", "Lease") for v in ("v1", "v1beta1")]
    + [(f"discovery.k8s.io/{v}", "EndpointSlice") for v in ("v1", "v1beta1")]
    + [(f"events.k8s.io/{v}", "Event") for v in ("v1", "v1beta1")]
    + [("extensions/v1beta1", "Ingress"), ("networking.k8s.io/v1", "Ingress"), ("networking.k8s.io/v1beta1", "Ingress")]
    + [("networking.k8s.io/v1", "NetworkPolicy")]
    + [(f"policy/{v}", "PodDisruptionBudget") for v in ("v1", "v1beta1")]
    + [(f"rbac.authorization.k8s.io/{v}", k) for v in ("v1", "v1beta1", "v1alpha1") for k in ("Role", "RoleBinding")]
    + [("storage.k8s.io/v1beta1", "CSIStorageCapacity"), ("storage.k8s.io/v1alpha1", "CSIStorageCapacity")]
    + [
        ("v1", k)
        for k in (
            "ConfigMap", "Endpoints", "Event", "LimitRange", "PersistentVolumeClaim", "Pod", "PodAttachOptions",
            "PodExecOptions", "PodPortForwardOptions", "PodProxyOptions", "PodTemplate", "ReplicationController",
            "ResourceQuota", "Secret", "Service", "ServiceAccount", "ServiceProxyOptions", "Binding",
        )
    ]
)


def _node(fields: dict[str, Any] | None = None, keys: tuple[str, ...] | None = None, item: Any = None) -> Any:
    node: dict[str, Any] = {}
    if fields:
        node["f"] = fields
    if keys is not None:
        node["k"] = keys
    if item is not None:
        node["i"] = item
    return node


# The patch strategies (x-kubernetes-patch-strategy/merge keys) of the built-in schema that matter
# for manifests; lists without one are replaced by a patch, as are all lists of unknown kinds.
_META = _node({"finalizers": _node(keys=()), "ownerReferences": _node(keys=("uid",))})
_CONTAINER = _node(
    {
        "ports": _node(keys=("containerPort", "protocol")),
        "env": _node(keys=("name",)),
        "volumeMounts": _node(keys=("mountPath",)),
        "volumeDevices": _node(keys=("devicePath",)),
    }
)
_POD_SPEC = _node(
    {
        "volumes": _node(keys=("name",)),
        "containers": _node(keys=("name",), item=_CONTAINER),
        "initContainers": _node(keys=("name",), item=_CONTAINER),
        "ephemeralContainers": _node(keys=("name",), item=_CONTAINER),
        "imagePullSecrets": _node(keys=("name",)),
        "hostAliases": _node(keys=("ip",)),
        "topologySpreadConstraints": _node(keys=("topologyKey", "whenUnsatisfiable")),
    }
)
_POD_TEMPLATE = _node({"metadata": _META, "spec": _POD_SPEC})
_WORKLOAD = _node({"metadata": _META, "spec": _node({"template": _POD_TEMPLATE})})

_SCHEMAS: dict[tuple[str, str], Any] = {
    key: _node({"metadata": _META}) for key in (*_CLUSTER_SCOPED, *_NAMESPACED_KNOWN)
}
_SCHEMAS.update(
    {
        ("v1", "Pod"): _node({"metadata": _META, "spec": _POD_SPEC}),
        ("v1", "PodTemplate"): _node({"metadata": _META, "template": _POD_TEMPLATE}),
        ("v1", "ReplicationController"): _WORKLOAD,
        ("apps/v1", "Deployment"): _WORKLOAD,
        ("apps/v1", "ReplicaSet"): _WORKLOAD,
        ("apps/v1", "DaemonSet"): _WORKLOAD,
        ("apps/v1", "StatefulSet"): _WORKLOAD,
        ("batch/v1", "Job"): _WORKLOAD,
        ("v1", "Service"): _node({"metadata": _META, "spec": _node({"ports": _node(keys=("port", "protocol"))})}),
        ("v1", "ServiceAccount"): _node({"metadata": _META, "secrets": _node(keys=("name",))}),
    }
)
for _cron in ("batch/v1", "batch/v1beta1"):
    _SCHEMAS[(_cron, "CronJob")] = _node(
        {"metadata": _META, "spec": _node({"jobTemplate": _node({"metadata": _META, "spec": _WORKLOAD["f"]["spec"]})})}
    )
for _version in ("v1", "v1beta1"):
    for _kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        _SCHEMAS[(f"admissionregistration.k8s.io/{_version}", _kind)] = _node(
            {"metadata": _META, "webhooks": _node(keys=("name",))}
        )

_CM_PATHS = (
    "volumes/configMap/name",
    "containers/env/valueFrom/configMapKeyRef/name",
    "initContainers/env/valueFrom/configMapKeyRef/name",
    "containers/envFrom/configMapRef/name",
    "initContainers/envFrom/configMapRef/name",
    "volumes/projected/sources/configMap/name",
)
_SECRET_PATHS = (
    "volumes/secret/secretName",
    "containers/env/valueFrom/secretKeyRef/name",
    "initContainers/env/valueFrom/secretKeyRef/name",
    "containers/envFrom/secretRef/name",
    "initContainers/envFrom/secretRef/name",
    "imagePullSecrets/name",
    "volumes/projected/sources/secret/name",
)

_RBAC = "rbac.authorization.k8s.io"

# kustomize's default nameReference configuration: (referral gvk, referrer field spec).
_NAMEREF: list[tuple[tuple[str, str, str], _FieldSpec]] = [
    *[(("", "", kind), _spec("spec/scaleTargetRef/name", kind="HorizontalPodAutoscaler"))
      for kind in ("Deployment", "ReplicationController", "ReplicaSet", "StatefulSet")],
    *[(("", "v1", "ConfigMap"), s) for s in _pod_specs(_CM_PATHS, pod_version="v1")],
    (("", "v1", "ConfigMap"), _spec("spec/configSource/configMap", kind="Node")),
    (("", "v1", "ConfigMap"), _spec("rules/resourceNames", kind="Role")),
    (("", "v1", "ConfigMap"), _spec("rules/resourceNames", kind="ClusterRole")),
    (("", "v1", "ConfigMap"),
     _spec("metadata/annotations/nginx.ingress.kubernetes.io\\/fastcgi-params-configmap", kind="Ingress")),
    *[(("", "v1", "Secret"), s) for s in _pod_specs(_SECRET_PATHS, pod_version="v1")],
    *[(("", "v1", "Secret"), _spec(p, kind="Ingress")) for p in (
        "spec/tls/secretName",
        "metadata/annotations/ingress.kubernetes.io\\/auth-secret",
        "metadata/annotations/nginx.ingress.kubernetes.io\\/auth-secret",
        "metadata/annotations/nginx.ingress.kubernetes.io\\/auth-tls-secret",
    )],
    (("", "v1", "Secret"), _spec("imagePullSecrets/name", kind="ServiceAccount")),
    *[(("", "v1", "Secret"), _spec(f"parameters/{p}", kind="StorageClass"))
      for p in ("secretName", "adminSecretName", "userSecretName", "secretRef")],
    (("", "v1", "Secret"), _spec("rules/resourceNames", kind="Role")),
    (("", "v1", "Secret"), _spec("rules/resourceNames", kind="ClusterRole")),
    (("", "v1", "Secret"), _spec("spec/template/spec/containers/env/valueFrom/secretKeyRef/name",
                                 group="serving.knative.dev", version="v1", kind="Service")),
    (("", "v1", "Secret"), _spec("spec/azureFile/secretName", kind="PersistentVolume")),
    (("", "v1", "Service"), _spec("spec/serviceName", group="apps", kind="StatefulSet")),
    *[(("", "v1", "Service"), _spec(p, kind="Ingress")) for p in (
        "spec/rules/http/paths/backend/serviceName",
        "spec/backend/serviceName",
        "spec/rules/http/paths/backend/service/name",
        "spec/defaultBackend/service/name",
    )],
    (("", "v1", "Service"), _spec("spec/service/name", group="apiregistration.k8s.io", kind="APIService")),
    *[(("", "v1", "Service"), _spec("webhooks/clientConfig/service", group="admissionregistration.k8s.io", kind=k))
      for k in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")],
    (("rbac.authorization.k8s.io", "", "Role"),
     _spec("roleRef/name", group="rbac.authorization.k8s.io", kind="RoleBinding")),
    *[(("rbac.authorization.k8s.io", "", "ClusterRole"), _spec("roleRef/name", group=_RBAC, kind=k))
      for k in ("RoleBinding", "ClusterRoleBinding")],
    *[(("", "v1", "ServiceAccount"), _spec("subjects", group="rbac.authorization.k8s.io", kind=k))
      for k in ("RoleBinding", "ClusterRoleBinding")],
    *[(("", "v1", "ServiceAccount"), s) for s in _workload_specs("serviceAccountName")],
    *[(("", "v1", "PersistentVolumeClaim"), s) for s in _workload_specs("volumes/persistentVolumeClaim/claimName")],
    (("", "v1", "PersistentVolume"), _spec("spec/volumeName", kind="PersistentVolumeClaim")),
    (("", "v1", "PersistentVolume"), _spec("rules/resourceNames", kind="ClusterRole")),
    *[(("storage.k8s.io", "v1", "StorageClass"), _spec(p, kind=k)) for p, k in (
        ("spec/storageClassName", "PersistentVolume"),
        ("spec/storageClassName", "PersistentVolumeClaim"),
        ("spec/volumeClaimTemplates/spec/storageClassName", "StatefulSet"),
    )],
    *[(("scheduling.k8s.io", "v1", "PriorityClass"), s) for s in _workload_specs("priorityClassName")],
]


def seed_cache(cache: dict[Any, Any], parsed: Iterable[tuple[Path, list[Document]]]) -> None:
    """Put files the caller already parsed into ``cache`` so that rendering does not read them again."""
    for path, docs in parsed:
        try:
            st = path.stat()
        except OSError:
            continue
        cache[("kubeshape.kustomize.yaml", str(path))] = ((st.st_mtime_ns, st.st_size), docs)

_NAMEREF_BY_KIND: dict[str, list[tuple[tuple[str, str, str], _FieldSpec]]] = {}
for _target, _referrer in _NAMEREF:
    _NAMEREF_BY_KIND.setdefault(_referrer[2], []).append((_target, _referrer))
