"""Flux's source-controller and kustomize-controller (and, when asked, helm-controller) as host processes
against a test-bed Cluster.

    flux = start_flux(cluster, tmp_path / "flux")    # installs the CRDs, starts both, waits for /readyz
    flux = start_flux(cluster, tmp_path / "flux", helm=True)   # the three controllers
    ...                                                # GitRepository / Kustomization objects get reconciled
    flux.stop()

The CRDs come from the controllers' own Go modules (``config/crd/bases``), at the versions build.sh pins.
The processes are recorded with the cluster (``Cluster.track``), so ``Cluster.stop``, ``python -m testbed down``
and the reaper stop them too. Every address they listen on is on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from testbed.binaries import binary, versions
from testbed.cluster import Cluster
from testbed.procs import Proc, free_port, start, wait_until

MODULES = {"flux-source": "github.com/fluxcd/source-controller",
           "flux-kustomize": "github.com/fluxcd/kustomize-controller",
           "flux-helm": "github.com/fluxcd/helm-controller"}
BINARIES = {"flux-source": "source-controller", "flux-kustomize": "kustomize-controller",
            "flux-helm": "helm-controller"}
DEFAULT = ("flux-source", "flux-kustomize")
RUNTIME_NAMESPACE = "flux-system"


@dataclass
class Flux:
    cluster: Cluster
    workdir: Path
    artifact_addr: str  # "127.0.0.1:PORT": source-controller's artifact server
    health: dict[str, int]  # controller name -> health port (/readyz, /healthz)
    procs: dict[str, Proc] = field(default_factory=dict)

    def alive(self) -> dict[str, bool]:
        return {name: p.alive() for name, p in self.procs.items()}

    def stop(self) -> None:
        """Stop the controllers (the cluster keeps running); idempotent."""
        for name, proc in reversed(list(self.procs.items())):
            proc.stop()
            self.cluster.procs.pop(name, None)


def _go() -> str:
    go = os.environ.get("GO") or "/usr/local/go/bin/go"
    return go if Path(go).exists() else "go"


def module_dir(component: str) -> Path:
    """Where the Go module cache holds the source of ``component`` (downloaded by build.sh)."""
    mod = f"{MODULES[component]}@{versions()[component]}"
    proc = subprocess.run([_go(), "mod", "download", "-json", mod], capture_output=True, text=True, check=False,
                          env={**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"})
    if proc.returncode != 0:
        raise RuntimeError(f"go mod download {mod} failed:\n{proc.stdout}{proc.stderr}")
    return Path(json.loads(proc.stdout)["Dir"])


def crd_files(components: tuple[str, ...] = DEFAULT) -> list[Path]:
    """The CRD manifests of the controllers, from their modules' ``config/crd/bases``."""
    return [f for c in components for f in sorted((module_dir(c) / "config" / "crd" / "bases").glob("*.yaml"))]


def install_crds(cluster: Cluster, timeout: float = 60, components: tuple[str, ...] = DEFAULT) -> list[str]:
    """Server-side apply the Flux CRDs and wait until they are Established; returns their names."""
    files = crd_files(components)
    args = [a for f in files for a in ("-f", str(f))]
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=kubeshape-testbed", *args,
                    timeout=timeout)
    names = cluster.kubectl("get", *args, "-o", "name").stdout.split()
    cluster.kubectl("wait", "--for=condition=Established", f"--timeout={int(timeout)}s", *names,
                    timeout=timeout + 10)
    return [n.removeprefix("customresourcedefinition.apiextensions.k8s.io/") for n in names]


def _source_argv(workdir: Path, artifact_port: int, health: int, metrics: int) -> list[str]:
    addr = f"127.0.0.1:{artifact_port}"
    return [str(binary("flux-source", "source-controller")),
            "--enable-leader-election=false", f"--health-addr=127.0.0.1:{health}",
            f"--metrics-addr=127.0.0.1:{metrics}", f"--storage-path={workdir / 'artifacts'}",
            f"--storage-addr={addr}", f"--storage-adv-addr={addr}", "--log-level=info"]


def _kustomize_argv(health: int, metrics: int) -> list[str]:
    # --no-remote-bases: a kustomization may not pull bases from outside the test bed
    return [str(binary("flux-kustomize", "kustomize-controller")),
            "--enable-leader-election=false", f"--health-addr=127.0.0.1:{health}",
            f"--metrics-addr=127.0.0.1:{metrics}", "--no-remote-bases=true", "--log-level=info"]


def _helm_argv(health: int, metrics: int) -> list[str]:
    return [str(binary("flux-helm", "helm-controller")),
            "--enable-leader-election=false", f"--health-addr=127.0.0.1:{health}",
            f"--metrics-addr=127.0.0.1:{metrics}", "--log-level=info"]


def _ready(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
        return bool(resp.status == 200)


def start_flux(cluster: Cluster, workdir: Path, *, helm: bool = False, timeout: float = 120) -> Flux:
    """Install the CRDs, start source-controller and kustomize-controller (and helm-controller with ``helm``)
    against ``cluster`` (logs and artifacts in ``workdir``) and wait until each answers ``/readyz``. Builds the
    binaries on first use."""
    (workdir / "artifacts").mkdir(parents=True, exist_ok=True)  # source-controller does not create it
    install_crds(cluster, components=(*DEFAULT, "flux-helm") if helm else DEFAULT)
    artifact_port = free_port()
    health = {"source-controller": free_port(), "kustomize-controller": free_port()}
    if helm:
        health["helm-controller"] = free_port()
    flux = Flux(cluster, workdir, f"127.0.0.1:{artifact_port}", health)
    # Outside a cluster: the controllers have no --kubeconfig flag (controller-runtime reads KUBECONFIG), the
    # namespace they would run in comes from RUNTIME_NAMESPACE, and kustomize-controller and helm-controller
    # fetch artifacts from the loopback address whatever host an artifact URL names.
    env = {"KUBECONFIG": str(cluster.kubeconfig), "RUNTIME_NAMESPACE": RUNTIME_NAMESPACE,
           "SOURCE_CONTROLLER_LOCALHOST": flux.artifact_addr}
    argvs = {"source-controller": _source_argv(workdir, artifact_port, health["source-controller"], free_port()),
             "kustomize-controller": _kustomize_argv(health["kustomize-controller"], free_port())}
    if helm:
        argvs["helm-controller"] = _helm_argv(health["helm-controller"], free_port())
    try:
        for name, argv in argvs.items():
            flux.procs[name] = proc = start(name, argv, workdir, env)
            cluster.track(proc)
        for name, proc in flux.procs.items():
            wait_until(partial(_ready, health[name]), proc, timeout, "/readyz")
    except BaseException:
        flux.stop()
        raise
    return flux
