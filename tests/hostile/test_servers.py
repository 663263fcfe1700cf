"""Hostile servers: the real CLI against a web server that answers 404 (or HTML) to everything and a port that
accepts connections and never answers, as the kubeconfig's API server and as a --registry.

Every server listens on 127.0.0.1 only, is started by the test and stopped when it ends.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kubeshape.cli.live import parse_request_timeout
from kubeshape.errors import InputError
from tests.fixtures.clean import write_bundle

LOOPBACK = "127.0.0.1"
PAGE = b"<!DOCTYPE html><html><head><title>Not Found</title></head><body>nothing here</body></html>"
RUN_LIMIT = 60  # seconds: a hung CLI fails the test instead of hanging the suite
SILENT_LIMIT = 10.0  # seconds the CLI may take against the silent server with --request-timeout 2s


class _Handler(BaseHTTPRequestHandler):
    status = 404

    def _answer(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(PAGE)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve_html(status: int) -> Iterator[str]:
    handler = type("Handler", (_Handler,), {"status": status})
    server = ThreadingHTTPServer((LOOPBACK, 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def not_found() -> Iterator[str]:
    """``host:port`` of a web server answering 404 with an HTML page to every request."""
    yield from _serve_html(404)


@pytest.fixture
def html_ok() -> Iterator[str]:
    """``host:port`` of a web server answering 200 with an HTML page to every request."""
    yield from _serve_html(200)


@pytest.fixture
def silent() -> Iterator[str]:
    """``host:port`` of a server that accepts TCP connections and never reads or answers."""
    listener = socket.create_server((LOOPBACK, 0))
    listener.settimeout(0.1)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():  # bounded by stop: checked at least every 0.1 s
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"{LOOPBACK}:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


def _kubeconfig(tmp_path: Path, host: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: hostile
  cluster:
    server: http://{host}
users:
- name: someone
  user:
    token: not-a-real-token
contexts:
- name: hostile
  context:
    cluster: hostile
    user: someone
current-context: hostile
""")
    return path


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and k != "KUBECONFIG"}
    env.update(DOCKER_CONFIG=str(tmp_path / "docker"), HOME=str(tmp_path), NO_COLOR="1")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "kubeshape", *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=RUN_LIMIT, check=False)
    return proc, time.monotonic() - start


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("kubeshape: error: "), stderr
    return lines[0]


# -- the kubeconfig's server ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("server", "words"), [
    ("not_found", (" answered 404 to /version: not a Kubernetes API server",)),
    ("html_ok", (" answered /version with HTML, not JSON: not a Kubernetes API server",)),
])
def test_a_web_server_is_not_a_kubernetes_api(tmp_path: Path, server: str, words: tuple[str, ...],
                                             request: pytest.FixtureRequest) -> None:
    host: str = request.getfixturevalue(server)
    kubeconfig = _kubeconfig(tmp_path, host)
    proc, _ = _run(tmp_path, "doctor", "--kubeconfig", str(kubeconfig), "-o", "json")
    assert proc.returncode == 3, proc.stderr
    line = _one_line(proc.stderr)
    assert f"http://{host}" in line and all(w in line for w in words), line
    assert proc.stdout == ""  # no report of an "empty cluster"

    out = tmp_path / "out.tar.gz"
    proc, _ = _run(tmp_path, "snapshot", "-o", str(out), "--kubeconfig", str(kubeconfig))
    assert proc.returncode == 3, proc.stderr
    assert "not a Kubernetes API" in _one_line(proc.stderr)
    assert not out.exists()


def test_a_silent_api_server_fails_within_the_request_timeout(tmp_path: Path, silent: str) -> None:
    kubeconfig = _kubeconfig(tmp_path, silent)
    proc, seconds = _run(tmp_path, "doctor", "--kubeconfig", str(kubeconfig), "-o", "json",
                         "--request-timeout", "2s")
    assert proc.returncode == 3, proc.stderr
    line = _one_line(proc.stderr)
    assert f"http://{silent}" in line and "did not answer GET /version within 2s" in line, line
    assert 2 <= seconds < SILENT_LIMIT, seconds

    out = tmp_path / "out"
    proc, seconds = _run(tmp_path, "snapshot", "-o", str(out), "--kubeconfig", str(kubeconfig),
                         "--request-timeout", "2")  # a bare number is seconds, as in kubectl
    assert proc.returncode == 3, proc.stderr
    assert "did not answer" in _one_line(proc.stderr)
    assert seconds < SILENT_LIMIT and not out.exists()


def test_a_bad_request_timeout_is_an_input_error(tmp_path: Path) -> None:
    proc, _ = _run(tmp_path, "doctor", "--kubeconfig", str(_kubeconfig(tmp_path, f"{LOOPBACK}:1")),
                   "--request-timeout", "soon")
    assert proc.returncode == 2
    assert "--request-timeout 'soon'" in _one_line(proc.stderr)


@pytest.mark.parametrize(("text", "seconds"), [
    ("5s", 5.0), ("1m", 60.0), ("1h30m", 5400.0), ("500ms", 0.5), ("1.5s", 1.5), ("2", 2.0), ("0.25", 0.25),
    ("0", None), ("0s", None),
])
def test_request_timeout_takes_kubectl_durations(text: str, seconds: float | None) -> None:
    assert parse_request_timeout(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 s", "-1", "-1s", "1d", "inf", "nan", "s5"])
def test_request_timeout_rejects_what_kubectl_rejects(text: str) -> None:
    with pytest.raises(InputError):
        parse_request_timeout(text)


# -- --registry -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("insecure", [True, False])  # without it, loopback tries TLS first, then plain HTTP
def test_a_web_server_is_not_a_registry(tmp_path: Path, not_found: str, insecure: bool) -> None:
    bundle = write_bundle(tmp_path / "bundle")
    proc, _ = _run(tmp_path, "doctor", "--bundle", str(bundle), "--registry", not_found,
                   *(["--insecure-registry"] if insecure else []), "--request-timeout", "2s")
    assert proc.returncode == 3, proc.stderr
    line = _one_line(proc.stderr)
    assert f"{not_found}: answered HTTP 404 to GET /v2/: not a registry" in line, line


def test_an_html_page_is_not_a_registry(tmp_path: Path, html_ok: str) -> None:
    bundle = write_bundle(tmp_path / "bundle")
    proc, _ = _run(tmp_path, "doctor", "--bundle", str(bundle), "--registry", html_ok, "--insecure-registry")
    assert proc.returncode == 3, proc.stderr
    assert f"{html_ok}: answered GET /v2/ with an HTML page: not a registry" in _one_line(proc.stderr)


@pytest.mark.parametrize("insecure", [True, False])  # without it, the TLS handshake is what never finishes
def test_a_silent_registry_fails_within_the_request_timeout(tmp_path: Path, silent: str, insecure: bool) -> None:
    bundle = write_bundle(tmp_path / "bundle")
    proc, seconds = _run(tmp_path, "doctor", "--bundle", str(bundle), "--registry", silent,
                         *(["--insecure-registry"] if insecure else []), "--request-timeout", "2s")
    assert proc.returncode == 3, proc.stderr
    line = _one_line(proc.stderr)
    assert f"{silent}: timed out after 2s" in line, line
    assert 2 <= seconds < SILENT_LIMIT, seconds
