"""A real distribution registry (v3) on 127.0.0.1 with deletes enabled."""

from __future__ import annotations

import secrets
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from testbed.binaries import binary
from testbed.procs import Proc, free_port, start, wait_until

CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: {delete}
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: {secret}
"""


@dataclass
class Registry:
    host: str  # "127.0.0.1:PORT"
    root: Path
    config: Path
    proc: Proc
    ready_seconds: float

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def stop(self) -> None:
        self.proc.stop()


def start_registry(workdir: Path, delete_enabled: bool = True) -> Registry:
    """Start a registry storing under ``workdir``; wait until ``/v2/`` answers 200."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    root = workdir / "storage"
    config = workdir / "registry.yml"
    config.write_text(CONFIG.format(root=root, delete=str(delete_enabled).lower(), port=port,
                                    secret=secrets.token_hex(16)))
    proc = start("registry", [str(binary("registry")), "serve", str(config)], workdir)

    def ready() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as resp:
            return bool(resp.status == 200)

    took = wait_until(ready, proc, 30, "registry /v2/")
    return Registry(f"127.0.0.1:{port}", root, config, proc, took)
