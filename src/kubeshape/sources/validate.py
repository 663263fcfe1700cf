"""Check decoded JSON against the shape the rules rely on, and say exactly where it differs.

A *shape* is plain data, so checking is a tight loop with no object construction:

* a type or a tuple of types (``str``, ``int``, ``(int, str)``, ``dict``, ``list``): ``isinstance``;
* a dict ``{"field": shape}``: an object whose listed fields, when present and not null, have that shape
  (other fields are not looked at: only what rules read is checked); ``"field!"`` may not be null;
* a one-element list ``[shape]``: a list whose every item has that shape;
* ``MapOf(shape)``: an object whose every value has that shape (labels, annotations);
  ``MapOf(shape, {"field": shape})``: the listed fields as in a dict shape, every other value ``shape`` (a label
  selector: ``matchLabels``/``matchExpressions``, or the plain label map rules also accept).

Null is accepted for a field (the API server writes ``null`` for absent values), never for a list item or a
map value. Only the type is reported, never the value: a mistyped field may hold a secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, cast

Shape = Any  # type | tuple[type, ...] | dict[str, Shape] | list[Shape] | MapOf


class MapOf:
    """An object with arbitrary keys whose values all have ``shape``, except ``fields`` (a dict shape)."""

    __slots__ = ("fields", "shape")

    def __init__(self, shape: Shape, fields: dict[str, Shape] | None = None) -> None:
        self.shape = shape
        self.fields = fields or {}


class ShapeMismatch(Exception):
    """Where (``path``, innermost last once complete) a value differs from its shape, and how."""

    def __init__(self, expected: Shape, value: Any) -> None:
        super().__init__()
        self.expected = expected
        self.value = value
        self.path: list[str | int] = []  # built innermost first while the check unwinds

    def where(self, prefix: str = "") -> str:
        """The JSON path, e.g. ``items[3].status``."""
        out = prefix
        for part in reversed(self.path):
            if isinstance(part, int):
                out += f"[{part}]"
            elif _PLAIN_KEY.fullmatch(part):
                out += f".{part}" if out else part
            else:
                out += f"[{_quote(part)}]"
        return out or "(top level)"

    def describe(self) -> str:
        """``expected an object, got a string``."""
        return f"expected {describe(self.expected)}, got {describe(type(self.value))}"


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _quote(key: str) -> str:
    """A key as a JSON string whose every unprintable character is escaped: a key holding a line break
    (``"a\\nb"``, ``"\\u2028"``) must not split the one-line error message."""
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in json.dumps(key, ensure_ascii=False))


_NAMES: dict[type, str] = {dict: "an object", list: "a list", str: "a string", int: "an integer",
                           float: "a number", bool: "a boolean", type(None): "null"}


def describe(shape: Shape) -> str:
    """Human name of a shape or a type (``an object``, ``an integer or a string``)."""
    if isinstance(shape, tuple):
        return " or ".join(describe(s) for s in shape)
    if isinstance(shape, dict | MapOf):
        return "an object"
    if isinstance(shape, list):
        return "a list"
    if isinstance(shape, type):
        if shape is int:
            return "an integer"
        return _NAMES.get(shape, shape.__name__)
    return str(shape)


def check(value: Any, shape: Shape) -> None:
    """Raise ShapeMismatch unless ``value`` has ``shape``.

    Types are compared exactly (``True`` is not an integer), as decoded JSON holds no subclasses. The check
    runs as Python compiled from the shape (no per-node interpretation); only when it fails is the value
    walked again, slowly, to say where.
    """
    if not compiled(shape)(value):
        _explain(value, shape)


def compiled(shape: Shape) -> Callable[[Any], bool]:
    """The fast test of ``shape``: True when a value has it (then ``check`` would not raise)."""
    fast = _COMPILED.get(id(shape))
    if fast is None:
        fast = _COMPILED[id(shape)] = _compile(shape)
        _KEEP.append(shape)  # ids stay valid while the shape lives
    return fast


def _explain(value: Any, shape: Shape) -> None:
    """The slow walk: raise ShapeMismatch with the path of the first difference."""
    if isinstance(shape, dict):
        if type(value) is not dict:
            raise ShapeMismatch(shape, value)
        items: Any = ((k.rstrip("!"), value.get(k.rstrip("!"), {} if k.endswith("!") else None), sub,
                       not k.endswith("!")) for k, sub in shape.items())
    elif isinstance(shape, list):
        if type(value) is not list:
            raise ShapeMismatch(shape, value)
        items = ((i, v, shape[0], False) for i, v in enumerate(value))
    elif isinstance(shape, MapOf):
        if type(value) is not dict:
            raise ShapeMismatch(shape, value)
        if shape.fields:
            _explain(value, shape.fields)
        named = {k.rstrip("!") for k in shape.fields}
        items = ((k, v, shape.shape, False) for k, v in value.items() if k not in named)
    else:
        if type(value) not in (shape if isinstance(shape, tuple) else (shape,)):
            raise ShapeMismatch(shape, value)
        return
    for key, v, sub, nullable in items:
        if v is None and nullable:
            continue
        try:
            _explain(v, sub)
        except ShapeMismatch as err:
            err.path.append(key)
            raise


_COMPILED: dict[int, Callable[[Any], bool]] = {}
_KEEP: list[Shape] = []


def _compile(shape: Shape) -> Callable[[Any], bool]:
    lines = ["def ok(x0):"]
    counter = iter(range(1, 1_000_000))
    consts: dict[str, Any] = {}
    _emit(shape, "x0", False, lines, "    ", counter, consts)
    lines.append("    return True")
    namespace: dict[str, Any] = dict(consts)
    exec("\n".join(lines), namespace)  # code built from our own shapes, never from input
    return cast(Callable[[Any], bool], namespace["ok"])


def _emit(shape: Shape, var: str, optional: bool, out: list[str], ind: str, counter: Any,
          consts: dict[str, Any]) -> None:
    """Append statements that ``return False`` unless ``var`` has ``shape`` (or is None when ``optional``).

    (Measured on CPython 3.11: a ``.get`` and an ``is`` test per field, and plain loops over lists, beat any
    C-level grouping such as ``set(map(type, ...))``.)
    """
    def const(value: Any) -> str:
        name = f"C{len(consts)}"
        consts[name] = value
        return name

    if not isinstance(shape, dict | list | MapOf):
        if isinstance(shape, tuple):
            out.append(f"{ind}if type({var}) not in {const(frozenset(shape))}: return False")
        else:
            out.append(f"{ind}if type({var}) is not {const(shape)}: return False")
        return
    if optional:
        out.append(f"{ind}if {var} is not None:")
        ind += "    "
    out.append(f"{ind}if type({var}) is not {'list' if isinstance(shape, list) else 'dict'}: return False")
    if isinstance(shape, list | MapOf):
        sub = shape[0] if isinstance(shape, list) else shape.shape
        items = f"{var}.values()" if isinstance(shape, MapOf) else var
        e = f"e{next(counter)}"
        if isinstance(shape, MapOf) and shape.fields:
            k = f"k{next(counter)}"
            out.append(f"{ind}for {k}, {e} in {var}.items():")
            out.append(f"{ind}    if {k} in {const(frozenset(f.rstrip('!') for f in shape.fields))}: continue")
            _emit(sub, e, False, out, ind + "    ", counter, consts)
            _emit(shape.fields, var, False, out, ind, counter, consts)
            return
        out.append(f"{ind}for {e} in {items}:")
        _emit(sub, e, False, out, ind + "    ", counter, consts)
        return
    for key, sub in shape.items():
        v = f"v{next(counter)}"
        if key.endswith("!"):  # absent reads as {}: passes an object shape; null does not
            out.append(f"{ind}{v} = {var}.get({key[:-1]!r}, {const({})})")
            _emit(sub, v, False, out, ind, counter, consts)
            continue
        out.append(f"{ind}{v} = {var}.get({key!r})")
        if isinstance(sub, dict | list | MapOf):
            _emit(sub, v, True, out, ind, counter, consts)
        elif isinstance(sub, tuple):
            out.append(f"{ind}if {v} is not None and type({v}) not in {const(frozenset(sub))}: return False")
        else:
            out.append(f"{ind}if {v} is not None and type({v}) is not {const(sub)}: return False")
