"""Run the test bed by hand.

    python -m testbed up [--dir D]     start the cluster and a registry on 127.0.0.1, print how to reach
                                       them, stay up until Ctrl-C, SIGTERM or `down`
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

from testbed.cluster import Cluster, kill_recorded, record_pid, start_cluster
from testbed.registry import start_registry


def _up(workdir: Path) -> int:
    cluster = start_cluster(workdir)
    try:
        registry = start_registry(workdir / "registry")
        cluster.track(registry.proc)
        record_pid(workdir, "testbed-up", os.getpid())  # so that `down` stops us (and we stop the rest)
        print(_banner(cluster, registry.host, workdir), flush=True)
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


def _down(workdir: Path, after_stdin_eof: bool) -> int:
    if after_stdin_eof:
        sys.stdin.buffer.read()  # returns once the process that started the cluster closes it or dies
    killed = kill_recorded(workdir)
    if not after_stdin_eof:
        print(f"stopped: {', '.join(killed) or 'nothing was running'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m testbed", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the cluster and a registry")
    up.add_argument("--dir", type=Path, help="work dir (logs, kubeconfig, pids); default: a new temp dir")
    down = sub.add_parser("down", help="kill what `up` started in --dir")
    down.add_argument("--dir", type=Path, required=True)
    down.add_argument("--after-stdin-eof", action="store_true", help=argparse.SUPPRESS)  # the reaper
    args = ap.parse_args(argv)
    if args.cmd == "up":
        return _up((args.dir or Path(tempfile.mkdtemp(prefix="kubeshape-testbed."))).resolve())
    return _down(args.dir.resolve(), args.after_stdin_eof)


if __name__ == "__main__":
    sys.exit(main())
