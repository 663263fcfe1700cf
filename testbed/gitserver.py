"""Bare git repositories served over smart HTTP on 127.0.0.1 (``git http-backend`` as a CGI program).

    server = start_git_server(tmp_path / "git")
    url = server.create_repo("homelab")      # http://127.0.0.1:PORT/homelab.git, push enabled
    ...
    server.stop()

The server runs in a thread of the calling process; clones and pushes need no credentials.
"""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def _git_exec_path() -> Path:
    return Path(subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True).stdout.strip())


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._backend()

    def do_POST(self) -> None:
        self._backend()

    def log_message(self, format: str, *args: object) -> None:
        with self.server.log_lock, self.server.log.open("a") as fh:
            fh.write(f"{self.address_string()} {format % args}\n")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            # git sends pushes larger than http.postBuffer in chunks
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _backend(self) -> None:
        path, _, query = self.path.partition("?")
        body = self._body() if self.command == "POST" else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": self.request_version,
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
        }
        for header, var in (("Content-Encoding", "HTTP_CONTENT_ENCODING"), ("Git-Protocol", "GIT_PROTOCOL")):
            if value := self.headers.get(header):
                env[var] = value
        proc = subprocess.run([str(self.server.backend)], input=body, capture_output=True, env=env, check=False)
        head, sep, payload = proc.stdout.partition(b"\r\n\r\n")
        if not sep:
            head, sep, payload = proc.stdout.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        if proc.returncode != 0 and not proc.stdout:
            status, payload = 500, proc.stderr
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, log: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root, self.log, self.log_lock = root, log, threading.Lock()
        self.backend = _git_exec_path() / "git-http-backend"


@dataclass
class GitServer:
    root: Path  # holds the bare repositories, <name>.git
    port: int
    _server: _Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def repo_url(self, name: str) -> str:
        return f"{self.url}/{name}.git"

    def create_repo(self, name: str, branch: str = "main") -> str:
        """Create an empty bare repository that accepts pushes; returns its clone URL."""
        path = self.root / f"{name}.git"
        subprocess.run(["git", "init", "--quiet", "--bare", f"--initial-branch={branch}", str(path)],
                       check=True, capture_output=True)
        subprocess.run(["git", "-C", str(path), "config", "http.receivepack", "true"], check=True)
        return self.repo_url(name)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def start_git_server(root: Path) -> GitServer:
    """Serve the bare repositories under ``root`` on a free port of 127.0.0.1 (log in ``root/../git-http.log``)."""
    root.mkdir(parents=True, exist_ok=True)
    server = _Server(root, root.parent / "git-http.log")
    thread = threading.Thread(target=server.serve_forever, name="testbed-git-http", daemon=True)
    thread.start()
    return GitServer(root, int(server.server_address[1]), server, thread)
