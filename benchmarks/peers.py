#!/usr/bin/env python3
"""kubeshape side by side with kube-score and k8sgpt, each run as a user runs it, in one run of this script.

    nice -n 10 python benchmarks/peers.py                 # everything, best of 3 (≈ 2 min once the peers are built)
    python benchmarks/peers.py --skip-live --files 500     # lint and start-up only (no test bed)
    python benchmarks/peers.py --skip-lint --runs 5        # live and start-up only
    python benchmarks/peers.py --keep /tmp/ks-peers        # generate the repository in /tmp/ks-peers/repo, keep it

The peers are built from their Go modules and cached by version like the test bed's binaries
(``testbed/build.sh kube-score k8sgpt``; the first k8sgpt build takes minutes). Every command runs once untimed
(warm-up), then ``--runs`` times; the best wall time counts. Rows:

* lint: ``kubeshape lint DIR`` vs ``kube-score score FILE...`` on the same generated plain-manifest repository
  (``--files`` YAML files: Deployments, StatefulSets, Services, Ingresses, HPAs, ...), with each tool's
  default output and with JSON output; wall time and files/s.
* live: on the test bed's homelab scenario (control plane, kwok nodes, registry, started here),
  ``kubeshape doctor --kubeconfig K -o json`` (alone, and with ``--registry``) vs
  ``k8sgpt analyze --explain=false --kubeconfig K``; wall time and the API requests each run made, counted by
  the apiserver's own ``apiserver_request_total`` (see ``RequestCounter``).
* start-up: ``kubeshape version`` vs ``kube-score version`` vs ``k8sgpt version``.

kubeshape gets a bytecode cache of its own, as an installed package has (see ``kubeshape_env``). Targets: lint ≤ 3×
kube-score's wall; live doctor ≤ 2× k8sgpt's wall. Prints one table and a verdict per target; exits 0 whenever it
could measure (it reports, it does not gate).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the testbed package lives at the repo root

from testbed.binaries import binary, cache_dir, versions  # noqa: E402

HOMELAB_REGISTRY = "100.81.76.55:30500"  # the registry address the homelab scenario's images name
LINT_TARGET, LIVE_TARGET = 3.0, 2.0

# ----------------------------------------------------------------------------------------------------------
# The plain-manifest repository
# ----------------------------------------------------------------------------------------------------------

# namespace → (app, upstream image repository without registry, container port)
CATALOG: dict[str, list[tuple[str, str, int]]] = {
    "media": [("jellyfin", "jellyfin/jellyfin", 8096), ("sonarr", "home-operations/sonarr", 8989),
              ("radarr", "home-operations/radarr", 7878), ("prowlarr", "home-operations/prowlarr", 9696),
              ("bazarr", "home-operations/bazarr", 6767), ("qbittorrent", "home-operations/qbittorrent", 8080),
              ("overseerr", "sct/overseerr", 5055), ("tautulli", "home-operations/tautulli", 8181)],
    "home-automation": [("home-assistant", "home-operations/home-assistant", 8123),
                        ("zigbee2mqtt", "koenkk/zigbee2mqtt", 8080), ("mosquitto", "eclipse-mosquitto", 1883),
                        ("node-red", "nodered/node-red", 1880), ("esphome", "esphome/esphome", 6052),
                        ("frigate", "blakeblackshear/frigate", 5000)],
    "monitoring": [("grafana", "grafana/grafana", 3000), ("loki", "grafana/loki", 3100),
                   ("alertmanager", "prometheus/alertmanager", 9093), ("uptime-kuma", "louislam/uptime-kuma", 3001),
                   ("blackbox-exporter", "prometheus/blackbox-exporter", 9115), ("gatus", "twin/gatus", 8080)],
    "ai": [("ollama", "ollama/ollama", 11434), ("open-webui", "open-webui/open-webui", 8080),
           ("whisper", "family/whisper", 9000), ("piper", "rhasspy/wyoming-piper", 10200),
           ("family-assistant", "family/family-assistant", 8001), ("litellm", "berriai/litellm", 4000)],
    "tools": [("paperless", "paperless-ngx/paperless-ngx", 8000), ("vaultwarden", "vaultwarden/server", 80),
              ("homepage", "gethomepage/homepage", 3000), ("syncthing", "syncthing/syncthing", 8384),
              ("gitea", "gitea/gitea", 3000), ("n8n", "n8nio/n8n", 5678), ("immich-server", "immich-app/immich-server",
                                                                             2283),
              ("nextcloud", "library/nextcloud", 80)],
    "network": [("adguard-home", "adguard/adguardhome", 3000), ("cloudflared", "cloudflare/cloudflared", 2000),
                ("unifi", "jacobalberty/unifi", 8443), ("external-dns", "external-dns/external-dns", 7979)],
}
DATABASES = [("postgres", "library/postgres", 5432), ("redis", "library/redis", 6379),
             ("mariadb", "library/mariadb", 3306)]
OWN_REGISTRY = "registry.home.arpa:5000"  # where the homelab's own images are pushed
OWN_APPS = {"whisper", "family-assistant"}


@dataclass
class _App:
    ns: str
    name: str
    image: str
    port: int
    stateful: bool
    rng: random.Random
    files: list[tuple[str, str]] = field(default_factory=list)


def _dump(doc: dict[str, Any], comment: str | None = None) -> str:
    text = yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False, default_flow_style=False)
    return (f"# {comment}\n" if comment else "") + text


def _join(*docs: str) -> str:
    # "\n---\n" exactly: kube-score splits files on that byte sequence, not with a YAML parser.
    return "---\n".join(docs)


def _image(app: _App, upstream: str) -> str:
    r = app.rng.random()
    if app.name in OWN_APPS:
        return f"{OWN_REGISTRY}/{app.name}:main-{app.rng.getrandbits(28):07x}"
    version = f"{app.rng.randint(1, 12)}.{app.rng.randint(0, 30)}.{app.rng.randint(0, 9)}"
    if r < 0.06:
        return f"ghcr.io/{upstream}:latest"  # KS103, and kube-score's "Image with latest tag"
    if r < 0.12:
        return f"{upstream.removeprefix('library/')}:{version}"  # unqualified: KS101
    if r < 0.15:
        return f"ghcr.io/{upstream}"  # no tag: KS103
    if upstream.startswith("library/"):
        return f"docker.io/{upstream}:{version}"
    return f"ghcr.io/{upstream}:{version}"


def _labels(app: _App) -> dict[str, str]:
    return {"app.kubernetes.io/name": app.name, "app.kubernetes.io/instance": app.name,
            "app.kubernetes.io/part-of": app.ns}


def _container(app: _App, dep_env: list[dict[str, str]]) -> dict[str, Any]:
    rng = app.rng
    c: dict[str, Any] = {"name": app.name, "image": app.image}
    if rng.random() < 0.03:
        c["imagePullPolicy"] = "Never"  # KS102
    elif rng.random() < 0.5:
        c["imagePullPolicy"] = "IfNotPresent"
    c["ports"] = [{"name": "http", "containerPort": app.port, "protocol": "TCP"}]
    c["env"] = [{"name": "TZ", "value": "Europe/Madrid"}, *dep_env]
    if rng.random() < 0.4:
        c["envFrom"] = [{"configMapRef": {"name": f"{app.name}-config"}}]
    if rng.random() < 0.7:  # the rest: no resources at all
        res: dict[str, Any] = {"requests": {"cpu": f"{rng.choice([10, 50, 100, 250])}m",
                                            "memory": f"{rng.choice([64, 128, 256, 512])}Mi"}}
        if rng.random() < 0.6:
            res["limits"] = {"memory": f"{rng.choice([256, 512, 1024, 2048])}Mi"}
        c["resources"] = res
    if rng.random() < 0.65:
        path = rng.choice(["/health", "/healthz", "/ping", "/"])
        c["livenessProbe"] = {"httpGet": {"path": path, "port": app.port}, "periodSeconds": 10}
        # 4 in 5 use the same probe for both, which kube-score reports
        c["readinessProbe"] = {"httpGet": {"path": path, "port": app.port},
                               "periodSeconds": 5 if rng.random() < 0.2 else 10}
    if rng.random() < 0.5:
        c["securityContext"] = {"runAsNonRoot": True, "runAsUser": 1000, "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": rng.random() < 0.5,
                                "capabilities": {"drop": ["ALL"]}}
    if app.stateful or rng.random() < 0.3:
        c["volumeMounts"] = [{"name": "data", "mountPath": "/data" if not app.stateful else "/var/lib/data"}]
    return c


def _workload(app: _App) -> dict[str, Any]:
    rng = app.rng
    env: list[dict[str, str]] = []
    if rng.random() < 0.35:
        db = rng.choice(DATABASES)
        # 1 in 8 points at a database Service that the repository never defines (KS701)
        db_ns = "databases" if rng.random() > 0.125 else app.ns
        env.append({"name": "DATABASE_HOST", "value": f"{db[0]}.{db_ns}.svc.cluster.local"})
    if rng.random() < 0.2:
        env.append({"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector.monitoring.svc:4317"})
    spec: dict[str, Any] = {
        "replicas": 1 if app.stateful or rng.random() < 0.6 else rng.randint(2, 3),
        "selector": {"matchLabels": {"app.kubernetes.io/name": app.name}},
        "template": {"metadata": {"labels": _labels(app)},
                     "spec": {"containers": [_container(app, env)]}},
    }
    pod = spec["template"]["spec"]
    if rng.random() < 0.3:
        pod["securityContext"] = {"fsGroup": 1000, "fsGroupChangePolicy": "OnRootMismatch"}
    if app.stateful:
        spec["serviceName"] = app.name
        spec["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
            "resources": {"requests": {"storage": f"{rng.choice([1, 5, 10, 20])}Gi"}}}}]
    elif "volumeMounts" in pod["containers"][0]:
        pod["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": f"{app.name}-data"}}]
    else:
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}}
    if rng.random() < 0.15:
        pod["nodeSelector"] = {"kubernetes.io/hostname": rng.choice(["pesubuntu", "asuna", "node-a"])}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet" if app.stateful else "Deployment",
            "metadata": {"name": app.name, "namespace": app.ns, "labels": _labels(app)}, "spec": spec}


def _service(app: _App) -> dict[str, Any]:
    selector = {"app.kubernetes.io/name": app.name}
    if app.rng.random() < 0.03:
        selector = {"app": app.name}  # a label the pods do not carry: selects nothing (KS604)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": app.name, "namespace": app.ns, "labels": _labels(app)},
            "spec": {"type": "ClusterIP", "selector": selector,
                     "ports": [{"name": "http", "port": 80 if app.port != 80 else 8080, "targetPort": "http",
                                "protocol": "TCP"}]}}


def _files_of(app: _App, workload: dict[str, Any]) -> list[tuple[str, str]]:
    """The app's files, most important first: ``(relative path, text)``."""
    rng, base, ns, name = app.rng, f"apps/{app.ns}/{app.name}", app.ns, app.name
    service = _service(app)
    files: list[tuple[str, str]] = []
    if rng.random() < 0.1:  # workload and Service in one multi-document file
        files.append((f"{base}/app.yaml", _join(_dump(workload, f"{name}: {workload['kind']} and Service"),
                                                _dump(service))))
    else:
        files.append((f"{base}/{workload['kind'].lower()}.yaml", _dump(workload, f"{name} ({ns})")))
        if rng.random() < 0.85:
            files.append((f"{base}/service.yaml", _dump(service)))
    if rng.random() < 0.5:
        files.append((f"{base}/configmap.yaml", _dump({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-config", "namespace": ns},
            "data": {"LOG_LEVEL": rng.choice(["info", "debug", "warning"]), "PUBLIC_URL": f"https://{name}.home.arpa",
                     "config.yaml": f"server:\n  port: {app.port}\n  metrics: {str(rng.random() < 0.5).lower()}\n"}},
            "non-secret settings; secrets come from the cluster")))
    if rng.random() < 0.4:
        files.append((f"{base}/ingress.yaml", _dump({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns,
                         "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt-production"}},
            "spec": {"ingressClassName": rng.choice(["nginx", "traefik"]),
                     "tls": [{"hosts": [f"{name}.home.arpa"], "secretName": f"{name}-tls"}],
                     "rules": [{"host": f"{name}.home.arpa", "http": {"paths": [{
                         "path": "/", "pathType": "Prefix",
                         "backend": {"service": {"name": name, "port": {"name": "http"}}}}]}}]}})))
    if workload["kind"] == "Deployment" and "volumes" in workload["spec"]["template"]["spec"]:
        files.append((f"{base}/pvc.yaml", _dump({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": f"{name}-data", "namespace": ns},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                     "resources": {"requests": {"storage": f"{rng.choice([1, 2, 5, 10])}Gi"}}}})))
    if rng.random() < 0.15:
        target = name if rng.random() > 0.1 else f"{name}-v2"  # 1 in 10 scales a workload that is gone (KS601)
        files.append((f"{base}/hpa.yaml", _dump({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": workload["kind"], "name": target},
                     "minReplicas": 1, "maxReplicas": rng.randint(3, 6),
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization", "averageUtilization": 75}}}]}}, "scale on CPU")))
    if rng.random() < 0.15:
        files.append((f"{base}/pdb.yaml", _dump({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": ns},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": name}}}})))
    if rng.random() < 0.2:
        files.append((f"{base}/networkpolicy.yaml", _dump({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns},
            "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
                     "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                         "kubernetes.io/metadata.name": "network"}}}],
                         "ports": [{"port": app.port, "protocol": "TCP"}]}]}})))
    if rng.random() < 0.1:
        files.append((f"{base}/backup-cronjob.yaml", _dump({
            "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": f"{name}-backup", "namespace": ns},
            "spec": {"schedule": f"{rng.randint(0, 59)} {rng.randint(1, 5)} * * *", "concurrencyPolicy": "Forbid",
                     "jobTemplate": {"spec": {"backoffLimit": 2, "template": {"spec": {
                         "restartPolicy": "OnFailure",
                         "containers": [{"name": "backup", "image": "docker.io/restic/restic:0.17.3",
                                         "args": ["backup", "/data"],
                                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                         "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": f"{name}-data"}}]}}}}}},
            "nightly restic backup")))
    return files


