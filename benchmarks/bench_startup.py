#!/usr/bin/env python3
"""Start-up of quick ``kubeshape`` commands against the interpreter's own start-up (``python -c pass``).

    python benchmarks/bench_startup.py                       # best of 10 per command
    python benchmarks/bench_startup.py --runs 20
    python benchmarks/bench_startup.py --python /tmp/v/bin/python   # kubeshape installed in another environment
    python benchmarks/bench_startup.py --python /tmp/v/bin/python --src /tmp/old/src   # another source tree
    python benchmarks/bench_startup.py --kubeconfig K       # plus a live ``doctor -o json`` of that cluster

Every command runs in a fresh process, as a user runs it (``python -m kubeshape ARGS``, output captured as into a
pipe): once untimed (warm-up: page cache and bytecode cache), then ``--runs`` times; the best wall time counts.
The bytecode cache lives in a temporary ``PYTHONPYCACHEPREFIX``, as an installed package has .pyc files (a
development environment with ``PYTHONDONTWRITEBYTECODE=1`` recompiles every module on each start, which is not what
users run). Rows: ``version``, ``--help``, ``rule KS101``, ``rules``, ``lint`` of a one-file repository,
``doctor --demo -o json`` (and ``doctor --kubeconfig K -o json`` with ``--kubeconfig``). Beside each: the
baseline, the ratio to it, how many modules are loaded when it exits (one extra run) and the
start-up target (version and rule KS101: 150 ms). The script always exits 0: it reports.

An interpreter whose ``site`` imports extra modules (a ``.pth`` file) starts slower and shares those imports
with kubeshape: a fresh virtual environment (``python -m venv /tmp/v && /tmp/v/bin/pip install .``) gives the
figures a user sees.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TINY_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.example.com/shop/web:1.4.2
          resources:
            requests: {cpu: 100m, memory: 128Mi}
            limits: {memory: 256Mi}
"""


@dataclass(frozen=True, slots=True)
class Case:
    label: str
    args: tuple[str, ...]
    target: float | None = None  # seconds: the start-up target, where one is set
    ok: tuple[int, ...] = (0,)


def cases(tiny_repo: Path, kubeconfig: Path | None) -> list[Case]:
    live = [Case("doctor -o json (live)", ("doctor", "--kubeconfig", str(kubeconfig), "-o", "json"), ok=(0, 1))]
    return [
        Case("version", ("version",), 0.15),
        Case("--help", ("--help",)),
        Case("rule KS101", ("rule", "KS101"), 0.15),
        Case("rules", ("rules",)),
        Case("lint <one file>", ("lint", str(tiny_repo)), ok=(0, 1)),
        Case("doctor --demo -o json", ("doctor", "--demo", "-o", "json"), ok=(0, 1)),
        *(live if kubeconfig else []),
    ]


def run(argv: list[str], env: dict[str, str], ok: tuple[int, ...]) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(argv, env=env, capture_output=True, check=False, stdin=subprocess.DEVNULL)
    if proc.returncode not in ok:
        sys.exit(f"bench_startup: {' '.join(argv)} exited {proc.returncode}:\n{proc.stderr.decode()[-2000:]}")
    return proc


def best_of(argv: list[str], runs: int, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> float:
    run(argv, env, ok)  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run(argv, env, ok)
        times.append(time.perf_counter() - t0)
    return min(times)


_COUNT = """\
import atexit, runpy, sys
out, args = sys.argv[1], sys.argv[2:]
atexit.register(lambda: open(out, "w").write(str(len(sys.modules))))
if args:
    sys.argv = ["kubeshape", *args]
    runpy.run_module("kubeshape", run_name="__main__", alter_sys=True)
"""


def imported(python: str, args: tuple[str, ...], env: dict[str, str], ok: tuple[int, ...], work: Path) -> int:
    """How many modules are loaded when ``kubeshape ARGS`` exits (``sys.modules``: modules imported through
    importlib count too); with no ARGS, the interpreter's own."""
    out = work / "modules"
    run([python, "-c", _COUNT, str(out), *args], env, ok)
    return int(out.read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="timed runs per command; the best counts (default 10)")
    ap.add_argument("--python", default=sys.executable, help="interpreter with kubeshape installed (default: this)")
    ap.add_argument("--src", type=Path, help="import kubeshape from this source tree (PYTHONPATH), e.g. an older one")
    ap.add_argument("--kubeconfig", type=Path, help="also time a live doctor -o json of this cluster")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be ≥ 1")
    with tempfile.TemporaryDirectory(prefix="ks-startup-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(PYTHONPYCACHEPREFIX=str(work / "pycache"), COLUMNS="100", NO_COLOR="1")
        if args.src:
            env["PYTHONPATH"] = str(args.src.resolve())
        (work / "repo").mkdir()
        (work / "repo" / "web.yaml").write_text(TINY_DEPLOYMENT, encoding="utf-8")
        py = [args.python]
        base = best_of([*py, "-c", "pass"], args.runs, env)
        base_mods = imported(args.python, (), env, (0,), work)
        where = f" with kubeshape from {args.src}" if args.src else ""
        print(f"{args.python}{where}: best of {args.runs} wall times, fresh process each; {os.cpu_count()} CPUs")
        head = ("command", "best", "× python -c pass", "modules", "target", "met?")
        rows = [("python -c pass (baseline)", f"{base * 1000:.0f} ms", "1.00×", str(base_mods), "—", "—")]
        for case in cases(work / "repo", args.kubeconfig):
            cmd = [*py, "-m", "kubeshape", *case.args]
            wall = best_of(cmd, args.runs, env, case.ok)
            mods = imported(args.python, case.args, env, case.ok, work)
            target = f"≤ {case.target * 1000:.0f} ms" if case.target else "—"
            met = "—" if case.target is None else ("yes" if wall <= case.target else "no")
            rows.append((f"kubeshape {case.label}",
                         f"{wall * 1000:.0f} ms", f"{wall / base:.2f}×", str(mods), target, met))
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    print()
    for i, r in enumerate((head, *rows)):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return 0


if __name__ == "__main__":
    sys.exit(main())
