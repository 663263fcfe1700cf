"""A fix as prose and code blocks: Markdown fences kept, bare diffs, shell commands and YAML detected."""

from __future__ import annotations

import re
import textwrap
from typing import NamedTuple


class FixBlock(NamedTuple):
    """A piece of a fix: prose, or code with its lexer ("" when unknown)."""

    code: bool
    lang: str
    text: str


_COMMANDS = {"kubectl", "docker", "podman", "nerdctl", "crictl", "ctr", "helm", "flux", "argocd", "kustomize",
             "git", "curl", "wget", "crane", "skopeo", "regctl", "oras", "sudo", "export", "kubeshape"}
_YAML_LINE = re.compile(r"""^\s*(?:-\s*$|-\s+|[\w./"'-]+:(?:\s|$)|#|\s)""")
_YAML_KEY = re.compile(r"""^\s*(?:-\s+)?[\w./"'-]+:(?:\s|$)""")
_DIFF_HEADER = ("--- ", "+++ ", "@@", "diff --git ")


def _lexer(text: str) -> str | None:
    """``diff``, ``bash`` or ``yaml`` when ``text`` is code, else None."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return None
    if any(ln.startswith(_DIFF_HEADER) for ln in lines) or (
            all(ln[0] in "+- " for ln in lines) and any(ln.startswith("+") for ln in lines)):
        return "diff"
    commands = [ln.strip().removeprefix("$ ") for ln in lines if not ln.lstrip().startswith("#")]
    if commands and commands[0].split()[0] in _COMMANDS:
        return "bash"
    if (len(lines) > 1 and all(_YAML_LINE.match(ln) for ln in lines)
            and any(_YAML_KEY.match(ln) for ln in lines)):
        return "yaml"
    return None


def _continues(lang: str, para: str) -> bool:
    """Whether a blank line inside a diff or indented YAML left ``para`` detached from its block."""
    lines = [ln for ln in para.splitlines() if ln.strip()]
    if lang == "diff":
        return all(ln[0] in "+- @\\" for ln in lines)
    return lang == "yaml" and lines[0][0].isspace()


def _split_plain(text: str) -> list[FixBlock]:
    """Classify blank-line separated paragraphs; a prose lead-in line may introduce code."""
    out: list[FixBlock] = []
    for para in re.split(r"\n{2,}", text.strip("\n")):
        if not para.strip():
            continue
        prev = out[-1] if out else None
        if prev and prev.code and _continues(prev.lang, para):
            out[-1] = prev._replace(text=f"{prev.text}\n\n{para}")
            continue
        first, _, rest = para.partition("\n")
        lang = _lexer(para)
        if lang is None and rest and (rest_lang := _lexer(rest)) is not None:
            out.append(FixBlock(False, "", first.strip()))
            para, lang = rest, rest_lang
        if lang is None:
            out.append(FixBlock(False, "", para.strip()))
        elif out and out[-1].code and out[-1].lang == lang:
            out[-1] = out[-1]._replace(text=f"{out[-1].text}\n\n{para}")
        else:
            out.append(FixBlock(True, lang, para))
    return [b._replace(text=textwrap.dedent(b.text)) if b.code else b for b in out]


_FENCE = re.compile(r"^(`{3,}|~{3,})[ \t]*([\w+-]*)[^\n]*\n(.*?)^\1[ \t]*$\n?", re.M | re.S)


def split_fix(fix: str) -> list[FixBlock]:
    """A fix as prose and code blocks: Markdown fences are kept, bare diffs/commands/YAML detected."""
    out: list[FixBlock] = []
    pos = 0
    for m in _FENCE.finditer(fix):
        out += _split_plain(fix[pos:m.start()])
        body = m.group(3).rstrip("\n")
        out.append(FixBlock(True, m.group(2) or _lexer(body) or "", body))
        pos = m.end()
    return out + _split_plain(fix[pos:])
