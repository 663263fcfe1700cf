"""The stable JSON contract (``version: 1``): change it only by adding keys."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

import orjson

from kubeshape.findings import FAMILIES, finding_id
from kubeshape.redact import redact_report
from kubeshape.report.common import analysis, counts, rfc3339
from kubeshape.report.model import Report


def _default(value: object) -> Any:
    """Serialise what rules may leave in ``Finding.data`` beyond JSON's own types."""
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, PurePath):
        return value.as_posix()
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def render_json(report: Report) -> str:
    """The report as indented JSON with keys in contract order, ending with a newline."""
    report = redact_report(report)  # the final pass: nothing a rule copied can leak
    by_family = {str(fam): 0 for fam in FAMILIES}
    for f in report.findings:
        by_family[str(f.family)] = by_family.get(str(f.family), 0) + 1
    a = analysis(report)
    index = {id(f): i for i, f in enumerate(report.findings)}
    ids = [finding_id(f) for f in report.findings]
    doc = {
        "version": 1,
        "tool": {"name": "kubeshape", "version": report.tool_version},
        "command": report.command,
        "generatedAt": rfc3339(report.generated_at),
        "sources": report.sources,
        "summary": {**counts(report), "byFamily": by_family, "incidents": len(a.incidents),
                    "families": [{"family": fl.family, "name": fl.name, "title": fl.title, "findings": fl.findings,
                                  "severity": fl.severity.label if fl.severity else None,
                                  "worstIncident": fl.incident.id if fl.incident else None,
                                  "headline": fl.headline} for fl in a.families]},
        "findings": [{**f.as_dict(), "id": fid} for f, fid in zip(report.findings, ids, strict=True)],
        "incidents": [inc.as_dict(index, ids) for inc in a.incidents],
        "plan": [step.as_dict() for step in a.plan],
        "metrics": {m.key: m.as_dict() for m in report.metrics},
        "blindSpots": report.blind_spots,
        "notes": report.notes,
    }
    option = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    return orjson.dumps(doc, default=_default, option=option).decode() + "\n"
