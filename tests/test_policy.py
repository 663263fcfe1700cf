"""``kubeshape policy export|install``: the exported objects, the regexes generated from the reference grammar,
the CLI's errors, and installing on the real API server of the test bed (idempotent, --dry-run changes nothing).

The helpers here (a policy installed for one test's namespaces, dry-run requests, image-reference strategies) are
shared with tests/test_policy_agreement.py and tests/test_policy_gate.py.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from kubeshape.cli import policy_cmd
from kubeshape.config import Config, load_config
from kubeshape.errors import KubeshapeError
from kubeshape.findings import ObjectRef
from kubeshape.imageref import parse_or_none
from kubeshape.policy import cel, vap
from kubeshape.policy.kyverno import cluster_policy
from kubeshape.rules.base import get_rule
from testbed.cluster import Cluster, start_cluster
from testbed.procs import free_port

LABEL = "kubeshape-test/policy"  # the namespaces of one test carry LABEL=<its token>; the bindings select them
DENY_RULES = ["KS108", "KS102", "KS101", "KS107"]
WARN_RULES = ["KS101", "KS103"]
POLICY_RULES = frozenset({*DENY_RULES, *WARN_RULES})

# -- running the CLI -------------------------------------------------------------------------------------------


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str
    error: str | None = None  # the one-line message main() prints


def run_cli(*args: str) -> CliResult:
    """``kubeshape policy ...`` in-process, as ``main()`` runs it (KubeshapeError → its message and exit code)."""
    result = CliRunner().invoke(policy_cmd.app, list(args), catch_exceptions=True)
    exc = result.exception
    if isinstance(exc, KubeshapeError):
        return CliResult(exc.exit_code, result.stdout, result.stderr, str(exc))
    if exc is not None and not isinstance(exc, SystemExit):
        raise exc
    return CliResult(result.exit_code, result.stdout, result.stderr)


def run_process(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``kubeshape policy ...`` in a real process: what a user sees on stderr and the exit code."""
    return subprocess.run([sys.executable, "-m", "kubeshape", "policy", *args], capture_output=True, text=True,
                          timeout=120, check=False, cwd=cwd)


def kubeshape_yaml(private: list[str] | tuple[str, ...] = (), allowed: list[str] | tuple[str, ...] = (),
             **more: Any) -> dict[str, Any]:
    """A kubeshape.yaml as data."""
    return {"registries": {"private": list(private), "allowed": list(allowed)}, **more}


def write_config(path: Path, private: list[str] | tuple[str, ...] = (),
                 allowed: list[str] | tuple[str, ...] = (), **more: Any) -> Path:
    path.write_text(yaml.safe_dump(kubeshape_yaml(private, allowed, **more)))
    return path


def write_and_load(tmp_path: Path, private: list[str], allowed: list[str]) -> Config:
    cfg, _ = load_config(write_config(tmp_path / "kubeshape.yaml", private, allowed))
    return cfg


# -- workloads and dry-run requests ----------------------------------------------------------------------------

PATHS = {"Pod": ("/api/v1", "pods"), "Deployment": ("/apis/apps/v1", "deployments"),
         "StatefulSet": ("/apis/apps/v1", "statefulsets"), "DaemonSet": ("/apis/apps/v1", "daemonsets"),
         "ReplicaSet": ("/apis/apps/v1", "replicasets"), "Job": ("/apis/batch/v1", "jobs"),
         "CronJob": ("/apis/batch/v1", "cronjobs")}


def container(name: str, image: str | None, pull_policy: str | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name}
    if image is not None:
        c["image"] = image
    if pull_policy:
        c["imagePullPolicy"] = pull_policy
    return c


