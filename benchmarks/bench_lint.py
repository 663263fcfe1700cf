#!/usr/bin/env python3
"""Benchmark ``kubeshape lint`` on a Flux GitOps repository against merely loading its YAML, in one process.

    python benchmarks/bench_lint.py                  # generate the repo (≈450 files, 110 Flux Kustomizations)
    python benchmarks/bench_lint.py --repo DIR       # your repository instead
    python benchmarks/bench_lint.py --runs 5 --profile

Measured, best of ``--runs`` (``gc.collect()`` and a cleared image-reference cache before each run):

* baseline: read every YAML file lint reads and ``yaml.load_all`` it with the C loader (CSafeLoader);
* lint: ``load_repo`` (every render root rendered, Flux substitution) + ``Inventory`` + ``analyse``: what
  ``kubeshape lint DIR`` does apart from printing;
* the CLI as a user runs it (``python -m kubeshape lint DIR -o json``, a fresh process), wall time.

Target (from the issue): lint / baseline ≤ 4. Also printed: the render roots and how many of them needed the
kustomize binary. The script always exits 0: it reports.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen_gitops

from kubeshape import imageref
from kubeshape.analysis import analyse
from kubeshape.config import Config
from kubeshape.inventory import Inventory
from kubeshape.sources.repo import SKIP_DIRS, YAML_SUFFIXES, load_repo


def yaml_files(repo: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(repo):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        out += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(YAML_SUFFIXES) or f == "Kustomization"]
    return out


def baseline(files: list[Path]) -> Any:
    kept = []
    for p in files:
        kept.append(list(yaml.load_all(p.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)))
    return kept


def lint(repo: Path) -> Any:
    src = load_repo([repo], repo)
    report, _ = analyse(Inventory(repo=src), Config(), command="lint")
    return src, report


def best(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        gc.collect()
        imageref._parse.cache_clear()
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", type=Path, help="lint this repository instead of a generated one")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of one lint run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ks-bench-lint-") as tmp:
        repo = args.repo
        if repo is None:
            repo = Path(tmp) / "repo"
            counts = gen_gitops.generate(repo)
            print(f"generated {repo}: {counts['files']} files, {counts['flux_kustomizations']} Flux "
                  f"Kustomizations, {counts['helmreleases']} HelmReleases")
        repo = repo.resolve()
        files = yaml_files(repo)
        t_base, _ = best(lambda: baseline(files), args.runs)
        t_lint, (src, report) = best(lambda: lint(repo), args.runs)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "kubeshape", "lint", str(repo), "-o", "json"],
                              capture_output=True, text=True, check=False)
        t_cli = time.perf_counter() - t0
        print(f"YAML files: {len(files)}; render roots: {src.roots}; objects: {len(src.objects)}; "
              f"findings: {len(report.findings)}; not analysed: {len(src.not_analysed)}")
        print(f"{'':44} {'time':>9} {'files/s':>9} {'ratio':>7}")
        print(f"{'baseline: yaml.load_all (CSafeLoader)':44} {t_base:8.3f}s {len(files) / t_base:9.0f} {1:7.2f}")
        print(f"{'lint: load_repo + Inventory + analyse':44} {t_lint:8.3f}s {len(files) / t_lint:9.0f} "
              f"{t_lint / t_base:7.2f}")
        print(f"{'kubeshape lint (fresh process, exit ' + str(proc.returncode) + ')':44} {t_cli:8.3f}s "
              f"{len(files) / t_cli:9.0f} {t_cli / t_base:7.2f}")
        verdict = "met" if t_lint / t_base <= 4 else "MISSED"
        print(f"ratio lint / baseline = {t_lint / t_base:.2f} (target ≤ 4: {verdict})")
        if args.profile:
            prof = cProfile.Profile()
            prof.runcall(lint, repo)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
