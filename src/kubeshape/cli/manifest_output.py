"""What the commands that print Kubernetes objects share: ``--namespace-selector`` labels, YAML and JSON output."""

from __future__ import annotations

import re
from typing import Any

import orjson
import yaml

from kubeshape.errors import InputError

_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}")
_LABEL_VALUE = re.compile(rf"({_LABEL_NAME})?")


def match_labels(values: list[str]) -> dict[str, str]:
    """``--namespace-selector KEY=VALUE`` values as matchLabels; a malformed one is an InputError."""
    labels: dict[str, str] = {}
    for item in values:
        key, eq, value = item.partition("=")
        if not eq or not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
            raise InputError(f"--namespace-selector {item!r}: give KEY=VALUE with a label key and value, "
                             "e.g. team=web")
        labels[key] = value
    return labels


class _Dumper(yaml.SafeDumper):
    """No anchors; multi-line strings (and, when asked, long ones) as literal blocks."""

    block_over: int | None = None

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: _Dumper, data: str) -> yaml.Node:
    block = "\n" in data or (dumper.block_over is not None and len(data) > dumper.block_over)
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if block else None)


_Dumper.add_representer(str, _str)


class _LongLines(_Dumper):
    block_over = 80  # CEL expressions: literal blocks need no quoting and are never folded


def render_yaml(objects: list[dict[str, Any]], header: str, *, long_strings_as_blocks: bool = False) -> str:
    """``objects`` as one multi-document YAML stream after a comment line; lines are never wrapped."""
    dumper = _LongLines if long_strings_as_blocks else _Dumper
    return f"# {header}\n" + yaml.dump_all(objects, Dumper=dumper, sort_keys=False, allow_unicode=True,
                                           width=10_000)


def render_json_list(objects: list[dict[str, Any]]) -> str:
    """``objects`` as a ``v1 List`` (what ``kubectl apply -f -`` takes), indented."""
    return orjson.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, option=orjson.OPT_INDENT_2).decode()
