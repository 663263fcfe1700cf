#!/usr/bin/env python3
"""Generate ``src/kubeshape/demo/bundle/``: the cluster + registry snapshot that ``kubeshape doctor --demo`` reads.

It reproduces the homelab incident of 2025-11-17 (see docs/bundle-format.md for the format): a k3s cluster
with nodes ``pesubuntu`` and ``asuna``, a ``family-assistant-backend`` Deployment at revision 62 whose image
was set imperatively to a locally built, never pushed tag (ImagePullBackOff on asuna), a dashboard
restarting 598 times on HTTP 429 probes, two HPAs whose target Deployments are gone, an application
exporting traces to an OpenTelemetry collector that does not exist, and a private registry holding 45
meaningless ``family-assistant`` tags.

Everything is deterministic: UIDs are UUIDv5 of the object's identity, digests are SHA-256 of fixed
strings, times are offsets from COLLECTED_AT and the only randomness uses a fixed seed. Re-running the
script rewrites byte-identical files.

    python scripts/make_demo_bundle.py [--out DIR]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import shutil
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------------------------------------------------
# Data tables
# ---------------------------------------------------------------------------------------------------------

COLLECTED_AT = datetime(2025, 11, 17, 10, 0, 0, tzinfo=UTC)
SEED = 20251117
CLUSTER = "homelab"
SERVER_VERSION = "v1.31.4+k3s1"
NAMESPACES = ["homelab", "kube-system"]
ALL_NAMESPACES = ["default", "homelab", "kube-node-lease", "kube-public", "kube-system"]
REGISTRY = "100.81.76.55:30500"
CANARY = "S3CR3T-CANARY-do-not-leak"
OTEL_ENDPOINT = "otel-collector.homelab.svc.cluster.local:4317"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "kubeshape" / "demo" / "bundle"

UID_NAMESPACE = uuid.UUID("6f1c3a52-7d0e-4a8e-9b1f-2c4d5e6f7a80")
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand.SafeEncodeString

NODES: dict[str, dict[str, Any]] = {
    "pesubuntu": {
        "ip": "100.81.76.55", "pod_cidr": "10.42.0.0/24", "created": timedelta(days=97, hours=4),
        "control_plane": True, "cpu": "16", "memory_ki": 65_646_312, "disk_ki": 959_786_032,
        "kernel": "6.8.0-48-generic", "boot": 11, "machine": 21, "uuid": 31,
    },
    "asuna": {
        "ip": "100.72.14.93", "pod_cidr": "10.42.1.0/24", "created": timedelta(days=61, hours=9),
        "control_plane": False, "cpu": "8", "memory_ki": 32_803_104, "disk_ki": 479_596_204,
        "kernel": "6.8.0-49-generic", "boot": 12, "machine": 22, "uuid": 32,
    },
}

# The 45 tags in the private registry, oldest first: (tag, days before COLLECTED_AT it was pushed).
# Tags with the same value in SAME_DIGEST point at one manifest. "phase2-mcp-logging-fix" is deliberately
# absent: it was built locally on pesubuntu and never pushed.
FAMILY_ASSISTANT_TAGS: list[tuple[str, float]] = [
    ("phase1", 34.8), ("phase1-fixed", 34.1), ("dev", 33.5), ("working", 32.9), ("structure-fixed", 31.7),
    ("deps-complete", 30.2), ("complete", 29.6), ("config-fixed", 28.9), ("env-fixed", 28.3),
    ("db-fixed", 27.5), ("migration-fixed", 26.8), ("redis-fixed", 26.1), ("jwt-auth", 24.9),
    ("jwt-auth-fixed", 24.2), ("auth-complete", 24.2), ("auth-fixed", 23.4), ("cors-fixed", 22.7),
    ("telegram-fixed", 21.9), ("mcp-system", 20.6), ("mcp-working", 19.8), ("mcp-fixed", 19.8),
    ("mcp-deps-fixed", 18.9), ("mcp-tools", 18.2), ("streaming-fixed", 17.4), ("memory-fixed", 16.5),
    ("phase2", 15.3), ("phase2-fixed", 14.6), ("phase2-working", 13.8), ("health-fixed", 12.9),
    ("fixed", 11.7), ("fixed-v2", 10.9), ("fixed-v3", 10.2), ("fixed-v4", 9.4), ("fixed-v5", 8.6),
    ("test", 7.9), ("debug", 7.1), ("hotfix", 6.6), ("fixed-final", 6.0), ("latest", 6.0),
    ("import-fixed", 5.3), ("pythonpath-fixed", 4.85), ("permission-fixed", 4.05), ("mcp-logging", 2.6),
    ("phase2-mcp-logging", 2.3), ("me-fixed", 1.9),
]
SAME_DIGEST = {"latest": "fixed-final", "auth-complete": "jwt-auth-fixed", "mcp-fixed": "mcp-working"}
# Dependency layer generations: a tag uses the newest generation whose first tag is not newer than it.
DEPS_GENERATIONS = [("phase1", 1_128_774_213), ("deps-complete", 1_163_052_871),
                    ("mcp-deps-fixed", 1_214_338_905)]
BASE_LAYERS = [  # python:3.11-slim (bookworm) + apt build deps, shared by every tag
    ("python-slim-rootfs", 28_227_259), ("python-slim-deps", 3_511_108), ("python-slim-python", 16_204_087),
    ("python-slim-entry", 249), ("apt-build-deps", 187_402_655),
]
WHISPER_TAGS: list[tuple[str, float, int]] = [("v1.0", 58.2, 2_911_405_117), ("large-v3", 44.7, 3_027_889_410),
                                               ("latest", 44.7, 3_027_889_410)]

# family-assistant-backend rollout history: revision → (image, age of the ReplicaSet, pod-template-hash).
FA_REVISIONS: list[tuple[int, str, timedelta, str | None]] = [
    (53, "family-assistant:fixed", timedelta(days=6, hours=3), None),
    (54, f"{REGISTRY}/family-assistant:fixed-final", timedelta(days=5, hours=22), None),
    (55, f"{REGISTRY}/family-assistant:import-fixed", timedelta(days=5, hours=4), None),
    (56, "family-assistant:pythonpath-fixed", timedelta(days=4, hours=20), None),
    (57, f"{REGISTRY}/family-assistant:pythonpath-fixed", timedelta(days=4, hours=19, minutes=12), None),
    (58, f"{REGISTRY}/family-assistant:permission-fixed", timedelta(days=3, hours=23), None),
    (59, "family-assistant:phase2-mcp-logging", timedelta(days=2, hours=6), None),
    (60, f"{REGISTRY}/family-assistant:phase2-mcp-logging", timedelta(days=2, hours=5, minutes=31), None),
    (61, f"{REGISTRY}/family-assistant:me-fixed", timedelta(days=1, hours=21), "7748c945ff"),
    (62, "family-assistant:phase2-mcp-logging-fix", timedelta(minutes=106, seconds=12), "7fccb9956b"),
]
FA_LOCAL_TAGS = [  # built with docker on pesubuntu and imported into k3s' containerd: no registry digest
    "phase2-mcp-logging-fix", "phase2-mcp-logging", "pythonpath-fixed", "fixed", "phase2", "complete",
    "mcp-working",
]

# Third-party images: reference → approximate compressed size. Digests are derived from the reference.
IMAGE_SIZES: dict[str, int] = {
    "ghcr.io/pesuga/homelab/homelab-dashboard:latest": 61_847_293,
    "docker.io/prom/prometheus:v2.55.1": 111_538_427,
    "docker.io/prom/node-exporter:v1.8.2": 11_382_107,
    "docker.io/grafana/loki:3.3.2": 26_772_519,
    "docker.io/library/registry:2.8.3": 9_966_301,
    "docker.io/rancher/mirrored-coredns-coredns:1.12.0": 20_938_325,
    "docker.io/rancher/mirrored-metrics-server:v0.7.2": 19_494_617,
    "docker.io/rancher/local-path-provisioner:v0.0.30": 20_807_109,
    "docker.io/rancher/mirrored-pause:3.6": 301_463,
    "docker.io/rancher/mirrored-library-busybox:1.36.1": 1_935_749,
    "docker.io/onerahmet/openai-whisper-asr-webservice:v1.6.0-gpu": 3_418_092_734,
}

# ---------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------

_rv = [4_182_000]


def next_rv() -> str:
    """A fresh resourceVersion (k3s/kine uses a single increasing integer)."""
    _rv[0] += 7
    return str(_rv[0])


def ago(**kw: float) -> datetime:
    return COLLECTED_AT - timedelta(**kw)


def ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha(*parts: object) -> str:
    return hashlib.sha256("\x00".join(str(p) for p in parts).encode()).hexdigest()


def digest(*parts: object) -> str:
    return "sha256:" + sha(*parts)


def uid(kind: str, namespace: str, name: str) -> str:
    return str(uuid.uuid5(UID_NAMESPACE, f"{kind}/{namespace}/{name}"))


def safe_string(seed: str, length: int) -> str:
    """Deterministic name suffix in the alphabet Kubernetes uses for generated names."""
    h = int(sha("suffix", seed), 16)
    out = []
    for _ in range(length):
        h, r = divmod(h, len(SAFE_ALPHABET))
        out.append(SAFE_ALPHABET[r])
    return "".join(out)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def compact(d: dict[str, Any]) -> dict[str, Any]:
    """Drop None values and empty containers, as the API's omitempty does."""
    return {k: v for k, v in d.items() if v is not None and v != {} and v != []}


def meta(kind: str, name: str, namespace: str | None, created: datetime, *, labels: dict[str, str] | None = None,
         annotations: dict[str, str] | None = None, owner: dict[str, Any] | None = None,
         generation: int | None = None, generate_name: str | None = None,
         managed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """ObjectMeta in the field order the API server writes it."""
    m: dict[str, Any] = {"name": name}
    if generate_name:
        m["generateName"] = generate_name
    if namespace is not None:
        m["namespace"] = namespace
    m["uid"] = uid(kind, namespace or "", name)
    m["resourceVersion"] = next_rv()
    if generation is not None:
        m["generation"] = generation
    m["creationTimestamp"] = ts(created)
    if labels:
        m["labels"] = labels
    if annotations:
        m["annotations"] = annotations
    if owner:
        m["ownerReferences"] = [owner]
    if managed:
        m["managedFields"] = managed
    return m


def owner_ref(kind: str, name: str, namespace: str, api_version: str = "apps/v1") -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid(kind, namespace, name),
            "controller": True, "blockOwnerDeletion": True}


def managed_field(manager: str, operation: str, when: datetime, fields: dict[str, Any],
                  subresource: str | None = None, api_version: str = "apps/v1") -> dict[str, Any]:
    entry: dict[str, Any] = {"manager": manager, "operation": operation, "apiVersion": api_version,
                             "time": ts(when), "fieldsType": "FieldsV1", "fieldsV1": fields}
    if subresource:
        entry["subresource"] = subresource
    return entry


def condition(ctype: str, status: str, when: datetime, reason: str | None = None, message: str | None = None,
              *, probe: bool = False, update: datetime | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"type": ctype, "status": status}
    if probe:
        c["lastProbeTime"] = None
    if update is not None:
        c["lastUpdateTime"] = ts(update)
    c["lastTransitionTime"] = ts(when)
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def image_digest(ref: str) -> str:
    """The repo digest of a third-party image (or of a family-assistant registry tag)."""
    if ref.startswith(f"{REGISTRY}/family-assistant:"):
        return fa_tag_digest(ref.rsplit(":", 1)[1])
    return digest("image", ref)


