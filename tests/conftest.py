"""Session fixtures for the real systems tests talk to (all on loopback, started here)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testbed.cluster import Cluster, NodeSpec, start_cluster
from testbed.flux import Flux, start_flux
from testbed.gitserver import GitServer, start_git_server
from testbed.registry import Registry, start_registry


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A real distribution registry on 127.0.0.1 with deletes enabled (fresh per test session)."""
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok) on 127.0.0.1 with
    two Ready kwok nodes: ``node-a`` has the image ``homelab-dashboard:v3``, ``node-b`` has no images.
    Binaries are built on first use (testbed/build.sh). Stopped at session end, or by the reaper if the
    test process is killed."""
    c = start_cluster(tmp_path_factory.mktemp("cluster"),
                      nodes=[NodeSpec("node-a", images=("homelab-dashboard:v3",)), NodeSpec("node-b")])
    yield c
    c.stop()


@pytest.fixture(scope="session")
def flux(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flux]:
    """Flux's source-controller, kustomize-controller and helm-controller (CRDs installed) reconciling into
    ``cluster``; built on first use (testbed/build.sh flux-source flux-kustomize flux-helm)."""
    f = start_flux(cluster, tmp_path_factory.mktemp("flux"), helm=True)
    yield f
    f.stop()


@pytest.fixture(scope="session")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    """Bare repositories served over smart HTTP on 127.0.0.1 (pushes need no credentials)."""
    server = start_git_server(tmp_path_factory.mktemp("gitserver") / "repos")
    yield server
    server.stop()
