"""Change YAML values in place without re-serialising the file.

ruamel.yaml's round-trip loader gives each key's and value's line and column; the new value is spliced into the
original text in the old value's quoting style, so comments (a Flux setter marker after the value included),
quotes, key order, blank lines and indentation stay byte for byte. Added keys copy their siblings' indentation.
``verify`` reparses the result and checks that exactly the intended values changed.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from kubeshape.errors import InputError

YPath = tuple[str | int, ...]


class EditError(InputError):
    """The file cannot be edited safely; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Replace:
    """Replace the scalar starting at ``line``/``col`` (0-based) with ``value``."""

    line: int
    col: int
    value: str
    flow: bool = False


@dataclass(frozen=True, slots=True)
class Insert:
    """Insert ``lines`` (without line endings) after line ``after`` (0-based)."""

    after: int
    lines: tuple[str, ...]


Op = Replace | Insert


def load_roundtrip(text: str, where: str) -> list[Any]:
    """All documents with line/column information (ruamel round-trip)."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    try:
        return [d for d in yaml.load_all(text)]
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise EditError(f"{where}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None


def load_plain(text: str) -> list[Any]:
    """All documents as plain Python values (for comparisons)."""
    yaml = YAML(typ="safe", pure=True)
    return [_plain(d) for d in yaml.load_all(text)]


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def newline_of(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def scalar_span(line: str, col: int, flow: bool) -> tuple[int, str]:
    """End column and style (``"``, ``'`` or ``""`` for plain) of the one-line scalar at ``col``."""
    ch = line[col:col + 1]
    if ch == '"':
        i = col + 1
        while i < len(line):
            if line[i] == "\\":
                i += 2
                continue
            if line[i] == '"':
                return i + 1, '"'
            i += 1
        return -1, '"'
    if ch == "'":
        i = col + 1
        while i < len(line):
            if line[i] == "'":
                if line[i + 1:i + 2] == "'":
                    i += 2
                    continue
                return i + 1, "'"
            i += 1
        return -1, "'"
    if ch in ("|", ">", "&", "*", "!", "") or ch in "\r\n":
        return -1, ""
    end = len(line.rstrip("\r\n"))
    hash_at = line.find(" #", col)
    if hash_at != -1:
        end = min(end, hash_at)
    if flow:
        for stop in (",", "}", "]"):
            at = line.find(stop, col)
            if at != -1:
                end = min(end, at)
    return len(line[:end].rstrip()), ""


def _loads_scalar(text: str) -> Any:
    try:
        docs = load_plain(f"k: {text}\n")
    except YAMLError:
        return None
    return docs[0].get("k") if docs and isinstance(docs[0], dict) else None


def render(value: str, style: str, flow: bool = False) -> str:
    """``value`` in ``style``; a plain value that would not read back as this string is double-quoted."""
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    risky = " #" in value or ": " in value or (flow and any(c in value for c in ",[]{}"))
    if style == "" and not risky and _loads_scalar(value) == value:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def current_text(lines: list[str], line: int, col: int, flow: bool, where: str) -> tuple[str, str]:
    """The source text and style of the scalar at ``line``/``col``; EditError when it is not a one-line
    scalar we can splice (block scalar, anchor, tag, multi-line)."""
    end, style = scalar_span(lines[line], col, flow)
    if end < 0:
        raise EditError(f"{where}:{line + 1}: the value is a multi-line, anchored or tagged scalar: edit it by hand")
    return lines[line][col:end], style


def apply(text: str, ops: list[Op], where: str) -> str:
    """Apply replacements (right to left on a line), then insertions (bottom to top)."""
    lines = text.splitlines(keepends=True)
    nl = newline_of(text)
    for op in sorted((o for o in ops if isinstance(o, Replace)), key=lambda o: (o.line, o.col), reverse=True):
        old, style = current_text(lines, op.line, op.col, op.flow, where)
        row = lines[op.line]
        lines[op.line] = row[:op.col] + render(op.value, style, op.flow) + row[op.col + len(old):]
    if lines and not lines[-1].endswith(("\n", "\r")) and any(isinstance(o, Insert) for o in ops):
        lines[-1] += nl
    grouped: dict[int, list[str]] = {}
    for ins in (o for o in ops if isinstance(o, Insert)):  # same anchor: keep the given order
        grouped.setdefault(ins.after, []).extend(ins.lines)
    for after in sorted(grouped, reverse=True):
        lines[after + 1:after + 1] = [ln + nl for ln in grouped[after]]
    return "".join(lines)


def set_path(doc: Any, path: YPath, value: Any) -> None:
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def verify(before: str, after: str, changes: list[tuple[int, YPath, Any]], where: str) -> None:
    """Raise EditError unless ``after`` reads as ``before`` with exactly ``changes`` (doc, path, value) made."""
    expected = copy.deepcopy(load_plain(before))
    for doc, path, value in changes:
        set_path(expected[doc], path, value)
    try:
        got = load_plain(after)
    except YAMLError as exc:
        raise EditError(f"{where}: the edit produced invalid YAML ({exc}); the file was not changed") from None
    if got != expected:
        raise EditError(f"{where}: the edit did not read back as intended; the file was not changed -- "
                        "edit it by hand")


def last_line(node: Any, default: int) -> int:
    """The last line (0-based) a block collection's keys and values start on."""
    best = default
    node_: Any = node
    if isinstance(node, dict):
        for key in node:
            try:
                best = max(best, node_.lc.key(key)[0], node_.lc.value(key)[0])
            except (AttributeError, KeyError, TypeError):
                continue
            best = max(best, last_line(node[key], best))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            try:
                best = max(best, node_.lc.item(i)[0])
            except (AttributeError, KeyError, TypeError, IndexError):
                continue
            best = max(best, last_line(item, best))
    return best


def is_flow(node: Any) -> bool:
    fa = getattr(node, "fa", None)
    return bool(fa is not None and fa.flow_style())


def sequence_style(docs: list[Any], lines: list[str]) -> tuple[int, int]:
    """How the file writes block sequences of mappings under a key: (dash column relative to the key, item
    content column relative to the dash), the most common pair; (0, 2) when it has none."""
    seen: Counter[tuple[int, int]] = Counter()

    def walk(node: Any) -> None:
        cm: Any = node
        if isinstance(node, dict) and not is_flow(node):
            for key in node:
                child: Any = node[key]
                if isinstance(child, list) and child and not is_flow(child):
                    kcol = cm.lc.key(key)[1]
                    line, icol = cm[key].lc.item(0)
                    dash = lines[line].rfind("-", 0, icol) if line < len(lines) else -1
                    if dash >= kcol:
                        seen[(dash - kcol, icol - dash)] += 1
                walk(child)
        elif isinstance(node, list) and not is_flow(node):
            for item in node:
                walk(item)

    for doc in docs:
        walk(doc)
    return seen.most_common(1)[0][0] if seen else (0, 2)