def repo_digest_ref(ref: str) -> str:
    """``quay.io/x/y:tag`` → ``quay.io/x/y@sha256:...`` (the imageID kubelet reports)."""
    name = ref.rsplit(":", 1)[0]
    return f"{name}@{image_digest(ref)}"


def normalized(ref: str) -> str:
    """containerd's normalized name: ``family-assistant:x`` → ``docker.io/library/family-assistant:x``."""
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return ref
    if "/" not in ref:
        return f"docker.io/library/{ref}"
    return f"docker.io/{ref}"


def container_id(*parts: object) -> str:
    return "containerd://" + sha("container", *parts)


# ---------------------------------------------------------------------------------------------------------
# Registry snapshot
# ---------------------------------------------------------------------------------------------------------


def _deps_generation(index: int) -> tuple[str, int]:
    names = [t for t, _ in FAMILY_ASSISTANT_TAGS]
    chosen = DEPS_GENERATIONS[0]
    for gen in DEPS_GENERATIONS:
        if names.index(gen[0]) <= index:
            chosen = gen
    return chosen


def fa_tag_layers(tag: str) -> list[dict[str, Any]]:
    tag = SAME_DIGEST.get(tag, tag)
    index = [t for t, _ in FAMILY_ASSISTANT_TAGS].index(tag)
    rng = random.Random(f"{SEED}:{tag}")
    gen_name, gen_size = _deps_generation(index)
    layers = [{"digest": digest("layer", name), "size": size} for name, size in BASE_LAYERS]
    layers.append({"digest": digest("layer", "requirements", gen_name), "size": 2_114})
    layers.append({"digest": digest("layer", "pip-deps", gen_name), "size": gen_size})
    layers.append({"digest": digest("layer", "app", tag), "size": rng.randint(18_000_000, 61_000_000)})
    layers.append({"digest": digest("layer", "entrypoint", tag), "size": rng.randint(380, 1_900)})
    return layers


def fa_tag_digest(tag: str) -> str:
    return digest("manifest", "family-assistant", SAME_DIGEST.get(tag, tag))


def fa_tag_size(tag: str) -> int:
    return sum(layer["size"] for layer in fa_tag_layers(tag))


def registry_json() -> dict[str, Any]:
    fa_tags = []
    pushed = dict(FAMILY_ASSISTANT_TAGS)
    for tag in sorted(pushed):  # the registry lists tags lexically
        canonical = SAME_DIGEST.get(tag, tag)  # one manifest, one image config, one created time
        jitter = random.Random(f"{SEED}:{canonical}").randint(0, 3_000)
        created = ago(days=pushed[canonical]) - timedelta(seconds=jitter)
        fa_tags.append({"tag": tag, "digest": fa_tag_digest(tag), "size": fa_tag_size(tag),
                        "created": ts(created), "revision": None, "layers": fa_tag_layers(tag)})
    whisper_tags = []
    for tag, days, size in sorted(WHISPER_TAGS):
        base = "large-v3" if tag == "latest" else tag
        layers = [{"digest": digest("layer", "cuda-runtime"), "size": 2_204_117_832},
                  {"digest": digest("layer", "whisper", base), "size": size - 2_204_117_832}]
        whisper_tags.append({"tag": tag, "digest": digest("manifest", "whisper", base), "size": size,
                             "created": ts(ago(days=days)), "revision": None, "layers": layers})
    return {
        "collectedAt": ts(COLLECTED_AT),
        "registries": [{
            "host": REGISTRY,
            "repositories": [
                {"name": "family-assistant", "tags": fa_tags},
                {"name": "whisper", "tags": whisper_tags},
            ],
        }],
    }


# ---------------------------------------------------------------------------------------------------------
# Pod templates and containers
# ---------------------------------------------------------------------------------------------------------


def http_probe(path: str, port: int, *, delay: int = 0, period: int = 10, timeout: int = 1,
               failures: int = 3) -> dict[str, Any]:
    probe: dict[str, Any] = {"httpGet": {"path": path, "port": port, "scheme": "HTTP"}}
    if delay:
        probe["initialDelaySeconds"] = delay
    probe.update({"timeoutSeconds": timeout, "periodSeconds": period, "successThreshold": 1,
                  "failureThreshold": failures})
    return probe


def container(name: str, image: str, *, pull: str = "IfNotPresent", ports: Iterable[tuple[str, int]] = (),
              args: list[str] | None = None, env: list[dict[str, Any]] | None = None,
              env_from: list[dict[str, Any]] | None = None, resources: dict[str, Any] | None = None,
              mounts: list[dict[str, Any]] | None = None, liveness: dict[str, Any] | None = None,
              readiness: dict[str, Any] | None = None) -> dict[str, Any]:
    """A container spec with the defaults the API server fills in."""
    c: dict[str, Any] = {"name": name, "image": image}
    if args:
        c["args"] = args
    if ports:
        c["ports"] = [{"name": pname, "containerPort": port, "protocol": "TCP"} for pname, port in ports]
    if env_from:
        c["envFrom"] = env_from
    if env:
        c["env"] = env
    c["resources"] = resources or {}
    if mounts:
        c["volumeMounts"] = mounts
    if liveness:
        c["livenessProbe"] = liveness
    if readiness:
        c["readinessProbe"] = readiness
    c["terminationMessagePath"] = "/dev/termination-log"
    c["terminationMessagePolicy"] = "File"
    c["imagePullPolicy"] = pull
    return c


def template_spec(containers: list[dict[str, Any]], *, volumes: list[dict[str, Any]] | None = None,
                  service_account: str | None = None, host_network: bool = False,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if volumes:
        spec["volumes"] = volumes
    spec["containers"] = containers
    spec["restartPolicy"] = "Always"
    spec["terminationGracePeriodSeconds"] = 30
    spec["dnsPolicy"] = "ClusterFirstWithHostNet" if host_network else "ClusterFirst"
    if service_account:
        spec["serviceAccountName"] = service_account
        spec["serviceAccount"] = service_account
    if host_network:
        spec["hostNetwork"] = True
    spec["securityContext"] = {}
    spec["schedulerName"] = "default-scheduler"
    if extra:
        spec.update(extra)
    return spec


def pod_template(labels: dict[str, str], spec: dict[str, Any],
                 annotations: dict[str, str] | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"creationTimestamp": None, "labels": dict(labels)}
    if annotations:
        md["annotations"] = annotations
    return {"metadata": md, "spec": spec}


def fa_env() -> list[dict[str, Any]]:
    return [
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": f"http://{OTEL_ENDPOINT}"},
        {"name": "OTEL_SERVICE_NAME", "value": "family-assistant-backend"},
        {"name": "OTEL_TRACES_EXPORTER", "value": "otlp"},
        {"name": "DATABASE_HOST", "value": "100.81.76.55"},
        {"name": "DATABASE_PORT", "value": "5432"},
        {"name": "DATABASE_USER", "value": "family"},
        {"name": "DATABASE_PASSWORD",
         "valueFrom": {"secretKeyRef": {"name": "family-assistant-secrets", "key": "DATABASE_PASSWORD"}}},
        {"name": "TELEGRAM_BOT_TOKEN",
         "valueFrom": {"secretKeyRef": {"name": "family-assistant-secrets", "key": "TELEGRAM_BOT_TOKEN"}}},
    ]


def fa_template(image: str) -> dict[str, Any]:
    c = container(
        "family-assistant", image, pull="IfNotPresent", ports=[("http", 8001)],
        env_from=[{"configMapRef": {"name": "family-assistant-config"}}], env=fa_env(),
        resources={"limits": {"memory": "2Gi"}, "requests": {"cpu": "250m", "memory": "1Gi"}},
        readiness=http_probe("/health", 8001, delay=15, period=10, timeout=3),
    )
    return pod_template({"app": "family-assistant-backend"}, template_spec([c]))


# Healthy / other workloads: name → description used to build Deployment, ReplicaSets and Pods.
WORKLOADS: list[dict[str, Any]] = [
    {
        "name": "homelab-dashboard", "namespace": "homelab", "created": timedelta(days=41, hours=2),
        "revision": 7, "generation": 7, "hash": "5946d57cdf", "old_hashes": ["6b8d7f5c9d", "84c9f6b7d5"],
        "rs_age": timedelta(days=5, minutes=3), "replicas": 1, "labels": {"app": "homelab-dashboard"},
        "restarted_at": ago(days=5, minutes=3),
        "containers": [container(
            "homelab-dashboard", "ghcr.io/pesuga/homelab/homelab-dashboard:latest", pull="Always",
            ports=[("http", 8080)],
            env_from=[{"configMapRef": {"name": "homelab-dashboard-config"}}],
            resources={"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "50m", "memory": "128Mi"}},
            liveness=http_probe("/api/status", 8080, delay=30, period=10, timeout=5),
            readiness=http_probe("/api/status", 8080, delay=10, period=5, timeout=3),
        )],
        "pods": [("b7kwx", "asuna", "10.42.1.18")],
    },
    {
        "name": "prometheus", "namespace": "homelab", "created": timedelta(days=88, hours=5), "revision": 3,
        "generation": 3, "hash": "6c9d8b7f64", "old_hashes": ["5f7c6d8b49", "7d4b9c6f58"],
        "rs_age": timedelta(days=23, hours=1), "replicas": 1, "labels": {"app": "prometheus"},
        "service_account": "prometheus",
        "containers": [container(
            "prometheus", "docker.io/prom/prometheus:v2.55.1", ports=[("web", 9090)],
            args=["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus",
                  "--storage.tsdb.retention.time=15d", "--web.enable-lifecycle"],
            resources={"limits": {"memory": "2Gi"}, "requests": {"cpu": "200m", "memory": "512Mi"}},
            mounts=[{"name": "config", "mountPath": "/etc/prometheus"}, {"name": "data", "mountPath": "/prometheus"}],
            liveness=http_probe("/-/healthy", 9090, delay=30, period=15),
            readiness=http_probe("/-/ready", 9090, delay=5, period=10),
        )],
        "volumes": [{"name": "config", "configMap": {"name": "prometheus-config", "defaultMode": 420}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "prometheus-data"}}],
        "pods": [("x8q2m", "pesubuntu", "10.42.0.31")],
    },
    {
        "name": "docker-registry", "namespace": "homelab", "created": timedelta(days=90, hours=1), "revision": 1,
        "generation": 1, "hash": "6f8c9d7b5c", "old_hashes": [], "rs_age": timedelta(days=90, hours=1),
        "replicas": 1, "labels": {"app": "docker-registry"},
        "containers": [container(
            "registry", "docker.io/library/registry:2.8.3", ports=[("http", 5000)],
            mounts=[{"name": "data", "mountPath": "/var/lib/registry"}],
            resources={"limits": {"memory": "512Mi"}, "requests": {"cpu": "50m", "memory": "128Mi"}},
            liveness=http_probe("/", 5000, delay=10), readiness=http_probe("/", 5000),
        )],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "registry-data"}}],
        "node_selector": {"kubernetes.io/hostname": "pesubuntu"},
        "pods": [("kq7zt", "pesubuntu", "10.42.0.12")],
    },
    {
        "name": "coredns", "namespace": "kube-system", "created": timedelta(days=97, hours=4), "revision": 1,
        "generation": 2, "hash": "ccb96694c", "old_hashes": [], "rs_age": timedelta(days=97, hours=4),
        "replicas": 1, "labels": {"k8s-app": "kube-dns"}, "service_account": "coredns",
        "containers": [container(
            "coredns", "rancher/mirrored-coredns-coredns:1.12.0", args=["-conf", "/etc/coredns/Corefile"],
            ports=[("dns", 53), ("metrics", 9153)],
            resources={"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}},
            mounts=[{"name": "config-volume", "readOnly": True, "mountPath": "/etc/coredns"},
                    {"name": "custom-config-volume", "readOnly": True, "mountPath": "/etc/coredns/custom"}],
            liveness=http_probe("/health", 8080, delay=60, period=10, timeout=1),
            readiness=http_probe("/ready", 8181, period=2, timeout=1),
        )],
        "volumes": [
            {"name": "config-volume", "configMap": {"name": "coredns", "items": [
                {"key": "Corefile", "path": "Corefile"}, {"key": "NodeHosts", "path": "NodeHosts"}],
                "defaultMode": 420}},
            {"name": "custom-config-volume", "configMap": {"name": "coredns-custom", "defaultMode": 420,
                                                           "optional": True}},
        ],
        "priority_class": "system-cluster-critical",
        "pods": [("6f2xw", "pesubuntu", "10.42.0.2")],
    },
    {
        "name": "metrics-server", "namespace": "kube-system", "created": timedelta(days=97, hours=4),
        "revision": 1, "generation": 1, "hash": "5985cbc9d7", "old_hashes": [],
        "rs_age": timedelta(days=97, hours=4), "replicas": 1, "labels": {"k8s-app": "metrics-server"},
        "service_account": "metrics-server",
        "containers": [container(
            "metrics-server", "rancher/mirrored-metrics-server:v0.7.2", ports=[("https", 10250)],
            args=["--cert-dir=/tmp", "--secure-port=10250", "--kubelet-preferred-address-types=InternalIP",
                  "--kubelet-use-node-status-port", "--metric-resolution=15s",
                  "--tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
            resources={"requests": {"cpu": "100m", "memory": "70Mi"}},
            mounts=[{"name": "tmp-dir", "mountPath": "/tmp"}],
        )],
        "volumes": [{"name": "tmp-dir", "emptyDir": {}}],
        "priority_class": "system-node-critical",
        "pods": [("w2cgk", "pesubuntu", "10.42.0.4")],
    },
    {
        "name": "local-path-provisioner", "namespace": "kube-system", "created": timedelta(days=97, hours=4),
        "revision": 1, "generation": 1, "hash": "5cf85fd84d", "old_hashes": [],
        "rs_age": timedelta(days=97, hours=4), "replicas": 1, "labels": {"app": "local-path-provisioner"},
        "service_account": "local-path-provisioner-service-account",
        "containers": [container(
            "local-path-provisioner", "rancher/local-path-provisioner:v0.0.30",
            args=["local-path-provisioner", "start", "--config", "/etc/config/config.json"],
            env=[{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                                     "fieldPath": "metadata.namespace"}}}],
            mounts=[{"name": "config-volume", "mountPath": "/etc/config/"}],
        )],
        "volumes": [{"name": "config-volume", "configMap": {"name": "local-path-config", "defaultMode": 420}}],
        "priority_class": "system-node-critical",
        "pods": [("9lzpn", "pesubuntu", "10.42.0.3")],
    },
]

