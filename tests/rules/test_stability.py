"""KS5xx: restart storms, rate-limited probes, crash loops and log floods on live objects."""

from __future__ import annotations

from typing import Any

import yaml

from kubeshape.report.text import split_fix
from kubeshape.rules.stability import parse_log_line
from tests.helpers import check, config, deployment, inventory

NS = "homelab"
POD = "homelab-dashboard-5946d57cdf-b7kwx"
LIVENESS = {"httpGet": {"path": "/api/status", "port": 8080}, "periodSeconds": 10, "failureThreshold": 3}
READINESS = {"httpGet": {"path": "/api/status", "port": 8080}, "periodSeconds": 5}


def workload(name: str = "homelab-dashboard", pod: str = POD, restarts: int = 598,
             started: str = "2025-11-12T10:00:00Z", last: dict[str, Any] | None = None,
             waiting: dict[str, Any] | None = None, ns: str = NS, **container: Any) -> list[dict[str, Any]]:
    """A Deployment, its ReplicaSet and one pod, with the container's status."""
    container = container or {"livenessProbe": LIVENESS, "readinessProbe": READINESS,
                              "ports": [{"name": "http", "containerPort": 8080}]}
    dep = deployment(name, f"ghcr.io/pesuga/homelab/{name}:1.0.0", ns=ns, **container)
    rs_name = pod.rsplit("-", 1)[0]
    rs = {"kind": "ReplicaSet", "metadata": {
        "name": rs_name, "namespace": ns, "uid": f"uid-rs-{rs_name}",
        "ownerReferences": [{"kind": "Deployment", "name": name, "uid": dep["metadata"]["uid"], "controller": True}]}}
    status: dict[str, Any] = {"name": name, "restartCount": restarts,
                              "state": {"waiting": waiting} if waiting else {"running": {}}}
    if last is not None:
        status["lastState"] = {"terminated": last}
    p = {"kind": "Pod",
         "metadata": {"name": pod, "namespace": ns, "uid": f"uid-pod-{pod}", "labels": {"app": name},
                      "ownerReferences": [{"kind": "ReplicaSet", "name": rs_name, "uid": f"uid-rs-{rs_name}",
                                           "controller": True}]},
         "spec": dep["spec"]["template"]["spec"],
         "status": {"startTime": started, "containerStatuses": [status]}}
    return [dep, rs, p]


def event(reason: str, message: str, count: int, pod: str = POD, container: str = "homelab-dashboard",
          kind: str = "Pod", ns: str = NS, type_: str = "Warning", first: str = "2025-11-12T09:58:41Z",
          last: str = "2025-11-17T09:59:28Z") -> dict[str, Any]:
    return {"kind": "Event", "metadata": {"name": f"{pod}.{reason}.{count}", "namespace": ns},
            "involvedObject": {"kind": kind, "namespace": ns, "name": pod,
                               "fieldPath": f"spec.containers{{{container}}}"},
            "reason": reason, "message": message, "count": count, "type": type_,
            "firstTimestamp": first, "lastTimestamp": last}


PROBE_EVENTS = [
    event("Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 429", 1794),
    event("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 429", 2735,
          first="2025-11-12T09:58:19Z", last="2025-11-17T09:59:08Z"),
    event("Killing", "Container homelab-dashboard failed liveness probe, will be restarted", 598),
]
SIGKILL = {"reason": "Error", "exitCode": 137, "finishedAt": "2025-11-17T09:50:50Z"}


# -- KS501 ----------------------------------------------------------------------------------------------

def test_ks501_seed_restart_storm_is_an_error_linked_to_rate_limited_probes() -> None:
    inv = inventory(objects=workload(last=SIGKILL), events=PROBE_EVENTS)
    [f] = check("KS501", inv)
    assert f.severity.label == "error"  # 119.6/day ≥ 10 × 5/day
    assert str(f.object) == "homelab/Deployment/homelab-dashboard"
    assert f.message == "Deployment homelab-dashboard: 598 container restarts, 119.6 per day (threshold 5/day)"
    text = "\n".join(f.evidence)
    assert f"{POD}: 598 restarts in 5d (≈4.98/h, 119.6/day)" in text
    assert "last terminated: Error, exit code 137" in text and "2025-11-17T09:50:50Z" in text
    assert "598 'Killing' events: container failed liveness probe" in text
    assert "1794 liveness probe failures with HTTP 429 (see KS502)" in text
    assert "HTTP 429" in f.root_cause and "KS502" in f.root_cause
    assert f"kubectl logs {POD} -n homelab -c homelab-dashboard --previous" in f.fix
    assert f.data["restarts"] == 598


