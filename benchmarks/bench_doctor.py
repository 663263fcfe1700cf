#!/usr/bin/env python3
"""Benchmark ``kubeshape doctor`` against merely loading the same data, in one process.

    python benchmarks/bench_doctor.py                 # generate the full-size bundle (20k pods) in a temp dir
    python benchmarks/bench_doctor.py --small         # 2k pods: a quick smoke run
    python benchmarks/bench_doctor.py --bundle B --repo R [--runs 5]
    python benchmarks/bench_doctor.py --keep /tmp/ks-bench   # generate there and keep it for reuse

Measured (best of ``--runs``, ``gc.collect()`` and a cleared image-reference cache before each run):

* baseline: read and ``orjson.loads`` every JSON file of the bundle, read and split every log file, read and
  ``yaml.load_all`` (CSafeLoader) every manifest file -- merely loading the same data;
* doctor: ``load_bundle`` + ``load_repo`` + ``Inventory(...)`` + ``analyse(inv, Config())`` -- the whole
  pipeline without rendering; its load phase (the two loaders) is timed on its own too;
* render: ``render_json(report)``.

Peak memory (tracemalloc) is measured in separate runs, since tracing slows everything down. The per-rule
breakdown times each rule's function on a fresh inventory whose shared indexes were built first (they are
listed on their own), then the metrics and the engine's merge/suppress/sort.

Targets (from the issue): doctor / baseline ≤ 2.0 (analysis adds at most as much time as loading takes) and
peak memory of the same order as the baseline (doctor / baseline ≤ 2.0). The script always exits 0: it reports.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen_bundle

from kubeshape import engine, imageref, metrics
from kubeshape.analysis import analyse
from kubeshape.config import Config
from kubeshape.findings import FAMILIES
from kubeshape.inventory import Inventory
from kubeshape.report.json_ import render_json
from kubeshape.rules.base import Context
from kubeshape.sources._gc import exits_after_command, kept_until_exit
from kubeshape.sources.bundle import load_bundle
from kubeshape.sources.repo import SKIP_DIRS, YAML_SUFFIXES, load_repo

TIME_TARGET = 2.0
MEMORY_TARGET = 2.0
FULL = {"pods": 20000, "deployments": 5000, "events": 50000, "manifests": 2000}
SMALL = {"pods": 2000, "deployments": 500, "events": 5000, "manifests": 200}
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
INDEXES = ("live_by_key", "live_by_uid", "events_by_object", "children", "live_workloads", "repo_by_key",
           "repo_workloads", "service_names")


# ------------------------------------------------------------------------------------------------------
# What is measured
# ------------------------------------------------------------------------------------------------------


def manifest_files(repo: Path) -> list[Path]:
    """The YAML files load_repo reads (same directory pruning)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(repo):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        out += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(YAML_SUFFIXES)]
    return out


def baseline(bundle: Path, repo: Path, phases: dict[str, float] | None = None) -> list[Any]:
    """Merely load the same data: every JSON document, every log tail, every YAML document."""
    held: list[Any] = []
    t0 = time.perf_counter()
    for p in sorted(bundle.rglob("*")):
        if not p.is_file():
            continue
        data = p.read_bytes()
        if p.suffix == ".json":
            held.append(orjson.loads(data))
        elif p.suffix == ".log":
            held.append(data.decode("utf-8", errors="replace").splitlines())
    t1 = time.perf_counter()
    for p in manifest_files(repo):
        try:
            held.append(list(yaml.load_all(p.read_text(encoding="utf-8"), Loader=YAML_LOADER)))
        except yaml.YAMLError:
            held.append(None)
    if phases is not None:
        phases.update(bundle=t1 - t0, repo=time.perf_counter() - t1)
    return held


def load(bundle: Path, repo: Path) -> Inventory:
    with kept_until_exit():
        cluster, registry = load_bundle(bundle)
        source = load_repo([Path(".")], repo)
    return Inventory(repo=source, cluster=cluster, registry=registry)


