"""`python -m testbed up --scenario gitops` in a test: the homelab applied by real Flux controllers from a loopback
git repository, on a control plane of its own, and what its banner says (kubeconfig, registry, clone URL, checkout).

    @pytest.fixture(scope="module")
    def bed(tmp_path_factory): yield from gitops_bed(tmp_path_factory.mktemp("gitops-up"))
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from testbed.cluster import kill_recorded

ROOT = Path(__file__).resolve().parents[1]
UP_TIMEOUT = 420  # seconds: control plane, Flux (built on first use elsewhere), images, first reconcile
HOMELAB_REGISTRY = "100.81.76.55:30500"


class Bed:
    """What `up` printed, and the commands the tests run against it."""

    def __init__(self, workdir: Path, banner: str) -> None:
        self.workdir = workdir
        self.kubeconfig = workdir / "kubeconfig"
        git = re.search(r"^git:\s+(\S+) \(Flux follows main; a checkout: (\S+)\)$", banner, re.M)
        registry = re.search(r"^registry:\s+(\S+)$", banner, re.M)
        assert git and registry, banner
        self.git_url, self.checkout = git.group(1), Path(git.group(2))
        self.registry = registry.group(1)

    def kubectl(self, *args: str) -> str:
        return subprocess.run(["kubectl", f"--kubeconfig={self.kubeconfig}", *args], capture_output=True, text=True,
                              check=True, timeout=60).stdout

    def get(self, *args: str) -> dict[str, Any]:
        """``kubectl get ARGS -o json``."""
        return dict(json.loads(self.kubectl("get", *args, "-o", "json")))

    def doctor(self, *args: str, registry: bool = False, expect: tuple[int, ...] = (0, 1)) -> dict[str, Any]:
        """``kubeshape doctor --kubeconfig … -o json ARGS`` run from the checkout (with the bed's registry)."""
        extra = ["--registry", f"{self.registry}={HOMELAB_REGISTRY}", "--insecure-registry"] if registry else []
        proc = subprocess.run([sys.executable, "-m", "kubeshape", "doctor", "--kubeconfig", str(self.kubeconfig),
                               "-o", "json", *extra, *args], cwd=self.checkout, capture_output=True, text=True,
                              timeout=300, check=False)
        assert proc.returncode in expect, proc.stderr
        return dict(json.loads(proc.stdout))


def gitops_bed(workdir: Path) -> Iterator[Bed]:
    """Bring the gitops scenario up in ``workdir``, yield it, bring it down (also when the test fails)."""
    up = subprocess.Popen([sys.executable, "-m", "testbed", "up", "--dir", str(workdir), "--scenario", "gitops"],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert up.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + UP_TIMEOUT
        for line in iter(up.stdout.readline, ""):
            lines.append(line)
            if line.startswith("stop with") or time.monotonic() > deadline:
                break
        yield Bed(workdir, "".join(lines))
        subprocess.run([sys.executable, "-m", "testbed", "down", "--dir", str(workdir)], cwd=ROOT,
                       capture_output=True, check=True, timeout=60)
        assert up.wait(30) == 0
    finally:
        up.kill()
        up.wait()
        kill_recorded(workdir)
