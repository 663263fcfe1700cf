"""The terminal report: an executive summary, incidents and a phased plan on one screen; ``-v`` adds every
finding in full. Commands and diffs are never wrapped, so what is pasted from a terminal or a pipe runs."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from kubeshape.findings import Finding, Severity, finding_id
from kubeshape.redact import redact_report
from kubeshape.report.common import (
    MAX_EVIDENCE,
    PHASE_HINTS,
    PHASE_TITLES,
    Analysis,
    analysis,
    counts,
    location,
    problems,
    short_sources,
    sources_line,
    stamp,
    summary_line,
)
from kubeshape.report.fixblocks import FixBlock, split_fix
from kubeshape.report.incidents import Incident
from kubeshape.report.model import Metric, Report

__all__ = ["FixBlock", "counts", "location", "problems", "render_incident", "render_text", "split_fix"]

MAX_STEP_LINES = 4
SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "bold yellow", Severity.INFO: "bold cyan"}
MARK = {Severity.ERROR: "✗", Severity.WARNING: "!", Severity.INFO: "i"}


def _line(console: Console, text: Text | str, indent: int = 0) -> None:
    """One line, cut with … at the terminal's width (prose that must stay on one line)."""
    t = Text(" " * indent) + (Text(text) if isinstance(text, str) else text)
    t.rstrip()
    console.print(t, no_wrap=True, overflow="ellipsis", crop=True)


def _para(console: Console, text: Text | str, indent: int = 0, hang: int = 0) -> None:
    """Prose that may wrap; continuation lines are indented ``hang`` more."""
    t = Text(text) if isinstance(text, str) else text
    lines = t.wrap(console, max(20, console.width - indent - hang))
    for n, ln in enumerate(lines):
        ln.rstrip()
        pad = indent + (hang if n else 0)
        console.print(Text(" " * pad) + ln, no_wrap=True, overflow="ellipsis")


def _bullet(console: Console, text: str, indent: int) -> None:
    _para(console, Text("• ", style="dim") + Text(text), indent, hang=2)


def _code(console: Console, text: str, lang: str, indent: int = 0) -> None:
    """Code exactly as written: never wrapped or cut (a long line overflows instead), highlighted in terminals."""
    pad = " " * indent
    lexer = lang if lang in ("bash", "sh", "diff", "yaml", "json", "python", "dockerfile") else "text"
    for raw in text.splitlines() or [""]:
        if console.is_terminal and console.color_system is not None:
            body = Syntax(raw, lexer, theme="ansi_dark", background_color="default").highlight(raw)
            body.rstrip()
            console.print(Text(pad) + body, soft_wrap=True, crop=False)
        else:
            console.print(pad + raw, soft_wrap=True, crop=False, markup=False, highlight=False)


def _header(console: Console, report: Report, a: Analysis) -> None:
    _line(console, Text.assemble((f"kubeshape {report.command}", "bold"), " · ", short_sources(report)))
    when = stamp(report)
    if report.findings:
        worst = max(f.severity for f in report.findings)
        _line(console, Text.assemble((f"{summary_line(report)} in {a.incidents_text}", SEVERITY_STYLE[worst]),
                                     ("  " + when if when else "", "dim")))
    elif when:
        _line(console, Text(when, style="dim"))


def _summary(console: Console, a: Analysis) -> None:
    for fl in a.families:
        if fl.severity is None:
            row = Text.assemble(f" {fl.family} {fl.name:<14}", ("✓  0  ", "green"), ("no findings", "dim"))
        else:
            ref = f"#{fl.incident.id} " if fl.incident else ""
            row = Text.assemble(f" {fl.family} {fl.name:<14}",
                                (f"{MARK[fl.severity]} {fl.findings:>2}  ", SEVERITY_STYLE[fl.severity]),
                                (ref, "bold"), fl.headline)
        _line(console, row)


def _rules(findings: list[Finding]) -> str:
    by_rule: dict[str, int] = {}
    for f in findings:
        by_rule[f.rule] = by_rule.get(f.rule, 0) + 1
    return ", ".join(f"{r} ×{n}" if n > 1 else r for r, n in by_rule.items())


def _titled(console: Console, head: Text, title: str, suffix: Text) -> None:
    """``head title suffix`` on one line: the title is cut so that the suffix always shows."""
    room = console.width - head.cell_len - suffix.cell_len
    if len(title) > room:
        title = title[:max(room - 1, 10)] + "…"
    _line(console, head + Text(title) + suffix)