SERVICES: list[dict[str, Any]] = [
    {"name": "family-assistant-backend", "namespace": "homelab", "selector": {"app": "family-assistant-backend"},
     "ports": [("http", 8001, 8001)], "ip": "10.43.118.41", "age": timedelta(days=52)},
    {"name": "homelab-dashboard", "namespace": "homelab", "selector": {"app": "homelab-dashboard"},
     "ports": [("http", 80, 8080)], "ip": "10.43.27.196", "age": timedelta(days=41, hours=2)},
    {"name": "prometheus", "namespace": "homelab", "selector": {"app": "prometheus"},
     "ports": [("web", 9090, 9090)], "ip": "10.43.201.7", "age": timedelta(days=88, hours=5)},
    {"name": "loki", "namespace": "homelab", "selector": {"app": "loki"},
     "ports": [("http-metrics", 3100, 3100)], "ip": "10.43.96.152", "age": timedelta(days=86, hours=7)},
    {"name": "loki-headless", "namespace": "homelab", "selector": {"app": "loki"},
     "ports": [("http-metrics", 3100, 3100)], "ip": "None", "age": timedelta(days=86, hours=7)},
    {"name": "node-exporter", "namespace": "homelab", "selector": {"app": "node-exporter"},
     "ports": [("metrics", 9100, 9100)], "ip": "10.43.64.220", "age": timedelta(days=88, hours=5)},
    {"name": "docker-registry", "namespace": "homelab", "selector": {"app": "docker-registry"},
     "ports": [("http", 5000, 5000)], "ip": "10.43.150.88", "age": timedelta(days=90, hours=1),
     "node_port": 30500},
    {"name": "kube-dns", "namespace": "kube-system", "selector": {"k8s-app": "kube-dns"},
     "ports": [("dns", 53, 53), ("dns-tcp", 53, 53), ("metrics", 9153, 9153)], "ip": "10.43.0.10",
     "age": timedelta(days=97, hours=4), "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                                                  "kubernetes.io/name": "CoreDNS"}},
    {"name": "metrics-server", "namespace": "kube-system", "selector": {"k8s-app": "metrics-server"},
     "ports": [("https", 443, 10250)], "ip": "10.43.55.181", "age": timedelta(days=97, hours=4),
     "labels": {"kubernetes.io/cluster-service": "true", "kubernetes.io/name": "Metrics-server"}},
]


# ---------------------------------------------------------------------------------------------------------
# Object builders
# ---------------------------------------------------------------------------------------------------------


def namespace_obj(name: str, created: datetime) -> dict[str, Any]:
    return {"metadata": meta("Namespace", name, None, created, labels={"kubernetes.io/metadata.name": name}),
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def node_images(node: str) -> list[dict[str, Any]]:
    """status.images as kubelet reports them: repo digests then tags, largest first, at most 50."""
    images: list[dict[str, Any]] = []

    def pulled(ref: str, size: int, extra_tags: Iterable[str] = ()) -> None:
        names = [repo_digest_ref(normalized(ref)), normalized(ref), *extra_tags]
        images.append({"names": names, "sizeBytes": size})

    system = ["docker.io/rancher/mirrored-pause:3.6", "docker.io/prom/node-exporter:v1.8.2"]
    if node == "pesubuntu":
        system += ["docker.io/prom/prometheus:v2.55.1", "docker.io/library/registry:2.8.3",
                   "docker.io/rancher/mirrored-coredns-coredns:1.12.0",
                   "docker.io/rancher/mirrored-metrics-server:v0.7.2",
                   "docker.io/rancher/local-path-provisioner:v0.0.30",
                   "docker.io/rancher/mirrored-library-busybox:1.36.1"]
        for tag in ("me-fixed", "fixed-final", "import-fixed", "permission-fixed"):
            pulled(f"{REGISTRY}/family-assistant:{tag}", fa_tag_size(tag))
        for tag in FA_LOCAL_TAGS:
            names = [f"docker.io/library/family-assistant:{tag}"]
            if tag in ("phase2-mcp-logging", "pythonpath-fixed"):  # also pushed and pulled back by digest
                names = [f"{REGISTRY}/family-assistant@{fa_tag_digest(tag)}", f"{REGISTRY}/family-assistant:{tag}",
                         *names]
            size = fa_tag_size(tag) if tag in dict(FAMILY_ASSISTANT_TAGS) else 1_517_336_802
            images.append({"names": names, "sizeBytes": size})
    else:
        system += ["docker.io/grafana/loki:3.3.2", "ghcr.io/pesuga/homelab/homelab-dashboard:latest",
                   "docker.io/onerahmet/openai-whisper-asr-webservice:v1.6.0-gpu",
                   "docker.io/rancher/mirrored-library-busybox:1.36.1"]
    for ref in system:
        pulled(ref, IMAGE_SIZES[ref])
    images.sort(key=lambda i: (-i["sizeBytes"], i["names"][0]))
    return images[:50]


def node_obj(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    created = COLLECTED_AT - spec["created"]
    labels = {
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/instance-type": "k3s", "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "k3s",
    }
    if spec["control_plane"]:
        labels.update({"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": "true"})
    else:
        labels["nvidia.com/gpu.present"] = "true"
    annotations = {
        "alpha.kubernetes.io/provided-node-ip": spec["ip"],
        "flannel.alpha.coreos.com/backend-data": json.dumps({"VNI": 1, "VtepMAC": "de:ad:" + sha(name)[:8]}),
        "flannel.alpha.coreos.com/backend-type": "vxlan",
        "flannel.alpha.coreos.com/kube-subnet-manager": "true",
        "flannel.alpha.coreos.com/public-ip": spec["ip"],
        "k3s.io/hostname": name,
        "k3s.io/internal-ip": spec["ip"],
        "k3s.io/node-args": json.dumps(["server" if spec["control_plane"] else "agent", "--node-ip", spec["ip"],
                                        "--flannel-iface", "tailscale0"]),
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    }
    capacity = {"cpu": spec["cpu"], "ephemeral-storage": f"{spec['disk_ki']}Ki", "hugepages-1Gi": "0",
                "hugepages-2Mi": "0", "memory": f"{spec['memory_ki']}Ki", "pods": "110"}
    allocatable = dict(capacity, **{"ephemeral-storage": str(int(spec["disk_ki"] * 1024 * 0.97)),
                                    "memory": f"{spec['memory_ki']}Ki"})
    heartbeat = ago(minutes=1, seconds=14 if spec["control_plane"] else 41)
    boot = ago(days=12, hours=spec["boot"])
    conds = []
    for ctype, reason, message in [
        ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "KubeletReady", "kubelet is posting ready status"),
    ]:
        c = {"type": ctype, "status": "True" if ctype == "Ready" else "False", "lastHeartbeatTime": ts(heartbeat),
             "lastTransitionTime": ts(boot), "reason": reason, "message": message}
        conds.append(c)
    return {
        "metadata": meta("Node", name, None, created, labels=labels, annotations=annotations),
        "spec": {"podCIDR": spec["pod_cidr"], "podCIDRs": [spec["pod_cidr"]], "providerID": f"k3s://{name}"},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": conds,
            "addresses": [{"type": "InternalIP", "address": spec["ip"]}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": sha("machine", spec["machine"])[:32], "systemUUID": str(uuid.uuid5(UID_NAMESPACE, name)),
                "bootID": str(uuid.uuid5(UID_NAMESPACE, f"boot-{spec['boot']}")), "kernelVersion": spec["kernel"],
                "osImage": "Ubuntu 24.04.1 LTS", "containerRuntimeVersion": "containerd://1.7.23-k3s2",
                "kubeletVersion": SERVER_VERSION, "kubeProxyVersion": SERVER_VERSION,
                "operatingSystem": "linux", "architecture": "amd64",
            },
            "images": node_images(name),
            "runtimeHandlers": [
                {"name": "runc", "features": {"recursiveReadOnlyMounts": True, "userNamespaces": True}},
                {"name": "", "features": {"recursiveReadOnlyMounts": True, "userNamespaces": True}},
            ],
        },
    }


def deployment_obj(name: str, ns: str, created: datetime, *, generation: int, revision: int, replicas: int,
                   template: dict[str, Any], labels: dict[str, str], status: dict[str, Any],
                   strategy: dict[str, Any] | None = None, annotations: dict[str, str] | None = None,
                   managed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    ann = {"deployment.kubernetes.io/revision": str(revision), **(annotations or {})}
    return {
        "metadata": meta("Deployment", name, ns, created, labels=labels, annotations=ann, generation=generation,
                         managed=managed),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(template["metadata"]["labels"])},
            "template": template,
            "strategy": strategy or {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": status,
    }


def healthy_deployment_status(name: str, generation: int, replicas: int, rs_hash: str, created: datetime,
                              progressed: datetime, *, ready: int | None = None) -> dict[str, Any]:
    ready = replicas if ready is None else ready
    st: dict[str, Any] = {"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas}
    if ready:
        st["readyReplicas"] = ready
        st["availableReplicas"] = ready
    if replicas - ready:
        st["unavailableReplicas"] = replicas - ready
    available = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.") if ready else \
        ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
    avail_since = progressed if ready else ago(minutes=9, seconds=10)
    st["conditions"] = [
        condition("Available", available[0], avail_since, available[1], available[2], update=avail_since),
        condition("Progressing", "True", created, "NewReplicaSetAvailable",
                  f'ReplicaSet "{name}-{rs_hash}" has successfully progressed.', update=progressed),
    ]
    return st


def replicaset_obj(deploy: dict[str, Any], rs_hash: str, revision: int, created: datetime, replicas: int,
                   template: dict[str, Any], *, ready: int | None = None, max_surge: int = 1,
                   generation: int = 1) -> dict[str, Any]:
    """A ReplicaSet owned by ``deploy``; every scale change bumps its generation."""
    dmeta = deploy["metadata"]
    ns, dname = dmeta["namespace"], dmeta["name"]
    name = f"{dname}-{rs_hash}"
    labels = {**template["metadata"]["labels"], "pod-template-hash": rs_hash}
    tmpl = json.loads(json.dumps(template))
    tmpl["metadata"]["labels"] = dict(labels)
    desired = deploy["spec"]["replicas"]
    ann = {"deployment.kubernetes.io/desired-replicas": str(desired),
           "deployment.kubernetes.io/max-replicas": str(desired + max_surge),
           "deployment.kubernetes.io/revision": str(revision)}
    ready = replicas if ready is None else ready
    status: dict[str, Any] = {"replicas": replicas}
    if replicas:
        status["fullyLabeledReplicas"] = replicas
    if ready:
        status["readyReplicas"] = ready
        status["availableReplicas"] = ready
    status["observedGeneration"] = generation
    return {
        "metadata": meta("ReplicaSet", name, ns, created, labels=labels, annotations=ann,
                         generation=generation, owner=owner_ref("Deployment", dname, ns)),
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": tmpl},
        "status": status,
    }


def kube_api_access(pod: str) -> tuple[dict[str, Any], dict[str, Any]]:
    name = "kube-api-access-" + safe_string(pod, 5)
    volume = {"name": name, "projected": {"sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                      "fieldPath": "metadata.namespace"}}]}},
    ], "defaultMode": 420}}
    mount = {"name": name, "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    return volume, mount


DEFAULT_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
]


def running_state(started: datetime) -> dict[str, Any]:
    return {"running": {"startedAt": ts(started)}}


def pod_obj(name: str, ns: str, created: datetime, *, owner: dict[str, Any], labels: dict[str, str],
            template_spec_: dict[str, Any], node: str, ip: str, statuses: list[dict[str, Any]],
            phase: str, ready_since: datetime | None, not_ready_reason: str | None = None,
            generate_name: str | None = None, host_network: bool = False, not_ready_since: datetime | None = None,
            annotations: dict[str, str] | None = None, extra_spec: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = json.loads(json.dumps(template_spec_))
    volume, mount = kube_api_access(name)
    spec["volumes"] = [*spec.get("volumes", []), volume]
    for c in spec["containers"]:
        c["volumeMounts"] = [*c.get("volumeMounts", []), mount]
    sa = spec.get("serviceAccountName", "default")
    ordered: dict[str, Any] = {"volumes": spec.pop("volumes"), "containers": spec.pop("containers")}
    for key in ("restartPolicy", "terminationGracePeriodSeconds", "dnsPolicy", "nodeSelector"):
        if key in spec:
            ordered[key] = spec.pop(key)
    ordered["serviceAccountName"] = sa
    ordered["serviceAccount"] = sa
    spec.pop("serviceAccountName", None)
    spec.pop("serviceAccount", None)
    ordered["nodeName"] = node
    ordered.update(spec)
    tolerations = list(ordered.get("tolerations", []))
    ordered["tolerations"] = tolerations + [t for t in DEFAULT_TOLERATIONS
                                            if t["key"] not in {x.get("key") for x in tolerations}]
    priority_class = ordered.get("priorityClassName")
    ordered["priority"] = {"system-cluster-critical": 2000000000, "system-node-critical": 2000001000}.get(
        str(priority_class), 0)
    ordered["enableServiceLinks"] = True
    ordered["preemptionPolicy"] = "PreemptLowerPriority"
    for st, c in zip(statuses, ordered["containers"], strict=True):
        st.setdefault("volumeMounts", [
            {"name": m["name"], "mountPath": m["mountPath"], **({"readOnly": True, "recursiveReadOnly": "Disabled"}
                                                               if m.get("readOnly") else {})}
            for m in c.get("volumeMounts", [])])
    ready = ready_since is not None
    scheduled = created + timedelta(seconds=1)
    msg = None
    if not ready:
        names = ",".join(c["name"] for c in ordered["containers"])
        msg = f"containers with unready status: [{names}]"
    transition = ready_since or not_ready_since or (created + timedelta(seconds=3))
    conditions = [
        condition("PodReadyToStartContainers", "True", created + timedelta(seconds=3), probe=True),
        condition("Initialized", "True", scheduled, probe=True),
        condition("Ready", "True" if ready else "False", transition, None if ready else not_ready_reason, msg,
                  probe=True),
        condition("ContainersReady", "True" if ready else "False", transition,
                  None if ready else not_ready_reason, msg, probe=True),
        condition("PodScheduled", "True", scheduled, probe=True),
    ]
    requests = any(c.get("resources", {}).get("requests") for c in ordered["containers"])
    guaranteed = all(c.get("resources", {}).get("limits", {}).keys() >= {"cpu", "memory"} and
                     c["resources"].get("requests") == c["resources"].get("limits") for c in ordered["containers"])
    qos = "Guaranteed" if guaranteed else "Burstable" if requests else "BestEffort"
    host_ip = NODES[node]["ip"]
    return {
        "metadata": meta("Pod", name, ns, created, labels=labels, owner=owner, generate_name=generate_name,
                         annotations=annotations),
        "spec": ordered,
        "status": {
            "phase": phase,
            "conditions": conditions,
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
            "podIP": host_ip if host_network else ip, "podIPs": [{"ip": host_ip if host_network else ip}],
            "startTime": ts(created + timedelta(seconds=1)),
            "containerStatuses": statuses,
            "qosClass": qos,
        },
    }


def container_status(name: str, image_ref: str, *, state: dict[str, Any], ready: bool, restarts: int = 0,
                     last_state: dict[str, Any] | None = None, started: bool = True,
                     image_id: str | None = None, cid_seed: object = 0) -> dict[str, Any]:
    # kubelet reports containerd's normalized name once an image is present, the spec's spelling before.
    shown = image_ref if "waiting" in state and image_id == "" else normalized(image_ref)
    st: dict[str, Any] = {"name": name, "state": state, "lastState": last_state or {}, "ready": ready,
                          "restartCount": restarts, "image": shown,
                          "imageID": image_id if image_id is not None else repo_digest_ref(normalized(image_ref))}
    if "waiting" not in state:
        st["containerID"] = container_id(name, cid_seed)
    st["started"] = started
    return st


# ---------------------------------------------------------------------------------------------------------
# Family-assistant-backend: the Deployment at revision 62, its 10 ReplicaSets and 2 pods
# ---------------------------------------------------------------------------------------------------------


def fa_last_applied() -> str:
    """What the last ``kubectl apply -f family-assistant-backend.yaml`` (the repo-root copy) recorded."""
    applied = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"annotations": {}, "labels": {"app": "family-assistant-backend"},
                     "name": "family-assistant-backend", "namespace": "homelab"},
        "spec": {
            "replicas": 2, "selector": {"matchLabels": {"app": "family-assistant-backend"}},
            "strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}, "type": "RollingUpdate"},
            "template": {"metadata": {"labels": {"app": "family-assistant-backend"}}, "spec": {"containers": [{
                "envFrom": [{"configMapRef": {"name": "family-assistant-config"}}],
                "env": [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": f"http://{OTEL_ENDPOINT}"},
                        {"name": "OTEL_SERVICE_NAME", "value": "family-assistant-backend"},
                        {"name": "DATABASE_PASSWORD", "valueFrom": {"secretKeyRef": {
                            "key": "DATABASE_PASSWORD", "name": "family-assistant-secrets"}}}],
                "image": f"{REGISTRY}/family-assistant:fixed-final", "imagePullPolicy": "Always",
                "name": "family-assistant", "ports": [{"containerPort": 8001, "name": "http"}],
            }]}},
        },
    }
    return json.dumps(applied, separators=(",", ":"), sort_keys=True) + "\n"


def family_assistant() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    ns, name = "homelab", "family-assistant-backend"
    created = ago(days=52, hours=3)
    current_image = FA_REVISIONS[-1][1]
    template = fa_template(current_image)
    rollout = ago(minutes=106, seconds=12)
    deadline = rollout + timedelta(seconds=600)
    generation = 74
    managed = [
        managed_field("kubectl-client-side-apply", "Update", ago(days=6, hours=4), {
            "f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}},
                           "f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:selector": {}, "f:strategy": {"f:rollingUpdate": {
                ".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}, "f:type": {}}}}),
        managed_field("kubectl-patch", "Update", ago(days=6, hours=3, minutes=40), {
            "f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"family-assistant"}': {
                "f:imagePullPolicy": {}}}}}}}),
        managed_field("kubectl-set", "Update", rollout, {
            "f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"family-assistant"}': {
                "f:image": {}}}}}}}),
        managed_field("k3s", "Update", deadline, {
            "f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}},
            "f:status": {"f:availableReplicas": {}, "f:conditions": {}, "f:observedGeneration": {},
                         "f:readyReplicas": {}, "f:replicas": {}, "f:unavailableReplicas": {},
                         "f:updatedReplicas": {}}}, subresource="status"),
    ]
    status = {
        "observedGeneration": generation, "replicas": 2, "updatedReplicas": 1, "readyReplicas": 1,
        "availableReplicas": 1, "unavailableReplicas": 1,
        "conditions": [
            condition("Available", "True", ago(days=6, hours=2), "MinimumReplicasAvailable",
                      "Deployment has minimum availability.", update=ago(days=6, hours=2)),
            condition("Progressing", "False", deadline, "ProgressDeadlineExceeded",
                      f'ReplicaSet "{name}-7fccb9956b" has timed out progressing.', update=deadline),
        ],
    }
    deploy = deployment_obj(
        name, ns, created, generation=generation, revision=62, replicas=2, template=template,
        labels={"app": name}, status=status,
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
        annotations={"kubectl.kubernetes.io/last-applied-configuration": fa_last_applied()}, managed=managed,
    )
    replicasets, pods = [], []
    for revision, image, age, fixed_hash in FA_REVISIONS:
        rs_hash = fixed_hash or safe_string(f"{name}-{revision}", 10)
        live = {61: 1, 62: 1}.get(revision, 0)
        ready = 1 if revision == 61 else 0
        generation = {61: 2, 62: 1}.get(revision, 3)  # created at 2, scaled 2→1, then 1→0
        rs = replicaset_obj(deploy, rs_hash, revision, COLLECTED_AT - age, live, fa_template(image),
                            ready=ready, max_surge=0, generation=generation)
        replicasets.append(rs)
    rs61, rs62 = replicasets[-2], replicasets[-1]

    # The working pod: revision 61 on pesubuntu, image from the private registry.
    started61 = ago(days=1, hours=20, minutes=58)
    me_fixed = f"{REGISTRY}/family-assistant:me-fixed"
    pods.append(pod_obj(
        f"{name}-7748c945ff-n2kb7", ns, ago(days=1, hours=21), generate_name=f"{name}-7748c945ff-",
        owner=owner_ref("ReplicaSet", rs61["metadata"]["name"], ns),
        labels=rs61["metadata"]["labels"], template_spec_=rs61["spec"]["template"]["spec"],
        node="pesubuntu", ip="10.42.0.57", phase="Running", ready_since=ago(days=1, hours=20, minutes=57),
        statuses=[container_status("family-assistant", me_fixed, state=running_state(started61), ready=True,
                                   cid_seed="n2kb7")],
    ))
    # The failed pod: revision 62 on asuna, unqualified image that only exists in pesubuntu's containerd.
    pods.append(pod_obj(
        f"{name}-7fccb9956b-9g4wb", ns, rollout, generate_name=f"{name}-7fccb9956b-",
        owner=owner_ref("ReplicaSet", rs62["metadata"]["name"], ns),
        labels=rs62["metadata"]["labels"], template_spec_=rs62["spec"]["template"]["spec"],
        node="asuna", ip="10.42.1.23", phase="Pending", ready_since=None, not_ready_reason="ContainersNotReady",
        statuses=[container_status(
            "family-assistant", current_image, ready=False, started=False, image_id="",
            state={"waiting": {"reason": "ImagePullBackOff",
                               "message": f'Back-off pulling image "{current_image}"'}})],
    ))
    return [deploy], replicasets, pods


