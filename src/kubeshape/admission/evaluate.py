"""Judge one incoming object with the linter's rules: the verdict an admission request gets.

Pure: the object, the config, and whatever cluster and registry context the caller has (a watch-fed cache, a
registry look-up) go in; a :class:`Verdict` comes out. The webhook, the property test that compares it with the
exported ValidatingAdmissionPolicy, and ``kubeshape lint`` all run the same rule functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kubeshape import engine
from kubeshape.config import Config
from kubeshape.findings import Finding, Severity
from kubeshape.inventory import ClusterSource, Inventory, K8sObject, RegistrySnapshot
from kubeshape.rules.base import get_rule
from kubeshape.rules.manifests import CHANGE_CAUSE

WORKLOAD_KINDS = frozenset({"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"})
# Rules that judge one workload on its own, or with the Services (KS701) and the registry (KS104) beside it.
WORKLOAD_RULES = ("KS101", "KS102", "KS103", "KS104", "KS107", "KS108", "KS301", "KS701")
HPA_RULES = ("KS601",)
# Kinds of the cluster each incoming kind is judged against.
CONTEXT_KINDS = {"HorizontalPodAutoscaler": ("Deployment", "StatefulSet", "ReplicaSet"),
                 **{k: ("Service",) for k in WORKLOAD_KINDS}}
MAX_MESSAGE = 1024  # the deny message kubectl prints; findings past it are counted, not spelled out
MAX_WARNING = 250  # the apiserver truncates longer warnings


@dataclass(slots=True)
class Verdict:
    """What the request gets: allowed or not, the deny message, the warnings kubectl prints, and why."""

    allowed: bool
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def rules_for(kind: str) -> tuple[str, ...]:
    """The rule IDs an object of ``kind`` is judged by at admission (none: the kind is not gated)."""
    if kind in WORKLOAD_KINDS:
        return WORKLOAD_RULES
    if kind == "HorizontalPodAutoscaler":
        return HPA_RULES
    return ()


def evaluate_object(obj: dict[str, Any], cfg: Config, *, operation: str = "CREATE", old: dict[str, Any] | None = None,
                    cluster: ClusterSource | None = None, registry: RegistrySnapshot | None = None,
                    namespace: str = "", deny_at: Severity = Severity.ERROR) -> Verdict:
    """The verdict on ``obj`` (a well-formed object of a built-in kind) about to be created or updated.

    ``cluster`` holds the objects of :data:`CONTEXT_KINDS` the caller could read (``listed_kinds`` says which: a
    kind not listed is never claimed absent); ``registry`` the repositories the images name. Findings at or above
    ``deny_at`` deny; the others become warnings.
    """
    incoming = K8sObject.from_raw(obj, "cluster", default_namespace=namespace)
    rule_ids = rules_for(incoming.kind) if incoming.builtin else ()
    if not rule_ids:
        return Verdict(allowed=True)
    findings = _findings(incoming, cfg, rule_ids, cluster, registry)
    if operation == "UPDATE" and old is not None and incoming.kind == "Deployment":
        cause = change_cause_finding(incoming, old)
        if cause is not None:
            findings.append(cause)
    return verdict(findings, deny_at)


def _findings(incoming: K8sObject, cfg: Config, rule_ids: Iterable[str], cluster: ClusterSource | None,
              registry: RegistrySnapshot | None) -> list[Finding]:
    context = ClusterSource(name="admission", listed_kinds=set())
    if cluster is not None:
        for kind in CONTEXT_KINDS.get(incoming.kind, ()):
            if kind in cluster.listed_kinds:
                context.listed_kinds.add(kind)
                context.objects[kind] = [o for o in cluster.objects.get(kind, []) if o.key != incoming.key]
    context.objects.setdefault(incoming.kind, []).append(incoming)
    inv = Inventory(cluster=context, registry=registry)
    result = engine.run(inv, cfg, select=list(rule_ids))
    ref = incoming.ref
    out = []
    for f in result.findings:
        if f.rule == engine.INTERNAL_ERROR:  # a rule that failed must not block a deploy: say it was not checked
            f.severity, f.object, f.fix = Severity.WARNING, ref, ""
            f.message = f"not checked: {f.message}"
        elif f.object != ref:
            continue
        if f.rule == "KS104" and "@" in str(f.data.get("image", "")):
            continue  # digests are not looked up in the registry: only tags were listed
        f.source = "admission"
        out.append(f)
    return out


def change_cause_finding(new: K8sObject, old: dict[str, Any]) -> Finding | None:
    """KS205 on an update: the pod template changes (a rollout) and ``kubernetes.io/change-cause`` does not."""
    old_meta: dict[str, Any] = old.get("metadata") or {}
    old_spec: dict[str, Any] = old.get("spec") or {}
    if new.spec.get("template") == old_spec.get("template"):
        return None
    old_cause = (old_meta.get("annotations") or {}).get(CHANGE_CAUSE)
    cause = new.annotations.get(CHANGE_CAUSE)
    if cause and cause != old_cause:
        return None
    rule = get_rule("KS205")
    assert rule is not None
    said = f"still says {cause!r} from the previous rollout" if cause else "is not set"
    return Finding(
        rule="KS205", severity=Severity.WARNING, family=2, object=new.ref, source="admission",
        message=f"this update rolls out a new revision of {new.name} and kubernetes.io/change-cause {said}",
        evidence=["spec.template changed: the update starts a rollout", f"{CHANGE_CAUSE}: {cause or '(none)'}"],
        fix=f"kubectl annotate deployment/{new.name} -n {new.namespace} kubernetes.io/change-cause=\"<what and "
            "why>\" --overwrite (or deploy with 'kubeshape release', which records it)",
        root_cause="The image or template was changed by hand without recording why.")


def verdict(findings: list[Finding], deny_at: Severity = Severity.ERROR) -> Verdict:
    """Deny when any finding reaches ``deny_at``: the message names each rule, the problem and the fix."""
    denying = [f for f in findings if f.severity >= deny_at]
    warnings = [_clip(line(f), MAX_WARNING) for f in findings if f.severity < deny_at]
    if not denying:
        return Verdict(allowed=True, warnings=warnings, findings=findings)
    parts: list[str] = []
    size = 0
    for n, f in enumerate(denying):
        text = line(f)
        if parts and size + len(text) > MAX_MESSAGE:
            parts.append(f"(and {len(denying) - n} more: run 'kubeshape lint' on the manifest)")
            break
        parts.append(text)
        size += len(text) + 1
    return Verdict(allowed=False, message="\n".join(parts), warnings=warnings, findings=findings)


def line(f: Finding) -> str:
    """``KS101 unqualified-image: <problem>. Fix: <the fix, on one line>``."""
    rule = get_rule(f.rule)
    name = f" {rule.name}" if rule else ""
    fix = one_line_fix(f.fix)
    return f"{f.rule}{name}: {f.message}" + (f". Fix: {fix}" if fix else "")


_FENCE = re.compile(r"^\s*```")
_WHERE = re.compile(r"^In .+:$")


def one_line_fix(fix: str) -> str:
    """A multi-line fix (prose, diff blocks, commands) as one line: prose and commands kept, a diff reduced to the
    lines it adds, code fences and 'In <file>:' headers dropped."""
    out: list[str] = []
    in_diff = False
    for raw in fix.splitlines():
        text = raw.strip()
        if _FENCE.match(raw):
            in_diff = text.startswith("```diff")
            continue
        if not text or _WHERE.match(text):
            continue
        if in_diff:
            if not raw.startswith("+"):
                continue
            text = "set " + raw[1:].strip()
        out.append(text.rstrip(":") if text.endswith(":") and not in_diff else text)
    return _clip("; ".join(out), 600)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
