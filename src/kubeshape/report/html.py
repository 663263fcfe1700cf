"""A single self-contained HTML page (inline CSS, no scripts, no external assets)."""

from __future__ import annotations

import jinja2

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

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("kubeshape", "report/templates"), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_ENV.globals.update(location=location, split_fix=split_fix, max_evidence=MAX_EVIDENCE)


def render_html(report: Report) -> str:
    """The report as one HTML page: a section per problem, severity badges, fixes in <pre>, metrics."""
    report = redact_report(report)  # the final pass: nothing a rule copied can leak
    html = _ENV.get_template("report.html.j2").render(
        report=report, problems=problems(report), sources=sources_line(report),
        generated_at=rfc3339(report.generated_at), summary=summary_line(report))
    return html.rstrip("\n") + "\n"
