"""``kubeshape explain``: one incident or finding of a report in full, as Markdown or JSON."""

from __future__ import annotations

from typing import Any

import orjson

from kubeshape.errors import InputError
from kubeshape.findings import finding_id
from kubeshape.redact import redact_report
from kubeshape.report.common import analysis
from kubeshape.report.incidents import find
from kubeshape.report.markdown import explain_finding_markdown, explain_incident_markdown
from kubeshape.report.model import Report


def explain(report: Report, key: str, fmt: str) -> str:
    """The incident ``key`` (``3``, ``#3``) or the findings it names (``KS105-3f9a2c``, ``KS105``)."""
    report = redact_report(report)
    a = analysis(report)
    incident, findings = find(a.incidents, key)
    if incident is None and not findings:
        known = f"#1–#{len(a.incidents)}" if a.incidents else "none"
        raise InputError(f"{key!r}: no such incident or finding in this report (incidents: {known}; finding IDs "
                         "are shown by 'kubeshape doctor -v'; a rule ID such as KS105 also works)")
    if fmt == "json":
        index = {id(f): i for i, f in enumerate(report.findings)}
        doc: dict[str, Any]
        if incident is not None:
            doc = {"incident": incident.as_dict(index),
                   "plan": [s.as_dict() for s in a.steps_of(incident)],
                   "findings": [{**f.as_dict(), "id": finding_id(f)} for f in incident.findings]}
        else:
            doc = {"findings": [{**f.as_dict(), "id": finding_id(f)} for f in findings]}
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt not in ("text", "markdown"):
        raise InputError(f"explain prints text, markdown or json, not {fmt}")
    if incident is not None:
        return explain_incident_markdown(a, incident)
    return explain_finding_markdown(a, findings)
