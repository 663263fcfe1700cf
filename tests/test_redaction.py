"""The redactor (kubeshape.redact): each pattern on its own, then secrets placed everywhere a bundle can hold them
and looked for in every report format, in a written snapshot bundle and in error messages."""

from __future__ import annotations

import re
import string
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import kubeshape.redact as redact_mod
from kubeshape.cli.app import app, main
from kubeshape.findings import Finding, ObjectRef, Severity
from kubeshape.redact import (
    LAST_APPLIED,
    REDACTED,
    is_secret_name,
    redact_args,
    redact_object,
    redact_report,
    redact_text,
)
from kubeshape.report.model import Metric, Report
from kubeshape.sources.bundle_writer import bundle_members, write_bundle
from kubeshape.sources.live import KINDS, Collection, KindSpec
from tests.fixtures.clean import NS, write_repo
from tests.fixtures.clean import write_bundle as write_clean_bundle

S = "S3cr3t-x9Kq2mZt7Lw"
MARK = "S3cr3t"  # every generated secret starts with it: any occurrence in an output is a (partial) leak
FORMATS = ("text", "markdown", "json", "sarif", "html")

# -- names ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "DB_PASSWORD", "PASSWD", "API_TOKEN", "ADMIN_TOKEN", "AWS_SECRET_ACCESS_KEY", "API_KEY", "apiKey", "APIKEY",
    "SSH_KEY", "KEY", "GITHUB_PAT", "GH_PAT", "DB_CREDENTIALS", "BASIC_AUTH", "AUTHORIZATION", "DB_PASS",
    "DB_PWD", "SENTRY_DSN", "x-api-key", "--token", "session_cookie"])
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", [
    "PATH", "KEYCLOAK_URL", "MONKEY", "PWD", "AUTHOR_NAME", "PATTERN", "DISPATCH_MODE", "BYPASS_CACHE",
    "HOSTNAME", "KEYBOARD_LAYOUT", "OTEL_EXPORTER_OTLP_ENDPOINT", "SPATIAL_INDEX"])
def test_names_that_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


# -- free text ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "kept"), [
    (f"password={S}", "password="),
    (f"DB_PASSWORD: {S}", "DB_PASSWORD: "),
    (f'db_password: "{S} with spaces"', 'db_password: "'),
    (f"api_key: '{S}'", "api_key: '"),
    (f'{{"token":"{S}","user":"bob"}}', '"user":"bob"'),
    (f'msg="body={{\\"password\\":\\"{S}\\"}}"', '\\"password\\":\\"'),
    (f"GITHUB_PAT={S}", "GITHUB_PAT="),
    (f"POST /oauth?client_secret={S}&grant=x", "&grant=x"),
    (f"x-api-key: {S}", "x-api-key: "),
    (f"user=bob,password={S};next=1", "user=bob,password="),
    (f"postgres://app:{S}@db:5432/app", "postgres://app:<redacted>@db:5432/app"),
    (f"redis://:{S}@redis:6379/0", "@redis:6379/0"),
    (f"amqp://app:p@ss-{S}@mq/vhost", "@mq/vhost"),
    (f"Authorization: Bearer {S}", "Authorization: Bearer <redacted>"),
    (f"authorization: Basic {S}==", "authorization: Basic <redacted>"),
    (f"Proxy-Authorization: {S}", "Proxy-Authorization: "),
    (f"headers={{'Authorization': 'Bearer {S}'}}", "'Bearer <redacted>'"),
    (f"headers=map[Authorization:[Bearer {S}]]", "[Bearer <redacted>]"),
    (f"retry with bearer {S}", "bearer "),
    (f"app --password={S} --name=app", "--name=app"),
    (f"app --db-password={S}", "--db-password="),
    (f"app --token {S} --verbose", "--token <redacted> --verbose"),
    (f"jwt=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.{S}", "jwt="),
    (f"got eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.{S} from idp", "got <redacted> from idp"),
    ("push with ghp_" + S.replace("-", "") * 3, "push with "),
    (f"-----BEGIN RSA PRIVATE KEY-----\n{S}\n-----END RSA PRIVATE KEY-----", REDACTED),
    (f"invalid token: {S}", "invalid token: "),
])
def test_secret_values_are_masked(text: str, kept: str) -> None:
    out = redact_text(text)
    assert MARK not in out and REDACTED in out and kept in out, out
    assert redact_text(out) == out  # idempotent