# ---------------------------------------------------------------------------------------------------------
# The other workloads
# ---------------------------------------------------------------------------------------------------------


def other_workloads() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    deployments, replicasets, pods = [], [], []
    for w in WORKLOADS:
        ns, name = w["namespace"], w["name"]
        created = COLLECTED_AT - w["created"]
        extra: dict[str, Any] = {}
        if w.get("node_selector"):
            extra["nodeSelector"] = w["node_selector"]
        if w.get("priority_class"):
            extra["priorityClassName"] = w["priority_class"]
        if ns == "kube-system":
            extra["tolerations"] = [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                                     "effect": "NoSchedule"},
                                    {"key": "node-role.kubernetes.io/master", "operator": "Exists",
                                     "effect": "NoSchedule"}]
        spec = template_spec(w["containers"], volumes=w.get("volumes"), service_account=w.get("service_account"),
                             extra=extra)
        tmpl_ann = {"kubectl.kubernetes.io/restartedAt": ts(w["restarted_at"])} if w.get("restarted_at") else None
        template = pod_template(w["labels"], spec, tmpl_ann)
        rs_created = COLLECTED_AT - w["rs_age"]
        is_dashboard = name == "homelab-dashboard"
        ready = 0 if is_dashboard else w["replicas"]
        status = healthy_deployment_status(name, w["generation"], w["replicas"], w["hash"], created,
                                           rs_created + timedelta(seconds=40), ready=ready)
        labels = dict(w["labels"]) if ns == "kube-system" else {"app": name}
        deploy = deployment_obj(name, ns, created, generation=w["generation"], revision=w["revision"],
                                replicas=w["replicas"], template=template, labels=labels, status=status)
        deployments.append(deploy)
        olds = w["old_hashes"]
        for i, old in enumerate(olds):
            rev = w["revision"] - len(olds) + i
            old_created = rs_created - timedelta(days=3 * (len(olds) - i), hours=5)
            old_tmpl = json.loads(json.dumps(template))
            if w.get("restarted_at"):
                old_tmpl["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] = ts(old_created)
            replicasets.append(replicaset_obj(deploy, old, rev, old_created, 0, old_tmpl, generation=2))
        rs = replicaset_obj(deploy, w["hash"], w["revision"], rs_created, w["replicas"], template, ready=ready)
        replicasets.append(rs)
        for suffix, node, ip in w["pods"]:
            pod_name = f"{rs['metadata']['name']}-{suffix}"
            c = w["containers"][0]
            if is_dashboard:
                statuses = [container_status(
                    c["name"], c["image"], ready=False, restarts=598, cid_seed=598,
                    state=running_state(ago(minutes=3, seconds=48)),
                    last_state={"terminated": {"exitCode": 137, "reason": "Error",
                                               "startedAt": ts(ago(minutes=16, seconds=2)),
                                               "finishedAt": ts(ago(minutes=9, seconds=10)),
                                               "containerID": container_id(c["name"], 597)}})]
                ready_since = None
                not_ready_since: datetime | None = ago(minutes=10, seconds=31)  # readiness 429s before the kill
            else:
                statuses = [container_status(c["name"], c["image"], ready=True, cid_seed=pod_name,
                                             state=running_state(rs_created + timedelta(seconds=9)))]
                ready_since = rs_created + timedelta(seconds=31)
                not_ready_since = None
            pods.append(pod_obj(
                pod_name, ns, rs_created + timedelta(seconds=1), generate_name=f"{rs['metadata']['name']}-",
                owner=owner_ref("ReplicaSet", rs["metadata"]["name"], ns), labels=rs["metadata"]["labels"],
                template_spec_=rs["spec"]["template"]["spec"], node=node, ip=ip, phase="Running",
                ready_since=ready_since, not_ready_reason="ContainersNotReady", statuses=statuses,
                not_ready_since=not_ready_since,
                annotations=tmpl_ann,
            ))
    return deployments, replicasets, pods


def loki() -> tuple[dict[str, Any], dict[str, Any]]:
    ns, name = "homelab", "loki"
    created = ago(days=86, hours=7)
    revision = "loki-6d8f5b9c7d"
    c = container(
        "loki", "docker.io/grafana/loki:3.3.2", args=["-config.file=/etc/loki/loki.yaml"],
        ports=[("http-metrics", 3100), ("grpc", 9095)],
        resources={"limits": {"memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "256Mi"}},
        mounts=[{"name": "config", "mountPath": "/etc/loki"}, {"name": "storage", "mountPath": "/loki"}],
        readiness=http_probe("/ready", 3100, delay=15, period=10),
    )
    spec = template_spec([c], volumes=[{"name": "config", "configMap": {"name": "loki-config", "defaultMode": 420}}],
                         extra={"securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                                                    "runAsNonRoot": True}})
    template = pod_template({"app": "loki"}, spec)
    sts = {
        "metadata": meta("StatefulSet", name, ns, created, labels={"app": "loki"}, generation=2),
        "spec": {
            "replicas": 1, "selector": {"matchLabels": {"app": "loki"}}, "template": template,
            "volumeClaimTemplates": [{
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "storage", "creationTimestamp": None},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}},
                         "volumeMode": "Filesystem"},
                "status": {"phase": "Pending"},
            }],
            "serviceName": "loki-headless", "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "revisionHistoryLimit": 10,
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
        },
        "status": {"observedGeneration": 2, "replicas": 1, "readyReplicas": 1, "currentReplicas": 1,
                   "updatedReplicas": 1, "currentRevision": revision, "updateRevision": revision,
                   "collisionCount": 0, "availableReplicas": 1},
    }
    pod_created = ago(days=12, hours=10, minutes=2)
    pod_spec = json.loads(json.dumps(spec))
    pod_spec["volumes"].append({"name": "storage", "persistentVolumeClaim": {"claimName": "storage-loki-0"}})
    pod_spec["hostname"] = "loki-0"
    pod_spec["subdomain"] = "loki-headless"
    pod = pod_obj(
        "loki-0", ns, pod_created, generate_name="loki-", owner=owner_ref("StatefulSet", name, ns),
        labels={"app": "loki", "apps.kubernetes.io/pod-index": "0", "controller-revision-hash": revision,
                "statefulset.kubernetes.io/pod-name": "loki-0"},
        template_spec_=pod_spec, node="asuna", ip="10.42.1.9", phase="Running",
        ready_since=pod_created + timedelta(seconds=44),
        statuses=[container_status("loki", c["image"], state=running_state(pod_created + timedelta(seconds=6)),
                                   ready=True, cid_seed="loki-0")],
    )
    return sts, pod


def node_exporter() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    ns, name = "homelab", "node-exporter"
    created = ago(days=88, hours=5)
    c = container(
        "node-exporter", "docker.io/prom/node-exporter:v1.8.2",
        args=["--path.procfs=/host/proc", "--path.sysfs=/host/sys", "--path.rootfs=/host/root",
              "--collector.filesystem.mount-points-exclude=^/(dev|proc|sys|var/lib/kubelet/.+)($|/)"],
        ports=[("metrics", 9100)],
        resources={"limits": {"memory": "64Mi"}, "requests": {"cpu": "20m", "memory": "32Mi"}},
        mounts=[{"name": "proc", "readOnly": True, "mountPath": "/host/proc"},
                {"name": "sys", "readOnly": True, "mountPath": "/host/sys"},
                {"name": "root", "readOnly": True, "mountPath": "/host/root", "mountPropagation": "HostToContainer"}],
    )
    c["ports"][0]["hostPort"] = 9100
    volumes = [{"name": n, "hostPath": {"path": p, "type": ""}} for n, p in (("proc", "/proc"), ("sys", "/sys"),
                                                                             ("root", "/"))]
    spec = template_spec([c], volumes=volumes, host_network=True, extra={"hostPID": True})
    template = pod_template({"app": "node-exporter"}, spec)
    ds = {
        "metadata": meta("DaemonSet", name, ns, created, labels={"app": "node-exporter"},
                         annotations={"deprecated.daemonset.template.generation": "1"}, generation=1),
        "spec": {"selector": {"matchLabels": {"app": "node-exporter"}}, "template": template,
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                 "revisionHistoryLimit": 10},
        "status": {"currentNumberScheduled": 2, "numberMisscheduled": 0, "desiredNumberScheduled": 2,
                   "numberReady": 2, "observedGeneration": 1, "updatedNumberScheduled": 2, "numberAvailable": 2},
    }
    pods = []
    for node, suffix in (("asuna", "4hvqz"), ("pesubuntu", "m9t2c")):
        started = COLLECTED_AT - NODES[node]["created"] + timedelta(minutes=3) if node == "asuna" else created
        pod_spec = json.loads(json.dumps(spec))
        pod_spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}}
        pod_spec["tolerations"] = [
            {"key": f"node.kubernetes.io/{t}", "operator": "Exists", "effect": e}
            for t, e in (("not-ready", "NoExecute"), ("unreachable", "NoExecute"), ("disk-pressure", "NoSchedule"),
                         ("memory-pressure", "NoSchedule"), ("pid-pressure", "NoSchedule"),
                         ("unschedulable", "NoSchedule"), ("network-unavailable", "NoSchedule"))]
        pods.append(pod_obj(
            f"{name}-{suffix}", ns, started, generate_name=f"{name}-", owner=owner_ref("DaemonSet", name, ns),
            labels={"app": "node-exporter", "controller-revision-hash": "7b9c6d5f48", "pod-template-generation": "1"},
            template_spec_=pod_spec, node=node, ip="", host_network=True, phase="Running",
            ready_since=started + timedelta(seconds=5),
            statuses=[container_status("node-exporter", c["image"], ready=True, cid_seed=suffix,
                                       state=running_state(started + timedelta(seconds=4)))],
        ))
    return ds, pods


