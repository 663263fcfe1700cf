"""KS5xx stability: restart storms, probes throttled by rate limiters, crash loops and log floods."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kubeshape.findings import Finding, ObjectRef, Severity
from kubeshape.inventory import Container, Inventory, K8sObject, containers, event_count, pod_template_path
from kubeshape.metrics import CRASHING
from kubeshape.redact import redact_text
from kubeshape.rules import _gitops
from kubeshape.rules.base import Context, rule
from kubeshape.timeutil import format_time, human_duration, parse_time

MAX_LISTED = 10  # pods or containers listed in one finding's evidence
TOP_TEMPLATES = 3
SAMPLE_CHARS = 300

EXIT_CODES = {
    0: "exited successfully — a long-running container must not exit",
    1: "application error",
    2: "bad arguments or shell misuse",
    126: "command found but not executable",
    127: "command not found (wrong command/entrypoint or missing binary)",
    134: "SIGABRT: the process aborted",
    137: "SIGKILL: OOM-killed, or killed after a failed liveness probe",
    139: "SIGSEGV: segmentation fault",
    143: "SIGTERM: stopped by Kubernetes (liveness probe, eviction, rollout) or another process",
}

_FIELD_CONTAINER = re.compile(r"\{([^}]*)\}")
_FRACTION = re.compile(r"(\.\d{6})\d+")
_QUANTITY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_MISSING_REF = re.compile(r'(secret|configmap) "([^"]+)" not found', re.I)

# A leading timestamp and/or log level ("2025-11-17T09:58:40.123Z WARNING ", "[ERROR] ", "level=warn ").
_LOG_PREFIX = re.compile(
    r"^\s*(?:\[?(?P<ts>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:\s?(?:Z|[+-]\d{2}:?\d{2}))?)\]?)?"
    r"(?:\s*\[\d+\])*[\s,|-]*"
    r"(?:\[?(?:level=)?(?P<level>TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|CRITICAL|FATAL|PANIC)\]?(?![\w.])"
    r"[\s:|-]*)?",
    re.I,
)
# Variable parts of a message, masked so that repeats share one template. Order matters.
_LOG_MASK = re.compile(
    r"\b(?=[0-9a-fA-F])(?:"  # every variable part starts a word with a hex digit: skip other positions fast
    r"(?P<uuid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)"
    r"|(?P<ip>\d{1,3}(?:\.\d{1,3}){3}\b)"
    r"|(?P<time>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)"
    r"|(?P<hex>0x[0-9a-fA-F]+\b|(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{6,}\b)"
    r"|(?P<duration>(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+\b)"
    r"|(?P<num>\d+(?:\.\d+)?\b))"
)
_LOG_LEVEL = re.compile(
    r"(?i:level=)(?P<named>\w+)|\b(?P<upper>TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|CRITICAL|FATAL)\b")
# Fields of a JSON log line (zap, logrus, structlog, pino with string times).
_JSON_FIELD = re.compile(
    r'"(?P<key>msg|message|level|severity|lvl|ts|time|timestamp|@timestamp)"\s*:\s*"(?P<val>(?:[^"\\]|\\.)*)"')
QUIET_LEVELS = {"TRACE", "DEBUG", "INFO", "NOTICE"}
_ACCESS_LOG = re.compile(r'\b(?:GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) (?:/|https?://)\S*')
_SVC_HOST = re.compile(
    r"\b(?P<svc>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.(?P<ns>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)"
    r"\.svc(?:\.cluster\.local)?(?::\d+)?\b"
)
_TELEMETRY = re.compile(r"otel|opentelemetry|otlp|export|jaeger|zipkin|tempo", re.I)


# -- shared helpers ---------------------------------------------------------------------------------

def _pods_by_workload(inv: Inventory) -> list[tuple[K8sObject, list[K8sObject]]]:
    """Live pods grouped by the workload a user wrote (one pass over the pods, shared by the KS5xx rules)."""

    def build() -> list[tuple[K8sObject, list[K8sObject]]]:
        groups: dict[tuple[str, str, str], tuple[K8sObject, list[K8sObject]]] = {}
        for pod in inv.live("Pod"):
            top = inv.top_workload(pod)
            groups.setdefault(top.key, (top, []))[1].append(pod)
        return list(groups.values())

    return inv.memo("stability.pods_by_workload", build)


def _statuses(pod: K8sObject, init: bool = False) -> list[dict[str, Any]]:
    out = list(pod.status.get("containerStatuses") or [])
    return (list(pod.status.get("initContainerStatuses") or []) + out) if init else out


def _terminated(cs: dict[str, Any]) -> dict[str, Any]:
    return ((cs.get("lastState") or {}).get("terminated")) or {}


def _exit_meaning(code: Any, reason: str = "") -> str:
    if reason == "OOMKilled":
        return "SIGKILL: OOM-killed (memory limit exceeded)"
    if not isinstance(code, int):
        return "unknown"
    if code in EXIT_CODES:
        return EXIT_CODES[code]
    return f"killed by signal {code - 128}" if code > 128 else "application-defined error"


def _last_exit(cs: dict[str, Any]) -> str:
    t = _terminated(cs)
    if not t:
        return ""
    code, reason = t.get("exitCode"), str(t.get("reason") or "")
    text = f"last terminated: {reason or 'unknown'}, exit code {code} ({_exit_meaning(code, reason)})"
    return text + (f" at {t['finishedAt']}" if t.get("finishedAt") else "")


def _event_times(ev: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    meta = ev.get("metadata") or {}
    series = ev.get("series") or {}
    first = parse_time(ev.get("firstTimestamp") or ev.get("eventTime") or meta.get("creationTimestamp"))
    last = parse_time(series.get("lastObservedTime") or ev.get("lastTimestamp") or ev.get("eventTime")
                      or meta.get("creationTimestamp"))
    return first, last or first


def _event_container(ev: dict[str, Any]) -> str | None:
    obj = ev.get("involvedObject") or ev.get("regarding") or {}
    m = _FIELD_CONTAINER.search(str(obj.get("fieldPath") or ""))
    return m.group(1) if m else None


def _pod_events(inv: Inventory, pods: Iterable[K8sObject], reason: str, needle: str) -> list[dict[str, Any]]:
    """Events of ``reason`` on these pods whose message contains ``needle`` (case-insensitive)."""
    out = []
    for pod in pods:
        for ev in inv.events_for("Pod", pod.namespace, pod.name, reason):
            if needle in str(ev.get("message") or "").lower():
                out.append(ev)
    return out


def _count(events: Iterable[dict[str, Any]]) -> int:
    return sum(event_count(e) for e in events)


def _code(lang: str, text: str) -> str:
    return f"```{lang}\n{text}\n```"


def _describe_cmds(pod: K8sObject, container: str) -> str:
    return "Read why the previous container stopped:\n" + _code("bash", (
        f"kubectl logs {pod.name} -n {pod.namespace} -c {container} --previous\n"
        f"kubectl describe pod {pod.name} -n {pod.namespace}"))


def _what(obj: K8sObject | ObjectRef) -> str:
    return f"{obj.kind} {obj.name}"


# -- KS501 ------------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Restarts:
    """Restart facts of one workload's pods."""

    total: int = 0
    days: float = 0.0
    lines: list[str] = field(default_factory=list)
    restarting: int = 0  # pods with restarts
    worst: tuple[K8sObject, str] | None = None  # (pod, container) with the most restarts
    worst_count: int = -1
    oom: str | None = None  # container that was OOM-killed
    crash_code: int | None = None

    @property
    def rate(self) -> float:
        """Restarts per day, as metrics.restarts_per_day counts them (total over the oldest pod's age)."""
        return self.total / max(self.days, 1.0)  # a younger pod: the count so far, not an extrapolation


