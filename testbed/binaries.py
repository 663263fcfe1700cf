"""Where the test bed's binaries live, and building them on demand (testbed/build.sh)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD = HERE / "build.sh"


def cache_dir() -> Path:
    return Path(os.environ.get("KUBESHAPE_TESTBED_CACHE", Path.home() / ".cache" / "kubeshape-testbed"))


def versions() -> dict[str, str]:
    """Component → version, as pinned in build.sh (environment overrides honoured)."""
    text = BUILD.read_text()
    out = {}
    for name in ("ETCD", "KUBERNETES", "KWOK", "REGISTRY", "HELM", "ACTIONLINT", "VEGETA", "FLUX_SOURCE",
                 "FLUX_KUSTOMIZE", "FLUX_HELM", "KUBE_SCORE", "K8SGPT"):
        m = re.search(rf"^{name}_VERSION=\$\{{KUBESHAPE_{name}_VERSION:-([^}}]+)\}}", text, re.M)
        assert m, f"build.sh lacks {name}_VERSION"
        out[name.lower().replace("_", "-")] = os.environ.get(f"KUBESHAPE_{name}_VERSION", m.group(1))
    return out


def binary(component: str, name: str | None = None) -> Path:
    """Path of a built binary (``binary("kubernetes", "kube-apiserver")``); builds it when missing.

    ``binary("vegeta")`` is how the benchmarks get vegeta, ``binary("flux-source", "source-controller")`` the
    Flux tests their controllers: build.sh without arguments leaves them out.
    """
    v = versions()[component]
    path = cache_dir() / f"{component}-{v}" / (name or component)
    if not path.is_file():
        ensure_built(component)
    if not path.is_file():
        raise RuntimeError(f"{path} missing after testbed/build.sh {component}")
    return path


def ensure_built(*components: str) -> None:
    """Run build.sh for ``components`` (it skips what is cached)."""
    proc = subprocess.run(["bash", str(BUILD), *components], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"testbed/build.sh {' '.join(components)} failed:\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")
