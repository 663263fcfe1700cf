"""KS7xx observability: telemetry endpoints without a Service, unscraped workloads, missing alert rules."""

from __future__ import annotations

import difflib
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from kubeshape.findings import Finding, ObjectRef, Severity
from kubeshape.inventory import (
    Container,
    Inventory,
    K8sObject,
    containers,
    pod_spec,
    pod_template_labels,
    selector_matches,
)
from kubeshape.metrics import PULL_FAILURES
from kubeshape.rules import _gitops
from kubeshape.rules._common import SYSTEM_NAMESPACES
from kubeshape.rules.base import Context, rule

_ENDPOINT_VAR = re.compile(r"(_ENDPOINTS?|_HOST|_HOSTNAME|_URL|_URI|_ADDR|_ADDRESS|_SERVER|_SERVERS)$")
_SECRET_VAR = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|KEY|CREDENTIAL", re.I)
_TELEMETRY_VAR = re.compile(r"^(OTEL_|JAEGER_|ZIPKIN_)")
_TELEMETRY_HOST = re.compile(r"otel|opentelemetry|jaeger|zipkin|tempo|collector")
_DNS_LABEL = re.compile(r"^(?=.*[a-z])[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
_USERINFO = re.compile(r"(://)[^/@\s]*@")
_SECRET_PARAM = re.compile(r"(?i)([?&][^=&#]*(?:token|key|secret|passw|auth)[^=&#]*=)[^&#]*")
_NOT_HOSTS = {"localhost", "true", "false", "none", "null", "disabled", "enabled"}
OTLP_GRPC, OTLP_HTTP = 4317, 4318
COLLECTOR_IMAGE = "otel/opentelemetry-collector:0.114.0"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
SCRAPE_ANNOTATION = "prometheus.io/scrape"


# -- KS701 ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Endpoint:
    """An env var whose literal value names an in-cluster Service."""

    var: str
    value: str
    host: str
    service: str
    namespace: str
    port: int | None

    @property
    def needle(self) -> str:
        """What to look for in logs: the FQDN, or ``name:port`` for short names (a bare word is too common)."""
        if "." in self.host:
            return self.host
        return f"{self.host}:{self.port}" if self.port else ""

    @property
    def telemetry(self) -> bool:
        return bool(_TELEMETRY_VAR.match(self.var) or _TELEMETRY_HOST.search(self.service))

    @property
    def otlp(self) -> bool:
        return self.var.startswith("OTEL_EXPORTER_OTLP") or "otel" in self.service


def _split_host(value: str) -> tuple[str, int | None] | None:
    """Host and port of ``scheme://host:port/path`` or ``host:port``; None when it is not one."""
    try:
        if "://" in value:
            parts = urlsplit(value)
            return (parts.hostname or "", parts.port)
        netloc = value.split("/", 1)[0].rsplit("@", 1)[-1]
        host, _, port = netloc.partition(":")
        return host.lower(), int(port) if port else None
    except ValueError:
        return None


def _service_of(host: str, namespace: str, namespaces: set[str], bare: bool) -> tuple[str, str] | None:
    """(Service, namespace) that ``host`` names: ``svc.ns.svc[.cluster.local]``, ``svc.ns`` or (if ``bare``)
    a short name in ``namespace``."""
    labels = host.rstrip(".").split(".")
    if "svc" in labels:
        i = labels.index("svc")
        if i < 2 or labels[i + 1:] not in ([], ["cluster", "local"]):
            return None
        svc, ns = labels[i - 2], labels[i - 1]
    elif len(labels) == 2 and labels[1] in namespaces:
        svc, ns = labels[0], labels[1]
    elif len(labels) == 1 and bare and host not in _NOT_HOSTS:
        svc, ns = host, namespace
    else:
        return None
    return (svc, ns) if _DNS_LABEL.match(svc) and _DNS_LABEL.match(ns) else None


def _endpoint(var: str, value: str, namespace: str, namespaces: set[str]) -> _Endpoint | None:
    """The Service a literal env value points at, or None."""
    value = value.strip()
    if not value or "$(" in value or any(ch in value for ch in " ,;"):
        return None
    split = _split_host(value)
    if split is None or not split[0]:
        return None
    host, port = split[0].rstrip("."), split[1]
    target = _service_of(host, namespace, namespaces, bool(_ENDPOINT_VAR.search(var)) or "://" in value)
    return _Endpoint(var, value, host, *target, port) if target else None


def _known_namespaces(inv: Inventory) -> set[str]:
    """Namespaces the repo or the cluster mention (so ``svc.ns`` is told apart from ``example.com``)."""

    def build() -> set[str]:
        out = {o.name for o in inv.objects("Namespace")}
        out.update(o.namespace for o in inv.repo_objects if o.namespace)
        if inv.cluster is not None:
            for objs in inv.cluster.objects.values():
                out.update(o.namespace for o in objs if o.namespace)
        return out

    return inv.memo("observability.namespaces", build)


@dataclass(slots=True)
class _Services:
    """Services by (namespace, name) from the repo and (when listed) the cluster, with a name index."""

    live: set[tuple[str, str]] | None
    repo: set[tuple[str, str]]
    has_repo: bool
    by_name: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    by_namespace: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def build(cls, inv: Inventory) -> _Services:
        live = {(s.namespace, s.name) for s in inv.live("Service")} if inv.listed("Service") else None
        repo = {(o.namespace or "default", o.name) for o in inv.repo_objects if o.kind == "Service"}
        out = cls(live, repo, inv.repo is not None)
        for ns, name in (live or set()) | repo:
            out.by_name[name].add(ns)
            out.by_namespace[ns].add(name)
        return out

    def missing(self, obj: K8sObject, ep: _Endpoint) -> tuple[Severity, str] | None:
        """Severity and wording when ``ep``'s Service is known to be absent for ``obj``; None otherwise."""
        key = (ep.namespace, ep.service)
        if obj.source == "cluster":
            if self.live is None or key in self.live:
                return None
            return Severity.ERROR, "does not exist in the cluster"
        if key in self.repo:
            return None
        if self.live is None:
            return Severity.WARNING, "is not defined in the repo"
        if key in self.live:
            return None
        return Severity.ERROR, "does not exist in the cluster and is not defined in the repo"

    def absence(self, ep: _Endpoint) -> list[str]:
        """The same facts whichever source the finding comes from, so repo and live findings merge."""
        out = []
        if self.live is not None:
            out.append(f"the cluster has no Service {ep.service} in namespace {ep.namespace}")
        if self.has_repo and (ep.namespace, ep.service) not in self.repo:
            out.append(f"the repo defines no Service {ep.service} in namespace {ep.namespace}")
        return out

    def similar(self, ep: _Endpoint) -> list[str]:
        names = self.by_namespace.get(ep.namespace, set())
        stem = ep.service.split("-", 1)[0]
        close = difflib.get_close_matches(ep.service, sorted(names), n=3, cutoff=0.6)
        return sorted(set(close) | {n for n in names if n.split("-", 1)[0] == stem})

    def elsewhere(self, ep: _Endpoint) -> list[str]:
        return sorted(self.by_name.get(ep.service, set()) - {ep.namespace})


def _shown(var: str, value: str) -> str:
    """The value as it may appear in a finding: never for secret-looking names, never URL credentials."""
    if _SECRET_VAR.search(var):
        return "(not shown)"
    return _SECRET_PARAM.sub(r"\1***", _USERINFO.sub(r"\1***@", value))


_Mentions = dict[tuple[tuple[str, str, str] | None, str], int]


def _log_mentions(inv: Inventory, needles: set[str]) -> _Mentions:
    """Collected log lines mentioning each needle, per workload and (key None) in total: one pass."""
    counts: _Mentions = defaultdict(int)
    if inv.cluster is None or not needles:
        return counts
    alternation = "|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w.-])(?:{alternation})(?![\w-])", re.I)
    for (ns, pod_name, _), lines in inv.cluster.logs.items():
        pod = inv.live_by_key.get(("Pod", ns, pod_name))
        owner = inv.top_workload(pod).key if pod else None
        for line in lines:
            for hit in {h.lower() for h in pattern.findall(line)}:
                counts[(None, hit)] += 1
                if owner is not None:
                    counts[(owner, hit)] += 1
    return counts


