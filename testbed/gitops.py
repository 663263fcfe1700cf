"""A Flux-managed source of truth on the test bed: a working copy pushing to the loopback git server, a
GitRepository and one or more Kustomizations reconciling it, and waits on what Flux reports.

    src = GitOpsSource.create(cluster, git_server, workdir, name="homelab", namespace="flux-system")
    sha = src.commit_and_push({"apps/web.yaml": "..."}, "add web")
    src.add_kustomization("apps", path="./apps", target_namespace="homelab")
    src.wait_applied("apps", sha, flux)          # Ready at that commit, as Flux reports it

Everything talks to the test bed's apiserver and git server on 127.0.0.1.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.cluster import Cluster
from testbed.flux import Flux
from testbed.gitserver import GitServer

SOURCE_API = "/apis/source.toolkit.fluxcd.io/v1"
KUSTOMIZE_API = "/apis/kustomize.toolkit.fluxcd.io/v1"
AUTHOR = ("Kubeshape Test", "test@kubeshape.invalid")


class WorkingCopy:
    """A git working copy whose ``origin`` is a repository of the loopback git server."""

    def __init__(self, path: Path, url: str, branch: str = "main") -> None:
        self.path, self.url, self.branch = path, url, branch
        if not (path / ".git").exists():
            path.mkdir(parents=True, exist_ok=True)
            self.git("init", "--quiet", f"--initial-branch={branch}")
            self.git("remote", "add", "origin", url)
        for key, value in (("user.name", AUTHOR[0]), ("user.email", AUTHOR[1]), ("commit.gpgsign", "false")):
            self.git("config", key, value)

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.path), *args], capture_output=True, text=True,
                              check=True).stdout.strip()

    def write(self, files: Mapping[str, str | None]) -> None:
        """Write (or, for None, delete) ``files``, relative to the working copy."""
        for rel, text in files.items():
            path = self.path / rel
            if text is None:
                path.unlink(missing_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)

    def commit_and_push(self, files: Mapping[str, str | None], message: str) -> str:
        """Write ``files``, commit everything, push to the branch; returns the commit SHA."""
        self.write(files)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        self.git("push", "--quiet", "origin", f"HEAD:{self.branch}")
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")


def get_or_none(cluster: Cluster, path: str) -> dict[str, Any] | None:
    """GET ``path``; None when it is 404."""
    try:
        obj: dict[str, Any] = cluster.api("GET", path)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise
    return obj


def condition(obj: Mapping[str, Any] | None, kind: str = "Ready") -> dict[str, Any] | None:
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == kind), None)


def flux_revision(branch: str, sha: str) -> str:
    """The revision string Flux v1 reports for a commit of a branch."""
    return f"{branch}@sha1:{sha}"


@dataclass
class GitOpsSource:
    cluster: Cluster
    repo: WorkingCopy
    name: str  # the GitRepository's name
    namespace: str  # where the Flux objects live
    interval: str = "10s"

    @classmethod
    def create(cls, cluster: Cluster, git: GitServer, workdir: Path, *, name: str, namespace: str = "flux-system",
               interval: str = "10s", branch: str = "main", repo_name: str | None = None,
               files: Mapping[str, str | None] | None = None) -> GitOpsSource:
        """A new repository on ``git`` (first commit: ``files``, or an empty README), cloned in ``workdir``, and
        a GitRepository ``namespace/name`` following its ``branch`` every ``interval``."""
        url = git.create_repo(repo_name or f"{namespace}-{name}", branch=branch)
        src = cls(cluster, WorkingCopy(workdir, url, branch), name, namespace, interval)
        ensure_namespace(cluster, namespace)
        src.repo.commit_and_push(files or {"README.md": f"# {name}\n"}, "initial commit")
        cluster.api("POST", f"{SOURCE_API}/namespaces/{namespace}/gitrepositories", {
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"url": url, "interval": interval, "ref": {"branch": branch}}})
        return src

    def commit_and_push(self, files: Mapping[str, str | None], message: str) -> str:
        return self.repo.commit_and_push(files, message)

    def add_kustomization(self, name: str, *, path: str, target_namespace: str | None = None,
                          interval: str = "10m", prune: bool = True, wait: bool = False,
                          extra_spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Create a Kustomization ``namespace/name`` applying ``path`` of this source."""
        spec: dict[str, Any] = {"interval": interval, "path": path, "prune": prune, "wait": wait,
                                "sourceRef": {"kind": "GitRepository", "name": self.name}}
        if target_namespace:
            spec["targetNamespace"] = target_namespace
        spec.update(extra_spec or {})
        obj: dict[str, Any] = self.cluster.api("POST", f"{KUSTOMIZE_API}/namespaces/{self.namespace}/kustomizations",
                                               {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                                                "metadata": {"name": name, "namespace": self.namespace},
                                                "spec": spec})
        return obj

    def git_repository(self) -> dict[str, Any] | None:
        return get_or_none(self.cluster, f"{SOURCE_API}/namespaces/{self.namespace}/gitrepositories/{self.name}")

    def kustomization(self, name: str) -> dict[str, Any] | None:
        return get_or_none(self.cluster, f"{KUSTOMIZE_API}/namespaces/{self.namespace}/kustomizations/{name}")

    def applied(self, kustomization: str, sha: str) -> bool:
        """True once the Kustomization is Ready with ``lastAppliedRevision`` at commit ``sha``."""
        ks = self.kustomization(kustomization) or {}
        ready = condition(ks) or {}
        return (ready.get("status") == "True"
                and (ks.get("status") or {}).get("lastAppliedRevision") == flux_revision(self.repo.branch, sha))

    def wait_applied(self, kustomization: str, sha: str, flux: Flux | None = None, timeout: float = 180) -> None:
        """Wait until Flux reports ``kustomization`` Ready at ``sha``; the error carries both objects' status
        and the controllers' log tails."""
        wait_for(lambda: self.applied(kustomization, sha), timeout,
                 f"Kustomization {self.namespace}/{kustomization} Ready at {sha[:12]}", flux,
                 self.git_repository, lambda: self.kustomization(kustomization))


def ensure_namespace(cluster: Cluster, name: str) -> None:
    try:
        cluster.api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    except urllib.error.HTTPError as e:
        if e.code != 409:
            raise


def wait_for(check: Callable[[], bool], timeout: float, what: str, flux: Flux | None = None,
             *objects: Callable[[], Any]) -> None:
    """Poll ``check`` every 0.5 s; on timeout raise TimeoutError with the objects' state and Flux's logs. Fails
    at once if a Flux controller exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if flux is not None and not all(flux.alive().values()):
            break
        time.sleep(0.5)
    state = "\n".join(repr(get()) for get in objects)
    procs = flux.procs.items() if flux is not None else []
    logs = "\n".join(f"--- {n} (alive={p.alive()})\n{p.tail(15)}" for n, p in procs)
    raise TimeoutError(f"{what}: not reached after {timeout:.0f}s\n{state}\n{logs}")
