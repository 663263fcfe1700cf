"""GitHub-flavoured Markdown report, structured like the terminal one (for PR comments and files)."""

from __future__ import annotations

import re

from kubeshape.findings import Finding, Severity
from kubeshape.redact import redact_report
from kubeshape.report.model import Report
from kubeshape.report.text import (
    MAX_EVIDENCE,
    location,
    problems,
    rfc3339,
    sources_line,
    split_fix,
    summary_line,
)

BADGE = {Severity.ERROR: "🔴 ERROR", Severity.WARNING: "🟠 WARNING", Severity.INFO: "🔵 INFO"}
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_SPECIAL = re.compile(r"([\\*\[\]<>&~]|^#|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))", re.M)


def _inline(text: str) -> str:
    """Escape Markdown/HTML in prose; author-written `code spans` are kept as they are."""
    out, pos = [], 0
    for m in _CODE_SPAN.finditer(text):
        out += [_SPECIAL.sub(r"\\\1", text[pos:m.start()]), m.group(0)]
        pos = m.end()
    out.append(_SPECIAL.sub(r"\\\1", text[pos:]))
    return "".join(out)


def _cell(text: str) -> str:
    """A table cell: escaped, on one line, with every ``|`` escaped (inside code spans too, as GFM wants)."""
    return _inline(" ".join(text.split())).replace("|", "\\|")


def _fence(code: str, lang: str) -> str:
    ticks = "`" * max([3, *(len(run) + 1 for run in re.findall(r"`+", code))])
    return f"{ticks}{lang}\n{code}\n{ticks}"


def _bullets(items: list[str]) -> list[str]:
    return [f"- {_inline(item)}" for item in items]


def _finding(f: Finding) -> list[str]:
    obj = f" · `{f.object}`" if f.object else ""
    out = [f"### {BADGE[f.severity]} · {f.rule}{obj}", "", f"*{_inline(location(f))}*", "",
           _inline(f.message)]
    if f.evidence:
        out += ["", "**Evidence**", "", *_bullets(f.evidence[:MAX_EVIDENCE])]
        rest = f.evidence[MAX_EVIDENCE:]
        if rest:
            out += ["", f"<details><summary>… and {len(rest)} more</summary>", "", *_bullets(rest), "",
                    "</details>"]
    if f.root_cause:
        out += ["", f"**Root cause:** {_inline(f.root_cause)}"]
    if f.fix:
        out += ["", "**Fix:**"]
        for block in split_fix(f.fix):
            out += ["", _fence(block.text, block.lang) if block.code else _inline(block.text)]
    return out


def render_markdown(report: Report) -> str:
    """The report as GitHub-flavoured Markdown: a section per problem, fenced fixes, a metrics table."""
    report = redact_report(report)  # the final pass: nothing a rule copied can leak
    out = [f"# kubeshape {report.command}: {_inline(sources_line(report))}", ""]
    stamp = " · ".join(s for s in (report.tool_version and f"kubeshape {report.tool_version}",
                                   rfc3339(report.generated_at)) if s)
    if stamp:
        out += [f"*{stamp}*", ""]
    if report.findings:
        out += [f"**{summary_line(report)}**"]
    else:
        partial = f"; {len(report.blind_spots)} item(s) not analysed, listed below" if report.blind_spots else ""
        out += [f"**✅ No problems found{' in what was analysed' if partial else ''}** "
                f"({report.suppressed} suppressed{partial})"]
    for p in problems(report):
        out += ["", f"## Problem {p.family}: {_inline(p.title)} — {BADGE[p.severity]}"]
        for f in p.findings:
            out += ["", *_finding(f)]
    if report.metrics:
        out += ["", "## Now vs target", "", "| Metric | Now | Target | OK | Detail |",
                "|---|--:|---|:-:|---|"]
        for m in report.metrics:
            ok = "–" if m.ok is None else ("✅" if m.ok else "❌")
            out.append(f"| {_cell(m.title)} | {_cell(m.display())} | {_cell(m.target)} | {ok} | "
                       f"{_cell(m.detail)} |")
    for heading, items in (("Blind spots (not checked in this run)", report.blind_spots),
                           ("Notes", report.notes)):
        if items:
            out += ["", f"## {heading}", "", *_bullets(items)]
    return "\n".join(out) + "\n"