def generate(out: Path, files: int = 2000, seed: int = 1) -> dict[str, Any]:
    """Write a plain-manifest repository of exactly ``files`` YAML files under ``out`` (replaced if present).

    One directory per app (``apps/<namespace>/<app>/<kind>.yaml``): a Deployment or StatefulSet, usually its
    Service, often a ConfigMap, an Ingress, a PVC, sometimes an HPA, PDB, NetworkPolicy or backup CronJob; about
    1% of the files are ``legacy/`` copies of a Deployment. Findings on purpose, a few per app: mutable or
    unqualified images, ``imagePullPolicy: Never``, no resources or probes, endpoints and HPA targets that do not
    exist, Services that select nothing, duplicates; kube-score finds its own (no NetworkPolicy, no limits, ...).
    Deterministic: the same arguments give byte-identical files. Returns counts (files, objects, kinds, apps).
    """
    if files < 1:
        raise ValueError("files must be ≥ 1")
    rng = random.Random(seed)
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    n_dup = files // 100
    budget = files - n_dup
    written: list[tuple[str, str]] = []
    workloads: list[tuple[str, str]] = []
    apps = 0
    shard = 0
    while len(written) < budget:
        shard += 1
        for ns_base, members in [*CATALOG.items(), ("databases", DATABASES)]:
            ns = ns_base if shard == 1 else f"{ns_base}-{shard}"
            for name, upstream, port in members:
                if len(written) >= budget:
                    break
                app = _App(ns, name, "", port, ns_base == "databases", random.Random(rng.getrandbits(64)))
                app.image = _image(app, upstream)
                workload = _workload(app)
                app_files = _files_of(app, workload)[: budget - len(written)]
                written += app_files
                workloads.append((ns, name))
                apps += 1
    dups = rng.sample(workloads, min(n_dup, len(workloads)))
    for i in range(n_dup):
        ns, name = dups[i % len(dups)]
        src = next(text for rel, text in written if rel.startswith(f"apps/{ns}/{name}/"))
        first = src.split("\n---\n")[0]
        copy = first.replace("replicas: 1\n", "replicas: 2\n", 1)
        written.append((f"legacy/{ns}-{name}-{i}.yaml", f"# old copy, kept 'just in case'\n{copy}"))
    kinds: Counter[str] = Counter()
    for rel, text in written:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        kinds.update(re.findall(r"^kind: (\w+)$", text, re.M))
    return {"files": len(written), "objects": sum(kinds.values()), "kinds": dict(sorted(kinds.items())),
            "apps": apps, "namespaces": len({ns for ns, _ in workloads})}


