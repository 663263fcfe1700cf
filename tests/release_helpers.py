"""Shared by test_release.py and test_history.py: temp git repos, OCI layouts, the CLI, cluster helpers."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from kubeshape.cli import release_cmd
from kubeshape.errors import KubeshapeError
from kubeshape.registry.image import BuiltImage, build_image
from kubeshape.release.artifact import write_layout

CREATED = datetime(2025, 11, 17, 10, 0, tzinfo=UTC)


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout


def make_repo(root: Path, files: dict[str, str], branch: str = "main") -> Path:
    """A real git repository with ``files`` committed on ``branch``."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", branch)
    git(root, "config", "user.name", "Release Bot")
    git(root, "config", "user.email", "release@example.invalid")
    git(root, "config", "commit.gpgsign", "false")
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


def head(root: Path) -> str:
    return git(root, "rev-parse", "HEAD").strip()


def image(seed: str, labels: dict[str, str] | None = None) -> BuiltImage:
    return build_image({"app/main.py": f"print({seed!r})\n".encode()}, created=CREATED, labels=labels)


def layout(directory: Path, img: BuiltImage) -> Path:
    return write_layout(directory, img.manifest, img.media_type, [b.data for b in img.blobs], ref_name="latest")


def unique(prefix: str = "rel") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str
    error: str | None = None  # the one-line message main() would print


def run_cli(*args: str) -> CliResult:
    """Invoke ``release``/``history`` as ``kubeshape`` would (KubeshapeError → one-line message + exit code)."""
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command("release")(release_cmd.release)
    app.command("history")(release_cmd.history)
    result = CliRunner().invoke(app, list(args), catch_exceptions=True)
    exc = result.exception
    if isinstance(exc, KubeshapeError):
        return CliResult(exc.exit_code, result.stdout, result.stderr, str(exc))
    if exc is not None and not isinstance(exc, SystemExit):
        raise exc
    return CliResult(result.exit_code, result.stdout, result.stderr)


@dataclass
class Collect:
    """A Reporter that keeps everything."""

    steps: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def step(self, message: str) -> None:
        self.steps.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def progress(self, message: str) -> None:
        self.lines.append(message)


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{app: {name}}}
spec:
  replicas: 2
  progressDeadlineSeconds: {deadline}
  revisionHistoryLimit: 10
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: app
          image: {image}   # deployed by kubeshape release
"""


def apply_yaml(cluster: Any, text: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=text)


def create_namespace(cluster: Any, name: str) -> None:
    cluster.api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


@contextlib.contextmanager
def usable_namespace(cluster: Any, prefix: str) -> Iterator[str]:
    """A new namespace whose default ServiceAccount exists (pods can be created), deleted afterwards."""
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    create_namespace(cluster, name)
    wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0, 20,
             f"ServiceAccount {name}/default")
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def deployment(cluster: Any, ns: str, name: str) -> dict[str, Any]:
    return dict(cluster.api("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"))


def rolled_out(dep: dict[str, Any]) -> bool:
    st, spec = dep.get("status") or {}, dep["spec"]
    return bool(st.get("observedGeneration", 0) >= dep["metadata"]["generation"]
                and st.get("updatedReplicas") == spec["replicas"] == st.get("availableReplicas")
                and st.get("replicas") == spec["replicas"])


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"{what} not reached within {timeout}s")


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)


FLUX_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "imageupdateautomations.image.toolkit.fluxcd.io"},
    "spec": {"group": "image.toolkit.fluxcd.io", "scope": "Namespaced",
             "names": {"plural": "imageupdateautomations", "singular": "imageupdateautomation",
                       "kind": "ImageUpdateAutomation"},
             "versions": [{"name": "v1beta2", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def flux_automation(cluster: Any, namespace: str, name: str) -> None:
    """A Flux ImageUpdateAutomation (its CRD installed once, no controller behind it)."""
    import urllib.error

    try:
        cluster.api("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", FLUX_CRD)
    except urllib.error.HTTPError as exc:
        if exc.code != 409:
            raise
    path = f"/apis/image.toolkit.fluxcd.io/v1beta2/namespaces/{namespace}/imageupdateautomations"

    def served() -> bool:
        try:
            cluster.api("GET", path)
        except urllib.error.HTTPError:
            return False
        return True

    wait_for(served, 30, "ImageUpdateAutomation API")
    cluster.api("POST", path, {"apiVersion": "image.toolkit.fluxcd.io/v1beta2", "kind": "ImageUpdateAutomation",
                               "metadata": {"name": name, "namespace": namespace}, "spec": {"interval": "1m"}})
