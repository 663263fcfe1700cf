"""The image rules as one Kyverno ClusterPolicy: a ``validate.cel`` rule per check, Enforce for errors and Audit for
warnings, with the registries of kubeshape.yaml written into the expressions."""

from __future__ import annotations

from typing import Any

from kubeshape.config import Config
from kubeshape.policy import cel
from kubeshape.policy.vap import LABELS, OPT_OUT_LABEL
from kubeshape.rules.base import get_rule

NAME = "kubeshape"


def _rule(check: cel.Check, all_vars: list[cel.Variable], match_labels: dict[str, str]) -> dict[str, Any]:
    resources: dict[str, Any] = {"kinds": list(cel.WORKLOAD_KINDS), "operations": ["CREATE", "UPDATE"]}
    if match_labels:
        resources["namespaceSelector"] = {"matchLabels": dict(match_labels)}
    used = cel.used_variables(all_vars, [check.expression, check.message_expression])
    rule = get_rule(check.rule)
    name = f"{check.rule.lower()}-{rule.name if rule else 'check'}" + ("" if check.deny else "-warning")
    return {
        "name": name,
        "match": {"any": [{"resources": resources}]},
        "exclude": {"any": [{"resources": {"namespaces": ["kube-system"]}},
                            {"resources": {"namespaceSelector": {"matchLabels": {OPT_OUT_LABEL: "disabled"}}}}]},
        "validate": {
            "failureAction": "Enforce" if check.deny else "Audit",
            "cel": {
                "variables": [{"name": v.name, "expression": v.expression} for v in used],
                "expressions": [{"expression": check.expression, "messageExpression": check.message_expression,
                                 "message": check.message}],
            },
        },
    }


def cluster_policy(cfg: Config, failure_policy: str = "Fail",
                   match_labels: dict[str, str] | None = None) -> dict[str, Any]:
    """The ClusterPolicy ``kubeshape``."""
    all_vars = cel.variables(cel.literal_settings(cfg))
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": NAME,
            "labels": dict(LABELS),
            "annotations": {
                "policies.kyverno.io/title": "kubeshape image rules",
                "policies.kyverno.io/subject": ", ".join(cel.WORKLOAD_KINDS),
                "policies.kyverno.io/description": (
                    "Images must parse, name their registry, come from an allowed registry and be pulled "
                    "(KS101, KS102, KS107, KS108 deny); mutable tags and unqualified public images are "
                    "reported (KS101, KS103 audit)."),
                # the rules name every workload kind themselves: no generated copies for pod controllers
                "pod-policies.kyverno.io/autogen-controllers": "none",
            },
        },
        "spec": {
            "background": True,
            "failurePolicy": failure_policy,
            "rules": [_rule(c, all_vars, dict(match_labels or {})) for c in cel.checks()],
        },
    }
