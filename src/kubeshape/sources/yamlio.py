"""Read YAML the way kubectl and Flux do, safely, with the line of every field.

Differences from plain ``yaml.safe_load_all``:

* a plain ``=`` is the string ``"="`` (PyYAML would resolve it to the unsupported ``!!value`` tag);
* an anchor may be redefined, later aliases use the latest definition (YAML 1.2, go-yaml);
* a duplicate mapping key is a warning on the Document, the last value wins;
* alias expansion, nesting depth and file size are bounded, so a YAML bomb is a YamlSyntaxError;
* every failure, whatever raised it, is a YamlSyntaxError with file, line and column.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from kubeshape.inventory import lookup_line

MAX_FILE_BYTES = 16 * 1024 * 1024
"""Larger files are refused by load_yaml_file before they are read."""

MAX_EXPANDED_NODES = 1_000_000
"""Nodes that aliases may add to one file when expanded (a billion-laughs file adds 10**10)."""

MAX_DEPTH = 1_000
"""Deepest nesting of collections, counting levels reached through aliases."""

# libyaml's composer recurses in C once per nesting level (~350 bytes of stack; about 23,000 levels crash the
# process on an 8 MiB stack, before any Python check runs). Texts that could nest deeper than this are first
# parsed to events, which does not recurse, to measure their real depth.
_C_SAFE_DEPTH = 2_000

_MAX_INT_CHARS = 4_300  # Python's int() limit for decimal strings; also bounds quadratic sexagesimal ints
_MERGE_TAG = "tag:yaml.org,2002:merge"
_VALUE_TAG = "tag:yaml.org,2002:value"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class YamlSyntaxError(Exception):
    """A YAML file that cannot be parsed; ``str()`` is ``file:line:col: message``."""

    def __init__(self, file: str, line: int, column: int, problem: str) -> None:
        self.file, self.line, self.column, self.problem = file, line, column, problem
        super().__init__(f"{file}:{line}:{column}: invalid YAML: {problem}")


class LocalTagError(YamlSyntaxError):
    """The file uses an application-specific tag (``!secret``, ``!env_var``, ``!!python/name:``): not a Kubernetes
    manifest."""

    def __init__(self, file: str, line: int, column: int, tag: str) -> None:
        self.tag = tag
        kind = "local tag" if not tag.startswith("!!") else "tag"
        super().__init__(file, line, column, f"uses the {kind} {tag!r} (not a Kubernetes manifest)")


@dataclass(slots=True)
class Document:
    """One YAML document with the 1-based line of its start and of every mapping key and list item.

    ``warnings`` holds problems that kubectl tolerates, such as duplicate keys.
    """

    data: Any
    line: int
    lines: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def line_of(self, path: str) -> int:
        """Line of ``path`` (``spec.template.spec.containers[0].image``) or the document start."""
        return lookup_line(self.lines, path, self.line)


_JINJA_BLOCK = "{%"
_JINJA_COMMENT = re.compile(r"\{#.*?#\}")
_GO_TEMPLATE = re.compile(r"\{\{.*?\}\}")


def template_marker(text: str) -> str | None:
    """Why ``text`` looks like a Jinja or Go/Helm template rather than YAML, or None.

    Any ``{%``, a ``{# ... #}`` or a ``{{ ... }}`` on one line counts, quoted or not.
    """
    if _JINJA_BLOCK in text:
        return "Jinja template markers ({% ... %})"
    if "{#" in text and _JINJA_COMMENT.search(text):
        return "Jinja template markers ({# ... #})"
    if "{{" in text and _GO_TEMPLATE.search(text):
        return "template markers ({{ ... }})"
    return None


# ---------------------------------------------------------------------------------------------------------------
# Loaders


class _LocalTag(ConstructorError):
    def __init__(self, tag: str, mark: yaml.Mark) -> None:
        super().__init__(None, None, f"unknown tag {tag!r}", mark)
        self.tag = tag


class _Limit(yaml.MarkedYAMLError):
    """A bound of this module was exceeded at ``problem_mark``."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


def _undefined(loader: SafeConstructor, node: yaml.Node) -> Any:
    # Kubernetes manifests use no tags beyond YAML's own: `!secret`, `!!python/name:…` belong to other programs.
    tag = node.tag
    if tag.startswith("tag:yaml.org,2002:"):
        tag = "!!" + tag.removeprefix("tag:yaml.org,2002:")
    raise _LocalTag(tag, node.start_mark)


def _int(loader: SafeConstructor, node: yaml.ScalarNode) -> Any:
    if len(node.value) > _MAX_INT_CHARS:
        raise ConstructorError(None, None, f"integer of {len(node.value):,} characters is too large", node.start_mark)
    return loader.construct_yaml_int(node)


def _checked(construct: Callable[[SafeConstructor, Any], Any], what: str) -> Callable[[SafeConstructor, Any], Any]:
    """Turn the ValueError/KeyError of a scalar constructor (``2024-13-01``, ``!!bool maybe``) into a marked error."""

    def run(loader: SafeConstructor, node: yaml.Node) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            detail = f" ({exc})" if isinstance(exc, ValueError) else ""
            problem = f"{node.value!r} is not a valid {what}{detail}"
            raise ConstructorError(None, None, problem, node.start_mark) from None

    return run


_CONSTRUCTORS: dict[Any, Any] = {
    **SafeConstructor.yaml_constructors,
    None: _undefined,
    "tag:yaml.org,2002:int": _checked(_int, "integer"),
    "tag:yaml.org,2002:float": _checked(SafeConstructor.construct_yaml_float, "float"),
    "tag:yaml.org,2002:bool": _checked(SafeConstructor.construct_yaml_bool, "boolean"),
    "tag:yaml.org,2002:timestamp": _checked(SafeConstructor.construct_yaml_timestamp, "timestamp"),
}
# Without the `=` resolver a plain `=` resolves to a string, as in YAML 1.2 and go-yaml; without the timestamp
# resolver a date stays the string it is in the JSON that Kubernetes sees (`2024-13-01` is no error either).
_RESOLVERS = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_VALUE_TAG, _TIMESTAMP_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RESOLVERS = {first: resolvers for first, resolvers in _RESOLVERS.items() if resolvers}

_FastBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _FastLoader(_FastBase):  # type: ignore[valid-type,misc]
    """libyaml parser and composer (pure Python when libyaml is missing)."""

    yaml_constructors = _CONSTRUCTORS
    yaml_implicit_resolvers = _RESOLVERS


class _RedefiningLoader(yaml.SafeLoader):
    """Pure-Python loader whose composer lets a later anchor replace an earlier one of the same name.

    The composer is iterative, so nesting is bounded by MAX_DEPTH rather than by Python's recursion limit.
    """

    yaml_constructors = _CONSTRUCTORS
    yaml_implicit_resolvers = _RESOLVERS

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        collections: list[Any] = []  # open sequences and mappings, innermost last
        keys: list[yaml.Node | None] = []  # per open mapping: the key waiting for its value
        while True:
            event: Any = self.get_event()  # type: ignore[no-untyped-call]
            kind: type[yaml.Event] = type(event)  # isinstance(event) would narrow to stricter stub types
            node: Any
            if kind is yaml.AliasEvent:
                if event.anchor not in self.anchors:
                    raise yaml.composer.ComposerError(None, None, f"found undefined alias {event.anchor!r}",
                                                      event.start_mark)
                node = self.anchors[event.anchor]
            elif issubclass(kind, yaml.CollectionEndEvent):
                node = collections.pop()
                keys.pop()
                node.end_mark = event.end_mark
            elif kind is yaml.ScalarEvent:
                tag = event.tag
                if tag is None or tag == "!":
                    tag = self.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
                node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
                if event.anchor is not None:
                    self.anchors[event.anchor] = node
            else:
                node_class = yaml.SequenceNode if kind is yaml.SequenceStartEvent else yaml.MappingNode
                tag = event.tag
                if tag is None or tag == "!":
                    tag = self.resolve(node_class, None, event.implicit)  # type: ignore[no-untyped-call]
                node = node_class(tag, [], event.start_mark, None, flow_style=event.flow_style)
                if event.anchor is not None:
                    self.anchors[event.anchor] = node
                collections.append(node)
                keys.append(None)
                continue
            if not collections:
                return node  # type: ignore[no-any-return]
            if isinstance(collections[-1], yaml.SequenceNode):
                collections[-1].value.append(node)
            elif keys[-1] is None:
                keys[-1] = node
            else:
                collections[-1].value.append((keys[-1], node))
                keys[-1] = None


class _DuplicateAnchor(Exception):
    pass


# ---------------------------------------------------------------------------------------------------------------
# Bounds


def _nesting_bound(text: str) -> int:
    """An upper bound of the nesting depth of ``text``.

    A nested block collection starts at a greater column than its parent (an indentless sequence at the same
    one, at most once per level), and every flow collection needs a bracket, plus at most one implicit
    single-pair mapping inside it.
    """
    longest = max(map(len, text.split("\n")))
    return 2 * (longest + 1) + 2 * (text.count("[") + text.count("{")) + 2


def _check_depth(text: str, file: str) -> None:
    """Refuse ``text`` nesting deeper than MAX_DEPTH, reading events only (nothing recurses)."""
    loader = _FastLoader(text)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _Limit(f"nesting deeper than {MAX_DEPTH:,} levels", event.start_mark)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, file, text, loader) from None
    finally:
        loader.dispose()


def _expand(start: yaml.Node, depth: int, expanded: int) -> int:
    """Count the nodes an alias of ``start`` adds when expanded; fail past the budget or the depth bound."""
    stack = [(start, depth)]
    while stack:
        node, level = stack.pop()
        if level > MAX_DEPTH:
            raise _Limit(f"nesting deeper than {MAX_DEPTH:,} levels (through aliases)", node.start_mark)
        children = node.value
        expanded += len(children)
        if expanded > MAX_EXPANDED_NODES:
            raise _Limit(f"alias expansion exceeds {MAX_EXPANDED_NODES:,} nodes (a YAML bomb?)", start.start_mark)
        level += 1
        for child in children:
            if type(child) is tuple:
                child = child[1]
            if type(child.value) is list:
                if child is start:
                    raise _Limit("an alias refers to a collection that contains it (recursive alias)",
                                 start.start_mark)
                stack.append((child, level))
    return expanded


def _walk(root: yaml.Node, lines: dict[str, int] | None, warnings: list[str], expanded: int) -> int:
    """Index the lines of ``root`` into ``lines``, warn about duplicate keys and bound the expansion.

    Each collection is walked once; an alias of one already walked is only counted (see _expand), so the lines
    of aliased and merged (``<<``) content are indexed where its anchor is. Returns the running count of
    alias-expanded nodes.
    """
    if type(root.value) is not list:
        return expanded
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, str, int]] = [(root, "", 1)]
    pop = stack.pop
    while stack:
        node, prefix, depth = pop()
        if id(node) in seen:
            expanded = _expand(node, depth, expanded)
            continue
        seen.add(id(node))
        if depth > MAX_DEPTH:
            raise _Limit(f"nesting deeper than {MAX_DEPTH:,} levels", node.start_mark)
        depth += 1
        kids: list[tuple[yaml.Node, str, int]] = []
        if isinstance(node, yaml.MappingNode):
            first: dict[str, yaml.Node] = {}
            for key, value in node.value:
                name = key.value
                if type(name) is not str:
                    continue  # a collection as a key: the constructor rejects it
                path = f"{prefix}.{name}" if prefix else name
                line = key.start_mark.line + 1
                earlier = first.setdefault(name, key)
                if earlier is not key and earlier.tag == key.tag and key.tag != _MERGE_TAG:
                    warnings.append(f"duplicate key {path!r} at line {line} "
                                    f"(first at line {earlier.start_mark.line + 1}); the last value is used")
                    kids = [kid for kid in kids if kid[1] != path]
                if lines is not None:
                    lines[path] = line
                if type(value.value) is list:
                    kids.append((value, path, depth))
        elif lines is not None:
            for i, item in enumerate(node.value):
                path = f"{prefix}[{i}]"
                lines[path] = item.start_mark.line + 1
                if type(item.value) is list:
                    kids.append((item, path, depth))
        else:
            for i, item in enumerate(node.value):
                if type(item.value) is list:
                    kids.append((item, f"{prefix}[{i}]", depth))
        if kids:
            kids.reverse()  # pop in document order, so an anchor is walked before its aliases
            stack += kids
    return expanded


