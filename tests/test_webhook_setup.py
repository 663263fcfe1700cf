"""``kubeshape webhook certs`` and ``kubeshape webhook manifests``: certificates a real TLS client and the real
apiserver trust, idempotent renewal, and manifests the apiserver accepts and enforces."""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from typer.testing import CliRunner

from kubeshape import __version__
from kubeshape.admission.certs import ensure_certs, load_cert, load_key, make_serving_cert, write_pair
from kubeshape.errors import KubeshapeError
from testbed.cluster import Cluster

SERVICE_NAMES = ["kubeshape-webhook", "kubeshape-webhook.kubeshape", "kubeshape-webhook.kubeshape.svc",
                 "kubeshape-webhook.kubeshape.svc.cluster.local"]
FILES = ("ca.crt", "ca.key", "tls.crt", "tls.key")


@dataclass
class Run:
    code: int
    stdout: str
    error: str | None = None  # the one-line message the CLI prints for a KubeshapeError


def ks(*args: str) -> Run:
    """``kubeshape webhook ...`` in-process, through the root CLI."""
    from kubeshape.cli.app import app

    result = CliRunner().invoke(app, ["webhook", *args], catch_exceptions=True)
    exc = result.exception
    if isinstance(exc, KubeshapeError):
        return Run(exc.exit_code, result.stdout, str(exc))
    if exc is not None and not isinstance(exc, SystemExit):
        raise exc
    return Run(result.exit_code, result.stdout)


