"""A failed release through Flux: how long until kubeshape declares the rollout stalled, and how long the
rollback through git takes, beside a plain ``kubectl rollout undo`` of the same stalled rollout.

Starts its own test bed on loopback -- control plane with kwok nodes, a registry the nodes pull from for real
(``Cluster.check_registry``), a git server, Flux's source-controller and kustomize-controller -- and one
Deployment that Flux deploys from a repository (GitRepository interval 10s). Each round releases a new build
with ``kubeshape release --gitops flux --watch``; a retention job on the git server deletes the build's tag
from the registry when the commit lands, so the new pods end in ImagePullBackOff:

* **flux** rounds use ``--rollback-on-failure``: kubeshape reverts the commit, pushes the revert, waits until
  Flux applied it and watches the old ReplicaSet come back;
* **undo** rounds stop at the failure (nothing rolled back) and run ``kubectl rollout undo`` at once, then
  wait for the same healthy state. That only measures the mechanics: Flux would apply the failed commit again
  at its next reconcile. Each undo round is then aborted (``kubeshape release --abort``) to leave git clean.

detect  = from the push of the release commit until kubeshape declares the rollout stalled (``--stall-after``,
          30 s by default, after the first failed pull on a new pod);
recover = from that moment until the Deployment runs the old image again, rolled out.

    python benchmarks/bench_gitops.py [--rounds 10] [--stall-after 30]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubeshape.release.transaction import ReleaseResult  # noqa: E402
from kubeshape.release.workflow import ReleaseOptions, abort_release, run_release  # noqa: E402
from testbed.cluster import Cluster, NodeSpec, start_cluster  # noqa: E402
from testbed.flux import start_flux  # noqa: E402
from testbed.gitserver import start_git_server  # noqa: E402
from testbed.registry import start_registry  # noqa: E402
from tests.release_helpers import (  # noqa: E402
    FluxApp,
    delete_tag_on_push,
    flux_app,
    git,
    image,
    layout,
    next_tag,
    rolled_out,
)

TARGET_RECOVERY = 60.0  # seconds, median of the flux rounds


@dataclass
class Clock:
    """A Reporter that notes when each step was announced."""

    steps: list[tuple[float, str]] = field(default_factory=list)

    def step(self, message: str) -> None:
        self.steps.append((time.monotonic(), message))

    def warn(self, message: str) -> None:
        self.step(message)

    def progress(self, message: str) -> None:
        pass

    def at(self, prefix: str) -> float:
        return next(t for t, m in self.steps if m.startswith(prefix))


@dataclass
class Round:
    mode: str
    detect: float
    recover: float


def healthy_at(cluster: Cluster, app: FluxApp, want: str) -> bool:
    dep = app.deployment()
    return rolled_out(dep) and dep["spec"]["template"]["spec"]["containers"][0]["image"] == want


def release(app: FluxApp, registry: str, workdir: Path, n: int, rollback: bool, stall_after: float) -> tuple[
        ReleaseResult, Clock]:
    """Commit a change, arrange for the build's tag to vanish on push, release it; the result and the clock."""
    (app.root / "src").mkdir(exist_ok=True)
    (app.root / "src" / "main.py").write_text(f"build = {n}\n")
    git(app.root, "add", "-A")
    git(app.root, "commit", "-qm", f"build {n}")
    delete_tag_on_push(app.bare, registry, app.repository, next_tag(app.root))
    opts = ReleaseOptions(image=app.image, path=app.root, oci_layout=layout(workdir / f"layout-{n}", image(f"b{n}")),
                          manifest=app.file, kubeconfig=Path(app.source.cluster.kubeconfig), gitops="flux",
                          watch=True, rollback_on_failure=rollback, stall_after=stall_after)
    clock = Clock()
    return run_release(opts, clock), clock


def detected(result: ReleaseResult, clock: Clock) -> float:
    """When the watch declared the rollout stalled (its start plus its own elapsed time)."""
    assert result.outcomes and not result.outcomes[-1].ok, result.failure
    assert "stalled" in (result.failure or ""), result.failure
    return clock.at("watching Deployment") + result.outcomes[-1].seconds


