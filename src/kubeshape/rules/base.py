"""Rule registry: every rule has a stable ID, a name, a family, a default severity and a doc."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubeshape.findings import Finding, ObjectRef, Severity
from kubeshape.inventory import Inventory, K8sObject

if TYPE_CHECKING:
    from kubeshape.config import Config

RuleFunc = Callable[["Context"], Iterator[Finding]]


@dataclass(frozen=True, slots=True)
class RuleDoc:
    """The four parts of a rule's documentation, as ``kubeshape rule KSxxx`` prints them."""

    what: str
    why: str
    example: str
    fix: str


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    name: str
    family: int
    severity: Severity
    summary: str
    doc: RuleDoc
    requires: tuple[str, ...]
    func: RuleFunc

    def applies(self, sources: set[str]) -> bool:
        return all(r in sources for r in self.requires)


REGISTRY: dict[str, Rule] = {}
_RULE_ID = re.compile(r"KS[1-7]\d\d")

_SECTION = re.compile(r"^## (.+)$", re.M)


def _parse_doc(rule_id: str, text: str) -> tuple[str, RuleDoc]:
    text = inspect.cleandoc(text)
    summary, _, rest = text.partition("\n")
    parts = _SECTION.split(rest)
    sections = {parts[i].strip().lower(): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    wanted = {"what it does": "what", "why is this bad?": "why", "example": "example", "fix": "fix"}
    missing = [k for k in wanted if k not in sections]
    if missing:
        raise ValueError(f"rule {rule_id}: docstring lacks sections {missing}")
    return summary.strip(), RuleDoc(**{v: sections[k] for k, v in wanted.items()})


def rule(rule_id: str, name: str, *, severity: Severity,
         requires: tuple[str, ...] = ()) -> Callable[[RuleFunc], RuleFunc]:
    """Register a rule; its docstring holds the summary and the What/Why/Example/Fix sections."""
    if not _RULE_ID.fullmatch(rule_id):
        raise ValueError(f"bad rule id {rule_id}")

    def deco(func: RuleFunc) -> RuleFunc:
        if rule_id in REGISTRY:
            raise ValueError(f"duplicate rule id {rule_id}")
        summary, doc = _parse_doc(rule_id, func.__doc__ or "")
        REGISTRY[rule_id] = Rule(rule_id, name, int(rule_id[2]), severity, summary, doc, requires, func)
        return func

    return deco


class Context:
    """What a rule sees: the inventory, the config, and helpers to build findings."""

    def __init__(self, inv: Inventory, cfg: Config, rule: Rule | None = None) -> None:
        self.inv = inv
        self.cfg = cfg
        self.rule = rule

    def finding(self, obj: K8sObject | ObjectRef | None, message: str, *, path: str = "",
                severity: Severity | None = None, evidence: list[str] | None = None, fix: str = "",
                root_cause: str = "", dedupe: str = "", data: dict[str, Any] | None = None,
                file: str | None = None, line: int | None = None, source: str | None = None) -> Finding:
        """A finding for the current rule, located at ``path`` of ``obj`` when it came from a file."""
        assert self.rule is not None
        ref: ObjectRef | None
        if isinstance(obj, K8sObject):
            ref = obj.ref
            if file is None and obj.file:
                file, line = obj.where(path) if path else (obj.file, obj.line)
            source = source or obj.source
        else:
            ref = obj
        return Finding(rule=self.rule.id, severity=severity or self.rule.severity, family=self.rule.family,
                       object=ref, message=message, evidence=evidence or [], fix=fix,
                       root_cause=root_cause, file=file, line=line, source=source or "cluster",
                       data=data or {}, dedupe=dedupe)


_ORDERED: list[Rule] = []


def all_rules() -> list[Rule]:
    """Every registered rule, in ID order (importing the family modules registers them, once)."""
    if not _ORDERED or len(_ORDERED) != len(REGISTRY) or any(REGISTRY.get(r.id) is not r for r in _ORDERED):
        import kubeshape.rules as package

        for mod in pkgutil.iter_modules(package.__path__):
            if not mod.name.startswith("_") and mod.name != "base":
                importlib.import_module(f"kubeshape.rules.{mod.name}")
        _ORDERED[:] = [REGISTRY[k] for k in sorted(REGISTRY)]
    return list(_ORDERED)


def get_rule(rule_id: str) -> Rule | None:
    """The rule ``rule_id`` (any case), importing its family's module first; every module when that one does not
    register it. None for an ID no rule has."""
    from kubeshape.rules import FAMILY_MODULES

    key = rule_id.upper()
    found = REGISTRY.get(key)
    if found is None and _RULE_ID.fullmatch(key):  # rule() registers no other shape of ID
        importlib.import_module(f"kubeshape.rules.{FAMILY_MODULES[int(key[2])]}")
        found = REGISTRY.get(key)
        if found is None:
            all_rules()
            found = REGISTRY.get(key)
    return found