def workload(kind: str, name: str, namespace: str, containers: list[dict[str, Any]],
             init: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A minimal valid object of ``kind`` whose pod spec has ``containers`` (and ``init`` containers)."""
    spec: dict[str, Any] = {"containers": containers}
    if init:
        spec["initContainers"] = init
    labels = {"app": name}
    api = "v1" if kind == "Pod" else "batch/v1" if kind in ("Job", "CronJob") else "apps/v1"
    meta = {"name": name, "namespace": namespace, "labels": labels}
    if kind == "Pod":
        return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}
    template = {"metadata": {"labels": labels}, "spec": spec}
    if kind in ("Job", "CronJob"):
        spec["restartPolicy"] = "Never"
        job = {"template": template}
        body = job if kind == "Job" else {"schedule": "0 * * * *", "jobTemplate": {"spec": job}}
        return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": body}
    body: dict[str, Any] = {"selector": {"matchLabels": labels}, "template": template}
    if kind == "StatefulSet":
        body["serviceName"] = name
    return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": body}


def deployment(name: str, namespace: str, image: str | None, pull_policy: str | None = None) -> dict[str, Any]:
    return workload("Deployment", name, namespace, [container("app", image, pull_policy)])


@dataclass(frozen=True)
class Answer:
    """The API server's answer to a dry-run create."""

    status: int
    message: str
    warnings: list[str]

    @property
    def allowed(self) -> bool:
        return self.status < 300

    @property
    def denied_by_policy(self) -> bool:
        return self.status == 403 and f"ValidatingAdmissionPolicy '{vap.DENY}'" in self.message

    @property
    def deny_rule(self) -> str | None:
        m = re.search(r"denied request: (KS\d{3}) ", self.message)
        return m.group(1) if m else None

    @property
    def warned_rules(self) -> set[str]:
        return self.warned_by(vap.WARN)

    def warned_by(self, policy: str) -> set[str]:
        """The rules the warnings of ValidatingAdmissionPolicy ``policy`` name."""
        return {r for w in self.warnings if f"'{policy}'" in w for r in re.findall(r"\b(KS\d{3}) ", w)}


class Api:
    """JSON requests to the test bed's API server as admin; safe to share between threads."""

    def __init__(self, cluster: Cluster) -> None:
        self.client = httpx.Client(base_url=cluster.server, verify=cluster.ssl_context(), timeout=60,
                                   headers={"Authorization": f"Bearer {cluster.token}"})

    def dry_run(self, obj: dict[str, Any]) -> Answer:
        """Create ``obj`` with ``dryRun=All``: admission runs in full, nothing is stored."""
        prefix, plural = PATHS[obj["kind"]]
        resp = self.client.post(f"{prefix}/namespaces/{obj['metadata']['namespace']}/{plural}",
                                params={"dryRun": "All"}, json=obj)
        body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
        return Answer(resp.status_code, str(body.get("message") or ""), resp.headers.get_list("warning"))

    def close(self) -> None:
        self.client.close()


# -- a policy installed for one test's namespaces --------------------------------------------------------------


def _anchor_objects() -> list[tuple[str, dict[str, Any]]]:
    group = "/apis/admissionregistration.k8s.io/v1"
    name = "kubeshape-test-param-anchor"
    pol = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
           "metadata": {"name": name}, "spec": {
               "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
               "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                       "operations": ["CREATE"], "resources": ["configmaps"]}]},
               "validations": [{"expression": "true"}]}}
    bind = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name}, "spec": {
                "policyName": name, "validationActions": ["Deny"],
                "paramRef": {"name": name, "namespace": "kube-system", "parameterNotFoundAction": "Allow"},
                "matchResources": {"namespaceSelector": {"matchLabels": {LABEL: "no-namespace-has-this"}}}}}
    return [(f"{group}/validatingadmissionpolicies/{name}", pol),
            (f"{group}/validatingadmissionpolicybindings/{name}", bind)]


_anchors: dict[str, int] = {}
_anchors_lock = threading.Lock()


@contextmanager
def param_anchor(cluster: Cluster) -> Iterator[None]:
    """Keep one binding with a ConfigMap paramKind for as long as any policy test may run.

    The API server stops its ConfigMap parameter cache for good once no binding uses that kind, and from then on
    answers every later binding "no params found" (kubernetes/kubernetes#133827) -- installing, removing and
    installing again within one API server process, as these tests do, would otherwise fail from the second
    install on. The anchor matches no namespace. Use it through a session fixture: it is removed at session end.
    """
    with _anchors_lock:
        if _anchors.get(cluster.server, 0) == 0:
            for path, obj in _anchor_objects():
                cluster.api("PATCH", path + "?fieldManager=kubeshape-tests&force=true", obj,
                            content_type="application/apply-patch+yaml")
        _anchors[cluster.server] = _anchors.get(cluster.server, 0) + 1
    try:
        yield
    finally:
        with _anchors_lock:
            _anchors[cluster.server] -= 1
            if _anchors[cluster.server] == 0:
                for path, _ in reversed(_anchor_objects()):
                    cluster.api("DELETE", path)


@pytest.fixture(scope="session")
def anchored(cluster: Cluster) -> Iterator[Cluster]:
    """The shared cluster, with the parameter cache kept alive (see param_anchor)."""
    with param_anchor(cluster):
        yield cluster


@dataclass
class Gate:
    """The policies of one test: bound to its namespace ``namespace`` (labelled LABEL=token), parameters in
    ``params_namespace``."""

    cluster: Cluster
    token: str
    api: Api

    @property
    def namespace(self) -> str:
        return f"ks-policy-{self.token}"

    @property
    def params_namespace(self) -> str:
        return f"ks-params-{self.token}"

    @property
    def selector(self) -> str:
        return f"{LABEL}={self.token}"

    def install(self, config: Path, *extra: str) -> CliResult:
        return run_cli("install", "--kubeconfig", str(self.cluster.kubeconfig), "--config", str(config),
                       "--namespace", self.params_namespace, "--namespace-selector", self.selector, *extra)

    def wait_for(self, probe: dict[str, Any], done: Callable[[Answer], bool], what: str,
                 timeout: float = 60) -> Answer:
        """Poll a dry-run of ``probe`` until ``done`` (the API server applies parameter changes a moment later)."""
        end = time.monotonic() + timeout
        answer = self.api.dry_run(probe)
        while not done(answer):
            if time.monotonic() > end:
                raise AssertionError(f"{what}: still {answer}")
            time.sleep(0.2)
            answer = self.api.dry_run(probe)
        return answer

    def remove(self) -> None:
        for kind in ("validatingadmissionpolicybinding", "validatingadmissionpolicy"):
            self.cluster.kubectl("delete", kind, vap.DENY, vap.WARN, "--ignore-not-found")
        self.cluster.kubectl("delete", "namespace", self.namespace, self.params_namespace, "--ignore-not-found",
                             "--wait=false")


