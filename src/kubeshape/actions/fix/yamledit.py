"""Edit one document of a YAML file in place: set a value, add an env var, delete the document.

Each function takes the file's text and returns the new text. Positions come from ruamel.yaml's round-trip
loader; only the changed value or the inserted lines differ, so comments (Flux setter markers included),
quoting, key order, blank lines, indentation and line endings stay byte for byte. Every edit is re-read and
compared with the intended change; anything else raises ``EditError`` and leaves the text as it was. Values
reached through an anchor, an alias or a merge key (``<<: *base``) are shared with other places, so they are
never edited.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from typing import Any

from kubeshape.release import yamltext as yt
from kubeshape.release.yamltext import EditError

# A path inside a document: mapping keys, list indexes, or {"name": x} to pick the list item named x.
Key = str | int | dict[str, str]
Path_ = tuple[Key, ...]

_SEPARATOR = re.compile(r"^---(?:[ \t].*)?$")
_VARIABLE = re.compile(r"\$\{[^}]*\}")


def documents(text: str, where: str) -> list[Any]:
    """The file's documents (ruamel round-trip nodes; None for an empty document)."""
    return yt.load_roundtrip(text, where)


def _name_matches(written: Any, name: str) -> bool:
    """True when the ``metadata.name`` written in the file is ``name``, or becomes it once Flux substitutes its
    ``${VARIABLES}`` (``${APP}``, ``${APP}-worker``)."""
    if not isinstance(written, str):
        return False
    if written == name:
        return True
    return "${" in written and re.fullmatch(_template(written), name) is not None


def _template(written: str) -> str:
    """A regular expression for the names ``written`` can become: each ``${VAR}`` stands for any text."""
    out, pos = [], 0
    for m in _VARIABLE.finditer(written):
        out.append(re.escape(written[pos:m.start()]))
        out.append(".+")
        pos = m.end()
    out.append(re.escape(written[pos:]))
    return "".join(out)


def find_documents(text: str, where: str, kind: str, name: str, namespace: str | None = None) -> list[int]:
    """Indexes of the documents that define ``kind``/``name`` (and ``namespace`` when the document sets one).
    A name written with Flux ``${VARIABLES}`` matches only when no document has the name itself."""
    exact, templated = [], []
    for i, doc in enumerate(documents(text, where)):
        if not isinstance(doc, dict) or doc.get("kind") != kind:
            continue
        meta = doc.get("metadata")
        if not isinstance(meta, dict):
            continue
        ns = meta.get("namespace")
        if namespace is not None and ns not in (None, "", namespace) and "${" not in str(ns):
            continue
        written = meta.get("name")
        if written == name:
            exact.append(i)
        elif _name_matches(written, name):
            templated.append(i)
    return exact or templated


def _resolve(node: Any, key: Key, where: str) -> Any:
    """The index or key ``key`` denotes in ``node``."""
    if isinstance(key, dict):
        if not isinstance(node, list):
            raise EditError(f"{where}: expected a list where {key} is looked up")
        for i, item in enumerate(node):
            if isinstance(item, dict) and all(item.get(k) == v for k, v in key.items()):
                return i
        raise EditError(f"{where}: no list item with {key}")
    return key


def _lc(node: Any) -> Any:
    """ruamel's line/column record of a round-trip mapping or sequence."""
    return node.lc


def _anchor(node: Any) -> str | None:
    anchor = getattr(node, "anchor", None)
    value = getattr(anchor, "value", None)
    return str(value) if value else None


def _shared(node: Any, where: str) -> None:
    """EditError when ``node`` is anchored (an alias elsewhere may share it)."""
    name = _anchor(node)
    if name is not None and isinstance(node, dict | list):
        raise EditError(f"{where}:{_lc(node).line + 1}: the value is shared through the anchor &{name}: editing it "
                        "would change every alias too -- edit it by hand")


