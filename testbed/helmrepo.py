"""A Helm chart repository served over HTTP on 127.0.0.1, with charts packaged by the real ``helm`` binary.

    repo = start_helm_repo(tmp_path / "charts")
    repo.add_chart("web", "1.0.0", templates={"deployment.yaml": "..."}, values={"image": "..."})
    repo.url            # http://127.0.0.1:PORT, for a Flux HelmRepository
    repo.stop()
"""

from __future__ import annotations

import functools
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from testbed.binaries import binary


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class HelmRepo:
    root: Path  # index.yaml and the packaged charts
    port: int
    _server: ThreadingHTTPServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_chart(self, name: str, version: str, *, templates: dict[str, str],
                  values: dict[str, Any] | None = None, app_version: str = "1.0") -> Path:
        """Package chart ``name`` ``version`` with ``helm package`` and re-index the repository."""
        src = self.root.parent / "src" / f"{name}-{version}" / name
        (src / "templates").mkdir(parents=True, exist_ok=True)
        (src / "Chart.yaml").write_text(yaml.safe_dump({"apiVersion": "v2", "name": name, "version": version,
                                                        "appVersion": app_version, "type": "application"}))
        (src / "values.yaml").write_text(yaml.safe_dump(values or {}))
        for rel, text in templates.items():
            (src / "templates" / rel).write_text(text)
        helm = str(binary("helm"))
        subprocess.run([helm, "package", str(src), "-d", str(self.root)], check=True, capture_output=True)
        subprocess.run([helm, "repo", "index", str(self.root), "--url", self.url], check=True, capture_output=True)
        return self.root / f"{name}-{version}.tgz"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def start_helm_repo(root: Path) -> HelmRepo:
    """Serve ``root`` (created empty, with an empty index) on a free port of 127.0.0.1."""
    root.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="testbed-helm-repo", daemon=True)
    thread.start()
    repo = HelmRepo(root, int(server.server_address[1]), server, thread)
    (root / "index.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "entries": {}}))
    return repo