def _incident_head(inc: Incident) -> Text:
    return Text.assemble((f"#{inc.id:<3}", "bold"), (f"{inc.severity.label.upper():<8}", SEVERITY_STYLE[inc.severity]))


def _incidents(console: Console, a: Analysis, verbose: bool) -> None:
    shown = [i for i in a.incidents if verbose or i.severity > Severity.INFO]
    hidden = [i for i in a.incidents if i not in shown]
    more = (f"; + {len(hidden)} info ({', '.join('#' + i.id for i in hidden)}): -v" if hidden else "")
    _line(console, Text("Incidents", style="bold") + Text(f"  symptom ← cause ← root cause{more}", style="dim"))
    for inc in shown:
        step = a.step_for(inc)
        goto = Text(f" →\u00a0step\u00a0{step.number}", style="bold green") if step else Text("")
        head = _incident_head(inc)
        if len(inc.chain) == 1:
            _titled(console, head, inc.title, Text(f"  ({_rules(inc.findings)})", style="dim") + goto)
            continue
        _titled(console, head, inc.title, Text(""))
        _para(console, Text(" ← ".join(inc.chain)) + goto, 5)
        if verbose and inc.impact_line():
            _para(console, Text("impact: " + inc.impact_line(), style="dim"), 5)


def _plan(console: Console, a: Analysis, verbose: bool) -> None:
    steps = [s for s in a.plan if verbose or s.severity > Severity.INFO]
    if not steps:
        return
    console.print()
    _line(console, Text("Plan", style="bold") + Text("  in full: kubeshape explain <incident>, -o markdown, -v",
                                                     style="dim"))
    phase = ""
    for step in steps:
        group = step.phase + (" (info)" if step.severity is Severity.INFO else "")
        if group != phase:
            phase = group
            hint = "findings that are information only" if step.severity is Severity.INFO else PHASE_HINTS[step.phase]
            _line(console, Text.assemble((PHASE_TITLES[step.phase], "bold"), (f" — {hint}", "dim")), 1)
        closes = ", ".join(f"#{i}" for i in step.incidents)
        _line(console, Text.assemble((f"{step.number:>2}. ", "bold"), step.title, (f" ({closes})", "dim")), 1)
        if step.phase != "stop" and not verbose:
            continue
        lines = step.commands if verbose else step.summary()
        for ln in lines if verbose else lines[:MAX_STEP_LINES]:
            if ln.split(" ", 1)[0] in _COMMAND_WORDS:
                _code(console, ln, "bash", 5)
            else:
                _line(console, Text(ln, style="italic"), 5)
        if not verbose and len(lines) > MAX_STEP_LINES:
            _line(console, Text(f"… {len(lines) - MAX_STEP_LINES} more", style="dim"), 5)


_COMMAND_WORDS = frozenset({"kubectl", "docker", "kubeshape", "helm", "flux", "git", "podman", "crane", "skopeo",
                            "nerdctl", "ctr", "crictl", "regctl", "oras", "sudo", "export", "curl"})


def _status(m: Metric) -> Text:
    if m.ok is None:
        return Text("–", style="dim")
    return Text("✓", style="bold green") if m.ok else Text("✗", style="bold red")