@contextmanager
def gated(cluster: Cluster, tmp_path: Path, *, private: list[str] | tuple[str, ...] = (),
          allowed: list[str] | tuple[str, ...] = (), failure_policy: str = "Fail", **more: Any) -> Iterator[Gate]:
    """Install the policies with ``policy install`` for a namespace of this test only (kubeshape.yaml: the
    registries and ``more``); remove them afterwards."""
    gate = Gate(cluster, uuid.uuid4().hex[:10], Api(cluster))
    cluster.kubectl("create", "namespace", gate.namespace)
    cluster.kubectl("label", "namespace", gate.namespace, gate.selector)
    config = write_config(tmp_path / f"kubeshape-{gate.token}.yaml", private, allowed, **more)
    try:
        result = gate.install(config, "--failure-policy", failure_policy)
        assert result.code == 0, result
        assert "Checked: the API server enforces kubeshape-deny" in result.stdout, result
        # both policies judge, with these parameters (install's own check needs only one)
        probe = workload("Deployment", "gate-probe", gate.namespace, [container("a", "Bad/Image"),
                                                                       container("b", "gate-probe")])
        gate.wait_for(probe, lambda a: a.deny_rule == "KS108" and "KS103" in a.warned_rules, "both policies judge")
        yield gate
    finally:
        gate.remove()
        gate.api.close()


# -- image references -------------------------------------------------------------------------------------------

_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_HEX = "0123456789abcdef"
alnum = st.text(_ALNUM, min_size=1, max_size=6)
separator = st.sampled_from([".", "_", "__", "-", "---"])


@st.composite
def path_component(draw: st.DrawFn) -> str:
    parts = [draw(alnum)]
    for _ in range(draw(st.integers(0, 2))):
        parts += [draw(separator), draw(alnum)]
    return "".join(parts)


paths = st.lists(path_component(), min_size=1, max_size=3).map("/".join)
dns_label = st.from_regex(r"[a-zA-Z0-9]{1,5}(-{1,2}[a-zA-Z0-9]{1,4})?", fullmatch=True)
hosts = st.one_of(
    st.sampled_from(["ghcr.io", "docker.io", "index.docker.io", "quay.io", "registry.example.com", "a.example.com",
                     "x.y.example.com", "example.com", "localhost", "127.0.0.1", "10.0.0.7", "[::1]", "[fe80::1]",
                     "Registry.Example.COM", "REGISTRY", "my-registry", "registry-1.docker.io"]),
    st.lists(dns_label, min_size=2, max_size=3).map(".".join),
)
ports = st.sampled_from(["", "", ":5000", ":30500", ":443"])
tags = st.one_of(
    st.sampled_from(["latest", "v1", "1.4.2", "phase2-mcp-logging-fix", "_x", "A.b-C", "LATEST", "latest-1",
                     "t" * 127, "t" * 128]),
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True),
)


def _hex(n: int) -> st.SearchStrategy[str]:
    return st.text(_HEX, min_size=n, max_size=n)


digests = st.one_of(
    _hex(64).map("sha256:".__add__), _hex(96).map("sha384:".__add__), _hex(128).map("sha512:".__add__),
    st.builds("{}:{}".format, st.sampled_from(["sha256+b64u", "multihash", "blake3"]),
              st.from_regex(r"[a-zA-Z0-9=_-]{32,40}", fullmatch=True)),
)


@st.composite
def references(draw: st.DrawFn) -> str:
    """References as the distribution grammar builds them: with or without a registry (names, IPs, ports,
    localhost), tag, digest, both or neither."""
    name = draw(paths)
    if draw(st.booleans()):
        name = f"{draw(hosts)}{draw(ports)}/{name}"
    ending = draw(st.sampled_from(["tag", "tag", "digest", "both", "none"]))
    if ending in ("tag", "both"):
        name += ":" + draw(tags)
    if ending in ("digest", "both"):
        name += "@" + draw(digests)
    return name


_NEAR_MISSES: list[Callable[[str], str]] = [
    lambda r: r.upper(),  # uppercase path (and tag)
    lambda r: r.replace("/", "//", 1) if "/" in r else r + "//x",  # empty component
    lambda r: r.split("@")[0].split(":")[0] + ":",  # ':' without a tag
    lambda r: r.split("@")[0] + "/",  # trailing '/'
    lambda r: "-" + r,  # leading '-'
    lambda r: r.split("@")[0] + "@sha256:" + "a" * 63,  # digest one short
    lambda r: r.split("@")[0] + "@sha256:" + "A" * 64,  # uppercase hex
    lambda r: r.split("@")[0] + "@sha512:" + "a" * 64,  # sha512 with a sha256 length
    lambda r: r.split("@")[0] + "@",  # '@' without a digest
    lambda r: r + "@@sha256:" + "a" * 64,
    lambda r: r.split("@")[0].split(":")[0] + ":" + "t" * 129,  # tag too long
    lambda r: r.split("@")[0].split(":")[0] + ":-tag",  # tag starting with '-'
    lambda r: "a" * 256 + ":" + r.rsplit(":", 1)[-1].replace("/", ""),  # name too long
    lambda r: "ho_st.example.com/" + r,  # a dotted first component that is no domain
    lambda r: "host:port/" + r,  # port that is no number
    lambda r: r.replace("/", "/-", 1) if "/" in r else r + "/-x",  # component starting with '-'
    lambda r: r.replace(".", "..", 1) if "." in r else r + "..x",
    lambda r: r + " ",  # trailing space
    lambda r: r.replace("/", " /", 1) if "/" in r else "a b",
]


@st.composite
def near_misses(draw: st.DrawFn) -> str:
    """A grammatical reference with one thing wrong (most are invalid; the parser decides, not this list)."""
    return draw(st.sampled_from(_NEAR_MISSES))(draw(references()))


any_reference = st.one_of(references(), references(), near_misses())