def _collect_restarts(inv: Inventory, pods: list[K8sObject]) -> _Restarts:
    r = _Restarts()
    for pod in sorted(pods, key=lambda p: p.name):
        statuses = _statuses(pod)
        n = sum(int(cs.get("restartCount") or 0) for cs in statuses)
        r.total += n
        start = parse_time(pod.status.get("startTime") or pod.metadata.get("creationTimestamp"))
        age = inv.now - start if start else None
        if age is not None:
            r.days = max(r.days, age.total_seconds() / 86400)
        if n == 0:
            continue
        r.restarting += 1
        listed = r.restarting <= MAX_LISTED
        if listed:
            r.lines.append(_pod_rate_line(pod.name, n, age))
        for cs in statuses:
            count = int(cs.get("restartCount") or 0)
            if count == 0:
                continue
            t = _terminated(cs)
            if listed and _last_exit(cs):
                r.lines.append(f"{pod.name}/{cs.get('name')}: {count} restarts, {_last_exit(cs)}")
            if t.get("reason") == "OOMKilled":
                r.oom = str(cs.get("name"))
            elif isinstance(t.get("exitCode"), int) and t["exitCode"] not in (0, 137, 143):
                r.crash_code = t["exitCode"]
            if count > r.worst_count:
                r.worst, r.worst_count = (pod, str(cs.get("name"))), count
    return r


def _pace(n: int, seconds: float) -> str:
    """How fast ``n`` restarts came, in the unit the window supports (no per-day figure from 46 seconds)."""
    if n <= 0 or seconds <= 0:
        return "no restarts"
    if seconds >= 86400:
        return f"≈{n / seconds * 3600:.2f}/h, {n / seconds * 86400:.1f}/day"
    if seconds >= 3600:
        return f"≈{n / seconds * 3600:.1f}/h"
    return f"one every {seconds / n:.1f}s"


def _pod_rate_line(name: str, n: int, age: timedelta | None) -> str:
    if age is None or age.total_seconds() <= 0:
        return f"{name}: {n} restarts"
    return f"{name}: {n} restarts in {human_duration(age)} ({_pace(n, age.total_seconds())})"


def _rate_text(r: _Restarts) -> str:
    """``, 119.6 per day`` over a window of a day or more; `` in 46s (one every 0.1s)`` for shorter ones."""
    if r.days >= 1:
        return f", {r.rate:.1f} per day"
    seconds = r.days * 86400
    return f" in {human_duration(timedelta(seconds=seconds))} ({_pace(r.total, seconds)})" if seconds > 0 else ""


def _memory_limit(obj: K8sObject, container: str) -> str | None:
    c = next((c for c in containers(obj) if c.name == container), None)
    limit = ((c.spec.get("resources") or {}).get("limits") or {}).get("memory") if c else None
    return str(limit) if limit else None


def _doubled(quantity: str) -> str | None:
    m = _QUANTITY.match(quantity)
    return f"{int(m.group(1)) * 2}{m.group(2) or ''}" if m else None