# ---------------------------------------------------------------------------------------------------------------
# Loading


def _syntax_error(exc: BaseException, file: str, text: str, loader: Any) -> YamlSyntaxError:
    """The YamlSyntaxError for any exception raised while reading ``text``."""
    if isinstance(exc, _LocalTag):
        mark = exc.problem_mark
        return LocalTagError(file, mark.line + 1 if mark else 1, mark.column + 1 if mark else 1, exc.tag)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = str(exc.problem or exc.context or "syntax error")
        if "maximum nesting depth" in problem:  # libyaml ≥ 0.2.5 (PyYAML ≥ 6.0.4) has its own limit: same words
            problem = f"nesting deeper than {MAX_DEPTH:,} levels"
        return YamlSyntaxError(file, mark.line + 1 if mark else 1, mark.column + 1 if mark else 1, problem)
    if isinstance(exc, yaml.reader.ReaderError):
        # libyaml reports a byte offset into the UTF-8 text, the Python reader a character offset
        before = text.encode("utf-8", "replace")[: exc.position].decode("utf-8", "replace") \
            if not isinstance(loader, yaml.SafeLoader) else text[: exc.position]
        line = before.count("\n") + 1
        return YamlSyntaxError(file, line, len(before) - before.rfind("\n"), str(exc.reason))
    if isinstance(exc, UnicodeError):
        start = getattr(exc, "start", 0)
        line = text.count("\n", 0, start) + 1
        return YamlSyntaxError(file, line, start - text.rfind("\n", 0, start), "not valid Unicode text")
    if isinstance(exc, RecursionError):
        mark = loader.get_mark() if isinstance(loader, yaml.SafeLoader) else None
        return YamlSyntaxError(file, mark.line + 1 if mark else 1, mark.column + 1 if mark else 1,
                               "nesting too deep")
    if isinstance(exc, yaml.YAMLError):
        return YamlSyntaxError(file, 1, 1, str(exc).splitlines()[0] if str(exc) else "syntax error")
    return YamlSyntaxError(file, 1, 1, f"{type(exc).__name__}: {exc}")