def service_obj(s: dict[str, Any]) -> dict[str, Any]:
    ns, name = s["namespace"], s["name"]
    protocol = {"dns": "UDP"}
    ports = []
    for pname, port, target in s["ports"]:
        p: dict[str, Any] = {"name": pname, "protocol": protocol.get(pname, "TCP"), "port": port, "targetPort": target}
        if s.get("node_port"):
            p["nodePort"] = s["node_port"]
        ports.append(p)
    spec: dict[str, Any] = {"ports": ports, "selector": s["selector"], "clusterIP": s["ip"], "clusterIPs": [s["ip"]],
                            "type": "NodePort" if s.get("node_port") else "ClusterIP", "sessionAffinity": "None"}
    if s.get("node_port"):
        spec["externalTrafficPolicy"] = "Cluster"
    spec.update({"ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster"})
    if s["ip"] == "None":
        spec["publishNotReadyAddresses"] = False
    return {"metadata": meta("Service", name, ns, COLLECTED_AT - s["age"], labels=s.get("labels") or {"app": name}),
            "spec": spec, "status": {"loadBalancer": {}}}


def endpoints_obj(s: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
    ns, name = s["namespace"], s["name"]
    ready, not_ready = [], []
    for p in pods:
        pm = p["metadata"]
        if pm["namespace"] != ns or not all(pm["labels"].get(k) == v for k, v in s["selector"].items()):
            continue
        if p["status"]["phase"] != "Running":
            continue
        addr = {"ip": p["status"]["podIP"], "nodeName": p["spec"]["nodeName"],
                "targetRef": {"kind": "Pod", "namespace": ns, "name": pm["name"], "uid": pm["uid"]}}
        if name == "loki-headless":
            addr = {"ip": addr["ip"], "hostname": pm["name"], **{k: addr[k] for k in ("nodeName", "targetRef")}}
        ok = any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])
        (ready if ok else not_ready).append(addr)
    subset: dict[str, Any] = {}
    if ready:
        subset["addresses"] = ready
    if not_ready:
        subset["notReadyAddresses"] = not_ready
    subset["ports"] = [{"name": pname, "port": target, "protocol": "UDP" if pname == "dns" else "TCP"}
                       for pname, _, target in s["ports"]]
    labels = dict(s.get("labels") or {"app": name})
    if s["ip"] == "None":
        labels["service.kubernetes.io/headless"] = ""
    changed = ago(minutes=3, seconds=40) if name == "homelab-dashboard" else COLLECTED_AT - s["age"]
    return {"metadata": meta("Endpoints", name, ns, COLLECTED_AT - s["age"], labels=labels,
                             annotations={"endpoints.kubernetes.io/last-change-trigger-time": ts(changed)}),
            "subsets": [subset] if ready or not_ready else []}