def _step_into(node: Any, key: Key, where: str) -> tuple[Any, str | int]:
    """The child of collection ``node`` at ``key`` and its concrete key; EditError when ``node`` is no collection,
    is shared through an anchor, or holds the key only through a merge key."""
    if not isinstance(node, dict | list):
        raise EditError(f"{where}: expected a mapping or list before {key!r}, found {type(node).__name__}: "
                        "edit it by hand")
    _shared(node, where)
    k = _resolve(node, key, where)
    if isinstance(node, dict) and k in node and k not in _lc(node).data:
        raise EditError(f"{where}:{_lc(node).line + 1}: {k} comes from a merge key (<<: *anchor): edit it where "
                        "the anchor is defined, by hand")
    return node, k


def _key_column(node: Any) -> int:
    """The column of the mapping's own keys (-1 when it has none: empty, or only merged keys)."""
    for key in _lc(node).data:
        return int(_lc(node).key(key)[1])
    return -1


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _end_line(lines: list[str], start: int, column: int) -> int:
    """The last line of the content that starts on line ``start`` at ``column``: the lines that follow it indented
    deeper (a block scalar, a multi-line plain or flow value) belong to it; blank lines only when such a line
    follows them."""
    end = start
    for i in range(start + 1, len(lines)):
        row = lines[i]
        if not row.strip():
            continue
        if _indent(row) <= column or _SEPARATOR.match(row.rstrip("\r\n")):
            break
        end = i
    return end


def _indent_step(docs: list[Any]) -> int:
    """How far the file indents a mapping nested in a mapping: the most common step; 2 when it has none."""
    seen: Counter[int] = Counter()

    def walk(node: Any) -> None:
        if isinstance(node, dict) and not yt.is_flow(node):
            for key in node:
                child: Any = node[key]
                if isinstance(child, dict) and child and not yt.is_flow(child) and key in _lc(node).data:
                    step = _key_column(child) - int(_lc(node).key(key)[1])
                    if step > 0:
                        seen[step] += 1
                walk(child)
        elif isinstance(node, list) and not yt.is_flow(node):
            for item in node:
                walk(item)

    for doc in docs:
        walk(doc)
    return seen.most_common(1)[0][0] if seen else 2