def flux_round(cluster: Cluster, app: FluxApp, registry: str, workdir: Path, n: int, good: str,
               stall_after: float) -> Round:
    result, clock = release(app, registry, workdir, n, True, stall_after)
    done = time.monotonic()
    assert result.rolled_back and result.revert_commit, result.failure
    assert all(t.rollback is not None and t.rollback.ok for t in result.targets), result.notes
    assert healthy_at(cluster, app, good)
    at = detected(result, clock)
    return Round("flux", at - clock.at("pushed "), done - at)


def undo_round(cluster: Cluster, app: FluxApp, registry: str, workdir: Path, n: int, good: str,
               stall_after: float) -> Round:
    result, clock = release(app, registry, workdir, n, False, stall_after)
    assert not result.ok and not result.rolled_back and result.left, result.failure
    at = detected(result, clock)
    cluster.kubectl("rollout", "undo", f"deployment/{app.name}", "-n", app.namespace)
    while not healthy_at(cluster, app, good):
        time.sleep(0.25)
    done = time.monotonic()
    aborted = abort_release(app.root, Clock())  # the revert through Flux: git and Flux agree again
    assert aborted.rolled_back and aborted.revert_commit, aborted.notes
    return Round("undo", at - clock.at("pushed "), done - at)


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * 9 // 10) - 1)]


def summary(rounds: list[Round]) -> None:
    print()
    print(f"{'':8}{'detect median':>15}{'detect p90':>12}{'recover median':>16}{'recover p90':>13}")
    medians = {}
    for mode in ("flux", "undo"):
        got = [r for r in rounds if r.mode == mode]
        detect, recover = [r.detect for r in got], [r.recover for r in got]
        medians[mode] = statistics.median(recover)
        print(f"{mode:8}{statistics.median(detect):14.1f}s{p90(detect):11.1f}s{medians[mode]:15.1f}s"
              f"{p90(recover):12.1f}s   ({len(got)} rounds)")
    ratio = medians["flux"] / medians["undo"] if medians["undo"] else float("inf")
    verdict = "met" if medians["flux"] < TARGET_RECOVERY else "MISSED"
    print(f"recovery through Flux / kubectl rollout undo: {ratio:.1f}x; target median recovery < "
          f"{TARGET_RECOVERY:.0f} s: {verdict}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10, help="releases per mode (default 10)")
    ap.add_argument("--stall-after", type=float, default=30.0, help="kubeshape's --stall-after (default 30)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-gitops-") as tmp:
        work = Path(tmp)
        cluster = start_cluster(work / "cluster", nodes=[NodeSpec("node-a"), NodeSpec("node-b")])
        registry = git_server = flux = None
        try:
            registry = start_registry(work / "registry")
            cluster.track(registry.proc)
            cluster.check_registry(registry.host)
            git_server = start_git_server(work / "git" / "repos")
            flux = start_flux(cluster, work / "flux")
            app = flux_app(cluster, git_server, registry, flux, work / "repo")
            good = app.live_image()
            print(f"test bed {cluster.version} + Flux up; Deployment {app.namespace}/{app.name} runs {good} "
                  f"(stall-after {args.stall_after:g}s)")
            rounds: list[Round] = []
            for n in range(args.rounds):
                for mode, run in (("flux", flux_round), ("undo", undo_round)):
                    r = run(cluster, app, registry.host, work, 2 * n + (mode == "undo"), good, args.stall_after)
                    rounds.append(r)
                    print(f"  round {n + 1:2} {mode:4}  detect {r.detect:5.1f}s  recover {r.recover:5.1f}s",
                          flush=True)
            summary(rounds)
        finally:
            if flux is not None:
                flux.stop()
            if git_server is not None:
                git_server.stop()
            cluster.stop()


if __name__ == "__main__":
    subprocess.run(["bash", str(ROOT / "testbed" / "build.sh")], check=True, capture_output=True)
    main()
