"""KS701: telemetry exported to a Service that does not exist -- switch the SDK off, or point it elsewhere."""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from kubeshape.actions.fix import yamledit as ye
from kubeshape.actions.fix.context import FixContext, Refuse
from kubeshape.actions.fix.fixers._where import container_keys, locate, repo_object
from kubeshape.findings import Finding
from kubeshape.inventory import Container, K8sObject, containers

DISABLED = "OTEL_SDK_DISABLED"
_TELEMETRY_VAR = re.compile(r"^(OTEL_|JAEGER_|ZIPKIN_)")
_TELEMETRY_HOST = re.compile(r"otel|opentelemetry|jaeger|zipkin|tempo|collector")
_SVC_HOST = re.compile(r"^(?:[a-z]+://)?([a-z0-9-]+)(?:\.([a-z0-9-]+))?(?:\.svc(?:\.[a-z0-9.-]+)?)?(?::\d+)?(?:/.*)?$")


def _host_service(value: str) -> str | None:
    """The Service name an endpoint value starts with (``http://otel-collector.homelab.svc:4317`` ->
    ``otel-collector``); None when the value is not such a URL."""
    m = _SVC_HOST.match(value.strip().lower())
    return m.group(1) if m else None


def _exporting(obj: K8sObject, variable: str, service: str) -> list[Container]:
    """Containers of ``obj`` whose ``variable`` names ``service``."""
    out = []
    for c in containers(obj):
        for e in c.spec.get("env") or []:
            if isinstance(e, dict) and e.get("name") == variable and isinstance(e.get("value"), str) \
                    and _host_service(e["value"]) == service:
                out.append(c)
                break
    return out


def _value_of(c: Container, variable: str) -> str | None:
    for e in c.spec.get("env") or []:
        if isinstance(e, dict) and e.get("name") == variable and isinstance(e.get("value"), str):
            return str(e["value"])
    return None


def _endpoint_service(ctx: FixContext, url: str, namespace: str) -> None:
    """Refuse unless ``--otel-endpoint`` names a Service the cluster (or the repo) has."""
    m = _SVC_HOST.match(url.strip().lower())
    if m is None:
        raise Refuse(f"--otel-endpoint {url!r} is not a Service URL (http://name.namespace.svc:4317)")
    name, ns = m.group(1), m.group(2) or namespace
    if name not in ctx.inv.service_names.get(ns, set()):
        where = "the cluster" if ctx.inv.listed("Service") else "the repository"
        raise Refuse(f"--otel-endpoint names Service {ns}/{name}, which {where} does not have")


def fix_missing_collector(ctx: FixContext, findings: list[Finding]) -> None:
    """``OTEL_SDK_DISABLED=true`` next to the exporter variable (or, with ``--otel-endpoint``, the variable set
    to that collector) in the file and, for a live finding, in the running workload. Only for telemetry: an
    endpoint of another kind (a database host) needs its Service, not a switch."""
    endpoint = ctx.options.otel_endpoint
    for f in findings:
        variable, service = str(f.data.get("variable") or ""), str(f.data.get("service") or "")
        ns = str(f.data.get("namespace") or (f.object.namespace if f.object else ""))
        if f.object is None or not variable or not service:
            ctx.refuse([f], "the finding does not name the variable and the Service")
            continue
        if endpoint and not (_TELEMETRY_VAR.match(variable) or _TELEMETRY_HOST.search(service)):
            ctx.refuse([f], f"{variable} is not a telemetry endpoint: deploy Service {ns}/{service} or correct "
                            f"{variable} by hand (--otel-endpoint is for collectors)")
            continue
        if not endpoint and not variable.startswith("OTEL_"):
            ctx.refuse([f], f"{DISABLED} only stops the OpenTelemetry SDK, and {variable} is not one of its "
                            f"settings: deploy Service {ns}/{service} or correct {variable} by hand")
            continue
        what = f"point {variable} at {endpoint}" if endpoint else f"set {DISABLED}=true"
        with ctx.step(f"{what[0].upper()}{what[1:]} in {f.object.kind} {f.object.namespace}/{f.object.name} "
                      f"(no Service {service} in {ns})", [f]) as draft:
            if endpoint:
                _endpoint_service(ctx, endpoint, ns)
            var, value = (variable, endpoint) if endpoint else (DISABLED, "true")
            obj = repo_object(ctx, f) if f.file else None
            copies = [obj] if obj is not None else []
            if "cluster" in f.source:
                live = ctx.live(f.object.kind, f.object.namespace, f.object.name)
                copies = list(ctx.inv.repo_by_key.get(live.key, [])) if live is not None else copies
            for o in copies:
                _edit_file(ctx, o, variable, service, var, value)
            live = ctx.live(f.object.kind, f.object.namespace, f.object.name) if "cluster" in f.source else None
            if live is not None:
                cs = _exporting(live, variable, service)
                if not cs:
                    raise Refuse(f"no live container sets {variable} to {service}")
                spec: dict[str, Any] = {}
                for c in cs:
                    spec.setdefault("initContainers" if c.init else "containers", []).append(
                        {"name": c.name, "env": [{"name": var, "value": value}]})
                ctx.apply(live, _pod_spec_patch(live, spec, var), f"set env {var}={value}")
            if not draft.texts and not draft.cluster and not draft.notes:
                where = f.file or (", ".join(sorted({str(o.file) for o in copies if o.file})) or "the repository")
                raise Refuse(f"{where}: no container's env sets {variable} to {service} here (it may come from "
                             "envFrom or an overlay): change it where it is set")


def _pod_spec_patch(live: K8sObject, spec: dict[str, Any], var: str) -> dict[str, Any]:
    """``spec`` placed at the pod template of ``live``; Refuse for kinds whose template cannot change."""
    if live.kind == "CronJob":
        return {"spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}
    if live.kind in ("Pod", "Job"):
        raise Refuse(f"the pod template of a {live.kind} cannot change: set {var} in its manifest and "
                     "create it again")
    return {"spec": {"template": {"spec": spec}}}


def _edit_file(ctx: FixContext, obj: K8sObject, variable: str, service: str, var: str, value: str) -> None:
    spot = locate(ctx, obj)
    if spot is None:
        return
    for c in _exporting(obj, variable, service):
        if c.values is not None:
            raise Refuse(f"{obj.file}: the variable comes from HelmRelease values: set {var} there")
        i = next(i for i, e in enumerate(c.spec.get("env") or [])
                 if isinstance(e, dict) and e.get("name") == variable)
        overlay = obj.origin(f"{c.path}.env[{i}].value")
        if overlay is not None:
            raise Refuse(f"env of container {c.name} is set by {overlay[0]}:{overlay[1]}: change it there")
        ctx.edit(spot.file, partial(_set_env, file=spot.file, doc=spot.doc, keys=container_keys(c), var=var,
                                    value=value, expect=_value_of(c, var)))


def _set_env(text: str, *, file: str, doc: int, keys: ye.Path_, var: str, value: str, expect: str | None) -> str:
    return ye.ensure_env(text, file, doc, keys, var, value, expect=expect)