def _metrics_table(metrics: list[Metric]) -> Table:
    table = Table(title="Now vs target", title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                  show_edge=False)
    for col, just in (("Metric", "left"), ("Now", "right"), ("Target", "left"), ("", "center"), ("Detail", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for m in metrics:
        table.add_row(Text(m.title), Text(m.display(), style="bold"), Text(m.target), _status(m),
                      Text(m.detail, style="dim"))
    return table


def _metrics_line(console: Console, metrics: list[Metric]) -> None:
    off = [m for m in metrics if m.ok is False]
    if not metrics:
        return
    head = Text.assemble(("Now vs target: ", "bold"), (f"{len(off)} of {len(metrics)} off target", "bold red" if off
                                                       else "bold green"))
    parts = [f"{m.title.split(' (')[0].lower()} {m.display()} (target {m.target})" for m in off[:2]]
    if parts:
        head.append(" — " + "; ".join(parts))
    _line(console, head)


def _lists(console: Console, report: Report, verbose: bool) -> None:
    if report.blind_spots:
        console.print()
        _line(console, Text("Not checked in this run:", style="bold yellow"))
        for item in report.blind_spots:
            _para(console, Text("• " + item, style="yellow"), 1, hang=2)
    if report.notes:
        if verbose or not report.findings:  # a clean report has room for them
            console.print()
            _line(console, Text("Notes:", style="bold"))
            for item in report.notes:
                _bullet(console, item, 1)
        else:
            n = len(report.notes)
            _line(console, Text(f"{n} note{'' if n == 1 else 's'} about the sources: -v shows "
                                f"{'it' if n == 1 else 'them'}", style="dim"))


def render_finding(console: Console, f: Finding, *, indent: int = 0) -> None:
    """One finding in full: location, message, evidence, root cause and fix."""
    label = f.severity.label.upper()
    _line(console, Text.assemble((f"{label:<7}", SEVERITY_STYLE[f.severity]), " ", (f.rule, "bold"), "  ",
                                 str(f.object) if f.object else (f.file or ""), (f"  [{finding_id(f)}]", "dim")),
          indent)
    where = location(f) + (f"  (source: {f.source})" if f.file else "")
    _line(console, Text(where, style="cyan" if f.file else "dim"), indent + 2)
    _para(console, f.message, indent + 2)
    if f.evidence:
        _line(console, Text("Evidence:", style="bold"), indent + 2)
        for e in f.evidence:
            _bullet(console, e, indent + 4)
    if f.root_cause:
        _para(console, Text.assemble(("Root cause: ", "bold"), f.root_cause), indent + 2)
    if f.fix:
        _line(console, Text("Fix:", style="bold green"), indent + 2)
        _blocks(console, split_fix(f.fix), indent + 4)


def _blocks(console: Console, blocks: list[FixBlock], indent: int) -> None:
    for block in blocks:
        if block.code:
            _code(console, block.text, block.lang, indent)
            continue
        for ln in block.text.splitlines():  # an indented line in prose is a command or a file line: keep it whole
            if ln[:1].isspace():
                _code(console, ln, "", indent)
            else:
                _para(console, ln, indent)


def render_incident(console: Console, a: Analysis, inc: Incident) -> None:
    """One incident in full: chain, impact, root causes, merged evidence, its plan steps and every finding."""
    _line(console, _incident_head(inc) + Text(inc.title))
    _para(console, Text(" ← ".join(inc.chain)), 5)
    impact = inc.impact_line()
    if impact:
        _para(console, Text.assemble(("Impact: ", "bold"), impact), 5)
    for cause in inc.root_causes:
        _para(console, Text.assemble(("Root cause: ", "bold"), cause), 5)
    _line(console, Text("Evidence:", style="bold"), 5)
    for e in inc.evidence[:MAX_EVIDENCE]:
        _bullet(console, e, 7)
    if len(inc.evidence) > MAX_EVIDENCE:
        _line(console, Text(f"… and {len(inc.evidence) - MAX_EVIDENCE} more (in the findings below)", style="dim"),
              7)
    for step in a.steps_of(inc):
        console.print()
        _line(console, Text.assemble((f"Step {step.number} ({PHASE_TITLES[step.phase]}): ", "bold green"),
                                     step.title), 5)
        _blocks(console, step.blocks, 7)
        if step.same_as:
            _para(console, step.also_closed_by, 7)
    console.print()
    _line(console, Text(f"Findings ({len(inc.findings)})", style="bold"), 5)
    for f in inc.findings:
        console.print()
        render_finding(console, f, indent=5)


def render_text(report: Report, console: Console, *, verbose: bool = False) -> None:
    """Print the report: header, executive summary, incidents, plan, metrics, blind spots; ``verbose`` adds
    every finding in full, the metrics table and the notes."""
    report = redact_report(report)  # the final pass: nothing a rule copied can leak
    a = analysis(report)
    _header(console, report, a)
    if not report.findings:
        suffix = f" ({report.suppressed} suppressed)" if report.suppressed else ""
        console.print()
        if report.blind_spots:
            _line(console, Text(f"✓ No problems found in what was analysed{suffix} — {len(report.blind_spots)} "
                                "item(s) not analysed, listed below", style="bold yellow"))
        else:
            _line(console, Text(f"✓ No problems found{suffix}", style="bold green"))
    else:
        console.print()
        _summary(console, a)
        console.print()
        _incidents(console, a, verbose)
        _plan(console, a, verbose)
    if verbose:
        for inc in a.incidents:
            console.print()
            console.rule(Text(f"#{inc.id} {inc.title}", style=SEVERITY_STYLE[inc.severity]), align="left",
                         style=SEVERITY_STYLE[inc.severity].removeprefix("bold "))
            render_incident(console, a, inc)
        if report.metrics:
            console.print()
            console.print(_metrics_table(report.metrics))
        console.print()
        _para(console, Text("Sources: " + sources_line(report), style="dim"))
    else:
        console.print()
        _metrics_line(console, report.metrics)
    _lists(console, report, verbose)