HAND_PICKED = [
    "family-assistant:phase2-mcp-logging-fix", "family-assistant", "nginx", "nginx:latest", "library/nginx:1.27",
    "100.81.76.55:30500/family-assistant:me-fixed", "127.0.0.1:30500/family-assistant:latest",
    "127.0.0.1:30500/family-assistant", "localhost/app:1", "localhost:5000/app", "localhost:5000",
    "LOCALHOST/app:1", "Foo/bar:1", "foo/Bar:1", "docker.io/library/redis:7.4", "index.docker.io/library/redis:7",
    "ghcr.io/pesuga/homelab/homelab-dashboard:latest", "registry.example.com/team/app:1.0",
    "a.example.com/x@sha256:" + "0" * 64, "app@sha256:" + "f" * 64, "app:1@sha256:" + "e" * 64,
    "app@sha384:" + "1" * 96, "app@sha512:" + "2" * 128, "app@sha256:" + "0" * 65, "app@sha256:" + "G" * 64,
    "app@foo:" + "a" * 31, "app@foo:" + "a" * 32, "app@Foo:" + "a" * 32, "a" * 64, "a" * 63, "a" * 64 + ":v1",
    "ghcr.io/" + "a" * 64, "a" * 255, "a" * 256, "ghcr.io/" + "a" * 247, "ghcr.io/" + "a" * 248,
    "app:" + "v" * 128, "app:" + "v" * 129, "[::1]:5000/app:1", "[::1]/app", "[fe80::1%eth0]/app",
    "a_b.c/x:1", "a.b_c/x", "a__b/c", "a___b/c", "a--b/c", "a-/b", "_a/b", "a//b", "a/", "/a", ":a", "a:",
    "@sha256:" + "a" * 64, "a b:1", " a", "a ", "a\tb", "ñ/app", "app:tag with space", "app:tag:twice",
    "registry.example.com:5000/team/app:1.0", "registry.example.com:abc/app", "registry.example.com:/app",
    "Registry.Example.COM/app:1", "quay.io/app:1", "x.example.com/app", "example.com/app", "sub.quay.io/x",
]
# (image, imagePullPolicy) pairs the agreement test sends through the API server
HAND_PICKED_CASES: list[tuple[str, str | None]] = [(r, None) for r in HAND_PICKED] + [
    ("family-assistant:fixed", "Never"), ("127.0.0.1:30500/family-assistant:fixed", "Never"),
    ("Bad/Image", "Never"), ("nginx:1.27", "Always"), ("ghcr.io/x:latest", "IfNotPresent"),
]
pull_policies = st.sampled_from([None, None, None, None, None, None, "IfNotPresent", "Always", "Never"])


def drawn_cases(n: int = 320) -> list[tuple[str, str | None]]:
    """``n`` (image, pull policy) pairs drawn from the strategies, the same on every run."""
    out: list[tuple[str, str | None]] = []

    @settings(max_examples=n, derandomize=True, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(st.tuples(any_reference, pull_policies))
    def collect(case: tuple[str, str | None]) -> None:
        out.append(case)

    collect()
    return out


# -- export: unit tests -----------------------------------------------------------------------------------------


def _export(*args: str) -> list[dict[str, Any]]:
    result = run_cli("export", *args)
    assert result.code == 0, result
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_export_is_two_policies_their_bindings_and_the_registries_of_the_kubeshape_yaml_found_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path / "kubeshape.yaml", ["127.0.0.1:30500", "100.81.76.55:30500"],
                 ["127.0.0.1:30500", "ghcr.io", "*.example.com"], ignore=["KS103"], annotation_ignores=False,
                 suppressions=[{"rule": "KS1xx", "object": "legacy/*", "reason": "moving"}])
    (tmp_path / "apps").mkdir()
    monkeypatch.chdir(tmp_path / "apps")  # found from a subdirectory, as the other commands find it

    docs = _export("--namespace-selector", "team=web", "--namespace", "gatekeeping")
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Namespace", "gatekeeping"), ("ConfigMap", "kubeshape-policy"),
        ("ValidatingAdmissionPolicy", "kubeshape-deny"), ("ValidatingAdmissionPolicyBinding", "kubeshape-deny"),
        ("ValidatingAdmissionPolicy", "kubeshape-warn"), ("ValidatingAdmissionPolicyBinding", "kubeshape-warn")]
    cm, deny, deny_binding, warn, warn_binding = docs[1:]
    assert cm["metadata"]["namespace"] == "gatekeeping"
    assert cm["data"]["privateRegistries"] == "127.0.0.1:30500,100.81.76.55:30500"
    assert cm["data"]["allowedRegistryGlobs"] == "127.0.0.1:30500, ghcr.io, *.example.com"
    assert re.fullmatch(cm["data"]["allowedRegistries"], "a.example.com")
    assert not re.fullmatch(cm["data"]["allowedRegistries"], "a.example.org")
    assert (cm["data"]["ignoredRules"], cm["data"]["annotationIgnores"]) == ("KS103", "false")
    assert re.fullmatch(cm["data"]["suppressions"], "KS101|legacy/Deployment/api")
    assert not re.fullmatch(cm["data"]["suppressions"], "KS201|legacy/Deployment/api")

    for policy, binding, action in ((deny, deny_binding, "Deny"), (warn, warn_binding, "Warn")):
        assert policy["apiVersion"] == binding["apiVersion"] == "admissionregistration.k8s.io/v1"
        spec = policy["spec"]
        assert spec["failurePolicy"] == "Fail"
        assert spec["paramKind"] == {"apiVersion": "v1", "kind": "ConfigMap"}
        rules = spec["matchConstraints"]["resourceRules"]
        assert {r for rule in rules for r in rule["resources"]} == {
            "pods", "deployments", "statefulsets", "daemonsets", "replicasets", "jobs", "cronjobs"}
        assert all(rule["operations"] == ["CREATE", "UPDATE"] for rule in rules)
        excluded = {e["key"]: e for e in spec["matchConstraints"]["namespaceSelector"]["matchExpressions"]}
        assert excluded["kubernetes.io/metadata.name"]["operator"] == "NotIn"
        assert excluded["kubernetes.io/metadata.name"]["values"] == ["kube-system"]
        assert excluded["kubeshape.io/admission"]["values"] == ["disabled"]
        names = [v["name"] for v in spec["variables"]]
        assert len(names) == len(set(names))
        text = json.dumps(spec["validations"]) + json.dumps(spec["variables"])
        assert all(f"variables.{n}" in text for n in names)  # no variable is left unused
        assert binding["spec"]["policyName"] == policy["metadata"]["name"]
        assert binding["spec"]["validationActions"] == [action]
        assert binding["spec"]["paramRef"] == {"name": "kubeshape-policy", "namespace": "gatekeeping",
                                               "parameterNotFoundAction": "Deny"}
        assert binding["spec"]["matchResources"] == {"namespaceSelector": {"matchLabels": {"team": "web"}}}
    assert [v["message"].split()[0] for v in deny["spec"]["validations"]] == DENY_RULES
    assert [v["message"].split()[0] for v in warn["spec"]["validations"]] == WARN_RULES

    as_json = json.loads(run_cli("export", "-o", "json", "--namespace-selector", "team=web", "--namespace",
                                 "gatekeeping").stdout)
    assert as_json["apiVersion"] == "v1" and as_json["kind"] == "List"
    assert as_json["items"] == docs

    ignore = _export("--failure-policy", "Ignore")
    assert {d["spec"]["failurePolicy"] for d in ignore if d["kind"] == "ValidatingAdmissionPolicy"} == {"Ignore"}
    assert all("matchResources" not in d["spec"] for d in ignore if d["kind"].endswith("Binding"))