def _scalar_text(value: Any, style: str, flow: bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return yt.render(str(value), style, flow)


def _block(path: tuple[str, ...], value: Any, indent: int, step: int) -> list[str]:
    """Lines that set ``path`` (mapping keys only) to ``value`` at column ``indent``."""
    out = []
    for depth, key in enumerate(path[:-1]):
        out.append(" " * (indent + depth * step) + f"{_key(key)}:")
    out.append(" " * (indent + (len(path) - 1) * step) + f"{_key(path[-1])}: {_scalar_text(value, '', False)}")
    return out


def _key(key: str) -> str:
    return yt.render(key, "")


def _add_keys(text: str, docs: list[Any], node: Any, rest: Path_, value: Any, near: str | None,
              where: str) -> str:
    """``text`` with the missing keys ``rest`` added to block mapping ``node``: after the sibling ``near`` when
    ``node`` has it, else after its last line."""
    if not all(isinstance(p, str) for p in rest):
        raise EditError(f"{where}: cannot add {rest} (a list item is missing): edit it by hand")
    if yt.is_flow(node):
        raise EditError(f"{where}:{_lc(node).line + 1}: the mapping is written in flow style ({{...}}): edit it by "
                        "hand")
    col = _key_column(node)
    if col < 0:
        raise EditError(f"{where}: cannot add to an empty mapping: edit it by hand")
    lines = text.splitlines(keepends=True)
    after = yt.last_line(node, _lc(node).line)
    if near is not None and len(rest) == 1 and near in _lc(node).data:
        sibling: Any = node[near]
        after = yt.last_line(sibling, _lc(node).value(near)[0]) if isinstance(sibling, dict | list) \
            else _lc(node).value(near)[0]
    after = _end_line(lines, after, col)
    new = _block(tuple(str(p) for p in rest), value, col, _indent_step(docs))
    return yt.apply(text, [yt.Insert(after, tuple(new))], where)


def set_value(text: str, where: str, doc: int, path: Path_, value: Any, near: str | None = None,
              expect: Any = None) -> str:
    """``path`` of document ``doc`` set to the scalar ``value``: the old value replaced in its quoting style, or
    the missing keys added under their parent with the file's indentation (right after the sibling ``near`` when
    the parent has it, else at the parent's end). With ``expect``, EditError unless the file holds that value
    now (it differs when Flux substitutes a ``${VAR}`` or an overlay patches the field)."""
    if not path:
        raise EditError(f"{where}: nothing to set")
    docs = documents(text, where)
    node: Any = docs[doc]
    for i, key in enumerate(path):
        node, k = _step_into(node, key, where)
        if isinstance(node, dict) and k not in node:
            result = _add_keys(text, docs, node, path[i:], value, near, where)
            break
        if i < len(path) - 1:
            node = node[k]
            continue
        current = node[k]
        if expect is not None and current != expect:
            raise EditError(f"{where}: the file sets {current!r} here, not {expect!r} (substituted or patched "
                            "elsewhere): edit it by hand")
        if current is None or isinstance(current, dict | list):
            raise EditError(f"{where}: {k} holds {'no value' if current is None else 'a collection'}, not a "
                            "one-line value: edit it by hand")
        line, col = _lc(node).value(k) if isinstance(node, dict) else _lc(node).item(k)
        flow = yt.is_flow(node)
        lines = text.splitlines(keepends=True)
        old, style = yt.current_text(lines, line, col, flow, where)
        row = lines[line]
        lines[line] = row[:col] + _scalar_text(value, style, flow) + row[col + len(old):]
        result = "".join(lines)
    _verify_set(text, result, doc, path, value, where)
    return result


def _verify_set(before: str, after: str, doc: int, path: Path_, value: Any, where: str) -> None:
    expected = copy.deepcopy(yt.load_plain(before))
    node = expected[doc]
    for key in path[:-1]:
        k = _resolve(node, key, where)
        if isinstance(node, dict) and k not in node:
            node[k] = {}
        node = node[k]
    node[_resolve(node, path[-1], where)] = value
    _compare(after, expected, where)


def _compare(after: str, expected: list[Any], where: str) -> None:
    try:
        got = yt.load_plain(after)
    except Exception as exc:
        raise EditError(f"{where}: the edit produced invalid YAML ({str(exc).splitlines()[0]}); "
                        "the file was not changed") from None
    if got != expected:
        raise EditError(f"{where}: the edit did not read back as intended; the file was not changed -- "
                        "edit it by hand")


def ensure_env(text: str, where: str, doc: int, container: Path_, var: str, value: str,
               expect: str | None = None) -> str:
    """Env var ``var`` of the container at ``container`` set to ``value``: changed where it is (only when it holds
    ``expect``, if given), else added as the last item of ``env`` in the style of its neighbours (a flow
    ``{name: …, value: …}`` item when they are written so), else an ``env`` list added."""
    docs = documents(text, where)
    node: Any = docs[doc]
    for key in container:
        node, k = _step_into(node, key, where)
        node = node[k]
    if not isinstance(node, dict):
        raise EditError(f"{where}: the container is not a mapping: edit it by hand")
    _shared(node, where)
    if "env" in node and "env" not in _lc(node).data:
        raise EditError(f"{where}: env comes from a merge key (<<: *anchor): edit it by hand")
    env = node.get("env")
    lines = text.splitlines(keepends=True)
    if isinstance(env, list):
        _shared(env, where)
        for item in env:
            if isinstance(item, dict) and item.get("name") == var:
                if "value" not in item:
                    raise EditError(f"{where}: {var} takes its value from elsewhere (valueFrom): edit it by hand")
                return set_value(text, where, doc, (*container, "env", {"name": var}, "value"), value,
                                 expect=expect)
        if not env or yt.is_flow(env):
            raise EditError(f"{where}:{_lc(node).key('env')[0] + 1}: the env list is written in flow style "
                            "([...]): edit it by hand")
        first_line, first_col = _lc(env).item(0)
        dash = lines[first_line].rfind("-", 0, first_col)
        content = first_col - dash
        after = _end_line(lines, yt.last_line(env, first_line), dash)
        if all(isinstance(i, dict) and yt.is_flow(i) for i in env):
            new: tuple[str, ...] = (" " * dash + "-" + " " * (content - 1)
                                    + f"{{name: {_key(var)}, value: {yt.render(value, '', True)}}}",)
        else:
            new = (" " * dash + "-" + " " * (content - 1) + f"name: {_key(var)}",
                   " " * first_col + f"value: {yt.render(value, '')}")
        result = yt.apply(text, [yt.Insert(after, new)], where)
    elif "env" not in node:
        if yt.is_flow(node):
            raise EditError(f"{where}:{_lc(node).line + 1}: the container is written in flow style ({{...}}): "
                            "edit it by hand")
        col = _key_column(node)
        dash_rel, content = yt.sequence_style(docs, lines)
        after = _end_line(lines, yt.last_line(node, _lc(node).line), col)
        new = (" " * col + "env:",
               " " * (col + dash_rel) + "-" + " " * (content - 1) + f"name: {_key(var)}",
               " " * (col + dash_rel + content) + f"value: {yt.render(value, '')}")
        result = yt.apply(text, [yt.Insert(after, new)], where)
    else:
        raise EditError(f"{where}:{_lc(node).key('env')[0] + 1}: env is "
                        f"{'empty' if env is None else 'not a list'}: edit it by hand")
    expected = copy.deepcopy(yt.load_plain(text))
    target = expected[doc]
    for key in container:
        target = target[_resolve(target, key, where)]
    envs = target.setdefault("env", [])
    envs.append({"name": var, "value": value})
    _compare(result, expected, where)
    return result


def _doc_spans(text: str, docs: list[Any]) -> list[tuple[int, int] | None]:
    """(first line, end line) of each document: from the separator before it (or the file start) to the next
    separator (or the file end). None for documents without a position (empty ones)."""
    lines = text.splitlines()
    seps = [i for i, ln in enumerate(lines) if _SEPARATOR.match(ln)]
    out: list[tuple[int, int] | None] = []
    for doc in docs:
        lc = getattr(doc, "lc", None)
        if lc is None or not isinstance(doc, dict | list):
            out.append(None)
            continue
        first = int(lc.line)
        before = [s for s in seps if s < first]
        after = [s for s in seps if s > first]
        out.append((before[-1] if before else 0, after[0] if after else len(lines)))
    return out


def delete_document(text: str, where: str, doc: int) -> str:
    """The text without document ``doc`` (its separator, comments and content)."""
    docs = documents(text, where)
    spans = _doc_spans(text, docs)
    span = spans[doc]
    if span is None:
        raise EditError(f"{where}: cannot locate document {doc + 1}: edit it by hand")
    start, end = span
    lines = text.splitlines(keepends=True)
    result = "".join(lines[:start] + lines[end:])
    expected = [d for i, d in enumerate(yt.load_plain(text)) if i != doc and d is not None]
    try:
        got = [d for d in yt.load_plain(result) if d is not None]
    except Exception:
        raise EditError(f"{where}: removing document {doc + 1} left invalid YAML; the file was not changed") from None
    if got != expected:
        raise EditError(f"{where}: removing document {doc + 1} did not read back as intended; edit it by hand")
    return result


def has_documents(text: str, where: str) -> bool:
    """True when some document of the text holds content."""
    return any(d is not None for d in yt.load_plain(text))