def _load(text: str, file: str, with_lines: bool, loader_class: type[yaml.SafeLoader]) -> list[Document]:
    try:
        loader = loader_class(text)
    except UnicodeError as exc:
        raise _syntax_error(exc, file, text, None) from None
    docs: list[Document] = []
    expanded = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            lines: dict[str, int] = {}
            warnings: list[str] = []
            expanded = _walk(node, lines if with_lines else None, warnings, expanded)
            try:
                data = loader.construct_document(node)
            except (yaml.YAMLError, RecursionError):
                raise
            except Exception as exc:  # a constructor bug or input nobody foresaw: still the user's file at fault
                raise _Limit(f"cannot read value: {type(exc).__name__}: {exc}", node.start_mark) from None
            docs.append(Document(data=data, line=node.start_mark.line + 1, lines=lines, warnings=warnings))
    except yaml.composer.ComposerError as exc:
        if loader_class is not _RedefiningLoader and "duplicate anchor" in str(exc.context):
            raise _DuplicateAnchor from None
        raise _syntax_error(exc, file, text, loader) from None
    except (yaml.YAMLError, RecursionError, UnicodeError) as exc:
        raise _syntax_error(exc, file, text, loader) from None
    finally:
        loader.dispose()
    return docs


def load_yaml_text(text: str, file: str, with_lines: bool = True) -> list[Document]:
    """Parse every document of ``text``; raise YamlSyntaxError (LocalTagError for ``!secret`` and the like).

    ``file`` names the text in errors and warnings; ``with_lines=False`` skips the line index.
    """
    if not text:
        return []
    if _nesting_bound(text) > _C_SAFE_DEPTH:
        _check_depth(text, file)
    try:
        return _load(text, file, with_lines, _FastLoader)
    except _DuplicateAnchor:
        # rare: libyaml refuses a redefined anchor; the Python composer (slower) allows it
        return _load(text, file, with_lines, _RedefiningLoader)


