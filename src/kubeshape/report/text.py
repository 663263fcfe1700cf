"""Terminal report that reads like the seed RCA; also hosts the helpers the other renderers share."""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, datetime
from typing import NamedTuple

from rich import box
from rich.console import Console, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from kubeshape.findings import FAMILIES, FAMILY_TITLES, Finding, Severity
from kubeshape.redact import redact_report
from kubeshape.report.model import Metric, Report

MAX_FIX_LINES = 24
MAX_EVIDENCE = 10
SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "bold yellow", Severity.INFO: "bold cyan"}


class Problem(NamedTuple):
    """The findings of one family: one "Problem N" section."""

    family: int
    title: str
    severity: Severity
    findings: list[Finding]


class FixBlock(NamedTuple):
    """A piece of a fix: prose, or code with its lexer ("" when unknown)."""

    code: bool
    lang: str
    text: str


def problems(report: Report) -> list[Problem]:
    """Findings grouped by family, keeping the order in which families first appear."""
    groups: dict[int, list[Finding]] = {}
    for f in report.findings:
        groups.setdefault(f.family, []).append(f)
    return [Problem(fam, FAMILY_TITLES.get(fam, FAMILIES.get(fam, f"Family {fam}")),
                    max(f.severity for f in fs), fs) for fam, fs in groups.items()]


def counts(report: Report) -> dict[str, int]:
    """Finding totals per severity, plus the suppressed count."""
    out = {"total": len(report.findings)}
    for sev in (Severity.ERROR, Severity.WARNING, Severity.INFO):
        out[sev.label] = sum(1 for f in report.findings if f.severity is sev)
    out["suppressed"] = report.suppressed
    return out


def summary_line(report: Report) -> str:
    """``4 findings (2 errors, 1 warning, 1 info), 3 suppressed``."""
    c = counts(report)

    def plural(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    return (f"{plural(c['total'], 'finding')} ({plural(c['error'], 'error')}, "
            f"{plural(c['warning'], 'warning')}, {c['info']} info), {c['suppressed']} suppressed")


def rfc3339(when: datetime | None) -> str | None:
    """UTC RFC 3339 timestamp (naive datetimes are taken as UTC)."""
    if when is None:
        return None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def sources_line(report: Report) -> str:
    """``repo ./deploy · cluster homelab`` (or ``no sources``)."""
    return " · ".join(f"{k} {v}" if v else k for k, v in report.sources.items()) or "no sources"


def location(f: Finding) -> str:
    """``file:line``, ``file``, or the source a live-only finding came from."""
    if f.file:
        return f"{f.file}:{f.line}" if f.line else f.file
    return f"from {f.source}"


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


def _indent(renderable: RenderableType, n: int = 2) -> Padding:
    return Padding(renderable, (0, 0, 0, n), expand=False)


def _bullets(items: list[str], style: str = "") -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for item in items:
        grid.add_row(Text("•", style="dim"), Text(item, style=style))
    return grid


def _fix(fix: str, verbose: bool) -> list[RenderableType]:
    out: list[RenderableType] = []
    for block in split_fix(fix):
        if not block.code:
            out.append(Text(block.text))
            continue
        text = block.text
        lines = text.splitlines()
        if not verbose and len(lines) > MAX_FIX_LINES:
            text = "\n".join(lines[:MAX_FIX_LINES])
            more = f"… {len(lines) - MAX_FIX_LINES} more lines (--verbose or -o markdown shows the whole fix)"
        else:
            more = ""
        syntax = Syntax(text, block.lang or "text", theme="ansi_dark", word_wrap=True,
                        background_color="default")
        out.append(Panel(syntax, box=box.HORIZONTALS, title=block.lang or None, title_align="left",
                         border_style="dim", expand=False))
        if more:
            out.append(Text(more, style="dim"))
    return out


def _finding(console: Console, f: Finding, verbose: bool) -> None:
    label = f.severity.label.upper()
    console.print(Text.assemble((f"{label:<7}", SEVERITY_STYLE[f.severity]), " ", (f.rule, "bold"), "  ",
                                str(f.object) if f.object else (f.file or "")))
    where = location(f) + (f"  (source: {f.source})" if verbose and f.file else "")
    console.print(_indent(Text(where, style="cyan" if f.file else "dim")))
    console.print(_indent(Text(f.message)))
    if f.evidence:
        shown = f.evidence if verbose else f.evidence[:MAX_EVIDENCE]
        console.print(_indent(Text("Evidence:", style="bold")))
        console.print(_indent(_bullets(shown), 4))
        if len(shown) < len(f.evidence):
            more = f"… and {len(f.evidence) - len(shown)} more (--verbose shows all)"
            console.print(_indent(Text(more, style="dim"), 4))
    if f.root_cause:
        console.print(_indent(Text.assemble(("Root cause: ", "bold"), f.root_cause)))
    if f.fix:
        console.print(_indent(Text("Fix:", style="bold green")))
        for part in _fix(f.fix, verbose):
            console.print(_indent(part, 4))


def _status(m: Metric) -> Text:
    if m.ok is None:
        return Text("–", style="dim")
    return Text("✓", style="bold green") if m.ok else Text("✗", style="bold red")


def _metrics(metrics: list[Metric]) -> Table:
    table = Table(title="Now vs target", title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                  show_edge=False)
    table.add_column("Metric")
    table.add_column("Now", justify="right")
    table.add_column("Target")
    table.add_column("", justify="center")
    table.add_column("Detail")
    for m in metrics:
        table.add_row(Text(m.title), Text(m.display(), style="bold"), Text(m.target), _status(m),
                      Text(m.detail, style="dim"))
    return table


def render_text(report: Report, console: Console, *, verbose: bool = False) -> None:
    """Print the report to ``console``: problems, evidence, root causes, fixes, metrics, blind spots."""
    report = redact_report(report)  # the final pass: nothing a rule copied can leak
    console.print(Text.assemble((f"kubeshape {report.command}", "bold"), " — ", sources_line(report)))
    stamp = " · ".join(s for s in (report.tool_version and f"kubeshape {report.tool_version}",
                                   rfc3339(report.generated_at)) if s)
    if stamp:
        console.print(Text(stamp, style="dim"))
    if not report.findings:
        suffix = f" ({report.suppressed} suppressed)" if report.suppressed else ""
        console.print()
        if report.blind_spots:
            console.print(Text(f"✓ No problems found in what was analysed{suffix} — {len(report.blind_spots)} "
                               "item(s) not analysed, listed below", style="bold yellow"))
        else:
            console.print(Text(f"✓ No problems found{suffix}", style="bold green"))
    for p in problems(report):
        console.print()
        title = f"Problem {p.family}: {p.title} · {p.severity.label.upper()}"
        console.rule(Text(title, style=SEVERITY_STYLE[p.severity]), align="left",
                     style=SEVERITY_STYLE[p.severity].removeprefix("bold "))
        for f in p.findings:
            console.print()
            _finding(console, f, verbose)
    if report.metrics:
        console.print()
        console.print(_metrics(report.metrics))
    for heading, items, style in (("Blind spots (not checked in this run):", report.blind_spots, "yellow"),
                                  ("Notes:", report.notes, "")):
        if items:
            console.print()
            console.print(Text(heading, style="bold"))
            console.print(_indent(_bullets(items, style)))
    if report.findings:
        worst = max(f.severity for f in report.findings)
        console.print()
        console.print(Text(summary_line(report), style=SEVERITY_STYLE[worst]))
