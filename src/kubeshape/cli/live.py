"""Reading live clusters for ``doctor`` and ``snapshot``: contexts, progress, merged reports.

``--request-timeout`` parsing lives in :mod:`kubeshape.cli.timeouts` (re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeshape.cli.timeouts import REQUEST_TIMEOUT_HELP as REQUEST_TIMEOUT_HELP
from kubeshape.cli.timeouts import parse_request_timeout as parse_request_timeout

# The Kubernetes client (lightkube, httpx) is imported when a cluster is read: doctor --demo or --bundle builds
# LiveOptions too, and never reads one.
if TYPE_CHECKING:
    from kubeshape.inventory import ClusterSource
    from kubeshape.report.model import Report
    from kubeshape.sources.live import Collection


def _default_request_timeout() -> float:
    from kubeshape.sources.live import DEFAULT_REQUEST_TIMEOUT

    return DEFAULT_REQUEST_TIMEOUT


def _default_burst() -> int:
    from kubeshape.sources.live import DEFAULT_BURST

    return DEFAULT_BURST


@dataclass(slots=True)
class LiveOptions:
    kubeconfig: Path | None
    contexts: list[str] | None
    namespaces: list[str] | None
    qps: float
    max_logs: int
    all_contexts: bool
    # seconds per request, retries included; None: none
    request_timeout: float | None = field(default_factory=_default_request_timeout)
    burst: int = field(default_factory=_default_burst)  # requests let out at once before --qps paces them


def _context_names(opts: LiveOptions) -> list[str | None]:
    from kubeshape.sources.live import contexts, kubeconfig_path

    if opts.all_contexts:
        names, _ = contexts(kubeconfig_path(opts.kubeconfig))
        return list(names)
    return list(opts.contexts) if opts.contexts else [None]


def collect_live(opts: LiveOptions) -> list[Collection]:
    """One collection per context, each with a progress bar on terminals."""
    from kubeshape.sources.live import KINDS, collect, connect
    from kubeshape.ui import KindProgress

    out = []
    for name in _context_names(opts):
        api, _ = connect(opts.kubeconfig, name, qps=opts.qps, burst=opts.burst, timeout=opts.request_timeout)
        with api.http:
            jobs = len(KINDS) if not opts.namespaces else sum(
                len(opts.namespaces) if k.namespaced else 1 for k in KINDS)
            with KindProgress(f"Reading {api.context}", jobs) as bar:
                out.append(collect(api, opts.namespaces, max_logs=opts.max_logs, progress=bar.update))
    return out


def read_live(opts: LiveOptions) -> list[ClusterSource]:
    from kubeshape.sources.live import to_cluster

    return [to_cluster(c) for c in collect_live(opts)]


def merge_reports(reports: list[Report]) -> Report:
    """One report for several clusters: findings carry their cluster, metrics are keyed per cluster."""
    from kubeshape.engine import sort_findings
    from kubeshape.report.model import Report

    first = reports[0]
    merged = Report(findings=[], sources={}, generated_at=first.generated_at, command=first.command,
                    tool_version=first.tool_version)
    for r in reports:
        cluster = r.sources.get("cluster", "?").split(" ", 1)[0]
        for f in r.findings:
            f.data = {**f.data, "cluster": cluster}
            if f.object is not None and f.source.startswith("cluster"):
                f.message = f"[{cluster}] {f.message}"
            merged.findings.append(f)
        for key, value in r.sources.items():
            merged.sources[key if key != "cluster" else f"cluster {cluster}"] = value
        for m in r.metrics:
            m.key, m.title = f"{cluster}/{m.key}", f"{m.title} [{cluster}]"
            merged.metrics.append(m)
        merged.blind_spots += [f"{cluster}: {b}" for b in r.blind_spots]
        merged.notes += [f"{cluster}: {n}" for n in r.notes]
        merged.suppressed += r.suppressed
    merged.findings = sort_findings(merged.findings)
    return merged


def snapshot_registries(specs: list[str], insecure: bool, timeout: float | None) -> dict[str, Any]:
    """registry.json content for ``specs``: ``host[:port]``, or ``reach=known`` to snapshot the registry at
    ``reach`` (e.g. a port-forward) under the name the cluster's images use (``known``). Each registry must
    answer ``/v2/`` as a registry does; ``timeout`` bounds each request, retries included (None: no limit)."""
    from kubeshape.registry.client import RegistryClient
    from kubeshape.registry.snapshot import snapshot

    aliases: dict[str, str] = {}
    for spec in specs:
        reach, _, known = spec.partition("=")
        aliases[reach] = known or reach
    clients: dict[str, RegistryClient] = {}
    try:
        for reach in aliases:
            clients[reach] = RegistryClient(reach, insecure=insecure, timeout=timeout)
            clients[reach].ping()  # a web server or a silent port fails here, in one line, not as an empty registry
        doc = snapshot(list(aliases), clients=clients)
    finally:
        for client in clients.values():
            client.close()
    for reg in doc["registries"]:
        reg["host"] = aliases.get(reg["host"], reg["host"])
    return doc
