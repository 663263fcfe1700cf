"""KS7xx: telemetry endpoints without a Service, unscraped workloads, missing alert rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kubeshape.report.text import split_fix
from tests.helpers import check, deployment, doctor, inventory

NS = "homelab"


def blocks(fix: str, lang: str) -> list[str]:
    """The fix's code blocks in ``lang``, as the reports split them."""
    return [b.text for b in split_fix(fix) if b.code and b.lang == lang]

OTEL = "http://otel-collector.homelab.svc.cluster.local:4317"
FA = "family-assistant-backend"


def fa(env: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    env = env if env is not None else [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": OTEL}]
    return deployment(FA, "100.81.76.55:30500/family-assistant:1.4.2", env=env, **extra)


def service(name: str, ns: str = NS, selector: dict[str, str] | None = None, labels: dict[str, str] | None = None,
            ports: list[dict[str, Any]] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": labels or {}}
    if annotations:
        meta["annotations"] = annotations
    return {"kind": "Service", "metadata": meta,
            "spec": {"selector": selector or {"app": name}, "ports": ports or [{"name": "http", "port": 8001}]}}


REPO_FA = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {FA}
  namespace: homelab
spec:
  template:
    metadata:
      labels: {{app: {FA}}}
    spec:
      containers:
      - name: {FA}
        image: 100.81.76.55:30500/family-assistant:1.4.2
        env:
        - name: OTEL_SERVICE_NAME
          value: family-assistant
        - name: OTEL_EXPORTER_OTLP_ENDPOINT
          value: {OTEL}
"""


# -- KS701 ----------------------------------------------------------------------------------------------

def owned_pod(dep: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """A ReplicaSet of ``dep`` and a pod of it."""
    rs = {"kind": "ReplicaSet", "metadata": {"name": name.rsplit("-", 1)[0], "namespace": NS, "uid": f"rs-{name}",
                                             "ownerReferences": [{"kind": "Deployment", "controller": True,
                                                                  "name": dep["metadata"]["name"],
                                                                  "uid": dep["metadata"]["uid"]}]}}
    pod = {"kind": "Pod", "metadata": {"name": name, "namespace": NS, "uid": f"pod-{name}", "ownerReferences": [
        {"kind": "ReplicaSet", "name": rs["metadata"]["name"], "uid": f"rs-{name}", "controller": True}]}}
    return [rs, pod]


def test_ks701_seed_missing_collector_live_with_log_corroboration_and_fixes() -> None:
    export = ("Transient error StatusCode.UNAVAILABLE encountered while exporting traces to "
              "otel-collector.homelab.svc.cluster.local:4317, retrying in {}s.")
    logs = {(NS, "family-assistant-backend-7748c945ff-n2kb7", FA): [export.format(2 ** i) for i in range(5)]
            + ["Application startup complete."],
            (NS, "notes-api-5c7d9f-abcde", "notes-api"): [export.format(1)]}
    dep = fa()
    inv = inventory(objects=[dep, *owned_pod(dep, "family-assistant-backend-7748c945ff-n2kb7"), service(FA)],
                    logs=logs)
    [f] = check("KS701", inv)
    assert f.severity.label == "error"
    assert f.message == (f"container {FA}: OTEL_EXPORTER_OTLP_ENDPOINT points at otel-collector.homelab, "
                         "whose Service does not exist in the cluster")
    assert f.evidence[:2] == [f"container {FA}: OTEL_EXPORTER_OTLP_ENDPOINT = {OTEL}",
                              "the cluster has no Service otel-collector in namespace homelab"]
    assert ("5 log lines of its pods mention otel-collector.homelab.svc.cluster.local "
            "(6 across all collected logs)") in f.evidence
    assert "never deployed" in f.root_cause
    collector = blocks(f.fix, "yaml")[0]
    docs = list(yaml.safe_load_all(collector))
    assert [d["kind"] for d in docs] == ["ConfigMap", "Deployment", "Service"]
    assert docs[2]["metadata"] == {"name": "otel-collector", "namespace": "homelab"}
    assert {"name": "otlp-grpc", "port": 4317, "targetPort": 4317} in docs[2]["spec"]["ports"]
    assert ":latest" not in collector
    assert blocks(f.fix, "bash") == ["kubectl apply -f otel-collector.yaml",
                                     f"kubectl set env deployment/{FA} -n homelab -c {FA} OTEL_SDK_DISABLED=true"]


def test_ks701_repo_only_is_a_warning_located_at_the_value(tmp_path: Path) -> None:
    [f] = check("KS701", inventory(tmp_path, files={"fa.yaml": REPO_FA}))
    assert f.severity.label == "warning"
    assert (f.file, f.line) == ("fa.yaml", 18)  # the value line
    assert "is not defined in the repo" in f.message
    assert "the repo defines no Service otel-collector in namespace homelab" in f.evidence
    assert "In fa.yaml:14:" in f.fix
    assert blocks(f.fix, "diff")[-1].endswith('+    - name: OTEL_SDK_DISABLED\n+      value: "true"')


def test_ks701_repo_and_live_are_one_finding_in_the_file(tmp_path: Path) -> None:
    inv = inventory(tmp_path, files={"fa.yaml": REPO_FA}, objects=[fa(), service(FA)])
    found = [f for f in doctor(inv) if f.rule == "KS701"]
    assert len(found) == 1
    assert (found[0].source, found[0].file, found[0].severity.label) == ("repo+cluster", "fa.yaml", "error")


def test_ks701_host_forms_and_same_name_elsewhere() -> None:
    env = [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "otel-collector.homelab:4317"},
           {"name": "JAEGER_ENDPOINT", "value": "http://jaeger:14268/api/traces"},
           {"name": "REDIS_HOST", "value": "redis"}]
    other = service("otel-collector", ns="observability", ports=[{"name": "otlp-grpc", "port": 4317}])
    found = {f.data["variable"]: f for f in check("KS701", inventory(objects=[fa(env), service(FA), other]))}
    assert set(found) == {"OTEL_EXPORTER_OTLP_ENDPOINT", "JAEGER_ENDPOINT", "REDIS_HOST"}
    otlp = found["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert "a Service named otel-collector exists in namespace observability" in otlp.evidence
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=otel-collector.observability.svc.cluster.local:4317" in otlp.fix
    assert f"kubectl set env deployment/{FA} -n homelab -c {FA} REDIS_HOST-" in found["REDIS_HOST"].fix


def test_ks701_credentials_and_secret_names_never_reach_the_finding() -> None:
    env = [{"name": "DATABASE_URL", "value": "postgres://fa:s3cr3t-pw@postgres.homelab:5432/fa"},
           {"name": "SEARCH_URL", "value": "http://search:9200/?api_key=s3cr3t-key&index=fa"},
           {"name": "REDIS_PASSWORD", "value": "redis-pw-123"},
           {"name": "API_URL", "valueFrom": {"secretKeyRef": {"name": "fa", "key": "url"}}}]
    found = check("KS701", inventory(objects=[fa(env), service(FA)]))
    assert [f.data["variable"] for f in found] == ["DATABASE_URL", "SEARCH_URL"]
    text = "\n".join(part for f in found for part in [f.message, *f.evidence, f.fix, f.root_cause])
    assert "postgres://***@postgres.homelab:5432/fa" in text
    assert "http://search:9200/?api_key=***&index=fa" in text
    assert "s3cr3t" not in text and "redis-pw" not in text


def test_ks701_existing_external_or_unknowable_endpoints_pass(tmp_path: Path) -> None:
    env = [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": OTEL},
           {"name": "GITHUB_API_URL", "value": "https://api.github.com"},
           {"name": "OLLAMA_BASE_URL", "value": "http://100.72.14.93:11434"},
           {"name": "LOCAL_ADDR", "value": "localhost:8080"},
           {"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": "grpc"},
           {"name": "UPSTREAM_HOST", "value": f"{FA}.homelab.svc"}]
    assert check("KS701", inventory(objects=[fa(env), service(FA), service("otel-collector")])) == []
    assert check("KS701", inventory(objects=[fa(env)])) == []  # Services not listed: cannot know
    files = {"fa.yaml": REPO_FA, "otel.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: otel-collector\n"
                                              "  namespace: homelab\nspec:\n  ports: [{port: 4317}]\n"}
    assert check("KS701", inventory(tmp_path, files=files)) == []


def test_ks701_an_sdk_switched_off_exports_nothing_but_other_endpoints_still_count() -> None:
    env = [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": OTEL}, {"name": "OTEL_SDK_DISABLED", "value": "true"},
           {"name": "REDIS_HOST", "value": "redis"}]
    found = check("KS701", inventory(objects=[fa(env), service(FA)]))
    assert [f.data["variable"] for f in found] == ["REDIS_HOST"]
    env[1]["value"] = "false"
    found = check("KS701", inventory(objects=[fa(env), service(FA)]))
    assert sorted(f.data["variable"] for f in found) == ["OTEL_EXPORTER_OTLP_ENDPOINT", "REDIS_HOST"]


# -- KS702 ----------------------------------------------------------------------------------------------

def test_ks702_unscraped_workload_gets_a_service_monitor_for_its_service_port() -> None:
    svc = service(FA, labels={"app": FA}, ports=[{"name": "http", "port": 8001}, {"name": "metrics", "port": 9464}])
    [f] = check("KS702", inventory(objects=[fa(), svc]))
    assert f.severity.label == "info"
    assert f.message == f"Deployment {FA}: no Prometheus scrape configuration covers it"
    text = "\n".join(f.evidence)
    assert f"pod template labels: app={FA}" in text and f"Services selecting its pods: {FA}" in text
    assert "ServiceMonitor was not listed from the cluster" in text
    [monitor] = [yaml.safe_load(b) for b in blocks(f.fix, "yaml")]
    assert monitor["kind"] == "ServiceMonitor" and monitor["metadata"] == {"name": FA, "namespace": NS}
    assert monitor["spec"]["selector"] == {"matchLabels": {"app": FA}}
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_ks702_unlabelled_service_and_missing_service_fixes() -> None:
    [f] = check("KS702", inventory(objects=[fa(), service(FA)], listed=["ServiceMonitor"]))
    assert f"kubectl label service {FA} -n homelab app.kubernetes.io/name={FA}" in f.fix
    assert "not listed" not in "\n".join(f.evidence)
    lone = deployment("worker", "registry.local/worker:1.0", ports=[{"name": "metrics", "containerPort": 9100}])
    [g] = check("KS702", inventory(objects=[lone], listed=["ServiceMonitor", "Service"]))
    docs = list(yaml.safe_load_all(blocks(g.fix, "yaml")[0]))
    assert docs[0]["kind"] == "Service" and docs[0]["spec"]["selector"] == {"app": "worker"}
    assert docs[0]["spec"]["ports"] == [{"name": "metrics", "port": 9100, "targetPort": 9100}]
    assert docs[1]["spec"]["endpoints"][0]["port"] == "metrics"


def test_ks702_every_scrape_mechanism_counts_as_coverage() -> None:
    svc = service(FA, labels={"app": FA})
    monitors: list[list[dict[str, Any]]] = [
        [svc, {"kind": "ServiceMonitor", "metadata": {"name": "apps", "namespace": "monitoring"},
               "spec": {"selector": {"matchLabels": {"app": FA}}, "namespaceSelector": {"any": True}}}],
        [svc, {"kind": "PodMonitor", "metadata": {"name": "fa", "namespace": NS},
               "spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": [FA]}]}}}],
        [service(FA, annotations={"prometheus.io/scrape": "true"})],
        [svc, {"kind": "ConfigMap", "metadata": {"name": "prometheus-config", "namespace": NS}, "data": {
            "prometheus.yml": f"scrape_configs:\n- job_name: fa\n  static_configs:\n  - targets: ['{FA}:8001']\n"}}],
    ]
    for objs in monitors:
        assert check("KS702", inventory(objects=[fa(), *objs])) == [], objs[-1]["kind"]
    annotated = fa()
    annotated["spec"]["template"]["metadata"]["annotations"] = {"prometheus.io/scrape": "true"}
    assert check("KS702", inventory(objects=[annotated])) == []


def test_ks702_plain_prometheus_config_gets_a_static_job_and_a_restart_of_its_server() -> None:
    config = {"kind": "ConfigMap", "metadata": {"name": "prometheus-config", "namespace": NS}, "data": {
        "prometheus.yml": "scrape_configs:\n- job_name: node-exporter\n  static_configs:\n"
                          "  - targets: ['node-exporter.homelab.svc:9100']\n"}}
    prom = deployment("prometheus", "prom/prometheus:v2.54.1")
    prom["spec"]["template"]["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "prometheus-config"}}]
    node_exporter = {"kind": "DaemonSet", "metadata": {"name": "node-exporter", "namespace": NS},
                     "spec": {"template": {"metadata": {"labels": {"app": "node-exporter"}}, "spec": {}}}}
    objs = [fa(), service(FA), config, prom, service("prometheus"), node_exporter, service("node-exporter")]
    found = {f.object.name: f for f in check("KS702", inventory(objects=objs)) if f.object}
    assert set(found) == {FA, "prometheus"}  # node-exporter is a static target
    f = found[FA]
    assert "static Prometheus targets cover only: homelab/node-exporter" in f.evidence
    job = yaml.safe_load(blocks(f.fix, "yaml")[0])
    assert job == [{"job_name": FA, "metrics_path": "/metrics",
                    "static_configs": [{"targets": [f"{FA}.homelab.svc:8001"]}]}]
    assert blocks(f.fix, "bash")[0] == ("kubectl edit configmap prometheus-config -n homelab\n"
                                        "kubectl rollout restart deployment/prometheus -n homelab")


def test_ks702_monitor_in_another_namespace_does_not_cover() -> None:
    sm = {"kind": "ServiceMonitor", "metadata": {"name": "apps", "namespace": "monitoring"},
          "spec": {"selector": {"matchLabels": {"app": FA}}}}
    [f] = check("KS702", inventory(objects=[fa(), service(FA, labels={"app": FA}), sm]))
    assert "1 ServiceMonitor/PodMonitor objects found; none selects it" in f.evidence


# -- KS703 ----------------------------------------------------------------------------------------------

def crashing_pod() -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": "homelab-dashboard-5946d57cdf-b7kwx", "namespace": NS},
            "status": {"containerStatuses": [{"name": "dashboard", "restartCount": 598, "state": {"running": {}}},
                                             {"name": "sidecar", "restartCount": 0,
                                              "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}


def test_ks703_no_alert_rules_lists_what_is_missing_with_a_complete_prometheus_rule() -> None:
    [f] = check("KS703", inventory(objects=[fa(), crashing_pod()]))
    assert f.severity.label == "warning"
    assert str(f.object) == "Cluster/test"
    assert f.message == "no alert on container restarts, unavailable replicas, image pull failures"
    text = "\n".join(f.evidence)
    assert "PrometheusRule was not listed from the cluster" in text
    assert "no alert on container restarts (kube_pod_container_status_restarts_total)" in text
    assert "right now homelab/homelab-dashboard-5946d57cdf-b7kwx has a container with 598 restarts" in text
    assert "right now 1 container(s) wait in an image pull back-off" in text
    rule = yaml.safe_load(blocks(f.fix, "yaml")[0])
    rules = rule["spec"]["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == ["PodRestartStorm", "DeploymentReplicasUnavailable", "ImagePullFailing"]
    assert "increase(kube_pod_container_status_restarts_total[1d])) > 5" in rules[0]["expr"]
    assert rules[1]["expr"] == "kube_deployment_status_replicas_unavailable > 0"
    assert 'reason=~"ImagePullBackOff|ErrImagePull"' in rules[2]["expr"]


def test_ks703_partial_coverage_and_recording_rules() -> None:
    pr = {"kind": "PrometheusRule", "metadata": {"name": "apps", "namespace": "monitoring"}, "spec": {"groups": [
        {"name": "apps", "rules": [
            {"alert": "Restarts", "expr": "increase(kube_pod_container_status_restarts_total[1h]) > 3"},
            {"record": "ns:unavailable", "expr": "sum(kube_deployment_status_replicas_unavailable)"}]}]}}
    prom = {"kind": "Prometheus", "metadata": {"name": "k8s", "namespace": "monitoring"},
            "spec": {"ruleSelector": {"matchLabels": {"release": "kube-prometheus-stack"}}}}
    [f] = check("KS703", inventory(objects=[fa(), pr, prom]))
    assert f.data["missing"] == ["unavailable", "image-pull"]
    assert "PrometheusRule monitoring/apps (cluster)" in f.evidence[0]
    rule = yaml.safe_load(blocks(f.fix, "yaml")[0])
    assert rule["metadata"] == {"name": "deployment-health", "namespace": "monitoring",
                                "labels": {"release": "kube-prometheus-stack"}}


def test_ks703_kube_prometheus_style_rules_cover_everything(tmp_path: Path) -> None:
    rules = """\
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: kubernetes-apps, namespace: monitoring}
spec:
  groups:
  - name: kubernetes-apps
    rules:
    - alert: KubePodCrashLooping
      expr: max_over_time(kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff"}[5m]) >= 1
    - alert: KubeDeploymentReplicasMismatch
      expr: kube_deployment_spec_replicas > kube_deployment_status_replicas_available
    - alert: KubeImagePullBackOff
      expr: kube_pod_container_status_waiting_reason{reason=~"ErrImagePull|ImagePullBackOff"} > 0
"""
    files = {"rules.yaml": rules, "fa.yaml": REPO_FA}
    assert check("KS703", inventory(tmp_path, files=files)) == []


def test_ks703_nothing_to_alert_on_without_cluster_or_workloads(tmp_path: Path) -> None:
    files = {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: homelab}\ndata: {a: b}\n"}
    assert check("KS703", inventory(tmp_path, files=files)) == []