def hpa_objs() -> list[dict[str, Any]]:
    ns = "homelab"
    out = []
    enhanced_gone = ago(days=4, hours=7)
    out.append({
        "metadata": meta("HorizontalPodAutoscaler", "family-assistant-enhanced-hpa", ns, ago(days=31, hours=6),
                         labels={"app": "family-assistant-enhanced"}),
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "family-assistant-enhanced", "apiVersion": "apps/v1"},
            "minReplicas": 1, "maxReplicas": 4,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                             "averageUtilization": 70}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization",
                                                                                "averageUtilization": 80}}},
            ],
        },
        "status": {
            "currentReplicas": 1, "desiredReplicas": 1,
            "currentMetrics": None,
            "conditions": [
                condition("AbleToScale", "False", enhanced_gone, "FailedGetScale",
                          "the HPA controller was unable to get the target's current scale: deployments.apps "
                          '"family-assistant-enhanced" not found'),
                condition("ScalingActive", "False", ago(days=31, hours=6) + timedelta(seconds=30),
                          "FailedGetResourceMetric",
                          "the HPA was unable to compute the replica count: failed to get cpu utilization: "
                          "missing request for cpu in container family-assistant of Pod "
                          "family-assistant-enhanced-6d9f7c8b54-hx2lq"),
            ],
        },
    })
    whisper_gone = ago(days=9, hours=2)
    out.append({
        "metadata": meta("HorizontalPodAutoscaler", "whisper-hpa", ns, ago(days=58, hours=1),
                         labels={"app": "whisper"}),
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "whisper", "apiVersion": "apps/v1"},
            "minReplicas": 1, "maxReplicas": 2,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                                     "averageUtilization": 80}}}],
        },
        "status": {
            "lastScaleTime": ts(ago(days=11, hours=5)),
            "currentReplicas": 1, "desiredReplicas": 1,
            "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {
                "averageValue": "1m", "averageUtilization": 0}}}],
            "conditions": [
                condition("AbleToScale", "False", whisper_gone, "FailedGetScale",
                          "the HPA controller was unable to get the target's current scale: deployments.apps "
                          '"whisper" not found'),
                condition("ScalingActive", "True", ago(days=58), "ValidMetricFound",
                          "the HPA was able to successfully calculate a replica count from cpu resource "
                          "utilization (percentage of request)"),
                condition("ScalingLimited", "False", ago(days=11, hours=5), "DesiredWithinRange",
                          "the desired count is within the acceptable range"),
            ],
        },
    })
    for h in out:
        h["status"] = compact(h["status"])
    return out


def configmaps() -> list[dict[str, Any]]:
    ca = ("-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIBADAKBggqhkjOPQQDAjAjMSEwHwYDVQQDDBhrM3Mtc2VydmVy\n"
          "LWNhQDE3MjM4MDQ1MDcwHhcNMjQwODE2MTAyODI3WhcNMzQwODE0MTAyODI3WjAj\n-----END CERTIFICATE-----\n")
    prom = ("global:\n  scrape_interval: 30s\nscrape_configs:\n  - job_name: node-exporter\n"
            "    static_configs:\n      - targets: ['node-exporter.homelab.svc:9100']\n"
            "  - job_name: kubernetes-nodes\n    scheme: https\n    tls_config:\n"
            "      ca_file: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\n"
            "    bearer_token_file: /var/run/secrets/kubernetes.io/serviceaccount/token\n"
            "    kubernetes_sd_configs:\n      - role: node\n")
    loki_cfg = ("auth_enabled: false\nserver:\n  http_listen_port: 3100\ncommon:\n  path_prefix: /loki\n"
                "  replication_factor: 1\n  ring:\n    kvstore:\n      store: inmemory\n"
                "schema_config:\n  configs:\n    - from: 2024-08-01\n      store: tsdb\n"
                "      object_store: filesystem\n"
                "      schema: v13\n      index:\n        prefix: index_\n        period: 24h\n"
                "storage_config:\n  filesystem:\n    directory: /loki/chunks\n")
    corefile = (".:53 {\n    errors\n    health\n    ready\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n"
                "      pods insecure\n      fallthrough in-addr.arpa ip6.arpa\n    }\n"
                "    hosts /etc/coredns/NodeHosts {\n"
                "      ttl 60\n      reload 15s\n      fallthrough\n    }\n    prometheus :9153\n"
                "    forward . /etc/resolv.conf\n    cache 30\n    loop\n    reload\n    loadbalance\n"
                "    import /etc/coredns/custom/*.override\n}\nimport /etc/coredns/custom/*.server\n")
    local_path = json.dumps({"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES",
                                              "paths": ["/var/lib/rancher/k3s/storage"]}]}, indent=2)
    tables: list[tuple[str, str, timedelta, dict[str, str], dict[str, str] | None]] = [
        ("family-assistant-config", "homelab", timedelta(days=52, hours=3), {
            "LOG_LEVEL": "INFO", "MCP_SERVERS": "calendar,notes,weather", "OLLAMA_BASE_URL": "http://100.72.14.93:11434",
            "ENABLE_TRACING": "true", "TZ": "Europe/Madrid"}, {"app": "family-assistant-backend"}),
        ("homelab-dashboard-config", "homelab", timedelta(days=41, hours=2), {
            "REFRESH_INTERVAL_SECONDS": "5", "GITHUB_REPO": "pesuga/homelab",
            "STATUS_TARGETS": "family-assistant-backend:8001,prometheus:9090,loki:3100,docker-registry:5000"},
         {"app": "homelab-dashboard"}),
        ("kube-root-ca.crt", "homelab", timedelta(days=90, hours=2), {"ca.crt": ca}, None),
        ("loki-config", "homelab", timedelta(days=86, hours=7), {"loki.yaml": loki_cfg}, {"app": "loki"}),
        ("prometheus-config", "homelab", timedelta(days=88, hours=5), {"prometheus.yml": prom}, {"app": "prometheus"}),
        ("cluster-dns", "kube-system", timedelta(days=97, hours=4), {"clusterDNS": "10.43.0.10",
                                                                     "clusterDomain": "cluster.local"}, None),
        ("coredns", "kube-system", timedelta(days=97, hours=4), {
            "Corefile": corefile, "NodeHosts": "100.72.14.93 asuna\n100.81.76.55 pesubuntu\n"}, None),
        ("kube-root-ca.crt", "kube-system", timedelta(days=97, hours=4), {"ca.crt": ca}, None),
        ("local-path-config", "kube-system", timedelta(days=97, hours=4), {"config.json": local_path}, None),
    ]
    out = []
    for name, ns, age, data, labels in tables:
        annotations = {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the "
                       "kube-apiserver when using internal endpoints such as the internal service IP or "
                       "kubernetes.default.svc. No other usage is guaranteed across distributions of "
                       "Kubernetes clusters."} if name == "kube-root-ca.crt" else None
        out.append({"metadata": meta("ConfigMap", name, ns, COLLECTED_AT - age, labels=labels,
                                     annotations=annotations), "data": data})
    return out


