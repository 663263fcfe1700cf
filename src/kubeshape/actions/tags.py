"""``registry tags``: every tag with digest, created, size, scheme and usage, plus the KS4xx findings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubeshape.actions.ordering import newest_first
from kubeshape.actions.registries import RegistryState
from kubeshape.actions.render import rollback_lines, short, table, usage_json
from kubeshape.actions.usage import Usage
from kubeshape.config import Config
from kubeshape.engine import run
from kubeshape.findings import Finding
from kubeshape.inventory import Inventory, TagInfo
from kubeshape.registry.models import format_created
from kubeshape.timeutil import format_time
from kubeshape.usage import human_bytes

EVIDENCE_LINES = 4


@dataclass(frozen=True, slots=True)
class RepoListing:
    host: str
    reach: str
    name: str
    tags: list[TagInfo]  # newest first (actions.ordering); unknown time last
    used_by: dict[str, list[str]]
    follows_scheme: dict[str, bool]


def build_listing(state: RegistryState, usage: Usage, cfg: Config) -> list[RepoListing]:
    pattern = cfg.tag_pattern
    out = []
    for (host, name), repo in sorted(state.snapshot.repos.items()):
        uses = usage.of(host, name)
        tags = newest_first(list(repo.tags.values()))
        out.append(RepoListing(host, state.reach(host), name, tags, {t.tag: uses.everything_for(t) for t in tags},
                               {t.tag: bool(pattern.search(t.tag)) for t in tags}))
    return out


def family4_findings(inv: Inventory, cfg: Config) -> list[Finding]:
    """KS401-KS404 over the live registry data (and the cluster/repo when loaded)."""
    return run(inv, cfg, select=["KS4xx"]).findings


def listing_text(listing: list[RepoListing], findings: list[Finding], usage: Usage) -> list[str]:
    checked = ", ".join(usage.checked) if usage.checked else "nothing (give --repo, --bundle or --kubeconfig/--context)"
    lines = [f"Usage checked against: {checked}", *rollback_lines(usage)]
    for r in listing:
        via = f" (via {r.reach})" if r.reach != r.host else ""
        images = {t.digest for t in r.tags if t.digest}
        lines += ["", f"{r.host}/{r.name}{via}: {len(r.tags)} tags, {len(images)} images"]
        rows = [["TAG", "DIGEST", "CREATED", "SIZE", "SCHEME", "USED BY"]]
        rows += [[t.tag, short(t.digest), format_time(t.created) or "-",
                  human_bytes(t.size) if t.size is not None else "-", "yes" if r.follows_scheme[t.tag] else "no",
                  "; ".join(r.used_by[t.tag]) or "-"] for t in r.tags]
        lines += table(rows)
    lines += ["", f"Findings (KS4xx): {len(findings) or 'none'}"]
    for f in findings:
        lines.append(f"  {f.rule} {f.severity.label}: {f.message}")
        lines += [f"      {e}" for e in f.evidence[:EVIDENCE_LINES]]
        if len(f.evidence) > EVIDENCE_LINES:
            lines.append(f"      (+{len(f.evidence) - EVIDENCE_LINES} more: kubeshape doctor -v, or -o json)")
    return lines


def listing_json(listing: list[RepoListing], findings: list[Finding], usage: Usage) -> dict[str, Any]:
    return {
        "version": 1,
        "command": "registry tags",
        "usage": usage_json(usage),
        "repositories": [{
            "host": r.host, "reach": r.reach, "name": r.name,
            "tags": [{"tag": t.tag, "digest": t.digest, "created": format_created(t.created), "size": t.size,
                      "revision": t.revision, "follows_scheme": r.follows_scheme[t.tag],
                      "used_by": r.used_by[t.tag]} for t in r.tags],
        } for r in listing],
        "findings": [f.as_dict() for f in findings],
    }