def ks_process(*args: str) -> subprocess.CompletedProcess[str]:
    """``kubeshape webhook ...`` in a real process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "kubeshape", "webhook", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("kubeshape: error: ")
    return lines[0]


def snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    return {n: ((out / n).read_bytes(), (out / n).stat().st_mtime_ns) for n in FILES if (out / n).exists()}


def san(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ext.get_values_for_type(x509.DNSName), [str(i) for i in ext.get_values_for_type(x509.IPAddress)]


@pytest.fixture
def certs_dir(tmp_path: Path) -> Path:
    out = tmp_path / "certs"
    run = ks("certs", "--out", str(out), "--host", "127.0.0.1", "--host", "Webhook.Example.test")
    assert run.code == 0, run
    return out


# -- certs ---------------------------------------------------------------------------------------------------


def test_certs_make_a_ca_and_a_server_cert_for_the_service_and_the_hosts(certs_dir: Path) -> None:
    ca, cert = load_cert(certs_dir / "ca.crt"), load_cert(certs_dir / "tls.crt")
    cert.verify_directly_issued_by(ca)  # raises if the CA did not sign it
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert san(cert) == ([*SERVICE_NAMES, "webhook.example.test"], ["127.0.0.1"])
    now = datetime.now(UTC)
    assert timedelta(days=364) < cert.not_valid_after_utc - now <= timedelta(days=365)
    assert ca.not_valid_after_utc - now > timedelta(days=3649)
    assert (certs_dir / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (certs_dir / "tls.key").stat().st_mode & 0o777 == 0o600
    # the keys belong to their certificates
    assert load_key(certs_dir / "tls.key").public_key() == cert.public_key()
    assert load_key(certs_dir / "ca.key").public_key() == ca.public_key()


def test_certs_print_what_they_wrote_and_the_next_steps(tmp_path: Path) -> None:
    out = tmp_path / "my certs"
    run = ks("certs", "--out", str(out), "-n", "gate")
    assert run.code == 0, run
    assert f"{out}: created a CA (ca.crt, ca.key)" in run.stdout
    assert "issued tls.crt, tls.key for kubeshape-webhook, kubeshape-webhook.gate" in run.stdout
    quoted = f"'{out}"
    assert f"kubeshape webhook manifests -n gate --ca-file {quoted}/ca.crt' | kubectl apply -f -" in run.stdout
    assert (f"kubectl create secret tls kubeshape-webhook-tls --cert={quoted}/tls.crt' --key={quoted}/tls.key' "
            "-n gate") in run.stdout
    cert = load_cert(out / "tls.crt")
    assert "kubeshape-webhook.gate.svc.cluster.local" in san(cert)[0]


def test_a_second_run_changes_nothing(certs_dir: Path) -> None:
    before = snapshot(certs_dir)
    run = ks("certs", "--out", str(certs_dir), "--host", "127.0.0.1", "--host", "webhook.example.test")
    assert run.code == 0, run
    assert "nothing changed" in run.stdout and "kubectl" not in run.stdout
    assert snapshot(certs_dir) == before


def test_a_new_host_renews_the_serving_cert_with_the_same_ca(certs_dir: Path) -> None:
    before = snapshot(certs_dir)
    run = ks("certs", "--out", str(certs_dir), "--host", "127.0.0.1", "--host", "webhook.example.test",
             "--host", "::1")
    assert run.code == 0, run
    after = snapshot(certs_dir)
    assert after["ca.crt"] == before["ca.crt"] and after["ca.key"] == before["ca.key"]
    assert after["tls.crt"][0] != before["tls.crt"][0]
    cert = load_cert(certs_dir / "tls.crt")
    cert.verify_directly_issued_by(load_cert(certs_dir / "ca.crt"))
    assert san(cert)[1] == ["127.0.0.1", "::1"]
    assert "renewed tls.crt, tls.key with the same CA (names added: ::1)" in run.stdout
    assert "rollout restart deployment/kubeshape-webhook" in run.stdout
    assert "kubeshape webhook manifests" not in run.stdout  # the caBundle stays valid


def test_a_serving_cert_close_to_its_end_is_renewed(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    ensure_certs(out, [])
    ca_before = (out / "ca.crt").read_bytes()
    cert, key = make_serving_cert(load_cert(out / "ca.crt"), load_key(out / "ca.key"), SERVICE_NAMES, days=20)
    write_pair(out / "tls.crt", out / "tls.key", cert, key)
    files = ensure_certs(out, [])
    assert len(files.changed) == 1 and "tls.crt expires on" in files.changed[0], files.changed
    renewed = load_cert(files.cert)
    assert renewed.not_valid_after_utc - datetime.now(UTC) > timedelta(days=364)
    assert (out / "ca.crt").read_bytes() == ca_before
    assert ensure_certs(out, []).changed == []


def test_force_makes_a_new_ca(certs_dir: Path) -> None:
    before = snapshot(certs_dir)
    run = ks("certs", "--out", str(certs_dir), "--host", "127.0.0.1", "--host", "webhook.example.test", "--force")
    assert run.code == 0, run
    assert "replaced the CA" in run.stdout and "kubeshape webhook manifests" in run.stdout
    after = snapshot(certs_dir)
    assert all(after[n][0] != before[n][0] for n in FILES)
    load_cert(certs_dir / "tls.crt").verify_directly_issued_by(load_cert(certs_dir / "ca.crt"))


@pytest.mark.parametrize("name", ["ca.crt", "tls.key"])
def test_a_corrupt_file_is_named_and_nothing_is_overwritten(certs_dir: Path, name: str) -> None:
    (certs_dir / name).write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    before = snapshot(certs_dir)
    # a new host would renew the serving certificate: the corrupt file must stop that
    proc = ks_process("certs", "--out", str(certs_dir), "--host", "127.0.0.1", "--host", "other.example.test")
    line = one_line_error(proc)
    assert str(certs_dir / name) in line and "--force" in line
    assert snapshot(certs_dir) == before


def test_a_bad_host_is_a_one_line_error(tmp_path: Path) -> None:
    line = one_line_error(ks_process("certs", "--out", str(tmp_path / "c"), "--host", "https://example.test:8443"))
    assert "--host 'https://example.test:8443'" in line
    assert not (tmp_path / "c").exists()


# -- a real TLS handshake ------------------------------------------------------------------------------------


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def https_server(cert: Path, key: Path, handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    """An HTTPS server on 127.0.0.1 serving with ``cert``/``key``; yields its port."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def get(port: int, ca_file: Path, hostname: str) -> bytes:
    """GET / from 127.0.0.1:port, trusting only ``ca_file`` and checking the certificate is for ``hostname``."""
    ctx = ssl.create_default_context(cafile=str(ca_file))  # with a cafile, the system CAs are not loaded
    assert ctx.check_hostname and ctx.verify_mode is ssl.CERT_REQUIRED
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=hostname) as conn:
        conn.sendall(f"GET / HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
    return data


def test_a_tls_client_that_trusts_only_the_ca_accepts_the_serving_cert(tmp_path: Path) -> None:
    files = ensure_certs(tmp_path / "certs", ["127.0.0.1"])
    assert [Path(p).name for p in (files.ca_cert, files.ca_key, files.cert, files.key)] == list(FILES)
    other = ensure_certs(tmp_path / "other", ["127.0.0.1"])  # another CA
    with https_server(files.cert, files.key, _Hello) as port:
        for hostname in ("127.0.0.1", "kubeshape-webhook.kubeshape.svc"):
            reply = get(port, files.ca_cert, hostname)
            assert reply.startswith(b"HTTP/1.") and reply.endswith(b"hello"), reply
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            get(port, files.ca_cert, "not-the-webhook.example.test")
        with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
            get(port, other.ca_cert, "127.0.0.1")


# -- manifests -----------------------------------------------------------------------------------------------


def manifests(*args: str) -> list[dict[str, Any]]:
    run = ks("manifests", *args)
    assert run.code == 0, run
    return [d for d in yaml.safe_load_all(run.stdout) if d]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in docs}


