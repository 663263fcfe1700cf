"""Flux Kustomizations and Argo CD Applications as render roots, and Flux's ``postBuild`` substitution."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from kubeshape.inventory import api_group

FLUX_KUSTOMIZE_GROUP = "kustomize.toolkit.fluxcd.io"
ARGO_GROUP = "argoproj.io"
SUBSTITUTE_OFF = "kustomize.toolkit.fluxcd.io/substitute"

# Flux substitutes only the braced form (``$var`` is left alone, ``$${var}`` escapes): ${VAR}, ${VAR:=default},
# ${VAR:-default}, ${VAR=default}, ${VAR-default}.
_EXPR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[=-])(.*))?", re.S)
_UNRESOLVED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}")
_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")


def mapping(value: Any) -> dict[str, Any]:
    """``value`` when it is a mapping, else an empty one (user input may hold anything)."""
    return value if isinstance(value, dict) else {}


def is_flux_kustomization(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "Kustomization" and api_group(obj.get("apiVersion")) == FLUX_KUSTOMIZE_GROUP


def is_argo_application(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "Application" and api_group(obj.get("apiVersion")) == ARGO_GROUP


@dataclass(slots=True)
class Variables:
    """Substitution variables of one Flux Kustomization and the sources that could not be read."""

    values: dict[str, str] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)  # e.g. "Secret cluster-secrets (encrypted with SOPS)"


def variables(spec: Mapping[str, Any], namespace: str,
              sources: Mapping[tuple[str, str], list[dict[str, Any]]]) -> Variables:
    """The variables of a Flux Kustomization's ``spec.postBuild``.

    ``sources`` maps (kind, name) to the ConfigMaps/Secrets of that name found in the repository. As Flux does,
    ``substituteFrom`` entries are read in order (later ones win) and inline ``substitute`` wins over all.
    """
    post = mapping(spec.get("postBuild"))
    out = Variables()
    for ref in post.get("substituteFrom") or []:
        if not isinstance(ref, dict):
            continue
        kind, name = str(ref.get("kind") or ""), str(ref.get("name") or "")
        candidates = sources.get((kind, name), [])
        chosen = next((c for c in candidates if (c.get("metadata") or {}).get("namespace") in (namespace, None)),
                      candidates[0] if candidates else None)
        if chosen is None:
            if not ref.get("optional"):
                out.unreadable.append(f"{kind} {name} (not in the repository)")
            continue
        data, why = _data_of(chosen, kind)
        if why:
            out.unreadable.append(f"{kind} {name} ({why})")
        out.values.update(data)
    for k, v in mapping(post.get("substitute")).items():
        out.values[str(k)] = "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
    return out


def _data_of(obj: Mapping[str, Any], kind: str) -> tuple[dict[str, str], str]:
    if kind == "Secret":
        if "sops" in obj:
            return {}, "encrypted with SOPS"
        out: dict[str, str] = {}
        for k, v in mapping(obj.get("data")).items():
            try:
                out[str(k)] = base64.b64decode(str(v), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return {}, "data is not readable"
        out.update({str(k): str(v) for k, v in mapping(obj.get("stringData")).items()})
        return out, ""
    return {str(k): str(v) for k, v in mapping(obj.get("data")).items()}, ""


def substitute(obj: Any, values: Mapping[str, str]) -> Any:
    """``obj`` with ``${VAR}`` references replaced in every string, as Flux's post-build substitution does.

    A reference to a variable that is not defined and has no default is kept as written (it may come from a
    source we cannot see); :func:`unresolved` finds it afterwards. Objects labelled or annotated
    ``kustomize.toolkit.fluxcd.io/substitute: disabled`` are returned unchanged.
    """
    if not _mentions_variable(obj):
        return obj
    if isinstance(obj, dict):
        meta = mapping(obj.get("metadata"))
        for section in ("labels", "annotations"):
            marks = meta.get(section)
            if isinstance(marks, dict) and marks.get(SUBSTITUTE_OFF) == "disabled":
                return obj
    return _walk(obj, values)


def _walk(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return _replace(node, values) if "${" in node else node
    if isinstance(node, dict):
        return {(_replace(k, values) if isinstance(k, str) and "${" in k else k): _walk(v, values)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, values) for v in node]
    return node


def _replace(text: str, values: Mapping[str, str]) -> Any:
    result = _expand(text, values)
    # Flux substitutes text and parses it again: a value that was only a variable becomes a number/bool.
    if result != text and text.startswith("${") and _closing(text, 2) == len(text) - 1:
        if _INT.fullmatch(result):
            return int(result)
        if result in ("true", "false"):
            return result == "true"
    return result


def _expand(text: str, values: Mapping[str, str]) -> str:
    """Expand ``${VAR}`` forms, defaults possibly nested (``${HOST:=${APP}.lan}``); ``$${`` is a literal ``${``."""
    out: list[str] = []
    i = 0
    while (j := text.find("$", i)) >= 0:
        out.append(text[i:j])
        if text.startswith("$${", j):
            out.append("${")
            i = j + 3
            continue
        if not text.startswith("${", j):
            out.append("$")
            i = j + 1
            continue
        end = _closing(text, j + 2)
        if end < 0:
            i = j
            break
        m = _EXPR.fullmatch(text, j + 2, end)
        value = values.get(m.group(1)) if m else None
        colon = bool(m and (m.group(2) or "").startswith(":"))  # `:=`/`:-` also replace an empty value
        if m is None:
            out.append(text[j:end + 1])
        elif value is not None and (value or not colon):
            out.append(value)
        elif m.group(2) is not None:
            out.append(_expand(m.group(3), values))
        else:
            out.append(text[j:end + 1])  # undefined, no default: kept, and reported as unresolved
        i = end + 1
    out.append(text[i:])
    return "".join(out)


def _closing(text: str, start: int) -> int:
    """Index of the ``}`` closing a ``${`` whose body starts at ``start`` (nested ``${…}`` skipped), or -1."""
    depth, k = 1, start
    while k < len(text):
        if text.startswith("${", k):
            depth, k = depth + 1, k + 2
            continue
        if text[k] == "}":
            depth -= 1
            if depth == 0:
                return k
        k += 1
    return -1


def _mentions_variable(obj: Any) -> bool:
    """Cheap test (one C-speed serialisation) before any walk: most objects hold no ``${``."""
    try:
        return b"${" in orjson.dumps(obj)
    except (TypeError, orjson.JSONEncodeError):  # keys that are not strings: look the slow way
        return True


def unresolved(obj: Any) -> tuple[str, ...]:
    """Variables (``${VAR}``) left in any string of ``obj``."""
    if not _mentions_variable(obj):
        return ()
    found: dict[str, None] = {}
    stack = [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "${" in node:
                for m in _UNRESOLVED.finditer(node):
                    found[m.group(1)] = None
        elif isinstance(node, dict):
            stack.extend(node.values())
            stack.extend(k for k in node if isinstance(k, str))
        elif isinstance(node, list):
            stack.extend(node)
    return tuple(sorted(found))
