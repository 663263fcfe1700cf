"""Fast YAML reading with line numbers (libyaml when available)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubeshape.inventory import lookup_line

try:
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader


class YamlSyntaxError(Exception):
    """A YAML file that cannot be parsed; ``str()`` is ``file:line:col: message``."""

    def __init__(self, file: str, line: int, column: int, problem: str) -> None:
        self.file, self.line, self.column, self.problem = file, line, column, problem
        super().__init__(f"{file}:{line}:{column}: invalid YAML: {problem}")


@dataclass(slots=True)
class Document:
    """One YAML document with the 1-based line of its start and of every mapping key."""

    data: Any
    line: int
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, path: str) -> int:
        """Line of ``path`` (``spec.template.spec.containers[0].image``) or the document start."""
        return lookup_line(self.lines, path, self.line)




def _index(node: yaml.Node, prefix: str, out: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                path = f"{prefix}.{key.value}" if prefix else str(key.value)
                out[path] = key.start_mark.line + 1
                _index(value, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = f"{prefix}[{i}]"
            out[path] = item.start_mark.line + 1
            _index(item, path, out)


def load_yaml_text(text: str, file: str, with_lines: bool = True) -> list[Document]:
    """Parse every document of ``text``; raise YamlSyntaxError with the file and line."""
    loader = _Loader(text)
    docs: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            lines: dict[str, int] = {}
            if with_lines:
                _index(node, "", lines)
            data = loader.construct_document(node)
            docs.append(Document(data=data, line=node.start_mark.line + 1, lines=lines))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        col = mark.column + 1 if mark else 1
        raise YamlSyntaxError(file, line, col, str(exc.problem or exc.context or "syntax error")) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(file, 1, 1, str(exc).splitlines()[0]) from None
    finally:
        loader.dispose()
    return docs


def load_yaml_file(path: Path, display: str | None = None) -> list[Document]:
    """Read and parse a YAML file; undecodable bytes are a YamlSyntaxError too."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise YamlSyntaxError(name, 1, 1, f"not UTF-8 text ({exc.reason})") from None
    return load_yaml_text(text, name)
