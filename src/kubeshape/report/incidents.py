"""Group findings that share a root cause into incidents with a causal chain (symptom ← cause ← root cause).

The grouping is driven by :mod:`kubeshape.report.causes` (which rule can explain which, on which subject);
findings of one rule that stand alone join the incident whose root cause is the same rule at the same
severity, so seven unscraped workloads are one incident and not seven.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubeshape.findings import Finding, Severity, finding_id
from kubeshape.report.causes import LINKS, SUBJECTS, WORKLOAD_KINDS, merged_data, wording

PHASES = ("stop", "foundation", "excellence")


@dataclass(slots=True)
class Incident:
    """Findings with one root cause: what a person fixes in one go."""

    id: str
    title: str
    severity: Severity
    family: int
    findings: list[Finding]  # symptom first, root causes last
    roots: list[Finding]
    chain: list[str]  # one entry per level, symptom first
    impact: dict[str, Any]
    evidence: list[str]
    phase: str
    action: str  # what the plan step that fixes it does
    fix_findings: list[Finding] = field(default_factory=list)  # whose fixes make up the incident's fix
    explaining: list[Finding] = field(default_factory=list)  # members that explain another member

    @property
    def root_causes(self) -> list[str]:
        return sorted({f.root_cause for f in self.roots if f.root_cause})

    @property
    def families(self) -> list[int]:
        return sorted({f.family for f in self.findings})

    def impact_line(self) -> str:
        parts = []
        for key, one, many in (("workloads", "workload", "workloads"), ("objects", "object", "objects"),
                               ("pods", "pod", "pods"), ("repositories", "repository", "repositories"),
                               ("files", "file", "files")):
            n = self.impact.get(key, 0)
            if n:
                parts.append(f"{n} {one if n == 1 else many}")
        if self.impact.get("restarts"):
            parts.append(f"{self.impact['restarts']} restarts")
        if self.impact.get("nodes_failing"):
            parts.append("failing on " + ", ".join(self.impact["nodes_failing"]))
        return ", ".join(parts)

    def as_dict(self, index: Mapping[int, int], ids: Sequence[str] | None = None) -> dict[str, Any]:
        """The JSON form; ``index`` maps ``id(finding)`` to its position in the report, ``ids`` (when given)
        holds the finding IDs by position so that they are not computed twice."""
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity.label,
            "family": self.family,
            "families": self.families,
            "chain": self.chain,
            "rootCauses": self.root_causes,
            "impact": self.impact,
            "evidence": self.evidence,
            "phase": self.phase,
            "action": self.action,
            "findings": [ids[index[id(f)]] if ids is not None else finding_id(f) for f in self.findings],
            "findingIndexes": [index[id(f)] for f in self.findings],
        }


class _Union:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass(slots=True)
class _Hub:
    """The findings one link joins through one shared subject: each cause explains each effect (or, for a
    peer link, shares its root cause with it). Kept as two lists so that many causes of many effects on one
    subject cost their number, not their product."""

    link: int  # position in LINKS
    peer: bool
    causes: list[int]
    effects: list[int]

    def explains(self, j: int) -> bool:
        """Whether a cause other than ``j`` itself reaches ``j``."""
        return any(i != j for i in self.causes)


def _hubs(findings: list[Finding]) -> list[_Hub]:
    """Every (link, subject) that joins at least one cause to one effect; joined through dicts, never pairwise."""
    by_rule: dict[str, list[int]] = defaultdict(list)
    for i, f in enumerate(findings):
        by_rule[f.rule].append(i)
    hubs: list[_Hub] = []
    for n, link in enumerate(LINKS):
        causes, effects = by_rule.get(link.cause), by_rule.get(link.effect)
        if not causes or not effects:
            continue
        subjects = SUBJECTS[link.subject]
        index: dict[str, list[int]] = defaultdict(list)
        for j in effects:
            for s in subjects(findings[j]):
                index[s].append(j)
        joined: dict[str, list[int]] = defaultdict(list)
        for i in causes:
            for s in subjects(findings[i]):
                if s in index:
                    joined[s].append(i)
        hubs += [_Hub(n, link.peer, cs, index[s]) for s, cs in joined.items()]
    return hubs


def _incoming(hubs: list[_Hub]) -> set[int]:
    """The findings another finding explains."""
    return {j for h in hubs if not h.peer for j in h.effects if h.explains(j)}


def _components(findings: list[Finding], hubs: list[_Hub], incoming: set[int]) -> list[list[int]]:
    uf = _Union(len(findings))
    for h in hubs:
        first = h.causes[0]
        for i in (*h.causes, *h.effects):
            uf.union(first, i)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(findings)):
        groups[uf.find(i)].append(i)
    comps = list(groups.values())
    # A finding that stands alone joins the incident whose root is the same rule at the same severity.
    home: dict[tuple[str, Severity], list[int]] = {}
    for comp in comps:
        if len(comp) > 1:
            for i in comp:
                if i not in incoming:
                    home.setdefault((findings[i].rule, findings[i].severity), comp)
    out: list[list[int]] = []
    for comp in comps:
        if len(comp) == 1:
            f = findings[comp[0]]
            target = home.get((f.rule, f.severity))
            if target is not None and target is not comp:
                target.append(comp[0])
                continue
            home[(f.rule, f.severity)] = comp
        out.append(comp)
    return [sorted(c) for c in out]


def _by_component(comps: list[list[int]], hubs: list[_Hub]) -> list[list[_Hub]]:
    """The explaining (non-peer) hubs of each component."""
    comp_of: dict[int, int] = {}
    for n, comp in enumerate(comps):
        for i in comp:
            comp_of[i] = n
    out: list[list[_Hub]] = [[] for _ in comps]
    for h in hubs:
        if not h.peer:
            out[comp_of[h.causes[0]]].append(h)
    return out


def _depths(members: list[int], hubs: list[_Hub]) -> dict[int, int]:
    """Longest path from a root cause, in links (a hub passes its causes' depth + 1 on to its effects)."""
    depth = dict.fromkeys(members, 0)
    waiting = dict.fromkeys(members, 0)  # hubs still to pass a depth on to each finding
    feeds: dict[int, list[int]] = defaultdict(list)  # finding -> the hubs it is a cause in
    for n, h in enumerate(hubs):
        for i in h.causes:
            feeds[i].append(n)
        for j in h.effects:
            waiting[j] += 1
    hub_waiting = [len(h.causes) for h in hubs]
    hub_depth = [0] * len(hubs)
    ready = [i for i in members if not waiting[i]]
    done = 0
    while ready:
        i = ready.pop()
        done += 1
        for n in feeds.get(i, ()):
            hub_depth[n] = max(hub_depth[n], depth[i] + 1)
            hub_waiting[n] -= 1
            if not hub_waiting[n]:
                for j in hubs[n].effects:
                    depth[j] = max(depth[j], hub_depth[n])
                    waiting[j] -= 1
                    if not waiting[j]:
                        ready.append(j)
    return depth if done == len(members) else _relaxed_depths(members, _pairs(hubs))


def _pairs(hubs: list[_Hub]) -> list[tuple[int, int]]:
    """The (cause, effect) pairs of ``hubs``: by link, then by cause, then by effect."""
    hits: dict[int, dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
    for h in hubs:
        for i in h.causes:
            hits[h.link][i].update(h.effects)
    return [(i, j) for link in sorted(hits) for i in sorted(hits[link]) for j in sorted(hits[link][i]) if j != i]


def _relaxed_depths(members: list[int], edges: list[tuple[int, int]]) -> dict[int, int]:
    """Longest paths where the links form a cycle: bounded so that the cycle cannot loop forever."""
    depth = dict.fromkeys(members, 0)
    for _ in range(len(members)):
        changed = False
        for a, b in edges:
            if depth[a] + 1 > depth[b] and depth[a] + 1 < len(members):
                depth[b] = depth[a] + 1
                changed = True
        if not changed:
            break
    return depth


def _short_list(items: Iterable[Any], limit: int = 2) -> str:
    items = [str(i) for i in items if str(i)]
    shown = ", ".join(items[:limit])
    return shown + (f" +{len(items) - limit}" if len(items) > limit else "")


def _fields(findings: list[Finding]) -> dict[str, Any]:
    data = merged_data(findings)
    names = list(dict.fromkeys(f.object.name for f in findings if f.object is not None))
    out = {k: (_short_list(v, 3) if isinstance(v, list) else v) for k, v in data.items()}
    templates = [t for f in findings for t in f.data.get("templates") or [] if isinstance(t, dict)]
    if templates:
        text = str(templates[0].get("template", ""))
        out["template"] = text if len(text) <= 48 else text[:47] + "…"
    out.update(n=len(findings), s="" if len(findings) == 1 else "s", names=_short_list(names),
               n_pods=len(data.get("pods") or []), n_files=len(data.get("files") or []),
               n_workloads=len(data.get("workloads") or []), rule=findings[0].rule,
               images=_short_list(sorted({str(f.data.get("image")) for f in findings if f.data.get("image")})))
    return out


def _format(template: str, findings: list[Finding]) -> str | None:
    try:
        return template.format_map(_fields(findings))
    except (KeyError, IndexError, ValueError):
        return None


def _level_text(findings: list[Finding]) -> str:
    by_rule: dict[str, list[Finding]] = defaultdict(list)
    for f in sorted(findings, key=lambda f: (-f.severity, f.rule)):
        by_rule[f.rule].append(f)
    parts = []
    for rule_id, fs in by_rule.items():
        phrase = _format(wording(rule_id).phrase, fs) or rule_id
        parts.append(f"{phrase} ({rule_id}{f' ×{len(fs)}' if len(fs) > 1 else ''})")
    return "; ".join(parts)


def headline(head: list[Finding]) -> str:
    """A one-line title for findings: the first one's message, or the rule's plural title for several."""
    first = head[0]
    same_rule = [f for f in head if f.rule == first.rule]
    if len(same_rule) > 1:
        title = wording(first.rule).title
        text = _format(title, same_rule) if title else None
        if text:
            return text
        return f"{first.message} (+{len(same_rule) - 1} more)"
    obj = first.object
    if obj is not None and obj.name not in first.message:
        return f"{obj.name}: {first.message}"
    return first.message


def _impact(findings: list[Finding]) -> dict[str, Any]:
    workloads = {(f.object.kind, f.object.namespace, f.object.name) for f in findings
                 if f.object is not None and f.object.kind in WORKLOAD_KINDS}
    repos = {(f.object.namespace, f.object.name) for f in findings
             if f.object is not None and f.object.kind == "Repository"}
    others = {f.object for f in findings if f.object is not None and f.object.kind not in WORKLOAD_KINDS
              and f.object.kind not in ("Repository", "Image", "Cluster")}
    pods = {str(p) for f in findings for p in f.data.get("pods") or []}
    files = {f.file for f in findings if f.file}
    restarts = sum(int(f.data.get("restarts") or 0) for f in findings if f.rule == "KS501")
    failing = sorted({str(n) for f in findings if f.rule == "KS105" for n in f.data.get("nodes") or [] if n})
    return {"workloads": len(workloads), "objects": len(others), "pods": len(pods), "repositories": len(repos),
            "files": len(files), "restarts": restarts, "nodes_failing": failing}


def _phase(lead: Finding, severity: Severity) -> str:
    phase = wording(lead.rule).phase
    return "foundation" if phase == "stop" and severity < Severity.ERROR else phase


def build_incidents(findings: list[Finding]) -> list[Incident]:
    """Findings grouped into incidents, ordered by family (1–7), then worst first."""
    if not findings:
        return []
    hubs = _hubs(findings)
    incoming = _incoming(hubs)
    drafts: list[tuple[tuple[int, int, int], Incident]] = []
    comps = _components(findings, hubs, incoming)
    for comp, inside in zip(comps, _by_component(comps, hubs), strict=True):
        depth = _depths(comp, inside)
        order = sorted(comp, key=lambda i: (-depth[i], -findings[i].severity, i))
        members = [findings[i] for i in order]
        roots = [findings[i] for i in order if i not in incoming or depth[i] == 0]
        levels: dict[int, list[Finding]] = defaultdict(list)
        for i in order:
            levels[depth[i]].append(findings[i])
        chain = [_level_text(levels[d]) for d in sorted(levels, reverse=True)]
        head = levels[max(levels)]
        severity = max(f.severity for f in members)
        primary = min(roots, key=lambda f: (-f.severity, f.family, f.rule))
        # The step that fixes the incident: the worst finding's rule, nearest to the root cause.
        lead_i = min(order, key=lambda i: (-findings[i].severity, depth[i], findings[i].rule))
        lead = findings[lead_i]
        fix_findings = [findings[i] for i in sorted(
            (i for i in order if findings[i].fix),
            key=lambda i: (findings[i].rule != lead.rule, -findings[i].severity, depth[i]))]
        evidence: list[str] = []
        seen: set[str] = set()
        for f in members:
            for e in f.evidence:
                if e not in seen:
                    seen.add(e)
                    evidence.append(e)
        incident = Incident(id="", title=headline(head), severity=severity, family=primary.family, findings=members,
                            roots=roots, chain=chain, impact=_impact(members), evidence=evidence,
                            phase=_phase(lead, severity), action=wording(lead.rule).action,
                            fix_findings=fix_findings,
                            explaining=[findings[i] for i in sorted(
                                {i for h in inside for i in h.causes if any(j != i for j in h.effects)})])
        drafts.append(((primary.family, -int(severity), min(comp)), incident))
    drafts.sort(key=lambda d: d[0])
    out = [inc for _, inc in drafts]
    for n, inc in enumerate(out, 1):
        inc.id = str(n)
    return out


def find(incidents: list[Incident], key: str) -> tuple[Incident | None, list[Finding]]:
    """An incident by ``3``/``#3``, or findings by ID (``KS105-3f9a2c``) or by rule (``KS105``)."""
    key = key.strip()
    number = key.removeprefix("#").removeprefix("I").removeprefix("i")
    for inc in incidents:
        if number == inc.id:
            return inc, []
    wanted = key.upper()
    found = [f for inc in incidents for f in inc.findings
             if finding_id(f).upper() == wanted or f.rule == wanted or finding_id(f).upper().startswith(wanted)]
    return None, found
