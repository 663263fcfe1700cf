"""Findings -> plan: each fixer gets the findings of its rules, in the order of ``fixers.FIXERS``."""

from __future__ import annotations

from pathlib import Path

from kubeshape.actions.fix.context import FixContext, Options
from kubeshape.actions.fix.fixers import FIXERS
from kubeshape.actions.fix.plan import Plan
from kubeshape.config import Config
from kubeshape.findings import Finding
from kubeshape.inventory import Inventory
from kubeshape.report.incidents import build_incidents


def build_plan(inv: Inventory, cfg: Config, findings: list[Finding], repo_root: Path | None,
               options: Options | None = None, context: str | None = None) -> Plan:
    """The plan that fixes what can be fixed of ``findings``; the rest is listed as skipped with the reason."""
    incident_of: dict[int, str] = {}
    for inc in build_incidents(findings):
        for f in inc.findings:
            incident_of.setdefault(id(f), f"#{inc.id} {inc.title}")
    ctx = FixContext(inv, cfg, findings, repo_root, options, incident_of)
    for rules, fixer in FIXERS:
        chosen = [f for f in findings if f.rule in rules]
        if chosen:
            fixer(ctx, chosen)
    flux = any(k.startswith("Kustomization.") for k in (inv.cluster.objects if inv.cluster else {}))
    return Plan(repo=str(repo_root.resolve()) if repo_root is not None else None, context=context,
                gitops=flux, steps=ctx.steps, skipped=ctx.skipped)