def doctor(bundle: Path, repo: Path, phases: dict[str, float] | None = None) -> tuple[Any, Any, Inventory]:
    """The pipeline without rendering; ``phases`` receives the load and analysis times."""
    t0 = time.perf_counter()
    with kept_until_exit():  # as the CLI loads (cli.app.load_sources)
        cluster, registry = load_bundle(bundle)
        t1 = time.perf_counter()
        source = load_repo([Path(".")], repo)
    t2 = time.perf_counter()
    inv = Inventory(repo=source, cluster=cluster, registry=registry)
    report, result = analyse(inv, Config())
    t3 = time.perf_counter()
    if phases is not None:
        phases.update(load_bundle=t1 - t0, load_repo=t2 - t1, load=t2 - t0, analysis=t3 - t2)
    return report, result, inv


def _cold() -> None:
    """Forget what a previous run cached, so every run is like a fresh CLI process."""
    from kubeshape.rules import stability

    for cached in (getattr(imageref, "_parse", None), getattr(stability, "_mask", None)):
        cache_clear = getattr(cached, "cache_clear", None)
        if cache_clear:
            cache_clear()
    gc.unfreeze()  # what the previous run loaded was frozen, as in the CLI: give it back
    gc.collect()


class GcClock:
    """Time spent in cyclic garbage collections (gc.callbacks), per generation."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            g = int(info.get("generation", 2))
            self.count[g] += 1
            self.seconds[g] += time.perf_counter() - self._start

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)

    @property
    def total(self) -> float:
        return sum(self.seconds)


def best_of(runs: int, fn: Callable[[], Any], gc_on: bool = True) -> tuple[float, list[float], GcClock]:
    """Best wall time of ``runs`` calls of ``fn`` (with the cyclic GC on, as the CLI runs, or off), and the
    GC activity of the best run."""
    times: list[float] = []
    clocks: list[GcClock] = []
    for _ in range(runs):
        _cold()
        if not gc_on:
            gc.disable()
        try:
            with GcClock() as clock:
                t = time.perf_counter()
                result = fn()
                times.append(time.perf_counter() - t)
        finally:
            gc.enable()
        clocks.append(clock)
        del result
    _cold()
    best = min(range(len(times)), key=times.__getitem__)
    return times[best], times, clocks[best]


def peak_memory(fn: Callable[[], Any]) -> tuple[int, int]:
    """(peak, still allocated at the end while the result is alive) in bytes, by tracemalloc."""
    _cold()
    tracemalloc.start()
    try:
        result = fn()
        current, peak = tracemalloc.get_traced_memory()
        del result
    finally:
        tracemalloc.stop()
    _cold()
    return peak, current


def per_rule(bundle: Path, repo: Path) -> tuple[list[tuple[str, float, int]], list[tuple[str, float]]]:
    """Time the shared indexes, each rule, the metrics and the engine's post-processing on a fresh inventory.

    The cyclic GC is off while timing: a full collection costs time proportional to the whole heap and lands
    on whichever rule happens to allocate when it triggers, which would blame a random rule.
    """
    _cold()
    inv = load(bundle, repo)
    gc.disable()
    try:
        return _per_rule(inv)
    finally:
        gc.enable()


def _per_rule(inv: Inventory) -> tuple[list[tuple[str, float, int]], list[tuple[str, float]]]:
    steps: list[tuple[str, float]] = []
    for name in INDEXES:
        t = time.perf_counter()
        getattr(inv, name, None)
        steps.append((f"index {name}", time.perf_counter() - t))
    cfg = Config()
    rows: list[tuple[str, float, int]] = []
    raw = []
    sources = inv.sources
    for rule in engine.select_rules(None, list(cfg.ignore)):
        if not rule.applies(sources):
            continue
        t = time.perf_counter()
        found = list(rule.func(Context(inv, cfg, rule)))
        rows.append((f"{rule.id} {rule.name}", time.perf_counter() - t, len(found)))
        raw.extend(found)
    t = time.perf_counter()
    merged = engine._merge(raw) if hasattr(engine, "_merge") else raw
    kept = [f for f in merged if not engine._suppression(inv, cfg, f, cfg.annotation_ignores)] \
        if hasattr(engine, "_suppression") else merged
    engine.sort_findings(kept)
    steps.append(("engine merge/suppress/sort", time.perf_counter() - t))
    t = time.perf_counter()
    metrics.compute(inv, kept, cfg.thresholds.restarts_per_day, cfg.thresholds.max_tags_per_repository)
    steps.append(("metrics.compute", time.perf_counter() - t))
    return rows, steps


def profile_analysis(bundle: Path, repo: Path, top: int, out: Path | None) -> str:
    _cold()
    inv = load(bundle, repo)
    prof = cProfile.Profile()
    gc.disable()
    try:
        prof.enable()
        analyse(inv, Config())
        prof.disable()
    finally:
        gc.enable()
    if out:
        prof.dump_stats(str(out))
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------------


def fmt_s(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def fmt_b(n: float) -> str:
    return f"{n / 2**20:.0f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def verdict(ok: bool) -> str:
    return "TARGET MET" if ok else "TARGET MISSED"


def sizes(bundle: Path, repo: Path, inv: Inventory, result: Any) -> list[str]:
    cluster, source, reg = inv.cluster, inv.repo, inv.registry
    assert cluster is not None and source is not None
    kinds = ", ".join(f"{len(v)} {k}" for k, v in sorted(cluster.objects.items(), key=lambda kv: -len(kv[1])))
    n_obj = sum(len(v) for v in cluster.objects.values())
    json_files = [p for p in bundle.rglob("*.json")]
    logs = [p for p in bundle.rglob("*.log")]
    lines = sum(len(v) for v in cluster.logs.values())
    fam = Counter(f.family for f in result.findings)
    by_family = ", ".join(f"{FAMILIES.get(k, k)} {fam[k]}" for k in sorted(fam))
    rules = Counter(f.rule for f in result.findings)
    out = [
        f"cluster objects   {n_obj} ({kinds})",
        f"events            {len(cluster.events)}",
        f"bundle files      {len(json_files)} JSON ({fmt_b(sum(p.stat().st_size for p in json_files))}), "
        f"{len(logs)} log tails ({lines} lines, {fmt_b(sum(p.stat().st_size for p in logs))})",
    ]
    if reg is not None:
        tags = sum(len(r.tags) for r in reg.repos.values())
        out.append(f"registry          {len(reg.repos)} repositories, {tags} tags")
    yaml_files = manifest_files(repo)
    out += [
        f"manifests         {len(yaml_files)} YAML files ({fmt_b(sum(p.stat().st_size for p in yaml_files))}), "
        f"{len(source.objects)} objects, {len(source.errors)} unreadable",
        f"findings          {len(result.findings)} ({by_family}); {len(result.suppressed)} suppressed; "
        f"{len(rules)} rules fired of {len(result.rules_run)} run",
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--small", action="store_true", help="2k pods / 500 deployments / 5k events / 200 manifests")
    ap.add_argument("--bundle", type=Path, help="use this bundle instead of generating one (needs --repo)")
    ap.add_argument("--repo", type=Path, help="manifests repository to use with --bundle")
    ap.add_argument("--keep", type=Path, help="generate into this directory and keep it")
    ap.add_argument("--runs", type=int, default=3, help="timing runs; the best is reported (default 3)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    ap.add_argument("--top", type=int, default=10, help="slowest rules to list (default 10)")
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of one analysis")
    ap.add_argument("--profile-out", type=Path, help="write the cProfile stats to this file")
    ap.add_argument("--gc", choices=("on", "off", "both"), default="both",
                    help="time with the cyclic GC on (as the CLI runs), off, or both (default)")
    ap.add_argument("--child", choices=("baseline", "doctor"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if (args.bundle is None) != (args.repo is None):
        ap.error("--bundle and --repo go together")
    if args.child:
        with exits_after_command():
            return child(args.child, args.bundle, args.repo)

    tmp: str | None = None
    if args.bundle is not None:
        bundle, repo = args.bundle, args.repo
        print(f"using bundle {bundle} and repo {repo}")
    else:
        size = SMALL if args.small else FULL
        root = args.keep or Path(tmp := tempfile.mkdtemp(prefix="kubeshape-bench-"))
        t = time.perf_counter()
        gen_bundle.generate(root, seed=args.seed, **size)
        bundle, repo = root / "bundle", root / "repo"
        print(f"generated {', '.join(f'{v} {k}' for k, v in size.items())} into {root} "
              f"in {time.perf_counter() - t:.1f}s")
    try:
        with exits_after_command():  # load as the CLI does (frozen); _cold() gives it back between runs
            return run(bundle, repo, args)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def measure(bundle: Path, repo: Path, runs: int, gc_on: bool) -> dict[str, Any]:
    """Baseline and doctor timings in one GC regime."""
    b_phases: list[dict[str, float]] = []
    d_phases: list[dict[str, float]] = []

    def one_baseline() -> Any:
        ph: dict[str, float] = {}
        out = baseline(bundle, repo, ph)
        b_phases.append(ph)
        return out

    def one_doctor() -> Any:
        ph: dict[str, float] = {}
        out = doctor(bundle, repo, ph)
        d_phases.append(ph)
        return out

    base_t, base_all, base_gc = best_of(runs, one_baseline, gc_on)
    doc_t, doc_all, doc_gc = best_of(runs, one_doctor, gc_on)
    return {"base": base_t, "base_all": base_all, "base_gc": base_gc,
            "base_phases": b_phases[base_all.index(base_t)],
            "doc": doc_t, "doc_all": doc_all, "doc_gc": doc_gc, "doc_phases": d_phases[doc_all.index(doc_t)],
            "load": min(p["load"] for p in d_phases), "analysis": min(p["analysis"] for p in d_phases)}


def print_times(m: dict[str, Any], title: str, render_t: float | None, rendered: int) -> None:
    base, doc = m["base"], m["doc"]
    bp, dp = m["base_phases"], m["doc_phases"]
    print(f"\n== time, {title} (best of {len(m['base_all'])})")
    print(f"  {'':54} {'time':>9} {'/ baseline':>11}")

    def row(label: str, t: float, note: str = "") -> None:
        print(f"  {label:54} {fmt_s(t):>9} {t / base:>10.2f}x  {note}")

    row("baseline: merely load the same files", base)
    print(f"    JSON + logs {fmt_s(bp['bundle'])}, YAML {fmt_s(bp['repo'])}; cyclic GC "
          f"{fmt_s(m['base_gc'].total)} ({m['base_gc'].count[2]} full collections)")
    row("doctor: load_bundle+load_repo+Inventory+analyse", doc, f"target ≤ {TIME_TARGET:.1f}")
    print(f"    cyclic GC {fmt_s(m['doc_gc'].total)} ({m['doc_gc'].count[2]} full collections)")
    row("  load phase (load_bundle + load_repo)", m["load"])
    print(f"    load_bundle {fmt_s(dp['load_bundle'])} ({dp['load_bundle'] / bp['bundle']:.2f}x its JSON + logs), "
          f"load_repo {fmt_s(dp['load_repo'])} ({dp['load_repo'] / bp['repo']:.2f}x its YAML)")
    row("  analysis only (Inventory + analyse)", m["analysis"], "≤ 1.0 = adds at most the load time")
    if render_t is not None:
        row(f"render_json ({fmt_b(rendered)})", render_t)
        row("doctor + render_json", doc + render_t)
    print(f"  all runs: baseline {', '.join(fmt_s(t) for t in m['base_all'])}; "
          f"doctor {', '.join(fmt_s(t) for t in m['doc_all'])}")


def child_rss(which: str, bundle: Path, repo: Path) -> int | None:
    """Peak RSS (bytes) of a fresh interpreter that runs only ``which`` (baseline or doctor) once."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", which, "--bundle", str(bundle),
           "--repo", str(repo)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"  ({which} child failed: {proc.stderr.strip().splitlines()[-1:]})")
        return None
    return int(orjson.loads(proc.stdout.strip().splitlines()[-1])["maxrss"])


