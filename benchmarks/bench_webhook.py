#!/usr/bin/env python3
"""The admission webhook under constant-rate load, beside an allow-all webhook served by the same stack.

    python benchmarks/bench_webhook.py                         # 100, 300, 500 req/s, 20 s each
    python benchmarks/bench_webhook.py --rates 500 --duration 10 --cluster

Both webhooks are ``kubeshape webhook serve`` processes on 127.0.0.1 over TLS (certificates from ``kubeshape
webhook certs``); the baseline runs with ``--allow-all``: same uvicorn, TLS, routing, JSON parsing and answer, no
judging. kubeshape judges with a real registry on loopback (tags looked up, cached with a TTL) and, with
``--cluster``, a real control plane behind its watch cache. Load comes from vegeta (built from Go modules and
cached like the test bed's binaries: ``testbed/build.sh vegeta``), a constant-rate generator, so a slow server
shows as latency rather than as a lower request rate. Requests are realistic Deployment AdmissionReviews
(CREATE and UPDATE, one to three containers, env, probes, resources, managedFields; good images and the seed's bad
ones). Prints p50/p99/max and errors per rate for both, and the p99 ratio (target: 0 errors, ≤ 1.5× at 500 req/s).
Always exits 0: it reports.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import random
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the testbed package lives at the repo root

from kubeshape.admission.certs import ensure_certs
from kubeshape.registry.client import RegistryClient
from kubeshape.registry.image import build_image, push_image
from testbed.binaries import binary
from testbed.procs import free_port
from testbed.registry import start_registry

TAGS = ("1.4.2", "1.4.3", "main-abc1234-1763373600")


def review(rng: random.Random, host: str, n: int) -> dict[str, Any]:
    """One realistic Deployment AdmissionReview, as an apiserver sends it."""
    name = rng.choice(["family-assistant-backend", "homelab-dashboard", "whisper", "ollama-proxy", "api"])
    images = [rng.choice([f"{host}/family-assistant:{rng.choice(TAGS)}", f"{host}/family-assistant:1.4.2",
                          "family-assistant:phase2-mcp-logging-fix", "ghcr.io/pesuga/homelab-dashboard:latest",
                          "docker.io/library/redis:7.4"]) for _ in range(rng.randint(1, 3))]
    containers = [{
        "name": f"c{i}", "image": img, "imagePullPolicy": "IfNotPresent",
        "ports": [{"containerPort": 8000 + i, "protocol": "TCP"}],
        "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "DATABASE_URL", "value": "postgres://db:5432/app"},
                {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector.homelab.svc:4317"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "readinessProbe": {"httpGet": {"path": "/health", "port": 8000 + i}, "periodSeconds": 10},
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8000 + i}, "periodSeconds": 30},
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
    } for i, img in enumerate(images)]
    obj = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "homelab", "uid": f"0000-{n}", "generation": 4,
                     "labels": {"app": name, "app.kubernetes.io/part-of": "homelab"},
                     "annotations": {"deployment.kubernetes.io/revision": "61",
                                     "kubernetes.io/change-cause": f"release {rng.choice(TAGS)}"},
                     "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update",
                                        "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                                        "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {}}}}}}]},
        "spec": {"replicas": 2, "revisionHistoryLimit": 10, "selector": {"matchLabels": {"app": name}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": containers, "restartPolicy": "Always",
                                       "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst"}}},
        "status": {}}
    op = rng.choice(["CREATE", "UPDATE"])
    old = None
    if op == "UPDATE":
        old = copy.deepcopy(obj)
        old["spec"]["template"]["spec"]["containers"][0]["image"] = f"{host}/family-assistant:1.4.1"
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": f"bench-{n}", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "name": name, "namespace": "homelab", "operation": op,
        "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
        "object": obj, "oldObject": old, "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions" if op == "CREATE" else "UpdateOptions"}}}


def targets_file(path: Path, url: str, host: str, count: int = 64) -> None:
    rng = random.Random(1)
    with path.open("w") as fh:
        for n in range(count):
            body = json.dumps(review(rng, host, n)).encode()
            fh.write(json.dumps({"method": "POST", "url": url, "body": base64.b64encode(body).decode(),
                                 "header": {"Content-Type": ["application/json"]}}) + "\n")


def serve(argv: list[str], port: int, ca: Path, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    ctx = ssl.create_default_context(cafile=str(ca))
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"webhook exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=ctx, timeout=2):
                return proc
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"webhook not ready: {log.read_text()[-2000:]}")


def attack(vegeta: Path, targets: Path, ca: Path, rate: int, duration: int) -> dict[str, Any]:
    """One constant-rate run; vegeta's JSON report (latencies in ns)."""
    attack_cmd = [str(vegeta), "attack", "-format=json", f"-targets={targets}", f"-rate={rate}/s",
                  f"-duration={duration}s", f"-root-certs={ca}", "-timeout=10s", "-http2=false"]
    run = subprocess.run(attack_cmd, capture_output=True, check=True)
    report = subprocess.run([str(vegeta), "report", "-type=json"], input=run.stdout, capture_output=True,
                            check=True)
    return dict(json.loads(report.stdout))