def _restart_cause(inv: Inventory, top: K8sObject, r: _Restarts, kills: int, limited: int,
                   crashloop: int) -> tuple[str, str]:
    """Root cause and the cause-specific fix line, from the events and last states."""
    if limited:
        return (f"The liveness probe is answered with HTTP 429 ({limited} rate-limited probe failures): the app is "
                f"up, but the kubelet counts the 429s as failures and kills it ({kills} probe kills); see KS502.",
                "Then move the liveness probe to a cheap endpoint outside the rate limiter (the patch is in KS502).")
    if kills:
        return (f"The kubelet restarts the container because its liveness probe fails ({kills} probe kills "
                "in the events).", "Then check what the liveness probe calls: it must not depend on slow upstreams.")
    if r.oom:
        limit = _memory_limit(top, r.oom)
        more = _doubled(limit) if limit else None
        c = next((c for c in containers(top) if c.name == r.oom), None)
        flux = _gitops.change(inv, top, [_gitops.Edit(_gitops.container_path(c, "resources.limits.memory"), more)]) \
            if more and c is not None else None
        if flux is not None:
            fix = f"Then double the memory limit of container {r.oom}. {flux}"
        else:
            fix = (f"Then double the memory limit of container {r.oom}:\n" + _code("bash", (
                f"kubectl set resources {top.kind.lower()}/{top.name} -n {top.namespace} -c {r.oom} "
                f"--limits=memory={more}")) if more else f"Then raise the memory limit of container {r.oom}.")
        return (f"Container {r.oom} exceeds its memory limit ({limit or 'none set'}) and is OOM-killed.", fix)
    if r.crash_code is not None or crashloop:
        code = r.crash_code
        meaning = f" with exit code {code} ({_exit_meaning(code)})" if code is not None else ""
        return (f"The application exits on its own{meaning} and the kubelet restarts it; see KS503.",
                "The previous container's logs show the error it exits with.")
    return ("The containers restart repeatedly; the collected events and last states do not say why.",
            "The previous container's logs and the pod's events may say more.")


@rule("KS501", "restart-storm", severity=Severity.WARNING, requires=("cluster",))
def restart_storm(ctx: Context) -> Iterator[Finding]:
    """Workload whose pods restart more often than the restarts-per-day threshold.

    ## What it does
    Sums `restartCount` over a workload's pods, divides by the time since the oldest pod started and
    reports workloads above `thresholds.restarts_per_day` (with at least
    `thresholds.restart_storm_min_restarts` restarts). It is an error at ten times the threshold. The
    evidence lists each pod's rate, the last termination and the probe kills, and links the cause
    (KS502 rate-limited probes, KS503 crashes, OOM kills).

    ## Why is this bad?
    Every restart drops in-flight requests and warms caches again; hundreds of restarts (598 in five
    days in a real homelab incident) mean the service is down a little every hour and the real error is
    buried.

    ## Example
    ```text
    homelab-dashboard-5946d57cdf-b7kwx   1/1   Running   598 (12m ago)   5d
    ```

    ## Fix
    Read the previous container's logs and events, then fix the cause the finding names:
    ```shell
    kubectl logs homelab-dashboard-5946d57cdf-b7kwx -n homelab --previous
    kubectl describe pod homelab-dashboard-5946d57cdf-b7kwx -n homelab
    ```
    """
    th = ctx.cfg.thresholds
    for top, pods in _pods_by_workload(ctx.inv):
        r = _collect_restarts(ctx.inv, pods)
        if r.total < th.restart_storm_min_restarts or r.rate <= th.restarts_per_day or r.worst is None:
            continue
        kills = _count(_pod_events(ctx.inv, pods, "Killing", "failed liveness probe"))
        limited = _count(e for e in _pod_events(ctx.inv, pods, "Unhealthy", "statuscode: 429")
                         if "liveness" in str(e.get("message") or "").lower())
        crashloop = _count(_pod_events(ctx.inv, pods, "BackOff", "back-off restarting failed container"))
        evidence = r.lines + ([f"… and {r.restarting - MAX_LISTED} more restarting pods"]
                              if r.restarting > MAX_LISTED else [])
        evidence.append(f"workload: {r.total} restarts over {len(pods)} pod(s){_rate_text(r)} "
                        f"(threshold {th.restarts_per_day:g}/day)")
        if kills:
            evidence.append(f"{kills} 'Killing' events: container failed liveness probe, will be restarted")
        if limited:
            evidence.append(f"{limited} liveness probe failures with HTTP 429 (see KS502)")
        if crashloop:
            evidence.append(f"{crashloop} 'Back-off restarting failed container' events (see KS503)")
        cause, cause_fix = _restart_cause(ctx.inv, top, r, kills, limited, crashloop)
        pod, container = r.worst
        severe = th.restarts_per_day > 0 and r.rate >= 10 * th.restarts_per_day
        yield ctx.finding(
            top, f"{_what(top)}: {r.total} container restarts{_rate_text(r)} "
                 f"(threshold {th.restarts_per_day:g}/day)",
            severity=Severity.ERROR if severe else Severity.WARNING, evidence=evidence, root_cause=cause,
            fix=f"{_describe_cmds(pod, container)}\n{cause_fix}", source="cluster",
            data={"restarts": r.total, "per_day": round(r.rate, 2), "pods": sorted(p.name for p in pods),
                  "probe_kills": kills})


# -- KS502 ------------------------------------------------------------------------------------------