def test_every_check_names_its_rule_and_the_fix() -> None:
    for check in cel.checks():
        rule = get_rule(check.rule)
        assert rule is not None
        head = f"{check.rule} {rule.name}: "
        assert check.message.startswith(head) and "Fix: " in check.message
        assert check.message_expression.startswith(f"'{head}container ' + variables.{check.offenders}[0].name")
        assert "Fix: " in check.message_expression and ".image" in check.message_expression
        assert "\n" not in check.message  # the API server refuses messages with line breaks


def test_config_errors_and_a_missing_config_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "kubeshape.yaml"
    bad.write_text("registries:\n  privat: [x]\n")
    result = run_cli("export", "--config", str(bad))
    assert result.code == 2 and result.error is not None
    assert str(bad) in result.error and "registries.privat" in result.error
    missing = run_cli("export", "--config", str(tmp_path / "nope.yaml"))
    assert missing.code == 2 and missing.error is not None and "nope.yaml" in missing.error


def test_globs_become_anchored_regexes_with_literal_dots() -> None:
    regex = cel.glob_regex(["*.example.com", "127.0.0.1:30500", "ghcr.io", "registry-[0-9].local", "[!x]y.io"])
    assert regex.startswith("^(?s:") and regex.endswith(")$")
    assert r"127\.0\.0\.1\:30500" in regex
    matches = ["a.example.com", "a.b.example.com", ".example.com", "127.0.0.1:30500", "ghcr.io",
               "registry-7.local", "ay.io"]
    misses = ["example.com", "a.example.com.evil", "aexample.com", "127a0a0a1:30500", "127.0.0.1:305001",
              "xghcr.io", "ghcrXio", "registry-x.local", "xy.io"]
    assert [h for h in matches if not re.search(regex, h)] == []
    assert [h for h in misses if re.search(regex, h)] == []
    assert cel.glob_regex([]) == ""


_GLOB_CHARS = "ab.-:*?[]!^\\z0"


@settings(max_examples=2000, derandomize=True, database=None, deadline=None)
@given(globs=st.lists(st.text(_GLOB_CHARS, max_size=8), min_size=1, max_size=3),
       host=st.text("ab.-:z0![]^\\", max_size=8))
def test_glob_regexes_match_exactly_what_fnmatch_matches(globs: list[str], host: str) -> None:
    expected = any(fnmatch.fnmatchcase(host, g) for g in globs)
    assert (re.search(cel.glob_regex(globs), host) is not None) == expected, (globs, host, cel.glob_regex(globs))


@settings(max_examples=1000, derandomize=True, database=None, deadline=None)
@given(suppressions=st.lists(st.tuples(st.sampled_from(["*", "KS101", "KS1xx", "KS103", "KS2xx"]),
                                       st.text("ab*?[]!-/Dy", min_size=1, max_size=8)), min_size=1, max_size=3),
       rule=st.sampled_from(["KS101", "KS103", "KS108", "KS205"]),
       namespace=st.sampled_from(["", "a", "ab"]), name=st.text("ab-", min_size=1, max_size=4))
def test_the_suppression_regex_matches_what_the_suppressions_match(
        suppressions: list[tuple[str, str]], rule: str, namespace: str, name: str) -> None:
    cfg = Config.model_validate({"suppressions": [{"rule": r, "object": o, "reason": "x"}
                                                  for r, o in suppressions]})
    ref = ObjectRef("Deployment", namespace, name)
    regex = cel.suppression_regex(cfg)
    ours = re.search(regex, f"{rule}|{ref}") is not None or re.search(regex, f"{rule}|{name}") is not None
    assert ours == any(s.matches(rule, ref) for s in cfg.suppressions), (regex, rule, str(ref))


