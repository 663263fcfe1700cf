"""One pipeline for every command: inventory → rules → findings → metrics → report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from kubeshape import __version__, metrics
from kubeshape.config import Config
from kubeshape.engine import Result, run
from kubeshape.inventory import Inventory
from kubeshape.report.model import Report
from kubeshape.sources._gc import paused


@dataclass(slots=True)
class Selection:
    """Which rules run and which suppressions count (CLI flags)."""

    select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    annotation_ignores: bool | None = None


def describe_sources(inv: Inventory) -> dict[str, str]:
    out: dict[str, str] = {}
    if inv.repo is not None:
        roots = f", {inv.repo.roots} render roots" if inv.repo.roots > 1 else ""
        out["repo"] = f"{inv.repo.root} ({len(inv.repo.yaml_files)} YAML files, {len(inv.repo.objects)} objects{roots})"
    if inv.cluster is not None:
        n = sum(len(v) for v in inv.cluster.objects.values())
        when = f", collected {inv.cluster.collected_at:%Y-%m-%d %H:%M %Z}" if inv.cluster.collected_at else ""
        out["cluster"] = f"{inv.cluster.name} ({n} objects, {len(inv.cluster.events)} events{when})"
    if inv.registry is not None:
        tags = sum(len(r.tags) for r in inv.registry.repos.values())
        out["registry"] = f"{', '.join(sorted(inv.registry.hosts)) or 'none'} ({len(inv.registry.repos)} " \
                          f"repositories, {tags} tags)"
    if inv.git is not None:
        out["git"] = f"{inv.git.root} (HEAD {inv.git.head[:12] if inv.git.head else 'none'}, " \
                     f"{len(inv.git.commits)} commits)"
    return out


def analyse(inv: Inventory, cfg: Config, selection: Selection | None = None,
            command: str = "doctor") -> tuple[Report, Result]:
    """Run the rules and compute metrics; the report is ready for any renderer."""
    sel = selection or Selection()
    with paused():
        result = run(inv, cfg, select=sel.select, ignore=sel.ignore, annotation_ignores=sel.annotation_ignores)
        computed = metrics.compute(inv, result.findings, cfg.thresholds.restarts_per_day,
                                   cfg.thresholds.max_tags_per_repository)
    report = Report(
        findings=result.findings,
        metrics=computed,
        sources=describe_sources(inv),
        blind_spots=[*(inv.repo.not_analysed if inv.repo else []),
                     *(f"{kind}: {reason}" for kind, reason in (inv.cluster.blind_spots if inv.cluster else [])),
                     *(f"{n} finding(s) withheld: they depend on values of unresolved variables"
                       for n in [result.withheld] if n)],
        notes=[*(inv.repo.notes if inv.repo else []), *(inv.cluster.notes if inv.cluster else [])],
        suppressed=len(result.suppressed),
        generated_at=datetime.now().astimezone(),
        command=command,
        tool_version=__version__,
    )
    return report, result