@dataclass(slots=True)
class _ProbeFailures:
    """HTTP 429 probe failures of one (container, probe type)."""

    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    sample: str = ""
    pods: set[str] = field(default_factory=set)

    def add(self, ev: dict[str, Any], pod: str) -> None:
        self.count += event_count(ev)
        first, last = _event_times(ev)
        if first and (self.first is None or first < self.first):
            self.first = first
        if last and (self.last is None or last > self.last):
            self.last = last
        self.sample = self.sample or str(ev.get("message") or "")
        self.pods.add(pod)


def _rate_limited_probes(inv: Inventory, pods: list[K8sObject]) -> dict[tuple[str | None, str], _ProbeFailures]:
    out: dict[tuple[str | None, str], _ProbeFailures] = {}
    for pod in pods:
        for ev in inv.events_for("Pod", pod.namespace, pod.name, "Unhealthy"):
            msg = str(ev.get("message") or "")
            if ev.get("type", "Warning") != "Warning" or "statuscode: 429" not in msg.lower():
                continue
            probe = msg.split(" ", 1)[0].lower()
            probe = probe if probe in ("liveness", "readiness", "startup") else "liveness"
            out.setdefault((_event_container(ev), probe), _ProbeFailures()).add(ev, pod.name)
    return out


def _find_container(top: K8sObject, pods: list[K8sObject], name: str | None) -> Container | None:
    for obj in (top, *pods[:1]):
        cs = [c for c in containers(obj) if not c.init]
        if name is None and len(cs) == 1:
            return cs[0]
        match = next((c for c in cs if c.name == name), None)
        if match is not None:
            return match
    return None


def _probe_text(kind: str, probe: dict[str, Any]) -> str:
    get = probe.get("httpGet") or {}
    where = f"GET {get.get('path', '/')} on port {get.get('port')}" if get else "non-HTTP"
    period = probe.get("periodSeconds", "10 (default)")
    threshold = probe.get("failureThreshold", "3 (default)")
    return f"{kind}Probe: {where}, periodSeconds {period}, failureThreshold {threshold}"


def _probe_port(spec: dict[str, Any]) -> Any:
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        port = ((spec.get(kind) or {}).get("httpGet") or {}).get("port")
        if port is not None:
            return port
    ports = spec.get("ports") or []
    return ports[0].get("containerPort") if ports else None


def _probe_yaml(kind: str, old: dict[str, Any], path: str, port: Any, period: int, indent: str) -> list[str]:
    old_get = old.get("httpGet") or {}
    port = old_get.get("port", port)
    lines = [f"{kind}Probe:", "  httpGet:", f"    path: {path}", f"    port: {port}"]
    if old_get.get("scheme"):
        lines.append(f"    scheme: {old_get['scheme']}")
    lines += [f"  periodSeconds: {max(int(old.get('periodSeconds') or 10), period)}",
              f"  timeoutSeconds: {max(int(old.get('timeoutSeconds') or 1), 3)}",
              f"  failureThreshold: {max(int(old.get('failureThreshold') or 3), 3)}"]
    return [indent + line for line in lines]


def _probe_patch(top: K8sObject, c: Container) -> tuple[str, str, str]:
    """A strategic-merge patch moving liveness to /healthz and readiness to /readyz (same port)."""
    spec = c.spec
    port = _probe_port(spec)
    live_path, ready_path = "/healthz", "/readyz"
    parts = (pod_template_path(top.kind) or "spec").split(".")
    lines = [("  " * i) + f"{p}:" for i, p in enumerate(parts)]
    base = "  " * len(parts)
    lines += [f"{base}containers:", f"{base}- name: {c.name}"]
    lines += _probe_yaml("liveness", spec.get("livenessProbe") or {}, live_path, port, 20, base + "  ")
    lines += _probe_yaml("readiness", spec.get("readinessProbe") or {}, ready_path, port, 10, base + "  ")
    return "\n".join(lines), live_path, ready_path