@settings(max_examples=1500, derandomize=True, database=None, deadline=None)
@given(ref=any_reference)
def test_the_regexes_accept_exactly_what_the_reference_parser_accepts(ref: str) -> None:
    parsed = parse_or_none(ref)
    assert cel.valid_in_python(ref) == (parsed is not None), (ref, parsed)
    if parsed is not None:  # the helpers the checks use on valid references
        assert (re.search(cel.QUALIFIED, ref) is not None) == parsed.qualified, ref
        if parsed.digest is None:
            assert (re.search(cel.TAGGED.replace("$", r"\Z"), ref) is not None) == (parsed.tag is not None), ref


def test_the_regexes_agree_with_the_parser_on_the_hand_picked_edges() -> None:
    wrong = [r for r in HAND_PICKED if cel.valid_in_python(r) != (parse_or_none(r) is not None)]
    assert wrong == []


def test_regexes_are_re2_compatible_text() -> None:
    """RE2 has no look-around, back-references, possessive or atomic groups."""
    patterns = [cel.REFERENCE, cel.DOTTED_FIRST, cel.DOMAIN_FIRST, cel.IDENTIFIER, cel.NAME_LENGTH,
                cel.REGISTERED_ALGORITHM, cel.REGISTERED_DIGEST, cel.QUALIFIED, cel.TAGGED,
                cel.glob_regex(["*.a", "[!b]?"])]
    for p in patterns:
        assert not re.search(r"\(\?[=!<>]|\\[1-9]|[*+?]\+|\(\?P", p), p


# -- kyverno ------------------------------------------------------------------------------------------------------


def test_kyverno_export_is_one_cluster_policy_with_a_cel_rule_per_check(tmp_path: Path) -> None:
    config = write_config(tmp_path / "kubeshape.yaml", ["127.0.0.1:30500"], ["127.0.0.1:30500", "*.example.com"])
    docs = _export("--format", "kyverno", "--config", str(config), "--namespace-selector", "team=web")
    assert len(docs) == 1
    policy = docs[0]
    assert (policy["apiVersion"], policy["kind"], policy["metadata"]["name"]) == (
        "kyverno.io/v1", "ClusterPolicy", "kubeshape")
    assert "namespace" not in policy["metadata"]
    assert policy["metadata"]["annotations"]["pod-policies.kyverno.io/autogen-controllers"] == "none"
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail" and spec["background"] is True
    assert "validationFailureAction" not in spec  # deprecated: each rule says it
    rules = spec["rules"]
    assert [(r["validate"]["failureAction"], r["name"].split("-")[0]) for r in rules] == [
        *(("Enforce", r.lower()) for r in DENY_RULES), *(("Audit", r.lower()) for r in WARN_RULES)]
    for rule in rules:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", rule["name"]) and len(rule["name"]) <= 63
        assert set(rule) == {"name", "match", "exclude", "validate"}
        [match] = rule["match"]["any"]
        assert set(match["resources"]["kinds"]) == set(cel.WORKLOAD_KINDS)
        assert match["resources"]["operations"] == ["CREATE", "UPDATE"]
        assert match["resources"]["namespaceSelector"] == {"matchLabels": {"team": "web"}}
        assert {"resources": {"namespaces": ["kube-system"]}} in rule["exclude"]["any"]
        validate = rule["validate"]
        assert set(validate) == {"failureAction", "cel"}
        assert set(validate["cel"]) == {"variables", "expressions"}
        [expr] = validate["cel"]["expressions"]
        assert set(expr) == {"expression", "messageExpression", "message"}
        assert expr["message"].startswith(rule["name"].split("-")[0].upper() + " ")
        text = json.dumps(validate["cel"])
        assert "params" not in text  # Kyverno gets the registries written in
        assert all(f"variables.{v['name']}" in text for v in validate["cel"]["variables"])
    registries = json.dumps(rules)
    assert "r'127.0.0.1:30500'" in registries and r"\\.example\\.com" in registries


def _kyverno_as_vaps(policy: dict[str, Any], token: str) -> list[dict[str, Any]]:
    """The Kyverno rules' CEL as two ValidatingAdmissionPolicies (Enforce → Deny, Audit → Warn) with bindings, so
    that the Kubernetes CEL environment Kyverno's validate.cel uses compiles and runs them."""
    out: list[dict[str, Any]] = []
    for action, kyverno_action in (("Deny", "Enforce"), ("Warn", "Audit")):
        name = f"kubeshape-test-kyverno-{action.lower()}"
        variables: dict[str, str] = {}
        validations = []
        for rule in policy["spec"]["rules"]:
            if rule["validate"]["failureAction"] != kyverno_action:
                continue
            for v in rule["validate"]["cel"]["variables"]:
                assert variables.setdefault(v["name"], v["expression"]) == v["expression"]
            validations += [{**e, "reason": "Forbidden"} for e in rule["validate"]["cel"]["expressions"]]
        order = [v.name for v in cel.variables(cel.literal_settings(Config()))]
        out.append({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                    "metadata": {"name": name}, "spec": {
                        "failurePolicy": "Fail",
                        "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                                                                "operations": ["CREATE", "UPDATE"],
                                                                "resources": ["deployments"]}]},
                        "variables": [{"name": n, "expression": variables[n]} for n in order if n in variables],
                        "validations": validations}})
        out.append({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
                    "metadata": {"name": name}, "spec": {
                        "policyName": name, "validationActions": [action],
                        "matchResources": {"namespaceSelector": {"matchLabels": {LABEL: token}}}}})
    return out


