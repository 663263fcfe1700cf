"""Run the test bed by hand.

    python -m testbed up [--dir D] [--scenario homelab|gitops]
                                       start the cluster and a registry on 127.0.0.1 (and load a scenario;
                                       gitops also starts Flux and a git server and has Flux apply the homelab),
                                       print how to reach them, stay up until Ctrl-C, SIGTERM or `down`
    python -m testbed down --dir D     kill every process recorded in D/pids
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from testbed.cluster import Cluster, kill_recorded, process_start_time, start_cluster
from testbed.registry import start_registry

UP_PID = "up.pid"


def _up(workdir: Path, scenario: str | None) -> int:
    cluster = start_cluster(workdir)
    try:
        registry = start_registry(workdir / "registry")
        cluster.track(registry.proc)
        extra = ""
        if scenario == "gitops":
            from testbed.scenarios.gitops import load_gitops

            print("loading scenario gitops (Flux, git server, homelab) …", flush=True)
            gitops = load_gitops(cluster, registry.host, workdir)
            extra = (f"git:        {gitops.source.repo.url} (Flux follows main; a checkout: {gitops.repo.path})\n"
                     f"flux:       GitRepository and Kustomizations in namespace flux-system, at "
                     f"{gitops.commit[:12]}\n")
        elif scenario:
            from testbed.scenarios.loader import load

            print(f"loading scenario {scenario} …", flush=True)
            load(cluster, registry.host, scenario)
        # Not in the pids file, which the reaper kills while our cluster.stop() waits for it.
        (workdir / UP_PID).write_text(f"{os.getpid()} {process_start_time(os.getpid())}\n")
        print(extra + _banner(cluster, registry.host, workdir), flush=True)
        _wait_for_signal_or_death(cluster.alive)
    finally:
        cluster.stop()
    return 0


def _banner(cluster: Cluster, registry: str, workdir: Path) -> str:
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in cluster.timings.items())
    return (f"kubeconfig: {cluster.kubeconfig}\nregistry:   {registry}\nready:      {timings}\n"
            f"export KUBECONFIG={cluster.kubeconfig}\nexport KUBESHAPE_TESTBED_REGISTRY={registry}\n"
            f"stop with Ctrl-C or: python -m testbed down --dir {workdir}")


def _wait_for_signal_or_death(alive: Callable[[], dict[str, bool]]) -> None:
    stop = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not stop:
        dead = [name for name, ok in alive().items() if not ok]
        if dead:
            print(f"testbed: {', '.join(dead)} exited; stopping", file=sys.stderr)
            return
        time.sleep(0.5)


def _stop_up(workdir: Path, timeout: float = 30) -> bool:
    """SIGTERM the `up` process of ``workdir``, which then stops its cluster; wait until it is gone."""
    try:
        pid, started = (workdir / UP_PID).read_text().split()
    except (OSError, ValueError):
        return False
    if process_start_time(int(pid)) != started:
        return False
    os.kill(int(pid), signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_start_time(int(pid)) == started and time.monotonic() < deadline:
        time.sleep(0.1)
    return True


def _down(workdir: Path, after_stdin_eof: bool) -> int:
    if after_stdin_eof:
        sys.stdin.buffer.read()  # returns once the process that started the cluster closes it or dies
    killed = (["testbed up"] if not after_stdin_eof and _stop_up(workdir) else []) + kill_recorded(workdir)
    if not after_stdin_eof:
        print(f"stopped: {', '.join(killed) or 'nothing was running'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m testbed", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the cluster and a registry")
    up.add_argument("--dir", type=Path, help="work dir (logs, kubeconfig, pids); default: a new temp dir")
    up.add_argument("--scenario", choices=("homelab", "gitops"),
                    help="also load a scenario: homelab (applied by hand) or gitops (the homelab through Flux)")
    down = sub.add_parser("down", help="kill what `up` started in --dir")
    down.add_argument("--dir", type=Path, required=True)
    down.add_argument("--after-stdin-eof", action="store_true", help=argparse.SUPPRESS)  # the reaper
    args = ap.parse_args(argv)
    if args.cmd == "up":
        return _up((args.dir or Path(tempfile.mkdtemp(prefix="kubeshape-testbed."))).resolve(), args.scenario)
    return _down(args.dir.resolve(), args.after_stdin_eof)


if __name__ == "__main__":
    sys.exit(main())