@rule("KS502", "probe-rate-limited", severity=Severity.ERROR, requires=("cluster",))
def probe_rate_limited(ctx: Context) -> Iterator[Finding]:
    """Liveness or readiness probe answered with HTTP 429 Too Many Requests.

    ## What it does
    Finds `Unhealthy` warning events whose message reports `statuscode: 429` on a workload's pods, and
    reports per probe type how often and since when, with the probe's path, port, period and failure
    threshold from the container spec.

    ## Why is this bad?
    The probe endpoint sits behind the app's rate limiter or calls rate-limited upstreams. A failed
    liveness probe restarts the container; the restart makes more upstream calls, which hits the limit
    again: a death spiral (598 restarts in five days in a real homelab incident).

    ## Example
    ```text
    Warning  Unhealthy  Liveness probe failed: HTTP probe failed with statuscode: 429
    Warning  Unhealthy  Readiness probe failed: HTTP probe failed with statuscode: 429
    ```

    ## Fix
    Give liveness a cheap endpoint that is exempt from the rate limiter and never calls upstreams, on
    the port the probe already uses; keep readiness separate:
    ```yaml
    livenessProbe:
      httpGet: {path: /healthz, port: 8080}
      periodSeconds: 20
      failureThreshold: 3
    readinessProbe:
      httpGet: {path: /readyz, port: 8080}
      periodSeconds: 10
    ```
    In the code, cache upstream status (refresh it in the background) instead of calling upstreams per
    request. Under Flux the fix changes the probes in the repository's file instead of `kubectl patch`
    (commit, push, `flux reconcile`): a kubectl change would be reverted at the next reconcile.
    """
    for top, pods in _pods_by_workload(ctx.inv):
        failures = _rate_limited_probes(ctx.inv, pods)
        if not failures:
            continue
        evidence: list[str] = []
        fixes: list[str] = []
        paths: set[str] = set()
        for name in sorted({n or "" for n, _ in failures}):
            c = _find_container(top, pods, name or None)
            for (cname, probe), f in sorted(failures.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
                if (cname or "") != name:
                    continue
                span = f" ({format_time(f.first)} → {format_time(f.last)})" if f.first and f.last else ""
                who = f"container {cname}: " if cname else ""
                evidence.append(f"{who}{probe} probe failed {f.count} times with HTTP 429 on "
                                f"{len(f.pods)} pod(s){span}")
                evidence.append(f"sample event: {f.sample}")
            if c is None:
                continue
            for kind in ("liveness", "readiness"):
                probe_spec = c.spec.get(f"{kind}Probe")
                if probe_spec:
                    evidence.append(f"container {c.name} {_probe_text(kind, probe_spec)}")
                    paths.add(str((probe_spec.get("httpGet") or {}).get("path", "/")))
            fixes.append(_probe_fix(ctx.inv, top, c))
        probes = sorted({p for _, p in failures})
        total = sum(f.count for f in failures.values())
        restarts = sum(int(cs.get("restartCount") or 0) for p in pods for cs in _statuses(p))
        if restarts:
            evidence.append(f"{restarts} container restarts on these pods")
        yield ctx.finding(
            top, f"{_what(top)}: {' and '.join(probes)} probe rejected with HTTP 429 (rate limited) {total} times",
            evidence=evidence, root_cause=_probe_cause(probes, sorted(paths), restarts),
            fix="\n\n".join(fixes) or f"kubectl describe pod {pods[0].name} -n {top.namespace}",
            source="cluster", data={"probes": probes, "failures": total, "pods": sorted(p.name for p in pods)})


def _probe_cause(probes: list[str], paths: list[str], restarts: int) -> str:
    where = f" on {', '.join(paths)}" if paths else ""
    text = (f"The kubelet's {' and '.join(probes)} probe{where} gets HTTP 429: the endpoint sits behind the app's "
            "rate limiter or makes rate-limited upstream calls, so the limit fails the probe.")
    if "liveness" in probes:
        return text + (" Each liveness failure restarts the container, the restart makes more upstream calls and "
                       f"hits the limit again: a death spiral ({restarts} restarts).")
    return text + " The pod drops out of its Service endpoints whenever the limit is hit."


def _probe_fix(inv: Inventory, top: K8sObject, c: Container) -> str:
    patch, live_path, ready_path = _probe_patch(top, c)
    fname = f"{top.name}-probes.yaml" if c.name == top.name else f"{top.name}-{c.name}-probes.yaml"
    port = _probe_port(c.spec)
    head = f"Give liveness a cheap endpoint ({live_path}) and readiness its own ({ready_path}), on port {port} as today"
    flux = _gitops.change(inv, top, [_gitops.Edit(_gitops.container_path(c, f"{kind}Probe"), "",
                                                  shown=f"`{kind}Probe` as above")
                                     for kind in ("liveness", "readiness")])
    if flux is not None:
        head, apply = f"{head}:\n{_code('yaml', patch)}\n", flux
    elif top.kind == "Pod":
        head += f". Save as {fname}:\n{_code('yaml', patch)}\n"
        apply = ("Probes of a bare pod cannot change in place: put them in its manifest and recreate it:\n"
                 + _code("bash", f"kubectl delete pod {top.name} -n {top.namespace}"))
    else:
        head += f". Save as {fname}:\n{_code('yaml', patch)}\n"
        apply = "Apply it:\n" + _code(
            "bash", f"kubectl patch {top.kind.lower()}/{top.name} -n {top.namespace} --patch-file {fname}")
    return (f"{head}{apply}\nIn the app: serve {live_path} from memory (no upstream calls, no auth) and exempt it "
            f"from the rate limiter; serve {ready_path} from an upstream status cached in the background (e.g. "
            "for 60 s), never calling upstreams per probe.")


# -- KS503 ------------------------------------------------------------------------------------------

_CRASH_WORDING = {
    "CrashLoopBackOff": "keeps exiting and is in CrashLoopBackOff",
    "RunContainerError": "cannot be started by the container runtime (RunContainerError)",
    "CreateContainerConfigError": "cannot be created: its configuration references something missing "
                                  "(CreateContainerConfigError)",
}


def _crash_cause(reason: str, statuses: list[tuple[K8sObject, dict[str, Any]]], kills: int) -> str:
    waiting = next((str(((cs.get("state") or {}).get("waiting") or {}).get("message") or "")
                    for _, cs in statuses if ((cs.get("state") or {}).get("waiting") or {}).get("message")), "")
    if reason == "CreateContainerConfigError":
        return f"The kubelet cannot build the container's configuration: {waiting or 'see the pod events'}."
    if reason == "RunContainerError":
        return f"The container runtime fails to start the process: {waiting or 'see the pod events'}."
    if kills:
        return f"The container is killed by its failing liveness probe ({kills} probe kills) and backs off."
    t = next((_terminated(cs) for _, cs in statuses if _terminated(cs)), {})
    if not t:
        return "The container exits right after starting; the last termination was not recorded."
    code = t.get("exitCode")
    return (f"The container exits with code {code} ({_exit_meaning(code, t.get('reason') or '')}) and the kubelet "
            "restarts it with a growing back-off.")


def _crash_fix(reason: str, top: K8sObject, statuses: list[tuple[K8sObject, dict[str, Any]]]) -> str:
    pod, cs = statuses[0]
    fix = _describe_cmds(pod, str(cs.get("name")))
    if reason == "CreateContainerConfigError":
        msg = str(((cs.get("state") or {}).get("waiting") or {}).get("message") or "")
        m = _MISSING_REF.search(msg)
        if m:
            kind = m.group(1).lower()
            fix += (f"\nCreate the {kind} {m.group(2)} in {top.namespace}, or fix the name that "
                    f"{top.kind.lower()}/{top.name} references:\n"
                    + _code("bash", f"kubectl get {kind} {m.group(2)} -n {top.namespace}"))
        return fix
    code = _terminated(cs).get("exitCode")
    if code is not None:
        fix += f"\nExit code {code}: {_exit_meaning(code, _terminated(cs).get('reason') or '')}."
    return fix


@rule("KS503", "crash-loop", severity=Severity.ERROR, requires=("cluster",))
def crash_loop(ctx: Context) -> Iterator[Finding]:
    """Container in CrashLoopBackOff, RunContainerError or CreateContainerConfigError.

    ## What it does
    Finds containers waiting with reason `CrashLoopBackOff` (it starts and exits), `RunContainerError`
    (the runtime cannot start it) or `CreateContainerConfigError` (a referenced Secret, ConfigMap or key is
    missing), with the restart count, the last termination's reason, exit code and message, and the
    number of `Back-off restarting failed container` events.

    ## Why is this bad?
    The container does not serve: the kubelet restarts it with a back-off growing to five minutes, so
    the workload runs degraded or not at all.

    ## Example
    ```text
    family-assistant-backend-7748c945ff-n2kb7   0/1   CrashLoopBackOff   14   40m
    ```

    ## Fix
    Read why the previous container exited and fix that (exit code 137 = SIGKILL: OOM or liveness kill,
    1 = application error, 143 = SIGTERM):
    ```shell
    kubectl logs family-assistant-backend-7748c945ff-n2kb7 -n homelab -c family-assistant --previous
    kubectl describe pod family-assistant-backend-7748c945ff-n2kb7 -n homelab
    ```
    """
    for top, pods in _pods_by_workload(ctx.inv):
        by_reason: dict[str, list[tuple[K8sObject, dict[str, Any]]]] = {}
        for pod in sorted(pods, key=lambda p: p.name):
            for cs in _statuses(pod, init=True):
                reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
                if reason in CRASHING:
                    by_reason.setdefault(str(reason), []).append((pod, cs))
        for reason, statuses in sorted(by_reason.items()):
            yield _crash_finding(ctx, top, reason, statuses)


def _crash_finding(ctx: Context, top: K8sObject, reason: str,
                   statuses: list[tuple[K8sObject, dict[str, Any]]]) -> Finding:
    evidence: list[str] = []
    for pod, cs in statuses[:MAX_LISTED]:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        line = f"{pod.name}/{cs.get('name')}: {reason}, {int(cs.get('restartCount') or 0)} restarts"
        if waiting.get("message"):
            line += f"; {str(waiting['message'])[:SAMPLE_CHARS]}"
        evidence.append(line)
        if _last_exit(cs):
            evidence.append(f"{pod.name}/{cs.get('name')}: {_last_exit(cs)}")
        if _terminated(cs).get("message"):
            evidence.append(f"termination message: {str(_terminated(cs)['message'])[:SAMPLE_CHARS]}")
    if len(statuses) > MAX_LISTED:
        evidence.append(f"… and {len(statuses) - MAX_LISTED} more containers")
    pods = list({p.key: p for p, _ in statuses}.values())
    backoffs = _count(_pod_events(ctx.inv, pods, "BackOff", "back-off restarting failed container"))
    if backoffs:
        evidence.append(f"{backoffs} 'Back-off restarting failed container' events")
    kills = _count(_pod_events(ctx.inv, pods, "Killing", "failed liveness probe"))
    if kills:
        evidence.append(f"{kills} 'Killing' events: container failed liveness probe")
    names = sorted({str(cs.get("name")) for _, cs in statuses})
    return ctx.finding(
        top, f"{_what(top)}: container {', '.join(names)} {_CRASH_WORDING[reason]} on {len(pods)} pod(s)",
        evidence=evidence, root_cause=_crash_cause(reason, statuses, kills), fix=_crash_fix(reason, top, statuses),
        source="cluster", data={"reason": reason, "pods": sorted(p.name for p in pods), "backoffs": backoffs})


# -- KS504 ------------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Template:
    """One masked log message and where and when it was seen."""

    count: int = 0
    sample: str = ""
    level: str = ""
    streams: Counter[str] = field(default_factory=Counter)
    # The lines' timestamps as written: parsed only for the templates a finding reports (most are not).
    stamps: list[str] = field(default_factory=list)
    _span: tuple[datetime | None, datetime | None] | None = None

    @property
    def first(self) -> datetime | None:
        return self._times()[0]

    @property
    def last(self) -> datetime | None:
        return self._times()[1]

    def _times(self) -> tuple[datetime | None, datetime | None]:
        if self._span is None:
            first = last = None
            for stamp in self.stamps:
                ts = _log_time(stamp)
                if ts is not None:
                    first = ts if first is None or ts < first else first
                    last = ts if last is None or ts > last else last
            self._span = (first, last)
        return self._span

    @property
    def every(self) -> str:
        """The mean interval between repeats, when timestamps tell it."""
        if self.first is None or self.last is None or self.count < 2 or self.last <= self.first:
            return ""
        return f" (≈ every {human_duration((self.last - self.first) / (self.count - 1))})"


@dataclass(slots=True)
class _Stream:
    """Template counts of one workload's log lines."""

    obj: K8sObject | ObjectRef
    lines: int = 0
    templates: dict[str, _Template] = field(default_factory=dict)
    pods: list[tuple[str, str]] = field(default_factory=list)


def _log_time(text: str | None) -> datetime | None:
    if not text:
        return None
    text = text.replace(",", ".")
    if _FRACTION.search(text):  # fromisoformat: ≤ 6 fractional digits (most stamps have no more)
        text = _FRACTION.sub(r"\1", text)
    return parse_time(text)


def _redact_secrets(text: str) -> str:
    """Secret-looking values masked by the one redactor every output uses."""
    return redact_text(text)


def _level(line: str) -> str:
    m = _LOG_LEVEL.search(line, 0, 120)
    return (m.group("named") or m.group("upper")).upper() if m else ""


_MASKED = {name: f"<{name}>" for name in _LOG_MASK.groupindex}


@functools.lru_cache(maxsize=8192)  # floods repeat messages word for word; bounded for huge tails
def _mask(message: str) -> str:
    return _LOG_MASK.sub(lambda m: _MASKED[m.lastgroup or ""], _redact_secrets(message)).strip()


def parse_log_line(line: str) -> tuple[str, datetime | None, str]:
    """The line's message template (variable parts and secret-looking values masked), its leading or JSON
    timestamp, and its level when the prefix or JSON field names it."""
    text, stamp, level = _split_log_line(line)
    return text, _log_time(stamp), level


def _split_log_line(line: str) -> tuple[str, str | None, str]:
    """``parse_log_line`` with the timestamp as written (None when there is none)."""
    if line.startswith("{"):
        fields = dict(_JSON_FIELD.findall(line))  # (key, val) pairs; a repeated key keeps its last value
        message = fields.get("msg", fields.get("message"))
        if message is not None:
            ts = fields.get("ts") or fields.get("time") or fields.get("timestamp") or fields.get("@timestamp")
            level = fields.get("level") or fields.get("severity") or fields.get("lvl") or ""
            return _mask(message.replace('\\"', '"')), ts or None, level.upper()
    m = _LOG_PREFIX.match(line)
    if m is None:
        return _mask(line), None, ""
    return _mask(line[m.end():]), m.group("ts"), (m.group("level") or "").upper()


def _scan_logs(inv: Inventory) -> list[_Stream]:
    """One pass over every collected log line, grouped by workload."""
    out: dict[tuple[str, str, str], _Stream] = {}
    assert inv.cluster is not None
    for (ns, pod_name, container), lines in sorted(inv.cluster.logs.items()):
        pod = inv.live_by_key.get(("Pod", ns, pod_name))
        obj: K8sObject | ObjectRef = inv.top_workload(pod) if pod else ObjectRef("Pod", ns, pod_name)
        key = obj.key if isinstance(obj, K8sObject) else (obj.kind, obj.namespace, obj.name)
        stream = out.setdefault(key, _Stream(obj))
        where = f"{pod_name}/{container}" if container else pod_name
        stream.pods.append((pod_name, container))
        for line in lines:
            if not line.strip():
                continue
            stream.lines += 1
            text, stamp, level = _split_log_line(line.replace(pod_name, "<pod>") if pod_name in line else line)
            t = stream.templates.get(text)
            if t is None:
                t = stream.templates[text] = _Template(sample=line, level=level or _level(line))
            t.count += 1
            t.streams[where] += 1
            if stamp is not None:
                t.stamps.append(stamp)
    return list(out.values())


def _missing_hosts(inv: Inventory, text: str) -> list[tuple[str, str, str]]:
    """In-cluster hosts named in ``text`` whose Service the (listed) cluster does not have."""
    if not inv.listed("Service"):
        return []
    out = []
    for m in _SVC_HOST.finditer(text):
        if ("Service", m.group("ns"), m.group("svc")) not in inv.live_by_key:
            out.append((m.group(0), m.group("svc"), m.group("ns")))
    return out


_ANSWERED = re.compile(r"\b(?:returning|returned|respond(?:ed|ing)? with|answer(?:ed|ing)? with|sending|sent)\s+"
                       r"(?:HTTP\s+)?([45]\d\d)\b", re.I)


def _answered_statuses(samples: Iterable[str]) -> list[int]:
    """HTTP status codes a log line says the app itself answers with (``returning 429 to clients``)."""
    return sorted({int(m.group(1)) for s in samples for m in _ANSWERED.finditer(s)})


def _redact(line: str) -> str:
    return _redact_secrets(line)[:SAMPLE_CHARS]


def _noisy(template: str, t: _Template) -> bool:
    """Repeats that are a problem: not TRACE..INFO lines and not HTTP access-log lines."""
    return t.level not in QUIET_LEVELS and not _ACCESS_LOG.search(template)


def _otel_off(inv: Inventory, obj: K8sObject, container: str | None) -> str | None:
    """Under Flux: OTEL_SDK_DISABLED=true in the container's env in the repository, committed and pushed."""
    cs = list(containers(obj))
    c = next((c for c in cs if c.name == container), cs[0] if cs else None)
    if c is None:
        return None
    return _gitops.change(inv, obj, [_gitops.env_edit(c, "OTEL_SDK_DISABLED", "true")])


def _flood_fix(inv: Inventory, obj: K8sObject | ObjectRef, stream: _Stream, telemetry: bool, missing: bool) -> str:
    pod, container = stream.pods[0]
    tail = "Check the current output:\n" + _code("bash", f"kubectl logs {pod} -n {obj.namespace}"
                                                 + (f" -c {container}" if container else "") + " --tail=200")
    lines = ["Fix the condition the message reports" + (" (the missing Service: see KS701)" if missing else "")
             + "; meanwhile stop the flood."]
    flux = _otel_off(inv, obj, container) if telemetry and isinstance(obj, K8sObject) else None
    if flux is not None:
        lines.append("Disable the OpenTelemetry SDK until a collector exists. " + flux)
        lines.append("(or set OTEL_TRACES_EXPORTER=none, OTEL_METRICS_EXPORTER=none, OTEL_LOGS_EXPORTER=none).")
    elif telemetry and obj.kind in ("Deployment", "StatefulSet", "DaemonSet"):
        lines.append("Disable the OpenTelemetry SDK until a collector exists:\n" + _code(
            "bash", f"kubectl set env {obj.kind.lower()}/{obj.name} -n {obj.namespace} OTEL_SDK_DISABLED=true"))
        lines.append("(or set OTEL_TRACES_EXPORTER=none, OTEL_METRICS_EXPORTER=none, OTEL_LOGS_EXPORTER=none).")
    lines.append("In the code, log a failing retry once per change of state (or rate-limit that logger) and back "
                 "off exponentially instead of retrying at full speed.")
    lines.append(tail)
    return "\n".join(lines)


@rule("KS504", "log-flood", severity=Severity.WARNING, requires=("cluster",))
def log_flood(ctx: Context) -> Iterator[Finding]:
    """The same log message repeated over and over.

    ## What it does
    Reduces each collected log line to a template (leading timestamp and level removed, JSON `msg`
    extracted; numbers, hex ids, UUIDs, IPs and durations masked), groups the lines of a workload by
    template and reports templates repeated at least `thresholds.log_flood_repeats` times, with their
    share of the lines, first and last time seen and a sample. Lines at TRACE, DEBUG or INFO level and
    HTTP access-log lines are expected to repeat and are not counted. When the message names an
    in-cluster host whose Service does not exist, it says so.

    ## Why is this bad?
    A flood hides the real errors, costs CPU and log storage, and usually means something retries
    forever without back-off — in a real homelab incident 50+ consecutive OTLP export failures to a
    collector that was never deployed.

    ## Example
    ```text
    Transient error StatusCode.UNAVAILABLE encountered while exporting traces to
    otel-collector.homelab.svc.cluster.local:4317, retrying in 8s.
    ```

    ## Fix
    Fix what the message reports (deploy the missing collector, see KS701); meanwhile stop the flood,
    e.g. `kubectl set env deployment/family-assistant-backend -n homelab OTEL_SDK_DISABLED=true`, and
    rate-limit or back off the retry that logs it.
    """
    limit = ctx.cfg.thresholds.log_flood_repeats
    for stream in _scan_logs(ctx.inv):
        top = sorted((kv for kv in stream.templates.items() if kv[1].count >= limit and _noisy(*kv)),
                     key=lambda kv: (-kv[1].count, kv[0]))[:TOP_TEMPLATES]
        if not top:
            continue
        obj = stream.obj
        evidence: list[str] = []
        missing: list[tuple[str, str, str]] = []
        for text, t in top:
            evidence.append(f"×{t.count} ({t.count / stream.lines:.0%} of {stream.lines} lines): {text}")
            if t.first and t.last:
                evidence.append(f"first seen {format_time(t.first)}, last seen {format_time(t.last)}{t.every}")
            evidence.append("in " + ", ".join(f"{w} ({n})" for w, n in t.streams.most_common(3)))
            evidence.append(f"sample: {_redact(t.sample)}")
            missing += [h for h in _missing_hosts(ctx.inv, t.sample) if h not in missing]
        for host, svc, ns in missing:
            evidence.append(f"{host}: Service {svc} does not exist in namespace {ns}")
        count = top[0][1].count
        telemetry = any(_TELEMETRY.search(text) for text, _ in top)
        if missing:
            cause = (f"The exporter retries against a collector that does not exist ({missing[0][0]}; see KS701) "
                     "and logs every failed attempt.")
        else:
            cause = (f"A recurring condition is logged on every occurrence{top[0][1].every} instead of once per "
                     "change: it is retried or reported without back-off, de-duplication or rate limiting.")
        yield ctx.finding(
            obj, f"{_what(obj)}: one log message repeated {count} times in the last {stream.lines} lines "
                 f"({count / stream.lines:.0%})",
            evidence=evidence, root_cause=cause, fix=_flood_fix(ctx.inv, obj, stream, telemetry, bool(missing)),
            source="cluster", data={"templates": [{"template": text, "count": t.count} for text, t in top],
                                    "lines": stream.lines, "services": [f"{ns}/{svc}" for _, svc, ns in missing],
                                    "http_statuses": _answered_statuses(t.sample for _, t in top)})