def test_ks501_moderate_rate_is_a_warning_and_respects_thresholds() -> None:
    objs = workload(restarts=20, started="2025-11-15T10:00:00Z")  # 10/day
    [f] = check("KS501", inventory(objects=objs))
    assert f.severity.label == "warning"
    assert "10.0 per day" in f.message
    assert check("KS501", inventory(objects=objs), config("thresholds: {restarts_per_day: 12}")) == []


def test_ks501_oom_kill_suggests_doubling_the_memory_limit() -> None:
    objs = workload(restarts=40, started="2025-11-16T10:00:00Z",
                    last={"reason": "OOMKilled", "exitCode": 137, "finishedAt": "2025-11-17T09:00:00Z"},
                    resources={"limits": {"memory": "256Mi"}})
    [f] = check("KS501", inventory(objects=objs))
    assert "OOM-killed" in f.root_cause and "256Mi" in f.root_cause
    assert ("kubectl set resources deployment/homelab-dashboard -n homelab -c homelab-dashboard "
            "--limits=memory=512Mi") in f.fix


def test_ks501_events_of_another_namespace_or_kind_are_not_counted() -> None:
    others = [event("Killing", "Container x failed liveness probe, will be restarted", 50, ns="other"),
              event("Killing", "Container x failed liveness probe, will be restarted", 50, kind="Service")]
    [f] = check("KS501", inventory(objects=workload(restarts=30, started="2025-11-16T10:00:00Z"), events=others))
    assert "Killing" not in "\n".join(f.evidence)


def test_ks501_few_or_old_restarts_pass() -> None:
    calm = workload(restarts=30, started="2025-08-01T10:00:00Z")  # ~0.3/day
    young = workload(name="api", pod="api-7d9f8b6c5d-x2x2x", restarts=6, started="2025-11-17T09:00:00Z")
    assert check("KS501", inventory(objects=calm + young)) == []  # young: 144/day but below min restarts


# -- KS502 ----------------------------------------------------------------------------------------------

def test_ks502_seed_429_probes_with_counts_spec_and_patch_on_the_same_port() -> None:
    inv = inventory(objects=workload(last=SIGKILL), events=PROBE_EVENTS)
    [f] = check("KS502", inv)
    assert f.severity.label == "error"
    assert "liveness and readiness probe rejected with HTTP 429 (rate limited) 4529 times" in f.message
    text = "\n".join(f.evidence)
    assert ("container homelab-dashboard: liveness probe failed 1794 times with HTTP 429 on 1 pod(s) "
            "(2025-11-12T09:58:41Z → 2025-11-17T09:59:28Z)") in text
    assert "readiness probe failed 2735 times" in text
    assert "sample event: Liveness probe failed: HTTP probe failed with statuscode: 429" in text
    assert "livenessProbe: GET /api/status on port 8080, periodSeconds 10, failureThreshold 3" in text
    assert "598 container restarts" in text
    assert "death spiral" in f.root_cause and "/api/status" in f.root_cause
    [apply] = [b.text for b in split_fix(f.fix) if b.lang == "bash"]
    assert apply == ("kubectl patch deployment/homelab-dashboard -n homelab "
                     "--patch-file homelab-dashboard-probes.yaml")
    assert "never calling upstreams" in f.fix
    [patch_text] = [b.text for b in split_fix(f.fix) if b.lang == "yaml"]
    patch = yaml.safe_load(patch_text)
    [c] = patch["spec"]["template"]["spec"]["containers"]
    assert c["name"] == "homelab-dashboard"
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8080}
    assert c["livenessProbe"]["periodSeconds"] >= 20 and c["livenessProbe"]["failureThreshold"] >= 3


def test_ks502_named_port_is_kept_and_readiness_only_explains_endpoints() -> None:
    probe = {"httpGet": {"path": "/status", "port": "web"}}
    objs = workload(restarts=0, readinessProbe=probe, ports=[{"name": "web", "containerPort": 3000}])
    evs = [event("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 429", 12)]
    [f] = check("KS502", inventory(objects=objs, events=evs))
    assert "port: web" in f.fix and "3000" not in f.fix
    assert "Service endpoints" in f.root_cause and "death spiral" not in f.root_cause