def yaml_files(root: Path) -> list[Path]:
    """Every YAML file under ``root``, sorted (what a shell glob ``**/*.yaml`` expands to)."""
    return sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


# ----------------------------------------------------------------------------------------------------------
# Running and timing
# ----------------------------------------------------------------------------------------------------------

@dataclass
class Timed:
    best: float
    runs: list[float]
    proc: subprocess.CompletedProcess[bytes]

    @property
    def summary(self) -> str:
        return f"best {self.best:.3f} s of {', '.join(f'{t:.3f}' for t in self.runs)}; exit {self.proc.returncode}"


def _run(argv: list[str], env: dict[str, str] | None, ok: tuple[int, ...]) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(argv, capture_output=True, env=env, check=False, timeout=900)
    if proc.returncode not in ok:
        err = proc.stderr.decode(errors="replace").strip()[-2000:]
        raise SystemExit(f"peers.py: {' '.join(argv[:3])} ... exited {proc.returncode}: {err}")
    return proc


def run_best(argv: list[str], runs: int, *, env: dict[str, str] | None = None, ok: tuple[int, ...] = (0, 1),
             count: RequestCounter | None = None, counts: list[dict[str, Any]] | None = None) -> Timed:
    """One untimed warm-up run, then ``runs`` timed runs (output captured, as into a pipe); the best wall time
    counts. With ``count``, each timed run's API requests are appended to ``counts``. Exits on an exit code not
    in ``ok``."""
    _run(argv, env, ok)  # warm-up: page cache, bytecode cache (see kubeshape_env)
    times: list[float] = []
    proc: subprocess.CompletedProcess[bytes] | None = None
    for _ in range(runs):
        ctx: AbstractContextManager[dict[str, Any]] = count.counting() if count else nullcontext({})
        with ctx as c:
            t0 = time.perf_counter()
            proc = _run(argv, env, ok)
            times.append(time.perf_counter() - t0)
        if counts is not None:
            counts.append(c)
    assert proc is not None
    return Timed(min(times), times, proc)