@pytest.mark.parametrize("text", [
    "monkey=banana",
    "PATH=/usr/local/bin:/usr/bin",
    "KEYCLOAK_URL=https://keycloak.example.com/realms/shop",
    "PWD=/app",
    "author=jane pattern=^/api dispatch=async",
    "invalid token: expired",
    "missing bearer token",
    "key: password",  # a secretKeyRef in YAML: the key *name*, not a value
    'MountVolume.SetUp failed for volume "token" : secret "db" not found',
    "Error: couldn't find key DB_PASSWORD in Secret shop/db",
    "Back-off pulling image \"x\": rpc error: code = Unknown desc = pull access denied, repository does not exist "
    "or may require authorization: server message: insufficient_scope: authorization failed",
    "failed to fetch anonymous token: unexpected status: 401 Unauthorized",
    "http://otel-collector.shop.svc.cluster.local:4317",
    "https://deploy@git.example.com/shop.git",
    "use --token <token> to log in",
    "",
])
def test_ordinary_text_survives(text: str) -> None:
    assert redact_text(text) == text


def test_args_mask_the_value_after_a_secret_flag() -> None:
    args = [f"--db-password={S}", "--token", S, "--name", "app", "-v", 3, f"sh -c 'app --password {S}'"]
    assert redact_args(args) == ["--db-password=<redacted>", "--token", REDACTED, "--name", "app", "-v", 3,
                                 "sh -c 'app --password <redacted>'"]


# -- objects --------------------------------------------------------------------------------------------------


def _container(secret: str) -> dict[str, Any]:
    return {"name": "api", "image": "api:1", "args": [f"--db-password={secret}", "--token", secret],
            "command": ["sh", "-c", f"exec app --password {secret}"],
            "env": [{"name": "DB_PASSWORD", "value": secret}, {"name": "GITHUB_PAT", "value": secret},
                    {"name": "DATABASE_URL", "value": f"postgres://app:{secret}@db:5432/app"},
                    {"name": "JAVA_OPTS", "value": f"-Xmx1g -Dspring.datasource.password={secret}"},
                    {"name": "PATH", "value": "/usr/bin"}, {"name": "KEYCLOAK_URL", "value": "https://kc"},
                    {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]}


def test_object_redaction_covers_specs_status_events_configmaps_and_last_applied() -> None:
    applied = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"},
               "spec": {"template": {"spec": {"containers": [_container(S)]}}}}
    dep = {"metadata": {"name": "api", "annotations": {LAST_APPLIED: orjson.dumps(applied).decode() + "\n"}},
           "spec": {"template": {"spec": {"initContainers": [_container(S)], "containers": [_container(S)]}}}}
    pod: dict[str, Any] = {"spec": {"containers": [_container(S)]}, "status": {
        "message": f"token={S}", "conditions": [{"type": "Ready", "message": f"password={S}"}],
        "containerStatuses": [{"name": "api", "state": {"waiting": {"reason": "CrashLoopBackOff",
                                                                     "message": f"Authorization: Bearer {S}"}},
                               "lastState": {"terminated": {"exitCode": 1, "message": f"--token {S}"}}}]}}
    event = {"involvedObject": {"kind": "Pod", "name": "api"}, "reason": "Failed", "message": f"api_key={S}"}
    new_event = {"regarding": {"kind": "Pod", "name": "api"}, "note": f"password: '{S}'"}
    cm = {"metadata": {"name": "cfg"}, "data": {"DB_PASSWORD": S, "app.properties": f"db.password={S}\nport=1"}}
    for obj in (dep, pod, event, new_event, cm):
        assert MARK not in orjson.dumps(redact_object(obj)).decode()
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["PATH"] == "/usr/bin" and env["KEYCLOAK_URL"] == "https://kc" and env["FROM_SECRET"] is None
    assert env["DATABASE_URL"] == "postgres://app:<redacted>@db:5432/app"
    assert cm["data"]["app.properties"] == "db.password=<redacted>\nport=1"
    assert "Authorization: Bearer <redacted>" in orjson.dumps(pod).decode()


def test_last_applied_of_a_secret_is_dropped_and_clean_ones_keep_their_bytes() -> None:
    secret = {"metadata": {"annotations": {LAST_APPLIED: orjson.dumps(
        {"kind": "Secret", "stringData": {"password": S}}).decode()}}}
    assert redact_object(secret)["metadata"]["annotations"][LAST_APPLIED] == REDACTED
    broken = {"metadata": {"annotations": {LAST_APPLIED: '{"kind": "Deployment", "spec": ' + S}}}
    assert redact_object(broken)["metadata"]["annotations"][LAST_APPLIED] == REDACTED
    text = '{"apiVersion":"v1","kind":"Service","metadata":{"name":"api"},"spec":{"ports":[{"port":80}]}}\n'
    clean = {"metadata": {"annotations": {LAST_APPLIED: text}}}
    assert redact_object(clean)["metadata"]["annotations"][LAST_APPLIED] is text