def test_ks502_other_probe_failures_pass() -> None:
    evs = [event("Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 500", 40),
           event("Unhealthy", "Readiness probe failed: Get \"http://10.42.0.7:8080/\": connection refused", 9),
           event("Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 429", 3, ns="other")]
    assert check("KS502", inventory(objects=workload(restarts=2), events=evs)) == []


# -- KS503 ----------------------------------------------------------------------------------------------

def test_ks503_crash_loop_with_exit_code_and_backoffs() -> None:
    pod = "family-assistant-backend-7748c945ff-n2kb7"
    objs = workload(name="family-assistant-backend", pod=pod, restarts=14, started="2025-11-17T09:20:00Z",
                    waiting={"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"},
                    last={"reason": "Error", "exitCode": 1, "finishedAt": "2025-11-17T09:55:00Z",
                          "message": "ModuleNotFoundError: No module named 'mcp'"})
    evs = [event("BackOff", "Back-off restarting failed container family-assistant-backend in pod", 63, pod=pod,
                 container="family-assistant-backend")]
    [f] = check("KS503", inventory(objects=objs, events=evs))
    assert f.message == ("Deployment family-assistant-backend: container family-assistant-backend keeps exiting "
                         "and is in CrashLoopBackOff on 1 pod(s)")
    text = "\n".join(f.evidence)
    assert f"{pod}/family-assistant-backend: CrashLoopBackOff, 14 restarts" in text
    assert "exit code 1 (application error) at 2025-11-17T09:55:00Z" in text
    assert "termination message: ModuleNotFoundError: No module named 'mcp'" in text
    assert "63 'Back-off restarting failed container' events" in text
    assert "exits with code 1 (application error)" in f.root_cause
    assert f"kubectl logs {pod} -n homelab -c family-assistant-backend --previous" in f.fix
    assert f"kubectl describe pod {pod} -n homelab" in f.fix


def test_ks503_missing_secret_is_worded_separately_with_the_secret_to_check() -> None:
    objs = workload(restarts=0, waiting={"reason": "CreateContainerConfigError",
                                         "message": 'secret "dashboard-secrets" not found'})
    [f] = check("KS503", inventory(objects=objs))
    assert "CreateContainerConfigError" in f.message and "references something missing" in f.message
    assert 'secret "dashboard-secrets" not found' in f.root_cause
    assert "kubectl get secret dashboard-secrets -n homelab" in f.fix


def test_ks503_running_or_pull_failing_containers_pass() -> None:
    running = workload(restarts=3, last=SIGKILL)
    pulling = workload(name="api", pod="api-7d9f8b6c5d-x2x2x", restarts=0,
                       waiting={"reason": "ImagePullBackOff", "message": "Back-off pulling image"})
    assert check("KS503", inventory(objects=running + pulling)) == []


# -- KS504 ----------------------------------------------------------------------------------------------

OTEL_LINE = ("2025-11-17 09:{m:02d}:{s:02d},{ms:03d} - opentelemetry.exporter.otlp.proto.grpc.exporter - WARNING - "
             "Transient error StatusCode.UNAVAILABLE encountered while exporting traces to "
             "otel-collector.homelab.svc.cluster.local:4317, retrying in {r}s.")
FA_POD = "family-assistant-backend-7748c945ff-n2kb7"


