"""A manifest file as a sequence of documents whose text can be moved, dropped or rewritten one by one.

The text is cut at document markers (``---``, ``...`` at the start of a line), so a document that moves keeps
its comments, quotes and layout byte for byte. A document whose values change is rewritten with ruamel.yaml's
round-trip dumper in the file's own indentation; every assembled text is read back and compared with what it
must hold before anything is written.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from kubeshape.errors import InputError
from kubeshape.release import yamltext as yt
from kubeshape.sources.yamlio import YamlSyntaxError, load_yaml_text

_MARKER = re.compile(r"^(?:---|\.\.\.)(?:[ \t]|$)")


@dataclass(slots=True)
class Doc:
    """One document of a source file."""

    file: str  # path relative to the repository root
    index: int  # position among the file's documents
    unit: int  # its piece of text in ``SourceFile.units``
    line: int  # 1-based line of its first key
    data: Any  # plain data as kubectl reads it


@dataclass(slots=True)
class SourceFile:
    """A YAML file cut into pieces of text: each document's own piece, and pieces that hold only comments."""

    rel: str
    path: Path
    text: str
    units: list[str] = field(default_factory=list)
    docs: list[Doc] = field(default_factory=list)

    @property
    def newline(self) -> str:
        return yt.newline_of(self.text)


def read_source(path: Path, rel: str) -> SourceFile:
    """Read and cut ``path``; InputError when it is not UTF-8 YAML."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise InputError(f"{rel}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise InputError(f"{rel}: not UTF-8 text -- convert it, then run again") from None
    return split(text, rel, path)


def split(text: str, rel: str, path: Path | None = None) -> SourceFile:
    """Cut ``text`` into pieces at document markers and attach each document to the piece that holds it."""
    src = SourceFile(rel=rel, path=path or Path(rel), text=text.removeprefix("\ufeff"))
    lines = src.text.splitlines(keepends=True)
    starts = [0] + [i for i, ln in enumerate(lines) if i > 0 and _MARKER.match(ln)]
    bounds = list(zip(starts, [*starts[1:], len(lines)], strict=True))
    src.units = ["".join(lines[a:b]) for a, b in bounds]
    try:
        parsed = load_yaml_text(src.text, rel, with_lines=False)
    except YamlSyntaxError as exc:
        raise InputError(str(exc)) from None
    for n, d in enumerate(d for d in parsed if d.data is not None):
        unit = next(i for i, (a, b) in enumerate(bounds) if a < d.line <= b)
        src.docs.append(Doc(file=rel, index=n, unit=unit, line=d.line, data=d.data))
    if len({d.unit for d in src.docs}) != len(src.docs):  # two documents in one piece: not cut where YAML is
        raise InputError(f"{rel}: its documents could not be told apart -- put each after a line '---'")
    return src


def _owner(src: SourceFile, unit: int) -> int | None:
    """The unit whose document a piece without one travels with: the next document's, else the previous one's."""
    owned = sorted(d.unit for d in src.docs)
    after = [u for u in owned if u >= unit]
    if after:
        return after[0]
    before = [u for u in owned if u < unit]
    return before[-1] if before else None


def assemble(src: SourceFile, texts: dict[int, str]) -> str:
    """The file holding only the documents ``texts`` names (document index → its text, in file order)."""
    keep_units = {src.docs[i].unit: t for i, t in texts.items()}
    doc_units = {d.unit for d in src.docs}
    pieces: list[str] = []
    for u, piece in enumerate(src.units):
        if u in keep_units:
            pieces.append(keep_units[u])
        elif u not in doc_units and _owner(src, u) in keep_units:
            pieces.append(piece)
    nl = src.newline
    out = "".join(p if p.endswith(("\n", "\r")) else p + nl for p in pieces)
    return _strip_leading_marker(out)


def _strip_leading_marker(text: str) -> str:
    """A file that now starts with a bare ``---`` line (its first document dropped) loses that line."""
    first, _, rest = text.partition("\n")
    if first.rstrip("\r") == "---":
        return rest
    return text


def unit_text(src: SourceFile, index: int) -> str:
    return src.units[src.docs[index].unit]


# -- round-trip edits ----------------------------------------------------------------------------------------


def _yaml(mapping: int, sequence: int, offset: int) -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=mapping, sequence=sequence, offset=offset)
    return y


def load_roundtrip(text: str, where: str) -> Any:
    """The one document of ``text`` as ruamel round-trip nodes."""
    docs = yt.load_roundtrip(text, where)
    docs = [d for d in docs if d is not None]
    if len(docs) != 1:
        raise InputError(f"{where}: expected one document")
    return docs[0]


def indentation(text: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) indents as ruamel names them, the way ``text`` writes them."""
    lines = text.splitlines()
    deltas: Counter[int] = Counter()
    for i, line in enumerate(lines[:-1]):
        stripped = line.strip()
        if not stripped.endswith(":") or stripped.startswith("#") or stripped.startswith("- "):
            continue
        nxt = next((ln for ln in lines[i + 1:] if ln.strip() and not ln.strip().startswith("#")), "")
        if nxt.lstrip().startswith("- ") or not nxt:
            continue
        delta = (len(nxt) - len(nxt.lstrip())) - (len(line) - len(line.lstrip()))
        if delta > 0:
            deltas[delta] += 1
    mapping = deltas.most_common(1)[0][0] if deltas else 2
    try:
        docs = yt.load_roundtrip(text, "")
    except InputError:
        return mapping, mapping + 2, mapping
    dash, item = yt.sequence_style([d for d in docs if d is not None], text.splitlines(keepends=True))
    return mapping, dash + item, dash


def dump_roundtrip(doc: Any, like: str) -> str:
    """``doc`` as text indented like ``like`` (the document's original text), its leading marker kept."""
    first = like.splitlines(keepends=True)[0] if like else ""
    marker = first if first.startswith("---") and _MARKER.match(first) else ""
    mapping, sequence, offset = indentation(like)
    out = io.StringIO()
    try:
        _yaml(mapping, max(sequence, offset + 2), offset).dump(doc, out)
    except YAMLError as exc:
        raise InputError(f"cannot write the document back: {exc}") from None
    text = out.getvalue()
    nl = yt.newline_of(like)
    if nl != "\n":
        text = text.replace("\n", nl)
    return marker + text


def plain(text: str) -> list[Any]:
    """The documents of ``text`` as plain values (None documents dropped)."""
    return [d for d in yt.load_plain(text) if d is not None]


def expected_docs(texts: list[str]) -> list[Any] | None:
    """The plain documents the pieces ``texts`` hold, in order; None when one cannot be read to compare."""
    out: list[Any] = []
    try:
        for t in texts:
            out += plain(t)
    except YAMLError:
        return None
    return out


def check_text(text: str, expected: list[Any], where: str) -> None:
    """InputError unless ``text`` reads back as exactly ``expected``."""
    try:
        got = plain(text)
    except YAMLError as exc:
        raise InputError(f"{where}: the new text does not parse ({exc}); nothing was written") from None
    if got != expected:
        raise InputError(f"{where}: the new text does not read back as intended; nothing was written -- "
                         "move the documents by hand")