def test_the_kyverno_rules_compile_and_decide_like_the_policy_in_the_kubernetes_cel_environment(
        anchored: Cluster, tmp_path: Path) -> None:
    cluster = anchored
    token = uuid.uuid4().hex[:10]
    namespace = f"ks-kyverno-{token}"
    policy = cluster_policy(write_and_load(tmp_path, ["127.0.0.1:30500"], ["127.0.0.1:30500", "*.example.com"]))
    objects = _kyverno_as_vaps(policy, token)
    api = Api(cluster)
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("label", "namespace", namespace, f"{LABEL}={token}")
    try:
        cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                               "items": objects}))
        probe = workload("Deployment", "probe", namespace, [container("a", "Bad/Image"), container("b", "x")])
        end = time.monotonic() + 60
        answer = api.dry_run(probe)
        while not (answer.deny_rule == "KS108" and answer.warnings) and time.monotonic() < end:
            time.sleep(0.2)
            answer = api.dry_run(probe)
        assert answer.deny_rule == "KS108", answer
        expected = {  # image → (rule that denies, rules that warn)
            "family-assistant:fixed": ("KS101", set()),
            "127.0.0.1:30500/app:1.0": (None, set()),
            "127.0.0.1:30500/app": (None, {"KS103"}),
            "a.example.com/app:latest": (None, {"KS103"}),
            "quay.io/app:1": ("KS107", set()),
            "Bad/Image": ("KS108", set()),
        }
        for image, (deny, warns) in expected.items():
            got = api.dry_run(deployment("app", namespace, image))
            warned = got.warned_by("kubeshape-test-kyverno-warn")
            assert (got.deny_rule, got.allowed, warned) == (deny, deny is None, warns), (image, got)
        never = api.dry_run(deployment("app", namespace, "127.0.0.1:30500/app:1.0", "Never"))
        assert never.deny_rule == "KS102", never
    finally:
        for obj in reversed(objects):
            cluster.kubectl("delete", obj["kind"].lower(), obj["metadata"]["name"], "--ignore-not-found")
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")
        api.close()


# -- CLI errors -------------------------------------------------------------------------------------------------


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("kubeshape: error: "), stderr
    return lines[0]