def _mention_line(mentions: _Mentions, obj: K8sObject, needle: str) -> str | None:
    own, total = mentions.get((obj.key, needle), 0), mentions.get((None, needle), 0)
    if own:
        return f"{own} log lines of its pods mention {needle}" + (
            f" ({total} across all collected logs)" if total > own else "")
    return f"{total} collected log lines (of other pods) mention {needle}" if total else None


def _collector_manifest(ep: _Endpoint) -> str:
    """A minimal OpenTelemetry Collector (OTLP in, debug out) answering at ``ep``'s Service and port."""
    port = ep.port or OTLP_GRPC
    grpc, http = (OTLP_GRPC, OTLP_HTTP) if port == OTLP_HTTP else (port, OTLP_HTTP)
    name, ns = ep.service, ep.namespace
    return f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: {ns}}}
data:
  config.yaml: |
    receivers:
      otlp:
        protocols:
          grpc: {{endpoint: "0.0.0.0:{grpc}"}}
          http: {{endpoint: "0.0.0.0:{http}"}}
    processors:
      batch: {{}}
    exporters:
      debug: {{}}   # replace with your backend (Tempo, Jaeger, Prometheus remote write)
    service:
      pipelines:
        traces: {{receivers: [otlp], processors: [batch], exporters: [debug]}}
        metrics: {{receivers: [otlp], processors: [batch], exporters: [debug]}}
        logs: {{receivers: [otlp], processors: [batch], exporters: [debug]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: otel-collector
        image: {COLLECTOR_IMAGE}
        args: ["--config=/etc/otelcol/config.yaml"]
        ports:
        - {{name: otlp-grpc, containerPort: {grpc}}}
        - {{name: otlp-http, containerPort: {http}}}
        resources:
          requests: {{cpu: 50m, memory: 64Mi}}
          limits: {{memory: 256Mi}}
        volumeMounts:
        - {{name: config, mountPath: /etc/otelcol}}
      volumes:
      - name: config
        configMap: {{name: {name}}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{app: {name}}}
  ports:
  - {{name: otlp-grpc, port: {grpc}, targetPort: {grpc}}}
  - {{name: otlp-http, port: {http}, targetPort: {http}}}"""


def _code(lang: str, text: str) -> str:
    return f"```{lang}\n{text}\n```"


def _where(obj: K8sObject, path: str) -> str:
    if obj.file:
        return f"In {obj.file}:{obj.line_of(path)}"
    return f"In the manifest of {obj.namespace}/{obj.kind}/{obj.name}"


def _env_diff(obj: K8sObject, c: Container, i: int, var: str, old: str | None, new: str) -> str:
    """A diff of the container's env: replace ``var``'s value (``old``) or add ``var``."""
    lines = ["   containers:", f"   - name: {c.name}", "     env:"]
    if old is None:
        lines += [f"+    - name: {var}", f'+      value: "{new}"']
        path = f"{c.path}.env"
    else:
        lines += [f"     - name: {var}", f'-      value: "{old}"', f'+      value: "{new}"']
        path = f"{c.path}.env[{i}].value"
    return f"{_where(obj, path)}:\n" + _code("diff", "\n".join(lines))


def _set_env(obj: K8sObject, c: Container, assignment: str) -> str:
    return _code("bash", f"kubectl set env {obj.kind.lower()}/{obj.name} -n {obj.namespace} -c {c.name} {assignment}")


def _endpoint_fix(inv: Inventory, obj: K8sObject, c: Container, i: int, ep: _Endpoint, services: _Services) -> str:
    """Deploy the missing Service (a collector for OTLP), point the variable at an existing one, or stop."""
    if _gitops.applier(inv, obj) is not None:
        return _flux_endpoint_fix(inv, obj, c, i, ep, services)
    options = [_deploy_endpoint(ep)]
    candidates = [(ns, ep.service) for ns in services.elsewhere(ep)] + [(ep.namespace, n) for n in services.similar(ep)]
    if candidates:
        ns, svc = candidates[0]
        new = ep.value.replace(ep.host, f"{svc}.{ns}.svc.cluster.local", 1)
        shown_old, shown_new = _shown(ep.var, ep.value), _shown(ep.var, new)
        command = _set_env(obj, c, f"{ep.var}={new}") + "\n" if shown_new == new else ""
        options.append(f"Or, if {ns}/{svc} is the intended Service, point {ep.var} at it:\n{command}"
                       + _env_diff(obj, c, i, ep.var, shown_old, shown_new))
    if ep.telemetry:
        options.append("Or stop exporting until a collector exists:\n" + _set_env(obj, c, "OTEL_SDK_DISABLED=true")
                       + "\n" + _env_diff(obj, c, i, "OTEL_SDK_DISABLED", None, "true"))
    elif not candidates:
        options.append("Or remove the setting:\n" + _set_env(obj, c, ep.var + "-"))
    return "\n".join(options)


def _flux_endpoint_fix(inv: Inventory, obj: K8sObject, c: Container, i: int, ep: _Endpoint,
                       services: _Services) -> str:
    """``_endpoint_fix`` for a workload Flux applies: the env changed in the repository (the file's diff, or the
    copy of a live workload), committed and pushed; never with kubectl, which Flux would revert."""
    publish = _gitops.publish(inv, [obj]) if obj.file else None

    def env(var: str, old: str | None, new: str | None) -> str:
        if publish is not None and new is not None:
            return _env_diff(obj, c, i, var, old, new) + "\n" + publish
        return _gitops.change(inv, obj, [_gitops.env_edit(c, var, new)]) or ""

    options = [_deploy_endpoint(ep)]
    candidates = [(ns, ep.service) for ns in services.elsewhere(ep)] + [(ep.namespace, n) for n in services.similar(ep)]
    if candidates:
        ns, svc = candidates[0]
        new = ep.value.replace(ep.host, f"{svc}.{ns}.svc.cluster.local", 1)
        shown_old, shown_new = _shown(ep.var, ep.value), _shown(ep.var, new)
        if shown_new == new or publish is not None:
            options.append(f"Or, if {ns}/{svc} is the intended Service, point {ep.var} at it:\n"
                           + env(ep.var, shown_old, shown_new))
    if ep.telemetry:
        options.append("Or stop exporting until a collector exists:\n" + env("OTEL_SDK_DISABLED", None, "true"))
    elif not candidates:
        options.append("Or remove the setting:\n" + env(ep.var, None, None))
    return "\n".join(options)


def _deploy_endpoint(ep: _Endpoint) -> str:
    if ep.otlp:
        fname = f"{ep.service}.yaml"
        return (f"Deploy the collector the app expects (Service {ep.service} in {ep.namespace}, port "
                f"{ep.port or OTLP_GRPC}). Save as {fname}:\n{_code('yaml', _collector_manifest(ep))}\n"
                + _code("bash", f"kubectl apply -f {fname}"))
    return f"Deploy Service {ep.service} in namespace {ep.namespace} (and the workload it fronts)."


@rule("KS701", "endpoint-service-missing", severity=Severity.ERROR)
def endpoint_service_missing(ctx: Context) -> Iterator[Finding]:
    """Env var pointing at an in-cluster endpoint whose Service does not exist.

    ## What it does
    Reads the literal `value` of container env vars (never `valueFrom`) in the repo and the cluster and
    finds in-cluster hosts — `svc.ns.svc.cluster.local`, `svc.ns.svc`, `svc.ns`, or a bare name in an
    endpoint variable (`*_ENDPOINT`, `*_HOST`, `*_URL`, `*_ADDR`, `OTEL_EXPORTER_OTLP_ENDPOINT`, …), with or
    without scheme and port — whose Service is missing. Live it needs the Service list (error); on a
    repo alone it reports Services the repo does not define (warning). Log lines naming the host
    corroborate it.

    ## Why is this bad?
    Every connection fails with a DNS error. Telemetry exporters retry forever and flood the logs (the
    homelab's `otel-collector.homelab.svc.cluster.local:4317`, never deployed); other clients fail requests.

    ## Example
    ```yaml
    env:
    - name: OTEL_EXPORTER_OTLP_ENDPOINT
      value: http://otel-collector.homelab.svc.cluster.local:4317   # no Service otel-collector
    ```

    ## Fix
    Deploy the Service (e.g. an OpenTelemetry Collector listening on 4317) or stop using it (an `OTEL_*`
    endpoint of a container with `OTEL_SDK_DISABLED=true` is not reported: the SDK exports nothing):
    ```shell
    kubectl set env deployment/family-assistant-backend -n homelab OTEL_SDK_DISABLED=true
    ```
    """
    inv = ctx.inv
    services = _Services.build(inv)
    if services.live is None and inv.repo is None:
        return
    namespaces = _known_namespaces(inv)
    pending: list[tuple[K8sObject, Container, int, _Endpoint, Severity, str]] = []
    endpoints: dict[tuple[str, str, str], _Endpoint | None] = {}  # workloads repeat the same settings
    for obj in inv.workloads():
        for c in containers(obj):
            for i, env in enumerate(c.spec.get("env") or []):
                if not isinstance(env, dict) or "valueFrom" in env or not isinstance(env.get("value"), str):
                    continue
                var = str(env.get("name") or "")
                key = (var, env["value"], obj.namespace)
                if key in endpoints:
                    ep = endpoints[key]
                else:
                    ep = endpoints[key] = None if _SECRET_VAR.search(var) else _endpoint(*key, namespaces)
                verdict = services.missing(obj, ep) if ep else None
                if ep and verdict and not (ep.telemetry and var.startswith("OTEL_") and _sdk_disabled(c)):
                    pending.append((obj, c, i, ep, *verdict))
    mentions = _log_mentions(inv, {p[3].needle.lower() for p in pending if p[3].needle})
    for obj, c, i, ep, severity, how in pending:
        yield _endpoint_finding(ctx, obj, c, i, ep, severity, how, services, mentions)


def _sdk_disabled(c: Container) -> bool:
    """``OTEL_SDK_DISABLED=true``: the OpenTelemetry SDK exports nothing, whatever the endpoint says."""
    return any(isinstance(e, dict) and e.get("name") == "OTEL_SDK_DISABLED"
               and str(e.get("value") or "").strip().lower() == "true" for e in c.spec.get("env") or [])


def _endpoint_finding(ctx: Context, obj: K8sObject, c: Container, i: int, ep: _Endpoint, severity: Severity,
                      how: str, services: _Services, mentions: _Mentions) -> Finding:
    evidence = [f"container {c.name}: {ep.var} = {_shown(ep.var, ep.value)}", *services.absence(ep)]
    similar = services.similar(ep)
    if similar:
        evidence.append(f"Services in {ep.namespace} with similar names: {', '.join(similar)}")
    elsewhere = services.elsewhere(ep)
    if elsewhere:
        evidence.append(f"a Service named {ep.service} exists in namespace {', '.join(elsewhere)}")
    mention = _mention_line(mentions, obj, ep.needle.lower()) if ep.needle else None
    if mention:
        evidence.append(mention)
    if ep.telemetry:
        cause = (f"The app is instrumented to export telemetry to {ep.host}, but the collector Service "
                 f"{ep.service} was never deployed in {ep.namespace}: every export fails and is retried.")
    else:
        cause = f"{ep.var} names Service {ep.service} in {ep.namespace}, which {how}: connections fail to resolve."
    return ctx.finding(
        obj, f"container {c.name}: {ep.var} points at {ep.service}.{ep.namespace}, whose Service {how}",
        path=f"{c.path}.env[{i}].value", severity=severity, evidence=evidence, root_cause=cause,
        fix=_endpoint_fix(ctx.inv, obj, c, i, ep, services),
        dedupe=f"{obj.kind}/{obj.namespace}/{obj.name}|{c.name}|{ep.var}",
        data={"variable": ep.var, "service": ep.service, "namespace": ep.namespace,
              "log_lines": mentions.get((obj.key, ep.needle.lower()), 0)})


# -- KS702 ------------------------------------------------------------------------------------------

class _LabelIndex:
    """Objects by (namespace, label key, value), so a selector is checked against few candidates."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, str], K8sObject]] = []
        self.by_pair: dict[tuple[str, str, str], list[tuple[str, dict[str, str], K8sObject]]] = defaultdict(list)

    def add(self, obj: K8sObject, labels: dict[str, str]) -> None:
        item = (obj.namespace, labels, obj)
        self.items.append(item)
        for k, v in labels.items():
            self.by_pair[(obj.namespace, k, v)].append(item)

    def select(self, selector: dict[str, Any], namespaces: Iterable[str] | None) -> Iterator[K8sObject]:
        """Objects whose labels a monitor's label selector matches (an empty selector matches all)."""
        match = selector.get("matchLabels") or {}
        allowed = None if namespaces is None else set(namespaces)
        if match and allowed is not None:
            k, v = next(iter(sorted(match.items())))
            candidates: Iterable[tuple[str, dict[str, str], K8sObject]] = (
                item for ns in sorted(allowed) for item in self.by_pair.get((ns, k, str(v)), []))
        else:
            candidates = (item for item in self.items if allowed is None or item[0] in allowed)
        for _, labels, obj in candidates:
            if not selector or selector_matches(selector, labels):
                yield obj


def _monitor_namespaces(mon: K8sObject) -> list[str] | None:
    sel = mon.spec.get("namespaceSelector") or {}
    if sel.get("any"):
        return None
    return [str(n) for n in sel.get("matchNames") or []] or [mon.namespace]


def _scrape_configs(text: str) -> list[dict[str, Any]]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    jobs = doc.get("scrape_configs") if isinstance(doc, dict) else None
    return [j for j in jobs if isinstance(j, dict)] if isinstance(jobs, list) else []


def _static_targets(inv: Inventory) -> tuple[dict[tuple[str, str], str], list[tuple[K8sObject, str]]]:
    """Services named as static targets in Prometheus configs held in ConfigMaps, and those configs."""
    namespaces = _known_namespaces(inv)
    out: dict[tuple[str, str], str] = {}
    configs: list[tuple[K8sObject, str]] = []
    for cm in inv.objects("ConfigMap"):
        for key, value in (cm.raw.get("data") or {}).items():
            if not isinstance(value, str) or "scrape_configs" not in value:
                continue
            configs.append((cm, str(key)))
            for job in _scrape_configs(value):
                for static in job.get("static_configs") or []:
                    for target in (static or {}).get("targets") or []:
                        split = _split_host(str(target))
                        svc = _service_of(split[0], cm.namespace, namespaces, True) if split and split[0] else None
                        if svc:
                            out.setdefault((svc[1], svc[0]), f"static target {target} (job {job.get('job_name')}) "
                                                             f"in ConfigMap {cm.namespace}/{cm.name}")
    return out, configs


def _mounted_by(inv: Inventory, cm: K8sObject) -> K8sObject | None:
    """The workload that mounts ConfigMap ``cm`` (the Prometheus server reading it)."""
    for w in inv.workloads():
        if w.namespace == cm.namespace and w.kind in WORKLOAD_KINDS:
            for vol in (pod_spec(w) or {}).get("volumes") or []:
                if ((vol or {}).get("configMap") or {}).get("name") == cm.name:
                    return w
    return None


def _wkey(w: K8sObject) -> tuple[str, str, str, str]:
    return (w.source, w.kind, w.namespace, w.name)


@dataclass(slots=True)
class _Scraping:
    """Which Services and workloads something scrapes, computed once per call."""

    selecting: dict[tuple[str, str, str, str], dict[str, K8sObject]] = field(
        default_factory=lambda: defaultdict(dict))
    covered_services: dict[tuple[str, str], str] = field(default_factory=dict)
    covered_workloads: dict[tuple[str, str, str, str], str] = field(default_factory=dict)
    static: list[str] = field(default_factory=list)
    configs: list[tuple[K8sObject, str]] = field(default_factory=list)
    monitors: int = 0

    @classmethod
    def build(cls, inv: Inventory, workloads: list[K8sObject]) -> _Scraping:
        out = cls()
        svc_labels = _LabelIndex()
        svc_selectors: dict[tuple[str, str, str], list[K8sObject]] = defaultdict(list)
        for svc in inv.objects("Service"):
            svc_labels.add(svc, svc.labels)
            sel = svc.spec.get("selector") or {}
            if sel:
                k, v = min(sel.items())
                svc_selectors[(svc.namespace, k, str(v))].append(svc)
            if svc.annotations.get(SCRAPE_ANNOTATION) == "true":
                out.covered_services[(svc.namespace, svc.name)] = f"{SCRAPE_ANNOTATION} on Service {svc.name}"
        static, out.configs = _static_targets(inv)
        out.covered_services.update(static)
        out.static = [f"{ns}/{name}" for ns, name in sorted(static)]
        for sm in inv.objects("ServiceMonitor"):
            out.monitors += 1
            for svc in svc_labels.select(sm.spec.get("selector") or {}, _monitor_namespaces(sm)):
                out.covered_services.setdefault((svc.namespace, svc.name), f"ServiceMonitor {sm.namespace}/{sm.name}")
        pods = _LabelIndex()
        for w in workloads:
            labels = pod_template_labels(w)
            pods.add(w, labels)
            for k, v in labels.items():
                for svc in svc_selectors.get((w.namespace, k, v), []):
                    if all(labels.get(a) == str(b) for a, b in (svc.spec.get("selector") or {}).items()):
                        out.selecting[_wkey(w)].setdefault(svc.name, svc)
        for pm in inv.objects("PodMonitor"):
            out.monitors += 1
            for w in pods.select(pm.spec.get("selector") or {}, _monitor_namespaces(pm)):
                out.covered_workloads.setdefault(_wkey(w), f"PodMonitor {pm.namespace}/{pm.name}")
        return out

    def services(self, w: K8sObject) -> list[K8sObject]:
        return [svc for _, svc in sorted(self.selecting.get(_wkey(w), {}).items())]

    def coverage(self, w: K8sObject) -> str | None:
        """What scrapes ``w``, or None."""
        tmpl_ann = ((w.spec.get("template") or {}).get("metadata") or {}).get("annotations") or {}
        if tmpl_ann.get(SCRAPE_ANNOTATION) == "true":
            return f"{SCRAPE_ANNOTATION} on the pod template"
        if _wkey(w) in self.covered_workloads:
            return self.covered_workloads[_wkey(w)]
        return next((self.covered_services[(s.namespace, s.name)] for s in self.services(w)
                     if (s.namespace, s.name) in self.covered_services), None)


def _monitor_labels(inv: Inventory) -> dict[str, str]:
    """Labels a ServiceMonitor needs for a Prometheus (operator) instance to pick it up."""
    for prom in inv.objects("Prometheus"):
        labels = (prom.spec.get("serviceMonitorSelector") or {}).get("matchLabels") or {}
        if labels:
            return {str(k): str(v) for k, v in labels.items()}
    return {}


def _metrics_port(w: K8sObject) -> tuple[str, Any] | None:
    """(name, containerPort) of the port most likely serving metrics."""
    ports = [p for c in containers(w) if not c.init for p in c.spec.get("ports") or [] if isinstance(p, dict)]
    ports.sort(key=lambda p: "metric" not in str(p.get("name") or ""))
    return (str(ports[0].get("name") or ""), ports[0].get("containerPort")) if ports else None


def _yaml_map(d: dict[str, str], indent: str) -> str:
    return "\n".join(f"{indent}{k}: {v}" for k, v in sorted(d.items()))


def _metrics_service(w: K8sObject) -> tuple[str, dict[str, str], str] | None:
    """A new Service for ``w``'s metrics port: (YAML, its labels, the ServiceMonitor endpoint)."""
    port = _metrics_port(w)
    selector = pod_template_labels(w)
    if port is None or not selector:
        return None
    name, number = port
    labels = {"app.kubernetes.io/name": w.name}
    port_name = name or "metrics"
    text = (f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {w.name}-metrics\n  namespace: {w.namespace}\n"
            f"  labels:\n{_yaml_map(labels, '    ')}\nspec:\n  selector:\n{_yaml_map(selector, '    ')}\n"
            f"  ports:\n  - name: {port_name}\n    port: {number}\n    targetPort: {number}")
    return text, labels, f"port: {port_name}"


def _existing_service(inv: Inventory, svc: K8sObject) -> tuple[list[str], dict[str, str], str, str]:
    """Commands needed before a ServiceMonitor can select ``svc``, its labels, the endpoint line, and the step
    that labels it in the repository when Flux applies it."""
    pre: list[str] = []
    flux = ""
    labels = dict(svc.labels)
    if not labels:
        labels = {"app.kubernetes.io/name": svc.name}
        flux = _gitops.change(inv, svc, [_gitops.Edit("metadata.labels", svc.name, verb="add",
                                                      shown=f"`app.kubernetes.io/name: {svc.name}` to `labels`",
                                                      label=f"label app.kubernetes.io/name={svc.name}")]) or ""
        if not flux:
            pre.append(f"kubectl label service {svc.name} -n {svc.namespace} app.kubernetes.io/name={svc.name}")
    ports = sorted((p for p in svc.spec.get("ports") or [] if isinstance(p, dict)),
                   key=lambda p: "metric" not in str(p.get("name") or ""))
    first = ports[0] if ports else {}
    endpoint = (f"port: {first['name']}" if first.get("name")
                else f"targetPort: {first.get('targetPort', first.get('port'))}")
    return pre, labels, endpoint, flux


def _static_job(inv: Inventory, svc: K8sObject, cm: K8sObject, key: str, reader: K8sObject) -> str:
    """A static scrape job for ``svc`` in the Prometheus config held by ``cm``, and how to reload it."""
    ports = sorted((p for p in svc.spec.get("ports") or [] if isinstance(p, dict)),
                   key=lambda p: "metric" not in str(p.get("name") or ""))
    port = ports[0].get("port") if ports else None
    target = f"{svc.name}.{svc.namespace}.svc" + (f":{port}" if port else "")
    job = (f"  - job_name: {svc.name}\n    metrics_path: /metrics\n    static_configs:\n"
           f"      - targets: ['{target}']")
    restart = (f"kubectl rollout restart {reader.kind.lower()}/{reader.name} -n {reader.namespace}"
               if reader.kind in WORKLOAD_KINDS else "# then reload Prometheus (POST /-/reload)")
    head = (f"Prometheus reads its scrape jobs from ConfigMap {cm.namespace}/{cm.name} ({key}); add a job under "
            f"scrape_configs:\n{_code('yaml', job)}\n")
    path = f"data[{json.dumps(key)}]"
    flux = _gitops.change(inv, cm, [_gitops.Edit(path, "", verb="add", shown=f"the job above to `{key}`",
                                                 label=f"scrape {svc.name}")])
    if flux is not None:
        then = "Then reload Prometheus (POST /-/reload)." if restart.startswith("#") else \
            "Then:\n" + _code("bash", restart)
        return f"{head}{flux}\n{then}"
    return head + _code("bash", f"kubectl edit configmap {cm.name} -n {cm.namespace}\n{restart}")


def _service_monitor(inv: Inventory, w: K8sObject, svc: K8sObject | None, monitor_labels: dict[str, str]) -> str:
    """A ServiceMonitor for ``svc`` (or for a new Service for ``w``), with any command it needs first."""
    pre: list[str] = []
    docs: list[str] = []
    flux = ""
    if svc is None:
        new = _metrics_service(w)
        if new is None:
            return (f"{w.kind} {w.name} declares no containerPort or no pod labels: add the port its /metrics "
                    "endpoint listens on (named metrics), then a Service and a ServiceMonitor for it.")
        service_yaml, labels, endpoint = new
        docs.append(service_yaml)
    else:
        pre, labels, endpoint, flux = _existing_service(inv, svc)
    meta = f"\n  labels:\n{_yaml_map(monitor_labels, '    ')}" if monitor_labels else ""
    docs.append(f"apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: {w.name}\n"
                f"  namespace: {w.namespace}{meta}\nspec:\n  selector:\n    matchLabels:\n"
                f"{_yaml_map(labels, '      ')}\n  endpoints:\n  - {endpoint}\n    path: /metrics\n"
                "    interval: 30s")
    fname = f"{w.name}-servicemonitor.yaml"
    commands = "\n".join([*pre, f"kubectl apply -f {fname}"])
    text = f"Save as {fname}:\n" + _code("yaml", "\n---\n".join(docs)) + "\n" + _code("bash", commands)
    return f"First label the Service. {flux}\n{text}" if flux else text


@rule("KS702", "no-metrics-scraping", severity=Severity.INFO)
def no_metrics_scraping(ctx: Context) -> Iterator[Finding]:
    """Workload that no ServiceMonitor, PodMonitor or scrape annotation covers.

    ## What it does
    For each Deployment, StatefulSet and DaemonSet (repo and live, outside system namespaces) checks
    whether Prometheus scrapes it: a ServiceMonitor selecting a Service that selects its pods, a
    PodMonitor selecting its pod labels, `prometheus.io/scrape: "true"` on the pod template or on a
    Service selecting it, or a static target naming such a Service in a Prometheus config (ConfigMap).

    ## Why is this bad?
    Without application metrics, only node metrics exist: no request rates, errors or latencies, and
    no alert can fire on the application's health (a cluster with node-exporter only is blind to it).

    ## Example
    ```shell
    $ kubectl get servicemonitor -n homelab
    No resources found in homelab namespace.
    ```

    ## Fix
    Add a ServiceMonitor for the workload's Service and metrics port:
    ```yaml
    apiVersion: monitoring.coreos.com/v1
    kind: ServiceMonitor
    metadata: {name: homelab-dashboard, namespace: homelab}
    spec:
      selector: {matchLabels: {app: homelab-dashboard}}
      endpoints: [{port: http, path: /metrics, interval: 30s}]
    ```
    """
    inv = ctx.inv
    workloads = [w for w in inv.workloads() if w.kind in WORKLOAD_KINDS and w.namespace not in SYSTEM_NAMESPACES]
    if not workloads:
        return
    scraping = _Scraping.build(inv, workloads)
    labels = _monitor_labels(inv)
    crd_absent = inv.cluster is not None and not inv.listed("ServiceMonitor")
    reader: K8sObject | None = None
    for w in workloads:
        if scraping.coverage(w):
            continue
        services = scraping.services(w)
        tmpl = ", ".join(f"{k}={v}" for k, v in sorted(pod_template_labels(w).items())) or "none"
        evidence = [f"pod template labels: {tmpl}",
                    f"Services selecting its pods: {', '.join(s.name for s in services)}" if services
                    else "no Service selects its pods",
                    f"{scraping.monitors} ServiceMonitor/PodMonitor objects found; none selects it",
                    f"no {SCRAPE_ANNOTATION}: \"true\" annotation on the pod template or its Services"]
        if scraping.static:
            evidence.append(f"static Prometheus targets cover only: {', '.join(scraping.static)}")
        if crd_absent:
            evidence.append("ServiceMonitor was not listed from the cluster: the Prometheus Operator CRDs "
                            "(monitoring.coreos.com) are probably not installed")
        fix = _service_monitor(inv, w, services[0] if services else None, labels)
        if crd_absent:
            fix = ("Install the Prometheus Operator CRDs first (e.g. with the kube-prometheus-stack chart), or "
                   f"annotate the pod template with {SCRAPE_ANNOTATION}: \"true\" and prometheus.io/port. {fix}")
        if services and scraping.configs:
            cm, key = scraping.configs[0]
            reader = reader if reader is not None else _mounted_by(inv, cm) or cm
            operator = f"Or, with the Prometheus Operator, {fix[0].lower()}{fix[1:]}"
            fix = f"{_static_job(inv, services[0], cm, key, reader)}\n{operator}"
        yield ctx.finding(
            w, f"{w.kind} {w.name}: no Prometheus scrape configuration covers it", evidence=evidence, fix=fix,
            root_cause="Observability was planned but not implemented: the app is deployed without a "
                       "ServiceMonitor, PodMonitor or scrape annotation, so Prometheus never collects its metrics.",
            dedupe=f"{w.kind}/{w.namespace}/{w.name}")


# -- KS703 ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Alert:
    """One alert kubeshape expects, how to recognise an expression covering it, and its YAML."""

    key: str
    what: str
    metric: str
    yaml: str
    covers: Callable[[str], bool]


def _covers_restarts(t: str) -> bool:
    return "kube_pod_container_status_restarts_total" in t or (
        "kube_pod_container_status_waiting_reason" in t and "CrashLoopBackOff" in t)


def _covers_unavailable(t: str) -> bool:
    return "kube_deployment_status_replicas_unavailable" in t or "kube_deployment_status_replicas_available" in t


def _covers_pulls(t: str) -> bool:
    waiting = "kube_pod_container_status_waiting_reason" in t and ("ImagePullBackOff" in t or "ErrImagePull" in t)
    return waiting or "pull_image" in t or bool(re.search(r"image_pull\w*fail", t))


_RESTART_ALERT = """\
    - alert: PodRestartStorm
      # increase() of the counter: rate(...[1h]) > 5 would be a per-second rate and would never fire
      expr: sum by (namespace, pod) (increase(kube_pod_container_status_restarts_total[1d])) > {threshold}
      for: 15m
      labels: {{severity: warning}}
      annotations:
        summary: "{{{{ $labels.namespace }}}}/{{{{ $labels.pod }}}} restarted {{{{ $value }}}} times in a day\""""
_UNAVAILABLE_ALERT = """\
    - alert: DeploymentReplicasUnavailable
      # a gauge: compare it directly (rate() of a gauge is meaningless)
      expr: kube_deployment_status_replicas_unavailable > 0
      for: 15m
      labels: {severity: warning}
      annotations:
        summary: "{{ $labels.namespace }}/{{ $labels.deployment }} has {{ $value }} unavailable replicas\""""
_PULL_ALERT = """\
    - alert: ImagePullFailing
      expr: >-
        max by (namespace, pod, container)
        (kube_pod_container_status_waiting_reason{reason=~"ImagePullBackOff|ErrImagePull"}) == 1
      for: 5m
      labels: {severity: critical}
      annotations:
        summary: "{{ $labels.namespace }}/{{ $labels.pod }} cannot pull the image of {{ $labels.container }}\""""


def _alerts(restarts_per_day: float) -> list[_Alert]:
    return [
        _Alert("restarts", "container restarts", "kube_pod_container_status_restarts_total",
               _RESTART_ALERT.format(threshold=f"{restarts_per_day:g}"), _covers_restarts),
        _Alert("unavailable", "unavailable replicas", "kube_deployment_status_replicas_unavailable",
               _UNAVAILABLE_ALERT, _covers_unavailable),
        _Alert("image-pull", "image pull failures",
               'kube_pod_container_status_waiting_reason{reason=~"ImagePullBackOff|ErrImagePull"}', _PULL_ALERT,
               _covers_pulls),
    ]


def _alert_texts(inv: Inventory) -> tuple[list[str], list[str]]:
    """Expressions of alerting rules (PrometheusRules, rule files in ConfigMaps), and where they live."""
    texts: list[str] = []
    where: list[str] = []
    for pr in inv.objects("PrometheusRule"):
        where.append(f"PrometheusRule {pr.namespace}/{pr.name} ({pr.source})")
        for group in pr.spec.get("groups") or []:
            for r in (group or {}).get("rules") or []:
                if isinstance(r, dict) and r.get("alert"):
                    texts.append(str(r.get("expr") or ""))
    for cm in inv.objects("ConfigMap"):
        for value in (cm.raw.get("data") or {}).values():
            if isinstance(value, str) and "alert:" in value and "expr:" in value:
                texts.append(value)
                where.append(f"rule file in ConfigMap {cm.namespace}/{cm.name} ({cm.source})")
    return texts, where


def _current_state(inv: Inventory) -> list[str]:
    """What the missing alerts would show right now (one pass over the pods)."""
    pulling, worst, worst_pod = 0, 0, ""
    for pod in inv.live("Pod"):
        for cs in (pod.status.get("containerStatuses") or []) + (pod.status.get("initContainerStatuses") or []):
            if ((cs.get("state") or {}).get("waiting") or {}).get("reason") in PULL_FAILURES:
                pulling += 1
            if int(cs.get("restartCount") or 0) > worst:
                worst, worst_pod = int(cs.get("restartCount") or 0), f"{pod.namespace}/{pod.name}"
    unavailable = sum(1 for d in inv.live("Deployment") if (d.status.get("unavailableReplicas") or 0) > 0)
    out = []
    if worst:
        out.append(f"right now {worst_pod} has a container with {worst} restarts")
    if unavailable:
        out.append(f"right now {unavailable} Deployment(s) have unavailable replicas")
    if pulling:
        out.append(f"right now {pulling} container(s) wait in an image pull back-off")
    return out


def _rule_destination(inv: Inventory) -> tuple[str, dict[str, str]]:
    for prom in inv.objects("Prometheus"):
        labels = (prom.spec.get("ruleSelector") or {}).get("matchLabels") or {}
        return prom.namespace, {str(k): str(v) for k, v in labels.items()}
    return "monitoring", {}


@rule("KS703", "no-alert-rules", severity=Severity.WARNING)
def no_alert_rules(ctx: Context) -> Iterator[Finding]:
    """No alert on restarts, unavailable replicas or image pull failures.

    ## What it does
    Looks for alerting rules (PrometheusRule objects in the repo and cluster, and Prometheus rule files
    in ConfigMaps) whose expressions cover container restarts
    (`kube_pod_container_status_restarts_total`), unavailable Deployment replicas
    (`kube_deployment_status_replicas_unavailable`) and image pull failures
    (`kube_pod_container_status_waiting_reason` with `ImagePullBackOff`/`ErrImagePull`), and reports
    the missing ones once for the cluster (or the repo).

    ## Why is this bad?
    Nobody is told when a pod restarts 598 times or a rollout waits in `ImagePullBackOff` for 105
    minutes: problems are found by accident, hours later.

    ## Example
    ```shell
    $ kubectl get prometheusrules -A
    No resources found
    ```

    ## Fix
    Add a PrometheusRule with the three alerts (kube-state-metrics provides the series):
    ```yaml
    - alert: PodRestartStorm
      expr: sum by (namespace, pod) (increase(kube_pod_container_status_restarts_total[1d])) > 5
    - alert: DeploymentReplicasUnavailable
      expr: kube_deployment_status_replicas_unavailable > 0
    - alert: ImagePullFailing
      expr: kube_pod_container_status_waiting_reason{reason=~"ImagePullBackOff|ErrImagePull"} == 1
    ```
    """
    inv = ctx.inv
    if inv.cluster is None and not inv.repo_workloads:
        return
    texts, where = _alert_texts(inv)
    missing = [a for a in _alerts(ctx.cfg.thresholds.restarts_per_day) if not any(map(a.covers, texts))]
    if not missing:
        return
    shown = ", ".join(where[:5]) + (f" and {len(where) - 5} more" if len(where) > 5 else "")
    configmaps_unread = inv.cluster is not None and not inv.listed("ConfigMap")
    evidence = [f"alerting rules found in: {shown}" if where else
                "no PrometheusRule and no rule file in a ConfigMap in the repo, and no PrometheusRule in the cluster"
                if configmaps_unread else
                "no PrometheusRule and no rule file in a ConfigMap, in the repo or the cluster"]
    if configmaps_unread:
        evidence.append("ConfigMaps were not readable: rule files there were not checked")
    if inv.cluster is not None and not inv.listed("PrometheusRule"):
        evidence.append("PrometheusRule was not listed from the cluster: the Prometheus Operator CRDs "
                        "(monitoring.coreos.com) are probably not installed")
    evidence += [f"no alert on {a.what} ({a.metric})" for a in missing]
    evidence += _current_state(inv)
    ns, labels = _rule_destination(inv)
    meta_labels = f"\n  labels:\n{_yaml_map(labels, '    ')}" if labels else ""
    rule_yaml = "\n".join(["apiVersion: monitoring.coreos.com/v1", "kind: PrometheusRule", "metadata:",
                           "  name: deployment-health", f"  namespace: {ns}{meta_labels}", "spec:", "  groups:",
                           "  - name: deployment-health", "    rules:", *(a.yaml for a in missing)])
    fix = ("Save as deployment-health.yaml (the expressions need kube-state-metrics):\n"
           + _code("yaml", rule_yaml) + "\n" + _code("bash", "kubectl apply -f deployment-health.yaml"))
    obj = ObjectRef("Cluster", "", inv.cluster.name) if inv.cluster is not None else None
    yield ctx.finding(
        obj, f"no alert on {', '.join(a.what for a in missing)}", evidence=evidence, fix=fix,
        root_cause="Monitoring stops at collecting metrics: no alerting rules were written for the failure modes "
                   "this cluster actually has, so restarts and failed rollouts go unnoticed.",
        source="cluster" if inv.cluster is not None else "repo", data={"missing": [a.key for a in missing]})