def test_manifests_hold_everything_to_run_the_webhook(certs_dir: Path) -> None:
    docs = manifests("--ca-file", str(certs_dir / "ca.crt"))
    assert [d["kind"] for d in docs] == ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                                         "ConfigMap", "Deployment", "PodDisruptionBudget", "Service",
                                         "ValidatingWebhookConfiguration"]
    k = by_kind(docs)
    assert all(d["metadata"].get("namespace") == "kubeshape" for d in docs
               if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding",
                                    "ValidatingWebhookConfiguration"))
    rules = k["ClusterRole"]["rules"]
    granted = {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert granted == {(g, r, v) for g, r in [("apps", "deployments"), ("apps", "statefulsets"), ("", "services")]
                       for v in ("get", "list", "watch")}
    assert k["ClusterRoleBinding"]["subjects"] == [{"kind": "ServiceAccount", "name": "kubeshape-webhook",
                                                    "namespace": "kubeshape"}]

    dep = k["Deployment"]["spec"]
    pod = dep["template"]["spec"]
    [c] = pod["containers"]
    assert dep["replicas"] == 2 and pod["serviceAccountName"] == "kubeshape-webhook"
    assert c["image"] == f"ghcr.io/kubeshape/kubeshape:{__version__}"
    assert c["args"] == ["webhook", "serve", "--cert-file", "/tls/tls.crt", "--key-file", "/tls/tls.key",
                         "--port", "8443", "--config", "/config/kubeshape.yaml"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert c["ports"][0]["containerPort"] == 8443
    assert set(c["resources"]) == {"requests", "limits"}
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/tls"]]["secret"]["secretName"] == "kubeshape-webhook-tls"
    assert volumes[mounts["/config"]]["configMap"]["name"] == "kubeshape-config"
    assert k["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    assert k["PodDisruptionBudget"]["spec"]["selector"] == dep["selector"]
    assert k["Service"]["spec"]["ports"][0] == {"name": "https", "port": 443, "targetPort": "https",
                                                     "protocol": "TCP"}
    assert k["Service"]["spec"]["selector"] == dep["selector"]["matchLabels"]
    config = yaml.safe_load(k["ConfigMap"]["data"]["kubeshape.yaml"])
    assert config == {}

    [hook] = k["ValidatingWebhookConfiguration"]["webhooks"]
    assert k["ValidatingWebhookConfiguration"]["metadata"]["name"] == "kubeshape"
    assert hook["name"] == "validate.kubeshape.io"
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == (certs_dir / "ca.crt").read_bytes()
    assert hook["clientConfig"]["service"] == {"namespace": "kubeshape", "name": "kubeshape-webhook",
                                               "path": "/validate", "port": 443}
    assert (hook["failurePolicy"], hook["timeoutSeconds"], hook["sideEffects"]) == ("Ignore", 5, "None")
    assert hook["matchPolicy"] == "Equivalent" and hook["admissionReviewVersions"] == ["v1"]
    gated = {(g, v, r) for rule in hook["rules"] for g in rule["apiGroups"] for v in rule["apiVersions"]
             for r in rule["resources"]}
    assert gated == {("apps", "v1", r) for r in ("deployments", "statefulsets", "daemonsets", "replicasets")} | {
        ("batch", "v1", "jobs"), ("batch", "v1", "cronjobs"), ("", "v1", "pods"),
        ("autoscaling", "v2", "horizontalpodautoscalers")}
    assert all(r["operations"] == ["CREATE", "UPDATE"] and r["scope"] == "Namespaced" for r in hook["rules"])
    assert hook["namespaceSelector"] == {"matchExpressions": [
        {"key": "kubeshape.io/admission", "operator": "NotIn", "values": ["disabled"]},
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "kubeshape"]}]}


def test_manifests_take_the_namespace_image_config_policy_and_selector(certs_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "kubeshape.yaml"
    cfg.write_text("# our gate\nignore: [KS103]\n")
    docs = manifests("--ca-file", str(certs_dir / "ca.crt"), "-n", "gate", "--image", "registry.example/ks:1.2",
                     "--config", str(cfg), "--failure-policy", "Fail", "--timeout-seconds", "10",
                     "--namespace-selector", "team=web", "--namespace-selector", "example.com/gate=on")
    k = by_kind(docs)
    assert k["Namespace"]["metadata"]["name"] == "gate"
    assert k["ConfigMap"]["data"]["kubeshape.yaml"] == "# our gate\nignore: [KS103]\n"
    assert k["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/ks:1.2"
    [hook] = k["ValidatingWebhookConfiguration"]["webhooks"]
    assert hook["clientConfig"]["service"]["namespace"] == "gate"
    assert (hook["failurePolicy"], hook["timeoutSeconds"]) == ("Fail", 10)
    assert hook["namespaceSelector"]["matchLabels"] == {"team": "web", "example.com/gate": "on"}
    assert hook["namespaceSelector"]["matchExpressions"][1]["values"] == ["kube-system", "gate"]
    # a changed config changes the pod template, so applying it rolls the pods
    cfg.write_text("ignore: [KS101]\n")
    again = by_kind(manifests("--ca-file", str(certs_dir / "ca.crt"), "-n", "gate", "--config", str(cfg)))
    assert again["Deployment"]["spec"]["template"] != k["Deployment"]["spec"]["template"]


def test_url_mode_prints_only_the_webhook_configuration(certs_dir: Path) -> None:
    url = "https://127.0.0.1:9443/validate"
    [hook_config] = manifests("--ca-file", str(certs_dir / "ca.crt"), "--url", url)
    assert hook_config["kind"] == "ValidatingWebhookConfiguration"
    client = hook_config["webhooks"][0]["clientConfig"]
    assert client["url"] == url and "service" not in client
    assert base64.b64decode(client["caBundle"]) == (certs_dir / "ca.crt").read_bytes()

    run = ks("manifests", "--ca-file", str(certs_dir / "ca.crt"), "--url", url, "-o", "json")
    assert run.code == 0, run
    doc = json.loads(run.stdout)
    assert (doc["apiVersion"], doc["kind"]) == ("v1", "List")
    assert doc["items"] == [hook_config]


def test_json_output_is_a_list_of_the_same_objects(certs_dir: Path) -> None:
    docs = manifests("--ca-file", str(certs_dir / "ca.crt"))
    run = ks("manifests", "--ca-file", str(certs_dir / "ca.crt"), "-o", "json")
    assert run.code == 0, run
    assert json.loads(run.stdout) == {"apiVersion": "v1", "kind": "List", "items": docs}


@pytest.mark.parametrize(("args", "expected"), [
    (["--failure-policy", "Sometimes"], "--failure-policy"),
    (["--timeout-seconds", "0"], "--timeout-seconds"),
    (["--timeout-seconds", "31"], "--timeout-seconds"),
])
def test_bad_policy_or_timeout_is_a_usage_error(certs_dir: Path, args: list[str], expected: str) -> None:
    proc = ks_process("manifests", "--ca-file", str(certs_dir / "ca.crt"), *args)
    assert proc.returncode == 2, proc
    assert proc.stdout == "" and expected in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("args", "expected"), [
    (["--ca-file", "{d}/missing.crt"], "{d}/missing.crt: no such file"),
    (["--ca-file", "{d}/tls.crt"], "{d}/tls.crt: not a CA certificate"),
    (["--ca-file", "{d}/ca.key"], "{d}/ca.key: not a PEM certificate"),
    (["--ca-file", "{d}/ca.crt", "--url", "http://127.0.0.1:9443/validate"], "HTTPS only"),
    (["--ca-file", "{d}/ca.crt", "--url", "https://127.0.0.1:9443/validate", "--image", "x:1"], "--image"),
    (["--ca-file", "{d}/ca.crt", "--namespace-selector", "team"], "--namespace-selector 'team'"),
    (["--ca-file", "{d}/ca.crt", "-n", "Not_A_Namespace"], "--namespace 'Not_A_Namespace'"),
    (["--ca-file", "{d}/ca.crt", "--config", "{d}/bad.yaml"], "{d}/bad.yaml"),
])
def test_bad_input_to_manifests_is_a_one_line_error(certs_dir: Path, args: list[str], expected: str) -> None:
    (certs_dir / "bad.yaml").write_text("thresholds: {restarts_per_day: many}\n")
    proc = ks_process("manifests", *(a.format(d=certs_dir) for a in args))
    assert expected.format(d=certs_dir) in one_line_error(proc)
    assert proc.stdout == ""


# -- against the real apiserver ------------------------------------------------------------------------------


@pytest.fixture
def namespaces(cluster: Cluster) -> Iterator[Callable[..., str]]:
    """Creates test namespaces (unique names, given labels); deletes them at the end."""
    made: list[str] = []

    def make(**labels: str) -> str:
        name = f"ks-webhook-{uuid.uuid4().hex[:8]}"
        cluster.api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": name, "labels": labels}})
        made.append(name)
        return name

    yield make
    for name in made:
        cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


def test_the_manifests_pass_server_side_dry_run(cluster: Cluster, certs_dir: Path, tmp_path: Path,
                                                namespaces: Callable[..., str]) -> None:
    ns = namespaces(**{"pod-security.kubernetes.io/enforce": "restricted"})
    cfg = tmp_path / "kubeshape.yaml"
    cfg.write_text("registries:\n  private: [registry.example]\n")
    run = ks("manifests", "--ca-file", str(certs_dir / "ca.crt"), "-n", ns, "--config", str(cfg))
    assert run.code == 0, run
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=run.stdout, check=False)
    assert proc.returncode == 0, proc.stderr
    for obj in (f"namespace/{ns}", "serviceaccount/kubeshape-webhook", "clusterrole.rbac.authorization.k8s.io/"
                "kubeshape-webhook", "clusterrolebinding.rbac.authorization.k8s.io/kubeshape-webhook",
                "configmap/kubeshape-config", "deployment.apps/kubeshape-webhook",
                "poddisruptionbudget.policy/kubeshape-webhook", "service/kubeshape-webhook",
                "validatingwebhookconfiguration.admissionregistration.k8s.io/kubeshape"):
        assert f"{obj} " in proc.stdout and "(server dry run)" in proc.stdout, (obj, proc.stdout)
    assert "would violate PodSecurity" not in proc.stderr, proc.stderr
    # the webhook's pod itself is admitted where the restricted Pod Security Standard is enforced
    cluster.api("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "kubeshape-webhook"}})
    template = by_kind([d for d in yaml.safe_load_all(run.stdout) if d])["Deployment"]["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "webhook-pod", **template["metadata"]},
           "spec": template["spec"]}
    proc = cluster.kubectl("apply", "--dry-run=server", "-n", ns, "-f", "-", input=json.dumps(pod), check=False)
    assert proc.returncode == 0 and "pod/webhook-pod created (server dry run)" in proc.stdout, proc.stderr


@dataclass
class Stub:
    """Records the AdmissionReviews a test webhook gets; denies every one of them."""

    seen: list[dict[str, Any]] = field(default_factory=list)


class _DenyAll(http.server.BaseHTTPRequestHandler):
    stub: ClassVar[Stub]

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        request = review["request"]
        self.stub.seen.append(request)
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {
            "uid": request["uid"], "allowed": False,
            "status": {"code": 403, "message": f"stopped at the gate: {request['name']}"}}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def dry_run_deployment(cluster: Cluster, ns: str, name: str) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("create", "deployment", name, "--image=registry.example/app:1.0", "-n", ns,
                           "--dry-run=server", check=False)


def until(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    """Wait for the apiserver to act on a configuration change (it watches webhook configurations)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f}s"
        time.sleep(0.2)


def test_the_apiserver_calls_the_webhook_by_url_trusting_the_ca_bundle(cluster: Cluster, tmp_path: Path,
                                                                      namespaces: Callable[..., str]) -> None:
    """Registered by URL, the webhook is called over TLS verified with caBundle, for the selected namespaces
    only; its failure policy decides what happens when it is down."""
    files = ensure_certs(tmp_path / "certs", ["127.0.0.1"])
    scope = f"test.kubeshape.io/webhook-setup-{uuid.uuid4().hex[:8]}"
    gated = namespaces(**{scope: "on"})
    opted_out = namespaces(**{scope: "on", "kubeshape.io/admission": "disabled"})
    unselected = namespaces()
    stub = Stub()
    handler = type("Handler", (_DenyAll,), {"stub": stub})
    name = f"kubeshape-test-{uuid.uuid4().hex[:8]}"  # never the name a real installation uses

    def register(url: str, policy: str) -> None:
        [config] = manifests("--ca-file", str(files.ca_cert), "--url", url, "--failure-policy", policy,
                             "--namespace-selector", f"{scope}=on")
        config["metadata"]["name"] = name
        proc = cluster.kubectl("apply", "-f", "-", input=json.dumps(config), check=False)
        assert proc.returncode == 0, proc.stderr

    try:
        with https_server(files.cert, files.key, handler) as port:
            url = f"https://127.0.0.1:{port}/validate"
            register(url, "Fail")
            until("the webhook denies in the gated namespace",
                  lambda: "stopped at the gate: probe" in dry_run_deployment(cluster, gated, "probe").stderr)
            denied = dry_run_deployment(cluster, gated, "web")
            assert denied.returncode != 0
            assert 'admission webhook "validate.kubeshape.io" denied the request: stopped at the gate: web' \
                in denied.stderr
            assert {r["namespace"] for r in stub.seen} == {gated}
            assert {(r["kind"]["group"], r["kind"]["kind"], r["operation"]) for r in stub.seen} == {
                ("apps", "Deployment", "CREATE")}
            for ns in (opted_out, unselected):
                proc = dry_run_deployment(cluster, ns, "web")
                assert proc.returncode == 0, proc.stderr
            assert {r["namespace"] for r in stub.seen} == {gated}
        # the webhook is gone: Fail rejects, Ignore lets the request through
        down = dry_run_deployment(cluster, gated, "web")
        assert down.returncode != 0 and 'failed calling webhook "validate.kubeshape.io"' in down.stderr, down
        register(url, "Ignore")
        until("Ignore lets requests through", lambda: dry_run_deployment(cluster, gated, "web").returncode == 0)
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found", check=False)
