"""The image rules as ValidatingAdmissionPolicies: ``kubeshape-deny`` (errors) and ``kubeshape-warn`` (warnings),
their bindings, and the ConfigMap that carries what they read of kubeshape.yaml (registries, ignored rules,
suppressions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubeshape.config import Config
from kubeshape.policy import cel

API_VERSION = "admissionregistration.k8s.io/v1"
DENY = "kubeshape-deny"
WARN = "kubeshape-warn"
PARAMS = "kubeshape-policy"
OPT_OUT_LABEL = "kubeshape.io/admission"  # a namespace labelled "disabled" is never gated
LABELS = {"app.kubernetes.io/name": "kubeshape", "app.kubernetes.io/component": "admission-policy"}


def _param(key: str, default: str = "''") -> str:
    """CEL: the parameter ConfigMap's ``data[key]``, or ``default``."""
    return f"params != null && has(params.data) && has(params.data.{key}) ? params.data.{key} : {default}"


PARAM_SETTINGS = cel.Settings(
    private=f"({_param('privateRegistries')}).split(',')[0].trim()",
    allowed_regex=f"({_param('allowedRegistries')}).trim()",
    allowed_list=_param("allowedRegistryGlobs"),
    ignored=f"({_param('ignoredRules')}).split(',')",
    suppressions=f"({_param('suppressions')}).trim()",
    annotation_ignores="(" + _param("annotationIgnores", "'true'") + ") != 'false'",
)


@dataclass(frozen=True, slots=True)
class Options:
    """What the policies are scoped to and how they fail."""

    namespace: str = "kubeshape"  # of the parameter ConfigMap
    failure_policy: str = "Fail"
    match_labels: dict[str, str] = field(default_factory=dict)  # namespaces the bindings select


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = dict(LABELS)
    return meta


def namespace_object(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(namespace)}


def param_config_map(cfg: Config, namespace: str) -> dict[str, Any]:
    """What the policies read of kubeshape.yaml: registries, ignored rules and suppressions."""
    regs = cfg.registries
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(PARAMS, namespace), "data": {
        "privateRegistries": ",".join(regs.private),
        "allowedRegistries": cel.glob_regex(regs.allowed),
        "allowedRegistryGlobs": ", ".join(regs.allowed),
        "ignoredRules": ",".join(cfg.ignore),
        "suppressions": cel.suppression_regex(cfg),
        "annotationIgnores": "true" if cfg.annotation_ignores else "false",
    }}


def namespace_selector() -> dict[str, Any]:
    """Every namespace but kube-system and those that opt out."""
    return {"matchExpressions": [
        {"key": OPT_OUT_LABEL, "operator": "NotIn", "values": ["disabled"]},
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]},
    ]}


def policy(name: str, deny: bool, failure_policy: str) -> dict[str, Any]:
    """The policy holding the deny (or the warn) checks."""
    checks = [c for c in cel.checks() if c.deny == deny]
    validations: list[dict[str, Any]] = [
        {"expression": c.expression, "messageExpression": c.message_expression, "message": c.message}
        for c in checks]
    if deny:  # Forbidden (403), as the webhook answers; unset, the API server would call the object invalid (422)
        for v in validations:
            v["reason"] = "Forbidden"
    variables = cel.used_variables(cel.variables(PARAM_SETTINGS),
                                   [c.expression for c in checks] + [c.message_expression for c in checks])
    return {"apiVersion": API_VERSION, "kind": "ValidatingAdmissionPolicy", "metadata": _meta(name), "spec": {
        "failurePolicy": failure_policy,
        "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
        "matchConstraints": {
            "resourceRules": [{"apiGroups": [group], "apiVersions": [version], "operations": ["CREATE", "UPDATE"],
                               "resources": list(resources), "scope": "Namespaced"}
                              for group, version, resources in cel.WORKLOAD_RESOURCES],
            "namespaceSelector": namespace_selector(),
        },
        "variables": [{"name": v.name, "expression": v.expression} for v in variables],
        "validations": validations,
    }}


def binding(name: str, action: str, opts: Options) -> dict[str, Any]:
    """Binds policy ``name`` with ``action`` (Deny or Warn) to the parameter ConfigMap."""
    spec: dict[str, Any] = {
        "policyName": name,
        "validationActions": [action],
        "paramRef": {"name": PARAMS, "namespace": opts.namespace, "parameterNotFoundAction": "Deny"},
    }
    if opts.match_labels:
        spec["matchResources"] = {"namespaceSelector": {"matchLabels": dict(opts.match_labels)}}
    return {"apiVersion": API_VERSION, "kind": "ValidatingAdmissionPolicyBinding", "metadata": _meta(name),
            "spec": spec}


def export(cfg: Config, opts: Options) -> list[dict[str, Any]]:
    """Everything to install, in apply order: the namespace and the parameters before the policies that read
    them, each policy before its binding."""
    return [namespace_object(opts.namespace), param_config_map(cfg, opts.namespace),
            policy(DENY, True, opts.failure_policy), binding(DENY, "Deny", opts),
            policy(WARN, False, opts.failure_policy), binding(WARN, "Warn", opts)]