def kubeshape_cmd() -> list[str]:
    """The entry point a user runs (``kubeshape`` on PATH), else the same CLI through this interpreter."""
    exe = shutil.which("kubeshape")
    return [exe] if exe else [sys.executable, "-m", "kubeshape"]


def kubeshape_env(workdir: Path) -> dict[str, str]:
    """Environment for kubeshape: a bytecode cache of its own, as an installed package has.

    ``pip install`` byte-compiles a package; a development environment with ``PYTHONDONTWRITEBYTECODE=1`` (or an
    editable install whose sources keep changing) recompiles every module on each start, which is not what users
    run. The cache lives in ``workdir`` (``PYTHONPYCACHEPREFIX``), never in the source tree.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return env


def peer(component: str) -> Path:
    """A peer's binary, built on first use by testbed/build.sh."""
    v = versions()[component]
    if not (cache_dir() / f"{component}-{v}" / component).is_file():
        print(f"building {component} {v} from Go modules (testbed/build.sh {component}); the first build takes "
              f"minutes{' (k8sgpt: ≈ 8 min on 2 cores)' if component == 'k8sgpt' else ''} ...", flush=True)
    return binary(component)


def isolated_env(home: Path) -> dict[str, str]:
    """Environment for a peer: HOME and XDG dirs in ``home`` (k8sgpt writes its config there), no KUBECONFIG."""
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG" and not k.startswith(("K8SGPT_", "XDG_"))}
    env |= {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local/share"), "XDG_STATE_HOME": str(home / ".local/state"),
            "NO_COLOR": "1"}
    return env