def _high_water_rss() -> int:
    """This process's peak RSS in bytes. VmHWM belongs to the address space; ru_maxrss would also count the
    parent's high-water mark, which Linux carries across fork + exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(which: str, bundle: Path, repo: Path) -> int:
    start = _high_water_rss()
    held = baseline(bundle, repo) if which == "baseline" else doctor(bundle, repo)
    peak = _high_water_rss()
    del held
    print(orjson.dumps({"maxrss": peak, "before": start}).decode())
    return 0


def run(bundle: Path, repo: Path, args: argparse.Namespace) -> int:
    runs = max(1, args.runs)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}, best of {runs} runs\n", flush=True)

    regimes = {"on": [True], "off": [False], "both": [True, False]}[args.gc]
    results: dict[bool, dict[str, Any]] = {}
    for gc_on in regimes:
        results[gc_on] = measure(bundle, repo, runs, gc_on)

    _cold()
    report, result, inv = doctor(bundle, repo)
    render_t, _, _ = best_of(runs, lambda r=report: render_json(r))
    rendered = len(render_json(report))
    print("== sizes")
    for line in sizes(bundle, repo, inv, result):
        print("  " + line)
    del report, result, inv
    _cold()

    for gc_on, m in results.items():
        title = "cyclic GC on (as the CLI runs)" if gc_on else "cyclic GC off (pure compute, no collector noise)"
        print_times(m, title, render_t if gc_on == regimes[0] else None, rendered)

    mem: dict[str, float] = {}
    if not args.no_memory:
        print("\n== peak memory", flush=True)
        b_peak, b_cur = peak_memory(lambda: baseline(bundle, repo))
        d_peak, d_cur = peak_memory(lambda: doctor(bundle, repo))
        mem["traced"] = d_peak / b_peak
        print("  tracemalloc (Python allocations, same process):")
        print(f"    baseline peak {fmt_b(b_peak):>10}   held at end {fmt_b(b_cur):>10}")
        print(f"    doctor   peak {fmt_b(d_peak):>10}   held at end {fmt_b(d_cur):>10}")
        print(f"    ratio doctor/baseline: peak {d_peak / b_peak:.2f}x, held {d_cur / b_cur:.2f}x")
        b_rss, d_rss = child_rss("baseline", bundle, repo), child_rss("doctor", bundle, repo)
        if b_rss and d_rss:
            mem["rss"] = d_rss / b_rss
            print("  peak RSS of a fresh process running only it (includes the interpreter and imports):")
            print(f"    baseline {fmt_b(b_rss):>10}   doctor {fmt_b(d_rss):>10}   ratio {d_rss / b_rss:.2f}x")

    print("\n== where analysis time goes (fresh inventory, cyclic GC off, shared indexes built first)", flush=True)
    rule_rows, steps = per_rule(bundle, repo)
    total_rules = sum(t for _, t, _ in rule_rows)
    for name, t in steps:
        print(f"  {name:44} {fmt_s(t):>10}")
    print(f"  {'all rules (' + str(len(rule_rows)) + ')':44} {fmt_s(total_rules):>10}")
    print(f"\n  {args.top} slowest rules:")
    print(f"  {'rule':44} {'time':>10} {'share':>7} {'findings':>9}")
    for name, t, n in sorted(rule_rows, key=lambda r: -r[1])[: args.top]:
        share = t / total_rules if total_rules else 0.0
        print(f"  {name:44} {fmt_s(t):>10} {share:>6.0%} {n:>9}")

    if args.profile or args.profile_out:
        print("\n== cProfile of one analysis (Inventory + analyse), cyclic GC off")
        print(profile_analysis(bundle, repo, 30, args.profile_out))

    print("\n== verdict")
    for gc_on, m in results.items():
        ratio = m["doc"] / m["base"]
        label = "GC on " if gc_on else "GC off"
        print(f"  time ({label}): doctor/baseline = {ratio:.2f} (target ≤ {TIME_TARGET:.1f}); "
              f"analysis/baseline = {m['analysis'] / m['base']:.2f} -> {verdict(ratio <= TIME_TARGET)}")
    if mem:
        worst = max(mem.values())
        detail = ", ".join(f"{k} {v:.2f}x" for k, v in mem.items())
        print(f"  memory: doctor/baseline peak {detail} (target ≤ {MEMORY_TARGET:.1f}) -> "
              f"{verdict(worst <= MEMORY_TARGET)}")
    else:
        print("  memory: not measured (--no-memory)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
