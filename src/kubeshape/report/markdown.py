"""GitHub-flavoured Markdown report, structured like the terminal one (for PR comments and files)."""

from __future__ import annotations

import re

from kubeshape.findings import Finding, Severity, finding_id
from kubeshape.redact import redact_report
from kubeshape.report.common import (
    MAX_EVIDENCE,
    PHASE_HINTS,
    PHASE_TITLES,
    Analysis,
    analysis,
    location,
    sources_line,
    stamp,
    summary_line,
)
from kubeshape.report.fixblocks import split_fix
from kubeshape.report.incidents import PHASES, Incident
from kubeshape.report.model import Report
from kubeshape.report.plan import Step

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
    out = [f"#### {BADGE[f.severity]} · {f.rule}{obj} · `{finding_id(f)}`", "", f"*{_inline(location(f))}*", "",
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


def _summary(a: Analysis) -> list[str]:
    out = ["| # | Problem | Findings | Worst incident |", "|--:|---|--:|---|"]
    for fl in a.families:
        if fl.severity is None:
            out.append(f"| {fl.family} | {_cell(fl.title)} | 0 | ✅ none |")
            continue
        inc = f"[#{fl.incident.id}](#incident-{fl.incident.id}) {_cell(fl.headline)}" if fl.incident else ""
        out.append(f"| {fl.family} | {_cell(fl.title)} | {fl.findings} {BADGE[fl.severity].split()[0]} | {inc} |")
    return out


def _incident(a: Analysis, inc: Incident, *, standalone: bool = False) -> list[str]:
    steps = a.steps_of(inc)
    anchor = [] if standalone else [f'<a id="incident-{inc.id}"></a>', ""]
    out = [*anchor, f"### #{inc.id} {BADGE[inc.severity]} · {_inline(inc.title)}", "",
           "**Causal chain** (symptom ← cause ← root cause): " + " ← ".join(_inline(c) for c in inc.chain)]
    impact = inc.impact_line()
    if impact:
        out += ["", f"**Impact:** {_inline(impact)}"]
    for cause in inc.root_causes:
        out += ["", f"**Root cause:** {_inline(cause)}"]
    if inc.evidence:
        out += ["", "**Evidence**", "", *_bullets(inc.evidence[:MAX_EVIDENCE])]
        rest = inc.evidence[MAX_EVIDENCE:]
        if rest and standalone:
            out += _bullets(rest)
        elif rest:
            out += ["", f"<details><summary>… and {len(rest)} more</summary>", "", *_bullets(rest), "", "</details>"]
    if steps and not standalone:
        out += ["", "**Fix:** " + ", ".join(f"[step {s.number}](#step-{s.number}) ({PHASE_TITLES[s.phase]}: "
                                               f"{_inline(s.title)})" for s in steps)]
    if standalone:
        return out
    out += ["", f"<details><summary>Findings ({len(inc.findings)})</summary>", ""]
    for f in inc.findings:
        out += [*_finding(f), ""]
    out += ["</details>"]
    return out


def _step_body(step: Step) -> list[str]:
    """A plan step's prose and code blocks, each after a blank line."""
    out: list[str] = []
    for block in step.blocks:
        out += ["", _fence(block.text, block.lang) if block.code else _inline(block.text)]
    return out + (["", step.also_closed_by] if step.same_as else [])


def _plan(a: Analysis) -> list[str]:
    out: list[str] = []
    group = ""
    for step in a.plan:
        key = step.phase + (" info" if step.severity is Severity.INFO else "")
        if key != group:
            group = key
            n = PHASES.index(step.phase) + 1
            hint = "information-only findings" if step.severity is Severity.INFO else PHASE_HINTS[step.phase]
            out += ["", f"### Phase {n}: {PHASE_TITLES[step.phase]} — {hint}"]
        closes = ", ".join(f"[#{i}](#incident-{i})" for i in step.incidents)
        out += ["", f'<a id="step-{step.number}"></a>', "",
                f"#### {step.number}. {_inline(step.title)} (closes {closes})"]
        out += _step_body(step)
    return out


def render_markdown(report: Report) -> str:
    """The report as a root-cause analysis in GitHub-flavoured Markdown: executive summary, incidents with
    their causal chains, a phased action plan, metrics now vs target, and what was not checked."""
    report = redact_report(report)  # the final pass: nothing a rule copied can leak
    a = analysis(report)
    out = [f"# kubeshape {report.command}: root-cause analysis", "", f"*{_inline(sources_line(report))}*", ""]
    when = stamp(report)
    if when:
        out += [f"*{when}*", ""]
    if report.findings:
        out += ["## Executive summary", "", f"**{summary_line(report)}, in {a.incidents_text}.**", "",
                *_summary(a)]
        worst = [i for i in a.incidents if i.severity is Severity.ERROR]
        if worst:
            out += ["", "Critical: " + "; ".join(f"[#{i.id}](#incident-{i.id}) {_inline(i.title)}" for i in worst)
                    + "."]
        out += ["", "## Incidents"]
        for inc in a.incidents:
            out += ["", *_incident(a, inc)]
        out += ["", "## Action plan", "", "Each step is printed once, with the incidents it closes.", *_plan(a)]
    else:
        partial = f"; {len(report.blind_spots)} item(s) not analysed, listed below" if report.blind_spots else ""
        out += [f"**✅ No problems found{' in what was analysed' if partial else ''}** "
                f"({report.suppressed} suppressed{partial})"]
    if report.metrics:
        out += ["", "## Metrics: now vs target", "", "| Metric | Now | Target | OK | Detail |",
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


def explain_incident_markdown(a: Analysis, inc: Incident) -> str:
    """One incident with its plan steps written out in full (``kubeshape explain 3``)."""
    out = _incident(a, inc, standalone=True)
    for step in a.steps_of(inc):
        out += ["", f"## Fix — step {step.number} ({PHASE_TITLES[step.phase]}): {_inline(step.title)}"]
        out += _step_body(step)
    out += ["", f"## Findings ({len(inc.findings)})"]
    for f in inc.findings:
        out += ["", *_finding(f)]
    return "\n".join(out) + "\n"


def explain_finding_markdown(a: Analysis, findings: list[Finding]) -> str:
    """Findings in full, each with the incident it belongs to (``kubeshape explain KS105``)."""
    out: list[str] = []
    for f in findings:
        inc = next((i for i in a.incidents if any(x is f for x in i.findings)), None)
        out += [*_finding(f), ""]
        if inc is not None:
            out += [f"Part of incident #{inc.id}: {_inline(inc.title)} (kubeshape explain {inc.id})", ""]
    return "\n".join(out)