def secrets() -> list[dict[str, Any]]:
    fa_data = {"DATABASE_PASSWORD": b64(CANARY), "TELEGRAM_BOT_TOKEN": b64("0000000000:demo-not-a-real-token")}
    applied = json.dumps({"apiVersion": "v1", "data": fa_data, "kind": "Secret",
                          "metadata": {"annotations": {}, "name": "family-assistant-secrets",
                                       "namespace": "homelab"}, "type": "Opaque"},
                         separators=(",", ":"), sort_keys=True) + "\n"
    created = ago(days=52, hours=3, minutes=2)
    fa = {
        "metadata": meta("Secret", "family-assistant-secrets", "homelab", created,
                         annotations={"kubectl.kubernetes.io/last-applied-configuration": applied},
                         managed=[managed_field("kubectl-client-side-apply", "Update", created, {
                             "f:data": {".": {}, "f:DATABASE_PASSWORD": {}, "f:TELEGRAM_BOT_TOKEN": {}},
                             "f:metadata": {"f:annotations": {
                                 ".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}},
                             "f:type": {}}, api_version="v1")]),
        "data": fa_data, "type": "Opaque",
    }
    serving = {
        "metadata": meta("Secret", "k3s-serving", "kube-system", ago(days=97, hours=4),
                         annotations={"listener.cattle.io/cn-100.81.76.55": "100.81.76.55",
                                      "listener.cattle.io/cn-pesubuntu": "pesubuntu",
                                      "listener.cattle.io/fingerprint": "SHA1=" + sha("fp")[:40].upper()}),
        "data": {"tls.crt": b64("-----BEGIN CERTIFICATE-----\ndemo\n-----END CERTIFICATE-----\n"),
                 "tls.key": b64("-----BEGIN EC PRIVATE KEY-----\ndemo\n-----END EC PRIVATE KEY-----\n")},
        "type": "kubernetes.io/tls",
    }
    node_pw = [{
        "metadata": meta("Secret", f"{n}.node-password.k3s", "kube-system", COLLECTED_AT - s["created"],
                         labels={"app.kubernetes.io/managed-by": "k3s"}, annotations=None),
        "data": {"hash": b64("$1:" + sha("node-password", n)[:32])}, "type": "Opaque",
    } for n, s in sorted(NODES.items())]
    return [fa, serving, *node_pw]


def service_accounts() -> list[dict[str, Any]]:
    rows = [("default", "homelab", 90), ("prometheus", "homelab", 88), ("coredns", "kube-system", 97),
            ("default", "kube-system", 97), ("local-path-provisioner-service-account", "kube-system", 97),
            ("metrics-server", "kube-system", 97)]
    return [{"metadata": meta("ServiceAccount", n, ns, ago(days=d, hours=4))} for n, ns, d in rows]


def pvcs() -> list[dict[str, Any]]:
    rows = [("prometheus-data", "50Gi", "pesubuntu", 88, None), ("registry-data", "200Gi", "pesubuntu", 90, None),
            ("storage-loki-0", "20Gi", "asuna", 86, {"app": "loki"})]
    out = []
    for name, size, node, days, labels in rows:
        out.append({
            "metadata": meta("PersistentVolumeClaim", name, "homelab", ago(days=days, hours=5), labels=labels,
                             annotations={"pv.kubernetes.io/bind-completed": "yes",
                                          "pv.kubernetes.io/bound-by-controller": "yes",
                                          "volume.beta.kubernetes.io/storage-provisioner": "rancher.io/local-path",
                                          "volume.kubernetes.io/selected-node": node,
                                          "volume.kubernetes.io/storage-provisioner": "rancher.io/local-path"}),
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                     "volumeName": "pvc-" + uid("PersistentVolumeClaim", "homelab", name),
                     "storageClassName": "local-path", "volumeMode": "Filesystem"},
            "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": size}},
        })
    for o in out:
        o["metadata"]["finalizers"] = ["kubernetes.io/pvc-protection"]
    return out


# ---------------------------------------------------------------------------------------------------------
# Events (core/v1)
# ---------------------------------------------------------------------------------------------------------

_event_seq = [0]


def event(obj: dict[str, Any], kind: str, api_version: str, reason: str, message: str, *, etype: str = "Normal",
          count: int = 1, first: datetime, last: datetime | None = None, component: str,
          host: str | None = None, field_path: str | None = None) -> dict[str, Any]:
    m = obj["metadata"]
    _event_seq[0] += 1
    nanos = int(first.timestamp()) * 1_000_000_000 + _event_seq[0] * 7_919_333
    involved: dict[str, Any] = {"kind": kind, "namespace": m["namespace"], "name": m["name"], "uid": m["uid"],
                                "apiVersion": api_version, "resourceVersion": m["resourceVersion"]}
    if field_path:
        involved["fieldPath"] = field_path
    source = {"component": component}
    if host:
        source["host"] = host
    return {
        "metadata": {"name": f"{m['name']}.{nanos:x}", "namespace": m["namespace"],
                     "uid": str(uuid.uuid5(UID_NAMESPACE, f"event/{m['name']}/{reason}/{message}")),
                     "resourceVersion": next_rv(), "creationTimestamp": ts(first)},
        "involvedObject": involved, "reason": reason, "message": message, "source": source,
        "firstTimestamp": ts(first), "lastTimestamp": ts(last or first), "count": count, "type": etype,
        "eventTime": None, "reportingComponent": component, "reportingInstance": host or "",
    }


def scheduler_event(pod: dict[str, Any], when: datetime) -> dict[str, Any]:
    """An events.k8s.io/v1 event seen through core/v1: eventTime set, first/lastTimestamp null, no count."""
    m = pod["metadata"]
    micros = when.strftime("%Y-%m-%dT%H:%M:%S.") + "418273Z"
    nanos = int(when.timestamp()) * 1_000_000_000 + 418_273_000
    return {
        "metadata": {"name": f"{m['name']}.{nanos:x}", "namespace": m["namespace"],
                     "uid": str(uuid.uuid5(UID_NAMESPACE, f"event/{m['name']}/Scheduled")),
                     "resourceVersion": next_rv(), "creationTimestamp": ts(when)},
        "involvedObject": {"kind": "Pod", "namespace": m["namespace"], "name": m["name"], "uid": m["uid"],
                           "apiVersion": "v1", "resourceVersion": m["resourceVersion"]},
        "reason": "Scheduled",
        "message": f"Successfully assigned {m['namespace']}/{m['name']} to {pod['spec']['nodeName']}",
        "source": {}, "firstTimestamp": None, "lastTimestamp": None, "type": "Normal", "eventTime": micros,
        "action": "Binding", "reportingComponent": "default-scheduler",
        "reportingInstance": "default-scheduler-pesubuntu",
    }