def warm(vegeta: Path, targets: Path, ca: Path) -> None:
    attack(vegeta, targets, ca, 50, 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", type=int, nargs="+", default=[100, 300, 500])
    ap.add_argument("--duration", type=int, default=20, help="seconds per rate and webhook")
    ap.add_argument("--cluster", action="store_true", help="also start a control plane for the watch cache")
    ap.add_argument("--no-registry", action="store_true", help="judge without registry look-ups (KS104)")
    args = ap.parse_args()

    vegeta = binary("vegeta")
    with tempfile.TemporaryDirectory(prefix="ks-bench-webhook-") as tmp:
        work = Path(tmp)
        reg = start_registry(work / "registry")
        cluster = None
        try:
            with RegistryClient(reg.host, insecure=True) as client:
                for tag in TAGS:
                    push_image(client, "family-assistant", tag,
                               build_image({"v": tag.encode()}, created=datetime.now(UTC)))
            files = ensure_certs(work / "certs", ["127.0.0.1"])
            (work / "kubeshape.yaml").write_text(f"registries:\n  private: ['{reg.host}']\n")
            common = [sys.executable, "-m", "kubeshape", "webhook", "serve", "--cert-file", str(files.cert),
                      "--key-file", str(files.key), "--host", "127.0.0.1", "--log-level", "warning"]
            ks_port, base_port = free_port(), free_port()
            judge = [*common, "--port", str(ks_port), "--config", str(work / "kubeshape.yaml"),
                     *(["--no-registry"] if args.no_registry else ["--registry", reg.host, "--insecure-registry"])]
            if args.cluster:
                from testbed.cluster import start_cluster
                cluster = start_cluster(work / "cluster")
                judge += ["--kubeconfig", str(cluster.kubeconfig)]
            else:
                judge += ["--no-cluster"]
            procs = [serve(judge, ks_port, files.ca_cert, work / "kubeshape.log"),
                     serve([*common, "--port", str(base_port), "--allow-all", "--no-cluster"], base_port,
                           files.ca_cert, work / "allow-all.log")]
            try:
                tk, tb = work / "kubeshape.targets", work / "allow-all.targets"
                targets_file(tk, f"https://127.0.0.1:{ks_port}/validate?timeout=10s", reg.host)
                targets_file(tb, f"https://127.0.0.1:{base_port}/validate?timeout=10s", reg.host)
                warm(vegeta, tk, files.ca_cert)
                warm(vegeta, tb, files.ca_cert)
                print(f"{'rate':>6} | {'webhook':<9} | {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} | "
                      f"{'ok':>7} {'errors':>6} | p99 ratio")
                verdict = []
                for rate in args.rates:
                    rows = {}
                    for name, targets in (("allow-all", tb), ("kubeshape", tk)):
                        rows[name] = attack(vegeta, targets, files.ca_cert, rate, args.duration)
                    ratio = rows["kubeshape"]["latencies"]["99th"] / max(rows["allow-all"]["latencies"]["99th"], 1)
                    for name, rep in rows.items():
                        lat = rep["latencies"]
                        errors = len(rep.get("errors") or []) + sum(
                            v for k, v in (rep.get("status_codes") or {}).items() if k != "200")
                        print(f"{rate:>6} | {name:<9} | {lat['50th'] / 1e6:7.2f} {lat['99th'] / 1e6:7.2f} "
                              f"{lat['max'] / 1e6:7.1f} | {rep['requests']:>7} {errors:>6} | "
                              + (f"{ratio:.2f}x" if name == "kubeshape" else ""))
                        if name == "kubeshape":
                            verdict.append((rate, errors, ratio))
                rate, errors, ratio = verdict[-1]
                ok = errors == 0 and ratio <= 1.5
                print(f"\nat {rate} req/s: kubeshape p99 is {ratio:.2f}x the allow-all webhook's, {errors} errors "
                      f"-- target 0 errors and <= 1.5x: {'met' if ok else 'NOT met'}")
            finally:
                for p in procs:
                    p.terminate()
                    p.wait(timeout=20)
        finally:
            if cluster is not None:
                cluster.stop()
            reg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