def test_report_redaction_covers_every_printed_field() -> None:
    f = Finding("KS504", Severity.WARNING, 5, ObjectRef("Deployment", NS, "api"), f"message password={S}",
                evidence=[f"sample: Authorization: Bearer {S}"], fix=f"kubectl ... --token {S}",
                root_cause=f"dsn postgres://u:{S}@db/x", data={"templates": [{"template": f"token={S}"}],
                                                                 "DB_PASSWORD": S, "ids": {f"api_key={S}"}})
    report = Report([f], metrics=[Metric("m", "M", 1.0, "", "", True, detail=f"secret={S}")],
                    sources={"cluster": f"https://admin:{S}@api:6443"}, blind_spots=[f"Secret: token={S}"],
                    notes=[f"note password={S}"])
    out = redact_report(report)
    assert MARK not in repr(out)
    assert MARK in repr(report)  # the input is not changed


# -- the property: no generated secret leaves through any exit ----------------------------------------------------

_secret = st.text(string.ascii_letters + string.digits, min_size=12, max_size=40).map(lambda s: f"{MARK}-{s}")
_runner = CliRunner()


def _jwt(secret: str) -> str:
    return f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ{secret.replace('-', '')}.{secret.replace('-', '_')}"


def _secret_bundle(root: Path, s: list[str]) -> Path:
    """The clean fixture bundle with a secret (s[i]) in every place a bundle can hold one."""
    bundle = write_clean_bundle(root)
    res = bundle / "resources"
    deps = orjson.loads((res / "deployments.apps.json").read_bytes())
    dep = deps["items"][0]
    name = dep["metadata"]["name"]
    template_spec = dep["spec"]["template"]["spec"]
    template_spec["containers"][0] = {**template_spec["containers"][0], **_container(s[0])}
    applied = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
               "spec": {"template": {"spec": {"containers": [_container(s[1])]}}}}
    dep["metadata"]["annotations"][LAST_APPLIED] = orjson.dumps(applied).decode()
    (res / "deployments.apps.json").write_bytes(orjson.dumps(deps))

    pods = orjson.loads((res / "pods.json").read_bytes())
    crashing, pulling = pods["items"][0], pods["items"][1]
    crashing["spec"]["containers"][0] = {**crashing["spec"]["containers"][0], **_container(s[2])}
    crashing["status"]["containerStatuses"][0].update(
        ready=False, restartCount=40, state={"waiting": {"reason": "CrashLoopBackOff", "message": (
            f"back-off: Authorization: Bearer {s[3]} password={s[4]} token: '{s[5]}'")}},
        lastState={"terminated": {"exitCode": 1, "reason": "Error", "message": (
            f"fatal: DATABASE_URL=postgres://app:{s[6]}@db:5432/app --token {s[7]} {_jwt(s[8])}")}})
    crashing["status"]["conditions"] = [{"type": "Ready", "status": "False", "message": f"secret={s[9]}"}]
    pulling["status"]["containerStatuses"][0].update(ready=False, state={"waiting": {
        "reason": "ImagePullBackOff", "message": f"pull failed: Authorization: Basic {s[10]}"}})
    (res / "pods.json").write_bytes(orjson.dumps(pods))

    events = orjson.loads((res / "events.json").read_bytes())
    pod_ref = {"kind": "Pod", "namespace": NS}
    events["items"] += [
        {"metadata": {"name": "ev-fail", "namespace": NS}, "involvedObject": {
            **pod_ref, "name": pulling["metadata"]["name"]}, "reason": "Failed", "type": "Warning", "count": 3,
         "message": f"Failed to pull image: pull denied; registry_password={s[11]}",
         "firstTimestamp": "2025-11-17T09:00:00Z", "lastTimestamp": "2025-11-17T09:50:00Z"},
        {"metadata": {"name": "ev-unhealthy", "namespace": NS}, "involvedObject": {
            **pod_ref, "name": crashing["metadata"]["name"]}, "reason": "Unhealthy", "type": "Warning",
         "count": 50, "message": f"Liveness probe failed: statuscode: 429 Authorization: Bearer {s[12]}",
         "firstTimestamp": "2025-11-17T09:00:00Z", "lastTimestamp": "2025-11-17T09:50:00Z"},
        {"metadata": {"name": "ev-backoff", "namespace": NS}, "involvedObject": {
            **pod_ref, "name": crashing["metadata"]["name"]}, "reason": "BackOff", "type": "Warning",
         "count": 80, "message": f"Back-off restarting failed container api_key={s[13]}",
         "firstTimestamp": "2025-11-17T09:00:00Z", "lastTimestamp": "2025-11-17T09:50:00Z"}]
    (res / "events.json").write_bytes(orjson.dumps(events))

    log = bundle / "logs" / NS / crashing["metadata"]["name"] / "api.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(
        f"2025-11-17T09:{m:02d}:00Z ERROR upstream failed Authorization: Bearer {s[14]} password={s[15]} "
        f"dsn=postgres://app:{s[16]}@db/app jwt {_jwt(s[17])} --token {s[18]}\n" for m in range(40)))

    manifest = orjson.loads((bundle / "kubeshape-bundle.json").read_bytes())
    manifest["notes"] = [f"logs: read with token={s[19]}"]
    manifest["blindSpots"] = [{"kind": "Secret", "reason": f"forbidden for https://admin:{s[20]}@api:6443"}]
    (bundle / "kubeshape-bundle.json").write_bytes(orjson.dumps(manifest))
    return bundle