def otel_logs(n: int = 52) -> dict[tuple[str, str, str], list[str]]:
    lines = ["2025-11-17 09:00:00,001 - uvicorn - INFO - Application startup complete."]
    lines += [OTEL_LINE.format(m=10 + i // 6, s=(i * 10) % 60, ms=i * 7 % 1000, r=2 ** (i % 6)) for i in range(n)]
    return {(NS, FA_POD, "family-assistant-backend"): lines}


def fa_objects() -> list[dict[str, Any]]:
    return workload(name="family-assistant-backend", pod=FA_POD, restarts=0)


def test_ks504_seed_otel_flood_points_at_the_missing_collector() -> None:
    svc = {"kind": "Service", "metadata": {"name": "family-assistant-backend", "namespace": NS}}
    inv = inventory(objects=[*fa_objects(), svc], logs=otel_logs())
    [f] = check("KS504", inv)
    assert f.severity.label == "warning"
    assert str(f.object) == "homelab/Deployment/family-assistant-backend"
    assert "repeated 52 times in the last 53 lines (98%)" in f.message
    text = "\n".join(f.evidence)
    assert ("×52 (98% of 53 lines): opentelemetry.exporter.otlp.proto.grpc.exporter - WARNING - Transient error "
            "StatusCode.UNAVAILABLE encountered while exporting traces to "
            "otel-collector.homelab.svc.cluster.local:<num>, retrying in <duration>.") in text
    assert "first seen 2025-11-17T09:10:00Z, last seen 2025-11-17T09:18:30Z" in text
    assert f"in {FA_POD}/family-assistant-backend (52)" in text
    assert "sample: 2025-11-17 09:10:00,000 - opentelemetry" in text
    assert "Service otel-collector does not exist in namespace homelab" in text
    assert "collector that does not exist" in f.root_cause and "KS701" in f.root_cause
    assert "kubectl set env deployment/family-assistant-backend -n homelab OTEL_SDK_DISABLED=true" in f.fix


def test_ks504_without_the_service_list_no_missing_collector_is_claimed() -> None:
    [f] = check("KS504", inventory(objects=fa_objects(), logs=otel_logs()))
    assert "KS701" not in f.root_cause and "does not exist" not in "\n".join(f.evidence)


def test_ks504_repeated_info_and_access_log_lines_pass() -> None:
    polls = [f"[2025-11-17 09:{i // 12:02d}:{i % 12 * 5:02d} +0000] [7] [INFO] status poll docker-registry:5000 ok"
             for i in range(30)]
    access = [f'10.42.0.{i} - - [17/Nov/2025:09:58:{i:02d} +0000] "GET /api/items/{i} HTTP/1.1" 200 512'
              for i in range(30)]
    logs = {(NS, FA_POD, "app"): polls, (NS, FA_POD, "nginx"): access}
    assert check("KS504", inventory(objects=fa_objects(), logs=logs)) == []


def test_ks504_template_masks_ids_ips_uuids_and_durations() -> None:
    a, ts, level = parse_log_line("2025-11-17T09:58:40.123456789Z ERROR request 3f2a9c1be7 from 10.42.0.7 failed "
                                  "after 1.5s (trace 123e4567-e89b-12d3-a456-426614174000, attempt 3)")
    b, _, _ = parse_log_line("2025-11-17T09:59:00Z ERROR request 9b1c44de02 from 10.42.3.19 failed "
                             "after 250ms (trace 00000000-1111-2222-3333-444444444444, attempt 12)")
    assert a == b == "request <hex> from <ip> failed after <duration> (trace <uuid>, attempt <num>)"
    assert ts is not None and ts.isoformat() == "2025-11-17T09:58:40.123456+00:00"
    assert level == "ERROR"


def test_ks504_json_lines_group_by_message_and_level() -> None:
    lines = [f'{{"ts":"2025-11-17T09:{i:02d}:00.5Z","level":"warning","msg":"slow query took {100 + i}ms",'
             f'"pod":"{FA_POD}"}}' for i in range(25)]
    [f] = check("KS504", inventory(objects=fa_objects(), logs={(NS, FA_POD, "app"): lines}))
    assert f.severity.label == "warning"
    assert f.evidence[0] == "×25 (100% of 25 lines): slow query took <duration>"
    assert "first seen 2025-11-17T09:00:00Z, last seen 2025-11-17T09:24:00Z (≈ every 60s)" in f.evidence
    assert "on every occurrence (≈ every 60s)" in f.root_cause


def test_ks504_varied_logs_and_secrets_stay_quiet() -> None:
    lines = [f"2025-11-17T09:00:{i:02d}Z INFO handled /api/item/{i} for user{chr(97 + i % 26)}" for i in range(15)]
    lines += [f"INFO cache warmed entry {i}" for i in range(19)]
    assert check("KS504", inventory(objects=fa_objects(), logs={(NS, FA_POD, "app"): lines})) == []
    leaky = [f"ERROR login failed password=hunter{i} for admin" for i in range(25)]
    [f] = check("KS504", inventory(objects=fa_objects(), logs={(NS, FA_POD, "app"): leaky}))
    assert "hunter" not in "\n".join(f.evidence) and "password=<redacted>" in "\n".join(f.evidence)
