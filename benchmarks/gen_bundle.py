#!/usr/bin/env python3
"""Generate a large, realistic kubeshape bundle and manifests repository for benchmarks.

``generate(out)`` writes two directories:

* ``out/bundle``: a kubeshape bundle (``kubeshape-bundle.json``, ``resources/*.json`` Lists exactly as
  the API server returns them -- items without kind/apiVersion, full metadata with uid, ownerReferences,
  managedFields, labels and annotations --, ``logs/<ns>/<pod>/<container>.log`` tails and a
  ``registry.json`` snapshot);
* ``out/repo``: a manifests repository of multi-document YAML files (Deployments, Services, HPAs) with
  comments, a few Dockerfiles and a CI workflow.

The cluster has ``deployments`` Deployments spread over ~50 namespaces, each with 2-4 ReplicaSets
(revision annotations; a few with a long history) and ``pods`` Pods over ~20 nodes (whose
``status.images`` lists what they hold), Services, HPAs, PDBs, ServiceMonitors, ConfigMaps, Secrets and
exactly ``events`` Events. About one workload in eight has a problem so that every rule family has work:
unqualified images built on a node (ImagePullBackOff elsewhere), ``imagePullPolicy: Never``, ``latest``
tags, tags never pushed, meaningless tags, restart storms with HTTP 429 probe failures, OOM kills, crash
loops, missing Secrets, HPAs and Services whose targets are gone, old ReplicaSets, log floods, telemetry
endpoints without a Service, duplicated and drifting manifests.

Everything is deterministic: the only randomness is ``random.Random(seed)``.

    python benchmarks/gen_bundle.py OUT [--pods 20000] [--deployments 5000] [--events 50000] [--manifests 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml

COLLECTED_AT = datetime(2025, 11, 17, 10, 0, 0, tzinfo=UTC)
CLUSTER = "bench-prod-eu1"
SERVER_VERSION = "v1.31.4"
REGISTRY = "registry.internal.example:5000"
OTEL_HOST = "otel-collector.observability.svc.cluster.local"
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand.SafeEncodeString
SYSTEM_NAMESPACES = ["kube-system", "kube-public", "kube-node-lease"]

NS_WORDS = [
    "payments", "checkout", "catalog", "search", "identity", "billing", "shipping", "inventory", "pricing",
    "reviews", "recommendations", "notifications", "messaging", "analytics", "reporting", "ledger", "fraud",
    "loyalty", "marketing", "media", "uploads", "maps", "routing", "dispatch", "support", "helpdesk", "crm",
    "partners", "onboarding", "accounts", "profiles", "sessions", "gateway", "edge", "cdn-origin", "ml-serving",
    "feature-store", "etl", "streaming", "scheduler", "workflows", "compliance", "audit", "storage", "backup",
    "platform", "tooling", "data-api", "mobile-bff", "web-bff",
]
SVC_PREFIX = [
    "orders", "payments", "cart", "catalog", "search", "users", "auth", "invoice", "ledger", "shipment",
    "stock", "price", "review", "recommend", "notify", "email", "sms", "push", "report", "export", "import",
    "media", "thumbnail", "upload", "geo", "route", "dispatch", "ticket", "chat", "feed", "profile",
    "session", "token", "audit", "rules", "fraud", "score", "promo", "coupon", "wallet",
]
SVC_SUFFIX = ["api", "worker", "web", "gateway", "sync", "consumer", "scheduler", "indexer", "proxy", "cache",
              "backend", "frontend", "processor", "service", "adapter"]
MEANINGLESS = ["fixed", "fixed-v2", "fixed-final", "hotfix", "test", "debug", "dev", "working", "final",
               "phase2", "me-fixed", "new", "prod-fix", "retry", "temp"]
SIDECARS = [
    ("envoy", "docker.io/envoyproxy/envoy:v1.31.2", 61_000_000),
    ("log-shipper", "docker.io/fluent/fluent-bit:3.1.9", 38_000_000),
    ("cloudsql-proxy", "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.13.0", 22_000_000),
]
INIT_IMAGE = ("docker.io/library/busybox:1.36.1", 2_150_000)
PAUSE_IMAGE = ("registry.k8s.io/pause:3.10", 320_000)
EXPORTER_IMAGE = ("quay.io/prometheus/node-exporter:v1.8.2", 11_400_000)
BASE_LAYERS = {
    "python": [("python-rootfs", 29_125_211), ("python-deps", 3_511_108), ("python-3.12", 16_204_087)],
    "node": [("node-rootfs", 29_125_211), ("node-22", 47_113_902), ("yarn", 1_243_004)],
    "go": [("distroless-static", 1_012_311), ("tzdata", 451_220)],
    "jvm": [("jre-rootfs", 31_402_117), ("temurin-21", 52_991_043), ("jvm-certs", 402_881)],
}

# Problem kinds for a Deployment, with the share of Deployments that get each (at least one each).
PROBLEMS: list[tuple[str, float]] = [
    ("unqualified", 0.04),   # built on a node, never pushed: ImagePullBackOff on the other nodes
    ("never", 0.005),        # unqualified + imagePullPolicy: Never
    ("latest", 0.02),        # :latest
    ("unpushed", 0.01),      # qualified, tag not in the registry: ErrImagePull/ImagePullBackOff
    ("meaningless", 0.03),   # qualified, pushed, tag names no commit
    ("probe429", 0.01),      # restart storm: liveness probe answered with HTTP 429
    ("oom", 0.005),          # restart storm: OOMKilled
    ("crashloop", 0.01),     # CrashLoopBackOff
    ("configerror", 0.002),  # CreateContainerConfigError: missing Secret
]


# ------------------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------------------


def ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(seconds: float) -> datetime:
    return COLLECTED_AT - timedelta(seconds=seconds)


def sha(*parts: object) -> str:
    return hashlib.sha256("\x00".join(str(p) for p in parts).encode()).hexdigest()


def digest(*parts: object) -> str:
    return "sha256:" + sha(*parts)


def normalized(image: str) -> str:
    """containerd's name for an image: ``x:1`` → ``docker.io/library/x:1``."""
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"docker.io/library/{image}" if "/" not in image else f"docker.io/{image}"


def image_name(image: str) -> str:
    """``host:5000/x:tag`` → ``host:5000/x``."""
    slash = image.rfind("/")
    colon = image.rfind(":")
    return image[:colon] if colon > slash else image


def registry_tag_digest(repo: str, tag: str) -> str:
    return digest("manifest", repo, tag)


