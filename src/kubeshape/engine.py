"""Run the rule set over an inventory: select, suppress, de-duplicate and order findings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kubeshape.findings import Finding, ObjectRef, Severity
from kubeshape.inventory import Inventory, K8sObject
from kubeshape.rules.base import Context, Rule, all_rules

if TYPE_CHECKING:
    from kubeshape.config import Config

IGNORE_ANNOTATION = "kubeshape.io/ignore"
INTERNAL_ERROR = "KS000"  # not a registered rule: a rule that raised


@dataclass(slots=True)
class Suppressed:
    finding: Finding
    reason: str


@dataclass(slots=True)
class Result:
    findings: list[Finding]
    suppressed: list[Suppressed] = field(default_factory=list)
    rules_run: list[str] = field(default_factory=list)
    withheld: int = 0  # findings about values that hold unresolved ${VARIABLES}


def _matches(rule_id: str, patterns: Iterable[str]) -> bool:
    for p in patterns:
        p = p.strip().upper()
        if p in ("*", "ALL") or p == rule_id or (p.endswith("XX") and rule_id.startswith(p[:3])):
            return True
        if len(p) == 3 and rule_id.startswith(p):  # "KS1" selects a family
            return True
    return False


def select_rules(select: list[str] | None = None, ignore: list[str] | None = None) -> list[Rule]:
    """The rules ``select`` names and ``ignore`` does not (remembered: the webhook selects for every request)."""
    rules = all_rules()
    key = (tuple(select or ()), tuple(ignore or ()), tuple(map(id, rules)))
    chosen = _SELECTED.get(key)
    if chosen is None:
        chosen = [r for r in rules if _matches(r.id, key[0])] if select else list(rules)
        if ignore:
            chosen = [r for r in chosen if not _matches(r.id, key[1])]
        if len(_SELECTED) >= 64:
            _SELECTED.clear()
        _SELECTED[key] = chosen
    return list(chosen)


_SELECTED: dict[tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]], list[Rule]] = {}


def _annotation_ignores(obj: K8sObject | None) -> set[str]:
    if obj is None:
        return set()
    value = obj.annotations.get(IGNORE_ANNOTATION, "")
    return {v.strip().upper() for v in value.split(",") if v.strip()}


def _object_for(inv: Inventory, ref: ObjectRef | None, file: str | None) -> list[K8sObject]:
    if ref is None:
        return []
    key = (ref.kind, ref.namespace, ref.name)
    out = [o for o in inv.repo_by_key.get(key, []) if file is None or o.file == file
           or any(origin[0] == file for origin in (o.origins or {}).values())]  # a field an overlay sets
    live = inv.live_by_key.get(key)
    if live is not None:
        out.append(live)
    return out


def _merge(findings: list[Finding]) -> list[Finding]:
    """One problem seen in a file and live is one finding, located in the file; one line of a base rendered by
    several roots (overlays, Flux Kustomizations) is one finding too."""
    out: list[Finding] = []
    by_key: dict[tuple[str, str], Finding] = {}
    for f in findings:
        if not f.dedupe:
            out.append(f)
            continue
        key = (f.rule, f.dedupe)
        first = by_key.get(key)
        if first is None:
            by_key[key] = f
            out.append(f)
            continue
        _absorb(first, f)
    by_place: dict[tuple[str, str, int, str], Finding] = {}
    merged: list[Finding] = []
    for f in out:
        if f.file is None or f.line is None:
            merged.append(f)
            continue
        place = (f.rule, f.file, f.line, f.message)
        if place in by_place:
            first = by_place[place]
            if f.object is not None and f.object != first.object:
                first.evidence.append(f"the same line is also deployed as {f.object}")
            _absorb(first, f)
        else:
            by_place[place] = f
            merged.append(f)
    return merged


def _absorb(first: Finding, f: Finding) -> None:
    if first.file is None and f.file is not None:
        first.file, first.line = f.file, f.line
    if f.source not in first.source.split("+"):
        first.source = f"{first.source}+{f.source}"
    first.severity = max(first.severity, f.severity)
    for e in f.evidence:
        if e not in first.evidence:
            first.evidence.append(e)


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Grouped by family, worst family first; inside, worst first, then by object and file."""
    worst: dict[int, int] = {}
    for f in findings:
        worst[f.family] = max(worst.get(f.family, 0), int(f.severity))
    return sorted(findings, key=lambda f: (-worst[f.family], f.family, -int(f.severity), f.rule,
                                           str(f.object or ""), f.file or "", f.line or 0))


def run(inv: Inventory, cfg: Config, *, select: list[str] | None = None, ignore: list[str] | None = None,
        annotation_ignores: bool | None = None) -> Result:
    """Run every applicable rule and apply config, CLI and annotation suppressions."""
    use_annotations = cfg.annotation_ignores if annotation_ignores is None else annotation_ignores
    rules = select_rules(select, [*(ignore or []), *cfg.ignore])
    sources = inv.sources
    raw: list[Finding] = []
    ran: list[str] = []
    failed: list[Finding] = []
    for r in rules:
        if not r.applies(sources):
            continue
        ran.append(r.id)
        try:
            raw.extend(list(r.func(Context(inv, cfg, r))))  # all or nothing: no half-counted findings
        except Exception as exc:  # a rule bug or an input shape it did not expect: report, go on
            failed.append(internal_error(r, exc))
    result = Result(findings=[*failed], rules_run=ran)
    for f in _merge(raw):
        if _depends_on_unresolved(inv, f):
            result.withheld += 1
            continue
        reason = _suppression(inv, cfg, f, use_annotations)
        if reason:
            result.suppressed.append(Suppressed(f, reason))
        else:
            result.findings.append(f)
    result.findings = sort_findings(result.findings)
    return result


def internal_error(rule: Rule, exc: Exception) -> Finding:
    """The ``KS000`` finding that stands in for a rule that raised (never suppressed; the CLI exits 2)."""
    text = " ".join(str(exc).split())
    text = text if len(text) <= 300 else text[:297] + "..."
    return Finding(rule=INTERNAL_ERROR, severity=Severity.ERROR, family=rule.family, object=None,
                   message=f"internal error in rule {rule.id}: {type(exc).__name__}: {text}",
                   fix=f"The other rules ran; {rule.id} did not. Please report this with the input's shape "
                       f"(not its data), and meanwhile skip the rule with --ignore {rule.id}.",
                   source="kubeshape")


def _depends_on_unresolved(inv: Inventory, f: Finding) -> bool:
    """A finding whose text carries a ``${VARIABLE}`` of a repo object that holds one: nothing is guessed."""
    if f.object is None or "${" not in f"{f.message}\n{f.fix}\n" + "\n".join(f.evidence):
        return False
    key = (f.object.kind, f.object.namespace, f.object.name)
    return any(o.unresolved for o in inv.repo_by_key.get(key, [])) or "${" in f.object.name

def _suppression(inv: Inventory, cfg: Config, f: Finding, use_annotations: bool) -> str | None:
    for s in cfg.suppressions:
        if s.matches(f.rule, f.object):
            return f"kubeshape.yaml: {s.reason}"
    if use_annotations:
        for obj in _object_for(inv, f.object, f.file):
            if _matches(f.rule, _annotation_ignores(obj)):
                where = obj.file or "live object"
                return f"annotation {IGNORE_ANNOTATION} on {f.object} ({where})"
    return None


def worst_severity(findings: list[Finding]) -> Severity | None:
    return max((f.severity for f in findings), default=None)