# ----------------------------------------------------------------------------------------------------------
# API requests, counted by the apiserver
# ----------------------------------------------------------------------------------------------------------

_METRIC = re.compile(r'^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$', re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')
# Both tools only read; the test bed's own components mostly write, watch and renew Leases.
TOOL_VERBS = ("GET", "LIST")


class RequestCounter:
    """Requests that one command made, from the apiserver's ``apiserver_request_total`` counters.

    The metric has no user-agent, user or client label (and every test-bed component uses the same admin
    credentials), so a run's count is the counters' increase during the run, restricted to reads (GET/LIST) of
    anything but Leases (the tools only read; the test bed's components also write, watch and renew leases).
    What the idle test bed still reads (the HPA controller's GET of ``deployments/scale``, controllers' discovery
    of ``/api`` and ``/apis``) is measured per verb/resource over ``idle_window`` seconds first, and that rate ×
    the run's wall time is subtracted from the same key (never below zero). The apiserver does not count
    ``/version`` and ``/metrics`` in this metric, so neither tool's ``/version`` nor these scrapes show up.
    """

    def __init__(self, cluster: Any, idle_window: float = 30.0) -> None:
        self.cluster = cluster
        self.idle_window = idle_window
        self.idle_by_key: Counter[str] = Counter()
        self.idle_elapsed = 1.0

    @property
    def idle_rate(self) -> float:
        return sum(self.idle_by_key.values()) / self.idle_elapsed

    def scrape(self) -> Counter[str]:
        req = urllib.request.Request(self.cluster.server + "/metrics",
                                     headers={"Authorization": f"Bearer {self.cluster.token}"})
        with urllib.request.urlopen(req, timeout=30, context=self.cluster.ssl_context()) as resp:
            text = resp.read().decode()
        out: Counter[str] = Counter()
        for labels, value in _METRIC.findall(text):
            lab = dict(_LABEL.findall(labels))
            if lab.get("verb") not in TOOL_VERBS or lab.get("resource") == "leases":
                continue
            res = lab.get("resource") or "(non-resource)"
            sub = f"/{lab['subresource']}" if lab.get("subresource") else ""
            out[f"{lab['verb']} {res}{sub}"] += int(float(value))
        return out

    def calibrate(self) -> None:
        """Measure what the idle test bed reads, per verb/resource."""
        before = self.scrape()
        t0 = time.perf_counter()
        time.sleep(self.idle_window)
        self.idle_by_key = self.scrape() - before
        self.idle_elapsed = time.perf_counter() - t0

    @contextmanager
    def counting(self) -> Iterator[dict[str, Any]]:
        """``with counter.counting() as c:`` … then ``c["requests"]`` (idle subtracted), ``c["raw"]``, ``c["by"]``."""
        result: dict[str, Any] = {}
        before = self.scrape()
        t0 = time.perf_counter()
        yield result
        wall = time.perf_counter() - t0
        diff = self.scrape() - before
        estimate = 0.0
        for key, n in diff.items():
            estimate += max(0.0, n - self.idle_by_key.get(key, 0) / self.idle_elapsed * wall)
        result.update(by=diff, raw=sum(diff.values()), requests=round(estimate))


# ----------------------------------------------------------------------------------------------------------
# The benchmarks
# ----------------------------------------------------------------------------------------------------------

@dataclass
class Row:
    task: str
    ours: str
    theirs: str
    ratio: float | None = None
    target: float | None = None

    @property
    def met(self) -> str:
        if self.target is None or self.ratio is None:
            return "—"
        return "yes" if self.ratio <= self.target else "NO"


def _kube_score_counts(stdout: bytes) -> str:
    text = stdout.decode(errors="replace")
    return f"{text.count('[CRITICAL]')} critical, {text.count('[WARNING]')} warnings"


def bench_lint(args: argparse.Namespace, workdir: Path, rows: list[Row], verdicts: list[str]) -> None:
    kube_score = peer("kube-score")
    repo = (args.keep / "repo") if args.keep else workdir / "repo"
    t0 = time.perf_counter()
    counts = generate(repo, args.files)
    print(f"generated {repo}: {counts['files']} YAML files, {counts['objects']} objects "
          f"({', '.join(f'{n} {k}' for k, n in counts['kinds'].items())}), {counts['apps']} apps in "
          f"{counts['namespaces']} namespaces ({time.perf_counter() - t0:.1f} s)")
    files = [str(p) for p in yaml_files(repo)]
    n = len(files)
    ks, env = kubeshape_cmd(), kubeshape_env(workdir)
    # kube-score takes files, not directories: a user runs `kube-score score apps/*/*/*.yaml legacy/*.yaml`, which
    # the shell expands into one argument per file: the same files kubeshape finds when given the directory.
    for label, ours_argv, theirs_argv, target in (
        ("default output", [*ks, "lint", str(repo)], [str(kube_score), "score", *files], LINT_TARGET),
        ("JSON output", [*ks, "lint", str(repo), "-o", "json"],
         [str(kube_score), "score", "-o", "json", *files], None),
    ):
        ours = run_best(ours_argv, args.runs, env=env)
        theirs = run_best(theirs_argv, args.runs)
        ratio = ours.best / theirs.best
        print(f"  lint, {label}: kubeshape {ours.summary}; {len(ours.proc.stdout) // 1024} KiB out")
        print(f"  lint, {label}: kube-score {theirs.summary}; {len(theirs.proc.stdout) // 1024} KiB out")
        if label == "default output":
            m = re.search(rb"(\d+) findings \(([^)]*)\)", ours.proc.stdout)
            print(f"    kubeshape: {m.group(0).decode() if m else '? findings'}; "
                  f"kube-score: {_kube_score_counts(theirs.proc.stdout)}")
        rows.append(Row(f"lint {n:,} files, {label}", f"{ours.best:.2f} s ({n / ours.best:,.0f} files/s)",
                        f"kube-score {theirs.best:.2f} s ({n / theirs.best:,.0f} files/s)", ratio, target))
        if target is not None:
            verdicts.append(f"lint: kubeshape lint takes {ratio:.2f}× kube-score's wall on {n:,} files "
                            f"(target ≤ {target:g}×): {'met' if ratio <= target else 'MISSED'}")


def bench_live(args: argparse.Namespace, workdir: Path, rows: list[Row], verdicts: list[str]) -> None:
    from testbed.cluster import start_cluster
    from testbed.registry import start_registry
    from testbed.scenarios.loader import load

    k8sgpt = peer("k8sgpt")
    t0 = time.perf_counter()
    registry = start_registry(workdir / "registry")
    cluster = None
    try:
        cluster = start_cluster(workdir / "cluster")
        load(cluster, registry.host)
        print(f"test bed {cluster.version} with the homelab scenario up in {time.perf_counter() - t0:.1f} s")
        counter = RequestCounter(cluster)
        counter.calibrate()
        print(f"  idle test bed: {counter.idle_rate:.2f} reads/s over {counter.idle_elapsed:.0f} s "
              f"{dict(sorted(counter.idle_by_key.items()))}")
        home = workdir / "peer-home"
        home.mkdir(exist_ok=True)
        kc, ks = str(cluster.kubeconfig), kubeshape_cmd()
        ks_env, gpt_env = kubeshape_env(workdir), isolated_env(home)
        doctor = [*ks, "doctor", "--kubeconfig", kc, "-o", "json"]
        commands = {
            "doctor": (doctor, ks_env, (0, 1)),
            "doctor --registry": ([*doctor, "--registry", f"{registry.host}={HOMELAB_REGISTRY}",
                                   "--insecure-registry"], ks_env, (0, 1)),
            "k8sgpt analyze": ([str(k8sgpt), "analyze", "--explain=false", "--kubeconfig", kc], gpt_env, (0,)),
        }
        results: dict[str, tuple[Timed, list[dict[str, Any]]]] = {}
        for name, (argv, env, ok) in commands.items():
            counts: list[dict[str, Any]] = []
            timed = run_best(argv, args.runs, env=env, ok=ok, count=counter, counts=counts)
            results[name] = (timed, counts)
            print(f"  {name}: {timed.summary}; API requests per run {[c['requests'] for c in counts]} "
                  f"(reads counted before subtracting idle: {[c['raw'] for c in counts]})")
            print(f"    first run: {dict(sorted(counts[0]['by'].items()))}")
        gpt = results["k8sgpt analyze"][0]
        findings = len(re.findall(rb'"rule":', results["doctor"][0].proc.stdout))
        problems = len(re.findall(rb"^\d+: ", gpt.proc.stdout, re.M))
        print(f"    doctor: {findings} findings; k8sgpt analyze: {problems} problems")
        gpt_reqs = _median([c["requests"] for c in results["k8sgpt analyze"][1]])
        for name in ("doctor", "doctor --registry"):
            timed, counts = results[name]
            ratio = timed.best / gpt.best
            target = LIVE_TARGET if name == "doctor" else None
            label = "live doctor, homelab" if name == "doctor" else "live doctor --registry (k8sgpt reads none)"
            rows.append(Row(label, f"{timed.best:.2f} s", f"k8sgpt analyze {gpt.best:.2f} s", ratio, target))
            if target is not None:
                verdicts.append(f"live: kubeshape doctor takes {ratio:.2f}× k8sgpt analyze's wall on the homelab "
                                f"scenario (target ≤ {target:g}×): {'met' if ratio <= target else 'MISSED'}")
        for name in ("doctor", "doctor --registry"):
            ours_reqs = _median([c["requests"] for c in results[name][1]])
            rows.append(Row(f"API requests, {name} (median)", f"{ours_reqs:g}", f"k8sgpt analyze {gpt_reqs:g}",
                            ours_reqs / gpt_reqs if gpt_reqs else None))
    finally:
        if cluster is not None:
            cluster.stop()
        registry.stop()


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def bench_startup(args: argparse.Namespace, workdir: Path, rows: list[Row], peers: list[str]) -> None:
    home = workdir / "startup-home"
    home.mkdir(exist_ok=True)
    ours = run_best([*kubeshape_cmd(), "version"], args.runs, env=kubeshape_env(workdir), ok=(0,))
    print(f"  start-up: kubeshape version: {ours.summary} ({ours.proc.stdout.decode().strip()})")
    for name in peers:
        theirs = run_best([str(peer(name)), "version"], args.runs, env=isolated_env(home), ok=(0,))
        print(f"  start-up: {name} version: {theirs.summary} ({theirs.proc.stdout.decode().strip()})")
        rows.append(Row(f"start-up (`version`) vs {name}", f"{ours.best * 1000:.0f} ms",
                        f"{name} {theirs.best * 1000:.0f} ms", ours.best / theirs.best))


def print_table(rows: list[Row]) -> None:
    head = ("task", "kubeshape", "peer", "ratio", "target", "met?")
    cells = [head] + [(r.task, r.ours, r.theirs, f"{r.ratio:.2f}×" if r.ratio is not None else "—",
                       f"≤ {r.target:g}×" if r.target is not None else "—", r.met) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    print()
    for i, c in enumerate(cells):
        print("| " + " | ".join(s.ljust(w) for s, w in zip(c, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs per command; the best wall time counts (default 3)")
    ap.add_argument("--files", type=int, default=2000, help="YAML files in the generated repository (default 2000)")
    ap.add_argument("--keep", type=Path, help="generate the repository in DIR/repo and keep it")
    ap.add_argument("--skip-live", action="store_true", help="no test bed: lint and start-up only")
    ap.add_argument("--skip-lint", action="store_true", help="no lint comparison")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.files < 1:
        ap.error("--runs and --files must be ≥ 1")
    rows: list[Row] = []
    verdicts: list[str] = []
    v = versions()
    print(f"kubeshape ({' '.join(kubeshape_cmd())}) vs kube-score {v['kube-score']} and k8sgpt {v['k8sgpt']}; "
          f"best of {args.runs}; {os.cpu_count()} CPUs")
    peers = ([] if args.skip_lint else ["kube-score"]) + ([] if args.skip_live else ["k8sgpt"])
    with tempfile.TemporaryDirectory(prefix="ks-peers-") as tmp:
        workdir = Path(tmp)
        try:
            if not args.skip_lint:
                bench_lint(args, workdir, rows, verdicts)
            if not args.skip_live:
                bench_live(args, workdir, rows, verdicts)
            if peers:
                bench_startup(args, workdir, rows, peers)
        except RuntimeError as e:  # a peer or test-bed binary that could not be built
            print(f"peers.py: {e}", file=sys.stderr)
            return 3
    print_table(rows)
    print()
    for line in verdicts:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
