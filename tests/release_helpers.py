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


# -- releases through Flux: a GitOps repository on the loopback git server, applied by the real controllers -----

APP_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: 2
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
          image: {image}
"""

APP_KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
images:
  - name: {name}
    newName: {new_name} # {{"$imagepolicy": "flux-system:{name}:name"}}
    newTag: {new_tag} # {{"$imagepolicy": "flux-system:{name}:tag"}}
"""


@dataclass
class FluxApp:
    """A Deployment deployed by Flux from ``apps/`` of a repository on the git server: GitRepository and
    Kustomization ``namespace/name`` (in the Deployment's own namespace), a working copy at ``root``."""

    source: Any  # testbed.gitops.GitOpsSource
    namespace: str
    name: str
    repository: str  # REPO in the registry; the Deployment runs registry/REPO:1.0.0
    registry: str
    bare: Path  # the bare repository on the git server (its hooks play the server's policies)
    file: Path  # the file a release edits

    @property
    def root(self) -> Path:
        return Path(self.source.repo.path)

    @property
    def image(self) -> str:
        return f"{self.registry}/{self.repository}"

    def kube(self) -> tuple[str, str]:
        return ("--kubeconfig", str(self.source.cluster.kubeconfig))

    def remote_head(self) -> str:
        return git(self.root, "ls-remote", "origin", "refs/heads/main").split()[0]

    def kustomization(self) -> dict[str, Any]:
        return dict(self.source.kustomization(self.name) or {})

    def deployment(self) -> dict[str, Any]:
        return deployment(self.source.cluster, self.namespace, self.name)

    def live_image(self) -> str:
        return str(self.deployment()["spec"]["template"]["spec"]["containers"][0]["image"])


def flux_app(cluster: Any, git_server: Any, registry: Any, flux: Any, workdir: Path, *, kustomize: bool = False,
             marker: bool = True, timeout: float = 180) -> FluxApp:
    """Push ``registry/REPO:1.0.0``, a repository deploying it (a manifest with a Flux image-policy marker, or with
    ``kustomize`` a kustomization whose images entry carries the ``:name``/``:tag`` markers), a GitRepository
    (interval 10s) and a Kustomization; wait until Flux applied it and the Deployment rolled out."""
    from kubeshape.registry import RegistryClient
    from kubeshape.registry.image import push_image
    from testbed.gitops import GitOpsSource

    ns, name = unique("gx-"), "app"
    repository = f"{unique()}/{name}"
    with RegistryClient(registry.host, insecure=True) as client:
        push_image(client, repository, "1.0.0", image(ns))
    good = f"{registry.host}/{repository}:1.0.0"
    if kustomize:
        files = {"apps/deployment.yaml": APP_DEPLOYMENT.format(name=name, image=name),
                 "apps/kustomization.yaml": APP_KUSTOMIZATION.format(name=name, new_name=f"{registry.host}/"
                                                                     f"{repository}", new_tag="1.0.0")}
    else:
        tail = f' # {{"$imagepolicy": "flux-system:{name}"}}' if marker else ""
        files = {"apps/deployment.yaml": APP_DEPLOYMENT.format(name=name, image=good + tail)}
    src = GitOpsSource.create(cluster, git_server, workdir, name=name, namespace=ns, files=files)
    src.add_kustomization(name, path="./apps", target_namespace=ns)
    src.wait_applied(name, src.repo.head(), flux, timeout)
    wait_for(lambda: rolled_out(deployment(cluster, ns, name)), timeout, "the first rollout")
    bare = Path(git_server.root) / f"{ns}-{name}.git"
    file = workdir / ("apps/kustomization.yaml" if kustomize else "apps/deployment.yaml")
    return FluxApp(src, ns, name, repository, registry.host, bare, file)


def remove_flux_app(cluster: Any, namespace: str) -> None:
    """Delete the Flux objects (while the controllers run: they hold finalizers), then the namespace."""
    for kind in ("kustomizations.kustomize.toolkit.fluxcd.io", "gitrepositories.source.toolkit.fluxcd.io"):
        cluster.kubectl("delete", kind, "--all", "-n", namespace, "--timeout=60s", check=False, timeout=90)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def server_hook(bare: Path, name: str, body: str) -> Path:
    """Install a hook (``pre-receive``, ``post-receive``) in a repository of the git server: a Python script."""
    import sys

    hook = bare / "hooks" / name
    hook.write_text(f"#!{sys.executable}\n{body}")
    hook.chmod(0o755)
    return hook


def refuse_pushes(bare: Path, message: str) -> Path:
    """The server refuses every push with ``message``, as a protected branch does."""
    return server_hook(bare, "pre-receive", f"import sys\nsys.stdin.read()\nprint({message!r}, file=sys.stderr)\n"
                                            "sys.exit(1)\n")


def delete_tag_on_push(bare: Path, registry: str, repository: str, tag: str) -> Path:
    """After every push the server deletes ``repository:tag`` from ``registry`` (on 127.0.0.1): a retention job
    removing the image of a release after kubeshape verified it in the registry and before any node pulled it."""
    accept = ", ".join(("application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
                        "application/vnd.docker.distribution.manifest.v2+json"))
    return server_hook(bare, "post-receive", f"""import sys, urllib.error, urllib.request
sys.stdin.read()
base = "http://{registry}/v2/{repository}/manifests/"
try:
    head = urllib.request.Request(base + "{tag}", method="HEAD", headers={{"Accept": "{accept}"}})
    with urllib.request.urlopen(head, timeout=10) as resp:
        digest = resp.headers["Docker-Content-Digest"]
    urllib.request.urlopen(urllib.request.Request(base + digest, method="DELETE"), timeout=10).close()
    print("retention: deleted {repository}:{tag}", file=sys.stderr)
except urllib.error.HTTPError:
    pass
""")


def hold_pushes(bare: Path, release: Path) -> Path:
    """The server's post-receive hook waits (up to 120 s) until the file ``release`` exists: a push is on the
    server (its branch updated) while the pushing client still waits for the answer."""
    return server_hook(bare, "post-receive", f"""import pathlib, sys, time
sys.stdin.read()
deadline = time.monotonic() + 120
while not pathlib.Path({str(release)!r}).exists() and time.monotonic() < deadline:
    time.sleep(0.1)
""")


def next_tag(root: Path) -> str:
    """The tag `kubeshape release` computes for HEAD of ``root``."""
    from kubeshape.release.gitrepo import GitRepo
    from kubeshape.release.tagging import compute_tag

    return compute_tag(GitRepo(root).state()).tag


def image_managers(dep: dict[str, Any]) -> set[str]:
    """The field managers that own a container image of ``dep`` (server-side apply managedFields)."""
    out = set()
    for entry in dep["metadata"].get("managedFields") or []:
        containers = (((((entry.get("fieldsV1") or {}).get("f:spec") or {}).get("f:template") or {})
                       .get("f:spec") or {}).get("f:containers") or {})
        if any("f:image" in (fields or {}) for fields in containers.values()):
            out.add(str(entry.get("manager")))
    return out
