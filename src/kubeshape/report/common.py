"""What every renderer shares: counts, locations, the incidents and the plan of a report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from kubeshape.findings import FAMILIES, FAMILY_TITLES, Finding, Severity
from kubeshape.report.incidents import Incident, build_incidents, headline
from kubeshape.report.model import Report
from kubeshape.report.plan import PHASE_HINTS, PHASE_TITLES, Step, build_plan

MAX_EVIDENCE = 10
__all__ = ["MAX_EVIDENCE", "PHASE_HINTS", "PHASE_TITLES", "Analysis", "FamilyLine", "Problem", "analysis",
           "counts", "location", "problems", "rfc3339", "short_sources", "sources_line", "stamp", "summary_line"]


class Problem(NamedTuple):
    """The findings of one family: one "Problem N" section."""

    family: int
    title: str
    severity: Severity
    findings: list[Finding]


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


def stamp(report: Report) -> str:
    """``kubeshape 0.1.0 · 2026-12-02T01:35:01Z`` (whichever of the two the report has)."""
    return " · ".join(s for s in (report.tool_version and f"kubeshape {report.tool_version}",
                                  rfc3339(report.generated_at)) if s)


def short_sources(report: Report) -> str:
    """``repo demo/repo · cluster homelab``: each source's name without its details (``sources_line`` has them)."""
    names = []
    for kind, value in report.sources.items():
        name = value.split(" (")[0]
        parts = name.replace("\\", "/").rstrip("/").split("/")
        names.append(f"{kind} {'/'.join(parts[-2:]) if len(parts) > 2 else name}" if value else kind)
    return " · ".join(names) or "no sources"


def location(f: Finding) -> str:
    """``file:line``, ``file``, or the source a live-only finding came from."""
    if f.file:
        return f"{f.file}:{f.line}" if f.line else f.file
    return f"from {f.source}"



class FamilyLine(NamedTuple):
    """One line of the executive summary: a family, its findings and its worst incident."""

    family: int
    name: str
    title: str
    findings: int
    severity: Severity | None
    incident: Incident | None
    headline: str


@dataclass(slots=True)
class Analysis:
    """A report's findings as incidents, a phased plan and the executive summary."""

    incidents: list[Incident]
    plan: list[Step]
    families: list[FamilyLine]

    def step_for(self, incident: Incident) -> Step | None:
        """The step that fixes the incident (not a stop-gap for one of its symptoms)."""
        return next((s for s in self.plan if incident.id in s.incidents and s.phase == incident.phase), None)

    def steps_of(self, incident: Incident) -> list[Step]:
        """Every step that closes the incident, stop-gaps included."""
        return [s for s in self.plan if incident.id in s.incidents]

    @property
    def incidents_text(self) -> str:
        """``11 incidents``."""
        n = len(self.incidents)
        return f"{n} incident{'' if n == 1 else 's'}"


def _family_lines(findings: list[Finding], incidents: list[Incident]) -> list[FamilyLine]:
    out = []
    for fam, name in FAMILIES.items():
        mine = [f for f in findings if f.family == fam]
        touching = [i for i in incidents if any(f.family == fam for f in i.findings)]
        worst = min(touching, key=lambda i: (i.family != fam, -i.severity, int(i.id)), default=None)
        line = headline([f for f in worst.findings if f.family == fam]) if worst else ""
        out.append(FamilyLine(fam, name, FAMILY_TITLES[fam], len(mine), max((f.severity for f in mine), default=None),
                              worst, line))
    return out


def analysis(report: Report) -> Analysis:
    """Incidents, plan and summary of an already redacted report."""
    incidents = build_incidents(report.findings)
    return Analysis(incidents, build_plan(incidents), _family_lines(report.findings, incidents))
