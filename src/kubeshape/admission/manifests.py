"""The objects that run the validating webhook in a cluster, as plain dicts (``kubeshape webhook manifests``)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from kubeshape import __version__

NAME = "kubeshape-webhook"  # ServiceAccount, RBAC, Deployment, PDB and Service
CONFIG_NAME = "kubeshape"  # the ValidatingWebhookConfiguration
WEBHOOK_NAME = "validate.kubeshape.io"
TLS_SECRET = "kubeshape-webhook-tls"
CONFIG_MAP = "kubeshape-config"
CONFIG_KEY = "kubeshape.yaml"
PORT = 8443
PATH = "/validate"
DEFAULT_IMAGE = f"ghcr.io/kubeshape/kubeshape:{__version__}"
OPT_OUT_LABEL = "kubeshape.io/admission"  # a namespace labelled "disabled" is never gated
EMPTY_CONFIG = ("# kubeshape.yaml for the admission webhook (same keys as the CLI's); empty: the defaults.\n"
                "{}\n")
LABELS = {"app.kubernetes.io/name": "kubeshape", "app.kubernetes.io/component": "webhook"}

# What the webhook judges: workloads and their autoscalers, when they are created or changed.
RULES: list[tuple[str, str, list[str]]] = [
    ("apps", "v1", ["deployments", "statefulsets", "daemonsets", "replicasets"]),
    ("batch", "v1", ["jobs", "cronjobs"]),
    ("", "v1", ["pods"]),
    ("autoscaling", "v2", ["horizontalpodautoscalers"]),
]
# The webhook's cluster cache: what incoming objects are judged against. Read-only, and never secrets.
CACHE_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]},
]


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = dict(LABELS)
    return meta


def namespace_object(namespace: str) -> dict[str, Any]:
    """The webhook's Namespace; its pods meet the ``restricted`` Pod Security Standard, so it enforces it."""
    meta = _meta(namespace)
    meta["labels"]["pod-security.kubernetes.io/enforce"] = "restricted"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def service_account(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(NAME, namespace)}


def cluster_role() -> dict[str, Any]:
    """Read access to what the webhook caches: Deployments, StatefulSets and Services."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": _meta(NAME),
            "rules": [dict(r) for r in CACHE_RULES]}


def cluster_role_binding(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": _meta(NAME),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}]}


def config_map(namespace: str, config_text: str = EMPTY_CONFIG) -> dict[str, Any]:
    """The webhook's ``kubeshape.yaml``."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(CONFIG_MAP, namespace),
            "data": {CONFIG_KEY: config_text}}


def _probe(path: str, period: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "https", "scheme": "HTTPS"}, "periodSeconds": period,
            "timeoutSeconds": 2, "failureThreshold": 3}


def deployment(namespace: str, image: str = DEFAULT_IMAGE, config_text: str = EMPTY_CONFIG) -> dict[str, Any]:
    """Two replicas of ``kubeshape webhook serve`` with the TLS Secret and the config mounted, locked down."""
    # A changed config changes the pod template, so applying it rolls the pods onto it.
    config_hash = hashlib.sha256(config_text.encode()).hexdigest()
    container = {
        "name": "webhook",
        "image": image,
        "args": ["webhook", "serve", "--cert-file", "/tls/tls.crt", "--key-file", "/tls/tls.key",
                 "--port", str(PORT), "--config", f"/config/{CONFIG_KEY}"],
        "ports": [{"name": "https", "containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": _probe("/readyz", 5),
        "livenessProbe": _probe("/healthz", 10),
        "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"cpu": "1", "memory": "384Mi"}},
        "securityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True,
                            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": [{"name": "tls", "mountPath": "/tls", "readOnly": True},
                         {"name": "config", "mountPath": "/config", "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    pod_spec = {
        "serviceAccountName": NAME,
        # fsGroup lets the non-root user read the Secret's files (mode 0440)
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "tls", "secret": {"secretName": TLS_SECRET, "defaultMode": 0o440}},
                    {"name": "config", "configMap": {"name": CONFIG_MAP}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                       "whenUnsatisfiable": "ScheduleAnyway",
                                       "labelSelector": {"matchLabels": dict(LABELS)}}],
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(NAME, namespace), "spec": {
        "replicas": 2,
        "selector": {"matchLabels": dict(LABELS)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {"metadata": {"labels": dict(LABELS),
                                  "annotations": {"kubeshape.io/config-sha256": config_hash}},
                     "spec": pod_spec},
    }}


def pod_disruption_budget(namespace: str) -> dict[str, Any]:
    """Node drains keep one replica serving."""
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(NAME, namespace),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": dict(LABELS)}}}


def service(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(NAME, namespace), "spec": {
        "selector": dict(LABELS),
        "ports": [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}],
    }}


def namespace_selector(namespace: str, match_labels: dict[str, str] | None = None) -> dict[str, Any]:
    """Every namespace but kube-system, the webhook's own (it must never gate itself) and those that opt out."""
    selector: dict[str, Any] = {"matchExpressions": [
        {"key": OPT_OUT_LABEL, "operator": "NotIn", "values": ["disabled"]},
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
         "values": list(dict.fromkeys(["kube-system", namespace]))},
    ]}
    if match_labels:
        selector["matchLabels"] = dict(match_labels)
    return selector


def webhook_configuration(ca_bundle: bytes, *, url: str | None = None, namespace: str = "kubeshape",
                          failure_policy: str = "Ignore", timeout_seconds: int = 5,
                          match_labels: dict[str, str] | None = None) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration ``kubeshape``: calls the webhook Service in ``namespace``, or ``url``
    when it runs outside the cluster. ``ca_bundle`` is the PEM of the CA that signed its serving certificate."""
    if failure_policy not in ("Ignore", "Fail"):
        raise ValueError(f"failure_policy must be Ignore or Fail, not {failure_policy!r}")
    if not 1 <= timeout_seconds <= 30:
        raise ValueError(f"timeout_seconds must be 1..30, not {timeout_seconds}")
    client: dict[str, Any] = {"url": url} if url else {
        "service": {"namespace": namespace, "name": NAME, "path": PATH, "port": 443}}
    client["caBundle"] = base64.b64encode(ca_bundle).decode()
    webhook = {
        "name": WEBHOOK_NAME,
        "clientConfig": client,
        "rules": [{"apiGroups": [group], "apiVersions": [version], "operations": ["CREATE", "UPDATE"],
                   "resources": list(resources), "scope": "Namespaced"} for group, version, resources in RULES],
        "matchPolicy": "Equivalent",
        "namespaceSelector": namespace_selector(namespace, match_labels),
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": timeout_seconds,
        "failurePolicy": failure_policy,
    }
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": _meta(CONFIG_NAME), "webhooks": [webhook]}


def all_manifests(ca_bundle: bytes, *, url: str | None = None, namespace: str = "kubeshape",
                  image: str = DEFAULT_IMAGE, config_text: str = EMPTY_CONFIG, failure_policy: str = "Ignore",
                  timeout_seconds: int = 5, match_labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Everything to run the webhook in the cluster, in apply order; with ``url``, only the webhook
    configuration (the webhook runs elsewhere)."""
    hook = webhook_configuration(ca_bundle, url=url, namespace=namespace, failure_policy=failure_policy,
                                 timeout_seconds=timeout_seconds, match_labels=match_labels)
    if url:
        return [hook]
    return [namespace_object(namespace), service_account(namespace), cluster_role(),
            cluster_role_binding(namespace), config_map(namespace, config_text),
            deployment(namespace, image, config_text), pod_disruption_budget(namespace), service(namespace), hook]