def events(objs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    bad, dash = objs["pod/bad"], objs["pod/dashboard"]
    image = "family-assistant:phase2-mcp-logging-fix"
    fp = "spec.containers{family-assistant}"
    created = ago(minutes=106, seconds=12)
    kubelet = {"component": "kubelet", "host": "asuna"}

    # The rollout that broke it (kubectl set image, 106 minutes ago).
    deploy, rs61, rs62 = objs["deploy/fa"], objs["rs/fa61"], objs["rs/fa62"]
    out.append(event(deploy, "Deployment", "apps/v1", "ScalingReplicaSet",
                     "Scaled down replica set family-assistant-backend-7748c945ff to 1 from 2",
                     first=created - timedelta(seconds=1), component="deployment-controller"))
    out.append(event(deploy, "Deployment", "apps/v1", "ScalingReplicaSet",
                     "Scaled up replica set family-assistant-backend-7fccb9956b to 1 from 0",
                     first=created, component="deployment-controller"))
    out.append(event(rs61, "ReplicaSet", "apps/v1", "SuccessfulDelete",
                     "Deleted pod: family-assistant-backend-7748c945ff-5tq8r", first=created - timedelta(seconds=1),
                     component="replicaset-controller"))
    out.append(event(rs62, "ReplicaSet", "apps/v1", "SuccessfulCreate",
                     "Created pod: family-assistant-backend-7fccb9956b-9g4wb", first=created,
                     component="replicaset-controller"))
    out.append(scheduler_event(bad, created))
    backoff_last = ago(seconds=37)
    out.append(event(bad, "Pod", "v1", "Pulling", f'Pulling image "{image}"', count=24,
                     first=created + timedelta(seconds=2), last=ago(minutes=3, seconds=2), field_path=fp, **kubelet))
    out.append(event(bad, "Pod", "v1", "Failed",
                     f'Failed to pull image "{image}": failed to resolve reference '
                     f'"docker.io/library/{image}": pull access denied, repository does not exist or may '
                     "require authorization", etype="Warning", count=24,
                     first=created + timedelta(seconds=4), last=ago(minutes=3), field_path=fp, **kubelet))
    out.append(event(bad, "Pod", "v1", "Failed", "Error: ErrImagePull", etype="Warning", count=24,
                     first=created + timedelta(seconds=4), last=ago(minutes=3), field_path=fp, **kubelet))
    out.append(event(bad, "Pod", "v1", "BackOff", f'Back-off pulling image "{image}"', count=461,
                     first=backoff_last - timedelta(minutes=105), last=backoff_last, field_path=fp, **kubelet))
    out.append(event(bad, "Pod", "v1", "Failed", "Error: ImagePullBackOff", etype="Warning", count=461,
                     first=backoff_last - timedelta(minutes=105), last=backoff_last, field_path=fp, **kubelet))

    # The dashboard: 598 restarts in five days on 429 probe responses.
    dfp = "spec.containers{homelab-dashboard}"
    start = ago(days=5, minutes=2)
    dk = {"component": "kubelet", "host": "asuna", "field_path": dfp}
    dimg = "ghcr.io/pesuga/homelab/homelab-dashboard:latest"
    dm = dash["metadata"]
    out.append(event(dash, "Pod", "v1", "Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 429",
                     etype="Warning", count=1794, first=start + timedelta(seconds=41), last=ago(seconds=32), **dk))
    out.append(event(dash, "Pod", "v1", "Unhealthy",
                     "Readiness probe failed: HTTP probe failed with statuscode: 429", etype="Warning", count=2735,
                     first=start + timedelta(seconds=19), last=ago(seconds=52), **dk))
    out.append(event(dash, "Pod", "v1", "Killing",
                     "Container homelab-dashboard failed liveness probe, will be restarted",
                     count=598, first=start + timedelta(minutes=1, seconds=1), last=ago(minutes=9, seconds=40), **dk))
    out.append(event(dash, "Pod", "v1", "BackOff",
                     f"Back-off restarting failed container homelab-dashboard in pod {dm['name']}_{dm['namespace']}"
                     f"({dm['uid']})", etype="Warning", count=2211, first=start + timedelta(minutes=2),
                     last=ago(minutes=4, seconds=5), **dk))
    out.append(event(dash, "Pod", "v1", "Pulling", f'Pulling image "{dimg}"', count=599, first=start,
                     last=ago(minutes=3, seconds=50), **dk))
    out.append(event(dash, "Pod", "v1", "Pulled",
                     f'(combined from similar events): Successfully pulled image "{dimg}" in 702ms (702ms including '
                     "waiting). Image size: 61847293 bytes.", count=588, first=start + timedelta(seconds=1),
                     last=ago(minutes=3, seconds=49), **dk))
    out.append(event(dash, "Pod", "v1", "Created", "Created container homelab-dashboard", count=599,
                     first=start + timedelta(seconds=1), last=ago(minutes=3, seconds=48), **dk))
    out.append(event(dash, "Pod", "v1", "Started", "Started container homelab-dashboard", count=599,
                     first=start + timedelta(seconds=2), last=ago(minutes=3, seconds=48), **dk))

    # Orphaned HPAs: FailedGetScale every 15 seconds.
    for key, target, count, last in (("hpa/enhanced", "family-assistant-enhanced", 417, ago(minutes=4, seconds=24)),
                                     ("hpa/whisper", "whisper", 389, ago(minutes=2, seconds=38))):
        out.append(event(objs[key], "HorizontalPodAutoscaler", "autoscaling/v2", "FailedGetScale",
                         f'deployments.apps "{target}" not found', etype="Warning", count=count,
                         first=last - timedelta(seconds=15 * (count - 1)), last=last,
                         component="horizontal-pod-autoscaler"))
    out.sort(key=lambda e: (e["metadata"]["namespace"], e["metadata"]["name"]))
    return out


# ---------------------------------------------------------------------------------------------------------
# Logs
# ---------------------------------------------------------------------------------------------------------


def _pylog(when: datetime, logger: str, level: str, message: str) -> str:
    return f"{when.strftime('%Y-%m-%d %H:%M:%S')},{when.microsecond // 1000:03d} - {logger} - {level} - {message}"


def family_assistant_log() -> list[str]:
    """~300 lines ending at COLLECTED_AT: OTLP export retries with a few ordinary application lines."""
    rng = random.Random(f"{SEED}:fa-log")
    exporter = "opentelemetry.exporter.otlp.proto.grpc.exporter"
    entries: list[tuple[datetime, str]] = []
    t = ago(minutes=49, seconds=31, milliseconds=118)
    while t < COLLECTED_AT:
        for delay in (1, 2, 4, 8, 16, 32):  # the exporter's backoff; at 64 it drops the batch silently
            t += timedelta(milliseconds=rng.randint(3, 40))
            if t >= COLLECTED_AT:
                break
            entries.append((t, _pylog(t, exporter, "WARNING", "Transient error StatusCode.UNAVAILABLE encountered "
                                      f"while exporting traces to {OTEL_ENDPOINT}, retrying in {delay}s.")))
            t += timedelta(seconds=delay)
        t += timedelta(milliseconds=rng.randint(200, 5_000))
    quiet = (ago(minutes=38), ago(minutes=24))  # nobody talked to the assistant: only the exporter speaks
    app_lines = [
        ("family_assistant.api", "INFO", 'POST /api/chat 200 ({ms} ms) user=household-1'),
        ("family_assistant.mcp", "INFO", "MCP tool call calendar.list_events completed in {ms} ms"),
        ("family_assistant.mcp", "INFO", "MCP tool call notes.search completed in {ms} ms"),
        ("family_assistant.llm", "INFO", "ollama generate model=qwen2.5:14b tokens=412 duration={ms} ms"),
        ("family_assistant.scheduler", "INFO", "reminder sweep: 0 due, next run in 60s"),
        ("family_assistant.api", "INFO", "GET /api/reminders 200 ({ms} ms)"),
    ]
    t = ago(minutes=49, seconds=2)
    while t < COLLECTED_AT:
        if not quiet[0] <= t <= quiet[1]:
            logger, level, msg = app_lines[rng.randrange(len(app_lines))]
            entries.append((t, _pylog(t, logger, level, msg.format(ms=rng.randint(40, 2_400)))))
        t += timedelta(seconds=rng.randint(45, 140), milliseconds=rng.randint(0, 999))
    entries.append((ago(minutes=17, seconds=3, milliseconds=640), _pylog(
        ago(minutes=17, seconds=3, milliseconds=640), "family_assistant.db", "WARNING",
        "slow query (1.9 s): SELECT * FROM reminders WHERE due_at < now() AND done = false")))
    entries.sort(key=lambda e: e[0])
    return [line for _, line in entries]


def dashboard_log() -> list[str]:
    """Since the current container start, 3m48s ago: gunicorn, upstream rate limits, 429 to the kubelet."""
    rng = random.Random(f"{SEED}:dash-log")
    start = ago(minutes=3, seconds=48)

    def g(t: datetime) -> str:
        return t.strftime("[%Y-%m-%d %H:%M:%S +0000]")

    lines = [
        f"{g(start)} [1] [INFO] Starting gunicorn 23.0.0",
        f"{g(start)} [1] [INFO] Listening at: http://0.0.0.0:8080 (1)",
        f"{g(start)} [1] [INFO] Using worker: gthread",
        f"{g(start + timedelta(seconds=1))} [7] [INFO] Booting worker with pid: 7",
    ]
    t = start + timedelta(seconds=2)
    probe_ip = "10.42.1.1"
    while t < COLLECTED_AT:
        targets = ["family-assistant-backend:8001", "prometheus:9090", "loki:3100", "docker-registry:5000"]
        for target in targets:
            lines.append(f"{g(t)} [7] [INFO] status poll {target} ok")
        lines.append(f"{g(t)} [7] [INFO] GET https://api.github.com/repos/pesuga/homelab/actions/runs")
        if t > start + timedelta(seconds=20):
            lines.append(f"{g(t)} [7] [WARNING] GitHub API responded 403: API rate limit exceeded for 100.72.14.93 "
                         "(limit 60/h); returning 429 to clients until reset")
        t += timedelta(seconds=5)
        if t > start + timedelta(seconds=10):
            code = 429 if t > start + timedelta(seconds=20) else 200
            size = rng.randint(60, 90) if code == 429 else rng.randint(900, 1300)
            lines.append(f'{probe_ip} - - [{t.strftime("%d/%b/%Y:%H:%M:%S +0000")}] "GET /api/status HTTP/1.1" '
                         f'{code} {size} "-" "kube-probe/1.31"')
    return lines


# ---------------------------------------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------------------------------------

LIST_TYPES: dict[str, tuple[str, str]] = {  # kind → (file stem, apiVersion)
    "Namespace": ("namespaces", "v1"), "Node": ("nodes", "v1"), "Pod": ("pods", "v1"),
    "Service": ("services", "v1"), "Endpoints": ("endpoints", "v1"), "ConfigMap": ("configmaps", "v1"),
    "Secret": ("secrets", "v1"), "ServiceAccount": ("serviceaccounts", "v1"),
    "PersistentVolumeClaim": ("persistentvolumeclaims", "v1"), "Event": ("events", "v1"),
    "Deployment": ("deployments.apps", "apps/v1"), "ReplicaSet": ("replicasets.apps", "apps/v1"),
    "StatefulSet": ("statefulsets.apps", "apps/v1"), "DaemonSet": ("daemonsets.apps", "apps/v1"),
    "HorizontalPodAutoscaler": ("horizontalpodautoscalers.autoscaling", "autoscaling/v2"),
    "ServiceMonitor": ("servicemonitors.monitoring.coreos.com", "monitoring.coreos.com/v1"),
    "PodMonitor": ("podmonitors.monitoring.coreos.com", "monitoring.coreos.com/v1"),
    "PrometheusRule": ("prometheusrules.monitoring.coreos.com", "monitoring.coreos.com/v1"),
}
CUSTOM_RESOURCES = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


def build() -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[str]]]:
    objects: dict[str, list[dict[str, Any]]] = {}
    objects["Namespace"] = [namespace_obj(n, ago(days=97, hours=4) if n != "homelab" else ago(days=90, hours=2))
                            for n in ALL_NAMESPACES]
    objects["Node"] = [node_obj(n, s) for n, s in sorted(NODES.items())]
    fa_deploy, fa_rs, fa_pods = family_assistant()
    deploys, rss, pods = other_workloads()
    sts, loki_pod = loki()
    ds, ne_pods = node_exporter()
    all_pods = [*fa_pods, *pods, loki_pod, *ne_pods]
    objects["Deployment"] = [*fa_deploy, *deploys]
    objects["ReplicaSet"] = [*fa_rs, *rss]
    objects["StatefulSet"] = [sts]
    objects["DaemonSet"] = [ds]
    objects["Pod"] = all_pods
    objects["Service"] = [service_obj(s) for s in SERVICES]
    objects["Endpoints"] = [endpoints_obj(s, all_pods) for s in SERVICES]
    objects["ConfigMap"] = configmaps()
    objects["Secret"] = secrets()
    objects["ServiceAccount"] = service_accounts()
    objects["PersistentVolumeClaim"] = pvcs()
    hpas = hpa_objs()
    objects["HorizontalPodAutoscaler"] = hpas
    for kind in CUSTOM_RESOURCES:
        objects[kind] = []
    by_name = {f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}": o for o in all_pods}
    refs = {
        "deploy/fa": fa_deploy[0], "rs/fa61": fa_rs[-2], "rs/fa62": fa_rs[-1],
        "pod/bad": by_name["homelab/family-assistant-backend-7fccb9956b-9g4wb"],
        "pod/dashboard": by_name["homelab/homelab-dashboard-5946d57cdf-b7kwx"],
        "hpa/enhanced": hpas[0], "hpa/whisper": hpas[1],
    }
    objects["Event"] = events(refs)
    for items in objects.values():  # the API lists objects in etcd key order: namespace, then name
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
    logs = {
        "homelab/family-assistant-backend-7748c945ff-n2kb7/family-assistant": family_assistant_log(),
        "homelab/homelab-dashboard-5946d57cdf-b7kwx/homelab-dashboard": dashboard_log(),
    }
    return objects, logs


def write_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_bundle(out: Path) -> dict[str, int]:
    objects, logs = build()
    if out.exists():
        if any(out.iterdir()) and not (out / "kubeshape-bundle.json").is_file():
            raise SystemExit(f"{out}: exists and is not a bundle; refusing to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    list_rv = next_rv()
    resources: dict[str, str] = {}
    counts: dict[str, int] = {}
    for kind in sorted(objects, key=lambda k: LIST_TYPES[k][0]):
        stem, api_version = LIST_TYPES[kind]
        list_meta: dict[str, Any] = {"resourceVersion": list_rv}
        if kind in CUSTOM_RESOURCES:
            list_meta = {"continue": "", "resourceVersion": list_rv}
        rel = f"resources/{stem}.json"
        write_json(out / rel, {"kind": f"{kind}List", "apiVersion": api_version, "metadata": list_meta,
                               "items": objects[kind]})
        resources[kind] = rel
        counts[kind] = len(objects[kind])
    for key, lines in logs.items():
        path = out / "logs" / f"{key}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_json(out / "registry.json", registry_json())
    write_json(out / "kubeshape-bundle.json", {
        "apiVersion": "kubeshape.io/v1", "kind": "Bundle", "formatVersion": 1, "collectedAt": ts(COLLECTED_AT),
        "cluster": {"name": CLUSTER, "serverVersion": SERVER_VERSION}, "namespaces": NAMESPACES,
        "resources": resources, "blindSpots": [],
    })
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="bundle directory to (re)write")
    args = parser.parse_args()
    counts = write_bundle(args.out)
    total = sum(counts.values())
    print(f"wrote {args.out} ({total} objects: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")")


if __name__ == "__main__":
    main()
