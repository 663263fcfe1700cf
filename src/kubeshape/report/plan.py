"""The fixes of all incidents as one ordered, deduplicated plan in three phases, like the seed RCA's."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from kubeshape.findings import Finding, Severity
from kubeshape.report.causes import wording
from kubeshape.report.fixblocks import FixBlock, split_fix
from kubeshape.report.incidents import PHASES, Incident

PHASE_TITLES = {
    "stop": "Stop the bleeding",
    "foundation": "Foundation",
    "excellence": "Excellence",
}
PHASE_HINTS = {
    "stop": "what unblocks failing deploys and stops the damage now",
    "foundation": "one source of truth, CI, retention",
    "excellence": "observability and alerts",
}
# A reconcile is needed after every commit: a later step that commits again repeats it.
_RECONCILE = re.compile(r"^\s*flux\s+reconcile\b")
RESTORE = "Let Flux restore what git commits"
# Commands that only look (they help a person understand, they do not fix anything).
_READ_ONLY = re.compile(r"^\s*(?:#|kubectl\s+(?:get|describe|logs|top|explain|events|auth)\b|docker\s+(?:inspect|"
                        r"images|logs)\b|test\s+-z|echo\b|cat\b|curl\s+-s\b)")


@dataclass(slots=True)
class Step:
    """One thing to do: its phase, what it achieves, the incidents it closes and the exact commands or diffs."""

    number: int
    phase: str
    title: str
    incidents: list[str]
    severity: Severity
    blocks: list[FixBlock] = field(default_factory=list)
    block_rules: list[str] = field(default_factory=list)  # the rule each block's fix came from
    same_as: list[int] = field(default_factory=list)  # earlier steps whose commands this one reuses

    @property
    def commands(self) -> list[str]:
        """The shell lines of this step that change something, in order."""
        return self._lines(lambda ln: not _READ_ONLY.match(ln), all_rules=True)

    def summary(self) -> list[str]:
        """What a short report shows: the commands of the rules that belong in this phase, else their
        instructions (comment lines), else the first sentence of their fix."""
        lines = self._lines(lambda ln: not _READ_ONLY.match(ln), all_rules=False)
        if lines:
            return lines
        notes = self._lines(lambda ln: ln.lstrip().startswith("#"), all_rules=False)
        if notes:
            return [ln.lstrip().removeprefix("#").strip() for ln in notes]
        prose = next((b.text for b, r in zip(self.blocks, self.block_rules, strict=True)
                      if not b.code and wording(r).phase == self.phase), "")
        first = prose.split("\n")[0].strip().lstrip("#").strip()
        return [first] if first else []

    def _lines(self, keep: Callable[[str], bool], all_rules: bool) -> list[str]:
        out = []
        for b, rule_id in zip(self.blocks, self.block_rules, strict=True):
            if not all_rules and wording(rule_id).phase != self.phase:
                continue
            if b.code and b.lang in ("bash", "sh", "shell", "console"):
                out += [ln.rstrip() for ln in b.text.splitlines() if ln.strip() and keep(ln)]
        return out

    def fix_markdown(self) -> str:
        parts = []
        for b in self.blocks:
            parts.append(f"```{b.lang}\n{b.text}\n```" if b.code else b.text)
        if self.same_as:
            parts.append(self.also_closed_by)
        return "\n\n".join(parts)

    @property
    def also_closed_by(self) -> str:
        """``The commands of step 1, 3 also close it.`` (empty when no earlier step does)."""
        if not self.same_as:
            return ""
        return "The commands of step " + ", ".join(str(n) for n in self.same_as) + " also close it."

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.number, "phase": self.phase, "phaseTitle": PHASE_TITLES[self.phase],
                "title": self.title, "closes": self.incidents, "severity": self.severity.label,
                "fix": self.fix_markdown(), "commands": self.commands}


class _Seen:
    """Code blocks, command lines and prose already in the plan: each is printed once."""

    def __init__(self) -> None:
        self.blocks: dict[str, int] = {}
        self.lines: dict[str, int] = {}

    def take(self, step: Step, findings: list[Finding]) -> None:
        for f in findings:
            for block in split_fix(f.fix):
                self._add(step, block, f.rule)

    def _add(self, step: Step, block: FixBlock, rule_id: str) -> None:
        key = " ".join(block.text.split())
        if key in self.blocks:
            if self.blocks[key] != step.number and self.blocks[key] not in step.same_as:
                step.same_as.append(self.blocks[key])
            return
        if block.code and block.lang in ("bash", "sh", "shell"):
            fresh = any(not ln.lstrip().startswith("#") and not _RECONCILE.match(ln)
                        and " ".join(ln.split()) not in self.lines for ln in block.text.splitlines() if ln.strip())
            lines = [ln for ln in block.text.splitlines()
                     if ln.lstrip().startswith("#") or " ".join(ln.split()) not in self.lines
                     or (fresh and _RECONCILE.match(ln))]
            if not [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]:
                return
            for ln in lines:
                self.lines.setdefault(" ".join(ln.split()), step.number)
            block = block._replace(text="\n".join(lines))
        self.blocks[key] = step.number
        step.blocks.append(block)
        step.block_rules.append(rule_id)


def _restores(inc: Incident) -> list[Finding]:
    """Changes made behind Flux that caused something in ``inc`` and that a reconcile undoes: the repository sets
    every changed field it holds to a value known to work (KS211's ``restorable``)."""
    causes = {id(c) for c in inc.explaining}
    return [f for f in inc.findings if f.rule == "KS211" and f.data.get("restorable") and f.data.get("reconcile")
            and id(f) in causes]


def _restore_fix(f: Finding) -> str:
    """Flux puts back what git commits (named from the finding's data), at its next reconcile or now."""
    d = f.data
    values = "; ".join(f"{c.get('field')} = {c.get('value')} at {c.get('file')}:{c.get('line')}"
                       for c in d.get("committed") or [] if isinstance(c, dict))
    obj = f"{f.object.kind} {f.object.namespace}/{f.object.name}" if f.object is not None else "It"
    note = f" ({d['committed_unchecked']})" if d.get("committed_unchecked") else ""
    kept = ", ".join(str(p) for p in d.get("not_reverted") or [])
    left = f"\n{kept}: not in the file, so Flux leaves it as changed; undo it by hand." if kept else ""
    return (f"{obj} was changed behind Flux. The repository sets {values}{note}: Flux restores it at the next "
            f"reconcile of Kustomization {d.get('kustomization')} ({d.get('next_reconcile')}), or now:\n"
            f"```bash\n{d.get('reconcile')}\n```{left}")


class _Findings:
    """A list of findings that takes a finding only when no equal one is in it yet (looked up by rule, object
    and message, so adding is not a scan of the whole list)."""

    def __init__(self, first: list[Finding]) -> None:
        self.items = list(first)
        self._index: dict[tuple[Any, ...], list[Finding]] = {}
        for f in self.items:
            self._index.setdefault(self._key(f), []).append(f)

    @staticmethod
    def _key(f: Finding) -> tuple[Any, ...]:
        return f.rule, f.object, f.message, f.file, f.line

    def extend(self, findings: list[Finding]) -> None:
        for f in findings:
            same = self._index.setdefault(self._key(f), [])
            if f not in same:
                same.append(f)
                self.items.append(f)


def build_plan(incidents: list[Incident]) -> list[Step]:
    """One step per incident fix (plus a stop-gap where a symptom can be stopped before its cause is fixed),
    merged when two incidents need the same step, ordered by phase and then by incident."""
    drafts: list[tuple[str, str, Incident, list[Finding]]] = []
    for inc in incidents:
        lead_rules = {f.rule for f in inc.fix_findings if wording(f.rule).action == inc.action}
        restores = _restores(inc)
        if restores:
            drafts.append(("stop", RESTORE, inc, [replace(f, fix=_restore_fix(f)) for f in restores]))
        main = [f for f in inc.fix_findings if not (wording(f.rule).mitigates and f.rule not in lead_rules
                                                    and inc.phase != "stop") and f not in restores]
        drafts.append((inc.phase, inc.action, inc, main))
        if inc.phase != "stop":
            stopgaps = [f for f in inc.fix_findings if wording(f.rule).mitigates and f.rule not in lead_rules
                        and f.severity >= Severity.WARNING]
            if stopgaps:
                drafts.append(("stop", wording(stopgaps[0].rule).action, inc, stopgaps))
    steps: list[Step] = []
    by_key: dict[tuple[str, str], tuple[Step, _Findings]] = {}
    order = {p: i for i, p in enumerate(PHASES)}
    pending: list[tuple[Step, _Findings]] = []
    for phase, title, inc, findings in sorted(drafts, key=lambda d: order[d[0]]):
        key = (phase, title)
        if key in by_key:
            step, fs = by_key[key]
            if inc.id not in step.incidents:
                step.incidents.append(inc.id)
            step.severity = max(step.severity, inc.severity)
            fs.extend(findings)
            continue
        step = Step(0, phase, title, [inc.id], inc.severity)
        by_key[key] = (step, _Findings(findings))
        pending.append(by_key[key])
    pending.sort(key=lambda p: p[0].severity == Severity.INFO)  # stable: info-only steps go last
    seen = _Seen()
    for n, (step, taken) in enumerate(pending, 1):
        step.number = n
        seen.take(step, taken.items)
        steps.append(step)
    return steps
