"""A single self-contained HTML page, structured like the terminal report: an executive summary of the seven
families, the incidents with their causal chain, and the phased plan; with a table of contents, severity and
family filters and collapsed details.

Self-contained means no network at all: the CSS and the (small, optional) filter script are inline, nothing is
loaded from elsewhere, and a Content-Security-Policy allows only that exact style and script (by hash), so even a
string that slipped past escaping could neither run nor fetch anything. Without JavaScript every incident is
shown and the filter controls stay hidden; printing shows every incident (filtered or not), expands every
``<details>`` and hides the controls.
"""

from __future__ import annotations

import base64
import hashlib
from typing import NamedTuple

import jinja2
from markupsafe import Markup

from kubeshape.findings import FAMILIES, FAMILY_TITLES, Severity, finding_id
from kubeshape.redact import redact_report
from kubeshape.report.common import (
    MAX_EVIDENCE,
    PHASE_HINTS,
    PHASE_TITLES,
    analysis,
    location,
    rfc3339,
    short_sources,
    sources_line,
    summary_line,
)
from kubeshape.report.fixblocks import split_fix
from kubeshape.report.incidents import Incident
from kubeshape.report.model import Report
from kubeshape.report.plan import Step

SEVERITIES = (Severity.ERROR, Severity.WARNING, Severity.INFO)
_DIFF_HEADERS = ("--- ", "+++ ", "@@", "diff ")


class PhaseGroup(NamedTuple):
    """Consecutive plan steps of one phase (information-only steps are a group of their own, as in the text)."""

    id: str
    title: str
    hint: str
    steps: list[Step]


class IncidentView(NamedTuple):
    """What the page shows of an incident beyond the incident itself."""

    incident: Incident
    root_causes: list[str]
    steps: list[Step]


def _phase_groups(plan: list[Step]) -> list[PhaseGroup]:
    groups: list[PhaseGroup] = []
    used: set[str] = set()
    key = ""
    for step in plan:
        info = step.severity is Severity.INFO
        this = f"{step.phase}{'-info' if info else ''}"
        if groups and this == key:
            groups[-1].steps.append(step)
            continue
        key = this
        anchor, n = f"phase-{this}", 2
        while anchor in used:
            anchor, n = f"phase-{this}-{n}", n + 1
        used.add(anchor)
        title = PHASE_TITLES[step.phase] + (" (information only)" if info else "")
        hint = "findings that are information only" if info else PHASE_HINTS[step.phase]
        groups.append(PhaseGroup(anchor, title, hint, [step]))
    return groups


def _diff_class(line: str) -> str:
    if line.startswith(_DIFF_HEADERS):
        return "hunk"
    return {"+": "add", "-": "del"}.get(line[:1], "")


def _csp_hash(text: str) -> Markup:
    """The CSP source expression allowing exactly this inline <style>/<script> content."""
    digest = hashlib.sha256(str(text).encode("utf-8")).digest()
    return Markup(f"'sha256-{base64.b64encode(digest).decode('ascii')}'")  # base64 and quotes: nothing to escape


_ENV = jinja2.Environment(loader=jinja2.PackageLoader("kubeshape", "report/templates"), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_ENV.globals.update(location=location, split_fix=split_fix, max_evidence=MAX_EVIDENCE, finding_id=finding_id,
                    diff_class=_diff_class, families=FAMILIES, family_titles=FAMILY_TITLES, phase_titles=PHASE_TITLES)
_ENV.filters["csp_hash"] = _csp_hash


def render_html(report: Report) -> str:
    """The report as one HTML page: summary, incidents (filterable), plan, metrics, blind spots and notes."""
    report = redact_report(report)  # the final pass: nothing a rule copied can leak
    a = analysis(report)
    views = [IncidentView(inc, inc.root_causes, a.steps_of(inc)) for inc in a.incidents]
    severity_counts = {sev.label: sum(1 for i in a.incidents if i.severity is sev) for sev in SEVERITIES}
    family_counts = {fam: sum(1 for i in a.incidents if fam in i.families) for fam in FAMILIES}
    summary = f"{summary_line(report)} in {a.incidents_text}" if report.findings else ""
    html = _ENV.get_template("report.html.j2").render(
        report=report, analysis=a, incidents=views, phases=_phase_groups(a.plan), severities=SEVERITIES,
        severity_counts=severity_counts, family_counts=family_counts, sources=sources_line(report),
        short_sources=short_sources(report),
        generated_at=rfc3339(report.generated_at), summary=summary)
    return html.rstrip("\n") + "\n"