def _decode(raw: bytes, file: str) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding, raw_text = "utf-16", raw  # the codec reads the BOM for the byte order
    else:
        encoding, raw_text = "utf-8", raw[3:] if raw.startswith(codecs.BOM_UTF8) else raw
    try:
        return raw_text.decode(encoding)
    except UnicodeDecodeError as exc:
        before = raw_text[: exc.start].decode(encoding, "replace")
        line = before.count("\n") + 1
        column = len(before) - before.rfind("\n")
        label = "UTF-16" if encoding == "utf-16" else "UTF-8"
        raise YamlSyntaxError(file, line, column, f"not {label} text ({exc.reason})") from None


def load_yaml_file(path: Path, display: str | None = None) -> list[Document]:
    """Read and parse a YAML file (UTF-8, with or without BOM, or UTF-16 with BOM).

    Files over MAX_FILE_BYTES and undecodable bytes are a YamlSyntaxError too; ``display`` names the file in errors.
    """
    name = display or str(path)
    with path.open("rb") as handle:
        raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            size = max(path.stat().st_size, len(raw))
            raise YamlSyntaxError(name, 1, 1, f"file is {size / 2**20:.1f} MiB, over the "
                                              f"{MAX_FILE_BYTES // 2**20} MiB limit")
    return load_yaml_text(_decode(raw, name), name)
