"""``kubeshape registry tags|prune`` in real processes: listings with usage and KS4xx findings, a live cluster,
and clear one-line errors (deletes disabled, 404, 401, 5xx, timeout, unreachable) that lose nothing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from kubeshape.registry.client import RegistryClient
from kubeshape.registry.image import build_image, push_image
from testbed.cluster import Cluster
from testbed.procs import free_port
from testbed.registry import Registry, start_registry
from tests.release_helpers import usable_namespace, wait_for
from tests.test_prune import ALIAS, homelab_usage, ks_registry, registry_tags, seed, workload

SCHEME_TAG = "1.4.2-20251117T100000Z.gabc1234"  # follows the default tag scheme


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[Registry]:
    """A real registry of its own (deletes enabled)."""
    reg = start_registry(tmp_path / "registry")
    yield reg
    reg.stop()


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("kubeshape: error: ")
    return lines[0]


# -- registry tags -------------------------------------------------------------------------------------------


def test_tags_lists_every_tag_with_usage_scheme_and_family4_findings(fresh_registry: Registry,
                                                                      tmp_path: Path) -> None:
    seeded = seed(fresh_registry, datetime.now(UTC), extra={"whisper": [SCHEME_TAG]})
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "pesubuntu", "uid": "n1"}, "status": {
        "images": [{"names": ["docker.io/library/family-assistant:phase2-mcp-logging-fix"], "sizeBytes": 10}]}}
    repo, bundle = homelab_usage(tmp_path, seeded, [node])  # the node holds a never-pushed build (KS404)
    proc = ks_registry("tags", "--registry", seeded.spec, "--repo", str(repo), "--bundle", str(bundle), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    repos = {r["name"]: r for r in doc["repositories"]}
    assert set(repos) == {"family-assistant", "whisper"}
    fa = {t["tag"]: t for t in repos["family-assistant"]["tags"]}
    assert len(fa) == 45 and all(t["digest"].startswith("sha256:") and t["created"] and t["size"] for t in fa.values())
    assert repos["family-assistant"]["tags"][0]["tag"] == "v2-fixed"  # newest first
    assert fa["latest"]["digest"] == fa["fixed-final"]["digest"]
    assert fa["fixed"]["used_by"] == ["homelab/Deployment/family-assistant-backend in apps/backend.yaml"]
    assert fa["hotfix"]["used_by"] == ["homelab/Deployment/family-assistant (live)"]
    assert fa["me-fixed"]["used_by"] == ["homelab/Deployment/family-assistant-backend in apps/backend.yaml"]
    assert fa["working"]["used_by"][0].startswith("possible last known good of homelab/Deployment/family-assistant")
    assert fa["debug"]["used_by"] == [] and not fa["debug"]["follows_scheme"]
    whisper = {t["tag"]: t for t in repos["whisper"]["tags"]}
    assert whisper[SCHEME_TAG]["follows_scheme"] and not whisper["v1"]["follows_scheme"]
    assert any(w.endswith("(live)") for w in whisper["v1"]["used_by"])
    rules = {f["rule"] for f in doc["findings"]}
    assert {"KS401", "KS402", "KS403", "KS404"} <= rules
    assert all(r.startswith("KS4") for r in rules)
    assert doc["usage"]["checked"][0] == "cluster homelab" and doc["usage"]["gaps"] == []

    text = ks_registry("tags", "--registry", seeded.spec, "--repository", "family-assistant", "--repo", str(repo))
    assert text.returncode == 0, text.stderr
    assert f"{ALIAS}/family-assistant (via {fresh_registry.host}): 45 tags, 44 images" in text.stdout
    assert "TAG" in text.stdout and "SCHEME" in text.stdout and "USED BY" in text.stdout
    fixed = next(line.split() for line in text.stdout.splitlines() if line.split()[:1] == ["fixed"])
    assert fixed[4:6] == ["B", "no"]  # SIZE is "835 B", then SCHEME
    assert "homelab/Deployment/family-assistant-backend" in " ".join(fixed)
    assert "KS401 warning:" in text.stdout and "whisper" not in text.stdout


@pytest.fixture
def live_ns(cluster: Cluster) -> Iterator[str]:
    with usable_namespace(cluster, "reg-") as name:
        yield name


def test_live_cluster_usage_and_last_known_good(cluster: Cluster, live_ns: str, tmp_path: Path,
                                                fresh_registry: Registry) -> None:
    """A real rollout: whisper:v1 becomes available, then an unqualified whisper:v2 that no node has sticks in
    ImagePullBackOff. Revision 1 is the last known good; v2 counts as used (unqualified name, conservative)."""
    now = datetime.now(UTC)
    with RegistryClient(fresh_registry.host, insecure=True) as client:
        digests = {t: push_image(client, "whisper", t, build_image({"v": t.encode()}, created=now - timedelta(days=i)))
                   for i, t in enumerate(["v3", "v2", "v1", "v0"])}
    path = f"/apis/apps/v1/namespaces/{live_ns}/deployments"
    dep = workload("Deployment", "api", f"{ALIAS}/whisper:v1", spec={
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}})
    dep["metadata"] = {"name": "api"}
    cluster.api("POST", path, dep)
    wait_for(lambda: cluster.api("GET", f"{path}/api").get("status", {}).get("availableReplicas") == 1, 30,
          "api 1/1 available")
    cluster.kubectl("set", "image", "-n", live_ns, "deployment/api", "app=whisper:v2")
    wait_for(lambda: cluster.api("GET", f"{path}/api").get("status", {}).get("unavailableReplicas"), 30,
          "revision 2 unavailable")
    cfg = tmp_path / "kubeshape.yaml"
    cfg.write_text("retention:\n  - keep_last: 0\n")
    args = ["--registry", f"{fresh_registry.host}={ALIAS}", "--kubeconfig", str(cluster.kubeconfig),
            "--config", str(cfg), "-o", "json"]

    listing = json.loads(ks_registry("tags", *args).stdout)
    tags = {t["tag"]: t for t in listing["repositories"][0]["tags"]}
    assert f"{live_ns}/Deployment/api (live)" in tags["v1"]["used_by"]
    assert f"last known good of {live_ns}/Deployment/api (revision 1)" in tags["v1"]["used_by"]
    assert f"{live_ns}/Deployment/api (live) (unqualified name)" in tags["v2"]["used_by"]

    proc = ks_registry("prune", *args, "--apply")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    [good] = [g for g in plan["usage"]["last_known_good"] if g["workload"] == f"{live_ns}/Deployment/api"]
    assert (good["revision"], good["proven"], good["images"]) == (1, True, [f"{ALIAS}/whisper:v1"])
    assert plan["usage"]["gaps"] == []
    assert registry_tags(fresh_registry, "whisper") == {"v1": digests["v1"], "v2": digests["v2"]}


# -- errors --------------------------------------------------------------------------------------------------


def _push_three(registry: Registry) -> dict[str, str]:
    now = datetime.now(UTC)
    with RegistryClient(registry.host, insecure=True) as client:
        return {t: push_image(client, "app", t, build_image({"v": t.encode()}, created=now - timedelta(days=i)))
                for i, t in enumerate(["c", "b", "a"])}


def test_apply_refuses_without_usage_and_conflicting_flags(fresh_registry: Registry) -> None:
    before = _push_three(fresh_registry)
    proc = ks_registry("prune", "--registry", fresh_registry.host, "--apply")
    assert proc.returncode == 2
    assert "--no-usage-check" in _one_line(proc.stderr) and "cannot tell which tags are in use" in proc.stderr
    proc = ks_registry("prune", "--registry", fresh_registry.host, "--apply", "--dry-run")
    assert proc.returncode == 2 and "exclude each other" in _one_line(proc.stderr)
    assert registry_tags(fresh_registry, "app") == before


def test_deletes_disabled_is_a_clear_error_and_deletes_nothing(tmp_path: Path) -> None:
    reg = start_registry(tmp_path / "ro", delete_enabled=False)
    try:
        before = _push_three(reg)
        cfg = tmp_path / "kubeshape.yaml"
        cfg.write_text("retention:\n  - keep_last: 1\n")
        proc = ks_registry("prune", "--registry", reg.host, "--config", str(cfg), "--apply", "--no-usage-check")
        assert proc.returncode == 2
        line = _one_line(proc.stderr)
        assert "delet" in line.lower() and "disabled" in line.lower(), line
        assert "STOPPED at" in proc.stdout and "Deleted before that (0): nothing" in proc.stdout
        assert registry_tags(reg, "app") == before
    finally:
        reg.stop()


def test_missing_repository_is_a_clear_error(fresh_registry: Registry) -> None:
    _push_three(fresh_registry)
    proc = ks_registry("prune", "--registry", fresh_registry.host, "--repository", "ap")
    assert proc.returncode == 2
    line = _one_line(proc.stderr)
    assert "repository 'ap' not found (HTTP 404" in line and "did you mean app?" in line
    proc = ks_registry("tags", "--registry", fresh_registry.host, "--repository", "nope")
    assert proc.returncode == 2 and "repository 'nope' not found" in _one_line(proc.stderr)


def test_host_qualified_repository_as_the_ks401_fix_writes_it(fresh_registry: Registry) -> None:
    _push_three(fresh_registry)
    proc = ks_registry("prune", "--registry", f"{fresh_registry.host}={ALIAS}", "--repository", f"{ALIAS}/app",
                       "-o", "json")
    assert proc.returncode == 0, proc.stderr
    assert [r["name"] for r in json.loads(proc.stdout)["repositories"]] == ["app"]


class _Fake(BaseHTTPRequestHandler):
    status = 200
    delay = 0.0
    headers_out: ClassVar[dict[str, str]] = {}

    def do_GET(self) -> None:
        time.sleep(self.delay)
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
        self.send_response(self.status)
        for k, v in {"Content-Type": "application/json", "Content-Length": str(len(body)), **self.headers_out}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_registry() -> Iterator[Callable[..., str]]:
    """A plain-HTTP server on 127.0.0.1 answering every GET with ``status`` (after ``delay`` seconds)."""
    servers: list[ThreadingHTTPServer] = []

    def start(status: int, delay: float = 0.0, headers: dict[str, str] | None = None) -> str:
        handler = type("H", (_Fake,), {"status": status, "delay": delay, "headers_out": headers or {}})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"127.0.0.1:{server.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.mark.parametrize(("status", "delay", "headers", "code", "words"), [
    (401, 0.0, {"WWW-Authenticate": 'Basic realm="registry"'}, 2, ("401",)),
    (503, 0.0, {}, 3, ("503",)),
    (200, 3.0, {}, 3, ("timed out",)),
])
def test_registry_errors_are_one_line_with_the_documented_exit_code(
        fake_registry: Callable[..., str], tmp_path: Path, status: int, delay: float, headers: dict[str, str],
        code: int, words: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # no credentials from the user's Docker config
    host = fake_registry(status, delay, headers)
    proc = ks_registry("prune", "--registry", host, "--insecure-registry", "--repository", "app", "--timeout", "0.5")
    assert proc.returncode == code, proc.stderr
    line = _one_line(proc.stderr)
    assert host in line and all(w in line for w in words), line


def test_unreachable_registry_exits_3() -> None:
    host = f"127.0.0.1:{free_port()}"
    proc = ks_registry("tags", "--registry", host, "--repository", "app", "--timeout", "0.5")
    assert proc.returncode == 3
    assert host in _one_line(proc.stderr)


def test_help_lists_both_commands() -> None:
    proc = ks_registry("--help")
    assert proc.returncode == 0 and "tags" in proc.stdout and "prune" in proc.stdout
