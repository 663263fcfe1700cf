"""Make a manifest say what runs: live values laid over a round-trip document, comments and layout kept.

Only fields that differ change. What the cluster adds by itself (``fields``) is never copied; a value the
cluster source redacted (a secret-looking environment variable) is never written -- the file keeps its own, or
the field is reported as one to set by hand. List items are matched by name (containers, env, volumes), mount
path or port, so a reordered list is not a change; lists without keys are compared item by item.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kubeshape.redact import REDACTED, is_secret_name, redact_text
from kubeshape.scaffold.gitops.fields import (
    DROP,
    Path,
    equal,
    generic,
    is_assigned,
    is_cluster_only,
    strip_defaults,
)

_EMPTY: tuple[Any, ...] = (None, "", {}, [])


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field a definition changes, as printed: ``spec.template.spec.containers[app].image``."""

    path: str
    before: Any
    after: Any
    what: str  # "changed" | "added" | "removed"


@dataclass(slots=True)
class Overlay:
    """What laying the live object over a document changed, and what it could not."""

    changes: list[FieldChange] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)  # live values that are secret: not written


def to_plain(node: Any) -> Any:
    """A round-trip node as plain dicts, lists and scalars."""
    if isinstance(node, dict):
        return {str(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def has_redacted(value: Any) -> bool:
    if isinstance(value, str):
        return REDACTED in value
    if isinstance(value, dict):
        return any(has_redacted(v) for v in value.values())
    if isinstance(value, list):
        return any(has_redacted(v) for v in value)
    return False


def _list_key(where: str, a: list[Any], b: list[Any]) -> Callable[[Any], Any] | None:
    """How items of two lists at ``where`` are matched, if they can be."""
    items = [*a, *b]
    if not items or not all(isinstance(x, dict) for x in items):
        return None

    def unique(key: Callable[[Any], Any]) -> bool:
        return all(len({key(x) for x in lst}) == len(lst) and None not in {key(x) for x in lst} for lst in (a, b))

    candidates: list[Callable[[Any], Any]] = [lambda x: x.get("name")]
    if where.endswith("volumeMounts"):
        candidates.insert(0, lambda x: x.get("mountPath"))
    if where.endswith("ports"):
        candidates.append(lambda x: (x.get("containerPort", x.get("port")), x.get("protocol") or "TCP"))
    return next((k for k in candidates if unique(k)), None)


def _label(key: Any) -> str:
    if isinstance(key, tuple):
        return "/".join(str(k) for k in key)
    return str(key)


def _trailing_comments(parent: Any, key: Any) -> list[str]:
    """Whole-line comments that follow the value of ``parent[key]`` (ruamel keeps them on its last token)."""
    token = None
    node, k = parent, key
    while True:
        ca = getattr(node, "ca", None)
        entry = ca.items.get(k) if ca is not None else None
        if entry:
            found = entry[2] if isinstance(node, dict) and len(entry) > 2 else entry[0]
            token = found or token
        value = node[k]
        if isinstance(value, dict) and value:
            node, k = value, list(value)[-1]
        elif isinstance(value, list) and value:
            node, k = value, len(value) - 1
        else:
            break
    if token is None or not isinstance(getattr(token, "value", None), str):
        return []
    lines = token.value.split("\n")
    if not token.value.startswith("\n"):
        lines = lines[1:]  # the first line is the comment at the end of the value's own line
    return [ln.strip().removeprefix("#").strip() for ln in lines if ln.strip().startswith("#")]


def _comment_before_next(parent: Any, key: Any, comments: list[str], keys: list[Any]) -> None:
    i = keys.index(key)
    if not comments or i + 1 >= len(keys) or not hasattr(parent, "yaml_set_comment_before_after_key"):
        return
    nxt = keys[i + 1]
    try:
        col = parent.lc.key(nxt)[1]
    except (AttributeError, KeyError, TypeError):
        col = 0
    parent.yaml_set_comment_before_after_key(nxt, before="\n".join(comments), indent=col)


def delete(parent: Any, key: Any, comments: list[str] | None = None) -> None:
    """``del parent[key]``, keeping whole-line comments that followed its value before the next key."""
    keys = list(parent)
    if comments is None:
        comments = _trailing_comments(parent, key) if hasattr(parent, "ca") else []
    del parent[key]
    _comment_before_next(parent, key, comments, keys)


class _Walker:
    def __init__(self, kind: str, skip: Iterable[str]) -> None:
        self.kind = kind
        self.skip = set(skip)
        self.out = Overlay()

    def record(self, shown: str, before: Any, after: Any, what: str) -> None:
        self.out.changes.append(FieldChange(shown, to_plain(before), to_plain(after), what))

    def mapping(self, doc: dict[str, Any], live: dict[str, Any], path: Path, shown: str) -> None:
        for key, value in live.items():
            p = (*path, str(key))
            where = generic(self.kind, p)
            name = f"{shown}.{key}" if shown else str(key)
            if where in self.skip or is_cluster_only(where):
                continue
            if key in doc:
                self.value(doc, key, value, p, name)
                continue
            if is_assigned(self.kind, where):
                continue
            new = strip_defaults(self.kind, p, value, live)
            if new is DROP:
                continue
            if has_redacted(new):
                self.out.secrets.append(name)
                continue
            doc[key] = new
            self.record(name, None, new, "added")
        for key in [k for k in doc if k not in live]:
            p = (*path, str(key))
            where = generic(self.kind, p)
            if where in self.skip or is_cluster_only(where) or is_assigned(self.kind, where):
                continue
            if doc[key] in _EMPTY:
                continue  # the API server drops empty values: nothing differs
            self.record(f"{shown}.{key}" if shown else str(key), doc[key], None, "removed")
            delete(doc, key)

    def value(self, doc: Any, key: Any, live: Any, path: Path, shown: str) -> None:
        mine = doc[key]
        if isinstance(mine, dict) and isinstance(live, dict):
            had = bool(mine)
            comments = _trailing_comments(doc, key) if isinstance(doc, dict) and hasattr(doc, "ca") else []
            self.mapping(mine, live, path, shown)
            if had and not mine and not live and isinstance(doc, dict):
                delete(doc, key, comments)  # emptied, and empty in the cluster too (`resources: {}`): it goes
            elif comments and not _trailing_comments(doc, key) and isinstance(doc, dict):
                _comment_before_next(doc, key, comments, list(doc))  # its last field went, with the comments
            return
        if isinstance(mine, list) and isinstance(live, list):
            self.sequence(doc, key, mine, live, path, shown)
            return
        where = generic(self.kind, path)
        if equal(where, to_plain(mine), live):
            return
        if has_redacted(live):
            self.out.secrets.append(shown)
            return
        new = strip_defaults(self.kind, path, live) if isinstance(live, dict | list) else live
        doc[key] = {} if new is DROP else new
        self.record(shown, mine, doc[key], "changed")

    def sequence(self, doc: Any, key: Any, mine: list[Any], live: list[Any], path: Path, shown: str) -> None:
        where = generic(self.kind, path)
        match = _list_key(where, mine, live)
        if match is None:
            if len(mine) == len(live):
                for i, item in enumerate(live):
                    self.value(mine, i, item, (*path, i), f"{shown}[{i}]")
                return
            new = strip_defaults(self.kind, path, live)
            if has_redacted(new):
                self.out.secrets.append(shown)
                return
            self.record(shown, mine, new, "changed")
            doc[key] = new
            return
        have = {match(x): x for x in mine}
        wanted = []
        for i, item in enumerate(live):
            k = match(item)
            name = f"{shown}[{_label(k)}]"
            if k in have:
                self.mapping(have[k], item, (*path, i), name)
                wanted.append(have[k])
                continue
            new = strip_defaults(self.kind, (*path, i), item)
            new = {} if new is DROP else new
            if has_redacted(new):
                self.out.secrets.append(name)
                continue
            wanted.append(new)
            self.record(name, None, new, "added")
        keys = [match(x) for x in wanted]
        for k, item in have.items():
            if k not in keys:
                self.record(f"{shown}[{_label(k)}]", item, None, "removed")
        if keys != [match(x) for x in mine]:
            while len(mine):
                mine.pop()
            mine.extend(wanted)


def overlay(doc: dict[str, Any], live: dict[str, Any], kind: str, skip: Iterable[str] = ()) -> Overlay:
    """Change ``doc`` (a round-trip document, edited in place) to hold what ``live`` runs; ``skip`` names
    generic paths left as the file has them (``spec.replicas`` under an autoscaler)."""
    walker = _Walker(kind, {*skip, "apiVersion", "kind"})
    walker.mapping(doc, live, (), "")
    return walker.out


def distance(doc: Any, live: dict[str, Any], kind: str, skip: Iterable[str] = ()) -> int:
    """How many fields of ``doc`` would change to match ``live`` (the document is not changed)."""
    out = overlay(copy.deepcopy(to_plain(doc)), live, kind, skip)
    return len(out.changes) + len(out.secrets)


def clean(doc: dict[str, Any], kind: str) -> list[FieldChange]:
    """Remove cluster-only fields (status, server metadata, revision and last-applied annotations) from ``doc``,
    in place."""
    removed: list[FieldChange] = []

    def walk(node: Any, path: Path) -> None:
        if isinstance(node, dict):
            for key in list(node):
                p = (*path, str(key))
                if is_cluster_only(generic(kind, p)):
                    removed.append(FieldChange(".".join(str(x) for x in p), to_plain(node[key]), None, "removed"))
                    del node[key]
                else:
                    walk(node[key], p)
            meta = node.get("metadata") if not path else None
            if isinstance(meta, dict) and "annotations" in meta and meta["annotations"] in _EMPTY:
                del meta["annotations"]
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, (*path, i))

    walk(doc, ())
    return removed


def differences(a: Any, b: Any, shown: str = "", where: str = "") -> list[FieldChange]:
    """Leaf fields where document ``b`` differs from ``a`` (lists matched as ``overlay`` matches them)."""
    out: list[FieldChange] = []
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            name = f"{shown}.{key}" if shown else str(key)
            if key not in b:
                out.append(FieldChange(name, a[key], None, "removed"))
            elif key not in a:
                out.append(FieldChange(name, None, b[key], "added"))
            else:
                out += differences(a[key], b[key], name, f"{where}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        match = _list_key(where, a, b)
        if match is None and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                out += differences(x, y, f"{shown}[{i}]", f"{where}.*")
            return out
        if match is None:
            return [FieldChange(shown, a, b, "changed")]
        mine = {match(x): x for x in a}
        theirs = {match(x): x for x in b}
        for k in [*mine, *(k for k in theirs if k not in mine)]:
            name = f"{shown}[{_label(k)}]"
            if k not in theirs:
                out.append(FieldChange(name, mine[k], None, "removed"))
            elif k not in mine:
                out.append(FieldChange(name, None, theirs[k], "added"))
            else:
                out += differences(mine[k], theirs[k], name, f"{where}.*")
        return out
    if not equal(where.lstrip("."), a, b):
        out.append(FieldChange(shown, a, b, "changed"))
    return out


def _secret_path(path: str, kind: str) -> bool:
    """A field whose value may be secret: a Secret's data, or an env entry or key with a secret-looking name."""
    if kind == "Secret" and path.startswith(("data", "stringData")):
        return True
    import re

    names = [*re.findall(r"\benv\[([^\]]*)\]", path), path.rsplit(".", 1)[-1]]
    return any(is_secret_name(n) for n in names if n)


def _masked(value: Any) -> Any:
    """``value`` with the values of secret-looking keys and of env entries with secret-looking names masked."""
    if isinstance(value, dict):
        secret_entry = isinstance(value.get("name"), str) and is_secret_name(value["name"])
        return {k: REDACTED if (secret_entry and k == "value") or (is_secret_name(str(k)) and not
                                                                   isinstance(v, dict | list)) else _masked(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def show(value: Any, path: str, kind: str, limit: int = 60) -> str:
    """``value`` for a plan line: short, and ``<redacted>`` where it may be secret."""
    if value is None:
        return "(none)"
    if _secret_path(path, kind):
        return REDACTED
    if isinstance(value, dict | list):
        import json

        text = json.dumps(_masked(value), separators=(",", ":"), default=str)
    else:
        text = str(value)
    text = redact_text(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"