def _doctor(bundle: Path, repo: Path, out: Path, fmt: str) -> str:
    result = _runner.invoke(app, ["doctor", "--bundle", str(bundle), "--repo", str(repo), "-o", fmt,
                                  "--report-file", str(out)])
    assert isinstance(result.exception, SystemExit | None) and result.exit_code in (0, 1), (result.exception,
                                                                                           result.output)
    return out.read_text(encoding="utf-8") + result.output


def _leaks(text: str) -> list[str]:
    """Generated secrets (or their leading part) in ``text``, also across wrapped lines."""
    return sorted({m.group(0) for m in re.finditer(rf"{MARK}[\w-]*", text + re.sub(r"\s+", "", text))})


def _snapshot_files(bundle: Path, target: Path) -> dict[str, str]:
    """Write the bundle's data as ``kubeshape snapshot`` would (bundle_writer) and read every file back."""
    specs = {spec.file_stem: spec for spec in KINDS} | {"secrets": KindSpec("Secret", "secrets")}
    lists = {specs[p.name.removesuffix(".json")]: orjson.loads(p.read_bytes())
             for p in sorted((bundle / "resources").glob("*.json")) if p.name.removesuffix(".json") in specs}
    logs = {(p.parts[-3], p.parts[-2], p.stem): p.read_text() for p in (bundle / "logs").rglob("*.log")}
    manifest = orjson.loads((bundle / "kubeshape-bundle.json").read_bytes())
    col = Collection(context="shop", server="https://api:6443", lists=lists, logs=logs, notes=manifest["notes"],
                     blind_spots=[(b["kind"], b["reason"]) for b in manifest["blindSpots"]])
    write_bundle(target, bundle_members(col))
    return {str(p.relative_to(target)): p.read_text() for p in target.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_repo(tmp_path_factory.mktemp("redaction") / "repo")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secrets=st.lists(_secret, min_size=21, max_size=21))
def test_no_secret_leaves_through_any_exit(repo: Path, secrets: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bundle = _secret_bundle(Path(tmp) / "bundle", secrets)
        for fmt in FORMATS:
            assert not _leaks(_doctor(bundle, repo, Path(tmp) / f"report.{fmt}", fmt)), fmt
        for name, text in _snapshot_files(bundle, Path(tmp) / "snapshot").items():
            assert not _leaks(text), name


def test_the_secrets_reach_the_report_when_redaction_is_off(repo: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The property above is not vacuous: without the redactor the planted secrets do show up."""
    monkeypatch.setattr(redact_mod, "_ANY_HINT", re.compile(r"(?!)"))  # redact_text's gate: never open
    monkeypatch.setattr(redact_mod, "is_secret_name", lambda name: False)
    secrets = [f"{MARK}-{i:02d}xxxxxxxxxxxx" for i in range(21)]
    bundle = _secret_bundle(tmp_path / "bundle", secrets)
    leaked = {s for s in secrets if s in _doctor(bundle, repo, tmp_path / "report.json", "json")}
    # container-status and event messages, log samples, notes and blind spots all reach the report
    assert {secrets[i] for i in (3, 4, 5, 6, 7, 11, 12, 14, 16, 18, 19, 20)} <= leaked, sorted(leaked)


def test_one_line_errors_are_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / f"password={S}"
    monkeypatch.setattr("sys.argv", ["kubeshape", "doctor", "--bundle", str(missing)])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "bundle not found" in err and MARK not in err