def test_a_bad_format_or_selector_or_namespace_is_a_usage_error(tmp_path: Path) -> None:
    bad_format = run_cli("export", "--format", "opa")
    assert bad_format.code == 2 and "'opa' is not one of" in bad_format.stderr
    selector = run_cli("export", "--namespace-selector", "team")
    assert selector.code == 2 and selector.error is not None and "KEY=VALUE" in selector.error
    namespace = run_cli("export", "--namespace", "Not_A_Namespace")
    assert namespace.code == 2 and namespace.error is not None and "--namespace" in namespace.error
    failure = run_cli("export", "--failure-policy", "Sometimes")
    assert failure.code == 2

    proc = run_process("export", "--namespace-selector", "=x", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "--namespace-selector" in _one_line(proc.stderr)


def test_an_unreachable_cluster_exits_3_with_one_line(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": f"https://127.0.0.1:{free_port()}",
                                                  "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "u"}}]}))
    result = run_cli("install", "--kubeconfig", str(kubeconfig), "--request-timeout", "5s")
    assert result.code == 3 and result.error is not None and "cannot reach" in result.error
    proc = run_process("install", "--kubeconfig", str(kubeconfig), "--request-timeout", "5s", cwd=tmp_path)
    assert proc.returncode == 3 and proc.stdout == ""
    line = _one_line(proc.stderr)
    assert "'gone'" in line and "Traceback" not in proc.stderr

    missing = run_process("install", "--kubeconfig", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode == 2 and "nope" in _one_line(missing.stderr)


# -- install on the real API server -----------------------------------------------------------------------------


def _get(cluster: Cluster, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    args = ["get", kind, name, "-o", "json", "--ignore-not-found", "--show-managed-fields"]
    args += ["-n", namespace] if namespace else []
    out = cluster.kubectl(*args).stdout
    return json.loads(out) if out.strip() else None


def test_install_applies_everything_idempotently_and_dry_run_changes_nothing(anchored: Cluster,
                                                                             tmp_path: Path) -> None:
    cluster = anchored
    gate = Gate(cluster, uuid.uuid4().hex[:10], Api(cluster))
    config = write_config(tmp_path / "kubeshape.yaml", ["127.0.0.1:30500"], ["127.0.0.1:30500", "ghcr.io"])
    cluster.kubectl("create", "namespace", gate.namespace)
    cluster.kubectl("label", "namespace", gate.namespace, gate.selector)
    try:
        dry = gate.install(config, "--dry-run")
        assert dry.code == 0, dry
        assert dry.stdout.splitlines() == [
            f"Namespace {gate.params_namespace}: would be created",
            f"ConfigMap kubeshape-policy in namespace {gate.params_namespace}: would be created",
            "ValidatingAdmissionPolicy kubeshape-deny: would be created",
            "ValidatingAdmissionPolicyBinding kubeshape-deny: would be created",
            "ValidatingAdmissionPolicy kubeshape-warn: would be created",
            "ValidatingAdmissionPolicyBinding kubeshape-warn: would be created",
            "Dry run: nothing was changed."]
        for kind, name in (("validatingadmissionpolicy", vap.DENY), ("validatingadmissionpolicybinding", vap.WARN),
                           ("namespace", gate.params_namespace)):
            assert _get(cluster, kind, name) is None, f"--dry-run created {kind} {name}"
        probe = deployment("probe", gate.namespace, "Bad/Image")
        assert gate.api.dry_run(probe).allowed  # nothing gates the namespace

        first = gate.install(config)
        assert first.code == 0, first
        assert "created" in first.stdout and "Checked: the API server enforces" in first.stdout
        listed = cluster.kubectl("get", "validatingadmissionpolicies", "-o", "name").stdout.split()
        assert {f"validatingadmissionpolicy.admissionregistration.k8s.io/{n}" for n in (vap.DENY, vap.WARN)} \
            <= set(listed)
        bindings = cluster.kubectl("get", "validatingadmissionpolicybindings", "-o", "name").stdout.split()
        assert {f"validatingadmissionpolicybinding.admissionregistration.k8s.io/{n}" for n in (vap.DENY, vap.WARN)} \
            <= set(bindings)
        params = _get(cluster, "configmap", vap.PARAMS, gate.params_namespace)
        assert params is not None and params["data"]["privateRegistries"] == "127.0.0.1:30500"
        managers = {m["manager"] for m in params["metadata"]["managedFields"]}
        assert managers == {"kubeshape"}
        assert gate.api.dry_run(probe).deny_rule == "KS108"

        def versions() -> dict[str, Any]:
            """Generations of the policies and bindings (their status changes on its own), the ConfigMap's
            resourceVersion."""
            objs = [_get(cluster, "validatingadmissionpolicy", n) for n in (vap.DENY, vap.WARN)]
            objs += [_get(cluster, "validatingadmissionpolicybinding", n) for n in (vap.DENY, vap.WARN)]
            out: dict[str, Any] = {o["kind"] + o["metadata"]["name"]: o["metadata"]["generation"] for o in objs if o}
            params = _get(cluster, "configmap", vap.PARAMS, gate.params_namespace)
            out["params"] = params["metadata"]["resourceVersion"] if params else None
            return out

        before = versions()
        again = gate.install(config)
        assert again.code == 0, again
        assert [line.rsplit(": ", 1)[1] for line in again.stdout.splitlines()[:6]] == ["unchanged"] * 6
        assert versions() == before

        write_config(config, ["127.0.0.1:30500"], ["127.0.0.1:30500", "ghcr.io", "quay.io"])
        dry_change = gate.install(config, "--dry-run")
        assert f"ConfigMap kubeshape-policy in namespace {gate.params_namespace}: would be configured" \
            in dry_change.stdout
        assert versions() == before
        changed = gate.install(config)
        assert f"ConfigMap kubeshape-policy in namespace {gate.params_namespace}: configured" in changed.stdout
        params = _get(cluster, "configmap", vap.PARAMS, gate.params_namespace)
        assert params is not None and params["data"]["allowedRegistryGlobs"] == "127.0.0.1:30500, ghcr.io, quay.io"
        gate.wait_for(deployment("probe", gate.namespace, "quay.io/app:1"), lambda a: a.allowed,
                      "quay.io allowed after the new install")

        rescoped = run_cli("install", "--kubeconfig", str(cluster.kubeconfig), "--config", str(config),
                           "--namespace", gate.params_namespace, "--namespace-selector", f"{LABEL}=none-{gate.token}")
        assert rescoped.code == 0, rescoped
        assert "ValidatingAdmissionPolicyBinding kubeshape-deny: configured" in rescoped.stdout
        assert "Not checked: no namespace the bindings select exists yet" in rescoped.stdout
        gate.wait_for(probe, lambda a: a.allowed, "the namespace is no longer gated")
    finally:
        gate.remove()
        gate.api.close()


def test_install_on_an_api_server_that_lost_its_parameter_cache_unblocks_deploys(tmp_path: Path) -> None:
    """kubernetes/kubernetes#133827 on a private API server: once the policies were removed, a new install would
    deny every gated write with "no params found". install sees it, removes the bindings and says what to do."""
    own = start_cluster(tmp_path / "cluster")
    try:
        own.kubectl("create", "namespace", "apps")
        own.kubectl("label", "namespace", "apps", f"{LABEL}=apps")
        config = write_config(tmp_path / "kubeshape.yaml", ["127.0.0.1:30500"])
        base = ("install", "--kubeconfig", str(own.kubeconfig), "--config", str(config),
                "--namespace-selector", f"{LABEL}=apps")
        first = run_cli(*base, "--namespace", "params-one")
        assert first.code == 0 and "Checked: the API server enforces" in first.stdout, first
        for kind in ("validatingadmissionpolicybinding", "validatingadmissionpolicy"):
            own.kubectl("delete", kind, vap.DENY, vap.WARN)
        time.sleep(3)  # the API server drops unused parameter caches on its next refresh (every second)

        second = run_cli(*base, "--namespace", "params-two")
        api = Api(own)
        try:
            answer = api.dry_run(deployment("app", "apps", "127.0.0.1:30500/app:1.0"))
        finally:
            api.close()
        if second.code == 0:  # an API server without the bug: the gate works
            assert "Checked: the API server enforces" in second.stdout, second
        else:
            assert second.code == 3 and second.error is not None, second
            assert "no params found" in second.error and "restart kube-apiserver" in second.error
            assert own.kubectl("get", "validatingadmissionpolicybindings", "-o", "name").stdout.strip() == ""
        assert answer.allowed, answer  # a good deploy is never blocked
    finally:
        own.stop()