class Gen:
    """Deterministic ids and times from one random.Random."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.rv = 48_211_000

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def next_rv(self) -> str:
        self.rv += self.rng.randint(1, 40)
        return str(self.rv)

    def suffix(self, n: int) -> str:
        return "".join(self.rng.choice(SAFE_ALPHABET) for _ in range(n))

    def hexid(self, bits: int = 64) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"


def managed(manager: str, operation: str, when: datetime, fields: dict[str, Any], api: str = "apps/v1",
            subresource: str | None = None) -> dict[str, Any]:
    e: dict[str, Any] = {"manager": manager, "operation": operation, "apiVersion": api, "time": ts(when),
                         "fieldsType": "FieldsV1", "fieldsV1": fields}
    if subresource:
        e["subresource"] = subresource
    return e


def condition(ctype: str, status: str, when: datetime, reason: str | None = None, message: str | None = None,
              update: datetime | None = None, probe: bool = False) -> dict[str, Any]:
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


# Realistic managedFields trees (shared between objects: orjson writes them out for each).
def _fields_of(keys: list[str]) -> dict[str, Any]:
    return {k: {} for k in keys}


POD_CONTROLLER_FIELDS = {
    "f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}},
                   "f:ownerReferences": {".": {}, "k:{\"uid\":\"…\"}": {}}},
    "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
        ".": {}, "f:env": {".": {}}, "f:image": {}, "f:imagePullPolicy": {}, "f:livenessProbe": {
            ".": {}, "f:failureThreshold": {}, "f:httpGet": {".": {}, "f:path": {}, "f:port": {}, "f:scheme": {}},
            "f:periodSeconds": {}, "f:successThreshold": {}, "f:timeoutSeconds": {}},
        "f:name": {}, "f:ports": {".": {}, "k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": _fields_of(
            [".", "f:containerPort", "f:name", "f:protocol"])},
        "f:readinessProbe": _fields_of([".", "f:failureThreshold", "f:httpGet", "f:periodSeconds"]),
        "f:resources": {".": {}, "f:limits": _fields_of([".", "f:memory"]),
                        "f:requests": _fields_of([".", "f:cpu", "f:memory"])},
        "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}},
        "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {}, "f:schedulerName": {},
        "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}},
}
POD_KUBELET_FIELDS = {"f:status": {
    "f:conditions": {"k:{\"type\":\"ContainersReady\"}": _fields_of([".", "f:lastProbeTime", "f:lastTransitionTime",
                                                                     "f:status", "f:type"]),
                     "k:{\"type\":\"Initialized\"}": _fields_of([".", "f:lastTransitionTime", "f:status", "f:type"]),
                     "k:{\"type\":\"PodReadyToStartContainers\"}": _fields_of([".", "f:status", "f:type"]),
                     "k:{\"type\":\"Ready\"}": _fields_of([".", "f:lastTransitionTime", "f:status", "f:type"])},
    "f:containerStatuses": {}, "f:hostIP": {}, "f:hostIPs": {}, "f:phase": {}, "f:podIP": {},
    "f:podIPs": {".": {}, "k:{\"ip\":\"…\"}": _fields_of([".", "f:ip"])}, "f:startTime": {}}}
DEPLOY_APPLY_FIELDS = {
    "f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}},
                   "f:labels": {".": {}, "f:app": {}, "f:team": {}}},
    "f:spec": _fields_of(["f:progressDeadlineSeconds", "f:replicas", "f:revisionHistoryLimit", "f:selector",
                          "f:strategy", "f:template"]),
}
DEPLOY_STATUS_FIELDS = {"f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}},
                        "f:status": _fields_of(["f:availableReplicas", "f:conditions", "f:observedGeneration",
                                                "f:readyReplicas", "f:replicas", "f:updatedReplicas"])}
RS_FIELDS = {"f:metadata": {"f:annotations": _fields_of([".", "f:deployment.kubernetes.io/desired-replicas",
                                                         "f:deployment.kubernetes.io/max-replicas",
                                                         "f:deployment.kubernetes.io/revision"]),
                            "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}},
                            "f:ownerReferences": {".": {}}},
             "f:spec": _fields_of(["f:replicas", "f:selector", "f:template"])}


# ------------------------------------------------------------------------------------------------------
# The model: apps (Deployments) and what they run
# ------------------------------------------------------------------------------------------------------


@dataclass
class Repo:
    name: str
    lang: str
    good_tags: list[str]  # scheme-conforming, oldest first
    bad_tags: list[str]
    has_latest: bool
    created: dict[str, datetime] = field(default_factory=dict)


@dataclass
class App:
    index: int
    ns: str
    name: str
    repo: Repo
    replicas: int
    problem: str | None = None
    image: str = ""
    pull_policy: str = "IfNotPresent"
    old_images: list[str] = field(default_factory=list)
    uid: str = ""
    team: str = ""
    created: datetime = COLLECTED_AT
    revision: int = 1
    sidecar: tuple[str, str, int] | None = None
    init: bool = False
    otel: bool = False
    service: bool = False
    hpa: bool = False
    pdb: bool = False
    monitor: bool = False
    variant_of: str | None = None
    builders: list[str] = field(default_factory=list)  # nodes holding a locally built image
    change_cause: bool = False
    imperative: bool = False
    history: int = 3  # number of ReplicaSets
    port: int = 8080
    rs_hash: str = ""
    pods: list[dict[str, Any]] = field(default_factory=list)


def _partition(rng: random.Random, total: int, buckets: int, minimum: int) -> list[int]:
    """``total`` split into ``buckets`` counts of at least ``minimum`` (multinomial above the minimum)."""
    if buckets == 0:
        return []
    base = min(minimum, total // buckets)
    out = [base] * buckets
    for _ in range(total - base * buckets):
        out[rng.randrange(buckets)] += 1
    return out


class Builder:
    def __init__(self, pods: int, deployments: int, events: int, manifests: int, seed: int,
                 namespaces: int | None, nodes: int | None, repos: int | None, tags_per_repo: int,
                 log_pods: int | None, log_lines: int) -> None:
        self.g = Gen(seed)
        self.rng = self.g.rng
        self.n_pods, self.n_deploy, self.n_events, self.n_manifests = pods, deployments, events, manifests
        self.n_ns = namespaces or max(3, min(50, deployments // 100))
        self.n_nodes = nodes or max(3, min(20, pods // 500))
        self.n_repos = repos or max(5, min(500, deployments // 10))
        self.tags_per_repo = tags_per_repo
        self.n_log_pods = log_pods if log_pods is not None else max(5, min(200, pods // 100))
        self.log_lines = log_lines
        self.namespaces = [NS_WORDS[i % len(NS_WORDS)] + (f"-{i // len(NS_WORDS)}" if i >= len(NS_WORDS) else "")
                           for i in range(self.n_ns)]
        self.nodes = [f"node-{i + 1:02d}" for i in range(self.n_nodes)]
        self.node_ip = {n: f"10.0.{i // 200}.{10 + i % 200}" for i, n in enumerate(self.nodes)}
        self.node_images: dict[str, dict[str, tuple[list[str], int]]] = {n: {} for n in self.nodes}
        self.objects: dict[str, list[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.problem_events: list[dict[str, Any]] = []
        self.logs: dict[str, str] = {}
        self.apps: list[App] = []
        self.repos: list[Repo] = []
        self.orphan_hpa_targets: list[tuple[str, str]] = []
        self.pod_ip = 0

    # -- registry ----------------------------------------------------------------------------------------
    def make_repos(self) -> None:
        names = [f"{p}-{s}" for s in SVC_SUFFIX for p in SVC_PREFIX]
        self.rng.shuffle(names)
        langs = list(BASE_LAYERS)
        for i in range(self.n_repos):
            name = names[i % len(names)] + (f"-{i // len(names)}" if i >= len(names) else "")
            n_bad = self.rng.choice([0, 0, 1, 2, 3, 5])
            n_good = max(2, self.tags_per_repo - n_bad - 1)
            good = []
            start = self.rng.uniform(40, 200)  # days ago of the oldest tag
            created: dict[str, datetime] = {}
            major, minor, patch = self.rng.randint(0, 3), self.rng.randint(0, 20), 0
            for k in range(n_good):
                when = ago(86400 * start * (1 - k / n_good) + self.rng.randint(0, 3000))
                patch += 1
                if self.rng.random() < 0.2:
                    minor, patch = minor + 1, 0
                tag = f"{major}.{minor}.{patch}-{when.strftime('%Y%m%dT%H%M%SZ')}.g{sha('c', name, k)[:7]}"
                good.append(tag)
                created[tag] = when
            bad = self.rng.sample(MEANINGLESS, n_bad)
            for t in bad:
                created[t] = ago(86400 * self.rng.uniform(1, start))
            repo = Repo(name, self.rng.choice(langs), good, bad, has_latest=self.rng.random() < 0.4, created=created)
            if repo.has_latest:
                created["latest"] = created[good[-1]]
            self.repos.append(repo)

    def registry_json(self) -> dict[str, Any]:
        out = []
        for repo in self.repos:
            tags = []
            base = [{"digest": digest("layer", repo.lang, n), "size": s} for n, s in BASE_LAYERS[repo.lang]]
            for tag in sorted(repo.created):  # the registry lists tags lexically
                same = repo.good_tags[-1] if tag == "latest" else tag
                layers = [*base,
                          {"digest": digest("layer", repo.name, "deps", repo.good_tags.index(same) // 5
                                            if same in repo.good_tags else 0), "size": 48_000_000 + len(repo.name)},
                          {"digest": digest("layer", repo.name, "app", same),
                           "size": 2_000_000 + int(sha("sz", repo.name, same)[:6], 16) % 30_000_000}]
                rev = sha("c", repo.name, repo.good_tags.index(same)) if same in repo.good_tags else None
                tags.append({"tag": tag, "digest": registry_tag_digest(repo.name, same),
                             "size": sum(layer["size"] for layer in layers), "created": ts(repo.created[tag]),
                             "revision": rev, "layers": layers})
            out.append({"name": repo.name, "tags": tags})
        return {"collectedAt": ts(COLLECTED_AT), "registries": [{"host": REGISTRY, "repositories": out}]}

    # -- apps -------------------------------------------------------------------------------------------
    def make_apps(self) -> None:
        rng = self.rng
        D = self.n_deploy
        ds_pods = self.n_nodes if self.n_pods >= 4 * self.n_nodes else 0
        self.ds_pods = ds_pods
        replicas = _partition(rng, self.n_pods - ds_pods, D, 1)
        used: set[tuple[str, str]] = set()
        for i in range(D):
            repo = self.repos[i % len(self.repos)]
            ns = self.namespaces[(i // len(self.repos) + i) % len(self.namespaces)]
            name = repo.name
            k = 2
            while (ns, name) in used:
                name, k = f"{repo.name}-{k}", k + 1
            used.add((ns, name))
            self.apps.append(App(i, ns, name, repo, replicas[i], team=ns))
        # Variants: copies of a service under another name in the same namespace (KS202).
        order = list(range(D))
        rng.shuffle(order)
        n_var = max(1, D // 50) if D >= 4 else 0
        for j in range(n_var):
            base, var = self.apps[order[2 * j]], self.apps[order[2 * j + 1]]
            suffix = rng.choice(["v2", "enhanced", "canary", "new"])
            name = f"{base.name}-{suffix}"
            if (base.ns, name) in used:
                continue
            used.discard((var.ns, var.name))
            var.ns, var.repo, var.name, var.variant_of = base.ns, base.repo, name, base.name
            used.add((var.ns, var.name))
        # Problems: disjoint sets of apps.
        rest = [i for i in order[2 * n_var:]]
        pos = 0
        for problem, share in PROBLEMS:
            n = max(1, round(share * D))
            for i in rest[pos:pos + n]:
                self.apps[i].problem = problem
            pos += n
        for app in self.apps:
            self._configure(app)

    def _configure(self, app: App) -> None:
        rng, repo = self.rng, app.repo
        app.uid = self.g.uid()
        app.created = ago(86400 * rng.uniform(20, 400))
        app.revision = rng.randint(2, 40)
        app.history = rng.randint(2, 4)
        if rng.random() < 0.02:
            app.history = rng.randint(6, 12)  # long rollout history (KS602)
        app.history = min(app.history, app.revision)
        app.change_cause = rng.random() < 0.3
        app.imperative = rng.random() < 0.05
        app.service = rng.random() < 0.8
        app.hpa = rng.random() < 0.2
        app.pdb = rng.random() < 0.05
        app.monitor = rng.random() < 0.3
        app.init = rng.random() < 0.1
        app.otel = rng.random() < 0.15
        app.port = rng.choice([8080, 8080, 8000, 3000, 9000])
        if rng.random() < 0.2:
            app.sidecar = rng.choice(SIDECARS)
        good = repo.good_tags
        current = good[-1] if rng.random() < 0.6 else rng.choice(good)
        app.image = f"{REGISTRY}/{repo.name}:{current}"
        p = app.problem
        if p in ("unqualified", "never"):
            tag = rng.choice(MEANINGLESS) + "-local"
            app.image = f"{repo.name}:{tag}"
            app.builders = rng.sample(self.nodes, min(len(self.nodes), rng.choice([1, 1, 2])))
            if p == "never":
                app.pull_policy = "Never"
        elif p == "latest":
            app.image = f"{REGISTRY}/{repo.name}:latest" if rng.random() < 0.7 else f"{REGISTRY}/{repo.name}"
            app.pull_policy = "Always"
            if not repo.has_latest:
                repo.has_latest = True
                repo.created["latest"] = repo.created[good[-1]]
        elif p == "unpushed":
            app.image = f"{REGISTRY}/{repo.name}:{rng.choice(MEANINGLESS)}-{self.g.hexid(16)[:4]}"
        elif p == "meaningless":
            if not repo.bad_tags:
                repo.bad_tags.append(rng.choice(MEANINGLESS))
                repo.created[repo.bad_tags[-1]] = ago(86400 * rng.uniform(1, 30))
            app.image = f"{REGISTRY}/{repo.name}:{rng.choice(repo.bad_tags)}"
        # Older revisions ran older tags of the same repository.
        idx = good.index(current) if current in good else len(good)
        app.old_images = [f"{REGISTRY}/{repo.name}:{good[max(0, idx - k)]}" for k in range(app.history - 1, 0, -1)]

    # -- object builders ----------------------------------------------------------------------------------
    def meta(self, name: str, ns: str | None, created: datetime, *, labels: dict[str, str] | None = None,
             annotations: dict[str, str] | None = None, owner: dict[str, Any] | None = None,
             generation: int | None = None, generate_name: str | None = None,
             managed_fields: list[dict[str, Any]] | None = None, uid: str | None = None) -> dict[str, Any]:
        m: dict[str, Any] = {"name": name}
        if generate_name:
            m["generateName"] = generate_name
        if ns is not None:
            m["namespace"] = ns
        m["uid"] = uid or self.g.uid()
        m["resourceVersion"] = self.g.next_rv()
        if generation is not None:
            m["generation"] = generation
        m["creationTimestamp"] = ts(created)
        if labels:
            m["labels"] = labels
        if annotations:
            m["annotations"] = annotations
        if owner:
            m["ownerReferences"] = [owner]
        if managed_fields:
            m["managedFields"] = managed_fields
        return m

    def container_spec(self, app: App, image: str) -> dict[str, Any]:
        env = [{"name": "APP_ENV", "value": "production"},
               {"name": "LOG_LEVEL", "value": self.rng.choice(["info", "info", "debug", "warn"])},
               {"name": "DATABASE_HOST", "value": f"postgres.{app.ns}.svc.cluster.local"},
               {"name": "DATABASE_PASSWORD", "valueFrom": {"secretKeyRef": {"name": f"{app.name}-secrets",
                                                                            "key": "DATABASE_PASSWORD"}}},
               {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}]
        if app.otel:
            env += [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": f"http://{OTEL_HOST}:4317"},
                    {"name": "OTEL_SERVICE_NAME", "value": app.name}]
        c: dict[str, Any] = {
            "name": "app", "image": image,
            "ports": [{"name": "http", "containerPort": app.port, "protocol": "TCP"},
                      {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
            "env": env,
            "resources": {"limits": {"memory": f"{self.rng.choice([256, 512, 1024])}Mi"},
                          "requests": {"cpu": f"{self.rng.choice([50, 100, 250])}m",
                                       "memory": f"{self.rng.choice([128, 256])}Mi"}},
            "livenessProbe": {"httpGet": {"path": "/health", "port": app.port, "scheme": "HTTP"},
                              "initialDelaySeconds": 10, "timeoutSeconds": 1, "periodSeconds": 10,
                              "successThreshold": 1, "failureThreshold": 3},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": app.port, "scheme": "HTTP"},
                               "timeoutSeconds": 1, "periodSeconds": 5, "successThreshold": 1,
                               "failureThreshold": 3},
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
            "imagePullPolicy": app.pull_policy,
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "runAsNonRoot": True},
        }
        return c

    def template(self, app: App, image: str, rs_hash: str | None = None) -> dict[str, Any]:
        labels = {"app": app.name, "team": app.team}
        if rs_hash:
            labels["pod-template-hash"] = rs_hash
        containers = [self.container_spec(app, image)]
        if app.sidecar:
            sname, simage, _ = app.sidecar
            containers.append({"name": sname, "image": simage, "resources": {"requests": {"cpu": "10m",
                                                                                          "memory": "32Mi"}},
                               "terminationMessagePath": "/dev/termination-log",
                               "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"})
        spec: dict[str, Any] = {"containers": containers, "restartPolicy": "Always",
                                "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                                "serviceAccountName": app.name if app.index % 3 == 0 else "default",
                                "securityContext": {"fsGroup": 2000}, "schedulerName": "default-scheduler"}
        if app.init:
            spec["initContainers"] = [{"name": "wait-for-db", "image": INIT_IMAGE[0],
                                       "command": ["sh", "-c", f"until nc -z postgres.{app.ns} 5432; do sleep 2; done"],
                                       "terminationMessagePath": "/dev/termination-log",
                                       "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}]
        ann = {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"} if not app.monitor else None
        tmeta: dict[str, Any] = {"creationTimestamp": None, "labels": labels}
        if ann:
            tmeta["annotations"] = ann
        return {"metadata": tmeta, "spec": spec}

    def last_applied(self, app: App) -> str:
        applied = {"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"annotations": {}, "labels": {"app": app.name, "team": app.team},
                                "name": app.name, "namespace": app.ns},
                   "spec": {"replicas": app.replicas, "selector": {"matchLabels": {"app": app.name}},
                            "template": {"metadata": {"labels": {"app": app.name, "team": app.team}},
                                         "spec": {"containers": [{"image": app.image, "name": "app",
                                                                  "ports": [{"containerPort": app.port}]}]}}}}
        return orjson.dumps(applied, option=orjson.OPT_SORT_KEYS).decode() + "\n"

    def deployment(self, app: App) -> dict[str, Any]:
        ready = sum(1 for p in app.pods if p["_ready"])
        ann = {"deployment.kubernetes.io/revision": str(app.revision),
               "kubectl.kubernetes.io/last-applied-configuration": self.last_applied(app)}
        if app.change_cause:
            ann["kubernetes.io/change-cause"] = f"release {app.image.rsplit(':', 1)[-1]}"
        mf = [managed("kubectl-client-side-apply", "Update", app.created, DEPLOY_APPLY_FIELDS),
              managed("kube-controller-manager", "Update", ago(self.rng.uniform(60, 86400 * 3)),
                      DEPLOY_STATUS_FIELDS, subresource="status")]
        if app.imperative:
            mf.append(managed("kubectl-set", "Update", ago(self.rng.uniform(600, 86400 * 5)),
                              {"f:spec": {"f:template": {"f:spec": {"f:containers": {}}}}}))
        status: dict[str, Any] = {"observedGeneration": app.revision + 1, "replicas": app.replicas,
                                  "updatedReplicas": app.replicas}
        if ready:
            status["readyReplicas"] = ready
            status["availableReplicas"] = ready
        if app.replicas - ready > 0:
            status["unavailableReplicas"] = app.replicas - ready
        progressed = ago(self.rng.uniform(600, 86400 * 10))
        status["conditions"] = [
            condition("Available", "True" if ready else "False", progressed,
                      "MinimumReplicasAvailable" if ready else "MinimumReplicasUnavailable",
                      "Deployment has minimum availability." if ready else
                      "Deployment does not have minimum availability.", update=progressed),
            condition("Progressing", "True" if ready == app.replicas else "False", app.created,
                      "NewReplicaSetAvailable" if ready == app.replicas else "ProgressDeadlineExceeded",
                      f'ReplicaSet "{app.name}-{app.rs_hash}" has successfully progressed.'
                      if ready == app.replicas else f'ReplicaSet "{app.name}-{app.rs_hash}" has timed out progressing.',
                      update=progressed),
        ]
        return {
            "metadata": self.meta(app.name, app.ns, app.created, labels={"app": app.name, "team": app.team},
                                  annotations=ann, generation=app.revision + 1, managed_fields=mf, uid=app.uid),
            "spec": {"replicas": app.replicas, "selector": {"matchLabels": {"app": app.name}},
                     "template": self.template(app, app.image),
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%",
                                                                            "maxSurge": "25%"}},
                     "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
            "status": status,
        }

    def owner(self, kind: str, name: str, uid: str, api: str = "apps/v1") -> dict[str, Any]:
        return {"apiVersion": api, "kind": kind, "name": name, "uid": uid, "controller": True,
                "blockOwnerDeletion": True}

    def replicasets(self, app: App) -> list[dict[str, Any]]:
        out = []
        images = [*app.old_images, app.image]
        span = (COLLECTED_AT - app.created).total_seconds()
        for k, image in enumerate(images):
            current = k == len(images) - 1
            rev = app.revision - (len(images) - 1 - k)
            rs_hash = self.g.suffix(10)
            if current:
                app.rs_hash = rs_hash
            created = app.created + timedelta(seconds=span * (k + 1) / (len(images) + 1))
            replicas = app.replicas if current else 0
            labels = {"app": app.name, "pod-template-hash": rs_hash, "team": app.team}
            ann = {"deployment.kubernetes.io/desired-replicas": str(app.replicas),
                   "deployment.kubernetes.io/max-replicas": str(app.replicas + 1),
                   "deployment.kubernetes.io/revision": str(rev)}
            if app.change_cause:
                ann["kubernetes.io/change-cause"] = f"release {image.rsplit(':', 1)[-1]}"
            status: dict[str, Any] = {"replicas": replicas, "observedGeneration": 1 if current else 2}
            if replicas:
                status.update(fullyLabeledReplicas=replicas, readyReplicas=replicas, availableReplicas=replicas)
            name = f"{app.name}-{rs_hash}"
            rs = {"metadata": self.meta(name, app.ns, created, labels=labels, annotations=ann,
                                        generation=status["observedGeneration"],
                                        owner=self.owner("Deployment", app.name, app.uid),
                                        managed_fields=[managed("kube-controller-manager", "Update", created,
                                                                RS_FIELDS)]),
                  "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app.name,
                                                                              "pod-template-hash": rs_hash}},
                           "template": self.template(app, image, rs_hash)},
                  "status": status}
            out.append(rs)
        return out

    def next_pod_ip(self) -> str:
        self.pod_ip += 1
        return f"10.42.{self.pod_ip // 250 % 256}.{self.pod_ip % 250 + 2}"

    def pod(self, app: App, rs: dict[str, Any], k: int) -> dict[str, Any]:
        rng = self.rng
        rs_meta = rs["metadata"]
        rs_hash = rs_meta["labels"]["pod-template-hash"]
        name = f"{rs_meta['name']}-{self.g.suffix(5)}"
        node = rng.choice(self.nodes)
        p = app.problem
        if p in ("unqualified", "never") and k == 0:
            node = app.builders[0]  # one replica landed where the image was built
        created = ago(rng.uniform(3600, min(86400 * 30, (COLLECTED_AT - app.created).total_seconds())))
        if p in ("probe429", "oom", "crashloop"):
            created = ago(rng.uniform(86400 * 2, 86400 * 6))
        tmpl = rs["spec"]["template"]
        sa_token = f"kube-api-access-{self.g.suffix(5)}"
        mount = {"name": sa_token, "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
        containers = [{**c, "volumeMounts": [mount]} for c in tmpl["spec"]["containers"]]
        spec: dict[str, Any] = {
            "volumes": [{"name": sa_token, "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                    "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}], "defaultMode": 420}}],
            "containers": containers,
        }
        if "initContainers" in tmpl["spec"]:
            spec["initContainers"] = [{**c, "volumeMounts": [mount]} for c in tmpl["spec"]["initContainers"]]
        for key in ("restartPolicy", "terminationGracePeriodSeconds", "dnsPolicy"):
            spec[key] = tmpl["spec"][key]
        sa = tmpl["spec"]["serviceAccountName"]
        spec.update(serviceAccountName=sa, serviceAccount=sa, nodeName=node,
                    securityContext=tmpl["spec"]["securityContext"], schedulerName="default-scheduler",
                    tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                  "effect": "NoExecute", "tolerationSeconds": 300},
                                 {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                  "effect": "NoExecute", "tolerationSeconds": 300}],
                    priority=0, enableServiceLinks=True, preemptionPolicy="PreemptLowerPriority")
        started = created + timedelta(seconds=rng.randint(2, 40))
        statuses = []
        phase, ready_all = "Running", True
        image = containers[0]["image"]
        pull_fail = False
        if p in ("unqualified", "never") and node not in app.builders:
            pull_fail = True
        if p == "unpushed":
            pull_fail = True
        for ci, c in enumerate(containers):
            cimage = c["image"]
            st: dict[str, Any] = {"name": c["name"], "state": {"running": {"startedAt": ts(started)}},
                                  "lastState": {}, "ready": True, "restartCount": 0,
                                  "image": normalized(cimage), "imageID": self.image_id(cimage, app, node),
                                  "containerID": f"containerd://{self.g.hexid(128)}{self.g.hexid(128)}",
                                  "started": True}
            if ci == 0:
                if rng.random() < 0.1:
                    st["restartCount"] = rng.randint(1, 3)
                    st["lastState"] = {"terminated": {"exitCode": 143, "reason": "Error",
                                                      "startedAt": ts(created), "finishedAt": ts(started)}}
                if pull_fail:
                    reason = "ErrImageNeverPull" if app.pull_policy == "Never" else rng.choice(
                        ["ImagePullBackOff", "ImagePullBackOff", "ErrImagePull"])
                    msg = (f'Container image "{cimage}" is not present with pull policy of Never'
                           if reason == "ErrImageNeverPull" else f'Back-off pulling image "{cimage}"')
                    st.update(state={"waiting": {"reason": reason, "message": msg}}, ready=False, started=False,
                              imageID="", restartCount=0, lastState={})
                    del st["containerID"]
                    phase, ready_all = "Pending", False
                elif p in ("probe429", "oom"):
                    n = rng.randint(40, 600)
                    reason = "OOMKilled" if p == "oom" else "Error"
                    code = 137
                    st.update(restartCount=n, lastState={"terminated": {
                        "exitCode": code, "reason": reason, "startedAt": ts(ago(rng.randint(700, 1500))),
                        "finishedAt": ts(ago(rng.randint(60, 600))), "containerID": st["containerID"]}},
                        state={"running": {"startedAt": ts(ago(rng.randint(30, 600)))}})
                    if rng.random() < 0.5:
                        st["ready"], ready_all = False, False
                elif p == "crashloop":
                    n = rng.randint(12, 300)
                    st.update(restartCount=n, ready=False, started=False, state={"waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off 5m0s restarting failed container=app pod={name}_{app.ns}(…)"}},
                        lastState={"terminated": {"exitCode": rng.choice([1, 2, 127]), "reason": "Error",
                                                  "message": "panic: config: missing key DATABASE_URL",
                                                  "startedAt": ts(ago(400)), "finishedAt": ts(ago(398)),
                                                  "containerID": st["containerID"]}})
                    ready_all = False
                elif p == "configerror":
                    st.update(state={"waiting": {"reason": "CreateContainerConfigError",
                                                 "message": f'secret "{app.name}-secrets" not found'}},
                              ready=False, started=False, imageID="")
                    del st["containerID"]
                    phase, ready_all = "Pending", False
            statuses.append(st)
        init_statuses = None
        if "initContainers" in spec:
            init_statuses = [{"name": "wait-for-db", "state": {"terminated": {
                "exitCode": 0, "reason": "Completed", "startedAt": ts(created + timedelta(seconds=1)),
                "finishedAt": ts(started), "containerID": f"containerd://{self.g.hexid(128)}{self.g.hexid(128)}"}},
                "lastState": {}, "ready": True, "restartCount": 0, "image": normalized(INIT_IMAGE[0]),
                "imageID": self.image_id(INIT_IMAGE[0], app, node), "started": False}]
        ip = self.next_pod_ip()
        msg = None if ready_all else "containers with unready status: [app]"
        conditions = [
            condition("PodReadyToStartContainers", "True", created + timedelta(seconds=2), probe=True),
            condition("Initialized", "True", started, probe=True),
            condition("Ready", "True" if ready_all else "False", started, None if ready_all else
                      "ContainersNotReady", msg, probe=True),
            condition("ContainersReady", "True" if ready_all else "False", started, None if ready_all else
                      "ContainersNotReady", msg, probe=True),
            condition("PodScheduled", "True", created, probe=True),
        ]
        status: dict[str, Any] = {"phase": phase, "conditions": conditions, "hostIP": self.node_ip[node],
                                  "hostIPs": [{"ip": self.node_ip[node]}], "podIP": ip, "podIPs": [{"ip": ip}],
                                  "startTime": ts(created)}
        if init_statuses:
            status["initContainerStatuses"] = init_statuses
        status["containerStatuses"] = statuses
        status["qosClass"] = "Burstable"
        labels = {"app": app.name, "pod-template-hash": rs_hash, "team": app.team}
        annotations = dict(tmpl["metadata"].get("annotations") or {})
        pod = {"metadata": self.meta(name, app.ns, created, labels=labels, annotations=annotations or None,
                                     generate_name=f"{rs_meta['name']}-",
                                     owner=self.owner("ReplicaSet", rs_meta["name"], rs_meta["uid"]),
                                     managed_fields=[managed("kube-controller-manager", "Update", created,
                                                             POD_CONTROLLER_FIELDS, api="v1"),
                                                     managed("kubelet", "Update", started, POD_KUBELET_FIELDS,
                                                             api="v1", subresource="status")]),
               "spec": spec, "status": status}
        if not pull_fail:
            for c in containers + spec.get("initContainers", []):
                self.note_node_image(node, c["image"], app)
        self.note_node_image(node, PAUSE_IMAGE[0], app, PAUSE_IMAGE[1])
        pod["_image"] = image
        pod["_ready"] = ready_all
        return pod

    def image_id(self, image: str, app: App, node: str) -> str:
        if app.builders and image == app.image:
            return "sha256:" + sha("local-build", image)  # imported into containerd: no repo digest
        return f"{normalized(image_name(image))}@{self.image_digest(image)}"

    def image_digest(self, image: str) -> str:
        if image.startswith(REGISTRY + "/"):
            rest = image[len(REGISTRY) + 1:]
            repo, _, tag = rest.partition(":")
            tag = tag or "latest"
            r = next((x for x in self.repos_by_name.get(repo, [])), None)
            if r is not None and tag == "latest" and r.good_tags:
                tag = r.good_tags[-1]
            return registry_tag_digest(repo, tag)
        return digest("image", image)

    def note_node_image(self, node: str, image: str, app: App, size: int | None = None) -> None:
        store = self.node_images[node]
        if image in store:
            return
        if app.builders and image == app.image:
            names = [normalized(image)]
            size = 1_200_000_000 + int(sha("sz", image)[:6], 16) % 400_000_000
        else:
            names = [f"{normalized(image_name(image))}@{self.image_digest(image)}", normalized(image)]
            size = size or 40_000_000 + int(sha("sz", image)[:6], 16) % 300_000_000
        store[image] = (names, size)

    # -- cluster ----------------------------------------------------------------------------------------
    def build_cluster(self) -> None:
        rng = self.rng
        self.repos_by_name: dict[str, list[Repo]] = {}
        for r in self.repos:
            self.repos_by_name.setdefault(r.name, []).append(r)
        deployments, replicasets, pods = [], [], []
        for app in self.apps:
            for node in app.builders:  # the locally built image sits on its builder nodes
                self.note_node_image(node, app.image, app)
            rss = self.replicasets(app)
            replicasets.extend(rss)
            for k in range(app.replicas):
                pod = self.pod(app, rss[-1], k)
                app.pods.append(pod)
            pods.extend(app.pods)
            deployments.append(self.deployment(app))
        # Orphaned ReplicaSets: their Deployment was deleted with --cascade=orphan (KS602).
        for _ in range(max(1, self.n_deploy // 500)):
            app = self.apps[rng.randrange(len(self.apps))]
            base = f"{app.name}-legacy"
            for _ in range(rng.randint(2, 3)):
                h = self.g.suffix(10)
                created = ago(86400 * rng.uniform(30, 90))
                tmpl = self.template(app, app.old_images[0] if app.old_images else app.image, h)
                tmpl["metadata"]["labels"] = {"app": base, "pod-template-hash": h}
                replicasets.append({
                    "metadata": self.meta(f"{base}-{h}", app.ns, created,
                                          labels={"app": base, "pod-template-hash": h},
                                          annotations={"deployment.kubernetes.io/revision": str(rng.randint(1, 9))},
                                          generation=2),
                    "spec": {"replicas": 0, "selector": {"matchLabels": {"app": base, "pod-template-hash": h}},
                             "template": tmpl},
                    "status": {"replicas": 0, "observedGeneration": 2}})
        daemonsets = []
        if self.ds_pods:
            ds_uid = self.g.uid()
            ds_created = ago(86400 * 300)
            ds = {"metadata": self.meta("node-exporter", "monitoring", ds_created,
                                        labels={"app.kubernetes.io/name": "node-exporter"},
                                        annotations={"deprecated.daemonset.template.generation": "3"},
                                        generation=3, uid=ds_uid),
                  "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "node-exporter"}},
                           "template": {"metadata": {"creationTimestamp": None,
                                                     "labels": {"app.kubernetes.io/name": "node-exporter"}},
                                        "spec": {"containers": [{"name": "node-exporter", "image": EXPORTER_IMAGE[0],
                                                                 "ports": [{"name": "metrics", "containerPort": 9100,
                                                                            "hostPort": 9100, "protocol": "TCP"}],
                                                                 "imagePullPolicy": "IfNotPresent"}],
                                                 "hostNetwork": True, "hostPID": True}},
                           "updateStrategy": {"type": "RollingUpdate"}, "revisionHistoryLimit": 10},
                  "status": {"currentNumberScheduled": len(self.nodes), "numberMisscheduled": 0,
                             "desiredNumberScheduled": len(self.nodes), "numberReady": len(self.nodes),
                             "observedGeneration": 3, "updatedNumberScheduled": len(self.nodes),
                             "numberAvailable": len(self.nodes)}}
            daemonsets.append(ds)
            exporter_id = f"{image_name(EXPORTER_IMAGE[0])}@{digest('image', EXPORTER_IMAGE[0])}"
            for node in self.nodes:
                name = f"node-exporter-{self.g.suffix(5)}"
                started = ago(86400 * rng.uniform(5, 60))
                pods.append({"metadata": self.meta(name, "monitoring", started,
                                                   labels={"app.kubernetes.io/name": "node-exporter",
                                                           "controller-revision-hash": "6d5c8b7f9d",
                                                           "pod-template-generation": "3"},
                                                   generate_name="node-exporter-",
                                                   owner=self.owner("DaemonSet", "node-exporter", ds_uid)),
                             "spec": {"containers": ds["spec"]["template"]["spec"]["containers"],
                                      "nodeName": node, "hostNetwork": True, "hostPID": True,
                                      "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"},
                             "status": {"phase": "Running", "hostIP": self.node_ip[node],
                                        "podIP": self.node_ip[node], "startTime": ts(started),
                                        "containerStatuses": [{
                                            "name": "node-exporter", "state": {"running": {"startedAt": ts(started)}},
                                            "lastState": {}, "ready": True, "restartCount": 0,
                                            "image": EXPORTER_IMAGE[0],
                                            "imageID": exporter_id,
                                            "started": True}],
                                        "qosClass": "BestEffort"}})
                self.node_images[node][EXPORTER_IMAGE[0]] = (
                    [f"{image_name(EXPORTER_IMAGE[0])}@{digest('image', EXPORTER_IMAGE[0])}", EXPORTER_IMAGE[0]],
                    EXPORTER_IMAGE[1])
        self.objects["Deployment"] = deployments
        self.objects["ReplicaSet"] = replicasets
        self.objects["Pod"] = pods
        self.objects["DaemonSet"] = daemonsets
        self.objects["Node"] = [self.node(n) for n in self.nodes]
        ns_names = sorted({*self.namespaces, *SYSTEM_NAMESPACES, "monitoring", "default"})
        self.objects["Namespace"] = [
            {"metadata": self.meta(n, None, ago(86400 * 400), labels={"kubernetes.io/metadata.name": n}),
             "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}} for n in ns_names]
        self.services()
        self.hpas()
        self.pdbs()
        self.monitors()
        self.config()
        self.make_events()
        self.make_logs()
        for pod in pods:
            pod.pop("_image", None)
            pod.pop("_ready", None)
        for items in self.objects.values():  # the API lists objects in etcd key order
            items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def node(self, name: str) -> dict[str, Any]:
        images = sorted(self.node_images[name].values(), key=lambda x: (-x[1], x[0][0]))[:50]
        ip = self.node_ip[name]
        created = ago(86400 * 300)
        hb = ago(40)
        conds = [{"type": t, "status": "True" if t == "Ready" else "False", "lastHeartbeatTime": ts(hb),
                  "lastTransitionTime": ts(ago(86400 * 12)), "reason": r, "message": m}
                 for t, r, m in [("MemoryPressure", "KubeletHasSufficientMemory",
                                  "kubelet has sufficient memory available"),
                                 ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                                 ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                                 ("Ready", "KubeletReady", "kubelet is posting ready status")]]
        capacity = {"cpu": "16", "ephemeral-storage": "487634952Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                    "memory": "65842312Ki", "pods": "110"}
        return {
            "metadata": self.meta(name, None, created, labels={
                "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "m6i.4xlarge",
                "topology.kubernetes.io/zone": f"eu-west-1{'abc'[int(name[-2:]) % 3]}"},
                annotations={"node.alpha.kubernetes.io/ttl": "0",
                             "volumes.kubernetes.io/controller-managed-attach-detach": "true"}),
            "spec": {"podCIDR": f"10.42.{int(name[-2:])}.0/24", "podCIDRs": [f"10.42.{int(name[-2:])}.0/24"],
                     "providerID": f"aws:///eu-west-1a/i-{sha('node', name)[:17]}"},
            "status": {"capacity": capacity, "allocatable": capacity, "conditions": conds,
                       "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                       "nodeInfo": {"machineID": sha("m", name)[:32], "systemUUID": str(uuid.UUID(sha("u", name)[:32])),
                                    "bootID": str(uuid.UUID(sha("b", name)[:32])), "kernelVersion": "6.1.112",
                                    "osImage": "Ubuntu 24.04.1 LTS", "containerRuntimeVersion": "containerd://1.7.23",
                                    "kubeletVersion": SERVER_VERSION, "kubeProxyVersion": SERVER_VERSION,
                                    "operatingSystem": "linux", "architecture": "amd64"},
                       "images": [{"names": n, "sizeBytes": s} for n, s in images]},
        }

    def services(self) -> None:
        out = []
        for app in self.apps:
            if not app.service:
                continue
            out.append(self.service(app.ns, app.name, {"app": app.name}, app.port))
        for app in self.rng.sample(self.apps, max(1, len(self.apps) // 50)):  # selectors of deleted workloads
            out.append(self.service(app.ns, f"{app.name}-legacy", {"app": f"{app.name}-legacy"}, app.port))
        for ns in self.namespaces:  # the managed database, reached through an ExternalName Service
            svc = self.service(ns, "postgres", {}, 5432)
            svc["spec"] = {"type": "ExternalName", "externalName": f"{ns}.db.internal.example",
                           "sessionAffinity": "None"}
            out.append(svc)
        self.objects["Service"] = out

    def service(self, ns: str, name: str, selector: dict[str, str], port: int) -> dict[str, Any]:
        ip = f"10.43.{self.rng.randrange(256)}.{self.rng.randrange(1, 255)}"
        return {"metadata": self.meta(name, ns, ago(86400 * self.rng.uniform(10, 300)), labels={"app": name}),
                "spec": {"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": port}],
                         "selector": selector, "clusterIP": ip, "clusterIPs": [ip], "type": "ClusterIP",
                         "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                         "internalTrafficPolicy": "Cluster"},
                "status": {"loadBalancer": {}}}

    def hpa(self, ns: str, name: str, target: str, missing: bool) -> dict[str, Any]:
        when = ago(86400 * self.rng.uniform(1, 20))
        status: dict[str, Any] = {"currentReplicas": 2, "desiredReplicas": 2}
        if missing:
            status["conditions"] = [
                condition("AbleToScale", "False", when, "FailedGetScale",
                          f'the HPA controller was unable to get the target\'s current scale: deployments.apps '
                          f'"{target}" not found')]
        else:
            status["currentMetrics"] = [{"type": "Resource", "resource": {"name": "cpu", "current": {
                "averageValue": "41m", "averageUtilization": 38}}}]
            status["conditions"] = [
                condition("AbleToScale", "True", when, "ReadyForNewScale",
                          "recommended size matches current size"),
                condition("ScalingActive", "True", when, "ValidMetricFound",
                          "the HPA was able to successfully calculate a replica count from cpu resource "
                          "utilization (percentage of request)")]
        return {"metadata": self.meta(f"{name}-hpa", ns, ago(86400 * self.rng.uniform(20, 200)),
                                      labels={"app": name}),
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": target, "apiVersion": "apps/v1"},
                         "minReplicas": 2, "maxReplicas": 10,
                         "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                             "type": "Utilization", "averageUtilization": 70}}}]},
                "status": status}

    def hpas(self) -> None:
        out = [self.hpa(a.ns, a.name, a.name, False) for a in self.apps if a.hpa]
        for app in self.rng.sample(self.apps, max(1, len(self.apps) // 150)):  # targets deleted (KS601)
            target = f"{app.name}-{self.rng.choice(['enhanced', 'old', 'v1'])}"
            self.orphan_hpa_targets.append((app.ns, target))
            out.append(self.hpa(app.ns, target, target, True))
        self.objects["HorizontalPodAutoscaler"] = out

    def pdbs(self) -> None:
        out = []
        for app in self.apps:
            if app.pdb:
                out.append(self.pdb(app.ns, app.name, {"app": app.name}))
        for app in self.rng.sample(self.apps, max(1, len(self.apps) // 500)):
            out.append(self.pdb(app.ns, f"{app.name}-old", {"app": f"{app.name}-old"}))
        self.objects["PodDisruptionBudget"] = out

    def pdb(self, ns: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
        return {"metadata": self.meta(f"{name}-pdb", ns, ago(86400 * 50), generation=1),
                "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}},
                "status": {"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 2,
                           "desiredHealthy": 1, "expectedPods": 2}}

    def monitors(self) -> None:
        out = []
        for app in self.apps:
            if app.monitor and app.service:
                out.append({"metadata": self.meta(app.name, app.ns, ago(86400 * 30), labels={"release": "prom"},
                                                  generation=1),
                            "spec": {"selector": {"matchLabels": {"app": app.name}},
                                     "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}]}})
        self.objects["ServiceMonitor"] = out
        self.objects["PrometheusRule"] = [{
            "metadata": self.meta("kube-state-alerts", "monitoring", ago(86400 * 100), labels={"release": "prom"}),
            "spec": {"groups": [{"name": "kubernetes-apps", "rules": [
                {"alert": "KubePodCrashLooping", "expr": 'max_over_time(kube_pod_container_status_waiting_reason'
                                                         '{reason="CrashLoopBackOff"}[5m]) >= 1', "for": "15m",
                 "labels": {"severity": "warning"}}]}]}}]

    def config(self) -> None:
        cms, secrets = [], []
        for ns in [*self.namespaces, "monitoring"]:
            cms.append({"metadata": self.meta("kube-root-ca.crt", ns, ago(86400 * 400),
                                              annotations={"kubernetes.io/description": "Contains a CA bundle"}),
                        "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\n" + "MIIB" * 60
                                 + "\n-----END CERTIFICATE-----\n"}})
            cms.append({"metadata": self.meta(f"{ns}-config", ns, ago(86400 * 100)),
                        "data": {"LOG_FORMAT": "json", "FEATURE_FLAGS": "checkout_v2,async_refunds",
                                 "UPSTREAM_TIMEOUT": "5s"}})
            secrets.append({"metadata": self.meta(f"{ns}-db", ns, ago(86400 * 100)), "type": "Opaque",
                            "data": {"DATABASE_PASSWORD": "c2VjcmV0LXZhbHVl", "DATABASE_USER": "YXBw"}})
        self.objects["ConfigMap"] = cms
        self.objects["Secret"] = secrets

    # -- events -------------------------------------------------------------------------------------------
    def event(self, kind: str, meta: dict[str, Any], reason: str, message: str, *, etype: str = "Normal",
              count: int = 1, first: datetime, last: datetime | None = None, component: str = "kubelet",
              host: str | None = None, field_path: str | None = None, api: str = "v1") -> dict[str, Any]:
        involved: dict[str, Any] = {"kind": kind, "namespace": meta["namespace"], "name": meta["name"],
                                    "uid": meta["uid"], "apiVersion": api, "resourceVersion": meta["resourceVersion"]}
        if field_path:
            involved["fieldPath"] = field_path
        source: dict[str, Any] = {"component": component}
        if host:
            source["host"] = host
        return {"metadata": {"name": f"{meta['name']}.{self.g.hexid(64)[:16]}", "namespace": meta["namespace"],
                             "uid": self.g.uid(), "resourceVersion": self.g.next_rv(), "creationTimestamp": ts(first)},
                "involvedObject": involved, "reason": reason, "message": message, "source": source,
                "firstTimestamp": ts(first), "lastTimestamp": ts(last or first), "count": count, "type": etype,
                "eventTime": None, "reportingComponent": component, "reportingInstance": host or ""}

    def scheduled(self, pod: dict[str, Any]) -> dict[str, Any]:
        m = pod["metadata"]
        when = datetime.fromisoformat(m["creationTimestamp"].replace("Z", "+00:00"))
        return {"metadata": {"name": f"{m['name']}.{self.g.hexid(64)[:16]}", "namespace": m["namespace"],
                             "uid": self.g.uid(), "resourceVersion": self.g.next_rv(), "creationTimestamp": ts(when)},
                "involvedObject": {"kind": "Pod", "namespace": m["namespace"], "name": m["name"], "uid": m["uid"],
                                   "apiVersion": "v1", "resourceVersion": m["resourceVersion"]},
                "reason": "Scheduled",
                "message": f"Successfully assigned {m['namespace']}/{m['name']} to {pod['spec']['nodeName']}",
                "source": {}, "firstTimestamp": None, "lastTimestamp": None, "type": "Normal",
                "eventTime": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.rng.randrange(10**6):06d}Z",
                "action": "Binding", "reportingComponent": "default-scheduler",
                "reportingInstance": "default-scheduler-control-plane"}

    def problem_events_for(self, app: App) -> list[dict[str, Any]]:
        rng, out = self.rng, []
        p = app.problem
        for pod in app.pods:
            m, node = pod["metadata"], pod["spec"]["nodeName"]
            image = pod["_image"]
            fp = "spec.containers{app}"
            kw = {"host": node, "field_path": fp}
            waiting = (pod["status"]["containerStatuses"][0]["state"].get("waiting") or {}).get("reason")
            if waiting in ("ImagePullBackOff", "ErrImagePull", "ErrImageNeverPull"):
                n = rng.randint(10, 500)
                first = ago(rng.randint(3600, 86400))
                last = ago(rng.randint(5, 300))
                if waiting == "ErrImageNeverPull":
                    out.append(self.event("Pod", m, "ErrImageNeverPull",
                                          f'Container image "{image}" is not present with pull policy of Never',
                                          etype="Warning", count=n, first=first, last=last, **kw))
                    continue
                missing = f"docker.io/library/{image}" if "/" not in image else image
                out.append(self.event("Pod", m, "Pulling", f'Pulling image "{image}"', count=n // 20 + 1,
                                      first=first, last=last, **kw))
                out.append(self.event("Pod", m, "Failed", f'Failed to pull image "{image}": failed to resolve '
                                      f'reference "{missing}": {missing}: not found', etype="Warning",
                                      count=n // 20 + 1, first=first, last=last, **kw))
                out.append(self.event("Pod", m, "Failed", "Error: ErrImagePull", etype="Warning", count=n // 20 + 1,
                                      first=first, last=last, **kw))
                out.append(self.event("Pod", m, "BackOff", f'Back-off pulling image "{image}"', count=n,
                                      first=first, last=last, **kw))
                out.append(self.event("Pod", m, "Failed", "Error: ImagePullBackOff", etype="Warning", count=n,
                                      first=first, last=last, **kw))
            elif p in ("probe429", "oom", "crashloop"):
                restarts = pod["status"]["containerStatuses"][0]["restartCount"]
                first = ago(rng.randint(86400 * 2, 86400 * 5))
                last = ago(rng.randint(10, 600))
                if p == "probe429":
                    out.append(self.event("Pod", m, "Unhealthy", "Liveness probe failed: HTTP probe failed with "
                                          "statuscode: 429", etype="Warning", count=restarts * 3, first=first,
                                          last=last, **kw))
                    out.append(self.event("Pod", m, "Unhealthy", "Readiness probe failed: HTTP probe failed with "
                                          "statuscode: 429", etype="Warning", count=restarts * 4, first=first,
                                          last=last, **kw))
                    out.append(self.event("Pod", m, "Killing", "Container app failed liveness probe, will be "
                                          "restarted", count=restarts, first=first, last=last, **kw))
                out.append(self.event("Pod", m, "BackOff", f"Back-off restarting failed container app in pod "
                                      f"{m['name']}_{m['namespace']}({m['uid']})", etype="Warning",
                                      count=restarts * 2, first=first, last=last, **kw))
                out.append(self.event("Pod", m, "Pulled", f'Container image "{image}" already present on machine',
                                      count=restarts, first=first, last=last, **kw))
                out.append(self.event("Pod", m, "Created", "Created container app", count=restarts, first=first,
                                      last=last, **kw))
                out.append(self.event("Pod", m, "Started", "Started container app", count=restarts, first=first,
                                      last=last, **kw))
            elif p == "configerror":
                out.append(self.event("Pod", m, "Failed", f'Error: secret "{app.name}-secrets" not found',
                                      etype="Warning", count=rng.randint(50, 400), first=ago(86400),
                                      last=ago(30), **kw))
        return out

    def make_events(self) -> None:
        rng = self.rng
        problem: list[dict[str, Any]] = []
        for app in self.apps:
            if app.problem:
                problem.extend(self.problem_events_for(app))
        hpas = {(h["metadata"]["namespace"], h["spec"]["scaleTargetRef"]["name"]): h
                for h in self.objects["HorizontalPodAutoscaler"]}
        for ns, target in self.orphan_hpa_targets:
            h = hpas[(ns, target)]
            count = rng.randint(100, 800)
            last = ago(rng.randint(5, 300))
            problem.append(self.event("HorizontalPodAutoscaler", h["metadata"], "FailedGetScale",
                                      f'deployments.apps "{target}" not found', etype="Warning", count=count,
                                      first=last - timedelta(seconds=15 * count), last=last,
                                      component="horizontal-pod-autoscaler", api="autoscaling/v2"))
        rng.shuffle(problem)
        events = problem[: self.n_events]
        pods = self.objects["Pod"]
        deps = self.objects["Deployment"]
        rss = self.objects["ReplicaSet"]
        live_hpas = [h for h in self.objects["HorizontalPodAutoscaler"] if "currentMetrics" in h["status"]]
        while len(events) < self.n_events:
            r = rng.random()
            if r < 0.55 and pods:
                pod = rng.choice(pods)
                m, node = pod["metadata"], pod["spec"]["nodeName"]
                c = pod["spec"]["containers"][0]
                kw = {"host": node, "field_path": f"spec.containers{{{c['name']}}}"}
                when = datetime.fromisoformat(m["creationTimestamp"].replace("Z", "+00:00"))
                kind = rng.choice(["Scheduled", "Pulled", "Created", "Started", "Pulling"])
                if kind == "Scheduled":
                    events.append(self.scheduled(pod))
                elif kind == "Pulled":
                    events.append(self.event("Pod", m, "Pulled", f'Container image "{c["image"]}" already present '
                                             "on machine", first=when, **kw))
                elif kind == "Pulling":
                    events.append(self.event("Pod", m, "Pulled", f'Successfully pulled image "{c["image"]}" in '
                                             f'{rng.randint(300, 9000)}ms ({rng.randint(300, 9000)}ms including '
                                             f'waiting). Image size: {rng.randint(10**7, 4 * 10**8)} bytes.',
                                             first=when, **kw))
                else:
                    events.append(self.event("Pod", m, kind, f"{kind} container {c['name']}", first=when, **kw))
            elif r < 0.65 and pods:
                pod = rng.choice(pods)
                m = pod["metadata"]
                reason = rng.choice(["statuscode: 503", 'Get "http://{ip}:8080/ready": context deadline exceeded',
                                     'Get "http://{ip}:8080/ready": dial tcp {ip}:8080: connect: connection refused'])
                events.append(self.event("Pod", m, "Unhealthy", "Readiness probe failed: " + (
                    "HTTP probe failed with " + reason if reason.startswith("status") else reason.format(
                        ip=pod["status"]["podIP"])), etype="Warning", count=rng.randint(1, 30),
                    first=ago(rng.randint(600, 7200)), last=ago(rng.randint(5, 600)), host=pod["spec"]["nodeName"],
                    field_path="spec.containers{app}"))
            elif r < 0.72 and pods:
                pod = rng.choice(pods)
                m = pod["metadata"]
                cname = pod["spec"]["containers"][0]["name"]
                events.append(self.event("Pod", m, "Killing", f"Stopping container {cname}",
                                         first=ago(rng.randint(60, 3600)), host=pod["spec"]["nodeName"],
                                         field_path="spec.containers{app}"))
            elif r < 0.85 and deps:
                d = rng.choice(deps)
                m = d["metadata"]
                events.append(self.event("Deployment", m, "ScalingReplicaSet", f"Scaled up replica set {m['name']}-"
                                         f"{self.g.suffix(10)} to {d['spec']['replicas']} from 0",
                                         first=ago(rng.randint(60, 3600)), component="deployment-controller",
                                         api="apps/v1"))
            elif r < 0.95 and rss:
                rs = rng.choice(rss)
                m = rs["metadata"]
                events.append(self.event("ReplicaSet", m, "SuccessfulCreate", f"Created pod: {m['name']}-"
                                         f"{self.g.suffix(5)}", first=ago(rng.randint(60, 3600)),
                                         component="replicaset-controller", api="apps/v1"))
            elif live_hpas:
                h = rng.choice(live_hpas)
                n = rng.randint(2, 10)
                events.append(self.event("HorizontalPodAutoscaler", h["metadata"], "SuccessfulRescale",
                                         f"New size: {n}; reason: cpu resource utilization (percentage of request) "
                                         "above target", first=ago(rng.randint(60, 3600)),
                                         component="horizontal-pod-autoscaler", api="autoscaling/v2"))
            else:
                break
        self.objects["Event"] = events

    # -- logs ---------------------------------------------------------------------------------------------
    def make_logs(self) -> None:
        rng = self.rng
        running = [p for p in self.objects["Pod"]
                   if p["status"]["phase"] == "Running" and "pod-template-hash" in p["metadata"]["labels"]]
        chosen = rng.sample(running, min(self.n_log_pods, len(running)))
        otel_apps = {(a.ns, a.name) for a in self.apps if a.otel}
        for pod in chosen:
            m = pod["metadata"]
            app_name = m["labels"]["app"]
            flood = rng.random() < 0.25
            otel = (m["namespace"], app_name) in otel_apps
            lines = self.log_tail(m["name"], flood, otel)
            self.logs[f"{m['namespace']}/{m['name']}/app"] = "\n".join(lines) + "\n"

    def log_tail(self, pod: str, flood: bool, otel: bool) -> list[str]:
        rng = self.rng
        n = self.log_lines + rng.randint(-20, 20)
        t = COLLECTED_AT - timedelta(seconds=n * 4)
        style = rng.choice(["py", "go", "json"])
        out = []
        flood_msg = (f"Transient error StatusCode.UNAVAILABLE encountered while exporting traces to {OTEL_HOST}:4317, "
                     "retrying in {d}s." if otel or rng.random() < 0.5 else
                     "failed to refresh upstream pricing-api: dial tcp 10.43.{a}.{b}:80: connect: connection refused")
        for _ in range(n):
            t += timedelta(milliseconds=rng.randint(50, 8000))
            if flood and rng.random() < 0.7:
                level, msg = "WARNING", flood_msg.format(d=rng.choice([1, 2, 4, 8, 16, 32]), a=rng.randrange(256),
                                                         b=rng.randrange(256))
            else:
                level, msg = rng.choice([
                    ("INFO", f'"GET /api/v1/items/{rng.randint(1, 99999)} HTTP/1.1" 200 {rng.randint(80, 9000)} '
                             f'{rng.randint(1, 900)}ms'),
                    ("INFO", f'"POST /api/v1/orders HTTP/1.1" 201 {rng.randint(80, 900)} {rng.randint(5, 900)}ms'),
                    ("INFO", f"processed batch {rng.randint(1, 10**6)} with {rng.randint(1, 500)} records in "
                             f"{rng.randint(1, 3000)}ms"),
                    ("DEBUG", f"cache hit ratio {rng.random():.3f} for key space orders:{rng.randint(1, 40)}"),
                    ("WARNING", f"slow query took {rng.randint(500, 5000)}ms: SELECT * FROM orders WHERE id = "
                                f"{rng.randint(1, 10**6)}"),
                    ("ERROR", f"request {uuid.UUID(int=rng.getrandbits(128), version=4)} failed: upstream timeout "
                              f"after {rng.randint(1, 30)}s"),
                ])
            stamp = t.strftime("%Y-%m-%d %H:%M:%S")
            ms = t.microsecond // 1000
            if style == "py":
                out.append(f"{stamp},{ms:03d} - app.{rng.choice(['api', 'worker', 'db'])} - {level} - {msg}")
            elif style == "go":
                out.append(f"{t.strftime('%Y-%m-%dT%H:%M:%S')}.{ms:03d}Z\t{level.lower()}\t{msg}")
            else:
                out.append(orjson.dumps({"ts": f"{t.strftime('%Y-%m-%dT%H:%M:%S')}.{ms:03d}Z", "level": level.lower(),
                                         "msg": msg, "pod": pod}).decode())
        return out

    # -- repo -----------------------------------------------------------------------------------------------
    def repo_files(self) -> dict[str, str]:
        """Relative path → text. Exactly ``n_manifests`` YAML files (plus Dockerfiles and a workflow)."""
        rng = self.rng
        M = self.n_manifests
        files: dict[str, str] = {}
        if M <= 0:
            return files
        n_invalid = 1 if M >= 10 else 0
        n_dup = max(1, M * 3 // 100) if M >= 4 else 0
        n_apps = M - n_invalid - n_dup
        variants = [a for a in self.apps if a.variant_of]
        by_key = {(a.ns, a.name): a for a in self.apps}
        picked: list[App] = []
        seen: set[int] = set()
        for v in variants:
            base = by_key.get((v.ns, v.variant_of or ""))
            for a in (base, v):
                if a is not None and a.index not in seen and len(picked) < n_apps:
                    picked.append(a)
                    seen.add(a.index)
        rest = [a for a in self.apps if a.index not in seen]
        rng.shuffle(rest)
        picked += rest[: max(0, n_apps - len(picked))]
        orphan_hpas = dict(self.orphan_hpa_targets)
        for i, app in enumerate(picked):
            drift = rng.random() < 0.05
            files[f"apps/{app.ns}/{app.name}.yaml"] = self.app_yaml(app, drift, orphan_hpas if i % 40 == 0 else None)
        for app in picked[:n_dup]:  # copies made instead of overlays (KS201)
            image = app.old_images[0] if app.old_images else f"{app.repo.name}:fixed"
            files[f"legacy/{app.ns}-{app.name}-deployment.yaml"] = (
                f"# Old copy of {app.name}, kept 'just in case'\n" + self.deployment_yaml(app, image, app.replicas + 1))
        if n_invalid:
            files["apps/broken/half-edited.yaml"] = (
                "# work in progress\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: half-edited\n"
                "spec:\n  template:\n    spec:\n      containers: [\n        {name: app, image: x\n")
        # Dockerfiles (not YAML) and one CI workflow that builds only some of them (KS302).
        for app in picked[: max(1, len(picked) // 20)]:
            files[f"services/{app.repo.name}/Dockerfile"] = (
                f"FROM python:3.12-slim\nWORKDIR /app\nCOPY . .\nRUN pip install -r requirements.txt\n"
                f'CMD ["python", "-m", "{app.repo.name.replace("-", "_")}"]\n')
        built = sorted({f"services/{a.repo.name}" for a in picked[: max(1, len(picked) // 40)]})
        steps = "\n".join(f"      - run: docker build -t {REGISTRY}/{d.rsplit('/', 1)[1]}:${{{{ github.sha }}}} {d}/"
                          for d in built)
        self.workflow = ("name: build\non:\n  push:\n    branches: [main]\njobs:\n  build:\n"
                         "    runs-on: ubuntu-latest\n"
                         f"    steps:\n      - uses: actions/checkout@v4\n{steps}\n")
        return files

    def deployment_yaml(self, app: App, image: str, replicas: int) -> str:
        c: dict[str, Any] = {"name": "app", "image": image,
                             "ports": [{"name": "http", "containerPort": app.port}],
                             "env": [{"name": "APP_ENV", "value": "production"},
                                     {"name": "DATABASE_HOST", "value": f"postgres.{app.ns}.svc.cluster.local"}],
                             "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                           "limits": {"memory": "512Mi"}},
                             "livenessProbe": {"httpGet": {"path": "/health", "port": app.port}},
                             "readinessProbe": {"httpGet": {"path": "/ready", "port": app.port}}}
        if app.pull_policy != "IfNotPresent":
            c["imagePullPolicy"] = app.pull_policy
        if app.otel:
            c["env"].append({"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": f"http://{OTEL_HOST}:4317"})
        doc = {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": app.name, "namespace": app.ns, "labels": {"app": app.name, "team": app.team}},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app.name}},
                        "template": {"metadata": {"labels": {"app": app.name, "team": app.team}},
                                     "spec": {"containers": [c]}}}}
        text = yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False, default_flow_style=False)
        comment = "# desired state; replicas are managed by the HPA when one exists"
        return text.replace("\nspec:\n", f"\n{comment}\nspec:\n", 1)

    def app_yaml(self, app: App, drift: bool, orphan_hpas: dict[str, str] | None) -> str:
        image = app.image
        if drift:  # the repo says one thing, the cluster runs another (KS203)
            image = app.old_images[0] if app.old_images else app.image + "-rc1"
        docs = [f"# {app.name}: owned by team {app.team}\n# Source of truth for the {app.ns} namespace; "
                f"apply with kubectl apply -f\n" + self.deployment_yaml(app, image, app.replicas)]
        if app.service:
            svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": app.name, "namespace": app.ns},
                   "spec": {"selector": {"app": app.name},
                            "ports": [{"name": "http", "port": 80, "targetPort": app.port}]}}
            docs.append("# ClusterIP service in front of the pods\n"
                        + yaml.dump(svc, Dumper=yaml.CSafeDumper, sort_keys=False))
        if app.hpa:
            docs.append(self.hpa_yaml(app.ns, app.name, app.name))
        if orphan_hpas:
            ns, target = next(iter(orphan_hpas.items()))
            docs.append("# TODO: remove once the migration is done\n" + self.hpa_yaml(ns, target, target))
        return "---\n".join(docs)

    def hpa_yaml(self, ns: str, name: str, target: str) -> str:
        doc = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": f"{name}-hpa", "namespace": ns},
               "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                        "minReplicas": 2, "maxReplicas": 10,
                        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                            "type": "Utilization", "averageUtilization": 70}}}]}}
        return "# scale on CPU\n" + yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False)


# ------------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------------

LIST_TYPES: dict[str, tuple[str, str]] = {  # kind → (file stem, apiVersion)
    "Namespace": ("namespaces", "v1"), "Node": ("nodes", "v1"), "Pod": ("pods", "v1"),
    "Service": ("services", "v1"), "ConfigMap": ("configmaps", "v1"), "Secret": ("secrets", "v1"),
    "Event": ("events", "v1"),
    "Deployment": ("deployments.apps", "apps/v1"), "ReplicaSet": ("replicasets.apps", "apps/v1"),
    "DaemonSet": ("daemonsets.apps", "apps/v1"),
    "HorizontalPodAutoscaler": ("horizontalpodautoscalers.autoscaling", "autoscaling/v2"),
    "PodDisruptionBudget": ("poddisruptionbudgets.policy", "policy/v1"),
    "ServiceMonitor": ("servicemonitors.monitoring.coreos.com", "monitoring.coreos.com/v1"),
    "PrometheusRule": ("prometheusrules.monitoring.coreos.com", "monitoring.coreos.com/v1"),
}


def _write_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")


def generate(out_dir: Path, pods: int = 20000, deployments: int = 5000, events: int = 50000, manifests: int = 2000,
             seed: int = 1, *, namespaces: int | None = None, nodes: int | None = None, repos: int | None = None,
             tags_per_repo: int = 20, log_pods: int | None = None, log_lines: int = 200) -> None:
    """Write ``out_dir/bundle`` (a kubeshape bundle) and ``out_dir/repo`` (a manifests repository).

    ``pods``, ``deployments``, ``events`` and ``manifests`` (YAML files) are exact counts; ``pods`` must be at
    least ``deployments`` for every Deployment to run a pod. ``namespaces`` (default ~50), ``nodes`` (~20),
    ``repos`` (registry repositories, ~500) and ``log_pods`` (~200) scale with the counts when not given.
    """
    if deployments < 1 or pods < 0 or events < 0 or manifests < 0:
        raise ValueError("deployments must be ≥ 1 and the other counts ≥ 0")
    b = Builder(pods, deployments, events, manifests, seed, namespaces, nodes, repos, tags_per_repo, log_pods,
                log_lines)
    b.make_repos()
    b.make_apps()
    b.build_cluster()
    repo_files = b.repo_files()

    out_dir = Path(out_dir)
    bundle, repo = out_dir / "bundle", out_dir / "repo"
    for d in (bundle, repo):
        if d.exists():
            shutil.rmtree(d)
    list_rv = b.g.next_rv()
    resources: dict[str, str] = {}
    for kind, items in b.objects.items():
        stem, api = LIST_TYPES[kind]
        rel = f"resources/{stem}.json"
        _write_json(bundle / rel, {"kind": f"{kind}List", "apiVersion": api,
                                   "metadata": {"resourceVersion": list_rv}, "items": items})
        resources[kind] = rel
    for key, text in b.logs.items():
        p = bundle / "logs" / f"{key}.log"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    _write_json(bundle / "registry.json", b.registry_json())
    _write_json(bundle / "kubeshape-bundle.json", {
        "apiVersion": "kubeshape.io/v1", "kind": "Bundle", "formatVersion": 1, "collectedAt": ts(COLLECTED_AT),
        "cluster": {"name": CLUSTER, "serverVersion": SERVER_VERSION},
        "namespaces": sorted({*b.namespaces, "monitoring"}), "resources": dict(sorted(resources.items())),
        "blindSpots": [],
    })
    for rel, text in repo_files.items():
        p = repo / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    wf = repo / ".github" / "workflows" / "build.yml"
    wf.parent.mkdir(parents=True, exist_ok=True)
    wf.write_text(b.workflow, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate a large kubeshape bundle and manifests repo "
                                                 "(OUT/bundle, OUT/repo) for benchmarks.")
    parser.add_argument("out", type=Path, help="output directory (OUT/bundle and OUT/repo are replaced)")
    parser.add_argument("--pods", type=int, default=20000)
    parser.add_argument("--deployments", type=int, default=5000)
    parser.add_argument("--events", type=int, default=50000)
    parser.add_argument("--manifests", type=int, default=2000, help="YAML files in the repo")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--namespaces", type=int, default=None)
    parser.add_argument("--nodes", type=int, default=None)
    parser.add_argument("--repos", type=int, default=None, help="registry repositories")
    parser.add_argument("--tags-per-repo", type=int, default=20)
    parser.add_argument("--log-pods", type=int, default=None)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    generate(args.out, args.pods, args.deployments, args.events, args.manifests, args.seed,
             namespaces=args.namespaces, nodes=args.nodes, repos=args.repos, tags_per_repo=args.tags_per_repo,
             log_pods=args.log_pods)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out}/bundle and {args.out}/repo ({size / 2**20:.0f} MiB) in "
          f"{time.perf_counter() - start:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
