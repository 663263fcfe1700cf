"""Secret values out of the diffs a plan prints: a Secret's data, and env values with secret-looking names."""

from __future__ import annotations

import difflib
from typing import Any

from kubeshape.errors import InputError
from kubeshape.redact import REDACTED, is_secret_name, redact_text
from kubeshape.release import yamltext as yt


def _positions(node: Any, out: list[tuple[int, int]], kind: str | None) -> None:
    """(line, column) of every secret value under ``node`` (ruamel round-trip nodes)."""
    if isinstance(node, dict):
        lc: Any = node
        if kind == "Secret":
            for section in ("data", "stringData"):
                values = node.get(section)
                if isinstance(values, dict):
                    vlc: Any = values
                    out.extend(vlc.lc.value(k) for k in values)
        name = node.get("name")
        if isinstance(name, str) and is_secret_name(name) and "value" in node:
            out.append(lc.lc.value("value"))
        for key, value in node.items():
            if isinstance(key, str) and is_secret_name(key) and isinstance(value, str) and key != "secretName":
                out.append(lc.lc.value(key))
            _positions(value, out, None)
    elif isinstance(node, list):
        for item in node:
            _positions(item, out, None)


def mask(text: str) -> str:
    """``text`` with secret values replaced by ``<redacted>`` (the rest of their line; block scalars whole)."""
    try:
        docs = yt.load_roundtrip(text, "")
    except InputError:
        return redact_text(text)
    found: list[tuple[int, int]] = []
    for doc in docs:
        if isinstance(doc, dict):
            _positions(doc, found, str(doc.get("kind") or ""))
    lines = text.splitlines(keepends=True)
    drop: set[int] = set()
    for line, col in found:
        if line >= len(lines):
            continue
        row = lines[line]
        ending = row[len(row.rstrip("\r\n")):]
        block = row[col:].lstrip().startswith(("|", ">"))
        lines[line] = row[:col] + REDACTED + ending
        if block:
            indent = len(row) - len(row.lstrip(" "))
            n = line + 1
            while n < len(lines) and (not lines[n].strip() or len(lines[n]) - len(lines[n].lstrip(" ")) > indent):
                drop.add(n)
                n += 1
    return redact_text("".join(ln for i, ln in enumerate(lines) if i not in drop))


def diff(before: str, after: str, old_name: str, new_name: str) -> list[str]:
    """A unified diff (one line of context) of the two texts, secret values masked on both sides."""
    return [ln.rstrip("\r\n") for ln in difflib.unified_diff(
        mask(before).splitlines(keepends=True), mask(after).splitlines(keepends=True),
        f"a/{old_name}", f"b/{new_name}", n=1)]
